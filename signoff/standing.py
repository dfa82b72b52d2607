"""Standing approvals: "approve this, and the same request again for the next hour".

A standing approval is created only when a request was approved by its full quorum and every
approving vote chose a window (the smallest window wins, never longer than the rule's
``standing.max``). It covers later requests that are the *same request again*: the same agent,
action, resource, on-behalf-of person, environment and context (each compared in the one
identity form, :mod:`policy.identity`), matched by the same policy rule, with params that are
identical, except those the rule's ``standing.params`` names, which may differ only within
their JSON Schema bounds (and must be present exactly when they were present). Each covered
request still gets its own grant bound to its own payload, and its own audit entry naming the
standing approval and the people behind it.

Nothing of the approved request's params is kept here: only the SHA-256 of its canonical fixed
params and the names of the bounded ones present. Revoking removes it from the scope index at
once, so the next request is not covered.

:class:`StandingApprovals` owns the Redis structures (key names in :mod:`signoff.keys`).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import redis
from jsonschema import Draft202012Validator

from policy.durations import parse_duration
from policy.identity import canonical_agent, canonical_environment
from signoff.audit import Event
from signoff.keys import Keys
from signoff.models import canonical_json

if TYPE_CHECKING:
    from signoff.runtime import Runtime

# The windows an approver is offered (seconds), cut to the rule's maximum.
WINDOW_CHOICES = (15 * 60, 3600, 4 * 3600, 8 * 3600, 24 * 3600)


def window_choices(maximum: int) -> list[int]:
    """The windows offered for a rule whose ``standing.max`` is ``maximum`` (the maximum
    itself always among them)."""
    if maximum <= 0:
        return []
    out = [w for w in WINDOW_CHOICES if w < maximum]
    return [*out, maximum]


def window_label(seconds: int) -> str:
    """``15 min``, ``1 h``, ``4 h``, ``1 h 30 min``."""
    hours, rest = divmod(int(seconds), 3600)
    minutes = rest // 60
    parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes else [])
    return " ".join(parts) or f"{int(seconds)} s"


def parse_window(value: Any) -> int | None:
    """A window from a vote: seconds (int) or a duration text (``15m``, ``1h``); None when
    absent or unreadable (the caller refuses unreadable values itself)."""
    if value is None or value == "" or value == 0:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())  # seconds, as the inbox's form sends them
    try:
        seconds = parse_duration(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds > 0 else None


def _sha(data: Any) -> str:
    return hashlib.sha256(canonical_json(data)).hexdigest()


@dataclass(frozen=True)
class Scope:
    """What a standing approval covers, in canonical form."""

    rule_id: str
    requester: str
    action: str
    resource: str
    on_behalf_of: str
    environment: str
    context_sha256: str

    @classmethod
    def of(cls, rule_id: str, req: Any, directory: Any) -> Scope:
        """The scope of request ``req`` (an :class:`~signoff.models.AgentRequest`)."""
        return cls(rule_id=rule_id, requester=canonical_agent(req.requester),
                   action=req.action, resource=req.resource,
                   on_behalf_of=directory.canonical_person(req.on_behalf_of)
                   if req.on_behalf_of else "",
                   environment=canonical_environment(req.environment) or "",
                   context_sha256=_sha(req.context or {}))

    @property
    def fingerprint(self) -> str:
        """The scope index's key part."""
        return _sha([self.rule_id, self.requester, self.action, self.resource,
                     self.on_behalf_of, self.environment, self.context_sha256])


def params_shape(params: Mapping[str, Any], bounded: Iterable[str]) -> tuple[str, list[str]]:
    """(SHA-256 of the params outside ``bounded``, sorted names of the bounded ones present)."""
    bounded = set(bounded)
    fixed = {k: v for k, v in params.items() if k not in bounded}
    return _sha(fixed), sorted(k for k in params if k in bounded)


