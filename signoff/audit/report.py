"""The evidence report: the log's figures for a period, per control, with proof.

:func:`collect` reads the period's entries once (archived segments too, when the period
reaches back into them) and computes what auditors ask for: requests by action and outcome,
time to decision (median, p95), approvals by person, denials, timeouts, refused self-approvals
and forged clicks, grants, policy changes, key rotations. It then signs a fresh checkpoint,
verifies the whole chain against it, and samples decision entries with inclusion proofs that
it checks itself. :mod:`signoff.audit.report_render` turns the result into HTML, PDF or JSON.
"""

from __future__ import annotations

import random
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from signoff.audit.archive import Archive
from signoff.audit.checkpoints import sign_checkpoint
from signoff.audit.controls import CONTROLS
from signoff.audit.entry import Entry
from signoff.audit.events import Event
from signoff.audit.proofs import Prover, check_proof
from signoff.audit.sink import status as sink_status
from signoff.audit.verify import verify_store

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext

# Refusal codes that mean "tried to approve their own request".
SELF_APPROVAL_CODES = frozenset({"requester", "on_behalf_of", "agent_owner", "agent_identity"})
# Refusal codes that mean "the click itself was not genuine or not allowed where it came from".
FORGED_CLICK_CODES = frozenset({"bad_button", "bad_signature", "replay", "tenant_not_allowed",
                                "forged", "stale_button"})
SYSTEM_ACTORS = frozenset({"policy", "signoff", "clock", "intake", "cli", ""})
# What a refusal code means, in an auditor's words.
REFUSAL_TEXT = {
    "requester": "made the request themselves",
    "on_behalf_of": "the request was made on their behalf",
    "agent_owner": "owns the requesting agent",
    "agent_identity": "an agent cannot approve",
    "bad_button": "button signature does not verify",
    "bad_signature": "request signature does not verify",
    "replay": "a click already used",
    "tenant_not_allowed": "from a Teams tenant not allowed",
    "unknown_person": "not in the directory",
    "not_eligible": "not in an approver group for this rule",
    "already_voted": "had already voted",
    "step_up_refused": "passkey step-up not passed",
}
LIST_LIMIT = 50


@dataclass
class Evidence:
    """Everything the report shows (JSON-ready through :meth:`to_dict`)."""

    since: float
    until: float
    generated_at: float
    log: str
    entries: int = 0
    entries_by_event: dict[str, int] = field(default_factory=dict)
    requests: dict[str, dict[str, int]] = field(default_factory=dict)  # action -> outcome -> n
    request_count: int = 0
    decision_seconds: list[float] = field(default_factory=list)
    auto_decisions: int = 0
    approvals_by_person: dict[str, int] = field(default_factory=dict)
    denials_by_person: dict[str, int] = field(default_factory=dict)
    denials: list[dict[str, Any]] = field(default_factory=list)
    denial_count: int = 0
    denial_reasons: dict[str, int] = field(default_factory=dict)
    timeouts: list[dict[str, Any]] = field(default_factory=list)
    timeout_count: int = 0
    refused_clicks: dict[str, int] = field(default_factory=dict)  # code -> n
    self_approval_refused: list[dict[str, Any]] = field(default_factory=list)
    self_approval_count: int = 0
    forged_click_refused: list[dict[str, Any]] = field(default_factory=list)
    forged_click_count: int = 0
    grants: dict[str, int] = field(default_factory=dict)
    grant_refusals: dict[str, int] = field(default_factory=dict)
    policy_changes: list[dict[str, Any]] = field(default_factory=list)
    key_rotations: list[dict[str, Any]] = field(default_factory=list)
    tokens_created: int = 0
    weekly: dict[str, dict[str, int]] = field(default_factory=dict)  # week start -> status -> n
    verification: dict[str, Any] = field(default_factory=dict)
    checkpoint: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    sinks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(self.decision_seconds) if self.decision_seconds else None

    @property
    def p95_seconds(self) -> float | None:
        if not self.decision_seconds:
            return None
        ordered = sorted(self.decision_seconds)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("decision_seconds")
        d["time_to_decision"] = {"decided_by_people": len(self.decision_seconds),
                                 "median_seconds": self.median_seconds,
                                 "p95_seconds": self.p95_seconds,
                                 "decided_by_policy": self.auto_decisions}
        d["controls"] = [{**asdict(c), "evidence": list(c.evidence)} for c in CONTROLS]
        return d


