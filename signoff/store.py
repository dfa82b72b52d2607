"""The request store: Signoff's state machine on Redis.

Every transition is one Lua script (``signoff/lua/*.lua``), so it is atomic and idempotent:
a second click, a duplicate delivery or a late expiry changes nothing and says so. The
quorum is counted inside the vote script, so racing clicks can neither over- nor under-count.

States: ``received -> pending -> approved | denied | timed_out | cancelled``, or
``received -> rejected`` (and ``received -> approved | denied`` for automatic decisions).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from enum import Enum
from functools import cached_property
from importlib import resources
from typing import Any

import redis
from redis.client import NEVER_DECODE

from policy import Evaluation
from signoff import record_codec
from signoff.keys import Keys
from signoff.models import AgentRequest, Status, Vote

log = logging.getLogger(__name__)

OPEN = (Status.RECEIVED, Status.PENDING)
CLICK_TTL = 7 * 86400
DECISIONS_MAXLEN = 100_000


def _script(name: str) -> str:
    return resources.files("signoff.lua").joinpath(f"{name}.lua").read_text()


def _vote_script() -> str:
    """The vote script with the policy's quorum rule prepended (one rule, one source)."""
    return resources.files("policy").joinpath("quorum.lua").read_text() + "\n" + _script("vote")


class VoteResult(str, Enum):
    """What :meth:`Store.vote` did."""

    NOT_FOUND = "not_found"
    CLOSED = "closed"
    STALE = "stale"  # made on a payload an approver's edit has replaced
    REPLAY = "replay"
    ALREADY_VOTED = "already_voted"
    RECORDED = "recorded"
    FINAL = "final"


class Change(str, Enum):
    """What a guarded change of a stored request did (:meth:`Store.close`, ``edit``,
    ``extend``). A ``str`` enum: the Lua scripts answer with these words."""

    CHANGED = "changed"
    UNCHANGED = "unchanged"  # not in a state the change applies to (already closed, ...)
    NOT_FOUND = "not_found"
    NOT_DUE = "not_due"  # a timeout asked for before the deadline
    CLOSED = "closed"  # no longer pending
    STALE = "stale"  # the payload was edited by someone else meanwhile
    OVER = "over"  # more than the allowance asked for


@dataclass(frozen=True)
class VoteOutcome:
    """The result of one vote attempt, straight from the atomic script."""

    result: VoteResult
    status: Status | None
    version: int = 0
    approvals: int = 0
    denials: int = 0

    @property
    def accepted(self) -> bool:
        """True when the vote was recorded (whether or not it closed the request)."""
        return self.result in (VoteResult.RECORDED, VoteResult.FINAL)


@dataclass
class Record:
    """One request as stored (a view over the Redis hash; JSON fields decoded)."""

    id: str
    status: Status
    fields: dict[str, str]
    votes: dict[str, Vote] = field(default_factory=dict)

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.fields.get(name, default)

    def json(self, name: str, default: Any = None) -> Any:
        raw = self.fields.get(name)
        return json.loads(raw) if raw else default

    def number(self, name: str, default: float = 0.0) -> float:
        raw = self.fields.get(name)
        return float(raw) if raw else default

    @property
    def version(self) -> int:
        return int(self.fields.get("version", "0"))

    @property
    def action(self) -> str:
        return self.fields.get("action", "")

    @property
    def resource(self) -> str:
        return self.fields.get("resource", "")

    @property
    def requester(self) -> str:
        return self.fields.get("requester", "")

    @property
    def on_behalf_of(self) -> str | None:
        return self.fields.get("on_behalf_of") or None

    @property
    def created_at(self) -> float:
        return self.number("created_at")

    @property
    def deadline(self) -> float:
        return self.number("deadline")

    @property
    def approvers(self) -> list[Vote]:
        return sorted((v for v in self.votes.values() if v.choice == "approve"), key=lambda v: v.at)

    @property
    def deniers(self) -> list[Vote]:
        return sorted((v for v in self.votes.values() if v.choice == "deny"), key=lambda v: v.at)

    @cached_property
    def evaluation(self) -> Evaluation:
        """The policy's evaluation stored when the request was prepared, parsed once per read
        of the record (the one place it is parsed back)."""
        return Evaluation.from_dict(self.json("evaluation"))

    def identity_request(self) -> AgentRequest:
        """The identity fields of the stored request (no payload), for separation-of-duties
        checks (``policy.can_decide``)."""
        return AgentRequest.model_construct(
            id=self.id, action=self.action, resource="(masked)", params={},
            requester=self.requester, on_behalf_of=self.on_behalf_of, reason=None,
            context={"environment": self.get("environment") or None}, reply_to=None)


