"""Attacks on identity matching: one person, agent or environment in another spelling
(case, surrounding spaces, invisible characters, full-width letters, a directory alias) is
the same one everywhere: separation of duties, flood limits, policy rules (an auto-deny rule
on the environment), listings, cancels and the directory lookup.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from policy import RefusalCode, parse_policy
from policy.identity import canonical, canonical_environment, canonical_person
from signoff import lifecycle
from signoff.models import Status
from signoff.runtime import Runtime, set_current
from tests.conftest import make_settings, run_jobs

POLICY = """
version: 1
limits: {rate: 3/min, max_pending: 50}
directory:
  people:
    - {email: alice@example.com, groups: [dba]}
    - {email: frank@example.com, groups: [dba], aliases: [f.fischer@example.com]}
    - {email: erin@example.com, groups: [dba]}
  groups: {dba: {description: DBAs}}
  agents:
    - {id: "agent:bot", owner: erin@example.com}
    - id: "Agent:Bulk"
      owner: erin@example.com
      limits: {rate: 100/min}
rules:
  - id: no-prod-deletes
    match: {action: db.delete, environment: prod}
    decision: auto_deny
    reason: Production deletes are never allowed.
  - id: staging-upper
    match: {action: db.drop, environment: STAGING}
    decision: auto_deny
    reason: written in upper case in the policy
  - id: ctx-env
    match: {action: db.truncate, context: {environment: Prod}}
    decision: auto_deny
    reason: matched through a context matcher
  - id: dev-auto
    match: {environment: dev}
    decision: auto_approve
default:
  require: {approvers: 1 of dba, channels: [web]}
