"""The safety net behind the scheduler and the job queue.

rq delivers jobs and schedules the timeouts; this sweep (run every few seconds by the intake
process) catches what a crash between two steps could leave behind, using the indexes the
state machine keeps atomically:

- requests still ``received`` long after arrival: enqueue ``prepare`` again;
- open requests past their deadline (plus a grace for the scheduler): time them out;
- decided requests whose reply was not delivered: enqueue ``finalize`` again;
- card posts claimed but never finished (a worker killed mid-notify): enqueue ``notify``.

It also folds the agents' grant-use reports into the audit chain and signs an audit
checkpoint when one is due.

Every action is idempotent, so sweeping twice is harmless.
"""

from __future__ import annotations

import logging
import time

from signoff import audit, grants, lifecycle
from signoff.runtime import Runtime

log = logging.getLogger(__name__)

# A card post claimed longer ago than CLAIM_FACTOR x stale_after is taken over (and the
# notify job's claim lock expires at that same age: workers.jobs).
CLAIM_FACTOR = 4


class Janitor:
    """Periodic repair sweep.

    Args:
        rt: the runtime.
        stale_after: seconds after which an unfinished step is redone.
        deadline_grace: seconds past a deadline before the sweep times a request out itself.
    """

    def __init__(self, rt: Runtime, stale_after: float | None = None,
                 deadline_grace: float = 2.0) -> None:
        self.rt = rt
        self.stale_after = rt.settings.repair_after if stale_after is None else stale_after
        self.deadline_grace = deadline_grace

    def tick(self, now: float | None = None) -> dict[str, int]:
        """One sweep; returns how many of each repair it made."""
        rt = self.rt
        now = time.time() if now is None else now
        done = {"prepare": 0, "expire": 0, "finalize": 0, "notify": 0}
        for rid in rt.store.stale_received(now - self.stale_after):
            rt.enqueue(lifecycle.JOB_PREPARE, rid)
            done["prepare"] += 1
        for rid in rt.store.due_ids(now - self.deadline_grace):
            if lifecycle.expire(rt, rid, now=now) == "changed":
                done["expire"] += 1
        for rid in rt.store.undelivered(now - self.stale_after):
            rt.enqueue(lifecycle.JOB_FINALIZE, rid)
            done["finalize"] += 1
        stale = rt.redis.zrangebyscore(rt.keys.notifying, "-inf",
                                       now - self.stale_after * CLAIM_FACTOR)
        for member in stale:
            rid, kind, dest = member.split("|", 2)
            if kind:
                rt.redis.zrem(rt.keys.notifying, member)
                rt.enqueue(lifecycle.JOB_NOTIFY, rid, kind, dest)
            else:
                # The whole request's claim is renewed, not dropped: notify removes it, and
                # finding it tells that run the job before it was cut short.
                rt.redis.zadd(rt.keys.notifying, {member: now}, xx=True)
            # A killed notify job never reached the request's later channels (or any: the
            # whole-request claim ``rid||``): post those too (notify skips every destination
            # already recorded).
            rt.enqueue(lifecycle.JOB_NOTIFY, rid)
            done["notify"] += 1
        # Agents' grant-use reports join the audit chain; the chain gets a signed checkpoint.
        done["grant_reports"] = grants.fold_reports(rt)
        audit.checkpoint_if_due(rt, rt.settings.audit_checkpoint_interval, now=now)
        if any(done.values()):
            log.info("janitor repairs: %s", done)
        return done