def _week(ts: float) -> str:
    day = datetime.fromtimestamp(ts, tz=UTC).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def _denial(ev: Evidence, reasons: Counter[str], e: Entry, action: str, reason: str) -> None:
    ev.denial_count += 1
    reasons[reason] += 1
    if len(ev.denials) < LIST_LIMIT:
        ev.denials.append({"ts": e.ts, "request_id": e.request_id, "action": action,
                           "by": e.actor, "reason": reason})


def period_entries(rt: AuditContext, since: float, until: float) -> Iterator[Entry]:
    """The entries of the period, from the archive when it reaches back that far."""
    live = rt.audit.r.xrange(rt.keys.audit, "-", "+", count=1)
    oldest_live = live[0][1].get("ts") if live else None
    archive = Archive(rt)
    if archive.folder is not None and (oldest_live is None or float(oldest_live) > since):
        for seg in archive.segments():
            try:
                for e in archive.read(seg):
                    if since <= e.ts <= until:
                        yield e
            except OSError:
                continue  # a missing file is the verification's finding, not the figures'
    for e in rt.audit.iter_entries(str(int(since * 1000)), str(int(until * 1000) + 1)):
        if since <= e.ts <= until:
            yield e


def collect(rt: AuditContext, since: float, until: float | None = None, *, samples: int = 5,
            seed: int | None = None) -> Evidence:
    """Figures, verification and sampled proofs for the period [since, until]."""
    until = time.time() if until is None else until
    ev = Evidence(since=since, until=until, generated_at=time.time(), log=rt.keys.audit)
    by_event: Counter[str] = Counter()
    requested_at: dict[str, float] = {}
    action_of: dict[str, str] = {}
    outcome_of: dict[str, str] = {}
    approvals: Counter[str] = Counter()
    denials: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    deny_comment: dict[str, bool] = {}
    grants: Counter[str] = Counter()
    grant_refusals: Counter[str] = Counter()
    weekly: dict[str, Counter[str]] = defaultdict(Counter)
    decided_entries: list[Entry] = []

    def action(rid: str) -> str:
        if rid not in action_of:
            facts = rt.audit.r.hgetall(rt.keys.audit_index_request(rid)) or {}
            action_of[rid] = facts.get("action", "") or "(requested before the period)"
        return action_of[rid]

    for e in period_entries(rt, since, until):
        ev.entries += 1
        by_event[e.event] += 1
        d = e.details
        rid = e.request_id
        if e.event == Event.REQUESTED.value:
            requested_at[rid] = e.ts
            action_of[rid] = str(d.get("action", ""))
            outcome_of.setdefault(rid, "pending")
        elif e.event == Event.VOTE.value:
            if d.get("choice") == "approve":
                approvals[e.actor] += 1
            elif d.get("choice") == "deny":
                denials[e.actor] += 1
                deny_comment[rid] = bool(d.get("comment_given"))
        elif e.event in (Event.DECIDED.value, Event.EXPIRED.value, Event.CANCELLED.value,
                         Event.REJECTED.value):
            status = {"expired": "timed_out", "cancelled": "cancelled",
                      "rejected": "rejected"}.get(e.event, str(d.get("status", "")))
            outcome_of[rid] = status
            weekly[_week(e.ts)][status] += 1
            decided_entries.append(e)
            if e.event == Event.DECIDED.value:
                if e.actor.lower() in SYSTEM_ACTORS:
                    ev.auto_decisions += 1
                elif rid in requested_at:
                    ev.decision_seconds.append(max(e.ts - requested_at[rid], 0.0))
                if status == "denied":
                    if e.actor.lower() in SYSTEM_ACTORS:
                        reason = "denied by policy rule " + str(d.get("rule", "") or "")
                    elif deny_comment.get(rid):
                        reason = "denied by an approver, with a written reason"
                    else:
                        reason = "denied by an approver, no reason given"
                    _denial(ev, reasons, e, action(rid), reason)
            elif e.event == Event.EXPIRED.value:
                ev.timeout_count += 1
                if len(ev.timeouts) < LIST_LIMIT:
                    ev.timeouts.append({"ts": e.ts, "request_id": rid, "action": action(rid)})
            elif e.event == Event.REJECTED.value:
                _denial(ev, reasons, e, action(rid), "rejected before review: " + str(
                    d.get("code", "") or d.get("reason", "") or "invalid request"))
        elif e.event in (Event.CLICK_REFUSED.value, "step_up_refused"):
            code = str(d.get("code", "") or e.event)
            refused[code] += 1
            row = {"ts": e.ts, "request_id": rid, "actor": e.actor, "code": code,
                   "channel": str(d.get("channel", ""))}
            if code in SELF_APPROVAL_CODES:
                ev.self_approval_count += 1
                if len(ev.self_approval_refused) < LIST_LIMIT:
                    ev.self_approval_refused.append(row)
            elif code in FORGED_CLICK_CODES:
                ev.forged_click_count += 1
                if len(ev.forged_click_refused) < LIST_LIMIT:
                    ev.forged_click_refused.append(row)
        elif e.event.startswith("grant_"):
            grants[e.event.removeprefix("grant_")] += 1
            if e.event == Event.GRANT_REFUSED.value:
                grant_refusals[str(d.get("code", ""))] += 1
        elif e.event in (Event.POLICY_RELOADED.value, Event.POLICY_REFUSED.value):
            ev.policy_changes.append({
                "ts": e.ts, "event": e.event, "version": str(d.get("version", "")),
                "previous": str(d.get("previous", "")), "rules": d.get("rules"),
                "errors": d.get("errors")})
        elif e.event == Event.KEY_ROTATED.value:
            ev.key_rotations.append({"ts": e.ts, "purpose": str(d.get("purpose", "")),
                                     "kid": str(d.get("kid", ""))})
        elif e.event == Event.TOKEN_CREATED.value:
            ev.tokens_created += 1

    table: dict[str, Counter[str]] = defaultdict(Counter)
    for rid, outcome in outcome_of.items():
        table[action(rid)][outcome] += 1
    ev.requests = {a: dict(c) for a, c in sorted(table.items())}
    ev.request_count = len(outcome_of)
    ev.entries_by_event = dict(sorted(by_event.items()))
    ev.approvals_by_person = dict(approvals.most_common())
    ev.denials_by_person = dict(denials.most_common())
    ev.refused_clicks = dict(refused.most_common())
    ev.denial_reasons = dict(reasons.most_common())
    ev.grants = dict(grants)
    ev.grant_refusals = dict(grant_refusals)
    ev.weekly = {w: dict(c) for w, c in sorted(weekly.items())}

    # The proof part: a fresh checkpoint, the whole chain against it, sampled proofs.
    try:
        cp = sign_checkpoint(rt)
    except ValueError:  # the log is broken: nothing new is signed; verification says where
        cp = None
    report = verify_store(rt)
    ev.verification = report.to_dict()
    ev.checkpoint = cp.to_dict() if cp is not None else {}
    if cp is not None and decided_entries:
        rng = random.Random(seed if seed is not None else int(until))
        picks = sorted(rng.sample(decided_entries, min(samples, len(decided_entries))),
                       key=lambda e: e.seq)
        prover = Prover(rt, Archive(rt).chunk_reader())
        jwks = rt.audit_keys.jwks()
        for e in picks:
            try:
                proof = prover.prove(f"seq:{e.seq}", cp)
            except (LookupError, ValueError) as exc:
                ev.samples.append({"entry": e.to_dict(), "error": str(exc)})
                continue
            result = check_proof(proof, jwks, rt.keys.audit)
            ev.samples.append({"entry": e.to_dict(), "proof": proof.to_dict(),
                               "verified": result.ok, "result": result.reason})
    ev.sinks = sink_status(rt)
    return ev
