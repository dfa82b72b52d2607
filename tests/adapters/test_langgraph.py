"""LangChain's human-in-the-loop middleware on a real LangGraph agent (scripted chat model,
SQLite checkpointer) with Signoff answering the reviews through the real Signoff processes:
approve, reject with the approver's reason, and a process killed while waiting whose restart
picks up the same request and the decision made meanwhile."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("langgraph")

from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from signoff.adapters.langgraph import SignoffReviewer
from signoff.models import Status
from signoff.sdk import AsyncClient
from tests.adapters.lg_agent import AGENT, build
from tests.mcp.conftest import AGENT_NAME, ROOT, Env, calls

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]
ACTION = "langgraph.delete_report"


async def _run(env: Env, tmp: Path, thread: str, mode: str, decision: str,
               comment: str | None = None) -> tuple[dict, str, Path]:
    log = tmp / f"{thread}.calls"
    client = AsyncClient(env.agent_url, requester=AGENT)
    reviewer = SignoffReviewer(client, resource=lambda tool, args: str(args["name"]), timeout=30)
    config = {"configurable": {"thread_id": thread}}

    async def decide() -> str:
        rid = await env.pending_for(ACTION)
        reply = await asyncio.to_thread(env.decide, rid, "alice@example.com", decision, comment)
        assert reply.status_code == 200, reply.text
        return rid

    decider = asyncio.create_task(decide())
    async with AsyncSqliteSaver.from_conn_string(str(tmp / f"{thread}.db")) as saver:
        agent = build(str(log), saver, mode)
        result = await asyncio.wait_for(reviewer.run(
            agent, {"messages": [{"role": "user", "content": "delete the draft"}]}, config), 60)
    rid = await decider
    await client.aclose()
    return result, rid, log


@pytest.mark.parametrize("mode", ["batched", "per_call"])
async def test_approved_review_runs_the_tool(mcp_env: Env, tmp_path: Path, mode: str) -> None:
    result, rid, log = await _run(mcp_env, tmp_path, f"approve-{mode}", mode, "approve")
    assert result["messages"][-1].content == "result: deleted q3-draft"
    assert calls(log) == [{"tool": "delete_report", "name": "q3-draft"}]
    assert mcp_env.agent_id(rid).startswith("lg-")


@pytest.mark.parametrize("mode", ["batched", "per_call"])
async def test_edited_approval_runs_the_tool_with_the_approvers_arguments(
        mcp_env: Env, tmp_path: Path, mode: str) -> None:
    log = tmp_path / f"edit-{mode}.calls"
    client = AsyncClient(mcp_env.agent_url, requester=AGENT)
    reviewer = SignoffReviewer(client, resource=lambda tool, args: str(args["name"]), timeout=30)
    config = {"configurable": {"thread_id": f"edit-{mode}"}}

    async def edit() -> None:
        rid = await mcp_env.pending_for(ACTION)
        reply = await asyncio.to_thread(mcp_env.edit, rid, "alice@example.com",
                                        {"name": "q3-draft-copy"})
        assert reply.status_code == 200, reply.text

    editor = asyncio.create_task(edit())
    async with AsyncSqliteSaver.from_conn_string(str(tmp_path / f"edit-{mode}.db")) as saver:
        agent = build(str(log), saver, mode)
        result = await asyncio.wait_for(reviewer.run(
            agent, {"messages": [{"role": "user", "content": "delete the draft"}]}, config), 60)
    await editor
    await client.aclose()
    assert calls(log) == [{"tool": "delete_report", "name": "q3-draft-copy"}]
    assert "deleted q3-draft-copy" in result["messages"][-1].content


async def test_rejected_review_gives_the_model_the_reason(mcp_env: Env, tmp_path: Path) -> None:
    result, rid, log = await _run(mcp_env, tmp_path, "reject", "batched", "deny",
                                  "legal hold on Q3 reports")
    assert calls(log) == []
    final = result["messages"][-1].content
    assert "legal hold on Q3 reports" in final and mcp_env.agent_id(rid) in final


@pytest.mark.parametrize("popped", [False, True], ids=["reply-waiting", "reply-popped"])
async def test_a_restart_picks_up_the_same_request_and_its_decision(
        mcp_env: Env, tmp_path: Path, popped: bool) -> None:
    """The agent process is killed while people decide; a new process resumes the thread
    from the checkpoint and acts on the decision made meanwhile, asking nobody twice. With
    ``popped`` the dead process had already taken the reply off its list (it died between
    receiving the decision and acting on it): the decision is found in the agent's decisions
    stream."""
    db, log, thread = tmp_path / "restart.db", tmp_path / "restart.calls", f"restart-{popped}"
    argv = [sys.executable, "-m", "tests.adapters.lg_agent", str(db), thread,
            mcp_env.agent_url, str(log)]
    first = subprocess.Popen([*argv, "start"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        rid = await mcp_env.pending_for(ACTION, timeout=40)
    finally:
        first.kill()  # the agent process dies while it waits for people
        first.wait(10)
    # People approve while no agent process is running.
    assert (await asyncio.to_thread(mcp_env.decide, rid, "bob@example.com", "approve")
            ).status_code == 200
    assert calls(log) == []
    if popped:
        reply = mcp_env.rt.keys.agent(AGENT_NAME).reply(mcp_env.agent_id(rid))
        for _ in range(100):
            if mcp_env.rt.redis.lpop(reply):
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the decision was never delivered")
    second = await asyncio.to_thread(subprocess.run, [*argv, "resume"], cwd=ROOT,
                                     capture_output=True, timeout=60)
    assert second.returncode == 0, second.stderr.decode()[-2000:]
    assert json.loads(second.stdout.decode().strip().splitlines()[-1]) == {
        "final": "result: deleted q3-draft"}
    assert calls(log) == [{"tool": "delete_report", "name": "q3-draft"}]  # once
    assert mcp_env.status(rid) is Status.APPROVED
    assert SignoffReviewer.request_id(thread, "x", 0) != mcp_env.agent_id(rid)
