"""Grant verification that needs only Redis (the agent side, and the server's).

A grant is an Ed25519 JWT (see :mod:`signoff.grants`). Verifying one here checks, in order:
the signature (public keys are read from ``{prefix}:keys:public``, plaintext JWKs, so an agent
needs no Signoff secret), issuer and audience, expiry, and that the action, resource and the
SHA-256 of the canonical payload about to run are exactly what was approved. Then it consumes
the grant with one Lua script (``signoff/lua/grant_use.lua``) that refuses a revoked grant and
sets the single-use marker atomically, so a grant runs once and never after a revocation.

Every outcome (used, or refused and why) is reported to ``{prefix}:grant:reports``; Signoff
folds those reports into the audit chain, so an agent never writes the chain itself.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

import jwt
import redis
import redis.asyncio as aioredis

from signoff.keys import Keys
from signoff.models import payload_sha256

ISSUER = "signoff"
AUDIENCE = "signoff-grant"
# How far in the future an ``iat`` may be before we call the token not yet valid: the
# issuing host's clock may run a little ahead of the verifying one.
CLOCK_SKEW_SECONDS = 30
# The used marker outlives the grant by this much, so a replay right at expiry is refused as
# ``already_used`` rather than slipping through between the two checks.
USED_MARKER_MARGIN = 3600
REPORTS_MAXLEN = 100_000
REQUIRED_CLAIMS = ["exp", "iat", "jti", "psh", "rid", "act", "res"]


class GrantError(Exception):
    """A grant was refused; ``code`` says why.

    Codes: ``missing``, ``malformed``, ``unknown_key``, ``bad_signature``, ``expired``,
    ``not_yet_valid``, ``action_mismatch``, ``resource_mismatch``, ``payload_mismatch``,
    ``revoked``, ``already_used``.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@cache
def _use_script() -> str:
    return resources.files("signoff.lua").joinpath("grant_use.lua").read_text()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _token_of(decision_or_token: Any) -> str:
    token = getattr(decision_or_token, "grant", decision_or_token)
    if not isinstance(token, str) or not token:
        raise GrantError("missing", "the decision carries no grant")
    return token


def kid_of(token: str) -> str:
    """The signing key id in a token's header (unverified)."""
    try:
        return str(jwt.get_unverified_header(token).get("kid", ""))
    except jwt.PyJWTError as exc:
        raise GrantError("malformed", "not a grant token") from exc


