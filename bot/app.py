"""The one aiohttp application ``signoff web`` serves.

It mounts the HTTP API, ``/healthz`` and ``/metrics`` here, then each channel's routes from
its own package (``setup(app, rt)`` in ``bot.slack.web``, ``bot.teams.web``,
``bot.inbox.web``); a channel whose settings are absent mounts nothing.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import sys
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bot import api
from bot.appkeys import METRICS, RT
from signoff import tracing
from signoff.metrics import Metrics
from signoff.runtime import Runtime

log = logging.getLogger(__name__)


CHANNEL_MOUNTS = ("bot.slack.web", "bot.teams.web", "bot.inbox.web", "bot.wellknown",
                  "bot.grants_api", "bot.decisions_api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    route = request.match_info.route.resource.canonical if request.match_info.route.resource \
        else "unmatched"
    metrics = request.app[METRICS]
    start = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.http_requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(time.perf_counter() - start)


async def healthz(request: web.Request) -> web.Response:
    rt = request.app[RT]
    try:
        await asyncio.wait_for(asyncio.to_thread(rt.redis.ping), timeout=2)
    except Exception as exc:
        return web.json_response({"ok": False, "redis": f"unreachable: {type(exc).__name__}"},
                                 status=503)
    return web.json_response({"ok": True, "redis": "ok"})


async def metrics_view(request: web.Request) -> web.Response:
    registry = request.app[METRICS].registry
    body = await asyncio.to_thread(generate_latest, registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


# The handlers' threads spend their time waiting on Redis (a vote and its finalize are tens of
# round trips). With Python's default switch interval (5 ms), each reply waited for the GIL
# held by another thread: tens of clicks a second then took hundreds of milliseconds each.
SWITCH_INTERVAL = 0.0005


def create_app(rt: Runtime) -> web.Application:
    """Build the web application for a runtime."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    tracing.configure(rt.settings, "web")
    app = web.Application(middlewares=[_observe], client_max_size=rt.settings.max_request_bytes)
    app[RT] = rt
    metrics = Metrics()
    metrics.watch(rt)
    app[METRICS] = metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_view)
    api.setup(app, rt)
    for module_name in CHANNEL_MOUNTS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.setup(app, rt)
    return app
