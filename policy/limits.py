"""Flood limits for agents: the ``limits:`` section and each agent's own ``limits:``.

```yaml
limits:                     # every agent
  rate: 60/min              # requests per agent
  per_action_rate: 20/min   # requests per agent and action
  max_pending: 50           # open (received or pending) requests per agent
directory:
  agents:
    - id: agent:bulk
      owner: erin@example.com
      limits: {rate: 600/min, max_pending: 500}   # overrides, key by key
```

Rates are ``N/s``, ``N/sec``, ``N/min``, ``N/hour`` or ``N/day``. Absent keys mean no limit.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

RATE_PATTERN = r"^\s*[1-9][0-9]*\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*$"
_UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
          "hour": 3600, "d": 86400, "day": 86400}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Flood limits per agent (rate, per-action rate, open requests).",
    "additionalProperties": False,
    "properties": {
        "rate": {"type": "string", "pattern": RATE_PATTERN,
                 "x-message": "must be a rate like 60/min (s, min, hour or day)"},
        "per_action_rate": {"type": "string", "pattern": RATE_PATTERN,
                            "x-message": "must be a rate like 20/min (s, min, hour or day)"},
        "max_pending": {"type": "integer", "minimum": 1},
    },
}


def parse_rate(text: str) -> tuple[int, int]:
    """``"60/min"`` -> ``(60, 60)``: (requests, window in seconds)."""
    m = re.match(RATE_PATTERN, text)
    if not m:
        raise ValueError(f"not a rate: {text!r}")
    count = int(text.split("/")[0])
    return count, _UNITS[m.group(1)]


@dataclass(frozen=True)
class Limits:
    """One agent's limits; ``None`` means unlimited."""

    rate: tuple[int, int] | None = None
    per_action_rate: tuple[int, int] | None = None
    max_pending: int | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None, base: Limits | None = None) -> Limits:
        """Limits from a (schema-valid) mapping, over ``base`` key by key."""
        out = base or cls()
        if not spec:
            return out
        # Values the schema refuses are skipped here: `policy check` reports them with their
        # line and column, and a file with errors is never loaded.
        if isinstance(spec.get("rate"), str) and re.match(RATE_PATTERN, spec["rate"]):
            out = replace(out, rate=parse_rate(spec["rate"]))
        rate = spec.get("per_action_rate")
        if isinstance(rate, str) and re.match(RATE_PATTERN, rate):
            out = replace(out, per_action_rate=parse_rate(rate))
        if isinstance(spec.get("max_pending"), int):
            out = replace(out, max_pending=int(spec["max_pending"]))
        return out
