"""Indexes that answer "who approved what on resource X in the last 90 days" without a scan.

The index follows the audit stream with a cursor (like a SIEM destination): each decision-
relevant entry becomes one compact row in a sorted set per resource and per person, scored by
time, so a question is one ``ZRANGE ... BYSCORE`` whatever the log's length. A request's facts
(action, resource, agent, person it was made for) come from its ``requested`` entry and are
kept in a hash per request while votes and grants about it arrive.

The index is derived data: the log stays the evidence. Every row carries its ``seq``, so any
answer can be backed by the entry's inclusion proof; ``signoff audit reindex`` rebuilds it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from policy.identity import canonical
from signoff.audit.entry import Entry
from signoff.audit.events import Event
from signoff.keys import Keys

# Entries the index keeps (the rest, card posts, reminders and grant issues, which always
# follow a decision, stay in the log only).
INDEXED = frozenset({
    Event.REQUESTED.value, Event.VOTE.value, Event.DECIDED.value, Event.EXPIRED.value,
    Event.CANCELLED.value, Event.REJECTED.value, Event.CLICK_REFUSED.value,
    Event.GRANT_USED.value, Event.GRANT_REFUSED.value, Event.GRANT_REVOKED.value})
# Entries indexed under the person who acted (a request's actor is its agent: by resource).
BY_PERSON = frozenset({
    Event.VOTE.value, Event.DECIDED.value, Event.CLICK_REFUSED.value, Event.CANCELLED.value,
    Event.GRANT_REVOKED.value})
# Actors that are Signoff itself or the clock, not a person or an agent.
SYSTEM_ACTORS = frozenset({"signoff", "policy", "clock", "intake", "cli", ""})


@dataclass(frozen=True)
class IndexRow:
    """One indexed entry with its request's facts."""

    seq: int
    id: str
    ts: float
    event: str
    request_id: str
    actor: str
    action: str
    resource: str
    outcome: str  # the vote's choice, the decision's status, a refusal's code

    def to_json(self) -> str:
        return json.dumps([self.seq, self.id, self.ts, self.event, self.request_id, self.actor,
                           self.action, self.resource, self.outcome], separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> IndexRow:
        seq, sid, ts, event, rid, actor, action, resource, outcome = json.loads(raw)
        return cls(int(seq), sid, float(ts), event, rid, actor, action, resource, outcome)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "ts": self.ts, "event": self.event,
                "request_id": self.request_id, "actor": self.actor, "action": self.action,
                "resource": self.resource, "outcome": self.outcome}

    @property
    def is_approval(self) -> bool:
        return self.event == Event.VOTE.value and self.outcome == "approve"


def _outcome(e: Entry) -> str:
    d = e.details
    for key in ("choice", "status", "code"):
        if d.get(key):
            return str(d[key])
    return ""


