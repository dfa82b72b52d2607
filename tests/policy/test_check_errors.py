"""Every error `signoff policy check` can report: its message, line and column."""

from __future__ import annotations

from typing import Any

import pytest

from policy import PolicyError, PolicyIssue, parse_policy

from .conftest import DIRECTORY, policy_text

ADMINS = "default:\n  require: {approvers: 1 of admins}\n"


def errors_of(text: str, **kwargs: Any) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "t.yaml", **kwargs)
    return info.value.errors


def marked_line(text: str) -> int:
    """1-based number of the line carrying the ``#!`` marker."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if "#!" in line)


# (case id, policy text after the standard directory, expected message part, expected column)
# The expected line is the one marked `#!`.
SEMANTIC: list[tuple[str, str, str, int | None]] = [
    ("unknown group", "rules:\n  - id: r\n    require: {approvers: 2 of dbas}  #!\n",
     "rules[0].require.approvers: group 'dbas' is not defined in the directory; did you mean 'dba'?", 26),
    ("group named twice", "rules:\n  - id: r\n    require: {approvers: 1 of dba and 1 of dba}  #!\n",
     "group 'dba' is named twice; write '2 of dba'", None),
    ("group too small", "rules:\n  - id: r\n    require: {approvers: 4 of dba}  #!\n",
     "needs 4 approvals from 'dba', which has only 3 members, so it could never be approved", None),
    ("quorum below sum", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba and 1 of secops\n      quorum: 1  #!\n",
     "quorum 1 is less than the 2 approvals the groups need", 15),
    ("quorum above eligible", "rules:\n  - id: r\n    require:\n      approvers: 1 of platform\n      quorum: 2  #!\n",
     "quorum 2 needs more distinct people than the 1 who are eligible", None),
    ("deny quorum above eligible", "rules:\n  - id: r\n    require:\n      approvers: 1 of secops\n      deny_quorum: 3  #!\n",
     "deny_quorum 3 needs more distinct people than the 2 who are eligible", 20),
    ("reminder after timeout", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      timeout: 30m\n      reminders: [10m, 45m]  #!\n",
     "rules[0].require.reminders[1]: reminder at 45m comes at or after the 30m timeout", 24),
    ("escalation after timeout", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      timeout: 30m\n      escalation:\n        - {after: 1h, add: [admins]}  #!\n",
     "escalation at 1h comes at or after the 30m timeout, so it would never fire", None),
    ("escalation order", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      escalation:\n        - {after: 20m, add: [admins]}\n        - {after: 10m, page: [admins]}  #!\n",
     "escalation steps must be in increasing order of 'after'", None),
    ("escalation unknown group", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      escalation:\n        - {after: 20m, add: [admin]}  #!\n",
     "rules[0].require.escalation[0].add[0]: group 'admin' is not defined in the directory; did you mean 'admins'?", None),
    ("slack dm unknown group", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      channels: [{slack_dm: dbx}]  #!\n",
     "channels[0].slack_dm: group 'dbx' is not defined", None),
    ("unknown masking profile", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      masking: {profile: strict}  #!\n",
     "masking profile 'strict' is not defined; known: default", None),
    ("partial group unknown", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      masking: {partial_groups: [dbz]}  #!\n",
     "group 'dbz' is not defined", None),
    ("also eligible unknown", "rules:\n  - id: r\n    require:\n      approvers: 1 of dba\n      also_eligible: [nobody]  #!\n",
     "also_eligible[0]: group 'nobody' is not defined", None),
    ("no approvers", "rules:\n  - id: r  #!\n    match: {action: x}\n",
     "rule 'r' requires approval but names no approvers", 5),
    ("reason on approval rule", "rules:\n  - id: r\n    reason: because  #!\n    require: {approvers: 1 of dba}\n",
     "'reason' explains automatic decisions", 5),
    ("require on auto rule", "rules:\n  - id: r\n    match: {action: x}\n    decision: auto_deny\n    require: {approvers: 1 of dba}  #!\n",
     "an auto_deny rule has no approvers; remove 'require'", 5),
    ("auto-approve everything", "rules:\n  - id: yolo  #!\n    decision: auto_approve\n",
     "rule 'yolo' auto-approves every request; auto-approval must be narrowed", 5),
    ("reserved id", "rules:\n  - id: default  #!\n    match: {action: x}\n    decision: auto_deny\n",
     "'default' is reserved for the default block", 9),
    ("duplicate id", "rules:\n  - {id: r, match: {action: a}, decision: auto_deny}\n  - {id: r, match: {action: b}, decision: auto_deny}  #!\n",
     "rule id 'r' is already used on line 14", None),
    ("unreachable", "rules:\n  - {id: all, require: {approvers: 1 of dba}}\n  - {id: late, match: {action: b}, decision: auto_deny}  #!\n",
     "rule 'late' is never reached: rule 'all' on line 14 matches every request", None),
    ("bad context path", "rules:\n  - id: r\n    match: {context: {a..b: 1}}  #!\n    decision: auto_deny\n",
     "'a..b' is not a field path like ticket or change.kind", None),
    ("cel syntax", "rules:\n  - id: r\n    when: 'params.x >>> 3'  #!\n    decision: auto_deny\n",
     "rules[0].when: condition is not valid CEL: unexpected text near '>> 3'", 22),
    ("cel unknown name", "rules:\n  - id: r\n    when: environment == 'prod' && tikcet != ''  #!\n    decision: auto_deny\n",
     "condition uses unknown name 'tikcet'; known names: request, action", 36),
    ("unknown time zone", "rules:\n  - id: r\n    match: {action: x}\n    window: {timezone: Mars/Base, days: [mon], hours: '09:00-17:00'}  #!\n    decision: auto_deny\n",
     "'Mars/Base' is not a known time zone", None),
    ("empty window", "rules:\n  - id: r\n    match: {action: x}\n    window: {timezone: UTC, days: [mon], hours: '09:00-09:00'}  #!\n    decision: auto_deny\n",
     "'09:00-09:00' is an empty range", None),
    ("resource owner too small", "rules:\n  - id: r\n    require: {approvers: 1 of platform, resource_owner: {approvals: 1, otherwise: platform}}  #!\n",
     "when 'platform' owns the resource this rule needs 2 approvals from it, but it has only 1 member", None),
    ("resource owner fallback unknown", "rules:\n  - id: r\n    require:\n      resource_owner: {approvals: 1, otherwise: owners}  #!\n",
     "otherwise: group 'owners' is not defined", None),
    ("auto-deny default with require", "default:\n  decision: auto_deny\n  require: {approvers: 1 of dba}  #!\n",
     "an auto_deny default has no approvers; remove 'require'", 12),
]


@pytest.mark.parametrize(("body", "message", "column"), [c[1:] for c in SEMANTIC], ids=[c[0] for c in SEMANTIC])
def test_semantic_errors(body: str, message: str, column: int | None) -> None:
    text = policy_text(body)
    found = errors_of(text)
    matching = [e for e in found if message in e.message]
    assert matching, f"{message!r} not in {[e.message for e in found]}"
    issue = matching[0]
    assert issue.line == marked_line(text), issue
    if column is not None:
        assert issue.column == column, issue


DIRECTORY_ERRORS: list[tuple[str, str, str]] = [
    ("duplicate email", "    - {email: ALICE@example.com}  #!\n", "email 'alice@example.com' is already used on line 4"),
    ("duplicate slack", "    - {email: zed@example.com, slack: U0BOB}  #!\n", "slack 'U0BOB' is already used on line 5"),
    (
        "duplicate teams",
        "    - {email: y@example.com, teams: 00000000-0000-0000-0000-00000000000A}\n"
        "    - {email: z@example.com, teams: 00000000-0000-0000-0000-00000000000a}  #!\n",
        "teams '00000000-0000-0000-0000-00000000000a' is already used on line 10",
    ),
    ("bad email", "    - {email: bob}  #!\n", "directory.people[6].email: must be an email address (got 'bob')"),
    ("bad slack id", "    - {email: z@example.com, slack: bob}  #!\n", "must be a Slack user id such as U0123ABCD (got 'bob')"),
    ("bad teams id", "    - {email: z@example.com, teams: not-a-guid}  #!\n", "must be a Microsoft Entra object id (a GUID)"),
    ("bad group name", "    - {email: z@example.com, groups: ['no spaces']}  #!\n", "must be a group name (letters, digits"),
    ("unknown person key", "    - {email: z@example.com, slak: U0Z}  #!\n", "unknown key 'slak'; did you mean 'slack'?"),
]


@pytest.mark.parametrize(("people", "message"), [c[1:] for c in DIRECTORY_ERRORS], ids=[c[0] for c in DIRECTORY_ERRORS])
def test_directory_people_errors(people: str, message: str) -> None:
    head, tail = DIRECTORY.split("  agents:\n")
    text = head + people + "  agents:\n" + tail + ADMINS
    found = errors_of(text)
    matching = [e for e in found if message in e.message]
    assert matching, [e.message for e in found]
    assert matching[0].line == marked_line(text)


def test_directory_section_errors() -> None:
    text = DIRECTORY + (
        "  groups:\n"
        "    oncall: {members: [ghost@example.com]}  #!\n"
        "  resources:\n"
        "    - {match: 'role/*', owner: ghosts}\n"
    ) + ADMINS
    text = text.replace(
        "    - {id: \"agent:deploy-bot\", owner: frank@example.com}\n",
        "    - {id: \"agent:deploy-bot\", owner: frank@example.com}\n"
        "    - {id: \"AGENT:deploy-bot\", owner: nobody@example.com}\n",
    )
    messages = {(e.line, e.message) for e in errors_of(text)}
    assert (13, "directory.agents[2].id: agent 'AGENT:deploy-bot' is already listed on line 12") in messages
    assert (15, "directory.groups.oncall.members[0]: 'ghost@example.com' is not a person in directory.people") in messages
    assert (17, "directory.resources[0].owner: group 'ghosts' is not defined in the directory") in messages


def test_agent_owner_must_be_a_person() -> None:
    text = DIRECTORY.replace("owner: frank@example.com", "owner: ghost@example.com") + ADMINS
    (issue,) = errors_of(text)
    assert issue.message == "directory.agents[1].owner: owner 'ghost@example.com' is not a person in directory.people"
    line = text.splitlines()[11]
    assert (issue.line, issue.column) == (12, line.index("ghost@") + 1)


def test_missing_admins_for_the_builtin_default() -> None:
    text = DIRECTORY.replace("groups: [admins, platform]", "groups: [platform]")
    (issue,) = errors_of(text)
    assert "the built-in default, 1 of admins, needs a group 'admins'" in issue.message


# (case id, full text, expected message part, line, column). Where the text marks a line
# with `#!`, line and column are instead that line and the first occurrence of the given
# needle in it (a string column), so the expectations are read off the text itself.
R = DIRECTORY + "rules:\n  - id: r\n"
SCHEMA_AND_YAML: list[tuple[str, str, str, int, int | str]] = [
    ("not yaml", "version: 1\ndirectory: [\n", "YAML syntax error", 3, 1),
    ("tab indentation", "version: 1\n\tdirectory: {}\n", "YAML syntax error", 2, 1),
    ("empty", "", "the policy file is empty", 1, 1),
    ("only a comment", "# nothing\n", "the policy file is empty", 1, 1),
    ("not a mapping", "- 1\n- 2\n", "the policy file must be a mapping", 1, 1),
    ("duplicate key", "version: 1\nversion: 1  #!\ndirectory: {people: []}\n", "duplicate key 'version' (first defined on line 1)", 0, "version"),
    ("complex key", "version: 1\n? [a, b]  #!\n: 1\ndirectory: {people: []}\n", "a mapping key must be a plain value", 0, "[a"),
    ("recursive alias", "version: 1\ndirectory: &d {people: [], x: *d}  #!\n", "a YAML alias refers back to the anchor it is inside", 0, "&d"),
    ("missing directory", "version: 1\n", "missing required key 'directory'", 1, 1),
    ("wrong version", "version: 2  #!\ndirectory: {people: []}\n", "version: must be 1 (this is the v1 policy format) (got 2)", 0, "2"),
    ("unknown top key", "version: 1\ndirectory: {people: []}\nrule: []  #!\n", "unknown key 'rule'; did you mean 'rules'?", 0, "rule"),
    ("unknown key, no hint", "version: 1\ndirectory: {people: [], zzz: 1}  #!\n", "unknown key 'zzz'; expected one of: people, groups, agents, resources", 0, "zzz"),
    ("people not a list", "version: 1\ndirectory: {people: alice}  #!\n", "directory.people: expected a list, got text", 0, "alice"),
    ("rules not a list", DIRECTORY + "rules: {}  #!\n", "rules: expected a list, got a mapping", 0, "{}"),
    ("rule without id", DIRECTORY + "rules:\n  - {match: {action: x}}  #!\n", "rules[0]: missing required key 'id'", 0, "{match"),
    ("bad rule id", DIRECTORY + "rules:\n  - {id: 'has space', decision: auto_deny, match: {action: x}}  #!\n", "rules[0].id: must be a rule id", 0, "'has"),
    ("bad decision", DIRECTORY + "rules:\n  - {id: r, decision: approve}  #!\n", "must be one of: require_approval, auto_approve, auto_deny (got 'approve')", 0, "approve}"),
    ("default auto-approve", DIRECTORY + "default: {decision: auto_approve}  #!\n", "must be require_approval or auto_deny: the fallback never auto-approves", 0, "auto_approve"),
    ("bad duration", R + "    require: {approvers: 1 of dba, timeout: 1 hour}  #!\n", "must be a duration such as 90s, 15m, 1h30m or 2d (or a number of seconds) (got '1 hour')", 0, "1 hour"),
    ("zero timeout", R + "    require: {approvers: 1 of dba, timeout: 0}  #!\n", "must be a duration", 0, "0}"),
    ("bad approvers", R + "    require: {approvers: two dbas}  #!\n", "must be like '2 of dba' or '1 of dba and 1 of secops'", 0, "two"),
    ("zero approvers", R + "    require: {approvers: {dba: 0}}  #!\n", "counts of at least 1", 0, "{dba"),
    ("bad channel", R + "    require: {approvers: 1 of dba, channels: [email]}  #!\n", "must be 'web', {slack: '#channel'}, {slack_dm: group}, or {teams: conversation name} (got 'email')", 0, "email"),
    ("empty channels", R + "    require: {approvers: 1 of dba, channels: []}  #!\n", "channels: must have at least 1 entry", 0, "[]"),
    ("on_timeout approve", R + "    require: {approvers: 1 of dba, on_timeout: approve}  #!\n", "must be 'deny': an undecided request is never approved (got 'approve')", 0, "approve}"),
    ("escalation without action", R + "    require: {approvers: 1 of dba, escalation: [{after: 5m}]}  #!\n", "each escalation step needs 'after' and at least one of 'add' or 'page'", 0, "{after"),
    ("escalation unknown key", R + "    require: {approvers: 1 of dba, escalation: [{after: 5m, notify: [dba]}]}  #!\n", "unknown key 'notify'; expected one of: after, add, page", 0, "notify"),
    ("quorum zero", R + "    require: {approvers: 1 of dba, quorum: 0}  #!\n", "quorum: must be at least 1 (got 0)", 0, "0}"),
    ("reason not bool", R + "    require: {approvers: 1 of dba, reason: yes please}  #!\n", "reason: expected true or false, got text", 0, "yes"),
    ("duplicate groups", R + "    require: {approvers: 1 of dba, also_eligible: [dba, dba]}  #!\n", "lists the same entry twice", 0, "[dba"),
    ("empty glob", DIRECTORY + "rules:\n  - {id: r, match: {action: ''}, decision: auto_deny}  #!\n", "must be a glob such as 'db.export*' or a list of globs (got '')", 0, "''"),
    ("bad context value", DIRECTORY + "rules:\n  - {id: r, match: {context: {a: {b: 1}}}, decision: auto_deny}  #!\n", "must be a glob, a number, true/false, or a list of those", 0, "{b"),
    ("bad window hours", DIRECTORY + "rules:\n  - {id: r, match: {action: x}, decision: auto_deny, window: {timezone: UTC, days: [mon], hours: 9-5}}  #!\n", "must be a range like 09:00-18:00 (got '9-5')", 0, "9-5"),
    ("bad day", DIRECTORY + "rules:\n  - {id: r, match: {action: x}, decision: auto_deny, window: {timezone: UTC, days: [funday], hours: '09:00-17:00'}}  #!\n", "must be one of: mon, tue, wed, thu, fri, sat, sun (got 'funday')", 0, "funday"),
    ("window without days", DIRECTORY + "rules:\n  - {id: r, match: {action: x}, decision: auto_deny, window: {timezone: UTC, hours: '09:00-17:00'}}  #!\n", "missing required key 'days'", 0, "{timezone"),
    ("bad resource_owner", R + "    require: {resource_owner: lots}  #!\n", "must be a count, or {approvals: count, otherwise: group}", 0, "lots"),
    ("bad group map key", DIRECTORY.replace("  agents:", "  groups:\n    'bad name': {}  #!\n  agents:") + ADMINS, "'bad name' is not a valid name", 0, "'bad"),
    ("masking unknown key", DIRECTORY + "masking: {profile: {}}  #!\n", "masking.profile: unknown key 'profile'; did you mean 'profiles'?", 0, "profile"),
    ("cel in a literal block", R + "    decision: auto_deny\n    when: |\n      environment == 'prod' &&\n        bogus\n", "condition uses unknown name 'bogus'", 18, 9),
    ("cel in double quotes", R + '    decision: auto_deny\n    when: "environment == \'prod\' && bogus"  #!\n', "condition uses unknown name 'bogus'", 0, "bogus"),
]


@pytest.mark.parametrize(
    ("text", "message", "line", "column"),
    [c[1:] for c in SCHEMA_AND_YAML],
    ids=[c[0] for c in SCHEMA_AND_YAML],
)
def test_schema_and_yaml_errors(text: str, message: str, line: int, column: int | str) -> None:
    if isinstance(column, str):
        line = marked_line(text)
        column = text.splitlines()[line - 1].index(column) + 1
    found = errors_of(text)
    matching = [e for e in found if message in e.message]
    assert matching, f"{message!r} not in {[(e.line, e.column, e.message) for e in found]}"
    assert (matching[0].line, matching[0].column) == (line, column), matching[0]


def test_every_error_is_reported_at_once_in_file_order() -> None:
    text = policy_text(
        "rules:\n"
        "  - id: a\n"
        "    match: {action: 'db.*'}\n"
        "    require: {approvers: 2 of dbas, timeout: soon}\n"
        "  - id: b\n"
        "    when: 'nonsense +'\n"
        "    decision: auto_approve\n"
        "  - id: a\n"
        "    require: {approvers: 1 of dba, channels: [email]}\n"
    )
    with pytest.raises(PolicyError) as info:
        parse_policy(text, "multi.yaml")
    errors = info.value.errors
    assert len(errors) == 5, errors
    assert errors == sorted(errors)
    assert [(e.line, e.column) for e in errors] == [(16, 26), (16, 46), (18, 21), (20, 9), (21, 47)]
    assert str(info.value).startswith("multi.yaml: 5 errors\n  multi.yaml:16:26: rules[0].require")


def test_masking_section_is_checked_by_the_masking_engine() -> None:
    from signoff.masking.profile import MaskingConfig

    text = policy_text(
        "masking:\n"
        "  profiles:\n"
        "    strict: {strategy: scramble}\n"
        "  detectors:\n"
        "    - {id: emp}\n"
    )
    found = errors_of(text, masking_validator=MaskingConfig.model_validate)
    messages = {(e.line, e.message.split(":")[0]) for e in found}
    assert (15, "masking.profiles.strict.strategy") in messages
    assert (17, "masking.detectors[0]") in messages
    # And a valid section passes through as plain dicts.
    ok = parse_policy(
        policy_text(ADMINS + "masking:\n  profiles:\n    strict: {strategy: hash}\n"),
        masking_validator=MaskingConfig.model_validate,
    )
    assert ok.masking_profiles == {"strict": {"strategy": "hash", "name": "strict"}}


def test_a_huge_alias_expansion_is_refused() -> None:
    lines = ["version: 1", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    (issue,) = errors_of("\n".join(lines) + "\n")
    assert "expands to more than" in issue.message


def test_merge_keys_work() -> None:
    text = policy_text(
        "x-common: &common {approvers: 1 of dba, timeout: 10m}\n"
    )
    # x-common is not a policy key: the merge works but the unknown key is reported.
    assert "unknown key 'x-common'" in errors_of(text)[0].message
    merged = parse_policy(
        policy_text(
            "defaults: &d {timeout: 10m}\n"
            "rules:\n"
            "  - id: r\n"
            "    require: {<<: *d, approvers: 1 of dba}\n"
        )
    )
    assert merged.rules[0].requirement.timeout_seconds == 600
