"""Task-augmented tool calls (MCP 2025-11-25 tasks) through the gateway: the client gets a
task at once, polls it while people decide, fetches the tool's result, or cancels it (which
withdraws the Signoff request)."""

from __future__ import annotations

import asyncio

import mcp_types as types
import pytest

from signoff.models import Status
from tests.mcp.conftest import Env, calls, gateway_config, stdio_gateway, text_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


async def _start(session, name: str, arguments: dict) -> types.CreateTaskResult:
    """Send a task-augmented tools/call. The Python SDK's own client (2.3) checks every
    tools/call result against CallToolResult, so this one request goes through the session's
    JSON-RPC dispatcher and its answer is validated here as the CreateTaskResult it is."""
    raw = await asyncio.wait_for(session._dispatcher.send_raw_request(
        "tools/call", {"name": name, "arguments": arguments, "task": {"ttl": 60_000}}, {}), 20)
    return types.CreateTaskResult.model_validate(raw)


async def _get(session, task_id: str) -> types.GetTaskResult:
    return await session.send_request(
        types.GetTaskRequest(params=types.GetTaskRequestParams(task_id=task_id)),
        types.GetTaskResult)


async def test_a_task_call_waits_for_approval_and_returns_the_result(mcp_env: Env) -> None:
    log = mcp_env.tmp / "task.calls"
    config = gateway_config(mcp_env, "task", log=log, hold=1)  # hold does not end a task
    async with stdio_gateway(config) as session:
        caps = session.server_capabilities
        assert caps is not None and caps.tasks is not None and caps.tasks.requests.tools.call
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert tools["drop_table"].execution.task_support == "optional"

        created = await _start(session, "drop_table", {"table": "orders"})
        task_id = created.task.task_id
        assert created.task.status == "working"
        rid = await mcp_env.pending_for("mcp.warehouse.drop_table")
        await asyncio.sleep(2)  # longer than hold: a task keeps waiting
        polled = await _get(session, task_id)
        assert polled.status == "working" and calls(log) == []
        assert mcp_env.decide(rid, "alice@example.com", "approve").status_code == 200
        result = await asyncio.wait_for(session.send_request(
            types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(
                task_id=task_id)), types.CallToolResult), 30)
        assert text_of(result) == "dropped orders"
        assert (await _get(session, task_id)).status == "completed"
    assert [c["tool"] for c in calls(log)] == ["drop_table"]


async def test_cancelling_a_task_withdraws_the_request(mcp_env: Env) -> None:
    log = mcp_env.tmp / "task-cancel.calls"
    config = gateway_config(mcp_env, "task-cancel", log=log)
    async with stdio_gateway(config) as session:
        created = await _start(session, "drop_table", {"table": "customers"})
        rid = await mcp_env.pending_for("mcp.warehouse.drop_table")
        cancelled = await session.send_request(
            types.CancelTaskRequest(params=types.CancelTaskRequestParams(
                task_id=created.task.task_id)), types.CancelTaskResult)
        assert cancelled.status == "cancelled"
        for _ in range(100):
            if mcp_env.status(rid) is Status.CANCELLED:
                break
            await asyncio.sleep(0.1)
        assert mcp_env.status(rid) is Status.CANCELLED
        assert mcp_env.decide(rid, "alice@example.com", "approve").status_code == 409
        listed = await session.send_request(types.ListTasksRequest(), types.ListTasksResult)
        assert [t.status for t in listed.tasks] == ["cancelled"]
    assert calls(log) == []


async def test_a_denied_task_fails_with_the_reason(mcp_env: Env) -> None:
    config = gateway_config(mcp_env, "task-deny")
    async with stdio_gateway(config) as session:
        created = await _start(session, "drop_table", {"table": "archive"})
        rid = await mcp_env.pending_for("mcp.warehouse.drop_table")
        assert mcp_env.decide(rid, "bob@example.com", "deny", "archive is frozen"
                              ).status_code == 200
        result = await asyncio.wait_for(session.send_request(
            types.GetTaskPayloadRequest(params=types.GetTaskPayloadRequestParams(
                task_id=created.task.task_id)), types.CallToolResult), 30)
        assert result.is_error and "archive is frozen" in text_of(result)
        polled = await _get(session, created.task.task_id)
        assert polled.status == "failed" and "archive is frozen" in (polled.status_message or "")
