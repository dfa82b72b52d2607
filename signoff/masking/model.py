"""What a masking returns: the masked value and a value-free report of what was found."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Finding:
    """One masked span. It never holds the original value.

    ``path`` is JSONPath-ish (``$.params.customer.email``; a string that was itself JSON adds
    ``(json)``: ``$.params.body(json).password``); ``start``/``end`` are character offsets in
    the original string at that path (for a whole-value mask: ``0`` and its length).
    """

    detector: str
    entity: str
    path: str
    start: int
    end: int
    strategy: str
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class MaskResult:
    """The masked payload (same shape as the input) and the findings."""

    masked: Any
    findings: list[Finding] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """``{"EMAIL": 2, "SECRET": 3}``, in order of first appearance."""
        return dict(Counter(f.entity for f in self.findings))

    def summary(self) -> str:
        """``"6 fields masked: 2 EMAIL, 1 CREDIT_CARD, 3 SECRET"`` or ``"nothing masked"``."""
        if not self.findings:
            return "nothing masked"
        n = len(self.findings)
        parts = ", ".join(f"{c} {e}" for e, c in self.counts().items())
        return f"{n} field{'s' if n != 1 else ''} masked: {parts}"

    def to_dict(self) -> dict[str, Any]:
        """``{"masked": …, "findings": [...]}``, the shape ``signoff mask`` prints."""
        return {"masked": self.masked, "findings": [f.to_dict() for f in self.findings]}
