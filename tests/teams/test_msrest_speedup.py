"""The msrest fix (bot.teams.msrest_speedup) changes the cost of a retry policy, not what it is."""

from __future__ import annotations

from msrest.universal_http.requests import ClientRetryPolicy

import bot.teams  # noqa: F401  (applies the fix)

# msrest's own definition, as published (msrest/universal_http/requests.py).
ORIGINAL_SAFE_CODES = [i for i in range(500) if i != 408] + [501, 505]


def test_retry_codes_are_unchanged() -> None:
    expected = [i for i in range(999) if i not in ORIGINAL_SAFE_CODES]
    assert isinstance(ClientRetryPolicy.safe_codes, frozenset)
    assert ClientRetryPolicy().policy.status_forcelist == expected


def test_applying_twice_is_harmless() -> None:
    from bot.teams import msrest_speedup

    msrest_speedup.apply()
    assert ClientRetryPolicy.safe_codes == frozenset(ORIGINAL_SAFE_CODES)
