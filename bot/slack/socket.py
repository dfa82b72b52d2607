"""Socket Mode: receive Slack's interactions over a WebSocket instead of a public URL.

When ``SLACK_APP_TOKEN`` (``xapp-…``, scope ``connections:write``) is set, ``signoff web``
opens the connection at startup with slack-bolt's aiohttp ``AsyncSocketModeHandler`` and the
same bolt app (and listeners) as ``POST /slack/events``. Requests over the socket are
authenticated by the app token, so bolt skips the signature check for them. The first
connection is retried in the background with tenacity, so a Slack outage at startup does not
stop the web server; after that slack_sdk reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.app.async_app import AsyncApp
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from signoff.settings import Settings

log = logging.getLogger(__name__)

SOCKET: web.AppKey[AsyncSocketModeHandler] = web.AppKey("slack_socket", AsyncSocketModeHandler)
_TASK: web.AppKey[asyncio.Task[None]] = web.AppKey("slack_socket_task", asyncio.Task)


async def connect(handler: AsyncSocketModeHandler, max_wait: float = 60.0) -> None:
    """Connect, retrying with exponential backoff until it works (or the task is cancelled)."""
    async for attempt in AsyncRetrying(wait=wait_exponential(multiplier=1, max=max_wait),
                                       retry=retry_if_exception_type(Exception),
                                       reraise=True):
        with attempt:
            try:
                await handler.connect_async()
            except Exception as exc:
                log.warning("Slack Socket Mode connection failed (%s); retrying",
                            type(exc).__name__)
                raise
    log.info("Slack Socket Mode connected")


def attach(app: web.Application, bolt: AsyncApp, settings: Settings) -> None:
    """Open the Socket Mode connection when the web app starts; close it on shutdown."""
    if settings.slack_app_token is None:
        raise ValueError("SLACK_APP_TOKEN is not set")
    token = settings.slack_app_token.get_secret_value()

    async def _start(app: web.Application) -> None:
        handler = AsyncSocketModeHandler(bolt, app_token=token, web_client=bolt.client)
        app[SOCKET] = handler
        app[_TASK] = asyncio.ensure_future(connect(handler))

    async def _stop(app: web.Application) -> None:
        task = app.get(_TASK)
        if task is not None and not task.done():
            task.cancel()
        handler = app.get(SOCKET)
        if handler is not None:
            await handler.close_async()

    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
