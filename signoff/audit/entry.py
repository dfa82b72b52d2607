"""One audit entry and its hash: SHA-256(prev || "\\n" || canonical JSON of the body)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from signoff.models import canonical_json

GENESIS = "0" * 64


@dataclass(frozen=True)
class Entry:
    """One audit entry as stored.

    ``error`` is set when the stored fields could not even be parsed (a tampered entry); such
    an entry never verifies.
    """

    stream_id: str
    seq: int
    ts: float
    event: str
    request_id: str
    actor: str
    details: dict[str, Any]
    prev: str
    hash: str
    error: str = ""

    def body(self) -> dict[str, Any]:
        """The fields the hash covers."""
        return {"seq": self.seq, "ts": self.ts, "event": self.event,
                "request_id": self.request_id, "actor": self.actor, "details": self.details}

    def expected_hash(self) -> str:
        return entry_hash(self.prev, self.body())

    @property
    def intact(self) -> bool:
        """Whether the stored hash matches the content (says nothing about the links)."""
        return not self.error and self.expected_hash() == self.hash

    @classmethod
    def from_stream(cls, stream_id: str, fields: dict[str, str]) -> Entry:
        try:
            details = json.loads(fields.get("details", "{}"))
            if not isinstance(details, dict):
                raise ValueError("details is not an object")
            return cls(
                stream_id=stream_id, seq=int(fields["seq"]), ts=float(fields["ts"]),
                event=fields["event"], request_id=fields.get("request_id", ""),
                actor=fields.get("actor", ""), details=details,
                prev=fields["prev"], hash=fields["hash"],
            )
        except (KeyError, ValueError, TypeError) as exc:
            seq = fields.get("seq", "")
            return cls(stream_id, int(seq) if str(seq).isdigit() else -1, 0.0,
                       str(fields.get("event", "")), str(fields.get("request_id", "")),
                       str(fields.get("actor", "")), {}, str(fields.get("prev", "")),
                       str(fields.get("hash", "")), error=f"unreadable entry: {exc}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Inverse of :meth:`to_dict` (an exported JSON line)."""
        try:
            return cls(str(data["id"]), int(data["seq"]), float(data["ts"]), str(data["event"]),
                       str(data.get("request_id", "")), str(data.get("actor", "")),
                       dict(data["details"]), str(data["prev"]), str(data["hash"]))
        except (KeyError, ValueError, TypeError) as exc:
            seq = data.get("seq") if isinstance(data, dict) else None
            return cls(str(data.get("id", "")) if isinstance(data, dict) else "",
                       seq if isinstance(seq, int) else -1, 0.0, "", "", "", {}, "", "",
                       error=f"unreadable entry: {exc}")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.stream_id, **self.body(), "prev": self.prev, "hash": self.hash}


def entry_hash(prev: str, body: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical entry body."""
    return hashlib.sha256(prev.encode() + b"\n" + canonical_json(body)).hexdigest()

