"""Jinja2 rendering for the inbox: the environment, its filters, and masked-value marking.

Autoescaping is on for every template. Masked values are marked *after* escaping, by
recognising the masking engine's replacement shapes (``[EMAIL]``, ``<EMAIL_3f9a2c>``,
``<EMAIL#…>``, ``****1234``, ``j***@example.com``) in the escaped text, so marking can never
inject markup.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from signoff.cardview.display import safe_name, safe_text

MASK_RE = re.compile(
    r"\[[A-Z][A-Z0-9_]{1,40}\]"  # redacted: [EMAIL]
    r"|&lt;[A-Z][A-Z0-9_]{1,40}(?:_[0-9a-f]{6}|#[0-9a-f]{16})&gt;"  # pseudonym / keyed hash
    r"|\*\*\*-\*\*-\d{4}"  # partial SSN
    r"|\*\*/\*\*/\d{4}"  # partial date of birth
    r"|\b[A-Z]{2}\*{6}[0-9A-Z]{4}\b"  # partial IBAN
    r"|\*{4,}[0-9A-Za-z]{0,4}"  # partial card, phone, account
    r"|\b[A-Za-z0-9]\*{3}@[A-Za-z0-9.-]+"  # partial email
    r"|\b\d{1,3}\.\d{1,3}\.\*\.\*"  # partial IPv4
)


def mark_masked(text: Any) -> Markup:
    """Escape ``text`` and wrap every masked value in ``<mark class="masked">``."""
    escaped = str(escape(text))
    return Markup(MASK_RE.sub(  # noqa: S704 - the input was escaped on the line above
        lambda m: f'<mark class="masked" title="masked by Signoff">{m.group(0)}</mark>',
        escaped))


def masked_json(value: Any) -> Markup:
    """Pretty JSON of a masked structure, with masked values marked."""
    return mark_masked(json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True))


def has_masked(value: Any) -> bool:
    """Whether a (masked) structure contains any masked value."""
    return bool(MASK_RE.search(str(escape(json.dumps(value, ensure_ascii=False)))))


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 days``."""
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m:02d} min" if m else f"{h} h"
    d = s // 86400
    return f"{d} day{'s' if d != 1 else ''}"


def time_left(deadline: float, now: float | None = None) -> str:
    """``59 min left`` or ``past the deadline``."""
    now = time.time() if now is None else now
    if not deadline:
        return ""
    if deadline <= now:
        return "past the deadline"
    return f"{duration(deadline - now)} left"


def ago(ts: float | None, now: float | None = None) -> str:
    """``just now`` / ``5 min ago``."""
    if not ts:
        return ""
    now = time.time() if now is None else now
    delta = now - ts
    return "just now" if delta < 10 else f"{duration(delta)} ago"


def clock(ts: float | None) -> str:
    """``2026-11-23 14:02:11 UTC``."""
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(ts: float | None) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


# Audit details that hold who someone is (shown like names on cards: no look-alikes).
IDENTITY_KEYS = frozenset({"on_behalf_of", "requester", "person", "by", "revoked_by"})


def detail_text(details: dict[str, Any]) -> str:
    """An audit entry's details as short ``key: value`` text (scalars and small maps), made
    display-safe like card text (:mod:`signoff.cardview.display`): audit entries quote the agent."""
    details = {k: safe_name(v) if k in IDENTITY_KEYS and isinstance(v, str) else v
               for k, v in details.items()}
    return safe_text(_detail_text(details))


def _detail_text(details: dict[str, Any]) -> str:
    parts = []
    for key in sorted(details):
        value = details[key]
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items()
                              if isinstance(v, str | int | float))
            if inner:
                parts.append(f"{key}: {inner}")
        elif isinstance(value, bool):
            parts.append(f"{key}: {'yes' if value else 'no'}")
        elif isinstance(value, int | float) and key in ("deadline",):
            parts.append(f"{key}: {clock(float(value))}")
        elif isinstance(value, str | int | float):
            parts.append(f"{key}: {value}")
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            parts.append(f"{key}: {', '.join(value)}")
    return " · ".join(parts)


def progress_percent(approvals: int, quorum: int) -> int:
    return int(100 * min(approvals, max(quorum, 1)) / max(quorum, 1))


def build_environment() -> Environment:
    """The inbox's Jinja2 environment (templates in ``bot/inbox/templates``)."""
    env = Environment(
        loader=PackageLoader("bot.inbox", "templates"),
        autoescape=select_autoescape(["html", "j2"], default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update({
        "masked": mark_masked, "masked_json": masked_json, "time_left": time_left,
        "ago": ago, "clock": clock, "iso": iso, "detail_text": detail_text,
        "duration": duration, "safe_name": safe_name,
    })
    env.globals.update({"has_masked": has_masked, "progress_percent": progress_percent})
    return env
