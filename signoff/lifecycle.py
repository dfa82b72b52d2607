"""The approval lifecycle: intake, prepare, vote, close, finalize.

Every channel (HTTP API, Slack, Teams, web inbox) and every job goes through these functions,
so the rules (validation, separation of duties, atomic votes, exactly-once replies, audit)
live in one place. They are synchronous and take a :class:`~signoff.runtime.Runtime`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import jwt
from pydantic import ValidationError
from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from policy import Allowed, Outcome, Refused, can_decide, quorum_met
from policy.durations import format_duration
from policy.identity import canonical_agent, canonical_environment, same_agent, same_person
from policy.separation import RefusalCode
from signoff import crypto, job_names, limits, merging, stepup, timeouts, tracing
from signoff.audit import Event
from signoff.delegation import Delegations
from signoff.grants import GrantIssuer
from signoff.job_names import JobName
from signoff.keys import agent_requester, scoped_id, split_id
from signoff.masking.display import reveals, shown_fields, shown_text
from signoff.models import (
    ID_PATTERN,
    AgentRequest,
    Decision,
    FieldError,
    Status,
    Vote,
    canonical_json,
)
from signoff.standing import Scope, StandingApprovals
from signoff.store import Change, Record, VoteOutcome, VoteResult

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

_ID_RE = re.compile(ID_PATTERN)

JOB_PREPARE = JobName.PREPARE
JOB_PREPARE_BATCH = JobName.PREPARE_BATCH
JOB_NOTIFY = JobName.NOTIFY
JOB_FINALIZE = JobName.FINALIZE
JOB_UPDATE = JobName.UPDATE


class Prepared(str, Enum):
    """What :func:`prepare` did with a received request."""

    PENDING = "pending"  # open, waiting for people
    APPROVED = "approved"  # decided by the policy or a standing approval
    DENIED = "denied"
    REJECTED = "rejected"  # the rule requires a reason the request lacks
    MERGED = "merged"  # rides on an identical pending request's card
    UNCHANGED = "unchanged"  # not (or no longer) a received request


class FollowUp(str, Enum):
    """What a reminder or an escalation step did (:func:`remind`, :func:`escalate`)."""

    REMINDED = "reminded"
    ESCALATED = "escalated"
    DONE = "done"  # already sent
    CLOSED = "closed"  # the request is no longer pending
    LATE = "late"  # due after the deadline: timed out instead
    NO_STEP = "no_step"  # the policy has no such escalation step (any more)


class Cancel(str, Enum):
    """What a cancel did (:func:`cancel`, :func:`cancel_message`)."""

    CHANGED = "changed"  # cancelled
    UNCHANGED = "unchanged"  # already closed
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"  # neither its agent nor the person it acts for
    DEFERRED = "deferred"  # remembered until the request arrives
    DEAD = "dead"  # a malformed cancel message, dead-lettered


class Finalized(str, Enum):
    """What :func:`finalize` did."""

    DELIVERED = "delivered"
    ALREADY_DELIVERED = "already_delivered"
    NOT_FOUND = "not_found"
    OPEN = "open"  # not decided yet


# --------------------------------------------------------------------------------------------
# intake
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestResult:
    """What happened to one message from the request stream."""

    outcome: str  # accepted | duplicate | rejected | dead
    request_id: str | None = None
    errors: list[FieldError] = field(default_factory=list)
    reason: str = ""
    needs_prepare: bool = False


def _field_errors(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(body)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        out.append(FieldError(field=loc, message=msg))
    return out


def _as_agent(data: dict[str, Any], agent: str) -> tuple[dict[str, Any], list[FieldError]]:
    """A request v2 body read from agent ``agent``'s own stream: the requester is the stream's
    owner (a body may repeat it, never name anyone else) and there is no ``reply_to`` (the
    decision goes to the agent's own reply list)."""
    errors: list[FieldError] = []
    me = agent_requester(agent)
    named = data.get("requester")
    if named is not None and not (isinstance(named, str) and same_agent(named, me)):
        errors.append(FieldError(field="requester", message=(
            f"names {str(named)[:200]!r}, but these credentials are {me!r}: an agent asks "
            "only for itself (leave requester out)")))
    if "reply_to" in data:
        errors.append(FieldError(field="reply_to", message=(
            "not accepted from a registered agent: the decision goes to the agent's own reply "
            "list ({prefix}:agent:{name}:reply:{id})")))
    clean = {k: v for k, v in data.items() if k not in ("requester", "reply_to")}
    clean["requester"] = me
    return clean, errors


def parse_body(raw: bytes | str | None, max_bytes: int, agent: str | None = None
               ) -> tuple[AgentRequest | None, str | None, list[FieldError], str]:
    """Validate one raw request body.

    With ``agent`` the body came from that registered agent's own stream (request v2: see
    :func:`_as_agent`); without, from the trusted shared stream (request v1).

    Returns:
        (request or None, usable id or None, field errors, dead-letter reason).
    """
    if raw is None:
        return None, None, [], "message has no 'body' field"
    size = len(raw)
    if size > max_bytes:
        # Still try to recover the id cheaply so the agent gets a rejected reply.
        rid = _sniff_id(raw[:4096])
        return None, rid, [FieldError(field="(body)",
                                      message=f"request is {size} bytes; the limit is {max_bytes}")
                           ], "" if rid else f"body of {size} bytes exceeds the limit"
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rid = _sniff_id(raw[:4096])
            return None, rid, [FieldError(field="(body)",
                                          message=f"not valid UTF-8 at byte {exc.start}")], (
                "" if rid else "body is not valid UTF-8")
    else:
        text = raw
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        rid = _sniff_id(text[:4096])
        msg = f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}" if isinstance(
            exc, json.JSONDecodeError) else "not JSON: nested too deeply"
        return None, rid, [FieldError(field="(body)", message=msg)], "" if rid else msg
    if not isinstance(data, dict):
        return None, None, [], f"body is a JSON {type(data).__name__}, not an object"
    rid = data.get("id")
    usable = rid if isinstance(rid, str) and _ID_RE.match(rid) else None
    agent_errors: list[FieldError] = []
    if agent is not None:
        data, agent_errors = _as_agent(data, agent)
    try:
        # JSON escapes can spell an unpaired surrogate ("\ud800"), which is no Unicode text:
        # it would fail later, at encryption and hashing, instead of being rejected here.
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except (UnicodeEncodeError, RecursionError) as exc:
        msg = ("contains an unpaired surrogate escape (not valid Unicode text)"
               if isinstance(exc, UnicodeEncodeError) else "nested too deeply")
        return None, usable, [FieldError(field="(body)", message=msg)], "" if usable else msg
    try:
        req = AgentRequest.model_validate(data)
    except ValidationError as exc:
        reason = "" if usable else "request has no usable id: " + "; ".join(
            f"{e.field}: {e.message}" for e in agent_errors + _field_errors(exc))
        return None, usable, agent_errors + _field_errors(exc), reason
    except RecursionError:
        return None, usable, [FieldError(field="(body)", message="nested too deeply")], (
            "" if usable else "nested too deeply")
    if agent_errors:
        return None, usable, agent_errors, ""
    return req, req.id, [], ""


def _sniff_id(prefix: bytes | str) -> str | None:
    text = prefix.decode("utf-8", "replace") if isinstance(prefix, bytes) else prefix
    m = re.search(r'"id"\s*:\s*"([^"\\]{1,128})"', text)
    if m and _ID_RE.match(m.group(1)):
        return m.group(1)
    return None


