"""Fixtures for passkey step-up: the step-up policy, a public URL on localhost (WebAuthn's
RP ID must be a host name), enrolment with the software authenticator, pending requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signoff import lifecycle, passkeys
from signoff.models import Status
from signoff.runtime import Runtime
from signoff.settings import Settings
from tests.conftest import make_settings
from tests.inbox.conftest import shared_masker
from tests.stepup.authenticator import SoftAuthenticator

POLICY = Path(__file__).parent / "policy.yaml"
PUBLIC_URL = "http://localhost:8765"
ORIGIN = PUBLIC_URL
RP_ID = "localhost"


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", policy_path=POLICY,
                         public_url=PUBLIC_URL)


def drop_body(rid: str, table: str = "orders") -> dict[str, Any]:
    """A request the prod-drop rule covers (1 of dba, passkey within 2m)."""
    return {"id": rid, "action": "db.drop", "resource": f"prod.{table}",
            "params": {"table": table}, "requester": "agent:ops-bot",
            "on_behalf_of": "frank@example.com", "reason": "cleanup",
            "context": {"environment": "prod"}}


def make_pending(rt: Runtime, *bodies: dict[str, Any]) -> None:
    """Ingest and prepare with the real lifecycle; queued jobs dropped."""
    rt.__dict__["masker"] = shared_masker()
    for body in bodies:
        assert lifecycle.ingest(rt, json.dumps(body)).outcome == "accepted"
        assert lifecycle.prepare(rt, body["id"]) == "pending"
        record = rt.store.get(body["id"])
        assert record is not None and record.status is Status.PENDING
    rt.queue.empty()


def enrol(rt: Runtime, person: str, name: str = "laptop",
          confirm_with: SoftAuthenticator | None = None) -> SoftAuthenticator:
    """Register a software passkey for ``person`` through the real ceremony (a second one is
    confirmed with ``confirm_with``, one of the person's passkeys)."""
    device = SoftAuthenticator(ORIGIN, RP_ID)
    ceremony, raw = passkeys.begin_enrolment(rt, person)
    options = json.loads(raw)
    confirm = options.pop("confirm", None)
    confirmation = confirm_with.get(confirm) if confirm and confirm_with else None
    passkeys.finish_enrolment(rt, person, ceremony, device.create(options), name,
                              confirmation)
    return device


def assertion(rt: Runtime, device: SoftAuthenticator, rid: str, person: str, choice: str,
              **kwargs: Any) -> dict[str, Any]:
    """A step-up assertion from ``device`` for ``person`` to ``choice`` request ``rid``."""
    result = lifecycle.step_up_options(rt, rid, rt.policy.directory.person(person), choice)
    assert isinstance(result, tuple), result
    return device.get(json.loads(result[0]), **kwargs)
