"""Flood control: identical pending requests merge onto one card; limits reject clearly."""

from __future__ import annotations

import json

from bot.cards.view import build_view
from signoff import lifecycle
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