def ingest(rt: Runtime, raw: bytes | str | None, source: str = "stream",
           enqueue: bool = True, agent: str | None = None) -> IngestResult:
    """Take one request body from an agent: store it once and enqueue ``prepare``.

    Invalid bodies with a usable id are rejected with field-by-field errors (a reply is
    delivered); bodies without one go to the dead-letter stream with the reason. Safe to
    call twice with the same message (the id is the idempotency key).

    With ``enqueue=False`` the caller batches: a result with ``needs_prepare`` must be
    prepared (the intake enqueues one ``prepare_batch`` job per stream read).

    ``agent`` is the registered agent whose own stream the body came from: the requester is
    that agent (whatever the body says) and the request's id is scoped to it
    (:func:`signoff.keys.scoped_id`), so two agents may use the same id and neither reaches
    the other's request. None: the trusted shared stream (request v1).
    """
    max_bytes = rt.settings.max_request_bytes
    req, client_id, errors, dead_reason = parse_body(raw, max_bytes, agent=agent)
    if client_id is None:
        preview = raw[:200] if raw is not None else b""
        if isinstance(preview, bytes):
            preview = preview.decode("utf-8", "replace")
        rt.redis.xadd(rt.keys.dead, {"reason": dead_reason, "source": source,
                                     "agent": agent or "", "size": str(len(raw or b"")),
                                     "preview_sha256": hashlib.sha256(
                                         (raw or b"") if isinstance(raw, bytes)
                                         else (raw or "").encode()).hexdigest()},
                      maxlen=100_000, approximate=True)
        log.warning("dead-lettered a request: %s", dead_reason)
        return IngestResult("dead", None, [], dead_reason)
    now = time.time()
    rid = scoped_id(agent, client_id)
    if req is not None and agent is None and req.reply_to and not req.reply_to.startswith(
            rt.keys.reply("")):
        # The trusted stream keeps reply_to, confined to the reply lists: Signoff never
        # writes a decision to a key a request names outside them.
        errors = [FieldError(field="reply_to", message=(
            f"must start with {rt.keys.reply('')!r} (decisions are written to reply lists "
            "only)"))]
        req = None
    if req is not None:
        found = reveals(rt.masker, req.id)
        if found:
            # The id is shown as it is on every card, page and audit entry (it is the
            # request's handle), so one that carries a credential or personal data is refused.
            errors = [FieldError(field="id", message=(
                f"looks like it holds {', '.join(found)}; request ids are shown to approvers "
                "as they are: use an opaque id (a UUID)"))]
            req = None
    if req is None:
        created, status, _ = rt.store.create(rid, {
            "id": rid, "client_id": client_id, "agent": agent or "",
            "requester": agent_requester(agent) if agent else "",
            "error": json.dumps([e.model_dump() for e in errors])}, now)
        if created:
            rt.store.close(rid, Status.REJECTED, "invalid request",
                           allowed_from=(Status.RECEIVED,), now=now)
            rt.audit.append(Event.REJECTED, rid, "intake",
                            errors=[e.model_dump() for e in errors])
            finalize_here(rt, rid)
            return IngestResult("rejected", rid, errors)
        rt.audit.append(Event.DUPLICATE, rid, "intake", note="invalid body for an existing id")
        return IngestResult("duplicate", rid, errors)

    body_json = canonical_json(req.model_dump(mode="json"))
    body_sha = hashlib.sha256(body_json).hexdigest()
    who = canonical_identity(rt, req)
    fields = {
        "id": rid,
        "client_id": req.id,
        "agent": agent or "",
        "action": req.action,
        "requester": who.requester,
        "on_behalf_of": who.on_behalf_of,
        "environment": who.environment,
        "reply_to": req.reply_to or "",
        "payload_sha256": req.payload_sha256(),
        "body_sha256": body_sha,
        "ciphertext": crypto.encrypt(rt.data_keyring, body_json, rid.encode()),
        # Indexes removed by whichever transition closes the request.
        "index_keys": json.dumps([rt.keys.open_for_agent(who.requester)]),
    }
    fields["shown"] = json.dumps(shown(rt, req, who, agent))
    if rt.store.status(rid) is None:
        refused = limits.check(rt, who.requester, req.action,
                               rt.policy.limits_for(who.requester), now=now)
        if refused is not None:
            return _reject_flood(rt, rid, req, fields, refused, now)
    created, status, stored_sha = rt.store.create(rid, fields, now)
    # An intake killed between create and its audit entry: the redelivered message finishes
    # what the first delivery began (the request's audit names it once, as requested).
    resumed = (not created and status is Status.RECEIVED and stored_sha == body_sha
               and not any(e.event == Event.REQUESTED.value
                           for e in rt.audit.for_request(rid)))
    if created or resumed:
        if who.on_behalf_of:
            rt.redis.zadd(rt.keys.by_person(who.on_behalf_of), {rid: now})
        display = json.loads(fields["shown"])
        # The actor is the requester as shown (an agent's own choice of name is masked too).
        rt.audit.append(Event.REQUESTED, rid, display["requester"], action=display["action"],
                        payload_sha256=fields["payload_sha256"], source=source,
                        on_behalf_of=display["on_behalf_of"], resource=display["resource"])
        if _apply_early_cancel(rt, rid, who.requester, now):
            return IngestResult("accepted", rid)
    else:
        rt.audit.append(Event.DUPLICATE, rid, json.loads(fields["shown"])["requester"],
                        same_body=stored_sha == body_sha,
                        status=status.value)
        if status is not Status.RECEIVED:
            return IngestResult("duplicate", rid)
    # New, or still received (a crash between create and enqueue): (re-)enqueue prepare.
    if enqueue:
        rt.enqueue(JOB_PREPARE, rid, job_id=job_names.job_id(JobName.PREPARE, rid))
    return IngestResult("accepted" if created else "duplicate", rid, needs_prepare=True)


@dataclass(frozen=True)
class CanonicalIdentity:
    """A request's requester, on-behalf-of person and environment in the one identity form
    (:mod:`policy.identity`): what the record stores and every index, limit and check uses."""

    requester: str
    on_behalf_of: str
    environment: str


def canonical_identity(rt: Runtime, req: AgentRequest) -> CanonicalIdentity:
    """The identity fields of ``req``, canonicalised once at intake (aliases resolved
    through the policy directory)."""
    return CanonicalIdentity(
        requester=canonical_agent(req.requester),
        on_behalf_of=rt.policy.directory.canonical_person(req.on_behalf_of),
        environment=canonical_environment(req.environment) or "")


def _reject_flood(rt: Runtime, rid: str, req: AgentRequest, fields: dict[str, str],
                  refused: limits.Verdict, now: float) -> IngestResult:
    """Answer an over-limit request with ``rejected`` and the limit's code, once per id."""
    errors = [FieldError(field="requester", message=refused.message)]
    flood_fields = {k: v for k, v in fields.items() if k not in ("ciphertext", "index_keys")}
    flood_fields.update(error=json.dumps([e.model_dump() for e in errors]),
                        error_code=refused.code)
    created, _status, _ = rt.store.create(rid, flood_fields, now)
    if not created:
        return IngestResult("duplicate", rid)
    rt.store.close(rid, Status.REJECTED, refused.code, allowed_from=(Status.RECEIVED,),
                   now=now)
    display = json.loads(fields["shown"])
    rt.audit.append(Event.REJECTED, rid, display["requester"], code=refused.code,
                    action=display["action"])
    finalize_here(rt, rid)
    return IngestResult("rejected", rid, errors, refused.code)


