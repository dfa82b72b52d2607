"""Display-safe text: what an agent wrote, shown so that it cannot disguise itself on a card.

A request is written by an agent, and a hostile or confused one can use Unicode against the
approver: a right-to-left override (U+202E) reverses what follows it on screen,
zero-width characters hide inside names, and look-alike letters (Cyrillic U+0430 for Latin
``a``) make a name read as a trusted agent's. Every renderer (Slack, Teams, the web
inbox, the API view) takes its text from :func:`signoff.cardview.view.build_view`, which passes it
through here once, so no renderer needs its own copy of these rules:

- :func:`safe_text` (prose: reason, resource, payload strings, comments): invisible and
  direction-changing characters (Unicode categories Cf, Cc except newline and tab, Zl, Zp,
  Co, Cs) are replaced by a visible escape such as ``\\u202e``; other letters stay as they are.
- :func:`safe_name` (identities: the requesting agent, the person it acts for, voters): the
  same, and every non-ASCII character is escaped too, so a look-alike can never pass for
  the ASCII name it imitates (``agent:p\\u0430yroll``).

Pure; no I/O. Stored records keep the original text (hashes and grants bind to it).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

# Categories that draw nothing or change how the text around them is drawn.
HIDDEN_CATEGORIES = frozenset({"Cf", "Cc", "Zl", "Zp", "Co", "Cs"})
_KEEP = frozenset("\n\t")
# ASCII fast path: only C0 controls and DEL can be hidden there.
_ASCII_HIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def escape_char(ch: str) -> str:
    """``\\u202e`` / ``\\U0001d4b6``: the visible form of one character."""
    code = ord(ch)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def hidden(ch: str) -> bool:
    """Whether a character draws nothing or reorders what is around it."""
    return ch not in _KEEP and unicodedata.category(ch) in HIDDEN_CATEGORIES


def safe_text(text: str) -> str:
    """Prose with every invisible or direction-changing character shown as an escape."""
    if text.isascii():
        if not _ASCII_HIDDEN.search(text):
            return text
    elif not any(hidden(ch) for ch in text):
        return text
    return "".join(escape_char(ch) if hidden(ch) else ch for ch in text)


def safe_name(name: str) -> str:
    """An identity as it must be shown: ASCII as it is, anything else escaped."""
    if name.isascii() and not _ASCII_HIDDEN.search(name):
        return name
    return "".join(ch if ch.isascii() and not hidden(ch) else escape_char(ch) for ch in name)


def safe_value(value: Any) -> Any:
    """:func:`safe_text` over every string (keys too) of a JSON value."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(str(k)): safe_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [safe_value(v) for v in value]
    return value


def suspicious(name: str) -> bool:
    """Whether :func:`safe_name` changes ``name`` (cards may say so next to it)."""
    return safe_name(name) != name