"""

# Spellings of one identity that differ byte for byte.
SPACES = " {} "
VARIANTS = [str.upper, str.title, SPACES.format, lambda s: s + "\u200b",
            lambda s: "\u2060" + s.upper()]


@pytest.fixture
def irt(redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    runtime = Runtime(make_settings(redis_url, tmp_path / "data", policy_path=policy))
    set_current(runtime)
    yield runtime
    runtime.close()


def body(rid: str, *, requester: str = "agent:bot", obo: str | None = "frank@example.com",
         env: Any = "staging", action: str = "db.export", n: int = 0) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "action": action, "resource": "warehouse.t",
                           "params": {"n": n}, "requester": requester,
                           "context": {"environment": env}}
    if obo is not None:
        out["on_behalf_of"] = obo
    return out


def send(rt: Runtime, b: dict[str, Any]) -> str:
    result = lifecycle.ingest(rt, json.dumps(b))
    run_jobs(rt)
    return result.outcome


def refusal(rt: Runtime, rid: str, who: str) -> str:
    reply = lifecycle.submit_vote(rt, rid, rt.policy.directory.person(who), "approve")
    assert not reply.ok, f"{who} was allowed to decide {rid}"
    return reply.code


def test_one_rule_for_every_kind_of_identity() -> None:
    for variant in VARIANTS:
        assert canonical(variant("Frank@Example.com")) == "frank@example.com"
        assert canonical_environment(variant("prod")) == "prod"
    assert canonical_environment("\uff30\uff32\uff2f\uff24") == "prod"  # full-width PROD
    assert canonical_environment(7) is None
    directory = parse_policy(POLICY).directory
    assert canonical_person(" F.Fischer@EXAMPLE.com", directory) == "frank@example.com"
    assert directory.person("F.FISCHER@example.com\u200b").id == "frank@example.com"
    assert directory.agent(" AGENT:BULK ").id == "Agent:Bulk"


@pytest.mark.parametrize("spelling", [v("frank@example.com") for v in VARIANTS]
                         + ["f.fischer@example.com", " F.Fischer@Example.COM "])
def test_on_behalf_of_in_any_spelling_is_that_person(irt: Runtime, spelling: str) -> None:
    send(irt, body("o-1", obo=spelling))
    record = irt.store.get("o-1")
    assert record is not None and record.status is Status.PENDING
    assert record.on_behalf_of == "frank@example.com"
    assert refusal(irt, "o-1", "frank@example.com") == RefusalCode.ON_BEHALF_OF.value
    # Listed as frank's, whatever the spelling the agent used.
    assert "o-1" in irt.store.mine("frank@example.com")
    # The person it acts for may cancel it, in any spelling of theirs.
    assert lifecycle.cancel(irt, "o-1", "F.FISCHER@example.com ") == "changed"


@pytest.mark.parametrize("spelling", [v("agent:bot") for v in VARIANTS])
def test_the_requesting_agent_in_any_spelling_is_that_agent(irt: Runtime, spelling: str
                                                            ) -> None:
    send(irt, body("g-1", requester=spelling))
    record = irt.store.get("g-1")
    assert record is not None and record.requester == "agent:bot"
    assert refusal(irt, "g-1", "erin@example.com") == RefusalCode.AGENT_OWNER.value
    assert lifecycle.cancel(irt, "g-1", "AGENT:BOT") == "changed"


def test_agent_spellings_share_one_flood_limit(irt: Runtime) -> None:
    spellings = ["agent:bot", "Agent:Bot", " AGENT:BOT ", "agent:bot\u200b", "aGeNt:BoT"]
    outcomes = [send(irt, body(f"f-{i}", requester=s, n=i)) for i, s in enumerate(spellings)]
    assert outcomes[:3] == ["accepted"] * 3
    assert outcomes[3:] == ["rejected"] * 2
    answer = json.loads(irt.redis.lindex(irt.keys.reply("f-4"), 0))
    assert answer["code"] == "rate_limited" and "agent:bot" in answer["error"][0]["message"]
    assert irt.redis.zcard(irt.keys.open_for_agent("agent:bot")) == 3


def test_an_agents_own_limits_apply_in_any_spelling(irt: Runtime) -> None:
    for i, s in enumerate(["agent:bulk", "AGENT:BULK", "Agent:Bulk"] * 2):
        assert send(irt, body(f"b-{i}", requester=s, n=i)) == "accepted"


@pytest.mark.parametrize("env", ["prod", "PROD", " Prod ", "prod\u200b",
                                 "\uff30\uff32\uff2f\uff24"])
def test_an_auto_deny_rule_on_the_environment_cannot_be_dodged(irt: Runtime, env: str) -> None:
    send(irt, body("d-1", env=env, action="db.delete"))
    record = irt.store.get("d-1")
    assert record is not None and record.status is Status.DENIED
    assert record.get("rule_id") == "no-prod-deletes"
    assert record.get("environment") == "prod"
    send(irt, body("d-2", env=env, action="db.truncate"))
    assert irt.store.get("d-2").get("rule_id") == "ctx-env", "context matchers too"


def test_a_rule_written_in_another_case_matches(irt: Runtime) -> None:
    send(irt, body("u-1", env="staging", action="db.drop"))
    assert irt.store.status("u-1") is Status.DENIED


def test_an_auto_approve_rule_reads_the_same_environment(irt: Runtime) -> None:
    send(irt, body("v-1", env=" DEV "))
    assert irt.store.status("v-1") is Status.APPROVED
    grant = json.loads(irt.redis.lindex(irt.keys.reply("v-1"), 0))["grant"]
    from signoff.grant_check import unverified_claims

    assert unverified_claims(grant)["env"] == "dev"


def test_a_vote_in_another_spelling_is_one_vote(irt: Runtime) -> None:
    send(irt, body("w-1", obo=None, env="staging"))
    d = irt.policy.directory
    first = lifecycle.submit_vote(irt, "w-1", d.person(" ALICE@example.com "), "deny")
    assert first.ok
    assert irt.store.get("w-1").status is Status.DENIED
    assert list(irt.store.get("w-1").votes) == ["alice@example.com"]


def test_aliases_are_checked_when_the_policy_is_loaded() -> None:
    from policy import PolicyError

    bad = POLICY.replace("aliases: [f.fischer@example.com]", "aliases: [Alice@Example.com]")
    with pytest.raises(PolicyError, match=r"alias 'Alice@Example\.com' is already used"):
        parse_policy(bad)


@pytest.mark.parametrize(("condition", "wanted"), [
    ('environment == "PROD"', "'prod'"),
    ("'Prod' == request.context.environment", "'prod'"),
    ('requester != "Agent:Bot"', "'agent:bot'"),
    ('on_behalf_of in ["frank@example.com", "F.Fischer@example.com"]', "'frank@example.com'"),
])
def test_a_condition_that_could_never_match_a_canonical_request_is_refused(
        condition: str, wanted: str) -> None:
    from policy import PolicyError

    text = POLICY.replace("    match: {action: db.delete, environment: prod}\n",
                          f"    match: {{action: db.delete}}\n    when: '{condition}'\n"
                          if "'" not in condition else
                          f"    match: {{action: db.delete}}\n    when: \"{condition}\"\n")
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    assert f"write {wanted}" in str(err.value)
    ok = text.replace(condition, condition.replace("PROD", "prod").replace("Prod", "prod")
                      .replace("Agent:Bot", "agent:bot")
                      .replace('"F.Fischer@example.com"', '"x@example.com"'))
    parse_policy(ok)