def original(rt: Runtime, record: Record) -> AgentRequest:
    """Decrypt the original request (for prepare, grants and the requesting agent only)."""
    token = record.get("ciphertext")
    if not token:
        raise ValueError(f"request {record.id} has no stored payload")
    plain = crypto.decrypt(rt.data_keyring, token, record.id.encode())
    return AgentRequest.model_validate_json(plain)


# --------------------------------------------------------------------------------------------
# prepare
# --------------------------------------------------------------------------------------------
def prepare(rt: Runtime, request_id: str, now: float | None = None,
            notify: bool = True) -> Prepared:
    """Evaluate policy, mask, and open the request (or decide it automatically).

    ``now`` is the clock (default: the wall clock); the deadline, reminders and escalation
    steps are counted from it. ``notify``: enqueue the notify job (False: the caller runs it
    itself, as the batch job does; the request's notify claim is taken either way).

    Returns:
        What happened (``pending``, ``approved``, ``denied``, ``rejected`` or ``unchanged``).
    """
    record = rt.store.get(request_id, with_votes=False)
    if record is None or record.status is not Status.RECEIVED:
        return Prepared.UNCHANGED
    req = original(rt, record)
    policy = rt.policy
    evaluation = policy.evaluate(req)
    requirement = evaluation.requirement
    now = time.time() if now is None else now

    if requirement.require_reason and not (req.reason or "").strip():
        errors = [FieldError(field="reason",
                             message=f"policy rule {evaluation.rule_id} requires a reason")]
        changed, _ = rt.store.close(request_id, Status.REJECTED, "reason required",
                                    allowed_from=(Status.RECEIVED,),
                                    extra={"error": json.dumps([e.model_dump() for e in errors])},
                                    now=now)
        if changed == "changed":
            rt.audit.append(Event.REJECTED, request_id, "policy",
                            errors=[e.model_dump() for e in errors], rule=evaluation.rule_id)
            finalize_here(rt, request_id)
        return Prepared.REJECTED

    fields = masked_fields(rt, req, evaluation, agent=record.get("agent") or None)
    fields["evaluation"] = json.dumps(evaluation.to_dict())
    fields["rule_id"] = evaluation.rule_id
    fields["summary"] = evaluation.summary
    fields["req_quorum"] = str(requirement.quorum)
    fields["req_groups"] = json.dumps(requirement.groups) if requirement.groups else "{}"
    fields["req_deny_quorum"] = str(requirement.deny_quorum)
    fields["req_stand_in"] = json.dumps(list(requirement.stand_in_groups))
    fields["eligible"] = json.dumps(list(requirement.eligible_groups))
    if requirement.step_up:  # chat cards link to the inbox's step-up page
        fields["step_up_url"] = stepup.step_up_url(rt.settings.public_url, request_id)

    if evaluation.outcome in (Outcome.AUTO_APPROVE, Outcome.AUTO_DENY):
        rt.store.set_fields(request_id, {**fields, "auto": "1"})
        to = Status.APPROVED if evaluation.outcome is Outcome.AUTO_APPROVE else Status.DENIED
        changed, _ = rt.store.close(request_id, to, evaluation.reason or evaluation.summary,
                                    allowed_from=(Status.RECEIVED,), now=now)
        if changed == "changed":
            rt.audit.append(Event.PREPARED, request_id, "policy", rule=evaluation.rule_id,
                            masking=fields.get("masking_counts"), outcome=to.value)
            rt.audit.append(Event.DECIDED, request_id, "policy", status=to.value,
                            reason=evaluation.reason, automatic=True)
            finalize_here(rt, request_id)
        return Prepared(to.value)

    if requirement.standing_max and _standing_cover(rt, request_id, req, evaluation, fields, now):
        return Prepared.APPROVED
    deadline = now + requirement.timeout_seconds
    fp = merging.fingerprint(record, req, evaluation)
    leader = merging.leader_for(rt, request_id, fp, deadline)
    if leader is not None:
        # Identical in everything but its id to a pending request matched by the same rule:
        # no card of its own (×N on the leader's), indexed for no approver; decided with the
        # leader, its approval re-checked for it (merging.settle_followers).
        opened, _status = rt.store.open(request_id, {**fields, "merged_into": leader},
                                       deadline, [], now=now)
        if opened:
            merging.attach(rt, leader, request_id)
            timeouts.schedule(rt, deadline)
            rt.enqueue(JOB_UPDATE, leader)
        return Prepared.MERGED if opened else Prepared.UNCHANGED
    opened, _status = rt.store.open(request_id, fields, deadline,
                                   list(requirement.eligible_groups), now=now)
    if not opened:
        return Prepared.UNCHANGED
    rt.audit.append(Event.PREPARED, request_id, "policy", rule=evaluation.rule_id,
                    summary=evaluation.summary, masking=json.loads(fields["masking_counts"]),
                    deadline=deadline)
    # The timer of the deadline's second (shared with every request due in it).
    timeouts.schedule(rt, deadline)
    schedule_followups(rt, request_id, now, requirement)
    if requirement.channels:
        # One job posts every channel's cards (each destination still recorded once). The
        # whole request stays claimed until that job has handled every channel, so a job
        # lost before it claimed any card (Redis or the worker died) is re-run by the janitor.
        rt.cards.claim_request(request_id)
        if notify:
            rt.enqueue(JOB_NOTIFY, request_id)
    return Prepared.PENDING


def _standing_cover(rt: Runtime, request_id: str, req: AgentRequest, evaluation: Any,
                    fields: dict[str, str], now: float) -> bool:
    """Approve a received request at once when an active standing approval covers it (same
    agent, action, resource, on-behalf-of person, environment, context and rule; params
    identical or within the bounds, :mod:`signoff.standing`) and the people behind it may
    still decide it and still make its quorum. True when it did."""
    standing = StandingApprovals(rt.redis, rt.keys)
    directory = rt.policy.directory
    st, misses = standing.match(Scope.of(evaluation.rule_id, req, directory), req.params, now)
    if st is None:
        if misses:
            log.info("request %s: no standing approval covers it (%s)", request_id,
                     "; ".join(misses))
        return False
    from signoff.delegation import Delegations

    approvals: dict[str, tuple[str, ...]] = {}
    for pid in st.approvers:
        delegate = st.delegates.get(pid)
        if delegate and (Delegations(rt.redis, rt.keys).active_from_to(pid, delegate) is None
                         or _delegate_refused(req, evaluation, directory, delegate)):
            continue  # a delegate's vote counts only while the delegation lasts
        verdict = can_decide(req, evaluation, directory.person(pid), {}, directory)
        if isinstance(verdict, Allowed):
            approvals[pid] = verdict.groups
    if not quorum_met(evaluation.requirement, approvals):
        log.info("request %s: standing approval %s no longer makes the quorum", request_id,
                 st.id)
        return False
    approvers = [{"person": p, "at": st.created_at, "channel": "standing", "standing": st.id}
                 for p in st.approvers]
    rt.store.set_fields(request_id, {**fields, "standing_id": st.id,
                                     "standing_line": st.line(),
                                     "merged_approvers": json.dumps(approvers)})
    changed, _ = rt.store.close(request_id, Status.APPROVED, st.line(),
                                allowed_from=(Status.RECEIVED,), now=now)
    if changed == "changed":
        uses = standing.used(st.id, request_id)
        rt.audit.append(Event.PREPARED, request_id, "policy", rule=evaluation.rule_id,
                        masking=json.loads(fields.get("masking_counts") or "{}"),
                        outcome=Status.APPROVED.value)
        rt.audit.append(Event.DECIDED, request_id, f"standing:{st.id}",
                        status=Status.APPROVED.value, standing=st.id, approvers=st.approvers,
                        standing_until=st.expires_at, standing_request=st.source_request,
                        use=uses, payload_sha256=req.payload_sha256())
        finalize_here(rt, request_id)
    return True


