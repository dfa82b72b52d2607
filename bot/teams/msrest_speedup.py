"""One fix to msrest (botbuilder's HTTP layer), applied when :mod:`bot.teams` is imported.

botbuilder builds a fresh connector client (and a user-token client) for every inbound
activity and every proactive turn, and each builds msrest's ``ClientRetryPolicy``, whose
constructor computes ``[i for i in range(999) if i not in self.safe_codes]`` with
``safe_codes`` a 502-item *list*: about half a million comparisons, 3.3 ms of CPU per policy
and two or three policies per Teams call, measured here (bench/teams_calls.py). That was
most of a worker's CPU under load. msrest is no longer developed, so the fix lives here:
``safe_codes`` becomes a frozenset with the same members, and the computed retry list is
exactly the same (a test compares it with the original).
"""

from __future__ import annotations

from msrest.universal_http.requests import ClientRetryPolicy


def apply() -> None:
    """Make ``ClientRetryPolicy.safe_codes`` a frozenset (idempotent)."""
    codes = ClientRetryPolicy.safe_codes
    if not isinstance(codes, frozenset):
        ClientRetryPolicy.safe_codes = frozenset(codes)  # type: ignore[assignment]


apply()
