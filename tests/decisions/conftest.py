"""Fixtures for deciding less often and better: the decisions policy, requests made pending
with the real lifecycle, person tokens, and helpers that read replies and the audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signoff import lifecycle
from signoff.models import Status
from signoff.runtime import Runtime
from signoff.settings import Settings
from signoff.tokens import TokenKind
from tests.conftest import bearer, make_settings, run_intake, run_jobs
from tests.inbox.conftest import shared_masker

POLICY = Path(__file__).parent / "policy.yaml"


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """The decisions policy, copied (a test may change it and reload), with a public URL on
    localhost (the passkey rule's votes need one)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text())
    return make_settings(redis_url, tmp_path / "data", policy_path=policy,
                         public_url="http://localhost:8765")


def change_policy(rt: Runtime, old: str, new: str) -> None:
    """Edit the running policy file and reload it."""
    path = rt.settings.policy_path
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    assert rt.policies.reload()


def export(rid: str, **over: Any) -> dict[str, Any]:
    """A db.export the `export` rule covers (2 of dba, standing up to 4h, rows editable)."""
    body: dict[str, Any] = {
        "id": rid, "action": "db.export", "resource": "warehouse.orders",
        "params": {"rows": 5000, "format": "csv"}, "requester": "agent:etl-bot",
        "on_behalf_of": "erin@example.com", "reason": "nightly report",
        "context": {"environment": "prod", "ticket": "OPS-7"}}
    body.update(over)
    return body


def make_pending(rt: Runtime, *bodies: dict[str, Any]) -> list[str]:
    """Ingest and prepare with the real lifecycle; queued jobs dropped. Returns the outcomes
    of prepare."""
    rt.__dict__["masker"] = shared_masker()
    out = []
    for body in bodies:
        assert lifecycle.ingest(rt, json.dumps(body)).outcome == "accepted"
        out.append(lifecycle.prepare(rt, body["id"]))
    rt.queue.empty()
    return out


def pending(rt: Runtime, rid: str) -> bool:
    record = rt.store.get(rid)
    return record is not None and record.status is Status.PENDING


def reply(rt: Runtime, rid: str) -> dict[str, Any]:
    """Run the queued jobs and pop the agent's reply."""
    run_jobs(rt)
    raw = rt.redis.lpop(rt.keys.reply(rid))
    assert raw, f"no reply for {rid}"
    return json.loads(raw)


def events(rt: Runtime, rid: str, kind: str) -> list[Any]:
    return [e for e in rt.audit.for_request(rid) if e.event == kind]


@pytest.fixture
def tokens(rt: Runtime) -> dict[str, dict[str, str]]:
    """Bearer headers per person (and the agent)."""
    out = {name: bearer(rt.tokens.create(TokenKind.PERSON, f"{name}@example.com"))
           for name in ("alice", "bob", "carol", "dave", "frank", "erin")}
    out["agent"] = bearer(rt.tokens.create(TokenKind.AGENT, "agent:etl-bot"))
    return out


__all__ = ["change_policy", "events", "export", "make_pending", "pending", "reply", "run_intake", "run_jobs"]
