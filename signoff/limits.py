"""Agent flood control: rate limits per agent and per (agent, action), and a cap on open
requests per agent, all configured in the policy (``limits:`` and per agent).

Counters are fixed-window ``INCR`` keys that expire with their window (a well-known Redis
pattern; a sliding log would cost a sorted-set entry per request for little gain here). Open
requests per agent are a sorted set kept by the state machine's index mechanism: it is added
at create and removed by whichever atomic transition closes the request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from signoff.runtime import Runtime


class LimitsLike(Protocol):
    """What the policy says about one agent (see ``policy.Limits``)."""

    @property
    def rate(self) -> tuple[int, int] | None: ...  # (requests, window seconds)

    @property
    def per_action_rate(self) -> tuple[int, int] | None: ...

    @property
    def max_pending(self) -> int | None: ...


@dataclass(frozen=True)
class Verdict:
    """Why a request is refused (``None`` from :func:`check` means it may go on)."""

    code: str  # rate_limited | pending_cap
    message: str


def _window_text(seconds: int) -> str:
    return {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(seconds,
                                                                       f"{seconds} seconds")


def check(rt: Runtime, agent: str, action: str, limits: LimitsLike,
          now: float | None = None) -> Verdict | None:
    """Count this request against the agent's limits; return a verdict when over one."""
    now = time.time() if now is None else now
    if limits.max_pending is not None:
        open_now = rt.redis.zcard(rt.keys.open_for_agent(agent))
        if open_now >= limits.max_pending:
            return Verdict("pending_cap", f"pending_cap: {agent} already has {open_now} open "
                           f"requests; the policy allows {limits.max_pending}")
    checks = []
    if limits.rate is not None:
        checks.append(("agent", agent, limits.rate, f"requests from {agent}"))
    if limits.per_action_rate is not None:
        checks.append(("action", f"{agent}|{action}", limits.per_action_rate,
                       f"{action} requests from {agent}"))
    if not checks:
        return None
    pipe = rt.redis.pipeline(transaction=False)
    for scope, ident, (_count, window), _ in checks:
        key = rt.keys.rate(scope, ident, int(now // window))
        pipe.incr(key)
        pipe.expire(key, window * 2)
    counts = pipe.execute()[0::2]
    for (_scope, _ident, (count, window), what), seen in zip(checks, counts, strict=True):
        if int(seen) > count:
            return Verdict("rate_limited", f"rate_limited: more than {count} {what} per "
                           f"{_window_text(window)}")
    return None
