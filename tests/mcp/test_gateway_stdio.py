"""The gateway end to end over stdio: the MCP SDK's client starts ``signoff mcp`` as its
server; the gateway starts the warehouse MCP server as its upstream; people decide through
Signoff's HTTP API."""

from __future__ import annotations

import asyncio
import json

import pytest

from signoff.models import Status
from signoff.sdk import Client
from tests.mcp.conftest import AGENT, AGENT_NAME, Env, calls, gateway_config, stdio_gateway, text_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DROP = "mcp.warehouse.drop_table"


async def test_tools_listed_and_read_only_call_auto_approved(mcp_env: Env) -> None:
    log = mcp_env.tmp / "auto.calls"
    config = gateway_config(mcp_env, "auto", log=log)
    async with stdio_gateway(config) as session:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"count_rows", "drop_table", "export_rows", "crash"} <= set(tools)
        assert tools["drop_table"].annotations.destructive_hint is True  # passed through
        result = await asyncio.wait_for(session.call_tool("count_rows", {"table": "customers"}),
                                        20)
        assert not result.is_error, text_of(result)
        assert text_of(result) == "5000"
    assert [c["tool"] for c in calls(log)] == ["count_rows"]


async def test_auto_approved_without_local_policy_goes_through_signoff(mcp_env: Env) -> None:
    log = mcp_env.tmp / "auto-remote.calls"
    config = gateway_config(mcp_env, "auto-remote", log=log, local_policy=False)
    async with stdio_gateway(config) as session:
        result = await asyncio.wait_for(session.call_tool("count_rows", {"table": "orders"}), 30)
        assert text_of(result) == "120000"
        rid = result.meta  # an allowed call carries the upstream's result unchanged
        assert rid is None
    assert [c["tool"] for c in calls(log)] == ["count_rows"]


async def test_destructive_call_waits_for_approval_then_runs(mcp_env: Env) -> None:
    log = mcp_env.tmp / "approved.calls"
    config = gateway_config(mcp_env, "approved", log=log)
    progress: list[str] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")

    async with stdio_gateway(config) as session:
        call = asyncio.create_task(session.call_tool("drop_table", {"table": "customers"},
                                                     progress_callback=on_progress))
        rid = await mcp_env.pending_for(DROP)
        record = mcp_env.rt.store.get(rid, with_votes=False)
        assert record is not None
        shown = record.json("masked")  # what the card shows
        assert shown["context"]["mcp"]["annotations"]["destructiveHint"] is True
        assert shown["context"]["mcp"]["description"].startswith("Drop a table")
        assert shown["resource"] == "customers"  # resource_argument: table
        assert record.get("rule_id") == "mcp-destructive"
        await asyncio.sleep(1.2)
        assert calls(log) == []  # nothing runs before the decision
        assert mcp_env.decide(rid, "alice@example.com", "approve").status_code == 200
        result = await asyncio.wait_for(call, 30)
        assert not result.is_error, text_of(result)
        assert text_of(result) == "dropped customers"
    assert any(mcp_env.agent_id(rid) in m for m in progress), progress  # kept alive with progress notifications
    assert [c["tool"] for c in calls(log)] == ["drop_table"]


async def test_denied_call_returns_the_reason_and_never_runs(mcp_env: Env) -> None:
    log = mcp_env.tmp / "denied.calls"
    config = gateway_config(mcp_env, "denied", log=log)
    async with stdio_gateway(config) as session:
        call = asyncio.create_task(session.call_tool("drop_table", {"table": "orders"}))
        rid = await mcp_env.pending_for(DROP)
        reply = mcp_env.decide(rid, "alice@example.com", "deny", "orders feed the invoices")
        assert reply.status_code == 200, reply.text
        result = await asyncio.wait_for(call, 30)
        assert result.is_error
        assert "orders feed the invoices" in text_of(result)
        assert mcp_env.agent_id(rid) in text_of(result)
        assert "did not run" in text_of(result)
    assert calls(log) == []


async def test_timed_out_call_returns_an_error_not_a_hang(mcp_env: Env) -> None:
    log = mcp_env.tmp / "timeout.calls"
    config = gateway_config(mcp_env, "timeout", log=log)
    async with stdio_gateway(config) as session:
        result = await asyncio.wait_for(
            session.call_tool("export_rows", {"table": "orders", "rows": 7}), 60)
        assert result.is_error
        assert "timed out" in text_of(result)
    assert calls(log) == []


async def test_pending_result_then_the_same_call_retried_picks_up_the_decision(
        mcp_env: Env) -> None:
    log = mcp_env.tmp / "retry.calls"
    config = gateway_config(mcp_env, "retry", log=log, hold=1)
    async with stdio_gateway(config) as session:
        args = {"table": "orders", "rows": 250}
        first = await asyncio.wait_for(session.call_tool("export_rows", args), 20)
        assert first.is_error and "pending" in text_of(first).lower()
        rid = first.meta["signoff/request_id"]
        assert rid in text_of(first) and first.meta["signoff/status"] == "pending"
        assert mcp_env.status(rid) is Status.PENDING
        # Retried before anyone decided: still the same request, not a second card.
        again = await asyncio.wait_for(session.call_tool("export_rows", args), 20)
        assert again.meta["signoff/request_id"] == rid
        assert mcp_env.decide(rid, "bob@example.com", "approve").status_code == 200
        done = await asyncio.wait_for(session.call_tool("export_rows", args), 20)
        assert not done.is_error, text_of(done)
        assert text_of(done) == "exported 250 rows of orders"
    assert [c["arguments"] for c in calls(log)] == [args]


