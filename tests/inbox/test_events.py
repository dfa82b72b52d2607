"""Server-sent events: changes published on the events channel reach signed-in pages."""

from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp.test_utils import TestServer

from bot.inbox.context import INBOX
from bot.inbox.events import clean
from signoff.runtime import Runtime
from tests.inbox.conftest import client, export_body, make_pending, sign_in


async def next_event(resp: aiohttp.ClientResponse, timeout: float = 5.0) -> dict:
    """The next ``change`` event's data from an SSE response."""
    async def _read() -> dict:
        event = None
        while True:
            line = (await resp.content.readline()).decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "change":
                return json.loads(line[6:])
    return await asyncio.wait_for(_read(), timeout)


async def wait_subscribed(server: TestServer) -> None:
    hub = server.app[INBOX].hub
    await asyncio.wait_for(hub.connected.wait(), 5)
    for _ in range(100):
        if hub.queues:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the page never subscribed")


async def test_changes_reach_open_pages(rt: Runtime, server: TestServer) -> None:
    make_pending(rt, export_body("exp-e"))
    async with client(server) as watcher, client(server) as voter:
        await sign_in(watcher, "bob@example.com")
        token = await sign_in(voter, "alice@example.com")
        async with watcher.get("/inbox/events") as stream:
            assert stream.status == 200
            assert stream.headers["Content-Type"].startswith("text/event-stream")
            assert stream.headers["Cache-Control"] == "no-store"
            await wait_subscribed(server)
            # What the web messenger publishes from the worker (here: straight on the channel,
            # with a field that must not be relayed), and junk that must be dropped.
            rt.redis.publish(rt.keys.events, "not json")
            rt.redis.publish(rt.keys.events, json.dumps(
                {"event": "updated", "id": "exp-e", "version": 7, "status": "pending",
                 "extra": "dropped"}))
            data = await next_event(stream)
            assert data == {"event": "updated", "id": "exp-e", "version": 7, "status": "pending"}
            # A vote in the inbox announces itself at once.
            async with voter.post("/inbox/r/exp-e/decide", data={"csrf": token,
                                                                 "choice": "approve"},
                                  allow_redirects=False) as resp:
                assert resp.status == 303
            data = await next_event(stream)
            assert data["id"] == "exp-e" and data["status"] == "pending"
            assert data["version"] == rt.store.get("exp-e").version


async def test_signing_out_ends_the_stream(rt: Runtime, server: TestServer,
                                          monkeypatch) -> None:
    from bot.inbox import web as inbox_web

    monkeypatch.setattr(inbox_web, "HEARTBEAT_SECONDS", 0.2)
    async with client(server) as http:
        token = await sign_in(http, "carol@example.com")
        async with http.get("/inbox/events") as stream:
            await wait_subscribed(server)
            async with http.post("/inbox/logout", data={"csrf": token},
                                 allow_redirects=False) as resp:
                assert resp.status == 303
            # At its next heartbeat the stream finds the session gone and ends by itself.
            rest = await asyncio.wait_for(stream.content.read(), 5)
            assert b"event: change" not in rest
        assert not server.app[INBOX].hub.queues


def test_clean_keeps_only_announced_fields() -> None:
    assert clean('{"id": "a", "version": 2, "status": "approved", "params": {"x": 1}}') == {
        "id": "a", "version": 2, "status": "approved"}
    assert clean("[1, 2]") is None and clean('{"version": 1}') is None and clean(b"\xff") is None
