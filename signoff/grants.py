"""Grants: Ed25519-signed JWTs (PyJWT, EdDSA) that bind an approval to the exact payload.

A grant names the request id, action, resource, the SHA-256 of the canonical payload, the
approvers, an expiry and a unique id (``jti``). :func:`verify` checks the signature, the
expiry, the action and the payload hash, then consumes the grant in Redis (``SET NX``), so it
runs once: what was approved is what runs.

Signing keys live in Redis (``{prefix}:keys:signing``), each private key encrypted with the
data keyring; the newest is active and older ones keep verifying until their grants expire.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from signoff import crypto
from signoff.grant_check import AUDIENCE, ISSUER, GrantError, check_grant

if TYPE_CHECKING:
    from signoff.models import AgentRequest
    from signoff.runtime import Runtime
    from signoff.store import Record

__all__ = ["AUDIENCE", "ISSUER", "GrantError", "GrantIssuer", "KeyRing", "verify"]


@dataclass(frozen=True)
class SigningKey:
    """One Ed25519 key pair with its id and creation time."""

    kid: str
    private: Ed25519PrivateKey
    created_at: float

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


def public_jwk(public: Ed25519PublicKey, kid: str) -> dict[str, Any]:
    """A public key as a JWK with its id."""
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(public))
    jwk.update({"kid": kid, "use": "sig", "alg": "EdDSA"})
    return dict(jwk)


class KeyRing:
    """Signing keys stored in Redis, encrypted under the data keyring."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.key = rt.keys.signing_keys

    def _load(self) -> dict[str, Any]:
        raw = self.rt.redis.hgetall(self.key)
        return {k: json.loads(v) if k != "active" else v for k, v in raw.items()}

    def rotate(self) -> SigningKey:
        """Create a new key and make it the active one (old keys keep verifying)."""
        private = Ed25519PrivateKey.generate()
        kid = time.strftime("k%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
        pem = private.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        sealed = crypto.encrypt(self.rt.data_keyring, pem, kid.encode())
        now = time.time()
        pipe = self.rt.redis.pipeline()
        pipe.hset(self.key, kid, json.dumps({"sealed": sealed, "created_at": now}))
        pipe.hset(self.key, "active", kid)
        pipe.hset(self.rt.keys.public_keys, kid, json.dumps(public_jwk(private.public_key(), kid)))
        pipe.execute()
        return SigningKey(kid, private, now)

    def active(self) -> SigningKey:
        """The signing key, created on first use (a race makes two keys; both verify)."""
        kid = self.rt.redis.hget(self.key, "active")
        if not kid:
            return self.rotate()
        return self.get(kid)

    def get(self, kid: str) -> SigningKey:
        raw = self.rt.redis.hget(self.key, kid)
        if not raw or kid == "active":
            raise GrantError("unknown_key", f"unknown signing key {kid!r}")
        data = json.loads(raw)
        pem = crypto.decrypt(self.rt.data_keyring, data["sealed"], kid.encode())
        private = serialization.load_pem_private_key(pem, password=None)
        assert isinstance(private, Ed25519PrivateKey)
        return SigningKey(kid, private, float(data["created_at"]))

    def all(self) -> list[SigningKey]:
        kids = [k for k in self.rt.redis.hkeys(self.key) if k != "active"]
        return sorted((self.get(k) for k in kids), key=lambda k: k.created_at)

    def jwks(self) -> dict[str, Any]:
        """The public keys as a JWK Set (``/.well-known/jwks.json``)."""
        raw = self.rt.redis.hgetall(self.rt.keys.public_keys)
        return {"keys": [json.loads(raw[k]) for k in sorted(raw)]}


class GrantIssuer:
    """Mints grants for approved requests."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.ring = KeyRing(rt)

    def issue(self, record: Record, req: AgentRequest) -> str:
        key = self.ring.active()
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": req.requester,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + self.rt.settings.grant_ttl,
            "rid": req.id,
            "act": req.action,
            "res": req.resource,
            "psh": req.payload_sha256(),
            "apr": [v.person for v in record.approvers] or ["policy:" + (record.get("rule_id") or "")],
        }
        return jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})


def verify(rt: Runtime, token: str, *, action: str, resource: str, params: Any,
           consume: bool = True) -> dict[str, Any]:
    """Check a grant against the exact action and payload about to run, and consume it.

    Every refusal is audited.

    Raises:
        GrantError: with ``code`` bad_signature, unknown_key, expired, action_mismatch,
            resource_mismatch, payload_mismatch, revoked or already_used.
    """
    from signoff.audit import Event

    try:
        claims = check_grant(rt.redis, rt.keys, token, action=action, resource=resource,
                             params=params, consume=consume)
    except GrantError as exc:
        rt.audit.append(Event.GRANT_REFUSED, _rid(token), "", code=exc.code)
        raise
    if consume:
        rt.audit.append(Event.GRANT_USED, claims["rid"], claims.get("sub", ""), jti=claims["jti"])
    return claims


def _rid(token: str) -> str:
    try:
        return str(jwt.decode(token, options={"verify_signature": False}).get("rid", ""))
    except jwt.PyJWTError:
        return ""
