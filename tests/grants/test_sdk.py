"""The agent's side: @requires_approval verifies and consumes the grant before running."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from signoff import grants
from signoff.grant_check import GrantError, unverified_claims
from signoff.runtime import Runtime
from signoff.sdk import AsyncClient, Client, Decision, Handle, requires_approval
from tests.conftest import run_intake, run_jobs
from tests.grants.helpers import auto_approved, events


def drive_until_done(rt: Runtime, thread: threading.Thread, timeout: float = 30) -> None:
    """Run intake and jobs here (rq wants the main thread) while the agent waits there."""
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        run_intake(rt)
        run_jobs(rt)
        thread.join(0.05)
    assert not thread.is_alive(), "the agent never got its decision"


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except Exception as exc:
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_decorator_runs_the_approved_call_once(rt: Runtime) -> None:
    client = Client(connection=redis.Redis.from_url(rt.settings.redis_url),
                    requester="agent:export-bot")
    ran: list[int] = []

    @requires_approval("db.export", client=client, resource="warehouse.customers",
                       context={"environment": "dev"}, timeout=30)
    def export(rows: int, columns: list[str]) -> int:
        ran.append(rows)
        return rows

    thread, out = in_thread(lambda: export(5000, ["id", "email"]))
    drive_until_done(rt, thread)
    assert out == {"value": 5000} and ran == [5000]
    grants.fold_reports(rt)
    used = events(rt, "grant_used")
    assert len(used) == 1 and used[0].details["verified"] is True


def test_decorator_refuses_a_grant_for_another_request(rt: Runtime,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    other = auto_approved(rt, "sdk-other", params={"rows": 10, "columns": ["id"]})
    client = Client(connection=redis.Redis.from_url(rt.settings.redis_url),
                    requester="agent:export-bot")
    # The agent is handed another request's approval (even one for the same payload): it is
    # bound to that request's id and context, so nothing runs on it.
    monkeypatch.setattr(Handle, "wait", lambda self, timeout=300: Decision.from_json(
        other.model_dump_json()))
    ran: list[int] = []

    @requires_approval("db.export", client=client, resource="warehouse.customers", timeout=5)
    def export(rows: int, columns: list[str]) -> int:
        ran.append(rows)
        return rows

    for rows in (10000, 10):
        with pytest.raises(GrantError) as err:
            export(rows, ["id"])
        assert err.value.code == "request_mismatch"
    assert ran == []
    assert not rt.redis.exists(rt.keys.grant_used(unverified_claims(other.grant)["jti"]))


def test_async_decorator_verifies_too(rt: Runtime) -> None:
    ran: list[int] = []

    async def agent() -> int:
        client = AsyncClient(connection=aioredis.Redis.from_url(rt.settings.redis_url),
                             requester="agent:export-bot")

        @requires_approval("db.export", client=client, resource="warehouse.customers",
                           context={"environment": "dev"}, timeout=30)
        async def export(rows: int) -> int:
            ran.append(rows)
            return rows

        try:
            return await export(7)
        finally:
            await client.aclose()

    thread, out = in_thread(lambda: asyncio.run(agent()))
    drive_until_done(rt, thread)
    assert out == {"value": 7} and ran == [7]
    assert rt.redis.keys(rt.keys.grant_used("*"))
