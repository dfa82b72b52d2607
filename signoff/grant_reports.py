"""Agents' grant reports -> the audit chain, checked and recorded as the agent's claim.

A registered agent's SDK appends every grant check it makes (used, or refused and why) to its
own stream ``{prefix}:agent:{name}:grant:reports`` (the trusted single-agent mode: the shared
``{prefix}:grant:reports``). The intake's sweep folds them into the audit chain; an agent
never writes the chain itself.

A report is what the agent says, not something Signoff saw, so each one is checked against the
grant Signoff issued before it is recorded:

- an entry that cannot be read (not JSON, wrong shape, oversize) is dead-lettered with the
  reason;
- a report about a grant Signoff never issued, or issued to another agent, is dead-lettered
  (it never reaches any request's audit, let alone as a use);
- a report about the agent's own grant is audited as the agent's claim (``claim: true``,
  ``reported_by``), attached to the request the grant was issued for, with whether it agrees
  with what Signoff knows (the action, the agent's use marker): never as "verified"; each
  grant and outcome once (a repeated claim cannot flood the audit chain).

Nothing a report holds can stop the sweep: each entry is handled on its own, and one that
fails is dead-lettered and dropped.
"""

from __future__ import annotations

import json
import logging
from enum import Enum
from typing import TYPE_CHECKING, Any

from policy.identity import canonical_agent
from signoff.agents import AgentRegistry
from signoff.audit import Event
from signoff.keys import agent_requester

if TYPE_CHECKING:
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

MAX_REPORT_BYTES = 8192
DEAD_MAXLEN = 100_000
RESULTS = frozenset({"used", "refused", "revoked", "already_used"})


class Folded(str, Enum):
    """What became of one grant report."""

    AUDITED = "audited"  # appended to the audit chain as the agent's claim
    REPEATED = "repeated"  # the same claim is already in the chain
    DEAD = "dead"  # unreadable or not about the reporter's grant: dead-lettered


def _dead(rt: Runtime, stream: str, entry_id: str, agent: str | None, reason: str) -> None:
    rt.redis.xadd(rt.keys.dead, {"reason": reason, "source": f"stream:{stream}:{entry_id}",
                                 "agent": agent or "", "kind": "grant_report"},
                  maxlen=DEAD_MAXLEN, approximate=True)
    log.warning("dead-lettered a grant report from %s: %s", agent or "the trusted stream",
                reason)


def _read(fields: dict[str, Any]) -> tuple[str, dict[str, Any]] | str:
    """(result, report body) or why the entry cannot be read."""
    result = fields.get("result")
    raw = fields.get("report")
    if not isinstance(result, str) or result not in RESULTS:
        return f"unknown result {str(result)[:40]!r}"
    if not isinstance(raw, str) or not raw:
        return "no report field"
    if len(raw) > MAX_REPORT_BYTES:
        return f"report of {len(raw)} bytes exceeds {MAX_REPORT_BYTES}"
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, RecursionError):
        return "report is not JSON"
    if not isinstance(body, dict):
        return "report is not a JSON object"
    jti = body.get("jti") or fields.get("jti") or ""
    if not isinstance(jti, str) or len(jti) > 64:
        return "report has no usable grant id"
    body["jti"] = jti
    return result, body


