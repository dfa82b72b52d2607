"""Signoff's own HMAC on button payloads: (request id, card version, choice).

Slack and Teams sign the request that carries a click; this second signature proves the
button itself was minted by Signoff for that request, so a hand-crafted payload naming
another request id is refused even when the platform signature is valid.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass


class ClickError(ValueError):
    """The button payload is malformed or its HMAC does not verify."""


@dataclass(frozen=True)
class Click:
    """A verified button payload."""

    request_id: str
    version: int
    choice: str


def _mac(key: bytes, request_id: str, version: int, choice: str) -> str:
    msg = f"{request_id}\x1f{version}\x1f{choice}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def sign(key: bytes, request_id: str, version: int, choice: str) -> str:
    """Compact JSON button value (well under Slack's 2000-character limit)."""
    return json.dumps({"r": request_id, "v": version, "c": choice,
                       "s": _mac(key, request_id, version, choice)}, separators=(",", ":"))


def sign_dict(key: bytes, request_id: str, version: int, choice: str) -> dict[str, object]:
    """The same payload as a dict (Teams puts action data in an object)."""
    return {"r": request_id, "v": version, "c": choice,
            "s": _mac(key, request_id, version, choice)}


def verify(key: bytes, value: str | dict[str, object]) -> Click:
    """Check a button payload; raise :class:`ClickError` when it is not ours."""
    try:
        data = json.loads(value) if isinstance(value, str) else dict(value)
        request_id = str(data["r"])
        version = int(str(data["v"]))
        choice = str(data["c"])
        given = str(data["s"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ClickError("malformed button payload") from exc
    if choice not in ("approve", "deny", "details"):
        raise ClickError("unknown choice")
    if not hmac.compare_digest(given, _mac(key, request_id, version, choice)):
        raise ClickError("button signature does not verify")
    return Click(request_id, version, choice)
