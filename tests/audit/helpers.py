"""Helpers to fill the audit chain and to tamper with it the way an attacker with Redis
write access would (a stream entry cannot be edited in place, so the stream is rebuilt)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

from signoff import audit
from signoff.runtime import Runtime

Raw = list[tuple[str, dict[str, str]]]


def run_together(target: Callable[[int], None], n: int, timeout: float = 30.0) -> None:
    """Run ``target(0)`` … ``target(n - 1)`` in threads at once and wait for them all."""
    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)


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


def load_history(rt: Runtime, weeks: int = 12, per_week: int = 25, seed: int = 3,
                 now: float | None = None) -> dict[str, int]:
    """A realistic past, chained exactly as Signoff chains it but with timestamps spread over
    ``weeks`` (appends always stamp "now"): requests approved, denied, timed out, auto-approved,
    self-approval and forged clicks refused, grants, a policy change and a key rotation.

    Returns:
        The counts the report must find.
    """
    import random
    import time as _time

    rng = random.Random(seed)
    now = _time.time() if now is None else now
    start = now - weeks * 7 * 86400
    rows: list[tuple[str, dict[str, Any]]] = []
    people = ["alice@example.com", "bob@example.com", "carol@example.com"]
    actions = ["db.export", "iam.grant", "infra.apply"]
    counts = {"requests": 0, "approved": 0, "denied": 0, "timed_out": 0, "auto": 0,
              "self": 0, "forged": 0}

    def add(ts: float, event: str, rid: str, actor: str, **details: Any) -> None:
        rows.append((event, {"ts": ts, "request_id": rid, "actor": actor, "details": details}))

    add(start + 60, "policy_reloaded", "", "signoff", version="v1", previous="", rules=4)
    for i in range(weeks * per_week):
        t = start + 3600 + i * (weeks * 7 * 86400 - 7200) / (weeks * per_week)
        rid = f"h{i}"
        if i == weeks * per_week // 2:
            add(t - 60, "policy_reloaded", "", "signoff", version="v2", previous="v1", rules=5)
            add(t - 30, "key_rotated", "", "signoff", purpose="grant", kid="g2-abc")
        action = rng.choice(actions)
        counts["requests"] += 1
        add(t, "requested", rid, "agent:bot", action=action, resource=f"db/{i % 4}",
            on_behalf_of="dana@example.com", payload_sha256="0" * 64, source="stream")
        roll = rng.random()
        if roll < 0.1:
            counts["auto"] += 1
            add(t + 1, "prepared", rid, "policy", rule="dev-auto", outcome="approved")
            add(t + 1, "decided", rid, "policy", status="approved")
            add(t + 2, "grant_issued", rid, "signoff", jti=f"{i:032x}")
            continue
        add(t + 1, "prepared", rid, "policy", rule="prod", outcome="pending")
        add(t + 2, "card_posted", rid, "signoff", channel="slack")
        if roll < 0.15:
            counts["self"] += 1
            add(t + 30, "click_refused", rid, "dana@example.com", channel="slack",
                code="on_behalf_of", reason="You cannot approve a request made for you.")
        if roll < 0.2:
            counts["forged"] += 1
            add(t + 40, "click_refused", "", "slack:U0FORGED", channel="slack",
                code="bad_button", reason="the button's signature does not verify")
        if roll < 0.3:
            counts["timed_out"] += 1
            add(t + 3600, "expired", rid, "clock")
            continue
        who = rng.choice(people)
        wait = rng.lognormvariate(5.5, 1.0)
        if roll < 0.4:
            counts["denied"] += 1
            add(t + wait, "vote", rid, who, choice="deny", channel="slack", comment_given=True)
            add(t + wait, "decided", rid, who, status="denied", approvals=0, denials=1)
            continue
        counts["approved"] += 1
        add(t + wait, "vote", rid, who, choice="approve", channel="slack", comment_given=False)
        add(t + wait, "decided", rid, who, status="approved", approvals=1, denials=0)
        add(t + wait + 1, "grant_issued", rid, "signoff", jti=f"{i:032x}")
        if rng.random() < 0.7:
            add(t + wait + 30, "grant_used", rid, "agent:bot", jti=f"{i:032x}")
    rows.sort(key=lambda r: r[1]["ts"])
    prev = audit.GENESIS
    seq = 0
    last_ms = 0
    pipe = rt.redis.pipeline(transaction=False)
    for event, f in rows:
        seq += 1
        ts = round(f["ts"], 6)
        body = {"seq": seq, "ts": ts, "event": event, "request_id": f["request_id"],
                "actor": f["actor"], "details": f["details"]}
        digest = audit.entry_hash(prev, body)
        ms = max(int(ts * 1000), last_ms + 1)
        last_ms = ms
        sid = f"{ms}-0"
        pipe.xadd(rt.keys.audit, {"seq": seq, "ts": repr(ts), "event": event,
                                  "request_id": f["request_id"], "actor": f["actor"],
                                  "details": json.dumps(f["details"], sort_keys=True),
                                  "prev": prev, "hash": digest}, id=sid)
        if f["request_id"]:
            pipe.rpush(rt.keys.audit_for(f["request_id"]), sid)
        prev = digest
    pipe.hset(rt.keys.audit_head, mapping={"seq": seq, "hash": prev, "id": f"{last_ms}-0"})
    pipe.execute()
    rt.audit._head = None
    return counts
