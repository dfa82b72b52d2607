"""Signoff answers a LangChain agent's human-in-the-loop reviews; the paused run survives a
restart through LangGraph's SQLite checkpointer.

    pip install 'signoff[langgraph]'
    export SIGNOFF_AGENT_REDIS_URL=...             # 'signoff agent add ops-bot' prints it
    python examples/langgraph_approvals.py start   # pauses; approve or deny in Signoff
    # stop it with Ctrl-C while it waits, decide in Signoff, then:
    python examples/langgraph_approvals.py resume  # picks up the same request and its decision

A scripted chat model asks to delete a report (no network, no API key); swap in any LangChain
chat model.
"""

from __future__ import annotations

import asyncio
import os
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

THREAD = {"configurable": {"thread_id": "cleanup-1"}}


@tool
def delete_report(name: str) -> str:
    """Delete a report for good."""
    return f"deleted {name}"


class ScriptedChat(BaseChatModel):
    """Asks to delete the Q3 draft, then repeats what the tool (or the reviewer) said."""

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if isinstance(messages[-1], ToolMessage):
            reply = AIMessage(content=str(messages[-1].content))
        else:
            reply = AIMessage(content="", tool_calls=[{"name": "delete_report", "id": "call-1",
                                                       "args": {"name": "q3-draft"},
                                                       "type": "tool_call"}])
        return ChatResult(generations=[ChatGeneration(message=reply)])


async def main(how: str) -> None:
    url = os.environ.get("SIGNOFF_AGENT_REDIS_URL")
    if not url:
        raise SystemExit("set SIGNOFF_AGENT_REDIS_URL (signoff agent add ops-bot prints it)")
    client = AsyncClient(url, requester="agent:ops-bot")
    reviewer = SignoffReviewer(client, resource=lambda tool, args: str(args.get("name")),
                               on_behalf_of="frank@example.com",
                               context={"environment": "prod"})
    async with AsyncSqliteSaver.from_conn_string("langgraph-approvals.db") as saver:
        agent = create_agent(
            ScriptedChat(), tools=[delete_report], checkpointer=saver,
            middleware=[HumanInTheLoopMiddleware(interrupt_on={"delete_report": True})])
        print("waiting for a decision in Signoff...")
        if how == "start":
            result = await reviewer.run(
                agent, {"messages": [{"role": "user", "content": "Delete the Q3 draft."}]},
                THREAD)
        else:
            result = await reviewer.resume(agent, THREAD)
    print(result["messages"][-1].content)
    await client.aclose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "start"))
