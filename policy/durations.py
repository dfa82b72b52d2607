"""Durations in policy files: ``90s``, ``15m``, ``1h30m``, ``2d`` or a bare number of seconds.

Hand-written because the grammar is four units wide; a dependency (pytimeparse, isodate)
would accept many more spellings than we want people to rely on.
"""

from __future__ import annotations

import re

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
DURATION_PATTERN = r"^(?=\d)(?:\d+d)?(?:\d+h)?(?:\d+m)?(?:\d+s)?$"


def parse_duration(value: int | str) -> int:
    """Seconds in ``value``.

    Args:
        value: A non-negative int (seconds) or a string such as ``"1h30m"``.

    Returns:
        The number of seconds.

    Raises:
        ValueError: If ``value`` is not a duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value} is negative")
        return value
    text = value.strip()
    match = _DURATION.match(text)
    if not text or match is None:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 1h30m or 2d")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + seconds


def format_duration(seconds: int) -> str:
    """The shortest ``1h30m``-style spelling of ``seconds`` (``0s`` for zero)."""
    if seconds == 0:
        return "0s"
    parts = []
    rest = seconds
    for unit, size in _UNITS.items():
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