@dataclass(frozen=True)
class Standing:
    """One standing approval."""

    id: str
    scope: Scope
    fixed_sha256: str
    bounded_present: list[str]
    bounds: dict[str, Any]
    approvers: list[str]
    created_at: float
    expires_at: float
    source_request: str
    shown: dict[str, str] = field(default_factory=dict)
    revoked_at: float = 0.0
    revoked_by: str = ""
    uses: int = 0
    delegates: dict[str, str] = field(default_factory=dict)  # approver -> delegate who voted

    @property
    def active(self) -> bool:
        return not self.revoked_at and self.expires_at > time.time()

    def until_text(self) -> str:
        """``15:00 UTC``."""
        return datetime.fromtimestamp(self.expires_at, tz=UTC).strftime("%H:%M UTC")

    def by_text(self) -> str:
        """``@alice, @bob`` (the local part of each approver's address)."""
        return ", ".join("@" + a.split("@")[0] for a in self.approvers)

    def line(self) -> str:
        """"approved under a standing approval by @alice, @bob until 15:00 UTC"."""
        return f"approved under a standing approval by {self.by_text()} until {self.until_text()}"

    def covers_params(self, params: Mapping[str, Any]) -> str | None:
        """None when ``params`` are within what was approved, else why not."""
        fixed, present = params_shape(params, self.bounds)
        if fixed != self.fixed_sha256:
            return "params differ from the approved request"
        if present != self.bounded_present:
            return "params differ from the approved request (a bounded param added or left out)"
        for name in present:
            errors = sorted(Draft202012Validator(self.bounds[name]).iter_errors(params[name]),
                            key=lambda e: e.path)
            if errors:
                return f"param {name!r} is outside the standing approval's bounds: " \
                       f"{errors[0].message}"
        return None

    def to_public(self) -> dict[str, Any]:
        """What listings show (no hashes of params)."""
        return {"id": self.id, "rule": self.scope.rule_id, "requester": self.scope.requester,
                "action": self.shown.get("action", self.scope.action),
                "resource": self.shown.get("resource", self.scope.resource),
                "on_behalf_of": self.shown.get("on_behalf_of", self.scope.on_behalf_of),
                "environment": self.scope.environment, "approvers": list(self.approvers),
                "created_at": self.created_at, "expires_at": self.expires_at,
                "source_request": self.source_request, "uses": self.uses,
                "bounded_params": sorted(self.bounds), "active": self.active,
                "revoked_at": self.revoked_at or None, "revoked_by": self.revoked_by or None}


