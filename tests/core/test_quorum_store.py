"""The store's atomic vote applies the policy's quorum rule (one slot per person, escalation
stand-ins) exactly as policy.quorum_met does."""

from __future__ import annotations

import json

from signoff import lifecycle
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs
from tests.core.test_smoke_lifecycle import send


def iam_request(rid: str) -> dict:
    return {"id": rid, "action": "iam.grant", "resource": "role/db-reader",
            "params": {"user": "x"}, "requester": "agent:export-bot",
            "on_behalf_of": "frank@example.com", "reason": "onboarding",
            "context": {"environment": "prod"}}


def test_one_person_in_both_groups_fills_one_slot(rt: Runtime) -> None:
    send(rt, iam_request("iam-1"))
    run_intake(rt)
    run_jobs(rt)
    d = rt.policy.directory
    first = lifecycle.submit_vote(rt, "iam-1", d.person("carol@example.com"), "approve")
    assert first.ok and first.code == "recorded"  # carol (secops + dba) is one person
    second = lifecycle.submit_vote(rt, "iam-1", d.person("alice@example.com"), "approve")
    assert second.ok and second.code == "final"


def test_escalated_group_stands_in_for_a_missing_approval(rt: Runtime) -> None:
    body = {"id": "esc-1", "action": "db.export", "resource": "t", "params": {"rows": 1},
            "requester": "agent:deploy-bot", "on_behalf_of": "frank@example.com",
            "reason": "r", "context": {"environment": "prod"}}
    send(rt, body)
    run_intake(rt)
    run_jobs(rt)
    assert json.loads(rt.store.get("esc-1").get("req_stand_in")) == ["admins"]
    d = rt.policy.directory
    assert lifecycle.submit_vote(rt, "esc-1", d.person("alice@example.com"), "approve").ok
    # Before escalation an admin is not eligible; after "add admins" the admin completes it.
    assert not lifecycle.submit_vote(rt, "esc-1", d.person("erin@example.com"), "approve").ok
    rt.store.add_groups("esc-1", ["admins"])
    reply = lifecycle.submit_vote(rt, "esc-1", d.person("erin@example.com"), "approve")
    assert reply.ok and reply.code == "final"
    assert rt.store.status("esc-1") is Status.APPROVED
