"""Ed25519 signing keys in Redis, each private key sealed (AES-GCM) under the data keyring.

Two rings share this code: grant keys (published at ``/.well-known/jwks.json``) and audit
checkpoint keys (published at ``/.well-known/signoff-audit-keys.json``). The newest key of a
ring is active. ``signoff keys rotate`` adds a key and retires the old one, whose public key
keeps verifying until every grant it signed has expired (``signoff keys prune`` then removes
it); an audit key loses only its private part, so old checkpoints stay verifiable forever.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from typing import Any, Protocol

import jwt
import redis
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signoff import crypto
from signoff.context import StoreContext
from signoff.grant_check import GrantError


class RotationLog(Protocol):
    """Where a key ring reports a new key (the audit log: ``AuditLog.key_rotated``)."""

    def key_rotated(self, purpose: str, kid: str, at: float) -> object: ...


class KeyContext(StoreContext, Protocol):
    """What a key ring needs of the runtime: Redis, keys, settings, the data keys that
    seal private keys at rest, and the audit log it reports rotations to."""

    @property
    def audit(self) -> RotationLog: ...

    @property
    def data_keyring(self) -> dict[str, bytes]: ...

# A retired grant key is pruned only this long after its last possible grant expired: covers
# a process that read the old active kid just before the rotation and signed just after.
PRUNE_MARGIN_SECONDS = 300


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

    def __init__(self, rt: KeyContext, purpose: Purpose | str = Purpose.GRANT) -> None:
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
        self.rt.audit.key_rotated(self.purpose.value, kid, now)

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
