"""Generated policies and requests: first match wins, and no match never auto-approves."""

from __future__ import annotations

import fnmatch
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Outcome, parse_policy

from .conftest import DIRECTORY, MONDAY, request

ACTIONS = ["db.export", "db.drop", "iam.grant", "infra.apply", "crm.update", "x"]
GLOBS = ["db.*", "db.export", "*.grant", "iam.?rant", "infra.*", "x*", "*.update", "[cd]*.*", "db.e*"]
ENVS = ["prod", "dev", "staging"]


@st.composite
def rules(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for i in range(draw(st.integers(0, 8))):
        match: dict[str, Any] = {"action": draw(st.sampled_from(GLOBS))}
        if draw(st.booleans()):
            match["environment"] = draw(st.sampled_from(ENVS))
        rule: dict[str, Any] = {"id": f"r{i}", "match": match}
        decision = draw(st.sampled_from(["require_approval", "auto_approve", "auto_deny"]))
        if decision != "require_approval":
            rule["decision"] = decision
        else:
            rule["require"] = {"approvers": "1 of dba"}
        if draw(st.integers(0, 3)) == 0:
            rule["when"] = f"params.rows > {draw(st.integers(0, 10))}"
        out.append(rule)
    return out


def oracle(rules: list[dict[str, Any]], action: str, env: str, rows: int | None) -> tuple[str, str]:
    """The first matching rule by the documented semantics, written independently."""
    for rule in rules:
        match = rule["match"]
        if not fnmatch.fnmatchcase(action, match["action"]):
            continue
        if "environment" in match and match["environment"] != env:
            continue
        decision = rule.get("decision", "require_approval")
        if "when" in rule:
            threshold = int(rule["when"].rsplit(" ", 1)[1])
            if rows is None:  # evaluation error: never approves
                if decision == "auto_approve":
                    continue
                return rule["id"], decision
            if not rows > threshold:
                continue
        return rule["id"], decision
    return "default", "default"


@settings(max_examples=80, deadline=None)
@given(
    rules=rules(),
    default=st.sampled_from([None, "require_approval", "auto_deny"]),
    action=st.sampled_from(ACTIONS),
    env=st.sampled_from(ENVS),
    rows=st.one_of(st.none(), st.integers(0, 12)),
)
def test_first_match_and_never_auto_approve_unmatched(
    rules: list[dict[str, Any]], default: str | None, action: str, env: str, rows: int | None
) -> None:
    doc: dict[str, Any] = {"rules": rules}
    if default is not None:
        doc["default"] = {"decision": default}
        if default == "require_approval":
            doc["default"]["require"] = {"approvers": "1 of admins"}
    policy = parse_policy(DIRECTORY + yaml.safe_dump(doc, sort_keys=False))
    params = {} if rows is None else {"rows": rows}
    ev = policy.evaluate(request(action=action, context={"environment": env}, params=params), MONDAY)
    rule_id, decision = oracle(rules, action, env, rows)
    assert ev.rule_id == rule_id
    if rule_id == "default":
        assert ev.outcome is not Outcome.AUTO_APPROVE
        expected = Outcome.AUTO_DENY if default == "auto_deny" else Outcome.REQUIRE_APPROVAL
        assert ev.outcome is expected
        if expected is Outcome.REQUIRE_APPROVAL:
            assert ev.requirement.groups == {"admins": 1}
    else:
        assert ev.outcome is Outcome(decision)
    # One explanation line per earlier rule, then the match.
    earlier = next((i for i, r in enumerate(rules) if r["id"] == rule_id), len(rules))
    assert len(ev.explanation) == earlier + 1
    assert all(line.startswith("✗ ") for line in ev.explanation[:-1])
    assert ev.explanation[-1].startswith("✓ ")