def _delegate_refused(req: AgentRequest, evaluation: Any, directory: Any,
                      delegate: str) -> bool:
    """Whether separation of duties refuses ``delegate`` on ``req`` (eligibility aside: a
    delegate decides with the eligibility of the person who delegated)."""
    from policy import Refused, can_decide
    from policy.separation import RefusalCode

    verdict = can_decide(req, evaluation, directory.person(delegate), {}, directory)
    return isinstance(verdict, Refused) and verdict.code is not RefusalCode.NOT_ELIGIBLE


def create_standing(rt: Runtime, record: Record) -> str | None:
    """After an approval: create the standing approval the votes asked for, once. Only when
    every approving vote chose a window (the quorum approved *for a while*); the smallest
    window wins, never beyond the rule's ``standing.max``. Returns its id, or None."""
    votes = record.approvers
    if record.status is not Status.APPROVED or not votes or any(
            not v.standing for v in votes):
        return None
    evaluation = record.evaluation
    limit = evaluation.requirement.standing_max
    if not limit:
        return None
    window = min(min(int(v.standing or 0) for v in votes), limit)
    req = original(rt, record)
    shown_fields = record.json("shown", {}) or {}
    st = StandingApprovals(rt.redis, rt.keys).create(
        request_id=record.id, scope=Scope.of(evaluation.rule_id, req, rt.policy.directory),
        params=req.params, bounds=evaluation.requirement.standing_params,
        approvers=[v.person for v in votes], window=window,
        start=record.number("decided_at", time.time()),
        shown={k: str(shown_fields.get(k, "")) for k in ("action", "resource",
                                                          "on_behalf_of")},
        delegates={v.person: v.by for v in votes if v.by})
    sid = StandingApprovals.id_for(record.id)
    if st is not None:
        rt.store.set_fields(record.id, {"standing_created": st.id,
                                        "standing_until": repr(st.expires_at)})
        rt.audit.append(Event.STANDING_CREATED, record.id, "signoff", standing=st.id,
                        approvers=st.approvers,
                        delegates={v.person: v.by for v in votes if v.by},
                        window_seconds=window, expires_at=st.expires_at,
                        bounded_params=sorted(st.bounds), rule=evaluation.rule_id)
    return sid


def schedule_followups(rt: Runtime, request_id: str, created: float, requirement: Any) -> None:
    """Schedule reminders and escalation steps at their times (rq scheduler)."""
    for i, delay in enumerate(requirement.reminders):
        rt.enqueue(JobName.REMIND, request_id, i, at=created + delay,
                   job_id=job_names.job_id(JobName.REMIND, request_id, i))
    for i, step in enumerate(requirement.escalation):
        rt.enqueue(JobName.ESCALATE, request_id, i, at=created + step.after_seconds,
                   job_id=job_names.job_id(JobName.ESCALATE, request_id, i))


def masking_profile(rt: Runtime, requirement: Any) -> Any:
    """The rule's masking profile: the policy's named profile (or the default) with the
    policy's shared detectors, the rule's disabled detectors and its partial-view groups."""
    config = rt.masking_config()
    name = requirement.masking_profile or "default"
    try:
        profile = config.profile(name, disable_detectors=requirement.disable_detectors)
    except KeyError:
        # `policy check` refuses unknown names; a policy swapped underneath falls back safely.
        log.warning("masking profile %r not found; using the default", name)
        profile = config.profile("default", disable_detectors=requirement.disable_detectors)
    extra = [g for g in (getattr(requirement, "partial_groups", ()) or ())
             if g not in profile.partial_groups]
    if extra:
        profile = profile.model_copy(update={"partial_groups": [*profile.partial_groups, *extra]})
    return profile


def shown(rt: Runtime, req: AgentRequest, who: CanonicalIdentity | None = None,
          agent: str | None = None, profile: Any = None) -> dict[str, str]:
    """The request's own short fields as every surface shows them (record field ``shown``):
    masked by the engine (:func:`signoff.masking.display.shown_fields`), except a requester
    that is a registered agent (it came from the agent's own stream) or an agent the
    directory knows, and an ``on_behalf_of`` the directory knows: those are closed sets."""
    who = who or canonical_identity(rt, req)
    trusted = []
    if agent or rt.policy.directory.agent(who.requester) is not None:
        trusted.append("requester")
    if who.on_behalf_of and rt.policy.directory.person(who.on_behalf_of) is not None:
        trusted.append("on_behalf_of")
    return shown_fields(rt.masker, {
        "action": req.action, "resource": req.resource, "requester": who.requester,
        "on_behalf_of": who.on_behalf_of, "environment": who.environment,
    }, trusted, profile, raw={"requester": req.requester, "on_behalf_of": req.on_behalf_of,
                              "environment": req.environment})


def masked_fields(rt: Runtime, req: AgentRequest, evaluation: Any,
                  agent: str | None = None) -> dict[str, str]:
    """The masked views of a request, as record fields (the original never leaves here).

    ``masked`` is what every card, log and audit entry sees; ``masked_partial`` is the view
    for members of the profile's partial groups (the inbox and DMs to them); ``shown`` the
    request's own short fields (:func:`shown`) under the rule's profile.
    """
    profile = masking_profile(rt, evaluation.requirement)
    view = {"resource": req.resource, "params": req.params, "reason": req.reason or "",
            "context": req.context}
    result = rt.masker.mask(view, profile=profile, viewer_groups=())
    fields = {
        "masked": json.dumps(result.masked),
        "masking_summary": result.summary(),
        "masking_counts": json.dumps(result.counts()),
        "findings": json.dumps([f.to_dict() for f in result.findings]),
        "shown": json.dumps(shown(rt, req, agent=agent, profile=profile)),
    }
    if profile.partial_groups:
        partial = rt.masker.mask(view, profile=profile, viewer_groups=profile.partial_groups)
        fields["masked_partial"] = json.dumps(partial.masked)
        fields["partial_groups"] = json.dumps(sorted(set(profile.partial_groups)))
    return fields


# --------------------------------------------------------------------------------------------
# votes
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VoteReply:
    """The answer to one decision attempt from any channel."""

    ok: bool
    message: str
    code: str
    outcome: VoteOutcome | None = None
    record: Record | None = None


STALE_TEXT = ("This request was edited after you saw it; nothing was recorded. Look at the "
              "edited version and decide again.")

CLOSED_TEXT = {
    Status.APPROVED: "This request was already approved.",
    Status.DENIED: "This request was already denied.",
    Status.TIMED_OUT: "This request timed out and was denied automatically.",
    Status.CANCELLED: "This request was cancelled by the requester.",
    Status.REJECTED: "This request was rejected as invalid.",
    Status.RECEIVED: "This request is still being prepared; try again in a moment.",
}


