"""Merging identical pending requests from one agent onto one card ("×12").

An agent that loops and sends the same action with the same payload twelve times gets one
card, not twelve: the first request leads; each identical one (same agent, action and
payload hash) opens as its follower, indexed nowhere an approver looks and posted nowhere. The
leader's card shows the count. When the leader is decided, every follower gets the same
outcome and its own reply (with its own grant when approved). A cancelled leader does not
decide for its followers: they are cancelled too, with a reason that says to send them again.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import TYPE_CHECKING

from signoff.audit import Event
from signoff.models import Status

if TYPE_CHECKING:
    from signoff.runtime import Runtime
    from signoff.store import Record

SHARED_OUTCOMES = (Status.APPROVED, Status.DENIED, Status.TIMED_OUT)


def fingerprint(requester: str, action: str, payload_sha256: str) -> str:
    """What makes two requests identical."""
    return hashlib.sha256(f"{requester}\x1f{action}\x1f{payload_sha256}".encode()).hexdigest()


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


def settle_followers(rt: Runtime, leader: Record) -> int:
    """Give every follower the leader's outcome (idempotent: each is popped once)."""
    from signoff.lifecycle import JOB_FINALIZE, _job_key

    settled = 0
    approvers = [{"person": v.person, "at": v.at, "channel": v.channel}
                 for v in leader.approvers]
    while True:
        rid = rt.redis.lpop(rt.keys.followers(leader.id))
        if rid is None:
            return settled
        if leader.status in SHARED_OUTCOMES:
            to = leader.status
            reason = f"decided with the identical request {leader.id}"
            if leader.get("decision_reason"):
                reason += f": {leader.get('decision_reason')}"
        else:
            to = Status.CANCELLED
            reason = (f"the identical request {leader.id} it was merged with was "
                      f"{leader.status.value}; send it again if it is still needed")
        result, _ = rt.store.close(rid, to, reason,
                                   allowed_from=(Status.RECEIVED, Status.PENDING),
                                   extra={"merged_approvers": json.dumps(approvers)})
        if result == "changed":
            rt.audit.append(Event.DECIDED, rid, "signoff", status=to.value, merged_into=leader.id)
            rt.enqueue(JOB_FINALIZE, rid, job_id=f"finalize-{_job_key(rid)}")
            settled += 1
