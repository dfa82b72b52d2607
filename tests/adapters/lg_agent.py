"""A LangChain agent with human-in-the-loop review answered by Signoff, run as its own process
(so a test can kill it mid-wait and start it again on the same SQLite checkpoint).

    python -m tests.adapters.lg_agent DB THREAD REDIS_URL LOG start|resume [MODE]

A scripted chat model (no network): it asks to delete a report, then reports the tool's
answer. The tool appends each run to LOG.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from signoff.adapters.langgraph import SignoffReviewer
from signoff.sdk import AsyncClient

AGENT = "agent:mcp-test"


class ScriptedChat(BaseChatModel):
    """Calls delete_report(name=...) and then repeats what the tool (or the reviewer) said."""

    report: str = "q3-draft"

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        last = messages[-1]
        if isinstance(last, ToolMessage):
            message = AIMessage(content=f"result: {last.content}")
        else:
            message = AIMessage(content="", tool_calls=[{
                "name": "delete_report", "args": {"name": self.report}, "id": "call_1",
                "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=message)])


def build(log: str, checkpointer: Any, mode: str = "batched", report: str = "q3-draft") -> Any:
    @tool
    def delete_report(name: str) -> str:
        """Delete a report for good."""
        with open(log, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": "delete_report", "name": name}) + "\n")
        return f"deleted {name}"

    return create_agent(
        ScriptedChat(report=report), tools=[delete_report],
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"delete_report": True},
                                             interrupt_mode=mode)],  # type: ignore[arg-type]
        checkpointer=checkpointer)


async def main(db: str, thread: str, redis_url: str, log: str, how: str, mode: str) -> None:
    client = AsyncClient(redis_url, requester=AGENT)
    reviewer = SignoffReviewer(client, resource=lambda tool, args: str(args["name"]),
                               timeout=60)
    config = {"configurable": {"thread_id": thread}}
    async with AsyncSqliteSaver.from_conn_string(db) as saver:
        agent = build(log, saver, mode)
        if how == "start":
            result = await reviewer.run(
                agent, {"messages": [{"role": "user", "content": "delete the draft"}]}, config)
        else:
            result = await reviewer.resume(agent, config)
    print(json.dumps({"final": result["messages"][-1].content}), flush=True)
    await client.aclose()


if __name__ == "__main__":
    args = sys.argv[1:]
    asyncio.run(main(*args[:5], args[5] if len(args) > 5 else "batched"))
