"""Signoff as the approval step of agent frameworks (each needs its own extra).

* :mod:`signoff.adapters.openai_agents` — OpenAI Agents SDK tool approvals
  (``pip install 'signoff[openai-agents]'``).
* :mod:`signoff.adapters.langgraph` — LangGraph ``interrupt`` / LangChain human-in-the-loop
  decisions, durable through LangGraph's checkpointer (``pip install 'signoff[langgraph]'``).

Agent-side code: it uses the SDK's :class:`signoff.sdk.AsyncClient` and never imports the
server (``bot``, ``workers``).
"""
