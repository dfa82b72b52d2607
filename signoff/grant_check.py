"""Grant verification that needs only Redis (the agent side, and the server's).

Public keys are read from ``{prefix}:keys:public`` (plaintext JWKs), so an agent verifies a
grant without any Signoff secret. Consumption is ``SET NX`` on ``{prefix}:grant:used:{jti}``:
the first verifier wins and every later use is refused.
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
import redis
import redis.asyncio as aioredis

from signoff.keys import Keys
from signoff.models import payload_sha256

ISSUER = "signoff"
AUDIENCE = "signoff-grant"


class GrantError(Exception):
    """A grant was refused; ``code`` says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _token_of(decision_or_token: Any) -> str:
    token = getattr(decision_or_token, "grant", decision_or_token)
    if not isinstance(token, str) or not token:
        raise GrantError("missing", "the decision carries no grant")
    return token


def kid_of(token: str) -> str:
    try:
        return str(jwt.get_unverified_header(token).get("kid", ""))
    except jwt.PyJWTError as exc:
        raise GrantError("bad_signature", "not a grant token") from exc


def check_claims(token: str, jwk_json: str | None, *, action: str, resource: str,
                 params: Any, now: float | None = None) -> dict[str, Any]:
    """Verify signature, expiry and binding; no consumption.

    Raises:
        GrantError: unknown_key, bad_signature, expired, action_mismatch, resource_mismatch,
            payload_mismatch.
    """
    if not jwk_json:
        raise GrantError("unknown_key", "the grant's signing key is unknown")
    key = jwt.algorithms.OKPAlgorithm.from_jwk(jwk_json)
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["EdDSA"], audience=AUDIENCE,  # type: ignore[arg-type]
            issuer=ISSUER, options={"require": ["exp", "jti", "psh", "rid", "act"]},
            leeway=0)
    except jwt.ExpiredSignatureError as exc:
        raise GrantError("expired", "the grant has expired") from exc
    except jwt.PyJWTError as exc:
        raise GrantError("bad_signature", f"grant does not verify: {exc}") from exc
    if now is not None and claims["exp"] <= now:
        raise GrantError("expired", "the grant has expired")
    if claims["act"] != action:
        raise GrantError("action_mismatch", f"grant is for {claims['act']!r}, not {action!r}")
    if claims.get("res") != resource:
        raise GrantError("resource_mismatch", "grant is for another resource")
    if claims["psh"] != payload_sha256(action, resource, params):
        raise GrantError("payload_mismatch", "the payload differs from what was approved")
    return claims


def _used_ttl(claims: dict[str, Any]) -> int:
    return max(int(claims["exp"] - time.time()), 1) + 3600


def check_grant(r: redis.Redis, keys: Keys, decision_or_token: Any, *, action: str,
                resource: str, params: Any, consume: bool = True) -> dict[str, Any]:
    """Verify a grant against what is about to run and consume it (sync)."""
    token = _token_of(decision_or_token)
    jwk = r.hget(keys.public_keys, kid_of(token))
    claims = check_claims(token, jwk.decode() if isinstance(jwk, bytes) else jwk,
                          action=action, resource=resource, params=params)
    if r.exists(keys.grant(claims["jti"]) + ":revoked"):
        raise GrantError("revoked", "the grant was revoked")
    if consume and not r.set(keys.grant_used(claims["jti"]), json.dumps(
            {"at": time.time()}), nx=True, ex=_used_ttl(claims)):
        raise GrantError("already_used", "the grant was already used")
    return claims


async def acheck_grant(r: aioredis.Redis, keys: Keys, decision_or_token: Any, *, action: str,
                       resource: str, params: Any, consume: bool = True) -> dict[str, Any]:
    """The asyncio twin of :func:`check_grant`."""
    token = _token_of(decision_or_token)
    jwk = await r.hget(keys.public_keys, kid_of(token))
    claims = check_claims(token, jwk.decode() if isinstance(jwk, bytes) else jwk,
                          action=action, resource=resource, params=params)
    if await r.exists(keys.grant(claims["jti"]) + ":revoked"):
        raise GrantError("revoked", "the grant was revoked")
    if consume and not await r.set(keys.grant_used(claims["jti"]), json.dumps(
            {"at": time.time()}), nx=True, ex=_used_ttl(claims)):
        raise GrantError("already_used", "the grant was already used")
    return claims