def unverified_claims(token: str) -> dict[str, Any]:
    """A token's claims without any check: for reports and display only, never for trust."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def resolve_binding(action: str, resource: str | None, params: Any,
                    payload: Any) -> tuple[str, Any]:
    """The (resource, params) a grant is checked against.

    ``payload`` is a convenience: a mapping (or an object such as
    :class:`~signoff.models.AgentRequest`) with ``resource`` and ``params``, and optionally
    ``action``, which must then equal ``action``. Give either ``payload`` or ``resource`` (and
    ``params``), not both.

    Raises:
        ValueError: both or neither were given, or the payload names another action.
    """
    if payload is None:
        if resource is None:
            raise ValueError("give resource= and params=, or payload=")
        return resource, {} if params is None else params
    if resource is not None or params is not None:
        raise ValueError("give payload= or resource=/params=, not both")
    if isinstance(payload, Mapping):
        get = payload.get
    else:
        def get(name: str, default: Any = None) -> Any:
            return getattr(payload, name, default)
    act = get("action")
    if act is not None and act != action:
        raise ValueError(f"payload is for action {act!r}, not {action!r}")
    res = get("resource")
    if not isinstance(res, str):
        raise ValueError("payload needs a string 'resource'")
    return res, get("params", {})


def check_claims(token: str, jwk_json: str | None, *, action: str, resource: str,
                 params: Any, now: float | None = None) -> dict[str, Any]:
    """Verify signature, issuer, audience, expiry and binding; consume nothing.

    Args:
        token: the grant.
        jwk_json: the public JWK of the token's ``kid`` (None when unknown).
        action, resource, params: exactly what is about to run.
        now: the time to check expiry against (default: the wall clock).

    Raises:
        GrantError: unknown_key, bad_signature, expired, not_yet_valid, action_mismatch,
            resource_mismatch, payload_mismatch.
    """
    if not jwk_json:
        raise GrantError("unknown_key", "the grant's signing key is unknown (or was retired)")
    try:
        key = jwt.algorithms.OKPAlgorithm.from_jwk(jwk_json)
    except (jwt.PyJWTError, ValueError) as exc:
        raise GrantError("unknown_key", "the stored public key is not an Ed25519 JWK") from exc
    try:
        # Expiry is checked below against ``now`` so that callers (and tests) control the clock.
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["EdDSA"], audience=AUDIENCE,  # type: ignore[arg-type]
            issuer=ISSUER, options={"require": REQUIRED_CLAIMS, "verify_exp": False,
                                    "verify_iat": False, "verify_nbf": False})
    except jwt.PyJWTError as exc:
        raise GrantError("bad_signature", f"grant does not verify: {exc}") from exc
    now = time.time() if now is None else now
    if float(claims["exp"]) <= now:
        raise GrantError("expired", "the grant has expired")
    if float(claims["iat"]) > now + CLOCK_SKEW_SECONDS:
        raise GrantError("not_yet_valid", "the grant was issued in the future")
    if claims["act"] != action:
        raise GrantError("action_mismatch", f"grant is for {claims['act']!r}, not {action!r}")
    if claims["res"] != resource:
        raise GrantError("resource_mismatch", "grant is for another resource")
    if claims["psh"] != payload_sha256(action, resource, params):
        raise GrantError("payload_mismatch", "the payload differs from what was approved")
    return claims


def _marker(claims: dict[str, Any], now: float, reporter: str) -> tuple[str, int]:
    ttl = max(int(float(claims["exp"]) - now), 1) + USED_MARKER_MARGIN
    return json.dumps({"at": now, "by": reporter}), ttl


def _report(token: str, claims: dict[str, Any] | None, reporter: str, now: float,
            code: str = "") -> str:
    """The report body: identifiers and hashes only, never the token or the payload."""
    c = claims if claims is not None else unverified_claims(token)
    body = {"rid": str(c.get("rid", "")), "act": str(c.get("act", "")),
            "sub": str(c.get("sub", "")), "jti": str(c.get("jti", "")),
            "by": reporter, "at": now, "verified": claims is not None}
    if code:
        body["code"] = code
    return json.dumps(body, sort_keys=True)


def _use_result(raw: Any) -> str:
    result = _text(raw[0])
    if result == "revoked":
        raise GrantError("revoked", "the grant was revoked")
    if result == "already_used":
        raise GrantError("already_used", "the grant was already used")
    return result


def check_grant(r: redis.Redis, keys: Keys, decision_or_token: Any, *, action: str,
                resource: str | None = None, params: Any = None, payload: Any = None,
                consume: bool = True, now: float | None = None, report: bool = True,
                reporter: str = "agent") -> dict[str, Any]:
    """Verify a grant against what is about to run and consume it (sync).

    Args:
        r: any redis-py client (bytes or str responses).
        keys: the deployment's key builder.
        decision_or_token: a decision with ``.grant``, or the token itself.
        action, resource, params: exactly what is about to run (or ``payload=``: see
            :func:`resolve_binding`).
        consume: mark the grant used (single use); False only checks.
        now: the clock (default: the wall clock).
        report: append the outcome to the grant reports stream for the audit.
        reporter: who verifies, as the audit should name it.

    Returns:
        The verified claims.

    Raises:
        GrantError: why the grant was refused.
    """
    token = _token_of(decision_or_token)
    res, prm = resolve_binding(action, resource, params, payload)
    now = time.time() if now is None else now
    try:
        jwk = r.hget(keys.public_keys, kid_of(token))
        claims = check_claims(token, _text(jwk) if jwk is not None else None, action=action,
                              resource=res, params=prm, now=now)
    except GrantError as exc:
        if report:
            r.xadd(keys.grant_reports, {"jti": "", "result": "refused",
                                        "report": _report(token, None, reporter, now, exc.code)},
                   maxlen=REPORTS_MAXLEN, approximate=True)
        raise
    if not consume:
        state = r.hget(keys.grant(claims["jti"]), "state")
        if state is not None and _text(state) == "revoked":
            raise GrantError("revoked", "the grant was revoked")
        if r.exists(keys.grant_used(claims["jti"])):
            raise GrantError("already_used", "the grant was already used")
        return claims
    marker, ttl = _marker(claims, now, reporter)
    script = r.register_script(_use_script())
    raw = script(keys=[keys.grant_used(claims["jti"]), keys.grant(claims["jti"]),
                       keys.grant_reports],
                 args=[claims["jti"], marker, ttl,
                       _report(token, claims, reporter, now) if report else "",
                       REPORTS_MAXLEN, repr(now)])
    _use_result(raw)
    return claims


async def acheck_grant(r: aioredis.Redis, keys: Keys, decision_or_token: Any, *, action: str,
                       resource: str | None = None, params: Any = None, payload: Any = None,
                       consume: bool = True, now: float | None = None, report: bool = True,
                       reporter: str = "agent") -> dict[str, Any]:
    """The asyncio twin of :func:`check_grant` (same arguments, same checks)."""
    token = _token_of(decision_or_token)
    res, prm = resolve_binding(action, resource, params, payload)
    now = time.time() if now is None else now
    try:
        jwk = await r.hget(keys.public_keys, kid_of(token))
        claims = check_claims(token, _text(jwk) if jwk is not None else None, action=action,
                              resource=res, params=prm, now=now)
    except GrantError as exc:
        if report:
            await r.xadd(keys.grant_reports, {
                "jti": "", "result": "refused",
                "report": _report(token, None, reporter, now, exc.code)},
                maxlen=REPORTS_MAXLEN, approximate=True)
        raise
    if not consume:
        state = await r.hget(keys.grant(claims["jti"]), "state")
        if state is not None and _text(state) == "revoked":
            raise GrantError("revoked", "the grant was revoked")
        if await r.exists(keys.grant_used(claims["jti"])):
            raise GrantError("already_used", "the grant was already used")
        return claims
    marker, ttl = _marker(claims, now, reporter)
    script = r.register_script(_use_script())
    raw = await script(keys=[keys.grant_used(claims["jti"]), keys.grant(claims["jti"]),
                             keys.grant_reports],
                       args=[claims["jti"], marker, ttl,
                             _report(token, claims, reporter, now) if report else "",
                             REPORTS_MAXLEN, repr(now)])
    _use_result(raw)
    return claims