def _fields(raw: dict[bytes, bytes]) -> dict[str, str]:
    """A record's fields from its raw hash: the packed ones (:mod:`signoff.record_codec`),
    then the plain ones (a plain field wins: it is the later write)."""
    packed = raw.get(record_codec.PACKED.encode())
    fields = record_codec.unpack(packed)
    fields.update((k.decode(), v.decode()) for k, v in raw.items()
                  if k != record_codec.PACKED.encode())
    return fields


class Store:
    """State transitions and reads for approval requests.

    Args:
        client: a redis-py client with ``decode_responses=True``.
        keys: the key builder.
        wait_replicas: after each transition that settles a request (the final vote, a
            close, the reply's delivery), wait until this many replicas have it (Redis
            ``WAIT``, on the same connection in one pipeline), so a decision a person was
            told about survives a failover; 0 waits for nothing.
        wait_timeout_ms: the longest such wait (the transition stands either way).
    """

    def __init__(self, client: redis.Redis, keys: Keys, wait_replicas: int = 0,
                 wait_timeout_ms: int = 1000) -> None:
        self.r = client
        self.keys = keys
        self.wait_replicas = wait_replicas
        self.wait_timeout_ms = wait_timeout_ms
        self.under_replicated = 0  # waits that timed out (for tests and metrics)
        self._create = client.register_script(_script("create"))
        self._open = client.register_script(_script("open"))
        self._vote = client.register_script(_vote_script())
        self._close = client.register_script(_script("close"))
        self._deliver = client.register_script(_script("deliver"))

    # --- transitions --------------------------------------------------------------------
    def _replicated(self, script: Any, keys: list[str], args: list[Any]) -> Any:
        """Run a settling transition, then (with ``wait_replicas``) ``WAIT`` on the same
        connection: Redis counts a client's own writes, so both go in one pipeline."""
        if not self.wait_replicas:
            return script(keys=keys, args=args)
        pipe = self.r.pipeline(transaction=False)
        script(keys=keys, args=args, client=pipe)
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        result, acked = pipe.execute()
        if int(acked) < self.wait_replicas:
            self.under_replicated += 1
            log.warning("only %s of %s replicas acknowledged a transition within %d ms",
                        acked, self.wait_replicas, self.wait_timeout_ms)
        return result

    def create(self, request_id: str, fields: dict[str, str], now: float | None = None
               ) -> tuple[bool, Status, str]:
        """Store a new request in ``received`` once.

        Returns:
            (created, current status, body hash of the stored request).
        """
        now = time.time() if now is None else now
        plain, packable = record_codec.split(fields)
        created, status, body = self._create(
            keys=[self.keys.request(request_id), self.keys.all_requests, self.keys.received],
            args=[request_id, repr(now), json.dumps(plain),
                  record_codec.pack(packable) if packable else b""],
        )
        return bool(created), Status(status), body

    def open(self, request_id: str, fields: dict[str, str], deadline: float,
             index_groups: list[str], now: float | None = None) -> tuple[bool, Status | None]:
        """received -> pending, with the prepared view and the group indexes."""
        now = time.time() if now is None else now
        index_keys = [self.keys.pending_for_group(g) for g in sorted(set(index_groups))]
        plain, packable = record_codec.split(fields)
        blob, names = b"", []
        if packable:
            # One packed field with what create packed and what prepare adds (create's packed
            # fields never change, and only one open can succeed: the script checks the state).
            stored = self.r.execute_command("HGET", self.keys.request(request_id),
                                            record_codec.PACKED, **{NEVER_DECODE: True})
            merged = {**record_codec.unpack(stored), **packable}
            blob, names = record_codec.pack(merged), sorted(merged)
        result, status = self._open(
            keys=[self.keys.request(request_id), self.keys.pending, self.keys.deadlines,
                  self.keys.received],
            args=[request_id, repr(now), repr(deadline), json.dumps(plain),
                  json.dumps(index_keys), blob, json.dumps(names)],
        )
        return result == "changed", Status(status) if status else None

    def vote(self, request_id: str, vote: Vote, nonce: str = "", now: float | None = None
             ) -> VoteOutcome:
        """Record a vote and count the quorum atomically."""
        now = time.time() if now is None else now
        vote = vote.model_copy(update={"at": now})
        raw = self._replicated(
            self._vote,
            keys=[self.keys.request(request_id), self.keys.votes(request_id),
                  self.keys.clicks(request_id), self.keys.pending, self.keys.deadlines,
                  self.keys.outbox],
            args=[request_id, vote.person, vote.model_dump_json(exclude_none=True), nonce,
                  repr(now), CLICK_TTL],
        )
        data = json.loads(raw)
        status = data.get("status")
        return VoteOutcome(
            result=VoteResult(data["result"]),
            status=Status(status) if status else None,
            version=int(data.get("version", 0)),
            approvals=int(data.get("approvals", 0)),
            denials=int(data.get("denials", 0)),
        )

    def close(self, request_id: str, to: Status, reason: str, *,
              allowed_from: tuple[Status, ...] = OPEN, only_if_due: bool = False,
              extra: dict[str, str] | None = None, now: float | None = None
              ) -> tuple[Change, Status | None]:
        """Move an open request to a final state without a vote.

        Returns:
            (``changed`` | ``unchanged`` | ``not_found`` | ``not_due``, status after).
        """
        now = time.time() if now is None else now
        result, status = self._replicated(
            self._close,
            keys=[self.keys.request(request_id), self.keys.pending, self.keys.deadlines,
                  self.keys.outbox, self.keys.received],
            args=[request_id, ",".join(s.value for s in allowed_from), to.value, repr(now),
                  reason, "1" if only_if_due else "0", json.dumps(extra or {})],
        )
        return Change(result), Status(status) if status else None

    def deliver(self, request_id: str, reply_key: str, agent_decisions: str | None,
                decision_json: str, reply_ttl: int, now: float | None = None) -> bool:
        """LPUSH the decision and append it to the decisions streams (Signoff's, and the
        agent's own when it is a registered agent's request), exactly once."""
        now = time.time() if now is None else now
        done = self._replicated(
            self._deliver,
            keys=[self.keys.request(request_id), reply_key, self.keys.decisions,
                  self.keys.outbox, *([agent_decisions] if agent_decisions else [])],
            args=[request_id, decision_json, reply_ttl, repr(now), DECISIONS_MAXLEN],
        )
        return bool(done)

    def set_fields(self, request_id: str, fields: dict[str, str]) -> None:
        """Set bookkeeping fields that are not state (never ``status``)."""
        if "status" in fields:
            raise ValueError("status changes only through a transition")
        self.r.hset(self.keys.request(request_id), mapping=fields)

    def set_once(self, request_id: str, name: str, value: str) -> str:
        """Set a field only if unset; return whichever value is stored (HSETNX then HGET)."""
        key = self.keys.request(request_id)
        pipe = self.r.pipeline()
        pipe.hsetnx(key, name, value)
        pipe.hget(key, name)
        _, stored = pipe.execute()
        return str(stored)

    def add_groups(self, request_id: str, groups: list[str]) -> list[str]:
        """Make more groups eligible for an open request (escalation); returns the new ones."""
        key = self.keys.request(request_id)
        while True:
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    status, extra_raw, idx_raw, created = pipe.hmget(
                        key, "status", "extra_groups", "index_keys", "created_at")
                    if status != Status.PENDING.value:
                        pipe.unwatch()
                        return []
                    extra = json.loads(extra_raw or "[]")
                    new = [g for g in groups if g not in extra]
                    if not new:
                        pipe.unwatch()
                        return []
                    idx = json.loads(idx_raw or "[]")
                    new_keys = [self.keys.pending_for_group(g) for g in new]
                    pipe.multi()
                    pipe.hset(key, mapping={
                        "extra_groups": json.dumps(extra + new),
                        "index_keys": json.dumps(sorted(set(idx + new_keys))),
                    })
                    pipe.hincrby(key, "version", 1)
                    for k in new_keys:
                        pipe.zadd(k, {request_id: float(created or time.time())})
                    pipe.execute()
                    return new
                except redis.WatchError:
                    continue

    def edit(self, request_id: str, seen_sha256: str, fields: dict[str, str]) -> Change:
        """Replace a pending request's payload with an approver's edit (``fields``: the new
        ciphertext, payload hash, masked views, edit history), atomically: only while it is
        pending and its payload is still the one the editor saw; every vote on the earlier
        version is dropped (the edited version needs its own quorum).

        Returns:
            ``changed``, ``closed``, ``stale`` (edited by someone else meanwhile) or
            ``not_found``.
        """
        if "status" in fields:
            raise ValueError("status changes only through a transition")
        key, votes = self.keys.request(request_id), self.keys.votes(request_id)
        while True:
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(key, votes)
                    status, current = pipe.hmget(key, "status", "payload_sha256")
                    if status is None:
                        pipe.unwatch()
                        return Change.NOT_FOUND
                    if status != Status.PENDING.value:
                        pipe.unwatch()
                        return Change.CLOSED
                    if current != seen_sha256:
                        pipe.unwatch()
                        return Change.STALE
                    pipe.multi()
                    pipe.hset(key, mapping=fields)
                    pipe.delete(votes)
                    pipe.hincrby(key, "version", 1)
                    pipe.execute()
                    return Change.CHANGED
                except redis.WatchError:
                    continue

    def extend(self, request_id: str, seconds: int, allowance: int) -> tuple[Change, float]:
        """Move a pending request's deadline ``seconds`` later, within ``allowance`` seconds
        of extensions in total.

        Returns:
            (``changed`` | ``closed`` | ``over`` | ``not_found``, the deadline after).
        """
        key = self.keys.request(request_id)
        while True:
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(key)
                    status, deadline, used = pipe.hmget(key, "status", "deadline", "extended")
                    if status is None:
                        pipe.unwatch()
                        return Change.NOT_FOUND, 0.0
                    current = float(deadline or 0)
                    if status != Status.PENDING.value or current <= time.time():
                        pipe.unwatch()
                        return Change.CLOSED, current
                    total = int(used or 0) + seconds
                    if total > allowance:
                        pipe.unwatch()
                        return Change.OVER, current
                    new = current + seconds
                    pipe.multi()
                    pipe.hset(key, mapping={"deadline": repr(new), "extended": str(total)})
                    pipe.hincrby(key, "version", 1)
                    pipe.zadd(self.keys.deadlines, {request_id: new})
                    pipe.execute()
                    return Change.CHANGED, new
                except redis.WatchError:
                    continue

    # --- reads --------------------------------------------------------------------------
    def get(self, request_id: str, with_votes: bool = True) -> Record | None:
        """The stored record, or None."""
        pipe = self.r.pipeline(transaction=False)
        # Bytes: the packed fields are binary (everything else is UTF-8 text).
        pipe.execute_command("HGETALL", self.keys.request(request_id), **{NEVER_DECODE: True})
        if with_votes:
            pipe.hgetall(self.keys.votes(request_id))
        out = pipe.execute()
        if not out[0]:
            return None
        fields = _fields(out[0])
        votes = {p: Vote.model_validate_json(v) for p, v in (out[1] if with_votes else {}).items()}
        return Record(id=request_id, status=Status(fields["status"]), fields=fields, votes=votes)

    def status(self, request_id: str) -> Status | None:
        raw = self.r.hget(self.keys.request(request_id), "status")
        return Status(raw) if raw else None

    def pending_ids(self, *, groups: list[str] | None = None, offset: int = 0,
                    limit: int = 20) -> list[str]:
        """Pending ids, newest first; restricted to ``groups`` via their indexes.

        With groups, reads at most ``offset + limit`` ids from each group index (never a scan
        of every pending request), merges them and pages.
        """
        if groups is None:
            return list(self.r.zrevrange(self.keys.pending, offset, offset + limit - 1))
        pipe = self.r.pipeline(transaction=False)
        for g in groups:
            pipe.zrevrange(self.keys.pending_for_group(g), 0, offset + limit - 1, withscores=True)
        merged: dict[str, float] = {}
        for rows in pipe.execute():
            for rid, score in rows:
                merged[rid] = score
        ordered = sorted(merged, key=lambda r: (-merged[r], r))
        return ordered[offset:offset + limit]

    def count_pending(self) -> int:
        return int(self.r.zcard(self.keys.pending))

    def due_ids(self, now: float, limit: int = 500) -> list[str]:
        """Open requests whose deadline has passed."""
        return list(self.r.zrangebyscore(self.keys.deadlines, "-inf", now, start=0, num=limit))

    def undelivered(self, older_than: float, limit: int = 500) -> list[str]:
        """Decided requests whose reply is still undelivered since before ``older_than``."""
        return list(self.r.zrangebyscore(self.keys.outbox, "-inf", older_than, start=0, num=limit))

    def stale_received(self, older_than: float, limit: int = 500) -> list[str]:
        """Requests still ``received`` (prepare lost or slow) since before ``older_than``."""
        return list(self.r.zrangebyscore(self.keys.received, "-inf", older_than, start=0,
                                         num=limit))

    def mine(self, person: str, offset: int = 0, limit: int = 20) -> list[str]:
        """Requests made on behalf of ``person``, newest first."""
        return list(self.r.zrevrange(self.keys.by_person(person), offset, offset + limit - 1))