def fold_one(rt: Runtime, stream: str, agent: str | None, entry_id: str,
             fields: dict[str, Any]) -> Folded:
    """Check and audit one report."""
    parsed = _read(fields)
    if isinstance(parsed, str):
        _dead(rt, stream, entry_id, agent, parsed)
        return Folded.DEAD
    result, body = parsed
    jti = body["jti"]
    grant = rt.redis.hgetall(rt.keys.grant(jti)) if jti else {}
    reporter = agent_requester(agent) if agent else str(body.get("by") or "agent")[:200]
    if not grant:
        if result == "refused" and not jti and agent is None:
            # A refused token that did not even verify (trusted mode): the claim about a
            # forgery, attached to no request.
            rt.audit.append(Event.GRANT_REFUSED, "", reporter, claim=True,
                            reported_by=reporter, code=str(body.get("code") or result)[:64],
                            grant_known=False, report_id=entry_id)
            return Folded.AUDITED
        # A registered agent's report about no grant of Signoff's (a token that did not
        # verify, or a made-up id) is kept with the dead letters, never in the audit chain.
        _dead(rt, stream, entry_id, agent, f"report about grant {jti[:64]!r}, which Signoff "
              "did not issue (or has forgotten)" + (
                  f"; the agent's check said {str(body.get('code'))[:64]!r}"
                  if body.get("code") else ""))
        return Folded.DEAD
    owner = grant.get("sub", "")
    if agent is not None and canonical_agent(owner) != agent_requester(agent):
        _dead(rt, stream, entry_id, agent, f"report about grant {jti!r}, which was issued to "
              f"{owner!r}, not to {agent_requester(agent)!r}")
        return Folded.DEAD
    rid = grant.get("record") or grant.get("rid", "")
    code = str(body.get("code") or result)[:64]
    if agent is not None:
        # One audit entry per grant and outcome: a repeated claim is dropped (its first copy
        # is in the chain), so an agent cannot flood the audit with its own reports.
        ttl = max(int(rt.redis.ttl(rt.keys.grant(jti))), 60)
        if not rt.redis.set(rt.keys.grant_reported(jti, result, code), entry_id, nx=True,
                            ex=ttl):
            return Folded.REPEATED
    common: dict[str, Any] = {
        "jti": jti, "claim": True, "reported_by": reporter, "report_id": entry_id,
        "action": grant.get("act", ""),
        "matches_grant": str(body.get("act", grant.get("act", ""))) == grant.get("act", "")
        and str(body.get("rid", grant.get("rid", ""))) == grant.get("rid", ""),
    }
    if result == "used":
        if agent is not None:
            common["use_marker"] = bool(rt.redis.exists(rt.keys.agent(agent).grant_used(jti)))
            # The agent's SDK cannot write the grant record: Signoff marks it used.
            if grant.get("state") == "issued":
                rt.redis.hset(rt.keys.grant(jti), mapping={
                    "state": "used", "used_at": str(body.get("at", ""))[:32]})
        rt.audit.append(Event.GRANT_USED, rid, reporter, **common)
    else:
        rt.audit.append(Event.GRANT_REFUSED, rid, reporter, code=code, **common)
    return Folded.AUDITED


def streams(rt: Runtime) -> dict[str, str | None]:
    """Report stream -> the agent that owns it (None: the trusted shared stream)."""
    out: dict[str, str | None] = {rt.keys.grant_reports: None}
    for name in AgentRegistry(rt.redis, rt.keys).names():
        out[rt.keys.agent(name).grant_reports] = name
    return out


def fold_reports(rt: Runtime, limit: int = 500) -> int:
    """Fold every report stream's entries (oldest first), then drop them; returns how many
    entries were handled (audited or dead-lettered).

    At least once: a crash between the append and the delete repeats one entry, which carries
    the same ``report_id``.
    """
    handled = 0
    for stream, agent in streams(rt).items():
        if rt.redis.type(stream) not in ("stream", "none"):
            # Redis 6 lets an agent SET its own keys: record it and start the stream afresh.
            _dead(rt, stream, "", agent, f"report stream was a {rt.redis.type(stream)}")
            rt.redis.delete(stream)
            continue
        for entry_id, fields in rt.redis.xrange(stream, "-", "+", count=limit):
            try:
                fold_one(rt, stream, agent, entry_id, fields)
            except Exception as exc:  # a report must never stop the sweep
                log.exception("grant report %s on %s failed", entry_id, stream)
                _dead(rt, stream, entry_id, agent, f"folding failed: {type(exc).__name__}")
            rt.redis.xdel(stream, entry_id)
            handled += 1
    return handled
