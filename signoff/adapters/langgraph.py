"""Signoff decides LangChain's human-in-the-loop reviews and LangGraph ``interrupt`` approvals.

LangChain's :class:`~langchain.agents.middleware.HumanInTheLoopMiddleware` pauses an agent
before gated tool calls with an interrupt (``HITLRequest`` in batched mode,
``ToolApprovalRequest`` in per-call mode). :class:`SignoffReviewer` answers those interrupts
with Signoff's decisions: each gated call becomes a Signoff request (action
``<prefix>.<tool>``, params = the call's arguments); an approval whose grant verifies against
those exact arguments answers ``approve``, anything else answers ``reject`` with the reason
the model is shown. Your own LangGraph nodes can ask the same way with
:func:`approval_interrupt`.

Durable across a restart: the graph's checkpointer (SQLite, Postgres, Redis ...) keeps the
paused run, and every Signoff request id is derived from the thread and the interrupt, so a
process that starts again and calls :meth:`SignoffReviewer.resume` picks up the same request
(and the decision people made while it was down) instead of asking twice::

    reviewer = SignoffReviewer(AsyncClient(url, requester="agent:ops-bot"))
    result = await reviewer.run(agent, {"messages": [...]}, config)   # first start
    result = await reviewer.resume(agent, config)                     # after a restart

Editing: when an approver edits the call's arguments before approving (a rule's
``require.editable``), the answer is LangChain's ``edit`` decision with the approver's
arguments, which the grant is bound to; the tool runs with those.

Needs ``pip install 'signoff[langgraph]'``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from langgraph.types import Command, Interrupt, interrupt

from signoff.adapters._decide import Verdict, action_name, json_params, verdict_for
from signoff.sdk import AsyncClient


def approval_interrupt(name: str, args: dict[str, Any], description: str = "") -> bool:
    """Pause a LangGraph node until Signoff decides (inside a graph with a checkpointer).

    Raises a LangGraph interrupt shaped like LangChain's per-call ``ToolApprovalRequest``;
    :class:`SignoffReviewer` answers it. Returns True when approved; when rejected, raises
    :class:`PermissionError` with the reason.
    """
    answer = interrupt({"type": "tool_approval", "tool_call_id": "", "name": name,
                        "args": args, "description": description})
    if isinstance(answer, dict) and answer.get("type") == "approve":
        return True
    message = answer.get("message") if isinstance(answer, dict) else None
    raise PermissionError(message or f"{name} was not approved")


class SignoffReviewer:
    """Answers human-in-the-loop interrupts with Signoff decisions.

    Args:
        client: the agent's Signoff client (its own identity and credentials).
        action_prefix: actions are ``<action_prefix>.<tool name>``.
        resource: the request's resource: a string, or ``(tool, args) -> str`` (default: the
            thread id).
        on_behalf_of, context: passed on every request.
        timeout: seconds to wait for each decision.
    """

    def __init__(self, client: AsyncClient, *, action_prefix: str = "langgraph",
                 resource: str | Callable[[str, dict[str, Any]], str] | None = None,
                 on_behalf_of: str | None = None, context: dict[str, Any] | None = None,
                 timeout: float = 3600) -> None:
        self.client = client
        self.action_prefix = action_prefix
        self.resource = resource
        self.on_behalf_of = on_behalf_of
        self.context = context or {}
        self.timeout = timeout

    @staticmethod
    def request_id(thread_id: str, interrupt_id: str, index: int) -> str:
        """The Signoff request id of one reviewed call: the same after a restart."""
        digest = hashlib.sha256(f"{thread_id}\x00{interrupt_id}\x00{index}".encode())
        return f"lg-{digest.hexdigest()[:48]}"

    async def decide(self, thread_id: str, interrupt_id: str, index: int, name: str,
                     args: dict[str, Any], description: str = "", *,
                     resumed: bool = False) -> Verdict:
        """Ask Signoff about one call (idempotent: the same call asks once) and wait;
        ``resumed`` also finds a decision an earlier process received but never acted on."""
        params = json_params(args)
        action = action_name(self.action_prefix, name)
        resource = (self.resource(name, params) if callable(self.resource)
                    else self.resource or thread_id)
        context = {**self.context, "framework": "langgraph", "thread": thread_id, "tool": name}
        if description:
            context["description"] = description[:2000]
        handle = await self.client.request(
            action, resource, params, on_behalf_of=self.on_behalf_of,
            reason=f"{name} in thread {thread_id}", context=context,
            id=self.request_id(thread_id, interrupt_id, index))
        return await verdict_for(handle, self.timeout, resumed=resumed)

    @staticmethod
    def _decision(verdict: Verdict, name: str, allowed: list[str] | None = None
                  ) -> dict[str, Any]:
        """LangChain's decision: approve, edit (the approver's arguments, which the grant
        bound), or reject with the reason."""
        edited = verdict.edited_params
        if verdict.approved and edited is None:
            return {"type": "approve"}
        if verdict.approved and edited is not None:
            if allowed is None or "edit" in allowed:
                return {"type": "edit", "edited_action": {"name": name, "args": edited}}
            return {"type": "reject", "message": (
                f"An approver allowed this call only with the arguments {edited} (Signoff "
                f"request {verdict.request_id}), and this review does not take edits. The "
                "tool did not run.")}
        return {"type": "reject", "message": verdict.message}

    async def answer(self, thread_id: str, item: Interrupt, *, resumed: bool = False) -> Any:
        """The resume value for one interrupt (HITLRequest or ToolApprovalRequest)."""
        value = item.value
        if isinstance(value, dict) and value.get("type") == "tool_approval":
            verdict = await self.decide(thread_id, item.id, 0, str(value["name"]),
                                        dict(value.get("args") or {}),
                                        str(value.get("description") or ""), resumed=resumed)
            return self._decision(verdict, str(value["name"]))
        if isinstance(value, dict) and "action_requests" in value:
            decisions = []
            for index, request in enumerate(value["action_requests"]):
                verdict = await self.decide(thread_id, item.id, index, str(request["name"]),
                                            dict(request.get("args") or {}),
                                            str(request.get("description") or ""),
                                            resumed=resumed)
                config = next((c for c in value.get("review_configs") or []
                               if c.get("action_name") == request["name"]), None)
                allowed = list(config["allowed_decisions"]) if config else None
                decisions.append(self._decision(verdict, str(request["name"]), allowed))
            return {"decisions": decisions}
        raise ValueError(f"interrupt {item.id} is not an approval request Signoff can answer")

    async def resume(self, graph: Any, config: dict[str, Any], *, max_pauses: int = 20,
                     _fresh: bool = False) -> Any:
        """Answer whatever the thread is paused on and continue until it finishes. After a
        restart, the first pause's requests may already be decided (even received by the
        process that died): those decisions are picked up, not asked for again."""
        thread_id = str(config["configurable"]["thread_id"])
        result: Any = None
        resumed = not _fresh
        for _ in range(max_pauses):
            state = await graph.aget_state(config)
            pending = list(state.interrupts)
            if not pending:
                return result if result is not None else state.values
            answers = {item.id: await self.answer(thread_id, item, resumed=resumed)
                       for item in pending}
            resumed = False
            result = await graph.ainvoke(Command(resume=answers), config)
        raise RuntimeError(f"the run paused for approval more than {max_pauses} times")

    async def run(self, graph: Any, input: Any, config: dict[str, Any], *,
                  max_pauses: int = 20) -> Any:
        """``graph.ainvoke(input)``, then let Signoff answer every pause."""
        result = await graph.ainvoke(input, config)
        state = await graph.aget_state(config)
        if not state.interrupts:
            return result
        return await self.resume(graph, config, max_pauses=max_pauses, _fresh=True)
