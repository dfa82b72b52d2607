"""Flood control: identical pending requests merge onto one card; limits reject clearly."""

from __future__ import annotations

import json

from signoff import lifecycle
from signoff.cardview.view import build_view
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs
from tests.core.test_smoke_lifecycle import export_request, send


def test_twelve_identical_requests_share_one_card_and_one_decision(rt: Runtime) -> None:
    for i in range(12):
        send(rt, export_request(f"same-{i}"))
    send(rt, export_request("other", params={"rows": 1}))
    run_intake(rt)
    run_jobs(rt)
    leader = rt.store.get("same-0")
    assert leader is not None and leader.status is Status.PENDING
    assert build_view(leader).title == "db.export ×12"
    # Approvers see two requests (the ×12 card and the different one), not thirteen.
    assert sorted(rt.store.pending_ids(groups=["dba"])) == ["other", "same-0"]
    cards = [rt.redis.hlen(rt.keys.cards(f"same-{i}")) for i in range(12)]
    assert cards[0] >= 1 and cards[1:] == [0] * 11
    d = rt.policy.directory
    for who in ("alice@example.com", "bob@example.com"):
        assert lifecycle.submit_vote(rt, "same-0", d.person(who), "approve").ok
    run_jobs(rt)
    replies = [json.loads(rt.redis.lpop(rt.keys.reply(f"same-{i}"))) for i in range(12)]
    assert {r["status"] for r in replies} == {"approved"}
    assert all(r["grant"] for r in replies)
    assert len({r["grant"] for r in replies}) == 12  # each its own single-use grant
    assert [a["person"] for a in replies[5]["approvers"]] == ["alice@example.com",
                                                             "bob@example.com"]
    assert rt.store.status("other") is Status.PENDING
    assert rt.redis.xlen(rt.keys.decisions) == 12


def test_follower_of_a_denied_leader_is_denied(rt: Runtime) -> None:
    send(rt, export_request("d-0"))
    send(rt, export_request("d-1"))
    run_intake(rt)
    run_jobs(rt)
    assert rt.store.get("d-1").get("merged_into") == "d-0"
    d = rt.policy.directory
    assert lifecycle.submit_vote(rt, "d-0", d.person("alice@example.com"), "deny",
                                 comment="not this quarter").ok
    run_jobs(rt)
    follower = json.loads(rt.redis.lpop(rt.keys.reply("d-1")))
    assert follower["status"] == "denied"
    assert "d-0" in follower["reason"]


LIMITED_POLICY = """
version: 1
limits:
  rate: 5/min
  per_action_rate: 3/min
  max_pending: 4
directory:
  people:
    - {email: alice@example.com, groups: [dba]}
    - {email: erin@example.com, groups: [admins]}
  groups: {dba: {description: DBAs}, admins: {description: admins}}
  agents:
    - {id: "agent:loud", owner: erin@example.com}
    - id: "agent:bulk"
      owner: erin@example.com
      limits: {rate: 100/min, per_action_rate: 100/min, max_pending: 100}
rules:
  - id: dba
    match: {action: "db.*"}
    require: {approvers: 1 of dba, channels: [web]}
"""


def limited_runtime(redis_url: str, tmp_path) -> Runtime:
    from signoff.runtime import set_current
    from tests.conftest import make_settings

    policy_file = tmp_path / "limited.yaml"
    policy_file.write_text(LIMITED_POLICY)
    runtime = Runtime(make_settings(redis_url, tmp_path / "data", policy_path=policy_file))
    set_current(runtime)
    return runtime


def body(rid: str, agent: str, action: str = "db.read", n: int = 0) -> dict:
    return {"id": rid, "action": action, "resource": "t", "params": {"n": n},
            "requester": agent}


def test_per_action_rate_then_pending_cap_reject_with_clear_codes(redis_url: str,
                                                                   tmp_path) -> None:
    rt = limited_runtime(redis_url, tmp_path)
    for i in range(4):  # 3 db.read allowed, the 4th over the per-action rate
        send(rt, body(f"r{i}", "agent:loud", "db.read", i))
    send(rt, body("w0", "agent:loud", "db.write", 0))  # 5th request: within 5/min
    send(rt, body("w1", "agent:loud", "db.write", 1))  # open = 4 already: the pending cap
    run_intake(rt)
    run_jobs(rt)
    replies = {rid: json.loads(rt.redis.lpop(rt.keys.reply(rid)) or "null")
               for rid in ("r3", "w1")}
    assert replies["r3"]["status"] == "rejected" and replies["r3"]["code"] == "rate_limited"
    assert "3 db.read requests from agent:loud per minute" in replies["r3"]["error"][0]["message"]
    assert replies["w1"]["code"] == "pending_cap"
    assert rt.store.count_pending() == 4
    # The same id again is still one request: no second reply, no second count.
    send(rt, body("r3", "agent:loud", "db.read", 3))
    run_intake(rt)
    run_jobs(rt)
    assert rt.redis.llen(rt.keys.reply("r3")) == 0
    # A decision frees a slot under the cap.
    assert lifecycle.submit_vote(rt, "r0", rt.policy.directory.person("alice@example.com"),
                                 "approve").ok
    assert rt.redis.zcard(rt.keys.open_for_agent("agent:loud")) == 3
    rt.close()


def test_agent_override_raises_its_limits(redis_url: str, tmp_path) -> None:
    rt = limited_runtime(redis_url, tmp_path)
    for i in range(20):
        send(rt, body(f"b{i}", "agent:bulk", "db.read", i))
    run_intake(rt)
    run_jobs(rt)
    assert rt.store.count_pending() == 20
    rt.close()


def test_policy_check_names_a_bad_rate() -> None:
    from policy import PolicyError, parse_policy

    bad = LIMITED_POLICY.replace("rate: 5/min", "rate: five per minute")
    try:
        parse_policy(bad)
    except PolicyError as exc:
        text = str(exc)
        assert "limits.rate" in text or "rate" in text
        assert "60/min" in text or "rate like" in text
    else:
        raise AssertionError("a bad rate was accepted")
