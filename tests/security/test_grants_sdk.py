"""Attacks on the agent SDK: a decision popped from the reply list counts only when it is for
the request sent (same id, same payload hash, a grant bound to both); anything else raises
``DecisionMismatch`` before anyone reads its status, and a grant verifies only for the handle
whose request was approved.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from signoff.grant_check import GrantError
from signoff.models import Decision as DecisionModel
from signoff.models import Status, payload_sha256
from signoff.runtime import Runtime
from signoff.sdk import AsyncClient, Client, DecisionMismatch, Handle
from tests.conftest import run_intake, run_jobs
from tests.grants.helpers import auto_approved

DEV = {"environment": "dev", "ticket": "OPS-1"}


def client(rt: Runtime) -> Client:
    return Client(connection=redis.Redis.from_url(rt.settings.redis_url),
                  requester="agent:export-bot")


def ask(c: Client, rows: int = 5, **kw: Any) -> Handle:
    return c.request("db.export", "warehouse.customers", {"rows": rows},
                     on_behalf_of="frank@example.com", reason="report",
                     context=kw.pop("context", DEV), **kw)


def forged(rid: str, *, status: Status = Status.APPROVED, psh: str | None = None,
           grant: str | None = None) -> str:
    fields: dict[str, Any] = {"id": rid, "status": status, "approvers": [
        {"person": "alice@example.com", "at": 1.0, "channel": "api"}]}
    if psh is not None:
        fields["payload_sha256"] = psh
    if grant is not None:
        fields["grant"] = grant
    return DecisionModel(**fields).to_json()


def sent_hash(rows: int = 5) -> str:
    return payload_sha256("db.export", "warehouse.customers", {"rows": rows})


def test_a_decision_for_another_id_is_never_an_answer(rt: Runtime) -> None:
    handle = ask(client(rt))
    for status in (Status.APPROVED, Status.DENIED):
        rt.redis.lpush(handle.reply_key, forged("someone-else", status=status,
                                                psh=sent_hash()))
        with pytest.raises(DecisionMismatch, match="someone-else"):
            handle.wait(timeout=5)
        assert handle._decision is None


def test_a_decision_for_another_payload_is_never_an_answer(rt: Runtime) -> None:
    handle = ask(client(rt))
    rt.redis.lpush(handle.reply_key, forged(handle.id, psh=sent_hash(rows=5000)))
    with pytest.raises(DecisionMismatch, match="another payload"):
        handle.wait(timeout=5)
    rt.redis.lpush(handle.reply_key, forged(handle.id))  # an approval naming no payload
    with pytest.raises(DecisionMismatch, match="no payload hash"):
        handle.wait(timeout=5)


def test_an_approval_carrying_another_requests_grant_is_never_an_answer(rt: Runtime) -> None:
    other = auto_approved(rt, "real-other", params={"rows": 5})
    handle = ask(client(rt))
    rt.redis.lpush(handle.reply_key, forged(handle.id, psh=sent_hash(), grant=other.grant))
    with pytest.raises(DecisionMismatch, match="grant"):
        handle.wait(timeout=5)


def test_a_real_approval_runs_once_and_only_for_its_own_handle(rt: Runtime) -> None:
    c = client(rt)
    mine, twin = ask(c), ask(c)  # the same payload twice: two requests, two decisions
    run_intake(rt)
    run_jobs(rt)
    decision = mine.wait(timeout=5)
    assert decision.approved and decision.payload_sha256 == sent_hash()
    # The twin's handle does not accept mine's decision, popped or handed over.
    rt.redis.lpush(twin.reply_key, json.dumps(decision.raw))
    with pytest.raises(DecisionMismatch):
        twin.wait(timeout=5)
    with pytest.raises(GrantError) as err:
        twin.verify_grant(decision)
    assert err.value.code == "request_mismatch"
    # A handle for prod does not take a dev approval of the same payload either.
    prod = ask(c, context={"environment": "prod", "ticket": "OPS-1"}, id=mine.id)
    with pytest.raises(GrantError) as err:
        prod.verify_grant(decision)
    assert err.value.code == "environment_mismatch"
    assert mine.verify_grant(decision)["rid"] == mine.id
    with pytest.raises(GrantError) as err:
        mine.verify_grant(decision)
    assert err.value.code == "already_used"


def test_the_asyncio_handle_checks_the_same(rt: Runtime) -> None:
    async def go() -> None:
        ac = AsyncClient(connection=aioredis.Redis.from_url(rt.settings.redis_url),
                         requester="agent:export-bot")
        try:
            handle = await ac.request("db.export", "warehouse.customers", {"rows": 5},
                                      context=DEV)
            await ac.redis.lpush(handle.reply_key, forged("nope", psh=sent_hash()))
            with pytest.raises(DecisionMismatch):
                await handle.wait(timeout=5)
            other = auto_approved(rt, "real-other-2", params={"rows": 5})
            with pytest.raises(GrantError) as err:
                await handle.verify_grant(other_decision(other))
            assert err.value.code == "request_mismatch"
        finally:
            await ac.aclose()

    asyncio.run(go())


def other_decision(model: DecisionModel) -> Any:
    from signoff.sdk import Decision

    return Decision.from_json(model.to_json())