async def test_other_arguments_never_ride_on_an_approval(mcp_env: Env) -> None:
    """A retry with different arguments is a new request; and a decision for another call
    (an approved one, planted on this request's reply) is refused by the grant check."""
    log = mcp_env.tmp / "differ.calls"
    config = gateway_config(mcp_env, "differ", log=log, hold=1)
    async with stdio_gateway(config) as session:
        first = await asyncio.wait_for(
            session.call_tool("export_rows", {"table": "orders", "rows": 10}), 20)
        rid = first.meta["signoff/request_id"]
        assert mcp_env.decide(rid, "alice@example.com", "approve").status_code == 200
        other = await asyncio.wait_for(
            session.call_tool("export_rows", {"table": "orders", "rows": 10_000}), 20)
        assert other.is_error and other.meta["signoff/request_id"] != rid
        assert [c for c in calls(log)] == []

        # A decision approved for other arguments (rows: 11), planted as the reply of the
        # pending request for rows: 99 before Signoff answers it, is refused by the grant check.
        victim = asyncio.create_task(session.call_tool(
            "export_rows", {"table": "orders", "rows": 99}))
        vid = await mcp_env.pending_for("mcp.warehouse.export_rows",
                                        exclude=(rid, other.meta["signoff/request_id"]))
        # An approved decision for the same tool with other arguments, from this agent.
        client = Client(mcp_env.agent_url, requester=AGENT)
        handle = client.request("mcp.warehouse.export_rows", "orders",
                                {"table": "orders", "rows": 11},
                                context={"environment": "prod", "mcp": {"annotations": {}}})
        tid = await mcp_env.pending_for("mcp.warehouse.export_rows",
                                        exclude=(rid, vid, other.meta["signoff/request_id"]))
        assert tid == mcp_env.record_id(handle.id)
        assert mcp_env.decide(tid, "alice@example.com", "approve").status_code == 200
        decision = await asyncio.to_thread(handle.wait, 20)
        assert decision.approved
        reply_key = mcp_env.rt.keys.agent(AGENT_NAME).reply(mcp_env.agent_id(vid))
        mcp_env.rt.redis.lpush(reply_key, json.dumps(decision.raw))
        result = await asyncio.wait_for(victim, 20)
        assert result.is_error and "does not match" in text_of(result), text_of(result)
        # The approval of rows: 10 is still there for the real retry, which runs once.
        approved = await asyncio.wait_for(
            session.call_tool("export_rows", {"table": "orders", "rows": 10}), 20)
        assert not approved.is_error, text_of(approved)
    assert [c["arguments"]["rows"] for c in calls(log)] == [10]


async def test_a_retried_call_abandoned_by_its_client_withdraws_the_request(
        mcp_env: Env) -> None:
    log = mcp_env.tmp / "retry-gone.calls"
    config = gateway_config(mcp_env, "retry-gone", log=log, hold=1)
    args = {"table": "orders", "rows": 321}
    async with stdio_gateway(config) as session:
        first = await asyncio.wait_for(session.call_tool("export_rows", args), 20)
        rid = first.meta["signoff/request_id"]
        assert mcp_env.status(rid) is Status.PENDING  # told pending: kept for a retry
        retry = asyncio.create_task(session.call_tool("export_rows", args))
        await asyncio.sleep(0.5)
        retry.cancel()  # the client gives up on the retry (and stays connected)
        for _ in range(100):
            if mcp_env.status(rid) is Status.CANCELLED:
                break
            await asyncio.sleep(0.1)
        assert mcp_env.status(rid) is Status.CANCELLED
    assert calls(log) == []


async def test_an_approver_edits_the_arguments_and_the_tool_runs_with_them(mcp_env: Env) -> None:
    log = mcp_env.tmp / "edited.calls"
    config = gateway_config(mcp_env, "edited", log=log)
    async with stdio_gateway(config) as session:
        call = asyncio.create_task(session.call_tool("export_rows",
                                                     {"table": "orders", "rows": 900}))
        rid = await mcp_env.pending_for("mcp.warehouse.export_rows")
        reply = await asyncio.to_thread(mcp_env.edit, rid, "alice@example.com", {"rows": 100})
        assert reply.status_code == 200, reply.text
        result = await asyncio.wait_for(call, 30)
        assert not result.is_error, text_of(result)
        assert "exported 100 rows of orders" in text_of(result)
        assert "edited the arguments" in text_of(result)
        assert result.meta["signoff/edited_arguments"] == {"table": "orders", "rows": 100}
    assert [c["arguments"] for c in calls(log)] == [{"table": "orders", "rows": 100}]
