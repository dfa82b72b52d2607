"""Table tests for every rule feature: matchers, conditions, windows, requirements, defaults."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from policy import ChannelKind, ChannelTarget, Outcome, Requirement

from .conftest import MONDAY, SATURDAY, make_policy, request

# --- matchers --------------------------------------------------------------------------------

MATCH_CASES: list[tuple[str, dict[str, Any], bool]] = [
    ('action: "db.export*"', {"action": "db.export_csv"}, True),
    ('action: "db.export*"', {"action": "db.import"}, False),
    ('action: ["iam.*", "db.grant"]', {"action": "db.grant"}, True),
    ('action: "db.?xport"', {"action": "db.export"}, True),
    ('action: "DB.export"', {"action": "db.export"}, False),  # case-sensitive, like fnmatchcase
    ('resource: "role/*-admin"', {"resource": "role/db-admin"}, True),
    ('resource: "role/*-admin"', {"resource": "role/db-reader"}, False),
    ('requester: "agent:export-*"', {}, True),
    ('requester: "agent:deploy-*"', {}, False),
    ('on_behalf_of: "*@example.com"', {}, True),
    ('on_behalf_of: "*@example.com"', {"on_behalf_of": None}, False),
    ("team: platform", {}, True),
    ("team: platform", {"requester": "agent:deploy-bot"}, False),  # no team
    ("environment: [prod, staging]", {"context": {"environment": "staging"}}, True),
    ("environment: prod", {"context": {}}, False),
    ('context: {ticket: "CHG-*"}', {"context": {"ticket": "CHG-42"}}, True),
    ('context: {ticket: "CHG-*"}', {"context": {"ticket": "INC-42"}}, False),
    ('context: {ticket: "CHG-*"}', {"context": {}}, False),
    ("context: {change.risk: [low, medium]}", {"context": {"change": {"risk": "low"}}}, True),
    ("context: {change.risk: [low, medium]}", {"context": {"change": "low"}}, False),
    ("context: {rows: 10}", {"context": {"rows": 10}}, True),
    ("context: {rows: 10}", {"context": {"rows": "10"}}, False),
    ("context: {urgent: true}", {"context": {"urgent": True}}, True),
    ("context: {urgent: true}", {"context": {"urgent": 1}}, False),  # true is not 1
    ('{action: "db.*", environment: prod}', {"context": {"environment": "dev"}}, False),
]


@pytest.mark.parametrize(("match", "overrides", "matches"), MATCH_CASES)
def test_matchers(match: str, overrides: dict[str, Any], matches: bool) -> None:
    policy = make_policy(
        f"""
        rules:
          - id: r
            match: {{{match}}}
            require: {{approvers: 1 of dba}}
        default:
          require: {{approvers: 1 of admins}}
        """
        if not match.startswith("{")
        else f"""
        rules:
          - id: r
            match: {match}
            require: {{approvers: 1 of dba}}
        default:
          require: {{approvers: 1 of admins}}
        """
    )
    ev = policy.evaluate(request(**overrides), MONDAY)
    assert (ev.rule_id == "r") is matches, ev.explanation
    if not matches:
        assert ev.explanation[0].startswith("✗ r (line ")


def test_first_match_wins_in_file_order() -> None:
    policy = make_policy(
        """
        rules:
          - id: specific
            match: {action: db.export, resource: customers}
            require: {approvers: 2 of dba}
          - id: broad
            match: {action: "db.*"}
            require: {approvers: 1 of dba}
        """
    )
    assert policy.evaluate(request(), MONDAY).rule_id == "specific"
    assert policy.evaluate(request(resource="orders"), MONDAY).rule_id == "broad"
    ev = policy.evaluate(request(action="db.drop"), MONDAY)
    assert ev.explanation[0].startswith("✗ specific (line 15): action 'db.drop' does not match")
    assert ev.explanation[-1].startswith("✓ broad (line 18) matched")


def test_the_action_index_never_changes_the_answer() -> None:
    """Rules skipped by the first-segment index are exactly those whose action glob fails."""
    globs = ["db.*", "db*", "*", "iam.grant", "[di]*.x", "db.export", "d?.export", "x.y.z*"]
    rules = "\n".join(
        f"  - id: r{i}\n    match: {{action: \"{g}\"}}\n    require: {{approvers: 1 of dba}}"
        for i, g in enumerate(globs)
    )
    policy = make_policy("rules:\n" + rules + "\n")
    import fnmatch

    for action in ["db.export", "db", "dbx.export", "iam.grant", "ia.x", "x.y.zz", "q", "d.export"]:
        expected = next((f"r{i}" for i, g in enumerate(globs) if fnmatch.fnmatchcase(action, g)), "default")
        assert policy.evaluate(request(action=action), MONDAY).rule_id == expected, action


# --- conditions -------------------------------------------------------------------------------

COND_CASES = [
    ('params.rows > 1000', {"params": {"rows": 5000}}, True),
    ('params.rows > 1000', {"params": {"rows": 5}}, False),
    ('environment == "prod" && requester.startsWith("agent:")', {}, True),
    ('agent.team == "platform"', {}, True),
    ('agent.team == "platform"', {"requester": "agent:deploy-bot"}, False),
    ('agent.id == ""', {"requester": "someone@example.com"}, True),
    ('"sensitive" in context && context.sensitive', {"context": {"sensitive": True}}, True),
    ('params.tables.exists(t, t.startsWith("pii_"))', {"params": {"tables": ["a", "pii_users"]}}, True),
    ('size(reason) > 10', {"reason": "quarterly finance report"}, True),
    ('now.getDayOfWeek("Europe/Berlin") == 1', {}, True),  # CEL: Sunday is 0, Monday is 1
    ('on_behalf_of.endsWith("@example.com")', {}, True),
]


@pytest.mark.parametrize(("condition", "overrides", "expected"), COND_CASES)
def test_cel_conditions(condition: str, overrides: dict[str, Any], expected: bool) -> None:
    policy = make_policy(
        f"""
        rules:
          - id: r
            when: '{condition}'
            require: {{approvers: 1 of dba}}
        """
    )
    ev = policy.evaluate(request(**overrides), MONDAY)
    assert (ev.rule_id == "r") is expected, ev.explanation


def test_condition_errors_never_approve() -> None:
    """A condition that fails to evaluate skips an auto-approve rule but matches a stricter one."""
    policy = make_policy(
        """
        rules:
          - id: strict
            when: 'params.rows > 1000'
            require: {approvers: 2 of dba}
          - id: lax
            when: 'params.rows < 10'
            decision: auto_approve
        """
    )
    ev = policy.evaluate(request(params={}), MONDAY)
    assert ev.rule_id == "strict" and ev.outcome is Outcome.REQUIRE_APPROVAL
    assert "could not be evaluated" in ev.explanation[-1]
    only_lax = make_policy(
        """
        rules:
          - id: lax
            when: 'params.rows < 10'
            decision: auto_approve
        """
    )
    ev = only_lax.evaluate(request(params={}), MONDAY)
    assert ev.rule_id == "default" and ev.outcome is Outcome.REQUIRE_APPROVAL
    assert "never auto-approves" in ev.explanation[0]


def test_non_boolean_condition_is_an_error_not_true() -> None:
    policy = make_policy(
        """
        rules:
          - id: lax
            when: 'params.rows'
            decision: auto_approve
        """
    )
    ev = policy.evaluate(request(params={"rows": 1}), MONDAY)
    assert ev.outcome is Outcome.REQUIRE_APPROVAL and "not true or false" in ev.explanation[0]


# --- windows ----------------------------------------------------------------------------------

WINDOW = """
rules:
  - id: w
    match: {{action: "infra.*"}}
    window: {{timezone: {tz}, days: {days}, hours: "{hours}"{reason}}}
    require: {{approvers: 1 of platform}}
