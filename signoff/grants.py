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

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import jwt

from policy.identity import canonical_agent
from signoff.audit import Event
from signoff.grant_check import (
    AUDIENCE,
    ISSUER,
    GrantError,
    Refusal,
    check_grant,
    context_sha256,
    environment_of,
    unverified_claims,
)
from signoff.job_names import JobName
from signoff.keys import AGENT_NAME_RE
from signoff.signing_keys import (  # noqa: F401 - the old home of these names
    PRUNE_MARGIN_SECONDS,
    KeyInfo,
    KeyRing,
    Purpose,
    SigningKey,
    public_jwk,
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

# Grant records (state, who revoked) outlive the grant by a day for listings and support.
GRANT_RECORD_EXTRA_SECONDS = 86400


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
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            # Bound to exactly this request: its id, the agent (canonical, as stored), what
            # runs, and the context it runs in (hash, and the environment on its own).
            "sub": record.requester or canonical_agent(req.requester),
            "jti": uuid.uuid4().hex,
            "iat": issued,
            "nbf": issued,
            "exp": issued + self.rt.settings.grant_ttl,
            "rid": req.id,  # the id the agent chose (what its SDK checks)
            "req": record.id,  # Signoff's own id of the request (scoped to its agent)
            "act": req.action,
            "res": req.resource,
            "psh": req.payload_sha256(),
            "ctx": context_sha256(req.context),
            "env": environment_of(req.context),
            "obo": record.on_behalf_of or "",
            "apr": approver_ids(record),
            "pol": record.get("rule_id") or "",
        }
        if claims["psh"] != record.get("payload_sha256"):
            # The sealed body and the record disagree (tampering in Redis): never sign.
            raise GrantError(Refusal.PAYLOAD_MISMATCH,
                             f"the stored body of {record.id} is not the request's own")
        stepped_up = [v.person for v in record.approvers if v.step_up]
        if stepped_up:
            claims["stp"] = stepped_up  # approvers who proved presence with a passkey
        token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})
        return token, claims

    def register(self, claims: dict[str, Any], kid: str = "", record: str = "") -> None:
        """Record an issued grant (state ``issued``) for status, listing and revocation;
        ``record``: Signoff's id of the request (where the grant names the agent's own)."""
        key = self.rt.keys.grant(claims["jti"])
        ttl = max(int(claims["exp"] - time.time()), 1) + GRANT_RECORD_EXTRA_SECONDS
        pipe = self.rt.redis.pipeline()
        pipe.hsetnx(key, "state", "issued")
        pipe.hset(key, mapping={
            "jti": claims["jti"], "rid": request_of(claims), "act": claims["act"],
            "sub": claims["sub"], "psh": claims["psh"], "iat": str(claims["iat"]),
            "exp": str(claims["exp"]), "apr": json.dumps(claims["apr"]), "kid": kid,
            **({"record": record} if record else {}),
        })
        pipe.expire(key, ttl)
        pipe.execute()

    def issue(self, record: Record, req: AgentRequest, now: float | None = None) -> str:
        """Mint and record a grant; returns the token."""
        token, claims = self.mint(record, req, now)
        self.register(claims, kid_of_token(token))
        return token


def request_of(claims: dict[str, Any]) -> str:
    """Signoff's id of the request a grant was issued for (``req``; ``rid`` is the id its
    agent chose, the same unless the agent's ids are scoped)."""
    return str(claims.get("req") or claims.get("rid") or "")


