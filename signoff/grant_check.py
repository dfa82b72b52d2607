"""Grant verification that needs only Redis (the agent side, and the server's).

A grant is an Ed25519 JWT (see :mod:`signoff.grants`) bound to one approved request: its id
(``rid``), the requesting agent (``sub``), the action (``act``), the resource (``res``), the
SHA-256 of the canonical payload (``psh``), the SHA-256 of the request's context (``ctx``)
and its environment (``env``). Verifying one here checks, in order: the signature (public keys
are read from ``{prefix}:keys:public``, plaintext JWKs, so an agent needs no Signoff secret),
issuer and audience, expiry, then that everything the caller says is about to run is exactly
what was approved: request id, requester, action, resource, payload, environment, context.
Every mismatch is refused with its own :class:`Refusal` code. Then it consumes the grant with
one Lua script (``signoff/lua/grant_use.lua``) that refuses a revoked grant and sets the
single-use marker atomically, so a grant runs once and never after a revocation.

Every outcome (used, or refused and why) is reported to ``{prefix}:grant:reports``; Signoff
folds those reports into the audit chain, so an agent never writes the chain itself.

The check is written once, as a generator of the Redis calls it needs (:func:`_check`);
:func:`check_grant` runs it on a redis-py client and :func:`acheck_grant` on an asyncio one,
so the two can never drift apart.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources
from typing import Any

import jwt
import redis
import redis.asyncio as aioredis

from policy.identity import canonical_agent, canonical_context, canonical_environment
from signoff.keys import Keys
from signoff.models import canonical_json, payload_sha256

ISSUER = "signoff"
AUDIENCE = "signoff-grant"
# How far in the future an ``iat`` may be before we call the token not yet valid: the
# issuing host's clock may run a little ahead of the verifying one.
CLOCK_SKEW_SECONDS = 30
# The used marker outlives the grant by this much, so a replay right at expiry is refused as
# ``already_used`` rather than slipping through between the two checks.
USED_MARKER_MARGIN = 3600
REPORTS_MAXLEN = 100_000
REQUIRED_CLAIMS = ["exp", "iat", "jti", "psh", "rid", "act", "res", "sub", "ctx", "env"]


class Refusal(str, Enum):
    """Why a grant was refused (``GrantError.code``)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REQUEST_MISMATCH = "request_mismatch"
    REQUESTER_MISMATCH = "requester_mismatch"
    ACTION_MISMATCH = "action_mismatch"
    RESOURCE_MISMATCH = "resource_mismatch"
    PAYLOAD_MISMATCH = "payload_mismatch"
    ENVIRONMENT_MISMATCH = "environment_mismatch"
    CONTEXT_MISMATCH = "context_mismatch"
    REVOKED = "revoked"
    ALREADY_USED = "already_used"

    def __str__(self) -> str:  # messages and logs show the code itself
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)


class GrantError(Exception):
    """A grant was refused; ``code`` (a :class:`Refusal`, equal to its string) says why."""

    def __init__(self, code: Refusal | str, message: str) -> None:
        super().__init__(message)
        self.code = Refusal(code)


@cache
def _use_script() -> str:
    return resources.files("signoff.lua").joinpath("grant_use.lua").read_text()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _token_of(decision_or_token: Any) -> str:
    token = getattr(decision_or_token, "grant", decision_or_token)
    if not isinstance(token, str) or not token:
        raise GrantError(Refusal.MISSING, "the decision carries no grant")
    return token


def kid_of(token: str) -> str:
    """The signing key id in a token's header (unverified)."""
    try:
        return str(jwt.get_unverified_header(token).get("kid", ""))
    except jwt.PyJWTError as exc:
        raise GrantError(Refusal.MALFORMED, "not a grant token") from exc


