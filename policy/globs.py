"""Shell-style globs (``db.export*``, ``role/*-admin``), compiled once into one regex per set.

The matching semantics are exactly :func:`fnmatch.fnmatchcase` (case-sensitive, ``*`` also
crosses ``.`` and ``/``); :func:`fnmatch.translate` does the compiling.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

_WILD = re.compile(r"[*?\[]")


def _never(value: str) -> None:
    return None


@dataclass(frozen=True)
class GlobSet:
    """Any-of a list of globs. An empty set matches nothing."""

    patterns: tuple[str, ...]
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)
    _text: str = field(default="", compare=False, repr=False)

    @classmethod
    def of(cls, patterns: str | list[str] | tuple[str, ...]) -> GlobSet:
        """Compile ``patterns`` (one glob or several)."""
        items = (patterns,) if isinstance(patterns, str) else tuple(patterns)
        if not items:
            return cls(())
        regex = re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in items), re.DOTALL)
        return cls(items, regex, " or ".join(f"'{p}'" for p in items))

    @property
    def matcher(self) -> Any:
        """The compiled regex's ``match`` method (hot loops call it directly)."""
        return self._regex.match if self._regex is not None else _never

    def match(self, value: str) -> bool:
        """Whether ``value`` matches any of the globs."""
        return self._regex is not None and self._regex.match(value) is not None

    @property
    def literal_prefixes(self) -> tuple[str, ...]:
        """Each glob's text before its first wildcard (the whole text for a literal)."""
        return tuple(_WILD.split(p, maxsplit=1)[0] for p in self.patterns)

    def __str__(self) -> str:
        return self._text
