"""Time windows ("business hours"): when a rule's normal requirement applies.

Outside its window a rule auto-denies with the window's reason. Days and hours are read in
the window's own time zone (IANA names through :mod:`zoneinfo`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Window:
    """Allowed days and a daily ``start``-``end`` range (end exclusive) in ``timezone``."""

    timezone: str
    days: frozenset[int]  # 0 = Monday, as datetime.weekday()
    start: datetime.time
    end: datetime.time
    reason: str

    def contains(self, now: datetime.datetime) -> bool:
        """Whether ``now`` (timezone-aware) falls inside the window."""
        local = now.astimezone(ZoneInfo(self.timezone))
        if local.weekday() not in self.days:
            return False
        clock = local.time().replace(tzinfo=None)
        if self.start <= self.end:
            return self.start <= clock < self.end
        return clock >= self.start or clock < self.end  # overnight window, e.g. 22:00-06:00

    def local_text(self, now: datetime.datetime) -> str:
        """``Sat 14:05 Europe/Berlin`` for explanations."""
        local = now.astimezone(ZoneInfo(self.timezone))
        return f"{local.strftime('%a %H:%M')} {self.timezone}"

    def __str__(self) -> str:
        return f"{_days_text(self.days)} {self.start:%H:%M}-{self.end:%H:%M} {self.timezone}"


def _days_text(days: frozenset[int]) -> str:
    """``Mon-Fri``, ``Mon, Wed``, ``Sat-Sun``: runs of three or more days are shortened."""
    ordered = sorted(days)
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    parts = []
    for run in runs:
        names = [DAYS[d].capitalize() for d in run]
        parts.append(f"{names[0]}-{names[-1]}" if len(run) >= 3 else ", ".join(names))
    return ", ".join(parts)


def parse_hours(text: str) -> tuple[datetime.time, datetime.time]:
    """``"09:00-18:00"`` -> two times. ``24:00`` is accepted as an end meaning midnight.

    Raises:
        ValueError: When ``text`` is not ``HH:MM-HH:MM``.
    """
    try:
        first, second = (part.strip() for part in text.split("-"))
        start = datetime.time.fromisoformat(first)
        end = datetime.time.max if second == "24:00" else datetime.time.fromisoformat(second)
    except ValueError:
        raise ValueError(f"'{text}' is not a range like 09:00-18:00") from None
    if start == end:
        raise ValueError(f"'{text}' is an empty range")
    return start, end
