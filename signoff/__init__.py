"""Signoff: action-level approvals for AI agents.

The agent SDK lives here (``signoff.Client``, ``signoff.AsyncClient``,
``signoff.requires_approval``); it speaks only the Redis wire contract in
``schemas/request.v1.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ApprovalDenied",
    "ApprovalError",
    "ApprovalTimeout",
    "AsyncClient",
    "Client",
    "Decision",
    "DecisionMismatch",
    "requires_approval",
]

if TYPE_CHECKING:  # pragma: no cover
    from signoff.sdk import (
        ApprovalDenied,
        ApprovalError,
        ApprovalTimeout,
        AsyncClient,
        Client,
        Decision,
        DecisionMismatch,
        requires_approval,
    )


def __getattr__(name: str) -> Any:
    # Lazy so that `import signoff.keys` in a worker does not pull in the SDK's deps.
    if name in __all__:
        from signoff import sdk

        return getattr(sdk, name)
    raise AttributeError(name)
