"""Cancel over the wire (a ``cancel`` stream message) and through the API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from signoff.models import Decision, Status
from signoff.runtime import Runtime
from signoff.sdk import Client
from signoff.tokens import TokenKind
from tests.clock.conftest import request_body, scheduled
from tests.conftest import run_intake, run_jobs


def send_cancel(rt: Runtime, payload: object) -> None:
    raw = payload if isinstance(payload, str) else json.dumps(payload)
    rt.redis.xadd(rt.keys.requests, {"cancel": raw})


def pending(rt: Runtime, rid: str) -> None:
    rt.redis.xadd(rt.keys.requests, {"body": json.dumps(request_body(rid))})
    run_intake(rt)
    run_jobs(rt)
    assert rt.store.status(rid) is Status.PENDING


def reply(rt: Runtime, rid: str) -> Decision:
    raws = rt.redis.lrange(rt.keys.reply(rid), 0, -1)
    assert len(raws) == 1, raws
    return Decision.model_validate_json(raws[0])


def test_agent_cancels_over_the_stream(crt: Runtime) -> None:
    pending(crt, "x-1")
    client = Client(crt.settings.redis_url, requester="agent:bot")
    handle = client.request("db.export", "warehouse.orders", {"rows": 11}, id="x-1b",
                            on_behalf_of="frank@example.com", reason="r")
    run_intake(crt)
    run_jobs(crt)
    handle.cancel("changed my mind")
    send_cancel(crt, {"id": "x-1", "requester": "agent:bot", "reason": "no longer needed"})
    run_intake(crt)
    run_jobs(crt)
    for rid in ("x-1", "x-1b"):
        d = reply(crt, rid)
        assert d.status is Status.CANCELLED and d.grant is None
        record = crt.store.get(rid)
        assert record.status is Status.CANCELLED
        assert not [jid for _t, jid in scheduled(crt) if rid in jid]
        cancelled = [e for e in crt.audit.for_request(rid) if e.event == "cancelled"]
        assert len(cancelled) == 1 and cancelled[0].actor == "agent:bot"
        assert cancelled[0].details["reason_given"] is True
    assert reply(crt, "x-1").reason == "no longer needed"  # the agent gets its reason back
    assert "no longer needed" not in json.dumps(
        [e.to_dict() for e in crt.audit.for_request("x-1")])
    # A card that was posted is refreshed to the final state.
    cards = crt.redis.hgetall(crt.keys.cards("x-1"))
    assert cards and all(json.loads(c)["version"] == crt.store.get("x-1").version
                         for c in cards.values())


def test_only_the_requester_or_its_human_may_cancel(crt: Runtime) -> None:
    pending(crt, "x-2")
    send_cancel(crt, {"id": "x-2", "requester": "agent:other", "reason": "mine now"})
    run_intake(crt)
    assert crt.store.status("x-2") is Status.PENDING
    refused = [e for e in crt.audit.for_request("x-2") if e.event == "cancel_refused"]
    assert len(refused) == 1 and refused[0].actor == "agent:other"
    send_cancel(crt, {"id": "x-2", "requester": "agent:bot"})
    run_intake(crt)
    assert crt.store.status("x-2") is Status.CANCELLED
    send_cancel(crt, {"id": "x-2", "requester": "agent:bot"})  # a second cancel: no change
    run_intake(crt)
    run_jobs(crt)
    assert reply(crt, "x-2").status is Status.CANCELLED
    assert [e.event for e in crt.audit.for_request("x-2")].count("cancelled") == 1


@pytest.mark.parametrize("bad", ["not json", [1, 2], {"id": "bad id!", "requester": "a"},
                                 {"id": "x-3"}, {"id": "x-3", "requester": "a", "reason": 5}])
def test_malformed_cancel_is_dead_lettered(crt: Runtime, bad: object) -> None:
    send_cancel(crt, bad)
    run_intake(crt)
    dead = crt.redis.xrange(crt.keys.dead)
    assert len(dead) == 1 and dead[0][1]["kind"] == "cancel"
    assert crt.redis.xpending(crt.keys.requests, "signoff-intake")["pending"] == 0


def test_cancel_that_overtakes_its_request_cancels_it_on_arrival(crt: Runtime) -> None:
    send_cancel(crt, {"id": "x-4", "requester": "agent:bot", "reason": "abort"})
    run_intake(crt)
    assert crt.store.get("x-4") is None
    crt.redis.xadd(crt.keys.requests, {"body": json.dumps(request_body("x-4"))})
    run_intake(crt)
    run_jobs(crt)
    assert crt.store.status("x-4") is Status.CANCELLED
    assert reply(crt, "x-4").status is Status.CANCELLED
    # ...but not when someone else sent it.
    send_cancel(crt, {"id": "x-5", "requester": "agent:other"})
    run_intake(crt)
    crt.redis.xadd(crt.keys.requests, {"body": json.dumps(request_body("x-5"))})
    run_intake(crt)
    run_jobs(crt)
    assert crt.store.status("x-5") is Status.PENDING


@pytest.fixture
async def server(crt: Runtime) -> AsyncIterator[TestServer]:
    srv = TestServer(create_app(crt), host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


async def test_the_person_it_acts_for_cancels_through_the_api(crt: Runtime,
                                                              server: TestServer) -> None:
    pending(crt, "x-6")
    frank = crt.tokens.create(TokenKind.PERSON, "Frank@example.com")
    alice = crt.tokens.create(TokenKind.PERSON, "alice@example.com")
    async with aiohttp.ClientSession(str(server.make_url(""))) as http:
        async with http.post("/api/v1/requests/x-6/cancel",
                             headers={"Authorization": f"Bearer {alice}"}) as resp:
            assert resp.status == 403
        async with http.post("/api/v1/requests/x-6/cancel",
                             headers={"Authorization": f"Bearer {frank}"}) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post("/api/v1/requests/x-6/cancel",
                             headers={"Authorization": f"Bearer {frank}"}) as resp:
            assert resp.status == 409
    assert crt.store.status("x-6") is Status.CANCELLED
    events = [(e.event, e.actor) for e in crt.audit.for_request("x-6")]
    assert ("cancelled", "frank@example.com") in events
    assert ("cancel_refused", "alice@example.com") in events