class AuditIndex:
    """The resource and person indexes (owns their keys; :mod:`signoff.keys` names them).

    Args:
        client: redis-py client with ``decode_responses=True``.
        keys: the key builder.
        request_ttl: seconds a request's facts are kept for rows that arrive later.
    """

    def __init__(self, client: redis.Redis, keys: Keys, request_ttl: int = 90 * 86400) -> None:
        self.r: Any = client
        self.keys = keys
        self.request_ttl = request_ttl

    def cursor(self) -> tuple[str, int]:
        raw = self.r.hgetall(self.keys.audit_index_state)
        return raw.get("id", ""), int(raw.get("seq", "0"))

    def update(self, read_after: Callable[[str, int], list[Entry]], batch: int = 2000,
               limit: int | None = None) -> int:
        """Index every entry after the cursor (at most ``limit``); returns how many were read.

        Rows and the cursor move in one MULTI per batch, and a row is a set member, so a
        batch replayed after a crash changes nothing.
        """
        last_id, last_seq = self.cursor()
        done = 0
        while limit is None or done < limit:
            rows = read_after(last_id, batch)
            if not rows:
                break
            self._index_batch(rows)
            last_id, last_seq = rows[-1].stream_id, rows[-1].seq
            self.r.hset(self.keys.audit_index_state, mapping={"id": last_id, "seq": last_seq})
            done += len(rows)
            if len(rows) < batch:
                break
        return done

    def _index_batch(self, rows: Iterable[Entry]) -> None:
        rows = [e for e in rows if e.event in INDEXED and e.request_id and not e.error]
        if not rows:
            return
        facts: dict[str, dict[str, str]] = {}
        for e in rows:
            if e.event == Event.REQUESTED.value:
                facts[e.request_id] = {
                    "action": str(e.details.get("action", "")),
                    "resource": str(e.details.get("resource", "")),
                    "agent": e.actor, "on_behalf_of": str(e.details.get("on_behalf_of", ""))}
        missing = sorted({e.request_id for e in rows} - set(facts))
        if missing:
            pipe = self.r.pipeline(transaction=False)
            for rid in missing:
                pipe.hgetall(self.keys.audit_index_request(rid))
            for rid, got in zip(missing, pipe.execute(), strict=True):
                facts[rid] = got or {}
        pipe = self.r.pipeline(transaction=True)
        for rid, f in facts.items():
            if rid not in missing and f:
                key = self.keys.audit_index_request(rid)
                pipe.hset(key, mapping=f)
                pipe.expire(key, self.request_ttl)
        newest: dict[str, float] = {}  # index key -> its newest row's time (for retention)
        for e in rows:
            f = facts.get(e.request_id, {})
            row = IndexRow(e.seq, e.stream_id, e.ts, e.event, e.request_id, e.actor,
                           f.get("action", ""), f.get("resource", ""), _outcome(e))
            member = row.to_json()
            targets = []
            if row.resource:
                targets.append(self.keys.audit_index_resource(row.resource))
            if e.event in BY_PERSON and canonical(e.actor) not in SYSTEM_ACTORS:
                targets.append(self.keys.audit_index_person(canonical(e.actor)))
            for key in targets:
                pipe.zadd(key, {member: e.ts})
                newest[key] = max(newest.get(key, 0.0), e.ts)
        if newest:
            pipe.zadd(self.keys.audit_index_keys, newest, gt=True)
        pipe.execute()

    # --- questions ----------------------------------------------------------------------
    def for_resource(self, resource: str, since: float | None = None,
                     until: float | None = None) -> list[IndexRow]:
        """Every indexed entry about ``resource`` in the time range, oldest first."""
        return self._range(self.keys.audit_index_resource(resource), since, until)

    def for_person(self, person: str, since: float | None = None,
                   until: float | None = None) -> list[IndexRow]:
        """Every indexed entry where ``person`` acted, oldest first."""
        return self._range(self.keys.audit_index_person(canonical(person)), since, until)

    def approvals(self, resource: str, since: float | None = None,
                  until: float | None = None) -> list[IndexRow]:
        """Who approved what on ``resource``: each approving vote with its request's action."""
        return [r for r in self.for_resource(resource, since, until) if r.is_approval]

    def _range(self, key: str, since: float | None, until: float | None) -> list[IndexRow]:
        lo = "-inf" if since is None else repr(since)
        hi = "+inf" if until is None else repr(until)
        return [IndexRow.from_json(m) for m in self.r.zrange(key, lo, hi, byscore=True)]

    def drop_before(self, ts: float, batch: int = 1000) -> int:
        """Retention: forget rows older than ``ts`` (the archive calls this with its cutoff,
        so the index covers what the live stream holds; older answers are in the archive
        files). Keys whose newest row is older go whole.

        Returns:
            How many index keys were looked at.
        """
        r = self.r
        gone = r.zrange(self.keys.audit_index_keys, "-inf", f"({ts!r}", byscore=True)
        for i in range(0, len(gone), batch):
            part = gone[i:i + batch]
            pipe = r.pipeline(transaction=False)
            pipe.delete(*part)
            pipe.zrem(self.keys.audit_index_keys, *part)
            pipe.execute()
        start = 0
        while True:
            part = r.zrange(self.keys.audit_index_keys, start, start + batch - 1)
            if not part:
                break
            pipe = r.pipeline(transaction=False)
            for key in part:
                pipe.zremrangebyscore(key, "-inf", f"({ts!r}")
            pipe.execute()
            start += batch
        r.hset(self.keys.audit_index_state, "since", repr(ts))
        return len(gone) + start

    def since(self) -> float | None:
        """The time before which rows were dropped (None: the index holds everything)."""
        raw = self.r.hget(self.keys.audit_index_state, "since")
        return float(raw) if raw else None

    def reset(self) -> None:
        """Drop the cursor so the next update re-reads the log (rows are idempotent); the
        retention mark stays."""
        self.r.hdel(self.keys.audit_index_state, "id", "seq")
