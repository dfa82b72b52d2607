"""What the policy needs of a request: the port the core's request model fills.

The policy package is the bottom layer and imports nothing of Signoff's core; the evaluator,
``canonical_request`` and ``can_decide`` read a request through this protocol, which
``signoff.models.AgentRequest`` (a pydantic model) satisfies structurally.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, Self, TypeVar


class PolicyRequest(Protocol):
    """An agent's request as the policy reads it (fields of the wire contract)."""

    @property
    def action(self) -> str: ...

    @property
    def resource(self) -> str: ...

    @property
    def params(self) -> Any: ...

    @property
    def requester(self) -> str: ...

    @property
    def on_behalf_of(self) -> str | None: ...

    @property
    def reason(self) -> str | None: ...

    @property
    def context(self) -> dict[str, Any]: ...

    @property
    def environment(self) -> str | None: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]:
        """The request as plain data (``mode="json"``: what conditions see)."""
        ...

    def model_copy(self, *, update: Mapping[str, Any] | None = ..., deep: bool = ...) -> Self:
        """A copy with ``update``'s fields replaced (canonical identities)."""
        ...


RequestT = TypeVar("RequestT", bound=PolicyRequest)
