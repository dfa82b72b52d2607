"""One request through the real intake, a real rq worker and the lifecycle, in-process."""

from __future__ import annotations

import json

import pytest

from signoff import audit, lifecycle
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs


def send(rt: Runtime, body: dict | str | bytes) -> None:
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    rt.redis_bytes.xadd(rt.keys.requests, {"body": raw})


def export_request(rid: str = "r1", **over: object) -> dict:
    body = {
        "id": rid, "action": "db.export", "resource": "warehouse.customers",
        "params": {"rows": 5000, "notify": "jane.doe@example.org", "api_key": "sk_live_abcdef0123456789abcdef"},
        "requester": "agent:export-bot", "on_behalf_of": "frank@example.com",
        "reason": "quarterly revenue report", "context": {"environment": "prod", "ticket": "OPS-1"},
    }
    body.update(over)
    return body


def test_prod_export_needs_two_dbas_and_replies_once(rt: Runtime) -> None:
    send(rt, export_request())
    assert run_intake(rt) == 1
    run_jobs(rt)
    rec = rt.store.get("r1")
    assert rec is not None and rec.status is Status.PENDING
    masked = json.dumps(rec.json("masked"))
    assert "sk_live_abcdef0123456789abcdef" not in masked
    assert "jane.doe@example.org" not in masked
    # The rule's profile gives DBAs a partial view; secrets stay redacted even there.
    partial = json.dumps(rec.json("masked_partial"))
    assert rec.json("partial_groups") == ["dba"]
    assert "sk_live_abcdef0123456789abcdef" not in partial
    d = rt.policy.directory
    r1 = lifecycle.submit_vote(rt, "r1", d.person("alice@example.com"), "approve")
    assert r1.ok and r1.code == "recorded"
    again = lifecycle.submit_vote(rt, "r1", d.person("alice@example.com"), "approve")
    assert not again.ok and again.code == "already_voted"
    r2 = lifecycle.submit_vote(rt, "r1", d.person("bob@example.com"), "approve")
    assert r2.ok and r2.code == "final"
    run_jobs(rt)
    replies = rt.redis.lrange(rt.keys.reply("r1"), 0, -1)
    assert len(replies) == 1
    decision = json.loads(replies[0])
    assert decision["status"] == "approved"
    assert [a["person"] for a in decision["approvers"]] == ["alice@example.com", "bob@example.com"]
    assert decision["grant"]
    assert rt.redis.xlen(rt.keys.decisions) == 1
    # A late third vote changes nothing and says why.
    late = lifecycle.submit_vote(rt, "r1", d.person("carol@example.com"), "approve")
    assert not late.ok and late.code == "closed"


def test_requester_principal_cannot_approve(rt: Runtime) -> None:
    send(rt, export_request("r2", on_behalf_of="alice@example.com"))
    run_intake(rt)
    run_jobs(rt)
    d = rt.policy.directory
    reply = lifecycle.submit_vote(rt, "r2", d.person("alice@example.com"), "approve")
    assert not reply.ok
    assert rt.store.get("r2").votes == {}


def test_dev_is_auto_approved(rt: Runtime) -> None:
    send(rt, export_request("r3", context={"environment": "dev"}))
    run_intake(rt)
    run_jobs(rt)
    decision = json.loads(rt.redis.lpop(rt.keys.reply("r3")))
    assert decision["status"] == "approved"
    assert decision["grant"]


def test_a_decision_and_its_grant_share_one_checkpoint_signed_before_the_reply(
        rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """The final vote's entries (decided, grant issued) are covered by one signed checkpoint,
    and it exists before the agent's reply is written: cutting the decision from the log
    afterwards always breaks a signed tree head."""
    assert rt.settings.audit_checkpoint_per_decision
    send(rt, export_request("r-seal"))
    run_intake(rt)
    run_jobs(rt)
    d = rt.policy.directory
    assert lifecycle.submit_vote(rt, "r-seal", d.person("alice@example.com"), "approve").ok
    before = audit.checkpoints(rt.redis, rt.keys)
    seen_at_reply: list[list[audit.Checkpoint]] = []
    deliver = rt.store.deliver

    def watching(*args: object, **kwargs: object) -> bool:
        seen_at_reply.append(audit.checkpoints(rt.redis, rt.keys))
        return deliver(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(rt.store, "deliver", watching)
    assert lifecycle.submit_vote(rt, "r-seal", d.person("bob@example.com"), "approve").code \
        == "final"
    entries = {e.event: e for e in rt.audit.for_request("r-seal")}
    grant_seq = entries["grant_issued"].seq
    assert entries["decided"].seq < grant_seq
    after = audit.checkpoints(rt.redis, rt.keys)
    assert len(after) == len(before) + 1, "one checkpoint for the decision and its grant"
    assert seen_at_reply and seen_at_reply[0][-1].seq >= grant_seq
    assert audit.verify_store(rt).ok
