"""Live updates: one Redis pub/sub subscription per web process, fanned out to open pages.

The web messenger (``bot/web_channel.py``) and the inbox itself publish a small JSON message
on ``keys.events`` whenever a request changes (id, version, status: nothing masked or
secret). Each open page holds a server-sent-events stream fed from a bounded queue here;
the page then re-fetches the fragment it shows, through the same access checks as any page.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import redis.asyncio as aioredis

log = logging.getLogger(__name__)

QUEUE_SIZE = 64
STOP: dict[str, Any] = {"event": "stop"}
FIELDS = ("event", "id", "version", "status")


def clean(raw: str | bytes) -> dict[str, Any] | None:
    """Keep only the announced fields of a published message (None if it is not one)."""
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        return None
    return {k: data[k] for k in FIELDS if k in data and isinstance(data[k], str | int)}


class EventHub:
    """Relays the events channel to any number of subscribers (asyncio queues).

    Args:
        client: an asyncio Redis client.
        channel: the pub/sub channel (``keys.events``).
    """

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        self.r = client
        self.channel = channel
        self.queues: set[asyncio.Queue[dict[str, Any]]] = set()
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="inbox-events")

    async def stop(self) -> None:
        """Stop relaying and tell every open stream to end."""
        for q in list(self.queues):
            self._offer(q, STOP)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.queues.add(q)
        return q

    def unsubscribe(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.queues.discard(q)

    @staticmethod
    def _offer(q: asyncio.Queue[dict[str, Any]], message: dict[str, Any]) -> None:
        if q.full():
            # A slow page loses the oldest event; it re-fetches its fragment anyway.
            with contextlib.suppress(asyncio.QueueEmpty):
                q.get_nowait()
        q.put_nowait(message)

    def publish_local(self, message: dict[str, Any]) -> None:
        """Hand a message to this process's subscribers (what a Redis delivery does)."""
        for q in list(self.queues):
            self._offer(q, message)

    async def _run(self) -> None:
        delay = 0.5
        while True:
            try:
                async with self.r.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.connected.set()
                    delay = 0.5
                    while True:
                        msg = await pubsub.get_message(ignore_subscribe_messages=True,
                                                       timeout=30.0)
                        if msg is None or msg.get("type") != "message":
                            continue
                        data = clean(msg["data"])
                        if data is not None:
                            self.publish_local(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any Redis or socket error: resubscribe with backoff
                self.connected.clear()
                log.warning("inbox events: subscription lost (%s); retrying in %.1fs",
                            type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
