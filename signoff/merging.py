"""Merging identical pending requests from one agent onto one card ("×12").

An agent that loops and sends the same request twelve times gets one card, not twelve: the
first request leads; each identical one opens as its follower, indexed nowhere an approver
looks and posted nowhere. The leader's card shows the count. When the leader is decided,
every follower gets the same outcome and its own reply (with its own grant when approved).
A cancelled leader does not decide for its followers: they are cancelled too, with a reason
that says to send them again.

Merging never widens an approval:

- Only requests identical in everything but their id share a card: the same agent, person
  on whose behalf, action, resource, params, context (environment included, in the one
  identity form of :mod:`policy.identity`) and reason, matched by the same rule of the same
  policy version (:func:`fingerprint`). A prod request never rides on a staging one, nor a
  request for Frank on one for Grace.
- Each follower's approval is checked again, per follower, before it is given: every person
  who approved the leader must be allowed to decide the follower (separation of duties,
  eligibility, still in the directory). If one is not, the follower is not approved on the
  leader's votes: it is cancelled with a reason that says why, and must be sent again.
- The follower's reply and grant name the people who approved (``merged_approvers``), never
  the policy.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING, Any

from policy import Refused, can_decide
from signoff.audit import Event
from signoff.grant_check import context_sha256
from signoff.job_names import JobName, job_id
from signoff.models import Status, canonical_json

if TYPE_CHECKING:
    from signoff.models import AgentRequest
    from signoff.runtime import Runtime
    from signoff.store import Record

SHARED_OUTCOMES = (Status.APPROVED, Status.DENIED, Status.TIMED_OUT)


def fingerprint(record: Record, req: AgentRequest, evaluation: Any) -> str:
    """What makes two requests identical: everything but their id, and the rule that matched.

    ``record`` holds the canonical identity fields stored at intake (requester, on-behalf-of
    person, environment); ``req`` the body as sent; ``evaluation`` the policy's verdict.
    """
    doc = {
        "requester": record.requester,
        "on_behalf_of": record.on_behalf_of or "",
        "payload_sha256": req.payload_sha256(),
        "context_sha256": context_sha256(req.context),
        "reason": req.reason or "",
        "rule": evaluation.rule_id,
        "policy": evaluation.policy_version,
        "requirement": evaluation.requirement.to_dict(),
    }
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def leader_for(rt: Runtime, request_id: str, fp: str, deadline: float) -> str | None:
    """The pending request this one should follow, or None when it leads (claims the slot)."""
    key = rt.keys.dedupe(fp)
    expire_at = max(math.ceil(deadline), 1)
    for _ in range(3):
        if rt.redis.set(key, request_id, nx=True, exat=expire_at):
            return None
        leader = rt.redis.get(key)
        if leader is None:
            continue
        if leader == request_id:
            return None
        if rt.store.status(leader) is Status.PENDING:
            return str(leader)
        # The leader closed: take the slot over, unless someone else just did.
        pipe = rt.redis.pipeline()
        pipe.watch(key)
        if pipe.get(key) == leader:
            pipe.multi()
            pipe.set(key, request_id, exat=expire_at)
            try:
                pipe.execute()
                return None
            except Exception:  # noqa: S112 - WatchError: another request won; look again
                continue
        pipe.reset()
    return None


def attach(rt: Runtime, leader: str, follower: str) -> None:
    """Record ``follower`` on ``leader``'s card; settle it at once if the leader just closed."""
    pipe = rt.redis.pipeline()
    pipe.rpush(rt.keys.followers(leader), follower)
    pipe.hincrby(rt.keys.request(leader), "merged_count", 1)
    pipe.hincrby(rt.keys.request(leader), "version", 1)
    pipe.execute()
    rt.audit.append(Event.MERGED, follower, "signoff", leader=leader)
    leader_record = rt.store.get(leader)
    if leader_record is not None and leader_record.status.final:
        settle_followers(rt, leader_record)


def follower_refusal(rt: Runtime, leader: Record, follower: Record) -> str | None:
    """Why the people who decided the leader may not decide ``follower`` (None: every one
    of them may).

    The same separation-of-duties and eligibility check a vote gets (``policy.can_decide``),
    run for each person whose vote decided the leader (its approvers when approved, its
    deniers when denied) against the follower itself.
    """
    if not follower.get("evaluation"):
        return "it has no policy evaluation of its own"
    evaluation = follower.evaluation
    if evaluation.rule_id != leader.get("rule_id"):
        return "it was matched by another rule"
    if leader.status is Status.APPROVED and leader.get("payload_sha256") != follower.get(
            "payload_sha256"):
        # An approver edited the leader before approving it (signoff.edits): its approval is
        # for the edited payload, never the follower's.
        return "the identical request was edited before it was approved"
    directory = rt.policy.directory
    request = follower.identity_request()
    extra = leader.json("extra_groups", []) or []
    deciders = leader.approvers if leader.status is Status.APPROVED else leader.deniers
    verb = "approved" if leader.status is Status.APPROVED else "denied"
    for vote in deciders:
        verdict = can_decide(request, evaluation, directory.person(vote.person), {}, directory,
                             extra_groups=extra)
        if isinstance(verdict, Refused):
            return (f"{vote.person} {verb} the identical request {leader.id} but may not "
                    f"decide this one ({verdict.code.value})")
    return None


def settle_followers(rt: Runtime, leader: Record) -> int:
    """Give every follower the leader's outcome (idempotent: each is popped once).

    An approval (or denial) is given only to a follower every person who decided the leader
    may decide; any other follower is cancelled with the reason (it never gets a grant on
    those votes).
    """
    settled = 0
    approvers = [{"person": v.person, "at": v.at, "channel": v.channel}
                 for v in leader.approvers]
    while True:
        rid = rt.redis.lpop(rt.keys.followers(leader.id))
        if rid is None:
            return settled
        extra: dict[str, str] = {}
        if leader.status in SHARED_OUTCOMES:
            to = leader.status
            reason = f"decided with the identical request {leader.id}"
            if leader.get("decision_reason"):
                reason += f": {leader.get('decision_reason')}"
            if to in (Status.APPROVED, Status.DENIED):
                follower = rt.store.get(rid)
                refusal = ("it no longer exists" if follower is None
                           else follower_refusal(rt, leader, follower))
                if refusal is not None:
                    reason = (f"not {to.value} with the identical request {leader.id}: "
                              f"{refusal}; send it again to have it decided on its own")
                    to = Status.CANCELLED
                    rt.audit.append(Event.MERGE_REFUSED, rid, "signoff", leader=leader.id,
                                    reason=refusal)
                elif to is Status.APPROVED:
                    extra["merged_approvers"] = json.dumps(approvers)
        else:
            to = Status.CANCELLED
            reason = (f"the identical request {leader.id} it was merged with was "
                      f"{leader.status.value}; send it again if it is still needed")
        result, _ = rt.store.close(rid, to, reason,
                                   allowed_from=(Status.RECEIVED, Status.PENDING),
                                   extra=extra or None)
        if result == "changed":
            rt.audit.append(Event.DECIDED, rid, "signoff", status=to.value, merged_into=leader.id,
                            approvers=[a["person"] for a in approvers]
                            if to is Status.APPROVED else [])
            rt.enqueue(JobName.FINALIZE, rid, job_id=job_id(JobName.FINALIZE, rid))
            settled += 1
