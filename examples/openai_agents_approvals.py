"""Signoff decides the OpenAI Agents SDK's tool approvals.

    pip install 'signoff[openai-agents]'
    signoff run &                                  # or your deployment
    python examples/openai_agents_approvals.py     # then approve in the inbox, Slack or Teams

With OPENAI_API_KEY set it uses a real model; without it a scripted model asks for the refund,
so the example runs offline. SIGNOFF_AGENT_REDIS_URL is the agent's Redis URL
('signoff agent add support-bot' prints it).
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

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


@function_tool(needs_approval=True)
def refund(order: str, amount: int) -> str:
    """Refund an order."""
    return f"refunded {amount} on {order}"


class ScriptedModel(Model):
    """Asks for one refund, then repeats what the tool answered."""

    async def get_response(self, system_instructions: Any, input: Any, *args: Any,
                           **kwargs: Any) -> ModelResponse:
        done = [i for i in input if isinstance(i, dict)
                and i.get("type") == "function_call_output"] if isinstance(input, list) else []
        if not done:
            call = ResponseFunctionToolCall(type="function_call", call_id="c1", id="fc1",
                                            name="refund", status="completed",
                                            arguments=json.dumps({"order": "A-1", "amount": 30}))
            return ModelResponse(output=[call], usage=Usage(), response_id=None)
        text = ResponseOutputText(type="output_text", text=str(done[-1]["output"]),
                                  annotations=[])
        return ModelResponse(output=[ResponseOutputMessage(
            id="m1", type="message", role="assistant", status="completed", content=[text])],
            usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


async def main() -> None:
    if not os.environ.get("OPENAI_API_KEY"):
        set_tracing_disabled(True)
    model: Any = "gpt-4.1-mini" if os.environ.get("OPENAI_API_KEY") else ScriptedModel()
    url = os.environ.get("SIGNOFF_AGENT_REDIS_URL")
    if not url:
        raise SystemExit("set SIGNOFF_AGENT_REDIS_URL to the agent's Redis URL "
                         "(signoff agent add support-bot prints it)")
    client = AsyncClient(url, requester="agent:support-bot")
    approvals = SignoffApprovals(client, resource=lambda tool, args: str(args.get("order")),
                                 on_behalf_of="frank@example.com",
                                 context={"environment": "prod"})
    agent = Agent(name="support", instructions="Help customers with refunds.",
                  tools=[refund], model=model)
    print("waiting for a decision in Signoff...")
    result = await approvals.run(agent, "Please refund 30 on order A-1.")
    print(result.final_output)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