"""


@pytest.mark.parametrize(
    ("tz", "days", "hours", "when", "inside"),
    [
        ("Europe/Berlin", "[mon, tue, wed, thu, fri]", "09:00-18:00", MONDAY, True),
        ("Europe/Berlin", "[mon, tue, wed, thu, fri]", "09:00-18:00", SATURDAY, False),
        ("Europe/Berlin", "[mon]", "12:00-12:01", MONDAY, True),  # 10:00 UTC is 12:00 in Berlin
        ("UTC", "[mon]", "10:01-18:00", MONDAY, False),  # start inclusive, before it is out
        ("UTC", "[mon]", "08:00-10:00", MONDAY, False),  # end exclusive
        ("UTC", "[sun, mon]", "22:00-10:30", MONDAY, True),  # overnight range
        ("UTC", "[mon]", "22:00-06:00", MONDAY, False),
        ("America/New_York", "[mon]", "06:00-24:00", MONDAY, True),  # 06:00 in New York
    ],
)
def test_windows(tz: str, days: str, hours: str, when: datetime.datetime, inside: bool) -> None:
    policy = make_policy(WINDOW.format(tz=tz, days=days, hours=hours, reason=""))
    ev = policy.evaluate(request(action="infra.apply"), when)
    assert ev.rule_id == "w"
    assert (ev.outcome is Outcome.REQUIRE_APPROVAL) is inside
    if not inside:
        assert ev.reason.startswith("Allowed only ") and "it is now" in ev.reason


def test_window_reason_is_shown() -> None:
    policy = make_policy(WINDOW.format(tz="UTC", days="[mon]", hours="00:00-01:00", reason=", reason: Not now."))
    ev = policy.evaluate(request(action="infra.apply"), MONDAY)
    assert (ev.outcome, ev.reason, ev.summary) == (Outcome.AUTO_DENY, "Not now.", "w — auto-denied")


def test_naive_now_is_utc() -> None:
    policy = make_policy(WINDOW.format(tz="UTC", days="[mon]", hours="10:00-11:00", reason=""))
    ev = policy.evaluate(request(action="infra.apply"), MONDAY.replace(tzinfo=None))
    assert ev.outcome is Outcome.REQUIRE_APPROVAL


# --- requirements -----------------------------------------------------------------------------

REQ_CASES: list[tuple[str, dict[str, Any]]] = [
    ("approvers: 2 of dba", {"groups": {"dba": 2}, "quorum": 2, "eligible_groups": ("dba",)}),
    ("approvers: 1 from dba AND 1 from secops", {"groups": {"dba": 1, "secops": 1}, "quorum": 2}),
    ("approvers: 1 of dba & 1 of secops", {"groups": {"dba": 1, "secops": 1}}),
    ("approvers: {dba: 1, secops: 1}", {"groups": {"dba": 1, "secops": 1}, "quorum": 2}),
    ("{approvers: 1 of dba, quorum: 3}", {"quorum": 3}),
    (
        "{approvers: 1 of dba, also_eligible: [secops, admins]}",
        {"eligible_groups": ("dba", "secops", "admins")},
    ),
    ("{approvers: 1 of dba, deny_quorum: 2}", {"deny_quorum": 2}),
    ("{approvers: 1 of dba, reason: true, deny_comment: true}", {"require_reason": True, "require_deny_comment": True}),
    ("{approvers: 1 of dba, timeout: 1h30m}", {"timeout_seconds": 5400}),
    ("{approvers: 1 of dba, timeout: 600}", {"timeout_seconds": 600}),
    ("{approvers: 1 of dba, on_timeout: deny}", {"on_timeout": "deny"}),
    ("{approvers: 1 of dba, reminders: [45m, 10m, 10m]}", {"reminders": (600, 2700)}),
    (
        "{approvers: 1 of dba, escalation: [{after: 20m, add: [admins]}, {after: 40m, page: [secops], add: [platform]}]}",
        {"escalation_rows": [(1200, ("admins",), ()), (2400, ("platform",), ("secops",))]},
    ),
    (
        "{approvers: 1 of dba, channels: [web, {slack: '#db'}, {slack_dm: dba}, {teams: ops}, {web: true}]}",
        {
            "channels": (
                ChannelTarget(ChannelKind.WEB),
                ChannelTarget(ChannelKind.SLACK_CHANNEL, "#db"),
                ChannelTarget(ChannelKind.SLACK_DM, "dba"),
                ChannelTarget(ChannelKind.TEAMS, "ops"),
            )
        },
    ),
    ("approvers: 1 of dba", {"channels": (ChannelTarget(ChannelKind.WEB),), "timeout_seconds": 3600}),
    (
        "{approvers: 1 of dba, masking: {profile: strict, disable_detectors: [phone], partial_groups: [dba]}}",
        {"masking_profile": "strict", "disable_detectors": ("phone",), "partial_groups": ("dba",)},
    ),
]


@pytest.mark.parametrize(("require", "expected"), REQ_CASES)
def test_requirement_settings(require: str, expected: dict[str, Any]) -> None:
    body = f"""
    masking:
      profiles:
        strict: {{strategy: redact}}
    rules:
      - id: r
        match: {{action: "db.*"}}
        require: {require if require.startswith("{") else "{" + require + "}"}
    """
    req = make_policy(body).evaluate(request(), MONDAY).requirement
    for key, value in expected.items():
        if key == "escalation_rows":
            assert [(e.after_seconds, e.add_groups, e.page_groups) for e in req.escalation] == value
        else:
            assert getattr(req, key) == value, key
    assert Requirement.from_dict(req.to_dict()) == req


def test_defaults_apply_key_by_key() -> None:
    policy = make_policy(
        """
        defaults:
          approvers: 1 of admins
          timeout: 2h
          channels: [{slack: "#all"}]
        rules:
          - id: own
            match: {action: "db.*"}
            require: {approvers: 2 of dba}
          - id: inherits
            match: {action: "iam.*"}
        """
    )
    own = policy.evaluate(request(), MONDAY).requirement
    inherits = policy.evaluate(request(action="iam.grant"), MONDAY).requirement
    default = policy.evaluate(request(action="x.y"), MONDAY).requirement
    assert own.groups == {"dba": 2} and own.timeout_seconds == 7200
    assert own.channels == (ChannelTarget(ChannelKind.SLACK_CHANNEL, "#all"),)
    assert inherits.groups == {"admins": 1}
    assert default.groups == {"admins": 1} and default.timeout_seconds == 7200


def test_default_default_is_one_admin_never_auto_approve() -> None:
    policy = make_policy("rules: []\n")
    ev = policy.evaluate(request(), MONDAY)
    assert (ev.rule_id, ev.outcome, ev.requirement.groups, ev.requirement.quorum) == (
        "default", Outcome.REQUIRE_APPROVAL, {"admins": 1}, 1,
    )
    assert ev.explanation == ["✓ no rule matched, so the default applies"]


def test_default_may_auto_deny() -> None:
    policy = make_policy("default: {decision: auto_deny, reason: Not covered by policy.}\n")
    ev = policy.evaluate(request(), MONDAY)
    assert (ev.outcome, ev.reason, ev.summary) == (Outcome.AUTO_DENY, "Not covered by policy.", "default — auto-denied")


def test_auto_deny_rule_default_reason() -> None:
    policy = make_policy("rules:\n  - {id: nope, match: {action: 'db.*'}, decision: auto_deny}\n")
    ev = policy.evaluate(request(), MONDAY)
    assert ev.outcome is Outcome.AUTO_DENY and ev.reason == "Denied by policy rule nope."


def test_resource_owner_adds_to_an_existing_group() -> None:
    policy = make_policy(
        """
        rules:
          - id: r
            match: {action: "iam.*"}
            require: {approvers: 1 of dba, resource_owner: 1}
        """,
        directory=__import__("tests.policy.conftest", fromlist=["DIRECTORY"]).DIRECTORY
        + "  resources:\n    - {match: 'role/db-*', owner: dba}\n",
    )
    owned = policy.evaluate(request(action="iam.grant", resource="role/db-x"), MONDAY).requirement
    unowned = policy.evaluate(request(action="iam.grant", resource="role/other"), MONDAY).requirement
    assert owned.groups == {"dba": 2} and owned.quorum == 2
    assert unowned.groups == {"dba": 1, "admins": 1} and unowned.quorum == 2


def test_explanations_are_capped_but_the_cli_gets_all() -> None:
    rules = "\n".join(
        f"  - {{id: r{i}, match: {{action: 'a{i}.*'}}, require: {{approvers: 1 of dba}}}}" for i in range(150)
    )
    policy = make_policy("rules:\n" + rules + "\n")
    short = policy.evaluate(request(action="zzz"), MONDAY)
    full = policy.evaluate(request(action="zzz"), MONDAY, explain_limit=None)
    assert len(short.explanation) == 102 and "50 more earlier rules" in short.explanation[100]
    assert len(full.explanation) == 151
    assert full.explanation[149] == "✗ r149 (line 163): action 'zzz' does not match 'a149.*'"


def test_explain_text_names_requirement_details(example: Any) -> None:
    text = example.evaluate(request(), MONDAY).explain_text()
    assert "✗ dev-auto" in text and "✓ prod-data-export" in text
    assert "2 of dba" in text and "times out after 1h" in text and "after 30m: add admins" in text


def test_auto_approve_inside_a_window_only() -> None:
    policy = make_policy(
        """
        rules:
          - id: office-hours-reads
            match: {action: "db.read"}
            window: {timezone: UTC, days: [mon], hours: "09:00-17:00"}
            decision: auto_approve
        """
    )
    inside = policy.evaluate(request(action="db.read"), MONDAY)
    outside = policy.evaluate(request(action="db.read"), SATURDAY)
    assert inside.outcome is Outcome.AUTO_APPROVE
    assert outside.outcome is Outcome.AUTO_DENY and outside.rule_id == "office-hours-reads"
