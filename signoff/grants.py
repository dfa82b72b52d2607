"""Grants: Ed25519-signed JWTs (PyJWT, EdDSA) that bind an approval to the exact payload.

A grant names the request id (``rid``), action (``act``), resource (``res``), the SHA-256 of
the canonical payload (``psh``), the approvers (``apr``), the policy rule (``pol``), an expiry
and a unique id (``jti``). :func:`verify` checks the signature, the expiry, the action, the
resource and the payload hash, then consumes the grant atomically in Redis, so it runs once:
what was approved is what runs. :func:`revoke` lets an approver group withdraw a grant that
was not used yet; use and revocation are one Lua script each, so exactly one of them wins.

Signing keys live in Redis, each private key sealed (AES-GCM) under the data keyring; the
newest is active. ``signoff keys rotate`` adds a key and retires the old one, whose public key
keeps verifying until every grant it signed has expired (``signoff keys prune`` then removes
it). The same :class:`KeyRing` with ``purpose=audit`` holds the separate keys that sign audit
checkpoints; their public keys are kept forever so old checkpoints stay verifiable.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jwt
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signoff import crypto
from signoff.grant_check import (
    AUDIENCE,
    ISSUER,
    GrantError,
    check_grant,
    unverified_claims,
)

if TYPE_CHECKING:
    from signoff.models import AgentRequest
    from signoff.runtime import Runtime
    from signoff.store import Record

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "GrantError",
    "GrantIssuer",
    "KeyRing",
    "Purpose",
    "RevokeResult",
    "fold_reports",
    "revoke",
    "verify",
]

log = logging.getLogger(__name__)

# A retired grant key is pruned only this long after its last possible grant expired: covers
# a process that read the old active kid just before the rotation and signed just after.
PRUNE_MARGIN_SECONDS = 300
# Grant records (state, who revoked) outlive the grant by a day for listings and support.
GRANT_RECORD_EXTRA_SECONDS = 86400


class Purpose(str, Enum):
    """What a signing key signs."""

    GRANT = "grant"
    AUDIT = "audit"


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 key pair with its id and creation time."""

    kid: str
    private: Ed25519PrivateKey
    created_at: float

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


@dataclass(frozen=True)
class KeyInfo:
    """What ``signoff keys list`` shows about a key (never the private part)."""

    kid: str
    purpose: Purpose
    created_at: float
    retired_at: float | None
    active: bool
    has_private: bool
    sealed_with: str  # the data key id the private key is sealed with ("" when pruned)


def public_jwk(public: Ed25519PublicKey, kid: str, created_at: float | None = None
               ) -> dict[str, Any]:
    """A public key as a JWK with its id (``iat``: when the key was made)."""
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))
    jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
    if created_at is not None:
        jwk["iat"] = int(created_at)
    return dict(jwk)


# Unsealed private keys, by (redis key of the ring, kid): unsealing is an AES-GCM decrypt plus
# a PEM parse, which we avoid per grant. A pruned kid is evicted.
_UNSEALED: dict[tuple[str, str], SigningKey] = {}
_UNSEALED_LOCK = threading.Lock()


