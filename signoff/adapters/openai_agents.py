"""Signoff decides the OpenAI Agents SDK's tool approvals.

Mark tools with ``needs_approval=True`` (``@function_tool(needs_approval=True)``). A run that
reaches such a tool pauses with an interruption; :class:`SignoffApprovals` sends each
interrupted call to Signoff (action ``<prefix>.<tool>``, params = the call's arguments), waits
for people to decide, approves the call in the run state only when the grant verifies against
those exact arguments, or rejects it with the reason the approver gave (which the model sees),
then resumes the run::

    approvals = SignoffApprovals(AsyncClient(url, requester="agent:support-bot"))
    result = await approvals.run(agent, "Refund order 1234")

Needs ``pip install 'signoff[openai-agents]'``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from agents import Agent, Runner, RunResult, RunState, ToolApprovalItem

from signoff.adapters._decide import Verdict, action_name, json_params, verdict_for
from signoff.sdk import AsyncClient


def _arguments(item: ToolApprovalItem) -> dict[str, Any]:
    raw = item.raw_item
    text = raw.get("arguments") if isinstance(raw, dict) else getattr(raw, "arguments", None)
    if not text:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except json.JSONDecodeError:
        return {"_raw": str(text)}
    return value if isinstance(value, dict) else {"_value": value}


class SignoffApprovals:
    """Runs an agent and lets Signoff decide every tool approval it asks for.

    Args:
        client: the agent's Signoff client (its own identity and credentials).
        action_prefix: actions are ``<action_prefix>.<tool name>``.
        resource: the request's resource: a string, or a callable ``(tool, arguments) -> str``
            (default: the agent's name).
        on_behalf_of, context: passed on every request.
        timeout: seconds to wait for each decision.
    """

    def __init__(self, client: AsyncClient, *, action_prefix: str = "agents",
                 resource: str | Callable[[str, dict[str, Any]], str] | None = None,
                 on_behalf_of: str | None = None, context: dict[str, Any] | None = None,
                 timeout: float = 3600) -> None:
        self.client = client
        self.action_prefix = action_prefix
        self.resource = resource
        self.on_behalf_of = on_behalf_of
        self.context = context or {}
        self.timeout = timeout

    def _resource(self, agent_name: str, tool: str, arguments: dict[str, Any]) -> str:
        if callable(self.resource):
            return self.resource(tool, arguments)
        return self.resource or agent_name

    async def decide(self, item: ToolApprovalItem) -> Verdict:
        """Ask Signoff about one interrupted tool call and wait for the decision."""
        tool = item.tool_name or "tool"
        arguments = json_params(_arguments(item))
        action = action_name(self.action_prefix, tool)
        agent_name = getattr(item.agent, "name", "agent")
        resource = self._resource(agent_name, tool, arguments)
        handle = await self.client.request(
            action, resource, arguments, on_behalf_of=self.on_behalf_of,
            reason=f"{agent_name} calls {tool}",
            context={**self.context, "framework": "openai-agents", "agent": agent_name,
                     "tool": tool})
        # The Agents SDK runs an approved call with the model's own arguments, so an approval
        # with edited arguments cannot be honoured: it is declined and the model told why.
        return await verdict_for(handle, self.timeout, accept_edits=False)

    async def resolve(self, state: RunState[Any], interruptions: list[ToolApprovalItem]
                      ) -> list[Verdict]:
        """Approve or reject every interruption in ``state`` as Signoff decides."""
        verdicts = []
        for item in interruptions:
            verdict = await self.decide(item)
            if verdict.approved:
                state.approve(item)
            else:
                state.reject(item, rejection_message=verdict.message)
            verdicts.append(verdict)
        return verdicts

    async def run(self, agent: Agent[Any], input: Any, *, max_pauses: int = 20,
                  **kwargs: Any) -> RunResult:
        """``Runner.run`` that resumes after each pause once Signoff has decided."""
        result = await Runner.run(agent, input, **kwargs)
        for _ in range(max_pauses):
            if not result.interruptions:
                return result
            state = result.to_state()
            await self.resolve(state, list(result.interruptions))
            result = await Runner.run(agent, state, **kwargs)
        if result.interruptions:
            raise RuntimeError(f"the run paused for approval more than {max_pauses} times")
        return result
