"""A bare MCP relay for bench/mcp.py: the official SDK's low-level server in front of one
stdio upstream, forwarding tools/list and tools/call with no approval logic at all. It is what
any MCP proxy in its own process costs (one more stdio hop), measured beside the gateway.

    python bench/_mcp_relay.py python examples/mcp/warehouse_server.py
"""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

# bench/mcp.py would shadow the `mcp` package: drop this folder from the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import anyio  # noqa: E402
import mcp_types as types  # noqa: E402
from mcp import ClientSession, StdioServerParameters, stdio_client  # noqa: E402
from mcp.server.lowlevel import Server  # noqa: E402
from mcp.server.stdio import stdio_server  # noqa: E402


async def main(command: list[str]) -> None:
    async with AsyncExitStack() as stack:
        read, write = await stack.enter_async_context(stdio_client(
            StdioServerParameters(command=command[0], args=command[1:])))
        upstream = await stack.enter_async_context(ClientSession(read, write))
        await upstream.initialize()

        async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
            return await upstream.list_tools()

        async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> Any:
            return await upstream.call_tool(params.name, params.arguments)

        server: Server[Any] = Server("relay", on_list_tools=list_tools, on_call_tool=call_tool)
        async with stdio_server() as (r, w):
            await server.run(r, w, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main, sys.argv[1:])
