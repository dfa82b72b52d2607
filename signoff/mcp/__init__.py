"""``signoff mcp``: an approval gateway in front of any MCP servers.

An MCP client (a desktop app, an agent framework) connects to the gateway as if it were one
MCP server. The gateway connects to the configured upstream servers (stdio or streamable
HTTP), lists their tools, and asks Signoff before forwarding every tool call: action
``mcp.<server>.<tool>``, params = the call's arguments. Only a call whose grant verifies
against the exact arguments is forwarded.

Agent-side code: it speaks Signoff's wire contract through :class:`signoff.sdk.AsyncClient`
and never imports the server (``bot``, ``workers``). Needs the ``mcp`` extra.
"""