@tracing.traced("vote")
def submit_vote(rt: Runtime, request_id: str, person: Person | None, choice: str,
                comment: str | None = None, channel: str = "api", nonce: str = "",
                actor_label: str = "", step_up: Any = None, *, for_person: str | None = None,
                standing: int | None = None, seen_sha256: str | None = None,
                card_version: int | None = None) -> VoteReply:
    """Check separation of duties, then record the vote atomically.

    This is the only path by which a human decision reaches the store. A request whose rule
    says ``step_up: passkey`` also needs ``step_up``: a fresh WebAuthn assertion bound to this
    request, payload, choice and person (:mod:`signoff.stepup`); it is consumed here.

    ``for_person``: ``person`` decides as the delegate of this person (an active delegation,
    :mod:`signoff.delegation`): the vote fills that person's slot and names ``person`` as the
    one who cast it; separation of duties is checked for both. ``standing``: approve this
    request and the same request again for this many seconds (within the rule's
    ``standing.max``, :mod:`signoff.standing`). ``seen_sha256`` / ``card_version``: the payload
    hash or the card version the voter saw; a vote on a version an edit replaced is refused.
    """
    if choice not in ("approve", "deny"):
        return VoteReply(False, "Choose approve or deny.", "bad_choice")
    record = rt.store.get(request_id)
    if record is None:
        return VoteReply(False, f"There is no request {request_id}.", "not_found")
    if record.status is not Status.PENDING:
        return VoteReply(False, CLOSED_TEXT.get(record.status, "This request is closed."),
                         "closed", record=record)
    evaluation = record.evaluation
    who = person.id if person is not None else (actor_label or "unknown")
    edited_at = int(record.number("edited_version", 0))
    if (card_version is not None and card_version < edited_at) or (
            seen_sha256 and seen_sha256 != record.get("payload_sha256")):
        return VoteReply(False, STALE_TEXT, VoteResult.STALE.value, record=record)
    delegate: Person | None = None
    if for_person:
        principal = rt.policy.directory.person(for_person)
        if person is None or principal is None or Delegations(rt.redis, rt.keys).active_from_to(
                principal.id, person.id) is None:
            reason = f"You have no active delegation from {for_person}."
            rt.audit.append(Event.CLICK_REFUSED, request_id, who, channel=channel,
                            code="no_delegation", reason=reason, for_person=for_person)
            return VoteReply(False, reason, "no_delegation", record=record)
        # Separation of duties for the delegate too: never the requester, the person it acts
        # for, the agent's owner, nor someone who voted already (their eligibility is the
        # principal's, checked below).
        own = check_decider(record, person, rt.policy.directory, evaluation)
        if isinstance(own, Refused) and own.code is not RefusalCode.NOT_ELIGIBLE:
            rt.audit.append(Event.CLICK_REFUSED, request_id, who, channel=channel,
                            code=own.code.value, reason=own.reason, for_person=principal.id)
            return VoteReply(False, own.reason, own.code.value, record=record)
        if any(v.by and same_person(v.by, person.id, rt.policy.directory)
               for v in record.votes.values()):
            return VoteReply(False, "You have already voted on this request.",
                             "already_voted", record=record)
        delegate, person = person, principal
    verdict = check_decider(record, person, rt.policy.directory, evaluation)
    if isinstance(verdict, Refused):
        reason = verdict.reason if delegate is None else (
            f"For {person.id if person else for_person}: {verdict.reason}")
        rt.audit.append(Event.CLICK_REFUSED, request_id, who, channel=channel,
                        code=verdict.code.value, reason=reason,
                        **({"for_person": person.id} if delegate and person else {}))
        return VoteReply(False, reason, verdict.code.value, record=record)
    assert person is not None
    human = delegate or person
    if delegate is None and any(v.by and same_person(v.by, person.id, rt.policy.directory)
                                for v in record.votes.values()):
        return VoteReply(False, "You have already voted on this request (for someone else).",
                         "already_voted", record=record)
    if standing is not None:
        limit = evaluation.requirement.standing_max
        if choice != "approve":
            return VoteReply(False, "Only an approval can stand for a while.", "bad_standing",
                             record=record)
        if not limit:
            return VoteReply(False, "This rule does not allow standing approvals.",
                             "bad_standing", record=record)
        if not 60 <= standing <= limit:
            return VoteReply(False, "A standing approval for this rule lasts between 1 minute "
                             f"and {format_duration(limit)}.", "bad_standing", record=record)
    if choice == "deny" and evaluation.requirement.require_deny_comment and not (
            comment or "").strip():
        return VoteReply(False, "A reason is required to deny this request.", "comment_required",
                         record=record)
    proof: stepup.Proof | None = None
    if evaluation.requirement.step_up:
        # The proof is the human's own (a delegate proves their own presence).
        checked = stepup.check(rt, record, human.id, choice,
                               evaluation.requirement.step_up_within, step_up)
        if isinstance(checked, stepup.Refusal):
            rt.audit.append(Event.STEP_UP_REFUSED, request_id, human.id, channel=channel,
                            choice=choice, code=checked.code.value, reason=checked.message)
            return VoteReply(False, checked.message, checked.code.value, record=record)
        proof = checked
    vote = Vote(person=person.id, choice=choice, comment=(comment or None), channel=channel,
                groups=sorted(verdict.groups), step_up="passkey" if proof else None,
                by=delegate.id if delegate else None,
                psh=seen_sha256 or record.get("payload_sha256") or None,
                standing=standing if choice == "approve" else None)
    outcome = rt.store.vote(request_id, vote, nonce=nonce)
    if outcome.result is VoteResult.STALE:
        return VoteReply(False, STALE_TEXT, outcome.result.value, outcome)
    if outcome.result is VoteResult.REPLAY:
        return VoteReply(False, "This click was already received.", "replay", outcome)
    if outcome.result is VoteResult.ALREADY_VOTED:
        return VoteReply(False, "You have already voted on this request.", "already_voted",
                         outcome)
    if outcome.result is VoteResult.CLOSED:
        st = outcome.status or Status.PENDING
        return VoteReply(False, CLOSED_TEXT.get(st, "This request is closed."), "closed", outcome)
    if outcome.result is VoteResult.NOT_FOUND:
        return VoteReply(False, f"There is no request {request_id}.", "not_found", outcome)
    rt.audit.append(Event.VOTE, request_id, person.id, choice=choice, channel=channel,
                    comment_given=bool(comment), approvals=outcome.approvals,
                    denials=outcome.denials, **({"step_up": proof.audit()} if proof else {}),
                    **({"delegate": delegate.id, "for_person": person.id} if delegate else {}),
                    **({"standing_seconds": standing} if vote.standing else {}),
                    payload_sha256=vote.psh)
    if outcome.result is VoteResult.FINAL:
        # One checkpoint covers the decision and its grant, signed before the reply goes out.
        with rt.audit.one_seal():
            rt.audit.append(Event.DECIDED, request_id, person.id, status=outcome.status.value
                            if outcome.status else "", approvals=outcome.approvals,
                            denials=outcome.denials)
            finalize_here(rt, request_id)
        verb = "approved" if outcome.status is Status.APPROVED else "denied"
        message = f"Request {verb}."
    else:
        rt.enqueue(JOB_UPDATE, request_id)
        message = "Vote recorded; waiting for more approvals." if choice == "approve" else (
            "Vote recorded.")
    return VoteReply(True, message, outcome.result.value, outcome, rt.store.get(request_id))


