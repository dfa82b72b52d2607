"""The gateway: one MCP server (``mcp.server.lowlevel.Server``) in front of the upstreams.

Built on the official ``mcp`` SDK's low-level server rather than its decorator API (or
``fastmcp``): a proxy must pass each upstream tool's own input schema, output schema and
annotations through unchanged, which the low-level ``on_list_tools`` / ``on_call_tool``
handlers do directly, with no per-tool Python function to generate.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.dispatcher import ProgressFnT
from mcp.shared.jsonrpc_dispatcher import progress_token_from_params
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from signoff import __version__
from signoff.mcp.approvals import Approvals, Progress, ToolCall, Verdict
from signoff.mcp.config import GatewayConfig, ServerConfig
from signoff.mcp.tasks import TaskRecord, TaskStore
from signoff.mcp.upstream import Upstream, UpstreamError

log = logging.getLogger("signoff.mcp")

_ACTION_UNSAFE = re.compile(r"[^A-Za-z0-9._:/-]")


def action_for(server: str, tool: str) -> str:
    """``mcp.<server>.<tool>``, with characters the request schema refuses replaced by ``-``."""
    return f"mcp.{server}.{_ACTION_UNSAFE.sub('-', tool)}"[:200]


@dataclass(frozen=True)
class Route:
    """Where an exposed tool name goes."""

    exposed: str
    upstream: Upstream
    tool: types.Tool

    @property
    def server(self) -> ServerConfig:
        return self.upstream.config


class Catalog:
    """The exposed tool list: upstream names, prefixed by server where two servers clash."""

    def __init__(self, upstreams: list[Upstream]) -> None:
        self.upstreams = upstreams
        self.routes: dict[str, Route] = {}

    async def refresh(self) -> list[types.Tool]:
        listed: list[tuple[Upstream, types.Tool]] = []
        for upstream in self.upstreams:
            try:
                tools = await upstream.list_tools()
            except UpstreamError as exc:
                log.warning("%s", exc)  # one server down must not hide the others' tools
                continue
            listed.extend((upstream, tool) for tool in tools)
        counts: dict[str, int] = {}
        for _, tool in listed:
            counts[tool.name] = counts.get(tool.name, 0) + 1
        routes: dict[str, Route] = {}
        exposed: list[types.Tool] = []
        for upstream, tool in listed:
            name = tool.name if counts[tool.name] == 1 else f"{upstream.name}_{tool.name}"
            routes[name] = Route(name, upstream, tool)
            # Any call may wait for people: every tool can run as a task (MCP 2025-11-25).
            exposed.append(tool.model_copy(update={
                "name": name, "execution": types.ToolExecution(task_support="optional")}))
        self.routes = routes
        return exposed

    async def resolve(self, name: str) -> Route | None:
        route = self.routes.get(name)
        if route is None:
            await self.refresh()
            route = self.routes.get(name)
        return route


def _error(text: str, **meta: Any) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(text=text)], is_error=True,
                                _meta={f"signoff/{k}": v for k, v in meta.items()} or None)


def _annotations(route: Route) -> dict[str, Any]:
    found = (route.tool.annotations.model_dump(by_alias=True, exclude_none=True)
             if route.tool.annotations is not None else {})
    found.update(route.server.annotations.get(route.tool.name, {}))
    return found


def _client_name(ctx: ServerRequestContext[Any, Any]) -> str:
    params = ctx.session.client_params
    info = getattr(params, "client_info", None)
    return str(getattr(info, "name", "") or "unknown")


class _TaskServer(Server[Any]):
    """The low-level server, advertising the tasks capability its handlers serve."""

    def get_capabilities(self, *args: Any, **kwargs: Any) -> types.ServerCapabilities:
        caps = super().get_capabilities(*args, **kwargs)
        if kwargs.get("protocol_version") in MODERN_PROTOCOL_VERSIONS:
            return caps  # tasks are a 2025-11-25 feature
        return caps.model_copy(update={"tasks": types.ServerTasksCapability(
            list=types.TasksListCapability(), cancel=types.TasksCancelCapability(),
            requests=types.ServerTasksRequestsCapability(
                tools=types.TasksToolsCapability(call=types.TasksCallCapability())))})


class Gateway:
    """Upstream connections, the catalog and the approval flow, as an MCP server."""

    def __init__(self, config: GatewayConfig, approvals: Approvals,
                 upstreams: list[Upstream] | None = None) -> None:
        self.config = config
        self.approvals = approvals
        self.upstreams = upstreams or [Upstream(s) for s in config.servers]
        self.catalog = Catalog(self.upstreams)
        self.tasks = TaskStore(config.wait.pending_ttl)
        self.server: Server[Any] = _TaskServer(
            "signoff-mcp-gateway", version=__version__,
            instructions="Tool calls pass through Signoff: some run at once, others wait for a "
                         "person's approval. A result saying approval is pending means the tool "
                         "has not run; call it again later with the same arguments.",
            lifespan=self._lifespan,
            on_list_tools=self._list_tools, on_call_tool=self._call_tool)
        self.server.middleware.append(self._task_middleware)
        self.server.add_request_handler("tasks/get", types.GetTaskRequestParams, self._get_task)
        self.server.add_request_handler("tasks/result", types.GetTaskPayloadRequestParams,
                                        self._task_result)
        self.server.add_request_handler("tasks/cancel", types.CancelTaskRequestParams,
                                        self._cancel_task)
        self.server.add_request_handler("tasks/list", types.PaginatedRequestParams,
                                        self._list_tasks)

    @asynccontextmanager
    async def _lifespan(self, _: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        yield {}

    async def aclose(self) -> None:
        await self.tasks.aclose()
        await self.approvals.aclose()
        for upstream in self.upstreams:
            await upstream.aclose()

    async def _list_tools(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await self.catalog.refresh())

    def tool_call(self, route: Route, arguments: dict[str, Any], client: str) -> ToolCall:
        """The Signoff request for one call (action, resource, params, context)."""
        tool = route.tool
        mcp_context: dict[str, Any] = {
            "server": route.server.name, "tool": tool.name, "client": client,
            "annotations": _annotations(route),
        }
        if tool.description:
            mcp_context["description"] = tool.description[:2000]
        if tool.title:
            mcp_context["title"] = tool.title
        return ToolCall(
            action=action_for(route.server.name, tool.name),
            resource=route.server.resource_for(tool.name, arguments),
            arguments=arguments,
            context={**self.config.context, "mcp": mcp_context},
            reason=f"MCP tool call {tool.name} on {route.server.name} from {client}",
            on_behalf_of=self.config.on_behalf_of)

    async def _call_tool(self, ctx: ServerRequestContext[Any, Any],
                         params: types.CallToolRequestParams) -> types.CallToolResult:
        route = await self.catalog.resolve(params.name)
        if route is None:
            return _error(f"Unknown tool: {params.name}")
        arguments = dict(params.arguments or {})
        call = self.tool_call(route, arguments, _client_name(ctx))
        wants_progress = progress_token_from_params(ctx.params) is not None

        async def report(elapsed: float, message: str) -> None:
            await ctx.session.report_progress(elapsed, None, message)

        async def forward(progress: float, total: float | None, message: str | None) -> None:
            await ctx.session.report_progress(progress, total, message)  # the upstream's own

        scope = getattr(ctx.request, "scope", None)  # the HTTP request, on streamable HTTP
        gone = scope.get(CLIENT_GONE) if isinstance(scope, dict) else None
        return await self._run(route, call, report if wants_progress else None,
                               forward if wants_progress else None, gone=gone)

    async def _task_middleware(self, ctx: ServerRequestContext[Any, Any],
                               call_next: CallNext) -> HandlerResult:
        """A task-augmented ``tools/call`` is answered here with the task (the SDK's result
        check for ``tools/call`` knows only ``CallToolResult``); the call runs in the
        background and its result is served by ``tasks/result``."""
        raw = ctx.params
        if ctx.method != "tools/call" or not isinstance(raw, dict) or raw.get("task") is None:
            return await call_next(ctx)
        params = types.CallToolRequestParams.model_validate(raw)
        route = await self.catalog.resolve(params.name)
        if route is None:
            return _error(f"Unknown tool: {params.name}")
        call = self.tool_call(route, dict(params.arguments or {}), _client_name(ctx))

        async def work(record: TaskRecord) -> types.CallToolResult:
            async def waiting(elapsed: float, message: str) -> None:
                record.set("working", message)

            return await self._run(route, call, waiting, None, background=True)

        assert params.task is not None
        record = self.tasks.start(params.task.ttl, work)
        record.set("working", "asking Signoff")
        created = types.CreateTaskResult(task=types.Task(**record.model()))
        return created.model_dump(by_alias=True, exclude_none=True, mode="json")

    async def _run(self, route: Route, call: ToolCall, waiting: Progress | None,
                   forward: ProgressFnT | None, gone: asyncio.Event | None = None,
                   background: bool = False) -> types.CallToolResult:
        """Decide one call, then forward it: the one path for plain and task calls."""
        outcome = await self.approvals.decide(
            call, waiting, gone, hold=self.config.wait.decision_timeout if background else None)
        if outcome.verdict is Verdict.PENDING:
            return _error(outcome.message, status="pending", request_id=outcome.request_id)
        if outcome.verdict is Verdict.REFUSED:
            return _error(outcome.message, status="refused", request_id=outcome.request_id)
        if background and waiting is not None:
            await waiting(0, f"approved (request {outcome.request_id}); running the tool")
        edited = outcome.decision.params if outcome.decision is not None else None
        arguments = call.arguments if edited is None else edited  # the grant binds these
        try:
            result = await route.upstream.call(route.tool.name, arguments, forward)
        except UpstreamError as exc:
            return _error(str(exc), status="upstream_failed", request_id=outcome.request_id)
        if edited is not None:
            # Tell the model what ran: an approver changed the arguments before approving.
            note = types.TextContent(text=(
                f"Note from Signoff: an approver edited the arguments before approving "
                f"(request {outcome.request_id}); the tool ran with "
                f"{json.dumps(edited, ensure_ascii=False, sort_keys=True)}."))
            meta = {**(result.meta or {}), "signoff/edited_arguments": edited}
            result = result.model_copy(update={"content": [note, *result.content],
                                               "meta": meta})
        return result

    async def _get_task(self, ctx: ServerRequestContext[Any, Any],
                        params: types.GetTaskRequestParams) -> types.GetTaskResult:
        return types.GetTaskResult(**self.tasks.get(params.task_id).model())

    async def _task_result(self, ctx: ServerRequestContext[Any, Any],
                           params: types.GetTaskPayloadRequestParams) -> types.CallToolResult:
        return await self.tasks.result(params.task_id)

    async def _cancel_task(self, ctx: ServerRequestContext[Any, Any],
                           params: types.CancelTaskRequestParams) -> types.CancelTaskResult:
        return types.CancelTaskResult(**(await self.tasks.cancel(params.task_id)).model())

    async def _list_tasks(self, ctx: ServerRequestContext[Any, Any],
                          params: types.PaginatedRequestParams | None) -> types.ListTasksResult:
        return types.ListTasksResult(tasks=[types.Task(**r.model())
                                            for r in self.tasks.tasks.values()])

    async def serve_stdio(self) -> None:
        # Only the transport this gateway serves is imported.
        from mcp.server.stdio import stdio_server

        async with stdio_server() as (read, write):
            await self.server.run(read, write, self.server.create_initialization_options())

    async def serve_http(self, host: str, port: int) -> None:
        # Only the transport this gateway serves is imported.
        import uvicorn

        app: Any = DisconnectWatch(self.server.streamable_http_app(host=host))
        if self.config.http_token:
            app = BearerGate(app, self.config.http_token)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning",
                                lifespan="on")
        await uvicorn.Server(config).serve()


CLIENT_GONE = "signoff.client_gone"


class DisconnectWatch:
    """ASGI middleware: marks an HTTP request whose client disconnected.

    On streamable HTTP a tool call's answer streams back on its POST's response; a client
    that dies drops that connection without sending ``notifications/cancelled``, and the SDK
    (rightly, as streams may resume) keeps the handler running. The gateway has no event store
    to resume from, so a dropped call cannot be answered any more: its handler sees this event
    and withdraws the Signoff request instead of leaving a card nobody's call waits on.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = asyncio.Event()
        scope[CLIENT_GONE] = gone

        async def watched() -> Any:
            message = await receive()
            if message.get("type") == "http.disconnect":
                gone.set()
            return message

        await self.app(scope, watched, send)


class BearerGate:
    """ASGI middleware: every HTTP request must carry the gateway's bearer token, checked in
    constant time before anything else reads it. Written by hand because the SDK's auth
    support is OAuth (token verifiers, resource metadata), far more than one shared secret."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = next((v for k, v in scope.get("headers", []) if k == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                body = b'{"error":"unauthorized","message":"missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def run_gateway(gateway: Gateway, http: tuple[str, int] | None) -> None:
    """Serve until the client goes away (stdio) or a signal arrives; then cancel what waits."""
    try:
        if http is None:
            await gateway.serve_stdio()
        else:
            await gateway.serve_http(*http)
    finally:
        await asyncio.shield(gateway.aclose())
