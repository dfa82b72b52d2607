"""The OpenAI Agents SDK (real Runner, a scripted model, no network) with Signoff deciding
its tool approvals through the real Signoff processes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

pytest.importorskip("agents")

from agents import Agent, ModelResponse, function_tool, set_tracing_disabled
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from signoff.adapters.openai_agents import SignoffApprovals
from signoff.sdk import AsyncClient
from tests.mcp.conftest import AGENT, Env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]
set_tracing_disabled(True)


class ScriptedModel(Model):
    """Calls refund(order=..., amount=...) first, then answers with what the tool said."""

    def __init__(self, arguments: dict[str, Any]) -> None:
        self.arguments = arguments
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions: Any, input: Any, *args: Any,
                           **kwargs: Any) -> ModelResponse:
        self.inputs.append(input)
        outputs = [i for i in input if isinstance(i, dict)
                   and i.get("type") == "function_call_output"] if isinstance(input, list) else []
        if not outputs:
            call = ResponseFunctionToolCall(type="function_call", call_id="call_1", id="fc_1",
                                            name="refund", status="completed",
                                            arguments=json.dumps(self.arguments))
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        text = f"tool said: {outputs[-1]['output']}"
        msg = ResponseOutputMessage(id="msg_1", type="message", role="assistant",
                                    status="completed",
                                    content=[ResponseOutputText(type="output_text", text=text,
                                                                annotations=[])])
        return ModelResponse(output=[msg], usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def make_agent(model: Model, ran: list[dict[str, Any]]) -> Agent[Any]:
    @function_tool(needs_approval=True)
    def refund(order: str, amount: int) -> str:
        """Refund an order."""
        ran.append({"order": order, "amount": amount})
        return f"refunded {amount} on {order}"

    return Agent(name="support", instructions="Help customers.", tools=[refund], model=model)


async def _decide(env: Env, decision: str, comment: str | None = None) -> str:
    rid = await env.pending_for("agents.refund")
    reply = await asyncio.to_thread(env.decide, rid, "alice@example.com", decision, comment)
    assert reply.status_code == 200, reply.text
    return rid


async def test_run_pauses_until_signoff_approves(mcp_env: Env) -> None:
    ran: list[dict[str, Any]] = []
    model = ScriptedModel({"order": "A-1", "amount": 30})
    client = AsyncClient(mcp_env.agent_url, requester=AGENT)
    approvals = SignoffApprovals(client, resource=lambda tool, args: str(args["order"]),
                                 timeout=30)
    decider = asyncio.create_task(_decide(mcp_env, "approve"))
    result = await asyncio.wait_for(approvals.run(make_agent(model, ran), "refund A-1"), 60)
    rid = await decider
    assert ran == [{"order": "A-1", "amount": 30}]
    assert result.final_output == "tool said: refunded 30 on A-1"
    record = mcp_env.rt.store.get(rid, with_votes=False)
    assert record is not None and record.json("masked")["resource"] == "A-1"
    await client.aclose()


async def test_denial_reaches_the_model_with_the_reason(mcp_env: Env) -> None:
    ran: list[dict[str, Any]] = []
    model = ScriptedModel({"order": "B-2", "amount": 5000})
    client = AsyncClient(mcp_env.agent_url, requester=AGENT)
    approvals = SignoffApprovals(client, timeout=30)
    decider = asyncio.create_task(_decide(mcp_env, "deny", "over the refund limit"))
    result = await asyncio.wait_for(approvals.run(make_agent(model, ran), "refund B-2"), 60)
    rid = await decider
    assert ran == []
    assert "over the refund limit" in result.final_output
    assert mcp_env.agent_id(rid) in result.final_output
    assert "did not run" in result.final_output
    await client.aclose()


async def test_an_edited_approval_is_declined_and_the_model_told_the_arguments(
        mcp_env: Env) -> None:
    """The Agents SDK runs an approved call with the model's own arguments: an approval that
    only stands with edited arguments is not used, and the model learns what would pass."""
    ran: list[dict[str, Any]] = []
    model = ScriptedModel({"order": "C-3", "amount": 90})
    client = AsyncClient(mcp_env.agent_url, requester=AGENT)
    approvals = SignoffApprovals(client, timeout=30)

    async def edit() -> None:
        rid = await mcp_env.pending_for("agents.refund")
        reply = await asyncio.to_thread(mcp_env.edit, rid, "alice@example.com", {"amount": 50})
        assert reply.status_code == 200, reply.text

    editor = asyncio.create_task(edit())
    result = await asyncio.wait_for(approvals.run(make_agent(model, ran), "refund C-3"), 60)
    await editor
    assert ran == []
    assert '"amount": 50' in result.final_output and "did not run" in result.final_output
    await client.aclose()