class StandingApprovals:
    """Standing approvals in Redis: one hash each, the active index and the scope index."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    @staticmethod
    def id_for(request_id: str) -> str:
        """The standing approval a request creates (one per request, whichever finalize
        creates it)."""
        return "st-" + hashlib.sha256(request_id.encode()).hexdigest()[:20]

    def create(self, *, request_id: str, scope: Scope, params: Mapping[str, Any],
               bounds: Mapping[str, Any], approvers: list[str], window: int,
               start: float, shown: Mapping[str, str],
               delegates: Mapping[str, str] | None = None) -> Standing | None:
        """Create the standing approval of ``request_id`` once; None when it exists already."""
        sid = self.id_for(request_id)
        fixed, present = params_shape(params, bounds)
        expires = start + window
        data = {"id": sid, "scope": json.dumps(scope.__dict__), "fixed_sha256": fixed,
                "bounded_present": json.dumps(present), "bounds": json.dumps(dict(bounds)),
                "approvers": json.dumps(approvers), "created_at": repr(start),
                "expires_at": repr(expires), "source_request": request_id,
                "shown": json.dumps(dict(shown)), "uses": "0",
                "delegates": json.dumps(dict(delegates or {}))}
        key = self.keys.standing(sid)
        if not self.redis.hsetnx(key, "id", sid):
            return None
        ttl = max(int(expires - time.time()), 1) + 7 * 86400  # listed a week after it ended
        pipe = self.redis.pipeline()
        pipe.hset(key, mapping=data)
        pipe.expire(key, ttl)
        pipe.zadd(self.keys.standing_active, {sid: expires})
        pipe.sadd(self.keys.standing_scope(scope.fingerprint), sid)
        pipe.expire(self.keys.standing_scope(scope.fingerprint), ttl)
        pipe.execute()
        return self.get(sid)

    def get(self, sid: str) -> Standing | None:
        if not sid.startswith("st-") or len(sid) > 40:
            return None
        raw = self.redis.hgetall(self.keys.standing(sid))
        if not raw or "scope" not in raw:
            return None
        return Standing(
            id=raw["id"], scope=Scope(**json.loads(raw["scope"])),
            fixed_sha256=raw["fixed_sha256"], bounded_present=json.loads(raw["bounded_present"]),
            bounds=json.loads(raw["bounds"]), approvers=json.loads(raw["approvers"]),
            created_at=float(raw["created_at"]), expires_at=float(raw["expires_at"]),
            source_request=raw["source_request"], shown=json.loads(raw.get("shown") or "{}"),
            revoked_at=float(raw.get("revoked_at") or 0), revoked_by=raw.get("revoked_by", ""),
            uses=int(raw.get("uses") or 0),
            delegates=json.loads(raw.get("delegates") or "{}"))

    def for_scope(self, scope: Scope, now: float | None = None) -> list[Standing]:
        """The active standing approvals of ``scope``, newest first."""
        now = time.time() if now is None else now
        out = []
        for sid in self.redis.smembers(self.keys.standing_scope(scope.fingerprint)):
            st = self.get(sid)
            if st is not None and not st.revoked_at and st.expires_at > now and st.scope == scope:
                out.append(st)
        return sorted(out, key=lambda s: -s.created_at)

    def match(self, scope: Scope, params: Mapping[str, Any], now: float | None = None
              ) -> tuple[Standing | None, list[str]]:
        """The standing approval covering a request of ``scope`` with ``params`` (or None) and,
        when none does, why each candidate did not."""
        misses = []
        for st in self.for_scope(scope, now):
            why = st.covers_params(params)
            if why is None:
                return st, []
            misses.append(f"{st.id}: {why}")
        return None, misses

    def used(self, sid: str, request_id: str) -> int:
        """Count one request approved under ``sid``."""
        pipe = self.redis.pipeline()
        pipe.hincrby(self.keys.standing(sid), "uses", 1)
        pipe.hset(self.keys.standing(sid), "last_request", request_id)
        return int(pipe.execute()[0])

    def active(self, now: float | None = None, limit: int = 200) -> list[Standing]:
        """Active standing approvals, soonest to expire first (expired ones pruned)."""
        now = time.time() if now is None else now
        self.redis.zremrangebyscore(self.keys.standing_active, "-inf", now)
        out = []
        for sid in self.redis.zrange(self.keys.standing_active, 0, limit - 1):
            st = self.get(sid)
            if st is not None and st.active:
                out.append(st)
        return out

    def revoke(self, sid: str, by: str, now: float | None = None) -> Standing | None:
        """Revoke ``sid`` (the next request is not covered). None: unknown; a revoked or
        expired one is returned unchanged."""
        now = time.time() if now is None else now
        st = self.get(sid)
        if st is None:
            return None
        if st.revoked_at or st.expires_at <= now:
            return st
        pipe = self.redis.pipeline()
        pipe.srem(self.keys.standing_scope(st.scope.fingerprint), sid)
        pipe.zrem(self.keys.standing_active, sid)
        pipe.hset(self.keys.standing(sid), mapping={"revoked_at": repr(now), "revoked_by": by})
        pipe.execute()
        return self.get(sid)


def may_revoke(st: Standing, person: Any, directory: Any, eligible_groups: Iterable[str]
               ) -> bool:
    """Who may revoke a standing approval: the people behind it, anyone who may decide the
    rule's requests (its eligible groups), the person it acts for, and administrators."""
    if person is None or directory.person(person.id) is None:
        return False
    pid = directory.canonical_person(person.id)
    if pid in {directory.canonical_person(a) for a in st.approvers}:
        return True
    if st.scope.on_behalf_of and pid == st.scope.on_behalf_of:
        return True
    mine = directory.groups_of(pid)
    return bool(set(eligible_groups) & set(mine)) or "admins" in mine


def revoke_standing_as(rt: Runtime, sid: str, person_id: str, channel: str
                       ) -> tuple[int, str, dict[str, Any] | None]:
    """Revoke a standing approval as ``person_id`` (every channel): (status, message, item)."""
    store = StandingApprovals(rt.redis, rt.keys)
    st = store.get(sid)
    if st is None:
        return 404, f"no standing approval {sid}", None
    person = rt.policy.directory.person(person_id)
    source = rt.store.get(st.source_request, with_votes=False)
    eligible = source.json("eligible", []) if source is not None else []
    if not may_revoke(st, person, rt.policy.directory, eligible or []):
        return 403, "only its approvers, the rule's approvers, the person it acts for or an " \
                    "administrator may revoke it", None
    assert person is not None
    done = store.revoke(sid, person.id)
    assert done is not None
    if done.revoked_by == person.id and not st.revoked_at:
        rt.audit.append(Event.STANDING_REVOKED, st.source_request, person.id, standing=sid,
                        channel=channel, uses=done.uses)
    return 200, "revoked", done.to_public()