class KeyRing:
    """Ed25519 signing keys stored in Redis, sealed under the data keyring.

    Args:
        rt: the runtime (Redis, keys, data keyring, settings).
        purpose: grant keys (published at ``/.well-known/jwks.json``) or audit checkpoint keys.
    """

    def __init__(self, rt: Runtime, purpose: Purpose | str = Purpose.GRANT) -> None:
        self.rt = rt
        # Any: redis-py's stubs cannot express decode_responses=True (replies typed bytes|str).
        self.r: Any = rt.redis
        self.purpose = Purpose(purpose)
        grant = self.purpose is Purpose.GRANT
        self.key = rt.keys.signing_keys if grant else rt.keys.audit_signing_keys
        self.public_key = rt.keys.public_keys if grant else rt.keys.audit_public_keys

    # --- writes -------------------------------------------------------------------------
    def _new(self, now: float) -> tuple[str, Ed25519PrivateKey, str]:
        private = Ed25519PrivateKey.generate()
        kid = (f"{self.purpose.value[0]}" + time.strftime("%Y%m%d%H%M%S", time.gmtime(now))
               + "-" + uuid.uuid4().hex[:6])
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        sealed = crypto.encrypt(self.rt.data_keyring, pem, self._aad(kid))
        return kid, private, sealed

    def _aad(self, kid: str) -> bytes:
        # Binds a sealed key to its ring and id: a grant key cannot be moved into the audit
        # ring (or renamed) and still unseal.
        return f"{self.purpose.value}:{kid}".encode()

    def rotate(self, now: float | None = None) -> SigningKey:
        """Create a new key, make it active, and retire the previous one (it keeps verifying)."""
        now = time.time() if now is None else now
        kid, private, sealed = self._new(now)
        while True:
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(self.key)
                    old = pipe.hget(self.key, "active")
                    old_raw = pipe.hget(self.key, old) if old else None
                    pipe.multi()
                    pipe.hset(self.key, kid, json.dumps({"sealed": sealed, "created_at": now}))
                    pipe.hset(self.key, "active", kid)
                    pipe.hset(self.public_key, kid,
                              json.dumps(public_jwk(private.public_key(), kid, now)))
                    if old and old_raw:
                        data = json.loads(old_raw)
                        data["retired_at"] = now
                        pipe.hset(self.key, old, json.dumps(data))
                    pipe.execute()
                    break
                except redis.WatchError:
                    continue
        self._audit_rotation(kid, now)
        return SigningKey(kid, private, now)

    def _audit_rotation(self, kid: str, now: float) -> None:
        from signoff.audit import Event

        self.rt.audit.append(Event.KEY_ROTATED, "", "signoff", purpose=self.purpose.value,
                             kid=kid, at=now)

    def active(self) -> SigningKey:
        """The signing key; the first one is created on first use (exactly once)."""
        kid = self.r.hget(self.key, "active")
        if kid:
            return self.get(kid)
        now = time.time()
        new_kid, private, sealed = self._new(now)
        with self.r.pipeline() as pipe:
            try:
                pipe.watch(self.key)
                if pipe.hget(self.key, "active"):
                    pipe.unwatch()
                    return self.active()
                pipe.multi()
                pipe.hset(self.key, new_kid, json.dumps({"sealed": sealed, "created_at": now}))
                pipe.hset(self.key, "active", new_kid)
                pipe.hset(self.public_key, new_kid,
                          json.dumps(public_jwk(private.public_key(), new_kid, now)))
                pipe.execute()
            except redis.WatchError:
                return self.active()  # another process created the first key: use theirs
        self._audit_rotation(new_kid, now)
        return SigningKey(new_kid, private, now)

    def prune(self, now: float | None = None) -> list[str]:
        """Drop retired keys that can no longer matter.

        A grant key goes (private and public) once every grant it could have signed has
        expired. An audit key loses only its private part: its public key stays so that old
        checkpoints remain verifiable.

        Returns:
            The kids pruned.
        """
        now = time.time() if now is None else now
        horizon = self.rt.settings.grant_ttl + PRUNE_MARGIN_SECONDS
        pruned = []
        for kid, raw in self.r.hgetall(self.key).items():
            if kid == "active":
                continue
            data = json.loads(raw)
            retired = data.get("retired_at")
            if retired is None:
                continue
            if self.purpose is Purpose.GRANT:
                if float(retired) + horizon > now:
                    continue
                pipe = self.r.pipeline()
                pipe.hdel(self.key, kid)
                pipe.hdel(self.public_key, kid)
                pipe.execute()
            else:
                self.r.hdel(self.key, kid)
            with _UNSEALED_LOCK:
                _UNSEALED.pop((self.key, kid), None)
            pruned.append(kid)
        return sorted(pruned)

    def reseal(self) -> int:
        """Re-encrypt every private key under the active data key (after a data-key rotation).

        Returns:
            How many keys were resealed.
        """
        active_data_kid = crypto.active_kid(self.rt.data_keyring)
        count = 0
        for kid, raw in self.r.hgetall(self.key).items():
            if kid == "active":
                continue
            data = json.loads(raw)
            if crypto.key_id(data["sealed"]) == active_data_kid:
                continue
            pem = crypto.decrypt(self.rt.data_keyring, data["sealed"], self._aad(kid))
            data["sealed"] = crypto.encrypt(self.rt.data_keyring, pem, self._aad(kid))
            self.r.hset(self.key, kid, json.dumps(data))
            count += 1
        return count

    # --- reads --------------------------------------------------------------------------
    def get(self, kid: str) -> SigningKey:
        """A key with its private part (unsealed once per process)."""
        cached = _UNSEALED.get((self.key, kid))
        if cached is not None:
            return cached
        raw = self.r.hget(self.key, kid) if kid != "active" else None
        if not raw:
            raise GrantError("unknown_key", f"unknown signing key {kid!r}")
        data = json.loads(raw)
        pem = crypto.decrypt(self.rt.data_keyring, data["sealed"], self._aad(kid))
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise GrantError("unknown_key", f"signing key {kid!r} is not Ed25519")
        key = SigningKey(kid, private, float(data["created_at"]))
        with _UNSEALED_LOCK:
            _UNSEALED[(self.key, kid)] = key
        return key

    def infos(self) -> list[KeyInfo]:
        """Every key of this ring, oldest first (public-only keys included)."""
        private = self.r.hgetall(self.key)
        public = self.r.hgetall(self.public_key)
        active = private.get("active")
        out = []
        for kid in set(public) | {k for k in private if k != "active"}:
            data = json.loads(private[kid]) if kid in private else {}
            jwk = json.loads(public[kid]) if kid in public else {}
            created = float(data.get("created_at", jwk.get("iat", 0)))
            retired = data.get("retired_at")
            out.append(KeyInfo(kid, self.purpose, created,
                               float(retired) if retired is not None else None,
                               kid == active, bool(data),
                               crypto.key_id(data["sealed"]) if data else ""))
        return sorted(out, key=lambda k: (k.created_at, k.kid))

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set."""
        raw = self.r.hgetall(self.public_key)
        return {"keys": [json.loads(raw[k]) for k in sorted(raw)]}


# --------------------------------------------------------------------------------------------
# issuing
# --------------------------------------------------------------------------------------------
class GrantIssuer:
    """Mints grants for approved requests."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.ring = KeyRing(rt, Purpose.GRANT)

    def mint(self, record: Record, req: AgentRequest, now: float | None = None
             ) -> tuple[str, dict[str, Any]]:
        """Sign a grant without recording it (the caller decides which of racing mints wins).

        Returns:
            (token, claims).
        """
        key = self.ring.active()
        issued = int(time.time() if now is None else now)
        approvers = [v.person for v in record.approvers]
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": req.requester,
            "jti": uuid.uuid4().hex,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.rt.settings.grant_ttl,
            "rid": req.id,
            "act": req.action,
            "res": req.resource,
            "psh": req.payload_sha256(),
            "apr": approvers or ["policy:" + (record.get("rule_id") or "")],
            "pol": record.get("rule_id") or "",
        }
        token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})
        return token, claims

    def register(self, claims: dict[str, Any], kid: str = "") -> None:
        """Record an issued grant (state ``issued``) for status, listing and revocation."""
        key = self.rt.keys.grant(claims["jti"])
        ttl = max(int(claims["exp"] - time.time()), 1) + GRANT_RECORD_EXTRA_SECONDS
        pipe = self.rt.redis.pipeline()
        pipe.hsetnx(key, "state", "issued")
        pipe.hset(key, mapping={
            "jti": claims["jti"], "rid": claims["rid"], "act": claims["act"],
            "sub": claims["sub"], "psh": claims["psh"], "iat": str(claims["iat"]),
            "exp": str(claims["exp"]), "apr": json.dumps(claims["apr"]), "kid": kid,
        })
        pipe.expire(key, ttl)
        pipe.execute()

    def issue(self, record: Record, req: AgentRequest, now: float | None = None) -> str:
        """Mint and record a grant; returns the token."""
        token, claims = self.mint(record, req, now)
        self.register(claims, kid_of_token(token))
        return token