def unverified_claims(token: str) -> dict[str, Any]:
    """A token's claims without any check: for reports and display only, never for trust."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims if isinstance(claims, dict) else {}


def context_sha256(context: Mapping[str, Any] | None) -> str:
    """SHA-256 of a request's context as grants bind it: canonical JSON of the context with
    its environment in the one identity form (``PROD`` and ``prod`` hash alike)."""
    return hashlib.sha256(canonical_json(canonical_context(context))).hexdigest()


def environment_of(context: Mapping[str, Any] | None) -> str:
    """The canonical ``context.environment`` a grant binds (``""`` when there is none)."""
    return canonical_environment((context or {}).get("environment")) or ""


@dataclass(frozen=True)
class Binding:
    """What the caller is about to run, to be checked against the grant.

    ``action``, ``resource`` and ``params`` are always checked. The rest is checked when
    known (``None``: not given): the SDK gives all of it; a gateway that knows only the
    action may leave the rest out, and is then told nothing about it.
    """

    action: str
    resource: str
    params: Any
    request_ids: tuple[str, ...] = ()
    requester: str | None = None
    context: Mapping[str, Any] | None = None
    environment: str | None = None
    payload_sha256: str | None = None  # what the decision carrying the grant claims


def _get(obj: Any, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def resolve_binding(action: str, resource: str | None, params: Any, payload: Any, *,
                    request_id: str | None = None, requester: str | None = None,
                    context: Mapping[str, Any] | None = None, environment: str | None = None,
                    decision: Any = None) -> Binding:
    """The :class:`Binding` a grant is checked against.

    ``payload`` is a convenience: a mapping (such as the request body the SDK sent) or an
    object (such as :class:`~signoff.models.AgentRequest`) with ``resource`` and ``params``,
    and optionally ``action`` (which must then equal ``action``), ``id``, ``requester`` and
    ``context``, which are then bound too. Give either ``payload`` or ``resource`` (and
    ``params``), not both. ``decision`` (a decision object, not a bare token) adds its ``id``
    and ``payload_sha256``: a grant must agree with the decision that carried it.

    Raises:
        ValueError: both or neither were given, or the payload names another action.
    """
    ids: list[str] = []
    if request_id is not None:
        ids.append(request_id)
    if payload is None:
        if resource is None:
            raise ValueError("give resource= and params=, or payload=")
        res, prm = resource, {} if params is None else params
    else:
        if resource is not None or params is not None:
            raise ValueError("give payload= or resource=/params=, not both")
        act = _get(payload, "action")
        if act is not None and act != action:
            raise ValueError(f"payload is for action {act!r}, not {action!r}")
        res = _get(payload, "resource")
        if not isinstance(res, str):
            raise ValueError("payload needs a string 'resource'")
        prm = _get(payload, "params")
        prm = {} if prm is None else prm
        if isinstance(_get(payload, "id"), str):
            ids.append(_get(payload, "id"))
        if requester is None and isinstance(_get(payload, "requester"), str):
            requester = _get(payload, "requester")
        if context is None and isinstance(_get(payload, "context"), Mapping):
            context = _get(payload, "context")
    decision_sha = None
    if decision is not None and not isinstance(decision, str):
        if isinstance(_get(decision, "id"), str):
            ids.append(_get(decision, "id"))
        sha = _get(decision, "payload_sha256")
        if sha is None:
            sha = (_get(decision, "raw") or {}).get("payload_sha256")
        decision_sha = sha if isinstance(sha, str) else None
    return Binding(action, res, prm, tuple(ids), requester, context, environment, decision_sha)


def check_claims(token: str, jwk_json: str | None, binding: Binding,
                 now: float | None = None) -> dict[str, Any]:
    """Verify signature, issuer, audience, expiry and the binding; consume nothing.

    Args:
        token: the grant.
        jwk_json: the public JWK of the token's ``kid`` (None when unknown).
        binding: exactly what is about to run.
        now: the time to check expiry against (default: the wall clock).

    Raises:
        GrantError: unknown_key, bad_signature, expired, not_yet_valid, request_mismatch,
            requester_mismatch, action_mismatch, resource_mismatch, payload_mismatch,
            environment_mismatch, context_mismatch.
    """
    if not jwk_json:
        raise GrantError(Refusal.UNKNOWN_KEY,
                         "the grant's signing key is unknown (or was retired)")
    try:
        key = jwt.algorithms.OKPAlgorithm.from_jwk(jwk_json)
    except (jwt.PyJWTError, ValueError) as exc:
        raise GrantError(Refusal.UNKNOWN_KEY,
                         "the stored public key is not an Ed25519 JWK") from exc
    try:
        # Expiry is checked below against ``now`` so that callers (and tests) control the clock.
        claims: dict[str, Any] = jwt.decode(
            token, key, algorithms=["EdDSA"], audience=AUDIENCE,  # type: ignore[arg-type]
            issuer=ISSUER, options={"require": REQUIRED_CLAIMS, "verify_exp": False,
                                    "verify_iat": False, "verify_nbf": False})
    except jwt.MissingRequiredClaimError as exc:
        raise GrantError(Refusal.MALFORMED, f"not a grant Signoff issues: {exc}") from exc
    except jwt.PyJWTError as exc:
        raise GrantError(Refusal.BAD_SIGNATURE, f"grant does not verify: {exc}") from exc
    now = time.time() if now is None else now
    if float(claims["exp"]) <= now:
        raise GrantError(Refusal.EXPIRED, "the grant has expired")
    if float(claims["iat"]) > now + CLOCK_SKEW_SECONDS:
        raise GrantError(Refusal.NOT_YET_VALID, "the grant was issued in the future")
    _check_binding(claims, binding)
    return claims


def _check_binding(claims: dict[str, Any], b: Binding) -> None:
    """Refuse a grant for anything but exactly what was approved (one code per mismatch)."""
    for rid in b.request_ids:
        if claims["rid"] != rid:
            raise GrantError(Refusal.REQUEST_MISMATCH,
                             f"grant is for request {claims['rid']!r}, not {rid!r}")
    if b.requester is not None and canonical_agent(b.requester) != claims["sub"]:
        raise GrantError(Refusal.REQUESTER_MISMATCH,
                         f"grant is for requester {claims['sub']!r}, not {b.requester!r}")
    if claims["act"] != b.action:
        raise GrantError(Refusal.ACTION_MISMATCH,
                         f"grant is for {claims['act']!r}, not {b.action!r}")
    if claims["res"] != b.resource:
        raise GrantError(Refusal.RESOURCE_MISMATCH, "grant is for another resource")
    if claims["psh"] != payload_sha256(b.action, b.resource, b.params):
        raise GrantError(Refusal.PAYLOAD_MISMATCH,
                         "the payload differs from what was approved")
    if b.payload_sha256 is not None and b.payload_sha256 != claims["psh"]:
        raise GrantError(Refusal.PAYLOAD_MISMATCH,
                         "the decision names another payload than its grant")
    wanted_envs = [canonical_environment(b.environment) or ""] if b.environment is not None \
        else []
    if b.context is not None:
        wanted_envs.append(environment_of(b.context))
    for env in wanted_envs:
        if claims["env"] != env:
            raise GrantError(Refusal.ENVIRONMENT_MISMATCH,
                             f"grant is for environment {claims['env'] or '(none)'!r}, "
                             f"not {env or '(none)'!r}")
    if b.context is not None and claims["ctx"] != context_sha256(b.context):
        raise GrantError(Refusal.CONTEXT_MISMATCH,
                         "the request context differs from what was approved")


def _marker(claims: dict[str, Any], now: float, reporter: str) -> tuple[str, int]:
    ttl = max(int(float(claims["exp"]) - now), 1) + USED_MARKER_MARGIN
    return json.dumps({"at": now, "by": reporter}), ttl


def _report(token: str, claims: dict[str, Any] | None, reporter: str, now: float,
            code: str = "") -> str:
    """The report body: identifiers and hashes only, never the token or the payload."""
    c = claims if claims is not None else unverified_claims(token)
    body = {"rid": str(c.get("rid", "")), "req": str(c.get("req", "")),
            "act": str(c.get("act", "")),
            "sub": str(c.get("sub", "")), "jti": str(c.get("jti", "")),
            "by": reporter, "at": now, "verified": claims is not None}
    if code:
        body["code"] = code
    return json.dumps(body, sort_keys=True)


def _use_result(raw: Any) -> str:
    result = _text(raw[0])
    if result == "revoked":
        raise GrantError(Refusal.REVOKED, "the grant was revoked")
    if result == "already_used":
        raise GrantError(Refusal.ALREADY_USED, "the grant was already used")
    return result


# --------------------------------------------------------------------------------------------
# the one check, as a generator of the Redis calls it needs
# --------------------------------------------------------------------------------------------
# Each yielded step is one Redis call: ("hget", key, field), ("exists", key),
# ("xadd", stream, fields) or ("use", keys, args) for the grant_use script. The shells below
# send each reply back in; the generator's return value is the verified claims.
Step = tuple[Any, ...]


def _check(keys: Keys, token: str, binding: Binding, *, consume: bool, now: float,
           report: bool, reporter: str) -> Generator[Step, Any, dict[str, Any]]:
    try:
        kid = kid_of(token)
        jwk = yield ("hget", keys.public_keys, kid)
        claims = check_claims(token, _text(jwk) if jwk is not None else None, binding, now=now)
    except GrantError as exc:
        if report:
            yield ("xadd", keys.grant_reports,
                   {"jti": "", "result": "refused",
                    "report": _report(token, None, reporter, now, exc.code.value)})
        raise
    if not consume:
        state = yield ("hget", keys.grant(claims["jti"]), "state")
        if state is not None and _text(state) == "revoked":
            raise GrantError(Refusal.REVOKED, "the grant was revoked")
        if (yield ("exists", keys.grant_used(claims["jti"]))):
            raise GrantError(Refusal.ALREADY_USED, "the grant was already used")
        return claims
    marker, ttl = _marker(claims, now, reporter)
    raw = yield ("use",
                 [keys.grant_used(claims["jti"]), keys.grant(claims["jti"]), keys.grant_reports],
                 [claims["jti"], marker, ttl,
                  _report(token, claims, reporter, now) if report else "", REPORTS_MAXLEN,
                  repr(now)])
    _use_result(raw)
    return claims


def _start(decision_or_token: Any, action: str, resource: str | None, params: Any,
           payload: Any, request_id: str | None, requester: str | None,
           context: Mapping[str, Any] | None, environment: str | None
           ) -> tuple[str, Binding]:
    token = _token_of(decision_or_token)
    binding = resolve_binding(action, resource, params, payload, request_id=request_id,
                              requester=requester, context=context, environment=environment,
                              decision=decision_or_token)
    return token, binding


def check_grant(r: redis.Redis, keys: Keys, decision_or_token: Any, *, action: str,
                resource: str | None = None, params: Any = None, payload: Any = None,
                request_id: str | None = None, requester: str | None = None,
                context: Mapping[str, Any] | None = None, environment: str | None = None,
                consume: bool = True, now: float | None = None, report: bool = True,
                reporter: str = "agent") -> dict[str, Any]:
    """Verify a grant against what is about to run and consume it (sync).

    Args:
        r: any redis-py client (bytes or str responses).
        keys: the deployment's key builder.
        decision_or_token: a decision with ``.grant`` (its ``id`` and ``payload_sha256``
            must then agree with the grant), or the token itself.
        action, resource, params: exactly what is about to run (or ``payload=``: see
            :func:`resolve_binding`).
        request_id: the id of the request this run was approved as.
        requester: the agent about to run it.
        context: the request's context as sent (binds its hash and its environment).
        environment: the environment about to be acted on (when the context is not known).
        consume: mark the grant used (single use); False only checks.
        now: the clock (default: the wall clock).
        report: append the outcome to the grant reports stream for the audit.
        reporter: who verifies, as the audit should name it.

    Returns:
        The verified claims.

    Raises:
        GrantError: why the grant was refused (``code``: a :class:`Refusal`).
    """
    token, binding = _start(decision_or_token, action, resource, params, payload, request_id,
                            requester, context, environment)
    steps = _check(keys, token, binding, consume=consume,
                   now=time.time() if now is None else now, report=report, reporter=reporter)
    reply: Any = None
    try:
        while True:
            step = steps.send(reply)
            if step[0] == "hget":
                reply = r.hget(step[1], step[2])
            elif step[0] == "exists":
                reply = r.exists(step[1])
            elif step[0] == "xadd":
                reply = r.xadd(step[1], step[2], maxlen=REPORTS_MAXLEN, approximate=True)
            else:
                reply = r.register_script(_use_script())(keys=step[1], args=step[2])
    except StopIteration as done:
        claims: dict[str, Any] = done.value
        return claims


async def acheck_grant(r: aioredis.Redis, keys: Keys, decision_or_token: Any, *, action: str,
                       resource: str | None = None, params: Any = None, payload: Any = None,
                       request_id: str | None = None, requester: str | None = None,
                       context: Mapping[str, Any] | None = None,
                       environment: str | None = None, consume: bool = True,
                       now: float | None = None, report: bool = True,
                       reporter: str = "agent") -> dict[str, Any]:
    """The asyncio shell of :func:`check_grant` (same arguments, the same check)."""
    token, binding = _start(decision_or_token, action, resource, params, payload, request_id,
                            requester, context, environment)
    steps = _check(keys, token, binding, consume=consume,
                   now=time.time() if now is None else now, report=report, reporter=reporter)
    reply: Any = None
    try:
        while True:
            step = steps.send(reply)
            if step[0] == "hget":
                reply = await r.hget(step[1], step[2])
            elif step[0] == "exists":
                reply = await r.exists(step[1])
            elif step[0] == "xadd":
                reply = await r.xadd(step[1], step[2], maxlen=REPORTS_MAXLEN, approximate=True)
            else:
                reply = await r.register_script(_use_script())(keys=step[1], args=step[2])
    except StopIteration as done:
        claims: dict[str, Any] = done.value
        return claims
