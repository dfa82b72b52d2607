"""The narrow interface each approval channel implements (Slack, Teams, web).

Workers post one card per destination and later update it in place; everything
platform-specific (rendering, limits, retries, error texts) stays behind this interface.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from bot.cards.view import CardView


class DeliveryError(Exception):
    """A card could not be delivered.

    Args:
        message: what went wrong, safe to show and audit (no tokens).
        retryable: whether trying again later may succeed (429, 5xx, timeouts).
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


@runtime_checkable
class Messenger(Protocol):
    """One chat platform, as the notify and update jobs see it."""

    kind: str

    async def post(self, view: CardView, destination: str) -> dict[str, Any]:
        """Post a card; return a reference the update needs (e.g. channel and ts)."""
        ...

    async def update(self, view: CardView, destination: str, ref: dict[str, Any]) -> None:
        """Replace a posted card with the current view (idempotent)."""
        ...

    async def tell(self, destination: str, text: str) -> None:
        """Send a short plain message (vote thread reply, "your request was decided")."""
        ...

    async def find_posted(self, view: CardView, destination: str) -> dict[str, Any] | None:
        """Find a card for this request already posted at the destination (after a crash
        between posting and recording), so a retried job does not post twice."""
        ...