def _r(rt: Runtime) -> Any:
    """The runtime's str client, untyped: redis-py's stubs type every reply bytes | str."""
    return rt.redis


def kid_of_token(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("kid", ""))
    except jwt.PyJWTError:
        return ""


# --------------------------------------------------------------------------------------------
# verifying (server side: audited directly)
# --------------------------------------------------------------------------------------------
def verify(rt: Runtime, token: str, *, action: str, resource: str | None = None,
           params: Any = None, payload: Any = None, consume: bool = True,
           now: float | None = None, actor: str = "signoff") -> dict[str, Any]:
    """Check a grant against the exact action and payload about to run, and consume it.

    Args:
        rt: the runtime.
        token: the grant from the decision.
        action: the action about to run.
        resource, params: what it runs on and with; or ``payload=`` (a mapping or request
            with ``resource`` and ``params``; see :func:`signoff.grant_check.resolve_binding`).
        consume: mark it used (default); False checks only.
        now: the clock (default: the wall clock).
        actor: who verifies, for the audit.

    Returns:
        The verified claims.

    Raises:
        GrantError: with ``code`` malformed, unknown_key, bad_signature, expired,
            not_yet_valid, action_mismatch, resource_mismatch, payload_mismatch, revoked or
            already_used. Every use and every refusal is audited.
    """
    from signoff.audit import Event

    try:
        claims = check_grant(rt.redis, rt.keys, token, action=action, resource=resource,
                             params=params, payload=payload, consume=consume, now=now,
                             report=False)
    except GrantError as exc:
        c = unverified_claims(token) if isinstance(token, str) else {}
        rt.audit.append(Event.GRANT_REFUSED, str(c.get("rid", "")), actor, code=exc.code,
                        jti=str(c.get("jti", "")), action=action)
        raise
    if consume:
        rt.audit.append(Event.GRANT_USED, claims["rid"], actor, jti=claims["jti"],
                        action=claims["act"], payload_sha256=claims["psh"])
    return claims


