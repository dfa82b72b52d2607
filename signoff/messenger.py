"""The narrow interface each approval channel implements (Slack, Teams, web).

Workers post one card per destination and later update it in place; everything
platform-specific (rendering, limits, retries, error texts) stays behind this interface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from signoff.cardview.view import CardView


class DeliveryError(Exception):
    """A card could not be delivered.

    Args:
        message: what went wrong, safe to show and audit (no tokens).
        retryable: whether trying again later may succeed (429, 5xx, timeouts).
        ambiguous: the platform may have carried the call out (a 5xx or a timeout after the
            request was sent): look before posting again.
    """

    def __init__(self, message: str, retryable: bool = True, ambiguous: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.ambiguous = ambiguous


class RateLimited(DeliveryError):
    """The platform refused the call for now (HTTP 429): nothing was done, and no call to this
    rate's scope should be made for ``retry_after`` seconds. Messengers never wait it out
    themselves; the delivery reschedules the destination's work for that time.
    """

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message, retryable=True)
        self.retry_after = max(float(retry_after), 0.0)


@dataclass(frozen=True)
class SendLimit:
    """A platform's documented rate for posting, as the delivery keeps to it.

    Args:
        per_second: calls per second, sustained.
        burst: calls allowed at once after a quiet spell.
        per: ``"destination"`` (each channel has its own, like Slack's one message per second
            per channel) or ``"app"`` (one for the whole app, like Teams' per-app limit).
    """

    per_second: float
    burst: float
    per: str = "destination"


@runtime_checkable
class Messenger(Protocol):
    """One chat platform, as the notify and update jobs see it."""

    kind: str
    #: Whether posting again after a post that a crash interrupted can never leave a second
    #: card: the platform is looked up first (:meth:`find_posted`) or a post is idempotent.
    #: False where the platform offers a bot no lookup (Teams): such a post is not repeated,
    #: so a destination gets at most one card (it may stay unrecorded).
    repost_safe: bool

    async def post(self, view: CardView, destination: str) -> dict[str, Any]:
        """Post a card; return a reference the update needs (e.g. channel and ts)."""
        ...

    async def update(self, view: CardView, destination: str, ref: dict[str, Any], *,
                     thread_votes: bool = True) -> None:
        """Replace a posted card with the current view (idempotent). ``thread_votes``: also
        announce new votes in the card's thread where the platform has one (skipped when
        the channel's rate has no room; the card itself lists every vote)."""
        ...

    async def tell(self, destination: str, text: str) -> None:
        """Send a short plain message (vote thread reply, "your request was decided")."""
        ...

    async def find_posted(self, view: CardView, destination: str) -> dict[str, Any] | None:
        """Find a card for this request already posted at the destination (after a crash
        between posting and recording), so a retried job does not post twice."""
        ...


@runtime_checkable
class DigestMessenger(Messenger, Protocol):
    """A messenger that can coalesce several requests into one message, for destinations
    that would otherwise get more cards than their rate allows."""

    limit: SendLimit | None

    async def post_digest(self, views: Sequence[CardView], destination: str,
                          digest_id: str) -> dict[str, Any]:
        """Post one message listing ``views``; return its reference."""
        ...

    async def update_digest(self, views: Sequence[CardView], destination: str,
                            ref: dict[str, Any], digest_id: str) -> None:
        """Bring a digest message up to date (requests added, decided)."""
        ...
