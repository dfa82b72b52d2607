"""The adapters run against the same real Signoff processes as the MCP gateway tests."""

from tests.mcp.conftest import Env, mcp_env

__all__ = ["Env", "mcp_env"]
