"""One pass over a string for every pattern detector.

An Aho-Corasick automaton (pyahocorasick) holds the literal keywords of every keyword-gated
detector (``ghp_``, ``xox``, ``akia``, ``-----begin``, ``password``, ``born`` ...); one scan of
the lower-cased text tells which of those detectors can possibly match, so a string without
``ghp_`` never runs the GitHub regex. Detectors without keywords (cards, phones, IPs, e-mail)
are gated by a cheap character test (a digit, an ``@``, a ``:``). Only then do the compiled
regexes and validators run. This is how gitleaks keeps hundreds of rules fast.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import ahocorasick


class Span(NamedTuple):
    """A detected sensitive span of one string."""

    start: int
    end: int
    entity: str
    detector: str
    confidence: float


Finder = Callable[[str], Iterable[tuple[int, int, float] | tuple[int, int, float, str]]]


@dataclass(frozen=True)
class Detector:
    """A pattern detector: a compiled regex (or a finder function) plus gates and a validator.

    ``group`` names the part of the match that is sensitive (``password=(hunter2)``).
    ``keywords`` are lower-case literals of which one must occur in the text for the detector to
    run at all; ``context`` words must occur within ``window`` characters before the match.
    ``requires`` is a string of characters of which one must be in the text (``"@"``).
    """

    id: str
    entity: str
    confidence: float
    pattern: re.Pattern[str] | None = None
    group: int | str = 0
    validator: Callable[[str], bool] | None = None
    keywords: tuple[str, ...] = ()
    context: tuple[str, ...] = ()
    window: int = 48
    requires: str = ""
    min_digits: int = 0
    finder: Finder | None = field(default=None, compare=False)

    def find(self, text: str, lower: str) -> Iterable[Span]:
        if self.finder is not None:
            for hit in self.finder(text):
                start, end, conf = hit[0], hit[1], hit[2]
                entity = hit[3] if len(hit) > 3 else self.entity  # type: ignore[misc]
                if end > start:
                    yield Span(start, end, entity, self.id, conf)
            return
        assert self.pattern is not None
        for m in self.pattern.finditer(text):
            start, end = m.span(self.group)
            if start < 0 or end <= start:
                continue
            if self.validator is not None and not self.validator(m.group(self.group)):
                continue
            if self.context:
                before = lower[max(0, start - self.window) : start]
                if not any(w in before for w in self.context):
                    continue
            yield Span(start, end, self.entity, self.id, self.confidence)


_DIGIT = re.compile(r"\d")


class Scanner:
    """Runs a fixed set of detectors over strings; built once, used for every payload."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self._always: list[int] = []
        self._automaton: ahocorasick.Automaton | None = None
        table: dict[str, list[int]] = {}
        for i, d in enumerate(self.detectors):
            if d.keywords:
                for kw in d.keywords:
                    table.setdefault(kw.lower(), []).append(i)
            else:
                self._always.append(i)
        if table:
            automaton = ahocorasick.Automaton()
            for kw, idxs in table.items():
                automaton.add_word(kw, tuple(idxs))
            automaton.make_automaton()
            self._automaton = automaton

    def candidates(self, lower: str) -> set[int]:
        """Indexes of the detectors that may match ``lower`` (the lower-cased text)."""
        found = set(self._always)
        if self._automaton is not None and lower:
            for _, idxs in self._automaton.iter(lower):
                found.update(idxs)
        return found

    def scan(self, text: str, disabled: frozenset[str] = frozenset()) -> list[Span]:
        """All raw (unresolved, possibly overlapping) spans that the detectors find in ``text``."""
        if not text:
            return []
        lower = text.lower()
        ndigits = -1
        spans: list[Span] = []
        for i in sorted(self.candidates(lower)):
            d = self.detectors[i]
            if disabled and (d.id in disabled or d.entity in disabled):
                continue
            if d.requires and not any(c in text for c in d.requires):
                continue
            if d.min_digits:
                if ndigits < 0:
                    ndigits = len(_DIGIT.findall(text))
                if ndigits < d.min_digits:
                    continue
            spans.extend(d.find(text, lower))
        return spans


def resolve(spans: Iterable[Span], min_confidence: float = 0.0) -> list[Span]:
    """Merge overlapping spans into one span each, named after the most confident detector.

    Overlaps are merged into their union rather than dropped, so no part of either value is
    left visible when two detectors disagree on the boundaries.
    """
    ordered = sorted(
        (s for s in spans if s.confidence >= min_confidence), key=lambda s: (s.start, -s.end)
    )
    out: list[Span] = []
    for s in ordered:
        if out and s.start < out[-1].end:
            prev = out[-1]
            best = prev
            if (s.confidence, s.end - s.start) > (prev.confidence, prev.end - prev.start):
                best = s
            out[-1] = Span(prev.start, max(prev.end, s.end), best.entity, best.detector, best.confidence)
        else:
            out.append(s)
    return out