# --------------------------------------------------------------------------------------------
# revoking
# --------------------------------------------------------------------------------------------
class RevokeOutcome(str, Enum):
    """What :func:`revoke` did."""

    REVOKED = "revoked"
    ALREADY_REVOKED = "already_revoked"
    ALREADY_USED = "already_used"
    EXPIRED = "expired"
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class RevokeResult:
    """The outcome of one revocation attempt."""

    outcome: RevokeOutcome
    jti: str = ""
    request_id: str = ""
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome is RevokeOutcome.REVOKED


@cache
def _revoke_script() -> str:
    return resources.files("signoff.lua").joinpath("grant_revoke.lua").read_text()


def find_grant(rt: Runtime, *, jti: str | None = None, request_id: str | None = None
               ) -> tuple[str, str, float] | None:
    """(jti, request id, expiry) of a grant named by its id or its request's id."""
    if request_id:
        token = _r(rt).hget(rt.keys.request(request_id), "grant")
        if not token:
            return None
        claims = unverified_claims(token)  # our own stored token: its claims are ours
        if not claims.get("jti"):
            return None
        return str(claims["jti"]), request_id, float(claims.get("exp", 0))
    if jti:
        rid, exp = _r(rt).hmget(rt.keys.grant(jti), "rid", "exp")
        if not rid:
            return None
        # Cross-check against the request: the grant record alone is not proof of issue.
        token = _r(rt).hget(rt.keys.request(rid), "grant")
        if token and unverified_claims(token).get("jti") != jti:
            return None
        return jti, rid, float(exp or 0)
    raise ValueError("give jti= or request_id=")


def revoker_refusal(rt: Runtime, request_id: str, person_id: str) -> str | None:
    """Why ``person_id`` may not revoke the grant of ``request_id`` (None: they may).

    Members of the request's approver groups (including groups an escalation added) may
    revoke; agents and everyone else may not.
    """
    person = rt.policy.directory.person(person_id)
    if person is None:
        return f"{person_id} is not a person in the directory"
    record = rt.store.get(request_id, with_votes=False)
    if record is None:
        return f"there is no request {request_id}"
    groups = set(record.json("eligible", []) or []) | set(record.json("extra_groups", []) or [])
    if not groups & set(person.groups):
        names = ", ".join(sorted(groups)) or "none"
        return f"only members of the approver groups ({names}) may revoke this grant"
    return None


