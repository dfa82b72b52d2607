"""Attacks on merging: an identical request rides on a pending one only when it is the same
request in everything but its id, and its approval is re-checked for it.

An agent cannot get a request approved by merging it onto a pending one made on behalf of
someone else (a person who voted on it), for another environment (prod onto staging), with
other context or another reason, or matched by another rule. A follower whose leader's
approvers may not decide it (the directory changed meanwhile) is not approved on their votes.
A follower's reply and grant name the people who approved, never the policy.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff import lifecycle
from signoff.grant_check import GrantError, check_grant, unverified_claims
from signoff.models import Status
from signoff.runtime import Runtime, set_current
from tests.conftest import finalize_left_to_the_job, make_settings, run_jobs

POLICY = """
version: 1
directory:
  people:
    - {email: alice@example.com, groups: [dba]}
    - {email: bob@example.com, groups: [dba]}
    - {email: carol@example.com, groups: [dba], aliases: [c.chen@example.com]}
    - {email: frank@example.com}
    - {email: erin@example.com, groups: [admins]}
  groups: {dba: {description: DBAs}, admins: {description: admins}}
  agents:
    - {id: "agent:bot", owner: erin@example.com}
rules:
  - id: staging-export
    match: {action: db.export, environment: staging}
    require: {approvers: 1 of dba, channels: [web]}
  - id: prod-export
    match: {action: db.export, environment: prod}
    require: {approvers: 2 of dba, channels: [web]}
  - id: big-export
    match: {action: db.export}
    when: 'has(params.rows) && int(params.rows) > 1000'
    require: {approvers: 1 of admins, channels: [web]}
default:
  require: {approvers: 1 of dba, channels: [web]}
