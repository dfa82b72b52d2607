"""A small MCP server to put behind `signoff mcp`: a warehouse with read and write tools.

    python examples/mcp/warehouse_server.py            # stdio
    python examples/mcp/warehouse_server.py --http 127.0.0.1:9000   # streamable HTTP at /mcp

Every call that reaches it is appended to the file named by WAREHOUSE_LOG (if set), so you
can see which calls Signoff let through. WAREHOUSE_FAULTS=1 adds a tool that crashes the
server mid-call (for tests).
"""

from __future__ import annotations

import json
import os
import sys
import time

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations

server = MCPServer("warehouse")
TABLES = {"customers": 5000, "orders": 120000}


def _ran(tool: str, **arguments: object) -> None:
    path = os.environ.get("WAREHOUSE_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"tool": tool, "arguments": arguments, "at": time.time()}) + "\n")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def count_rows(table: str) -> int:
    """Count the rows of a table."""
    _ran("count_rows", table=table)
    return TABLES.get(table, 0)


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
def drop_table(table: str) -> str:
    """Drop a table and everything in it."""
    _ran("drop_table", table=table)
    TABLES.pop(table, None)
    return f"dropped {table}"


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def export_rows(table: str, rows: int) -> str:
    """Export rows of a table to the analytics bucket."""
    _ran("export_rows", table=table, rows=rows)
    return f"exported {rows} rows of {table}"


if os.environ.get("WAREHOUSE_FAULTS"):  # the test suite's fault injection

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    def crash(table: str) -> str:
        """Dies in the middle of the call (a server crashing mid-call)."""
        _ran("crash", table=table)
        os._exit(3)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        host, _, port = sys.argv[2].rpartition(":")
        server.run("streamable-http", host=host, port=int(port))
    else:
        server.run()
