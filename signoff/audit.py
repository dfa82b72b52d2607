"""The audit log: an append-only Redis stream whose entries form a SHA-256 hash chain.

Each entry carries ``seq``, ``ts``, ``event``, ``request_id``, ``actor``, ``details`` (masked
data only: never an original payload or a secret), ``prev`` (the previous entry's hash) and
``hash`` = SHA-256(prev || canonical JSON of the entry). Appends are serialised with
WATCH/MULTI on the chain head, so concurrent writers cannot fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import Any

import redis

from signoff.keys import Keys
from signoff.models import canonical_json

log = logging.getLogger(__name__)

GENESIS = "0" * 64


class Event(str, Enum):
    """Every kind of audit entry."""

    REQUESTED = "requested"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    PREPARED = "prepared"
    CARD_POSTED = "card_posted"
    CARD_FAILED = "card_failed"
    VOTE = "vote"
    CLICK_REFUSED = "click_refused"
    DECIDED = "decided"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    GRANT_ISSUED = "grant_issued"
    GRANT_USED = "grant_used"
    GRANT_REFUSED = "grant_refused"
    GRANT_REVOKED = "grant_revoked"
    POLICY_RELOADED = "policy_reloaded"
    TOKEN_CREATED = "token_created"  # noqa: S105 - an event name, not a password
    KEY_ROTATED = "key_rotated"


@dataclass(frozen=True)
class Entry:
    """One audit entry as stored."""

    stream_id: str
    seq: int
    ts: float
    event: str
    request_id: str
    actor: str
    details: dict[str, Any]
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        """The fields the hash covers."""
        return {"seq": self.seq, "ts": self.ts, "event": self.event,
                "request_id": self.request_id, "actor": self.actor, "details": self.details}

    def expected_hash(self) -> str:
        return entry_hash(self.prev, self.body())

    @classmethod
    def from_stream(cls, stream_id: str, fields: dict[str, str]) -> Entry:
        return cls(
            stream_id=stream_id, seq=int(fields["seq"]), ts=float(fields["ts"]),
            event=fields["event"], request_id=fields.get("request_id", ""),
            actor=fields.get("actor", ""), details=json.loads(fields.get("details", "{}")),
            prev=fields["prev"], hash=fields["hash"],
        )

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.stream_id, **self.body(), "prev": self.prev, "hash": self.hash}


def entry_hash(prev: str, body: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical entry body."""
    return hashlib.sha256(prev.encode() + b"\n" + canonical_json(body)).hexdigest()


class AuditLog:
    """Appends to and reads the audit stream.

    Args:
        client: redis-py client with ``decode_responses=True``.
        keys: the key builder.
    """

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.r = client
        self.keys = keys

    def append(self, event: Event | str, request_id: str = "", actor: str = "",
               **details: Any) -> Entry:
        """Append one entry to the chain (retrying on concurrent appends)."""
        name = event.value if isinstance(event, Event) else event
        details = json.loads(json.dumps(details, default=str))
        while True:
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(self.keys.audit_head)
                    head = pipe.hgetall(self.keys.audit_head)
                    seq = int(head.get("seq", "0")) + 1
                    prev = head.get("hash", GENESIS)
                    ts = round(time.time(), 6)
                    body = {"seq": seq, "ts": ts, "event": name, "request_id": request_id,
                            "actor": actor, "details": details}
                    digest = entry_hash(prev, body)
                    pipe.multi()
                    pipe.xadd(self.keys.audit, {
                        "seq": seq, "ts": repr(ts), "event": name, "request_id": request_id,
                        "actor": actor, "details": json.dumps(details, sort_keys=True),
                        "prev": prev, "hash": digest,
                    })
                    pipe.hset(self.keys.audit_head, mapping={"seq": seq, "hash": digest})
                    stream_id = pipe.execute()[0]
                    if request_id:
                        # Index for the request page; outside the chain, so a lost index entry
                        # never breaks verification.
                        self.r.rpush(self.keys.audit_for(request_id), stream_id)
                    return Entry(stream_id, seq, ts, name, request_id, actor, details, prev, digest)
                except redis.WatchError:
                    continue

    def entries(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        """Entries in stream order."""
        rows = self.r.xrange(self.keys.audit, start, end, count=count)
        return [Entry.from_stream(sid, fields) for sid, fields in rows]

    def iter_entries(self, batch: int = 1000) -> Any:
        """Every entry in order, read in batches."""
        start = "-"
        while True:
            rows = self.r.xrange(self.keys.audit, start, "+", count=batch)
            if not rows:
                return
            for sid, fields in rows:
                yield Entry.from_stream(sid, fields)
            last = rows[-1][0]
            ms, _, n = last.partition("-")
            start = f"{ms}-{int(n) + 1}"

    def for_request(self, request_id: str, limit: int = 200) -> list[Entry]:
        """Entries about one request, through the per-request index (no stream scan)."""
        ids = self.r.lrange(self.keys.audit_for(request_id), 0, limit - 1)
        pipe = self.r.pipeline(transaction=False)
        for sid in ids:
            pipe.xrange(self.keys.audit, sid, sid)
        out: list[Entry] = []
        for rows in pipe.execute():
            out.extend(Entry.from_stream(sid, fields) for sid, fields in rows)
        return out