def extend_deadline(rt: Runtime, request_id: str, person: Person | None, seconds: int,
                    channel: str = "api") -> VoteReply:
    """Move a pending request's deadline later, where its rule allows (``extend: {max}``, in
    total), by someone who may decide it. The timeout is re-scheduled at the new deadline."""
    record = rt.store.get(request_id)
    if record is None:
        return VoteReply(False, f"There is no request {request_id}.", "not_found")
    if record.status is not Status.PENDING:
        return VoteReply(False, CLOSED_TEXT.get(record.status, "This request is closed."),
                         "closed", record=record)
    evaluation = record.evaluation
    allowance = evaluation.requirement.extend_max
    if not allowance:
        return VoteReply(False, "This rule does not allow extending the deadline.",
                         "not_extendable", record=record)
    # Whoever may decide it (or has voted on it already: they wait for the others too).
    verdict = check_decider(record, person, rt.policy.directory, evaluation)
    if isinstance(verdict, Refused) and verdict.code.value != "already_voted":
        return VoteReply(False, verdict.reason, verdict.code.value, record=record)
    assert person is not None
    if seconds < 60:
        return VoteReply(False, "Extend by at least a minute.", "bad_extension", record=record)
    result, deadline = rt.store.extend(request_id, seconds, allowance)
    if result == "over":
        left = allowance - int(record.number("extended"))
        return VoteReply(False, f"This rule allows {format_duration(allowance)} of extensions "
                         f"in total; {format_duration(max(left, 0))} left.", "over",
                         record=record)
    if result != "changed":
        return VoteReply(False, "This request is closed.", "closed", record=record)
    n = int(record.number("extended")) + seconds
    rt.audit.append(Event.DEADLINE_EXTENDED, request_id, person.id, channel=channel,
                    seconds=seconds, deadline=deadline, extended_total=n)
    timeouts.schedule(rt, deadline)
    timeouts.drop_unused(rt, record.deadline)  # the old deadline's timer, if nobody else's
    rt.enqueue(JOB_UPDATE, request_id)
    return VoteReply(True, "Deadline extended.", "extended", record=rt.store.get(request_id))


def step_up_options(rt: Runtime, request_id: str, person: Person | None, choice: str
                    ) -> tuple[str, int] | stepup.Refusal:
    """WebAuthn options for ``person`` to prove a ``choice`` on a step-up request (only for
    someone who may decide it now), bound as :func:`stepup.begin` describes."""
    record = rt.store.get(request_id)
    if record is None:
        return stepup.Refusal(stepup.Code.NOT_FOUND, f"There is no request {request_id}.")
    if record.status is not Status.PENDING:
        return stepup.Refusal(stepup.Code.CLOSED,
                              CLOSED_TEXT.get(record.status, "This request is closed."))
    evaluation = record.evaluation
    if not evaluation.requirement.step_up:
        return stepup.Refusal(stepup.Code.NOT_NEEDED, "This request needs no passkey check.")
    verdict = check_decider(record, person, rt.policy.directory, evaluation)
    if isinstance(verdict, Refused) or person is None:
        return stepup.Refusal(stepup.Code.FORBIDDEN, getattr(verdict, "reason", "Not allowed."))
    return stepup.begin(rt, record, person.id, choice, evaluation.requirement.step_up_within)


def check_decider(record: Record, person: Person | None, directory: Any,
                  evaluation: Any = None) -> Allowed | Refused:
    """The separation-of-duties answer for ``person`` on a stored pending request: the one
    check every channel shows and every vote gets (``policy.can_decide`` on the record)."""
    if evaluation is None:
        evaluation = record.evaluation
    return can_decide(record.identity_request(), evaluation, person,
                      {p: v.choice for p, v in record.votes.items()}, directory,
                      extra_groups=record.json("extra_groups", []) or [])


# --------------------------------------------------------------------------------------------
# closing without votes
# --------------------------------------------------------------------------------------------
def expire(rt: Runtime, request_id: str, now: float | None = None) -> Change:
    """Time a request out if its deadline has passed (fail closed: the agent is told)."""
    result, _status = rt.store.close(request_id, Status.TIMED_OUT, "no decision before the deadline",
                                    allowed_from=(Status.PENDING,), only_if_due=True, now=now)
    if result == "changed":
        rt.audit.append(Event.EXPIRED, request_id, "clock")
        finalize_here(rt, request_id)
    return result


def catch_up(rt: Runtime, now: float | None = None) -> int:
    """Time out every open request whose deadline passed (a worker starting after downtime).

    The rq scheduler's own timers fire too once a scheduler holds the lock again; both paths
    close through the same atomic, deadline-checked transition, so nothing happens twice.

    Returns:
        How many requests were timed out.
    """
    now = time.time() if now is None else now
    done = 0
    while True:
        due = rt.store.due_ids(now)
        changed = [rid for rid in due if expire(rt, rid, now=now) == "changed"]
        done += len(changed)
        if len(due) < 500 or not changed:
            return done


def _late(rt: Runtime, record: Record, now: float) -> bool:
    """A follow-up that runs at or after the deadline (the scheduler was down) does not
    remind or escalate any more: it times the request out instead, keeping the order."""
    if record.deadline and now >= record.deadline:
        expire(rt, record.id, now=now)
        return True
    return False


def remind(rt: Runtime, request_id: str, index: int, now: float | None = None) -> FollowUp:
    """Decide and audit reminder ``index`` (the job then re-announces the cards).

    Returns:
        ``reminded``, ``done`` (already sent), ``closed`` or ``late`` (timed out instead).
    """
    now = time.time() if now is None else now
    record = rt.store.get(request_id, with_votes=False)
    if record is None or record.status is not Status.PENDING:
        return FollowUp.CLOSED
    if _late(rt, record, now):
        return FollowUp.LATE
    stamp = repr(now)
    if rt.store.set_once(request_id, f"reminded_{index}", stamp) != stamp:
        return FollowUp.DONE
    rt.audit.append(Event.REMINDED, request_id, "clock", index=index)
    return FollowUp.REMINDED


def escalate(rt: Runtime, request_id: str, index: int, now: float | None = None
             ) -> tuple[FollowUp, Any]:
    """Apply escalation step ``index``: make its groups eligible, and audit it.

    Returns:
        (``escalated`` with the policy's step, or ``done`` / ``closed`` / ``late`` /
        ``no_step`` with None). The job pages the step's groups.
    """
    now = time.time() if now is None else now
    record = rt.store.get(request_id, with_votes=False)
    if record is None or record.status is not Status.PENDING:
        return FollowUp.CLOSED, None
    if _late(rt, record, now):
        return FollowUp.LATE, None
    steps = record.evaluation.requirement.escalation
    if index >= len(steps):
        return FollowUp.NO_STEP, None
    stamp = repr(now)
    if rt.store.set_once(request_id, f"escalated_{index}", stamp) != stamp:
        return FollowUp.DONE, None
    step = steps[index]
    added = rt.store.add_groups(request_id, list(step.add_groups))
    rt.audit.append(Event.ESCALATED, request_id, "clock", index=index, added=added,
                    paged=list(step.page_groups))
    return FollowUp.ESCALATED, step


