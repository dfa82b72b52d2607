"""Shared helpers for the grant tests: approved requests through the real lifecycle."""

from __future__ import annotations

import json
from typing import Any

from signoff import lifecycle
from signoff.models import Decision
from signoff.runtime import Runtime
from tests.conftest import run_jobs

PARAMS = {"rows": 5000, "columns": ["id", "email"], "notify": "jane@example.org"}


def body(rid: str, *, env: str = "dev", params: Any = None, action: str = "db.export",
         resource: str = "warehouse.customers", **extra: Any) -> dict[str, Any]:
    return {"id": rid, "action": action, "resource": resource,
            "params": PARAMS if params is None else params, "requester": "agent:export-bot",
            "on_behalf_of": "frank@example.com", "reason": "quarterly report",
            "context": {"environment": env, "ticket": "OPS-1"}, **extra}


def reply(rt: Runtime, rid: str) -> Decision:
    raw = rt.redis.lindex(rt.keys.reply(rid), 0)
    assert raw, f"no reply for {rid}"
    return Decision.model_validate_json(raw)


def auto_approved(rt: Runtime, rid: str = "g-1", **kw: Any) -> Decision:
    """A dev request: the example policy approves it automatically and a grant is issued."""
    result = lifecycle.ingest(rt, json.dumps(body(rid, **kw)))
    assert result.outcome == "accepted", result
    run_jobs(rt)
    decision = reply(rt, rid)
    assert decision.status.value == "approved" and decision.grant
    return decision


def human_approved(rt: Runtime, rid: str = "h-1", **kw: Any) -> Decision:
    """A prod export approved by two DBAs (alice, bob)."""
    lifecycle.ingest(rt, json.dumps(body(rid, env="prod", **kw)))
    run_jobs(rt)
    d = rt.policy.directory
    for who in ("alice@example.com", "bob@example.com"):
        assert lifecycle.submit_vote(rt, rid, d.person(who), "approve").ok
    run_jobs(rt)
    decision = reply(rt, rid)
    assert decision.status.value == "approved" and decision.grant
    return decision


def events(rt: Runtime, name: str, rid: str | None = None) -> list[Any]:
    return [e for e in rt.audit.entries() if e.event == name
            and (rid is None or e.request_id == rid)]
