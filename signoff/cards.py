"""The card ledger: where each request's cards live, and the card work still to do.

One class owns every Redis structure of card delivery (key names in :mod:`signoff.keys`):

- **posted cards** (``cards:{id}``): slot (``kind:destination``) -> :class:`Card`, so updates
  find the message and a retried post never posts a second card;
- **notify claims** (``notifying``): requests whose notify job has not finished, so the
  janitor re-runs a job a crash cut short;
- **the outbox**: per destination, the requests whose card there must be posted or brought up
  to date (``cardbox:{slot}``: request id -> :class:`Op`), and ``cardbox:due``: destinations
  with work, scored by when the platform allows the next call (now, or the end of a
  ``Retry-After``). Operations for one request at one destination coalesce into one entry;
- **leases**: one worker drains a destination at a time (the platform's per-channel rate and
  the no-duplicate rule are per destination);
- **send rates**: a token bucket per rate scope (a Slack channel, a Teams app), shared by every
  worker process;
- **digests**: requests coalesced into one message when a destination gets more cards than
  its rate allows.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from signoff.keys import Keys

# Token bucket: refill at ``rate`` per second up to ``burst``; take up to ``want`` whole
# tokens. Returns {granted, seconds until the next token} (strings: Lua numbers are integers
# on the way out). Hand-written: one round trip, shared by every worker, and no rate-limit
# library keeps its state in Redis with a "take what you can" answer.
_TAKE = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, want = tonumber(ARGV[3]), tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 't', 'at')
local tokens = tonumber(b[1]) or burst
local at = tonumber(b[2]) or now
tokens = math.min(burst, tokens + math.max(now - at, 0) * rate)
local got = math.min(want, math.floor(tokens))
tokens = tokens - got
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
local wait = 0
if tokens < 1 then wait = (1 - tokens) / rate end
return {tostring(got), tostring(wait)}
"""

# Release a lease only if it is still ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

# Extend a lease only if it is still ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# Take requests' card work off a destination's outbox only where the card now shows the
# request's current version: a change that came while a call was in flight (its work merged
# into the queued entry) stays queued. KEYS: the outbox, then each request's record;
# ARGV: request id and the version sent, in pairs.
_DONE_AT = """
local n = 0
for i = 2, #KEYS do
  local rid, sent = ARGV[2 * i - 3], tonumber(ARGV[2 * i - 2])
  local current = tonumber(redis.call('HGET', KEYS[i], 'version') or '0') or 0
  if current <= sent then n = n + redis.call('HDEL', KEYS[1], rid) end
end
return n
"""

# No hold is longer than this (the longest backoff is 5 min; Retry-After answers are shorter):
# a due time further ahead was written by a clock that has since stepped back.
MAX_HOLD = 900.0


def slot(kind: str, destination: str) -> str:
    """A destination's name in the ledger: messenger kind and destination (``slack:#ops``)."""
    return f"{kind}:{destination}"


def rate_scope(kind: str, name: str, per_app: bool) -> str:
    """Whose send-rate bucket a destination's calls take from: the platform app's own
    (``teams:app``, a per-app limit) or the destination's (``slack:#ops``)."""
    return slot(kind, "app") if per_app else name


def split_slot(name: str) -> tuple[str, str]:
    """(messenger kind, destination) of a slot name."""
    kind, _, destination = name.partition(":")
    return kind, destination


@dataclass(frozen=True)
class Card:
    """A posted card: where it is and which version of the request it shows."""

    kind: str
    destination: str
    ref: dict[str, Any]
    version: int
    posted_at: float
    digest: str | None = None  # the digest card it is part of, if coalesced

    @property
    def slot(self) -> str:
        return slot(self.kind, self.destination)

    def to_json(self) -> str:
        data = asdict(self)
        data["posted_at"] = round(self.posted_at, 3)
        if self.digest is None:
            data.pop("digest")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Card:
        data = json.loads(raw)
        return cls(kind=str(data["kind"]), destination=str(data["destination"]),
                   ref=dict(data.get("ref") or {}), version=int(data.get("version", 0)),
                   posted_at=float(data.get("posted_at", 0.0)), digest=data.get("digest"))


@dataclass
class Op:
    """A request's pending card work at one destination: post its card, or bring the posted
    one up to date (which one is decided when it runs, from the ledger)."""

    request_id: str
    since: float
    tries: int = 0
    attempted: bool = False  # a post may have reached the platform: look before posting
    ambiguous: bool = False  # the last try ended in an ambiguous platform error (not a crash)
    not_before: float = 0.0  # backoff after a failure (5xx, timeout)
    target: str = ""  # the policy channel kind (slack_channel, slack_dm, teams, web)
    trace: str = ""  # W3C traceparent of the job that asked (when tracing is on)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("request_id")
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, request_id: str, raw: str) -> Op:
        data = json.loads(raw)
        return cls(request_id=request_id, since=float(data.get("since", 0.0)),
                   tries=int(data.get("tries", 0)), attempted=bool(data.get("attempted")),
                   ambiguous=bool(data.get("ambiguous")),
                   not_before=float(data.get("not_before", 0.0)),
                   target=str(data.get("target", "")), trace=str(data.get("trace", "")))


