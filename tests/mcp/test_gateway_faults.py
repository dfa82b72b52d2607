"""Faults: the upstream dies mid-call; the client goes away while a call waits (stdio and
HTTP); and the HTTP gateway in front of an HTTP upstream."""

from __future__ import annotations

import asyncio

import pytest

from signoff.models import Status
from tests.conftest import stop_processes
from tests.mcp.conftest import (
    Env,
    calls,
    gateway_config,
    http_session,
    start_http_gateway,
    stdio_gateway,
    text_of,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _wait_status(env: Env, rid: str, want: Status, timeout: float = 20) -> None:
    for _ in range(int(timeout / 0.1)):
        if await asyncio.to_thread(env.status, rid) is want:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{rid} is {env.status(rid)}, wanted {want}")


async def test_upstream_crashing_mid_call_is_an_error_and_it_comes_back(mcp_env: Env) -> None:
    log = mcp_env.tmp / "crash.calls"
    config = gateway_config(mcp_env, "crash", log=log)
    async with stdio_gateway(config) as session:
        call = asyncio.create_task(session.call_tool("crash", {"table": "orders"}))
        rid = await mcp_env.pending_for("mcp.warehouse.crash")
        assert mcp_env.decide(rid, "alice@example.com", "approve").status_code == 200
        result = await asyncio.wait_for(call, 30)
        assert result.is_error and "went away" in text_of(result), text_of(result)
        # The next call reconnects (the gateway starts the upstream again).
        after = await asyncio.wait_for(session.call_tool("count_rows", {"table": "orders"}), 30)
        assert text_of(after) == "120000"
    assert [c["tool"] for c in calls(log)] == ["crash", "count_rows"]


async def test_stdio_client_going_away_cancels_the_request(mcp_env: Env) -> None:
    log = mcp_env.tmp / "gone.calls"
    config = gateway_config(mcp_env, "gone", log=log)
    async with stdio_gateway(config) as session:
        call = asyncio.create_task(session.call_tool("drop_table", {"table": "customers"}))
        rid = await mcp_env.pending_for("mcp.warehouse.drop_table")
        call.cancel()  # the client stops waiting, then closes the gateway's stdin
    await _wait_status(mcp_env, rid, Status.CANCELLED)
    late = mcp_env.decide(rid, "alice@example.com", "approve")
    assert late.status_code == 409  # closed: an approval now changes nothing
    await asyncio.sleep(1)
    assert calls(log) == []


async def test_http_gateway_http_upstream(mcp_env: Env, http_gateway: str,
                                          http_upstream: tuple[str, object]) -> None:
    _, log = http_upstream
    async with http_session(http_gateway) as session:
        tools = {t.name for t in (await session.list_tools()).tools}
        assert "drop_table" in tools
        auto = await asyncio.wait_for(session.call_tool("count_rows", {"table": "orders"}), 20)
        assert text_of(auto) == "120000"
        call = asyncio.create_task(session.call_tool("drop_table", {"table": "orders"}))
        rid = await mcp_env.pending_for("mcp.warehouse.drop_table")
        assert mcp_env.decide(rid, "bob@example.com", "approve").status_code == 200
        result = await asyncio.wait_for(call, 30)
        assert text_of(result) == "dropped orders", text_of(result)
        call = asyncio.create_task(session.call_tool("drop_table", {"table": "customers"}))
        rid2 = await mcp_env.pending_for("mcp.warehouse.drop_table", exclude=(rid,))
        assert mcp_env.decide(rid2, "bob@example.com", "deny", "not today").status_code == 200
        denied = await asyncio.wait_for(call, 30)
        assert denied.is_error and "not today" in text_of(denied)
    assert [c["tool"] for c in calls(log)] == ["count_rows", "drop_table"]


async def test_http_client_going_away_cancels_the_request(mcp_env: Env, http_gateway: str,
                                                          http_upstream: tuple[str, object]
                                                          ) -> None:
    _, log = http_upstream
    async with http_session(http_gateway) as session:
        call = asyncio.create_task(session.call_tool("export_rows",
                                                     {"table": "orders", "rows": 5}))
        rid = await mcp_env.pending_for("mcp.warehouse.export_rows")
        call.cancel()  # sends notifications/cancelled; leaving ends the HTTP session
    await _wait_status(mcp_env, rid, Status.CANCELLED)
    assert mcp_env.decide(rid, "alice@example.com", "approve").status_code == 409
    await asyncio.sleep(1)
    assert calls(log) == []


async def test_http_gateway_with_a_token_refuses_clients_without_it(
        mcp_env: Env, http_upstream: tuple[str, object]) -> None:
    token = "gw-token-0123456789abcdef"
    url, proc = start_http_gateway(mcp_env, http_upstream[0], http_token=token)
    try:
        for wrong in (None, {"Authorization": "Bearer gw-token-0123456789abcdeX"}):
            with pytest.raises(BaseException):  # the client cannot even initialize
                async with http_session(url, wrong) as session:
                    await session.list_tools()
        async with http_session(url, {"Authorization": f"Bearer {token}"}) as session:
            result = await asyncio.wait_for(
                session.call_tool("count_rows", {"table": "orders"}), 20)
            assert text_of(result) == "120000"
    finally:
        stop_processes([proc], 10)


CLIENT = """
import asyncio, sys
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

async def main():
    async with streamable_http_client(sys.argv[1]) as (r, w), ClientSession(r, w) as s:
        await s.initialize()
        print("calling", flush=True)
        await s.call_tool("drop_table", {"table": "customers"})

asyncio.run(main())
"""


async def test_http_client_killed_while_waiting_cancels_the_request(
        mcp_env: Env, http_gateway: str, http_upstream: tuple[str, object]) -> None:
    """The client process dies (no cancel notification, no session DELETE): the gateway sees
    the response stream break and withdraws the request."""
    import subprocess
    import sys

    _, log = http_upstream
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, http_gateway],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        rid = await mcp_env.pending_for("mcp.warehouse.drop_table", timeout=40)
    finally:
        proc.kill()
        proc.wait(10)
    await _wait_status(mcp_env, rid, Status.CANCELLED, timeout=30)
    assert mcp_env.decide(rid, "alice@example.com", "approve").status_code == 409
    assert calls(log) == []