def followup_job_ids(request_id: str, requirement: Any) -> list[str]:
    """The rq job ids of a request's scheduled timeout, reminders and escalation steps."""
    return job_names.followup_job_ids(request_id, len(requirement.reminders),
                                      len(requirement.escalation))


def unschedule(rt: Runtime, record: Record) -> int:
    """Drop a closed request's timers from the rq scheduler (they would only run as no-ops,
    each costing a job slot): its reminders and escalation steps, and its deadline second's
    timeout timer when no other open request is due in that second. Returns how many were
    removed."""
    if not record.get("evaluation"):
        return 0
    dropped = int(bool(record.deadline) and timeouts.drop_unused(rt, record.deadline))
    # (the request's own expire job id: timers scheduled before the shared ones)
    ids = followup_job_ids(record.id, record.evaluation.requirement)
    registry = ScheduledJobRegistry(queue=rt.queue)
    pipe = rt.redis_bytes.pipeline(transaction=False)
    for job_id in ids:
        registry.remove(job_id, pipeline=pipe)
    removed = [job_id for job_id, n in zip(ids, pipe.execute(), strict=True) if n]
    for job_id in removed:
        try:
            Job.fetch(job_id, connection=rt.redis_bytes, serializer=JSONSerializer).delete()
        except NoSuchJobError:
            pass
    return len(removed) + dropped


def cancel(rt: Runtime, request_id: str, by: str, reason: str = "", *,
           now: float | None = None, early_ok: bool = False) -> Cancel:
    """Cancel an open request (only its agent or the person it acts for may).

    Args:
        rt: the runtime.
        request_id: the request.
        by: who cancels: the requesting agent's id, or the email of the person it acts for.
        reason: why (returned to the agent; the audit keeps its SHA-256 only).
        now: the clock.
        early_ok: when the request is unknown yet, remember the cancel so the request is
            cancelled on arrival (the stream path: two intake consumers may take a request
            and its cancel at the same time).

    Returns:
        ``changed``, ``unchanged`` (already closed), ``not_found``, ``forbidden`` or
        ``deferred`` (remembered until the request arrives).
    """
    now = time.time() if now is None else now
    record = rt.store.get(request_id, with_votes=False)
    if record is None:
        if early_ok:
            rt.redis.set(rt.keys.cancel_early(request_id), json.dumps(
                {"requester": by, "reason": reason, "at": now}), nx=True,
                ex=rt.settings.reply_ttl)
            return Cancel.DEFERRED
        return Cancel.NOT_FOUND
    if not same_agent(by, record.requester) and not same_person(
            by, record.on_behalf_of, rt.policy.directory):
        rt.audit.append(Event.CANCEL_REFUSED, request_id, by,
                        reason="only the requesting agent or the person it acts for may cancel")
        return Cancel.FORBIDDEN

    # The reason is the agent's text: cards and the inbox show it, so it is masked first.
    result, _ = rt.store.close(request_id, Status.CANCELLED,
                               shown_text(rt.masker, reason) or f"cancelled by {by}", now=now)
    if result == "changed":
        display = record.json("shown", None)
        if isinstance(display, dict) and same_agent(by, record.requester):
            by = str(display.get("requester") or by)  # the agent's name as every surface shows it
        rt.audit.append(Event.CANCELLED, request_id, by, reason_given=bool(reason),
                        reason_sha256=hashlib.sha256(reason.encode()).hexdigest()
                        if reason else "")
        finalize_here(rt, request_id)
    return Cancel(result.value)


def _apply_early_cancel(rt: Runtime, request_id: str, requester: str, now: float) -> bool:
    """Cancel a just-created request whose cancel arrived first; True when it did."""
    raw = rt.redis.getdel(rt.keys.cancel_early(request_id))
    if not raw:
        return False
    data = json.loads(raw)
    return cancel(rt, request_id, str(data.get("requester", "")), str(data.get("reason", "")),
                  now=now) == "changed"


def cancel_message(rt: Runtime, raw: bytes | str | None, source: str = "stream",
                   agent: str | None = None) -> Cancel:
    """Handle a ``cancel`` message from the request stream: ``{"id", "requester", "reason"}``.

    A malformed one goes to the dead-letter stream with the reason, like a malformed request.
    From a registered agent's own stream (``agent``) it cancels that agent's request ``id``
    only (ids are scoped), as that agent: ``requester`` may be left out and must not name
    anyone else. An early cancel (the request not arrived yet) is kept under the scoped id.

    Returns:
        What :func:`cancel` returned, or ``dead``.
    """
    problem = ""
    data: Any = None
    try:
        data = json.loads(raw if raw is not None else "")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        problem = "cancel is not JSON"
    if not problem:
        if not isinstance(data, dict):
            problem = "cancel is not a JSON object"
        elif not isinstance(data.get("id"), str) or not _ID_RE.match(data["id"]):
            problem = "cancel has no usable id"
        elif agent is not None and data.get("requester") is not None and not (
                isinstance(data["requester"], str)
                and same_agent(data["requester"], agent_requester(agent))):
            problem = (f"cancel names requester {str(data['requester'])[:200]!r}, but the "
                       f"stream belongs to {agent_requester(agent)!r}")
        elif agent is None and (not isinstance(data.get("requester"), str)
                                or not 0 < len(data["requester"]) <= 200):
            problem = "cancel has no requester"
        elif not isinstance(data.get("reason", ""), str | None) or len(
                data.get("reason") or "") > 4000:
            problem = "cancel reason must be a string of at most 4000 characters"
    if problem:
        rt.redis.xadd(rt.keys.dead, {"reason": problem, "source": source, "kind": "cancel",
                                     "agent": agent or ""},
                      maxlen=100_000, approximate=True)
        log.warning("dead-lettered a cancel: %s", problem)
        return Cancel.DEAD
    if agent is not None:
        return cancel(rt, scoped_id(agent, data["id"]), agent_requester(agent),
                      data.get("reason") or "", early_ok=True)
    return cancel(rt, data["id"], data["requester"], data.get("reason") or "", early_ok=True)


# --------------------------------------------------------------------------------------------
# finalize
# --------------------------------------------------------------------------------------------
def build_decision(rt: Runtime, record: Record, grant: str | None) -> Decision:
    """The agent-facing decision for a closed request."""
    errors = record.json("error")
    approvers = [{"person": v.person, "at": v.at, "channel": v.channel,
                  **({"step_up": v.step_up} if v.step_up else {})}
                 for v in record.approvers] or record.json("merged_approvers", [])
    reason = record.get("decision_reason") or None
    if record.status is Status.DENIED and record.deniers:
        d = record.deniers[0]
        reason = d.comment or f"denied by {d.person}"
        approvers = approvers + [{"person": v.person, "at": v.at, "channel": v.channel,
                                  "choice": "deny"} for v in record.deniers]
    return Decision(
        id=record.get("client_id") or split_id(record.id)[1], status=record.status, action=record.action or None,
        approvers=approvers, reason=reason, grant=grant,
        error=[FieldError(**e) for e in errors] if errors else None,
        code=(record.get("error_code") or "invalid") if record.status is Status.REJECTED
        else None,
        payload_sha256=record.get("payload_sha256") or None,
        decided_at=record.number("decided_at", time.time()),
        policy=record.get("rule_id") or None,
        **_edited(rt, record),
        standing=record.get("standing_id") or None,
    )