@dataclass
class Digest:
    """Requests coalesced into one message at a destination."""

    id: str
    slot: str
    ids: list[str] = field(default_factory=list)
    ref: dict[str, Any] = field(default_factory=dict)
    opened_at: float = 0.0


@dataclass(frozen=True)
class Grant:
    """What a send-rate bucket allowed: how many calls now, and when the next one may go."""

    granted: int
    wait: float


class CardLedger:
    """The card ledger of one deployment.

    Args:
        client: a ``decode_responses`` Redis client.
        keys: the key builder.
        ttl: seconds a request's card records are kept (the record TTL).
    """

    def __init__(self, client: redis.Redis, keys: Keys, ttl: int = 30 * 86400) -> None:
        self.r = client
        self.keys = keys
        self.ttl = ttl
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)
        self._renew = client.register_script(_RENEW)
        self._done_at = client.register_script(_DONE_AT)

    # --- posted cards -----------------------------------------------------------------------
    def cards(self, request_id: str) -> dict[str, Card]:
        """Every posted card of a request, by slot."""
        raw = self.r.hgetall(self.keys.cards(request_id))
        return {name: Card.from_json(value) for name, value in raw.items()}

    def card(self, request_id: str, name: str) -> Card | None:
        raw = self.r.hget(self.keys.cards(request_id), name)
        return Card.from_json(raw) if raw else None

    def has_card(self, request_id: str, name: str) -> bool:
        return bool(self.r.hexists(self.keys.cards(request_id), name))

    def record(self, request_id: str, card: Card) -> None:
        """Remember a posted card (or its new version)."""
        key = self.keys.cards(request_id)
        pipe = self.r.pipeline(transaction=False)
        pipe.hset(key, card.slot, card.to_json())
        pipe.expire(key, self.ttl)
        pipe.execute()

    def forget(self, request_id: str, name: str) -> None:
        self.r.hdel(self.keys.cards(request_id), name)

    def note_failure(self, request_id: str, line: str) -> bool:
        """Add a delivery failure to the request (shown on its other cards); False when it
        was noted before."""
        key = self.keys.request(request_id)
        raw = self.r.hget(key, "notify_failures")
        failures = json.loads(raw) if raw else []
        if line in failures:
            return False
        failures.append(line)
        self.r.hset(key, "notify_failures", json.dumps(failures))
        return True

    # --- notify claims ------------------------------------------------------------------------
    def claim_request(self, request_id: str, now: float | None = None) -> None:
        """The request's notify job is due (kept until it has queued every card)."""
        self.r.zadd(self.keys.notifying, {request_id: time.time() if now is None else now})

    def release_request(self, request_id: str) -> bool:
        """The notify job is done; True when the claim was still there."""
        return bool(self.r.zrem(self.keys.notifying, request_id))

    def claimed(self, request_id: str) -> bool:
        return self.r.zscore(self.keys.notifying, request_id) is not None

    def stale_claims(self, before: float) -> list[str]:
        """Requests whose notify job was claimed before ``before`` and never finished."""
        return [str(m) for m in self.r.zrangebyscore(self.keys.notifying, "-inf", before)]

    def renew_claim(self, request_id: str, now: float) -> None:
        self.r.zadd(self.keys.notifying, {request_id: now}, xx=True)

    def claims(self) -> list[str]:
        return [str(m) for m in self.r.zrange(self.keys.notifying, 0, -1)]

    # --- the outbox ---------------------------------------------------------------------------
    def queue(self, request_id: str, kind: str, destination: str, target: str = "",
              now: float | None = None, attempted: bool = False, trace: str = "") -> str:
        """Card work for a request at a destination (kept as it is when already queued: its
        tries and attempted mark survive). ``attempted``: a card may already be there
        (a crash lost its record): look before posting. Returns the destination's slot."""
        now = time.time() if now is None else now
        name = slot(kind, destination)
        op = Op(request_id, since=now, target=target, attempted=attempted, trace=trace)
        pipe = self.r.pipeline(transaction=True)
        if attempted:
            pipe.hset(self.keys.card_outbox(name), request_id, op.to_json())
        else:
            pipe.hsetnx(self.keys.card_outbox(name), request_id, op.to_json())
        pipe.zadd(self.keys.card_outbox_due, {name: now}, nx=True)
        pipe.execute()
        return name

    def ops(self, name: str) -> list[Op]:
        """The destination's pending operations, oldest first."""
        raw = self.r.hgetall(self.keys.card_outbox(name))
        ops = [Op.from_json(rid, value) for rid, value in raw.items()]
        return sorted(ops, key=lambda op: (op.since, op.request_id))

    def pending(self, name: str) -> int:
        return int(self.r.hlen(self.keys.card_outbox(name)))

    def update_op(self, name: str, op: Op) -> None:
        self.r.hset(self.keys.card_outbox(name), op.request_id, op.to_json())

    def done(self, name: str, request_ids: list[str]) -> None:
        """Take this work off the destination's outbox, whatever came meanwhile (the request
        is gone, or its card given up)."""
        if request_ids:
            self.r.hdel(self.keys.card_outbox(name), *request_ids)

    def done_at(self, name: str, sent: dict[str, int]) -> None:
        """Take this work off the destination's outbox where the card now shows the
        request's current version (``sent``: request id -> the version the card shows); a
        change made while the call was in flight keeps its request queued, atomically."""
        if not sent:
            return
        args: list[str | int] = []
        for rid, version in sent.items():
            args += [rid, version]
        self._done_at(keys=[self.keys.card_outbox(name),
                            *(self.keys.request(rid) for rid in sent)], args=args)

    def due(self, now: float | None = None, limit: int = 100) -> list[str]:
        """Destinations whose work may run now (a hold further ahead than :data:`MAX_HOLD`
        was set by a clock that has since stepped back: it is due too)."""
        now = time.time() if now is None else now
        names = self.r.zrangebyscore(self.keys.card_outbox_due, "-inf", now, start=0, num=limit)
        names += self.r.zrangebyscore(self.keys.card_outbox_due, now + MAX_HOLD, "+inf",
                                      start=0, num=limit)
        return [str(m) for m in dict.fromkeys(names)]

    @staticmethod
    def holds(due: float | None, now: float) -> bool:
        """Whether a destination due at ``due`` is still on hold at ``now``."""
        return due is not None and now + 0.001 < due <= now + MAX_HOLD

    def due_at(self, name: str) -> float | None:
        score = self.r.zscore(self.keys.card_outbox_due, name)
        return float(score) if score is not None else None

    def hold(self, name: str, until: float) -> None:
        """No call to this destination before ``until`` (a ``Retry-After``, a backoff, the
        rate's next token)."""
        self.r.zadd(self.keys.card_outbox_due, {name: until})

    def settle(self, name: str, now: float | None = None) -> bool:
        """Take a drained destination off the due index; True when it has no work left
        (work queued meanwhile puts it back)."""
        self.r.zrem(self.keys.card_outbox_due, name)
        if self.pending(name):
            self.r.zadd(self.keys.card_outbox_due, {name: time.time() if now is None else now},
                        nx=True)
            return False
        return True

    # --- leases -------------------------------------------------------------------------------
    def lease(self, name: str, ms: int) -> str | None:
        """Take the destination for ``ms`` milliseconds; the token to renew and release it."""
        token = uuid.uuid4().hex
        if self.r.set(self.keys.card_outbox_lease(name), token, nx=True, px=ms):
            return token
        return None

    def renew(self, name: str, token: str, ms: int) -> bool:
        return bool(self._renew(keys=[self.keys.card_outbox_lease(name)], args=[token, ms]))

    def release(self, name: str, token: str) -> None:
        self._release(keys=[self.keys.card_outbox_lease(name)], args=[token])

    # --- send rates ---------------------------------------------------------------------------
    def take(self, scope: str, want: int, rate: float, burst: float,
             now: float | None = None) -> Grant:
        """Up to ``want`` calls from the scope's bucket (``rate`` per second, ``burst``)."""
        got, wait = self._take(keys=[self.keys.send_rate(scope)],
                               args=[rate, burst, repr(time.time() if now is None else now),
                                     want])
        return Grant(int(float(got)), float(wait))

    def give_back(self, scope: str, n: int, burst: float) -> None:
        """Return ``n`` tokens taken for calls that were not made, or that the platform
        refused (they did nothing)."""
        key = self.keys.send_rate(scope)
        tokens = float(self.r.hincrbyfloat(key, "t", n))
        if tokens > burst:
            self.r.hset(key, "t", repr(burst))

    # --- digests ------------------------------------------------------------------------------
    def open_digest(self, name: str) -> Digest | None:
        """The destination's digest that still takes requests, if any."""
        digest_id = self.r.get(self.keys.digest_open(name))
        return self.digest(name, str(digest_id)) if digest_id else None

    def digest(self, name: str, digest_id: str) -> Digest | None:
        raw = self.r.hgetall(self.keys.digest(name, digest_id))
        if not raw:
            return None
        return Digest(id=digest_id, slot=name, ids=json.loads(raw.get("ids") or "[]"),
                      ref=json.loads(raw.get("ref") or "{}"),
                      opened_at=float(raw.get("opened_at") or 0.0))

    def save_digest(self, digest: Digest, still_open: bool, open_for: float) -> None:
        """Store a digest; ``still_open`` keeps it taking new requests for ``open_for`` s."""
        key = self.keys.digest(digest.slot, digest.id)
        pipe = self.r.pipeline(transaction=True)
        pipe.hset(key, mapping={"ids": json.dumps(digest.ids), "ref": json.dumps(digest.ref),
                                "opened_at": repr(digest.opened_at)})
        pipe.expire(key, self.ttl)
        if still_open:
            pipe.set(self.keys.digest_open(digest.slot), digest.id,
                     px=max(int(open_for * 1000), 1))
        else:
            pipe.delete(self.keys.digest_open(digest.slot))
        pipe.execute()

    @staticmethod
    def new_digest(name: str, now: float) -> Digest:
        return Digest(id=uuid.uuid4().hex[:12], slot=name, opened_at=now)
