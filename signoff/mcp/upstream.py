"""One upstream MCP server: connect (stdio or streamable HTTP), list tools, call them.

Each connection lives in its own task (the ``mcp`` SDK's transports are anyio context managers
that must be entered and left by the same task). A connection that fails mid-call is dropped
and re-established by the next call, so an upstream that crashed comes back on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from contextlib import AsyncExitStack
from typing import Any, TextIO

import mcp_types as types
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED

from signoff import __version__
from signoff.mcp.config import ServerConfig

log = logging.getLogger("signoff.mcp")

CLIENT_INFO = types.Implementation(name="signoff-mcp-gateway", version=__version__)
CONNECT_TIMEOUT = 30.0

Forward = ProgressFnT


class UpstreamError(Exception):
    """The upstream could not be reached or failed mid-call; the message is for the model."""


class Upstream:
    """A lazily (re)connected client session to one configured server."""

    def __init__(self, config: ServerConfig, errlog: TextIO = sys.stderr) -> None:
        self.config = config
        self.errlog = errlog
        self.tools: list[types.Tool] = []
        self._session: ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return self.config.name

    async def _run(self, ready: asyncio.Future[ClientSession], stop: asyncio.Event) -> None:
        cfg = self.config
        try:
            async with AsyncExitStack() as stack:
                if cfg.command is not None:
                    params = StdioServerParameters(command=cfg.command[0], args=cfg.command[1:],
                                                   env=cfg.env or None, cwd=cfg.cwd)
                    read, write = await stack.enter_async_context(
                        stdio_client(params, errlog=self.errlog))
                else:
                    assert cfg.url is not None
                    http = await stack.enter_async_context(
                        create_mcp_http_client(headers=cfg.headers or None))
                    read, write = await stack.enter_async_context(
                        streamable_http_client(cfg.url, http_client=http))
                session = await stack.enter_async_context(
                    ClientSession(read, write, client_info=CLIENT_INFO))
                await session.initialize()
                self._session = session
                ready.set_result(session)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception)
                                    else UpstreamError("connection cancelled"))
            if not isinstance(exc, Exception):
                raise
            log.info("upstream %s connection ended: %s", cfg.name, exc)
        finally:
            self._session = None

    async def session(self) -> ClientSession:
        """The live session, connecting first when there is none."""
        async with self._lock:
            if self._session is not None and self._runner is not None \
                    and not self._runner.done():
                return self._session
            await self._disconnect()
            loop = asyncio.get_running_loop()
            ready: asyncio.Future[ClientSession] = loop.create_future()
            self._stop = asyncio.Event()
            self._runner = asyncio.create_task(self._run(ready, self._stop),
                                               name=f"mcp-upstream-{self.name}")
            try:
                return await asyncio.wait_for(asyncio.shield(ready), CONNECT_TIMEOUT)
            except Exception as exc:
                await self._disconnect()
                raise UpstreamError(f"cannot connect to MCP server '{self.name}': "
                                    f"{_describe(exc)}") from exc

    async def _disconnect(self) -> None:
        runner, self._runner = self._runner, None
        self._session = None
        if runner is not None and not runner.done():
            self._stop.set()
            try:
                await asyncio.wait_for(runner, 10)
            except (TimeoutError, asyncio.CancelledError, Exception):
                runner.cancel()
                with contextlib.suppress(BaseException):
                    await runner

    async def list_tools(self) -> list[types.Tool]:
        """Every tool the server offers (all pages)."""
        session = await self.session()
        tools: list[types.Tool] = []
        cursor: str | None = None
        try:
            while True:
                page = await session.list_tools(
                    params=types.PaginatedRequestParams(cursor=cursor) if cursor else None)
                tools.extend(page.tools)
                cursor = page.next_cursor
                if not cursor:
                    break
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                await self.reset()
            raise UpstreamError(f"MCP server '{self.name}' could not list its tools: "
                                f"{exc.error.message}") from exc
        self.tools = tools
        return tools

    async def call(self, tool: str, arguments: dict[str, Any],
                   forward: Forward | None = None) -> types.CallToolResult:
        """Call ``tool``; an upstream that fails mid-call raises :class:`UpstreamError`."""
        session = await self.session()
        try:
            result = await session.call_tool(tool, arguments, progress_callback=forward)
        except MCPError as exc:
            if exc.code == CONNECTION_CLOSED:
                await self.reset()
                raise UpstreamError(
                    f"MCP server '{self.name}' went away during the call to {tool}; it may or "
                    "may not have taken effect. The connection is re-established on the next "
                    "call.") from exc
            # A protocol-level error from the server (unknown tool, bad params): pass it on.
            return types.CallToolResult(
                content=[types.TextContent(text=f"{self.name}: {exc.error.message}")],
                is_error=True)
        except (OSError, EOFError, ConnectionError) as exc:
            await self.reset()
            raise UpstreamError(f"MCP server '{self.name}' failed during the call to {tool}: "
                                f"{_describe(exc)}") from exc
        assert isinstance(result, types.CallToolResult)
        return result

    async def reset(self) -> None:
        async with self._lock:
            await self._disconnect()

    async def aclose(self) -> None:
        await self.reset()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return exc.error.message
    return str(exc) or type(exc).__name__