def revoke(rt: Runtime, *, by: str, jti: str | None = None, request_id: str | None = None,
           reason: str = "", now: float | None = None, check_groups: bool = True
           ) -> RevokeResult:
    """Revoke an unused grant, update the request's cards and audit it.

    Args:
        rt: the runtime.
        by: the person revoking (a directory id).
        jti, request_id: which grant (by its id or its request's).
        reason: why (kept on the grant record; the audit keeps its SHA-256).
        now: the clock.
        check_groups: require ``by`` to be in the request's approver groups (False only for
            a local administrator's CLI with Redis access, who could do anything anyway).
    """
    from signoff.audit import Event
    from signoff.lifecycle import JOB_UPDATE

    now = time.time() if now is None else now
    found = find_grant(rt, jti=jti, request_id=request_id)
    if found is None:
        return RevokeResult(RevokeOutcome.NOT_FOUND, jti or "", request_id or "",
                            "no such grant")
    gid, rid, exp = found
    if check_groups:
        refusal = revoker_refusal(rt, rid, by)
        if refusal:
            rt.audit.append(Event.REVOKE_REFUSED, rid, by, jti=gid, reason=refusal)
            return RevokeResult(RevokeOutcome.FORBIDDEN, gid, rid, refusal)
    if exp <= now:
        return RevokeResult(RevokeOutcome.EXPIRED, gid, rid, "the grant has already expired")
    script = _r(rt).register_script(_revoke_script())
    ttl = max(int(exp - now), 1) + GRANT_RECORD_EXTRA_SECONDS
    result, _detail = script(
        keys=[rt.keys.grant_used(gid), rt.keys.grant(gid), rt.keys.request(rid)],
        args=[gid, repr(now), by, reason[:2000], ttl, rid])
    outcome = RevokeOutcome(result)
    if outcome is RevokeOutcome.REVOKED:
        import hashlib

        rt.audit.append(Event.GRANT_REVOKED, rid, by, jti=gid, reason_given=bool(reason),
                        reason_sha256=hashlib.sha256(reason.encode()).hexdigest()
                        if reason else "")
        rt.enqueue(JOB_UPDATE, rid)
        return RevokeResult(outcome, gid, rid, "grant revoked")
    messages = {RevokeOutcome.ALREADY_USED: "the grant was already used",
                RevokeOutcome.ALREADY_REVOKED: "the grant was already revoked"}
    return RevokeResult(outcome, gid, rid, messages.get(outcome, outcome.value))


def status(rt: Runtime, jti: str) -> dict[str, Any] | None:
    """A grant's record: state (issued, used, revoked), request, expiry, who revoked."""
    raw = _r(rt).hgetall(rt.keys.grant(jti))
    if not raw:
        return None
    used = _r(rt).get(rt.keys.grant_used(jti))
    out: dict[str, Any] = dict(raw)
    if used and out.get("state") != "revoked":
        out["state"] = "used"
        out.setdefault("used_at", json.loads(used).get("at"))
    out["apr"] = json.loads(out.get("apr", "[]"))
    return out


# --------------------------------------------------------------------------------------------
# reports from Redis-only verifiers -> audit
# --------------------------------------------------------------------------------------------
def fold_reports(rt: Runtime, limit: int = 500) -> int:
    """Append the agents' grant reports to the audit chain, oldest first, then drop them.

    At least once: a crash between the append and the delete repeats one entry, which carries
    the same ``report_id``.

    Returns:
        How many reports were folded.
    """
    from signoff.audit import Event

    rows = _r(rt).xrange(rt.keys.grant_reports, "-", "+", count=limit)
    for report_id, fields in rows:
        try:
            body = json.loads(fields.get("report", "{}"))
        except json.JSONDecodeError:
            body = {}
        result = fields.get("result", "")
        rid = str(body.get("rid", ""))[:200]
        actor = str(body.get("sub") or body.get("by") or "agent")[:200]
        common = {"jti": str(body.get("jti", ""))[:64], "reporter": str(body.get("by", ""))[:200],
                  "verified": bool(body.get("verified")), "report_id": report_id,
                  "action": str(body.get("act", ""))[:200]}
        if result == "used":
            rt.audit.append(Event.GRANT_USED, rid, actor, **common)
        else:
            code = str(body.get("code") or result)[:64]
            rt.audit.append(Event.GRANT_REFUSED, rid, actor, code=code, **common)
        _r(rt).xdel(rt.keys.grant_reports, report_id)
    return len(rows)
