"""Helpers to fill the audit chain and to tamper with it the way an attacker with Redis
write access would (a stream entry cannot be edited in place, so the stream is rebuilt)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from signoff import audit
from signoff.runtime import Runtime

Raw = list[tuple[str, dict[str, str]]]


def fill(rt: Runtime, n: int, prefix: str = "req") -> list[audit.Entry]:
    events = [audit.Event.REQUESTED, audit.Event.PREPARED, audit.Event.VOTE,
              audit.Event.DECIDED, audit.Event.GRANT_ISSUED]
    out = []
    for i in range(n):
        out.append(rt.audit.append(events[i % len(events)], f"{prefix}-{i // 5}",
                                   "alice@example.com" if i % 5 == 2 else "signoff",
                                   index=i, payload_sha256=f"{i:064x}"))
    return out


def raw(rt: Runtime) -> Raw:
    return [(sid, dict(f)) for sid, f in rt.redis.xrange(rt.keys.audit)]


def rebuild(rt: Runtime, rows: Raw) -> None:
    """Replace the stream with ``rows`` (ids must increase, as Redis demands)."""
    rt.redis.delete(rt.keys.audit)
    for sid, fields in rows:
        rt.redis.xadd(rt.keys.audit, fields, id=sid)


def edit(rt: Runtime, seq: int, change: Callable[[dict[str, Any]], None],
         rehash: bool = False) -> None:
    """Change one entry's details (optionally recomputing its own hash, not the chain's)."""
    rows = raw(rt)
    for _sid, f in rows:
        if int(f["seq"]) == seq:
            details = json.loads(f["details"])
            change(details)
            f["details"] = json.dumps(details, sort_keys=True)
            if rehash:
                entry = audit.Entry.from_stream("x", f)
                f["hash"] = entry.expected_hash()
    rebuild(rt, rows)


def rechain(rows: Raw, head_seq: int | None = None) -> Raw:
    """Recompute every hash so the chain is self-consistent again (a thorough attacker)."""
    prev = audit.GENESIS
    for _sid, f in rows:
        f["prev"] = prev
        f["hash"] = audit.Entry.from_stream("x", f).expected_hash()
        prev = f["hash"]
    return rows


def set_head(rt: Runtime, rows: Raw) -> None:
    sid, f = rows[-1]
    rt.redis.hset(rt.keys.audit_head, mapping={"seq": f["seq"], "hash": f["hash"], "id": sid})