"""


@pytest.fixture
def mrt(redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    runtime = Runtime(make_settings(redis_url, tmp_path / "data", policy_path=policy))
    set_current(runtime)
    yield runtime
    runtime.close()


def req(rid: str, *, env: str = "staging", obo: str = "frank@example.com",
        ticket: str = "OPS-1", reason: str = "weekly sync", **extra: Any) -> dict[str, Any]:
    return {"id": rid, "action": "db.export", "resource": "warehouse.customers",
            "params": {"rows": 10}, "requester": "agent:bot", "on_behalf_of": obo,
            "reason": reason, "context": {"environment": env, "ticket": ticket}, **extra}


def send(rt: Runtime, *bodies: dict[str, Any]) -> None:
    for b in bodies:
        assert lifecycle.ingest(rt, json.dumps(b)).outcome == "accepted"
    run_jobs(rt)


def vote(rt: Runtime, rid: str, who: str, choice: str = "approve") -> lifecycle.VoteReply:
    reply = lifecycle.submit_vote(rt, rid, rt.policy.directory.person(who), choice)
    run_jobs(rt)
    return reply


def merged_into(rt: Runtime, rid: str) -> str:
    record = rt.store.get(rid)
    assert record is not None
    return record.get("merged_into") or ""


def reply(rt: Runtime, rid: str) -> dict[str, Any]:
    raw = rt.redis.lindex(rt.keys.reply(rid), 0)
    assert raw, f"no reply for {rid}"
    return dict(json.loads(raw))


def test_an_identical_request_merges_and_its_grant_names_the_people(mrt: Runtime) -> None:
    send(mrt, req("m-0"), req("m-1"), req("m-2", env=" Staging "))  # one environment
    assert merged_into(mrt, "m-1") == "m-0" and merged_into(mrt, "m-2") == "m-0"
    assert vote(mrt, "m-0", "alice@example.com").ok
    for rid in ("m-1", "m-2"):
        decision = reply(mrt, rid)
        assert decision["status"] == "approved"
        assert [a["person"] for a in decision["approvers"]] == ["alice@example.com"]
        claims = unverified_claims(decision["grant"])
        assert claims["apr"] == ["alice@example.com"], "people, never policy:<rule>"
        assert claims["rid"] == rid
    # m-1's grant verifies for m-1 only, not for the leader or the other follower.
    grant = reply(mrt, "m-1")["grant"]
    for other in ("m-0", "m-2"):
        with pytest.raises(GrantError) as err:
            check_grant(mrt.redis, mrt.keys, grant, action="db.export", payload=req(other))
        assert err.value.code == "request_mismatch"
    assert check_grant(mrt.redis, mrt.keys, grant, action="db.export", payload=req("m-1"))


@pytest.mark.parametrize("spelling", ["alice@example.com", " Alice@Example.COM ",
                                      "alice@example.com\u200b"])
def test_never_merged_on_behalf_of_someone_who_voted_on_the_leader(mrt: Runtime,
                                                                   spelling: str) -> None:
    send(mrt, req("p-0", env="prod"))
    assert vote(mrt, "p-0", "alice@example.com").ok  # 1 of 2: still pending
    send(mrt, req("p-1", env="prod", obo=spelling))  # the same request, for alice
    assert merged_into(mrt, "p-1") == "", "another on-behalf-of person: its own card"
    assert vote(mrt, "p-0", "bob@example.com").ok
    assert reply(mrt, "p-0")["status"] == "approved"
    follower = mrt.store.get("p-1")
    assert follower is not None and follower.status is Status.PENDING
    assert follower.on_behalf_of == "alice@example.com"
    refused = vote(mrt, "p-1", "alice@example.com")
    assert not refused.ok and refused.code == "on_behalf_of"


def test_an_alias_of_the_person_is_the_same_person(mrt: Runtime) -> None:
    send(mrt, req("a-0", obo="carol@example.com"), req("a-1", obo="C.Chen@example.com"))
    assert merged_into(mrt, "a-1") == "a-0", "one person, one request: merged"
    refused = vote(mrt, "a-0", "carol@example.com")
    assert not refused.ok and refused.code == "on_behalf_of"


@pytest.mark.parametrize("env", ["prod", "PROD", " Prod ", "\uff30\uff32\uff2f\uff24"])
def test_prod_never_rides_on_staging(mrt: Runtime, env: str) -> None:
    send(mrt, req("s-0"), req("s-1", env=env))
    assert merged_into(mrt, "s-1") == ""
    follower = mrt.store.get("s-1")
    assert follower is not None and follower.get("rule_id") == "prod-export"
    assert follower.get("environment") == "prod"
    assert vote(mrt, "s-0", "alice@example.com").ok
    assert reply(mrt, "s-0")["status"] == "approved"
    assert mrt.store.status("s-1") is Status.PENDING, "the staging approval decides no prod"


@pytest.mark.parametrize("change", [
    {"ticket": "OPS-2"},
    {"reason": "something else"},
    {"obo": "grace@example.com"},
    {"context": {"environment": "staging", "ticket": "OPS-1", "model": "x"}},
])
def test_other_context_reason_or_person_never_merges(mrt: Runtime, change: dict) -> None:
    send(mrt, req("c-0"), req("c-1", **change))
    assert merged_into(mrt, "c-1") == ""
    assert vote(mrt, "c-0", "alice@example.com").ok
    assert mrt.store.status("c-1") is Status.PENDING


def test_another_rule_never_merges(mrt: Runtime) -> None:
    leader = req("r-0", params={"rows": 10})
    other = req("r-1", params={"rows": 10})
    send(mrt, leader)
    # The policy changes between the two: the same request now matches another rule.
    path = Path(str(mrt.settings.policy_path))
    path.write_text(POLICY.replace("int(params.rows) > 1000", "int(params.rows) > 5")
                    .replace("  - id: staging-export", "  - id: staging-export-old")
                    .replace("match: {action: db.export, environment: staging}",
                             "match: {action: db.nothing, environment: staging}"))
    assert mrt.policies.reload()
    send(mrt, other)
    assert merged_into(mrt, "r-1") == ""
    assert mrt.store.get("r-1").get("rule_id") == "big-export"


def test_a_follower_its_leaders_approvers_may_not_decide_is_not_approved(mrt: Runtime
                                                                         ) -> None:
    send(mrt, req("d-0", env="prod"), req("d-1", env="prod"))
    assert merged_into(mrt, "d-1") == "d-0"
    assert vote(mrt, "d-0", "alice@example.com").ok
    # Meanwhile the directory changes: alice now owns the agent (its requests are no
    # longer hers to decide). Her vote on the leader stands; it must not approve d-1.
    path = Path(str(mrt.settings.policy_path))
    path.write_text(POLICY.replace('{id: "agent:bot", owner: erin@example.com}',
                                   '{id: "agent:bot", owner: alice@example.com}'))
    assert mrt.policies.reload()
    assert vote(mrt, "d-0", "bob@example.com").ok
    assert reply(mrt, "d-0")["status"] == "approved"
    follower = reply(mrt, "d-1")
    assert follower["status"] == "cancelled" and not follower.get("grant")
    assert "alice@example.com" in follower["reason"] and "agent_owner" in follower["reason"]
    refused = [e for e in mrt.audit.for_request("d-1") if e.event == "merge_refused"]
    assert len(refused) == 1 and refused[0].details["leader"] == "d-0"


def test_a_denied_leader_denies_its_followers_and_a_cancelled_one_cancels(mrt: Runtime
                                                                          ) -> None:
    send(mrt, req("x-0"), req("x-1"))
    assert vote(mrt, "x-0", "alice@example.com", "deny").ok
    assert reply(mrt, "x-1")["status"] == "denied"
    send(mrt, req("y-0", ticket="T"), req("y-1", ticket="T"))
    assert lifecycle.cancel(mrt, "y-0", "agent:bot") == "changed"
    run_jobs(mrt)
    assert reply(mrt, "y-1")["status"] == "cancelled"



def test_a_follower_is_not_denied_by_someone_who_may_no_longer_decide_it(mrt: Runtime
                                                                          ) -> None:
    send(mrt, req("e-0"), req("e-1"))
    assert merged_into(mrt, "e-1") == "e-0"
    d = mrt.policy.directory
    with finalize_left_to_the_job():
        assert lifecycle.submit_vote(mrt, "e-0", d.person("alice@example.com"), "deny",
                                     comment="no").ok
    # Before the follower is settled (the deciding process died before it finalized), alice
    # leaves the directory.
    path = Path(str(mrt.settings.policy_path))
    path.write_text(POLICY.replace("    - {email: alice@example.com, groups: [dba]}\n", ""))
    assert mrt.policies.reload()
    run_jobs(mrt)
    assert reply(mrt, "e-0")["status"] == "denied"
    follower = reply(mrt, "e-1")
    assert follower["status"] == "cancelled"
    assert "alice@example.com denied" in follower["reason"]
    assert "unknown_person" in follower["reason"]