def approver_ids(record: Record) -> list[str]:
    """Who approved, as a grant and its audit name them: the people whose votes decided it
    (for a merged request, the people who approved the identical request it rode on); only
    a request the policy decided by itself names ``policy:<rule>``."""
    people = [v.person for v in record.approvers]
    if not people:
        people = [str(a.get("person")) for a in record.json("merged_approvers", []) or []
                  if isinstance(a, dict) and a.get("person")]
    if people:
        return people
    return ["policy:" + (record.get("rule_id") or "")]


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
           params: Any = None, payload: Any = None, request_id: str | None = None,
           requester: str | None = None, context: Any = None, environment: str | None = None,
           consume: bool = True, now: float | None = None, actor: str = "signoff"
           ) -> dict[str, Any]:
    """Check a grant against the exact action and payload about to run, and consume it.

    Args:
        rt: the runtime.
        token: the grant from the decision.
        action: the action about to run.
        resource, params: what it runs on and with; or ``payload=`` (a mapping or request
            with ``resource`` and ``params``; see :func:`signoff.grant_check.resolve_binding`).
        request_id, requester, context, environment: the request this run was approved as,
            the agent running it, its context (hash and environment), or just the
            environment; each given one must match the grant.
        consume: mark it used (default); False checks only.
        now: the clock (default: the wall clock).
        actor: who verifies, for the audit.

    Returns:
        The verified claims.

    Raises:
        GrantError: with a :class:`~signoff.grant_check.Refusal` ``code`` (malformed,
            unknown_key, bad_signature, expired, not_yet_valid, request_mismatch,
            requester_mismatch, action_mismatch, resource_mismatch, payload_mismatch,
            environment_mismatch, context_mismatch, revoked, already_used). Every use and
            every refusal is audited.
    """
    try:
        claims = check_grant(rt.redis, grant_keys(rt, token),  # type: ignore[arg-type]
                             token, action=action, resource=resource,
                             params=params, payload=payload, request_id=request_id,
                             requester=requester, context=context, environment=environment,
                             consume=consume, now=now, report=False)
    except GrantError as exc:
        c = unverified_claims(token) if isinstance(token, str) else {}
        rt.audit.append(Event.GRANT_REFUSED, request_of(c), actor, code=exc.code.value,
                        jti=str(c.get("jti", "")), action=action)
        raise
    if consume:
        rt.audit.append(Event.GRANT_USED, request_of(claims), actor, jti=claims["jti"],
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


def grant_keys(rt: Runtime, token: Any) -> Any:
    """The keys the server checks a grant with: for a registered agent's grant, its use marker
    is the agent's own (the one its SDK sets), so either side uses it once only. Which agent
    is read from the unverified ``sub`` only to pick the marker; the check then verifies the
    signature over it."""
    sub = str(unverified_claims(token).get("sub", "")) if isinstance(token, str) else ""
    name = sub[len("agent:"):] if sub.startswith("agent:") else ""
    if AGENT_NAME_RE.match(name) and _r(rt).hexists(rt.keys.agents, name):
        return rt.keys.agent_grants(name)
    return rt.keys


def agent_grant_keys(rt: Runtime, request_id: str, jti: str) -> list[str]:
    """A registered agent's own use marker and revocation mirror of grant ``jti`` (its SDK
    checks those, in its namespace), or [] for a trusted-stream request."""
    agent = _r(rt).hget(rt.keys.request(request_id), "agent")
    if not agent:
        return []
    ak = rt.keys.agent(agent)
    return [ak.grant_used(jti), ak.grant(jti)]


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
        record, rid, exp = _r(rt).hmget(rt.keys.grant(jti), "record", "rid", "exp")
        rid = record or rid  # the internal (agent-scoped) request id, when recorded
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
        keys=[rt.keys.grant_used(gid), rt.keys.grant(gid), rt.keys.request(rid),
              *agent_grant_keys(rt, rid, gid)],
        args=[gid, repr(now), by, reason[:2000], ttl, rid])
    outcome = RevokeOutcome(result)
    if outcome is RevokeOutcome.REVOKED:
        rt.audit.append(Event.GRANT_REVOKED, rid, by, jti=gid, reason_given=bool(reason),
                        reason_sha256=hashlib.sha256(reason.encode()).hexdigest()
                        if reason else "")
        rt.enqueue(JobName.UPDATE, rid)
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
