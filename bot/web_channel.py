"""The web inbox as a channel: "posting" a card means announcing it to open inbox pages.

The inbox renders from the store itself, so there is nothing to deliver; this messenger only
publishes change events (server-sent events relay them) and records the card like any other,
so the request page shows which channels hold it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis

from signoff.cardview.view import CardView


class WebMessenger:
    """Messenger for the built-in web inbox."""

    kind = "web"
    repost_safe = True  # a post only publishes the stored request's view again

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.r = client
        self.channel = channel

    def announce(self, view: CardView, event: str) -> None:
        """Publish the change (synchronously: one Redis call, no platform to wait for)."""
        message = json.dumps({"event": event, "id": view.request_id, "version": view.version,
                              "status": view.status.value})
        self.r.publish(self.channel, message)

    async def _publish(self, view: CardView, event: str) -> None:
        await asyncio.to_thread(self.announce, view, event)

    async def post(self, view: CardView, destination: str) -> dict[str, Any]:
        await self._publish(view, "posted")
        return {"inbox": destination}

    async def update(self, view: CardView, destination: str, ref: dict[str, Any], *,
                     thread_votes: bool = True) -> None:
        await self._publish(view, "updated")

    async def tell(self, destination: str, text: str) -> None:
        return None

    async def find_posted(self, view: CardView, destination: str) -> dict[str, Any] | None:
        return None
