"""The audit stream: appends (one Lua compare-and-set per entry) and reads.

An append hashes against the head this process knows and the script appends only if that is
still the head, so concurrent writers can never fork the chain, and a single writer needs one
round trip per entry.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources
from typing import Any

import redis

from signoff.audit.entry import GENESIS, Entry, entry_hash
from signoff.audit.events import SEAL_EVENTS, Event
from signoff.audit.index import AuditIndex
from signoff.audit.merkle import MerkleState
from signoff.keys import Keys

# Detail keys whose values are never written, whatever a caller passes: a last line of
# defence behind the rule that callers audit masked data and hashes only.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "grant", "authorization",
                         "api_key", "apikey", "private_key", "ciphertext", "cookie", "params",
                         "payload", "original"})
REDACTED = "[redacted]"
MAX_APPEND_ATTEMPTS = 1000


def redact(details: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe details with the values of secret-looking keys removed, at any depth."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): REDACTED if str(k).lower() in SECRET_KEYS else walk(v)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return dict(walk(json.loads(json.dumps(details, default=str))))


@cache
def _append_script() -> str:
    return resources.files("signoff.lua").joinpath("audit_append.lua").read_text()


class AuditLog:
    """Appends to and reads the audit stream.

    Args:
        client: redis-py client with ``decode_responses=True``.
        keys: the key builder.
        index_ttl: seconds the per-request index of an entry lives (0: forever); the chain
            itself never expires.
    """

    def __init__(self, client: redis.Redis, keys: Keys, index_ttl: int = 0) -> None:
        # Any: redis-py's stubs cannot express decode_responses=True (replies typed bytes|str).
        self.r: Any = client
        self.keys = keys
        self.index_ttl = index_ttl
        self._script = client.register_script(_append_script())
        self.tree = MerkleState(client, keys)
        self.index = AuditIndex(client, keys)
        # The head this process last saw: a hint that saves a read per append. The Lua
        # compare-and-set is what keeps the chain right when the hint is stale.
        self._head: tuple[int, str] | None = None
        self._lock = threading.Lock()
        # Called with each appended entry (Runtime signs a checkpoint after decisions here).
        self.after_append: Callable[[Entry], None] | None = None
        # This thread's open one_seal() blocks and the sealing entry they hold back.
        self._deferred = threading.local()

    @contextmanager
    def one_seal(self) -> Iterator[None]:
        """Entries appended in this block (by this thread) that call for a checkpoint share
        one: ``after_append`` runs once, for the newest of them, at :meth:`seal_pending` or
        when the outermost block ends. A decision's entries (decided, grant issued) are then
        covered by one signed checkpoint, made before its reply goes out, instead of one each.
        """
        depth = getattr(self._deferred, "depth", 0)
        self._deferred.depth = depth + 1
        try:
            yield
        finally:
            self._deferred.depth = depth
            if depth == 0:
                self.seal_pending()

    def seal_pending(self) -> None:
        """Run ``after_append`` for the sealing entry a :meth:`one_seal` block held back."""
        entry: Entry | None = getattr(self._deferred, "pending", None)
        self._deferred.pending = None
        if entry is not None and self.after_append is not None:
            self.after_append(entry)

    def _appended(self, entry: Entry) -> None:
        if self.after_append is None:
            return
        if getattr(self._deferred, "depth", 0) and entry.event in SEAL_EVENTS:
            self._deferred.pending = entry
            return
        self.after_append(entry)

    def head(self) -> tuple[int, str, str]:
        """(seq, hash, stream id) of the newest entry as the head records it."""
        raw = self.r.hgetall(self.keys.audit_head)
        return int(raw.get("seq", "0")), raw.get("hash", GENESIS), raw.get("id", "")

    def key_rotated(self, purpose: str, kid: str, at: float) -> Entry:
        """A signing key was created or rotated (the key ring reports it here, so it needs
        neither the event vocabulary nor the audit package)."""
        return self.append(Event.KEY_ROTATED, "", "signoff", purpose=purpose, kid=kid, at=at)

    def append(self, event: Event | str, request_id: str = "", actor: str = "",
               **details: Any) -> Entry:
        """Append one entry to the chain (retrying while other writers move the head)."""
        name = event.value if isinstance(event, Event) else event
        clean = redact(details)
        details_json = json.dumps(clean, sort_keys=True)
        with self._lock:
            head = self._head
        if head is None:
            seq0, hash0, _ = self.head()
            head = (seq0, hash0)
        for _ in range(MAX_APPEND_ATTEMPTS):
            seq, prev = head[0] + 1, head[1]
            ts = round(time.time(), 6)
            body = {"seq": seq, "ts": ts, "event": name, "request_id": request_id,
                    "actor": actor, "details": clean}
            digest = entry_hash(prev, body)
            index_key = self.keys.audit_for(request_id) if request_id else self.keys.audit_head
            result = self._script(
                keys=[self.keys.audit, self.keys.audit_head, index_key],
                args=[prev, seq, repr(ts), name, request_id, actor, details_json, digest,
                      "1" if request_id else "0", self.index_ttl])
            if result[0] == "ok":
                with self._lock:
                    self._head = (seq, digest)
                entry = Entry(str(result[1]), seq, ts, name, request_id, actor, clean, prev,
                              digest)
                self._appended(entry)
                return entry
            head = (int(result[1]), str(result[2]))
        raise RuntimeError("audit append kept conflicting; is something rewriting the head?")

    def entries(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        """Entries in stream order."""
        rows = self.r.xrange(self.keys.audit, start, end, count=count)
        return [Entry.from_stream(sid, fields) for sid, fields in rows]

    def iter_entries(self, start: str = "-", end: str = "+", batch: int = 1000
                     ) -> Iterator[Entry]:
        """Every entry between two stream ids, in order, read in batches."""
        while True:
            rows = self.r.xrange(self.keys.audit, start, end, count=batch)
            if not rows:
                return
            for sid, fields in rows:
                yield Entry.from_stream(sid, fields)
            if len(rows) < batch:
                return
            ms, _, n = rows[-1][0].partition("-")
            start = f"{ms}-{int(n) + 1}"

    def read_after(self, stream_id: str, count: int) -> list[Entry]:
        """Up to ``count`` entries after ``stream_id`` (exclusive; "" for the first)."""
        start = f"({stream_id}" if stream_id else "-"
        return self.entries(start, "+", count=count)

    def for_request(self, request_id: str, limit: int = 500) -> list[Entry]:
        """Entries about one request, through the per-request index (no stream scan)."""
        ids = self.r.lrange(self.keys.audit_for(request_id), 0, limit - 1)
        pipe = self.r.pipeline(transaction=False)
        for sid in ids:
            pipe.xrange(self.keys.audit, sid, sid)
        out: list[Entry] = []
        for rows in pipe.execute():
            out.extend(Entry.from_stream(sid, fields) for sid, fields in rows)
        return out

    def count(self) -> int:
        return int(self.r.xlen(self.keys.audit))

