"""Delegation: a person away hands their approvals to another person for a window.

While a delegation from alice to bob is active, bob may decide what alice could decide, in his
own name "for alice": the vote fills alice's slot (her groups) and records bob as the one who
cast it. Separation of duties applies to both (``lifecycle.submit_vote``): neither may be the
requester, the person the request acts for or the agent's owner, and one human casts at most
one vote per request, whether for himself or for others. A delegation can be revoked by either
person or an administrator; it ends on its own at the end of its window.

:class:`Delegations` owns the Redis structures (key names in :mod:`signoff.keys`).
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import redis

from signoff.audit import Event
from signoff.keys import Keys

if TYPE_CHECKING:
    from signoff.runtime import Runtime

MAX_DELEGATION = 31 * 86400  # a month: longer absences are a directory change


class DelegationError(ValueError):
    """A delegation that cannot be made (the message says why, for the person)."""


@dataclass(frozen=True)
class Delegation:
    """One delegation of ``from_person``'s approvals to ``to_person``."""

    id: str
    from_person: str
    to_person: str
    starts_at: float
    ends_at: float
    created_by: str
    created_at: float
    reason: str = ""
    revoked_at: float = 0.0
    revoked_by: str = ""

    def active_at(self, now: float) -> bool:
        return not self.revoked_at and self.starts_at <= now < self.ends_at

    def to_public(self) -> dict[str, Any]:
        return {"id": self.id, "from": self.from_person, "to": self.to_person,
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "created_by": self.created_by, "created_at": self.created_at,
                "reason": self.reason, "active": self.active_at(time.time()),
                "revoked_at": self.revoked_at or None, "revoked_by": self.revoked_by or None}