def _edited(rt: Runtime, record: Record) -> dict[str, Any]:
    """The decision's edit fields: the params to run with and both hashes (only for an
    approved request an approver edited)."""
    if record.status is not Status.APPROVED or not record.get("original_payload_sha256"):
        return {}
    return {"params": original(rt, record).params,
            "original_payload_sha256": record.get("original_payload_sha256"),
            "edits": record.json("edits", [])}


def finalize_here(rt: Runtime, request_id: str) -> Finalized | None:
    """A request just closed in this process: finalize it here and now, so the agent's reply
    waits for neither a worker nor the jobs ahead of it (a decision never queues behind card
    traffic). Should that fail, the urgent ``finalize`` job takes over; a process that dies
    first leaves the request in the outbox (``Store.undelivered``), which the janitor sweeps.
    ``finalize`` is idempotent, so a second run anywhere changes nothing."""
    try:
        return finalize(rt, request_id)
    except Exception as exc:  # the job (or the janitor) finishes it
        log.warning("finalize of %s here failed (%r); queued for a worker", request_id, exc)
        rt.enqueue(JOB_FINALIZE, request_id,
                   job_id=job_names.job_id(JobName.FINALIZE, request_id))
        return None


@tracing.traced("finalize")
def finalize(rt: Runtime, request_id: str) -> Finalized:
    """Issue the grant (once), deliver the reply (once), and refresh every card."""
    record = rt.store.get(request_id)
    if record is None:
        return Finalized.NOT_FOUND
    if not record.status.final:
        return Finalized.OPEN
    with rt.audit.one_seal():
        if not record.get("replied_at"):
            complete_audit(rt, record)
        grant: str | None = None
        if record.status is Status.APPROVED:
            grant = record.get("grant")
            if grant is None:
                grant = issue_grant(rt, record)
            elif not record.get("replied_at"):
                record_grant(rt, record.id, grant, check=True,  # stored, then a crash?
                             agent=record.get("agent") or "")
            if not record.get("replied_at") and not record.get("standing_created"):
                create_standing(rt, record)
        decision = build_decision(rt, record, grant)
        # The checkpoint covering the decision and its grant, before the agent hears of it.
        rt.audit.seal_pending()
        delivered = rt.store.deliver(request_id, *reply_keys(rt, record), decision.to_json(),
                                     rt.settings.reply_ttl)
    if delivered:
        log.info("decision %s delivered for %s", record.status.value, request_id)
        # The inbox's history of decided requests (a month of them).
        decided_at = record.number("decided_at", time.time())
        pipe = rt.redis.pipeline(transaction=False)
        pipe.zadd(rt.keys.decided, {request_id: decided_at})
        pipe.zremrangebyscore(rt.keys.decided, "-inf", decided_at - 31 * 86400)
        pipe.execute()
    if record.get("index_keys") is not None or record.get("eligible") is not None:
        rt.enqueue(JOB_UPDATE, request_id)
    if delivered:
        unschedule(rt, record)
    if record.get("merged_count"):
        merging.settle_followers(rt, record)
    return Finalized.DELIVERED if delivered else Finalized.ALREADY_DELIVERED


def reply_keys(rt: Runtime, record: Record) -> tuple[str, str | None]:
    """Where a request's decision goes: (reply list, the agent's own decisions stream).

    A registered agent's request: its own namespace, whatever the body said. A trusted-stream
    request: its ``reply_to`` only when it is a reply list (checked again here: a record
    written before that rule is never trusted to name a key), else ``{prefix}:reply:{id}``.
    """
    agent = record.get("agent") or None
    client_id = record.get("client_id") or split_id(record.id)[1]
    if agent:
        ak = rt.keys.agent(agent)
        return ak.reply(client_id), ak.decisions
    reply_to = record.get("reply_to") or ""
    if reply_to.startswith(rt.keys.reply("")) and len(reply_to) > len(rt.keys.reply("")):
        return reply_to, None
    return rt.keys.reply(client_id), None


# The audit event that settles a request in each final state.
SETTLED_BY = {Status.APPROVED: Event.DECIDED, Status.DENIED: Event.DECIDED,
              Status.TIMED_OUT: Event.EXPIRED, Status.CANCELLED: Event.CANCELLED,
              Status.REJECTED: Event.REJECTED}


def complete_audit(rt: Runtime, record: Record) -> int:
    """Audit what a process killed mid-step left out: votes the atomic script recorded, and
    the transition that settled the request (a web process SIGKILLed right after the final
    vote, before its audit entries). Each is marked ``recovered``; the janitor's finalize
    repair runs this before the reply goes out.

    Returns:
        How many entries were added.
    """
    entries = rt.audit.for_request(record.id)
    voted = {(e.actor, e.details.get("choice")) for e in entries if e.event == Event.VOTE.value}
    added = 0
    votes = sorted(record.votes.values(), key=lambda v: v.at)
    for v in votes:
        if (v.person, v.choice) not in voted:
            rt.audit.append(Event.VOTE, record.id, v.person, choice=v.choice, channel=v.channel,
                            comment_given=bool(v.comment), recovered=True,
                            **({"step_up": {"method": v.step_up}} if v.step_up else {}))
            added += 1
    settling = {e.value for e in SETTLED_BY.values()}
    event = SETTLED_BY.get(record.status)
    if event is not None and not any(e.event in settling for e in entries):
        actor = votes[-1].person if votes and event is Event.DECIDED else (
            "clock" if event is Event.EXPIRED else "signoff")
        rt.audit.append(event, record.id, actor, status=record.status.value, recovered=True)
        added += 1
    return added


def issue_grant(rt: Runtime, record: Record) -> str:
    """Mint the grant for an approved request once; a retried finalize reuses it."""
    req = original(rt, record)
    issuer = GrantIssuer(rt)
    token, claims = issuer.mint(record, req)
    stored = rt.store.set_once(record.id, "grant", token)
    if stored == token:
        # Only the grant that won is recorded: a racing finalize's mint is never delivered.
        record_grant(rt, record.id, token, claims, agent=record.get("agent") or "")
    return stored


def record_grant(rt: Runtime, request_id: str, token: str,
                 claims: dict[str, Any] | None = None, check: bool = False,
                 agent: str | None = None) -> bool:
    """Register an issued grant (for status and revocation) and audit it.

    With ``check``, only when its audit entry is missing: a finalize killed between storing
    the grant and recording it (Redis or the worker died) is finished by the retried one.

    Returns:
        Whether it was recorded now.
    """
    if claims is None:
        claims = jwt.decode(token, options={"verify_signature": False})
    if check and any(e.event == Event.GRANT_ISSUED.value and e.details.get("jti") == claims["jti"]
                     for e in rt.audit.for_request(request_id)):
        return False
    kid = str(jwt.get_unverified_header(token).get("kid", ""))
    # The grant names the agent's own id; the record keeps Signoff's (agent-scoped) one.
    GrantIssuer(rt).register(claims, kid, record=request_id)
    if agent is None:
        agent = rt.redis.hget(rt.keys.request(request_id), "agent")
    if agent:
        # The agent checks grants against its own copy of the public keys.
        from signoff.agents import sync_public_keys

        sync_public_keys(rt.redis, rt.keys, agent, need=kid)
    rt.audit.append(Event.GRANT_ISSUED, request_id, "signoff", jti=claims["jti"],
                    payload_sha256=claims["psh"], approvers=claims["apr"],
                    **({"stepped_up": claims["stp"]} if claims.get("stp") else {}),
                    expires_at=claims["exp"], **({"recovered": True} if check else {}))
    return True