class Delegations:
    """Delegations in Redis: a hash each, the active index and per-person indexes."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def create(self, directory: Any, from_person: str, to_person: str, seconds: int, *,
               created_by: str, starts_at: float | None = None, reason: str = "",
               now: float | None = None) -> Delegation:
        """Delegate ``from_person``'s approvals to ``to_person`` for ``seconds``.

        Both must be people in the directory, distinct, and the window at most a month.

        Raises:
            DelegationError: with the reason.
        """
        now = time.time() if now is None else now
        src, dst = directory.person(from_person), directory.person(to_person)
        if src is None:
            raise DelegationError(f"{from_person!r} is not a person in the policy directory")
        if dst is None:
            raise DelegationError(f"{to_person!r} is not a person in the policy directory")
        if directory.is_agent(dst.id) or directory.is_agent(src.id):
            raise DelegationError("agents can neither delegate nor be delegated approvals")
        if src.id == dst.id:
            raise DelegationError("a person cannot delegate to themselves")
        if not 60 <= seconds <= MAX_DELEGATION:
            raise DelegationError("a delegation lasts between 1 minute and 31 days")
        start = now if starts_at is None else starts_at
        if start < now - 60:
            raise DelegationError("a delegation cannot start in the past")
        did = "dl-" + secrets.token_hex(8)
        d = Delegation(did, src.id, dst.id, start, start + seconds, created_by, now,
                       reason[:500])
        ttl = int(d.ends_at - now) + 30 * 86400
        pipe = self.redis.pipeline()
        pipe.hset(self.keys.delegation(did), mapping={
            "id": did, "from": d.from_person, "to": d.to_person, "starts_at": repr(start),
            "ends_at": repr(d.ends_at), "created_by": created_by, "created_at": repr(now),
            "reason": d.reason})
        pipe.expire(self.keys.delegation(did), ttl)
        pipe.zadd(self.keys.delegations_active, {did: d.ends_at})
        pipe.sadd(self.keys.delegations_to(d.to_person), did)
        pipe.sadd(self.keys.delegations_from(d.from_person), did)
        pipe.execute()
        return d

    def get(self, did: str) -> Delegation | None:
        if not did.startswith("dl-") or len(did) > 40:
            return None
        raw = self.redis.hgetall(self.keys.delegation(did))
        if not raw or "from" not in raw:
            return None
        return Delegation(raw["id"], raw["from"], raw["to"], float(raw["starts_at"]),
                          float(raw["ends_at"]), raw.get("created_by", ""),
                          float(raw.get("created_at") or 0), raw.get("reason", ""),
                          float(raw.get("revoked_at") or 0), raw.get("revoked_by", ""))

    def _load(self, key: str) -> list[Delegation]:
        out = []
        for did in self.redis.smembers(key):
            d = self.get(did)
            if d is None:
                self.redis.srem(key, did)  # expired hash
                continue
            out.append(d)
        return sorted(out, key=lambda d: d.starts_at)

    def to(self, person: str, now: float | None = None) -> list[Delegation]:
        """Active delegations to ``person`` (canonical id)."""
        now = time.time() if now is None else now
        return [d for d in self._load(self.keys.delegations_to(person)) if d.active_at(now)]

    def given_by(self, person: str) -> list[Delegation]:
        """Every delegation ``person`` gave that has not ended."""
        now = time.time()
        return [d for d in self._load(self.keys.delegations_from(person))
                if not d.revoked_at and d.ends_at > now]

    def received_by(self, person: str) -> list[Delegation]:
        """Every delegation to ``person`` that has not ended (including future ones)."""
        now = time.time()
        return [d for d in self._load(self.keys.delegations_to(person))
                if not d.revoked_at and d.ends_at > now]

    def active_from_to(self, from_person: str, to_person: str, now: float | None = None
                       ) -> Delegation | None:
        """The active delegation from ``from_person`` to ``to_person`` (canonical), or None."""
        for d in self.to(to_person, now):
            if d.from_person == from_person:
                return d
        return None

    def all_active(self, limit: int = 500) -> list[Delegation]:
        """Delegations not yet ended (for administrators)."""
        now = time.time()
        self.redis.zremrangebyscore(self.keys.delegations_active, "-inf", now)
        out = []
        for did in self.redis.zrange(self.keys.delegations_active, 0, limit - 1):
            d = self.get(did)
            if d is not None and not d.revoked_at:
                out.append(d)
        return out

    def revoke(self, did: str, by: str, now: float | None = None) -> Delegation | None:
        """End a delegation now (None: unknown)."""
        now = time.time() if now is None else now
        d = self.get(did)
        if d is None:
            return None
        if d.revoked_at:
            return d
        pipe = self.redis.pipeline()
        pipe.hset(self.keys.delegation(did), mapping={"revoked_at": repr(now), "revoked_by": by})
        pipe.zrem(self.keys.delegations_active, did)
        pipe.srem(self.keys.delegations_to(d.to_person), did)
        pipe.execute()
        return self.get(did)


def as_json(items: list[Delegation]) -> str:
    return json.dumps([d.to_public() for d in items])


def delegate_as(rt: Runtime, actor: str, to: Any, seconds: int, from_person: Any = None,
                reason: str = "", channel: str = "api") -> tuple[int, str, dict[str, Any] | None]:
    """Create a delegation for ``actor`` (or, for an administrator, ``from_person``)."""
    directory = rt.policy.directory
    me = directory.person(actor)
    if me is None:
        return 403, "you are not a person in the policy directory", None
    source = me.id
    if from_person and directory.canonical_person(str(from_person)) != me.id:
        if "admins" not in directory.groups_of(me.id):
            return 403, "only administrators delegate for someone else", None
        source = str(from_person)
    try:
        made = Delegations(rt.redis, rt.keys).create(directory, source, str(to), seconds,
                                                     created_by=me.id, reason=reason)
    except DelegationError as exc:
        return 422, str(exc), None
    rt.audit.append(Event.DELEGATION_CREATED, "", me.id, delegation=made.id,
                    from_person=made.from_person, to_person=made.to_person,
                    starts_at=made.starts_at, ends_at=made.ends_at, channel=channel)
    return 201, "created", made.to_public()


def revoke_delegation_as(rt: Runtime, did: str, actor: str, channel: str = "api"
                         ) -> tuple[int, str, dict[str, Any] | None]:
    directory = rt.policy.directory
    store = Delegations(rt.redis, rt.keys)
    found = store.get(did)
    me = directory.person(actor)
    if found is None:
        return 404, f"no delegation {did}", None
    if me is None or (me.id not in (found.from_person, found.to_person)
                      and "admins" not in directory.groups_of(me.id)):
        return 403, "only the two people or an administrator may revoke a delegation", None
    was = found.revoked_at
    done = store.revoke(did, me.id)
    assert done is not None
    if not was:
        rt.audit.append(Event.DELEGATION_REVOKED, "", me.id, delegation=did,
                        from_person=found.from_person, to_person=found.to_person,
                        channel=channel)
    return 200, "revoked", done.to_public()
