"""The safety net behind the scheduler and the job queue.

rq delivers jobs and schedules the timeouts; this sweep (run every few seconds by the intake
process) catches what a crash between two steps could leave behind, using the indexes the
state machine keeps atomically:

- requests still ``received`` long after arrival: enqueue ``prepare`` again;
- open requests past their deadline (plus a grace for the scheduler): time them out;
- decided requests whose reply was not delivered: enqueue ``finalize`` again;
- notify jobs claimed but never finished (a worker killed mid-notify): enqueue ``notify``
  (card work already in the ledger's outbox is the workers' delivery loops' to finish).

It also keeps registered agents able to work (their ACL users, their copy of the grant public
keys, the grant-use script), folds the agents' grant reports into the audit chain as their
claims (signoff.grant_reports) and signs an audit checkpoint when one is due. Each step runs
on its own, so one that fails on a poison entry never stops the others or the intake.

Every action is idempotent, so sweeping twice is harmless.

:func:`expire_due` is the same timeout step run on time: the rq job of one deadline second's
timer (:mod:`signoff.timeouts`), which rq's scheduler starts in a worker at that second.
"""

from __future__ import annotations

import logging
import time

import redis

from signoff import agents, audit, grant_reports, lifecycle, timeouts
from signoff.job_names import JobName, job_id
from signoff.runtime import Runtime, current
from signoff.store import Change

log = logging.getLogger(__name__)

# A notify job claimed longer ago than CLAIM_FACTOR x stale_after is run again.
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
        self.failures = 0  # steps or entries that failed (for tests and metrics)

    def tick(self, now: float | None = None) -> dict[str, int]:
        """One sweep; returns how many of each repair it made.

        Each step runs on its own: one that fails (a poison entry, a key an agent spoiled)
        is logged and counted in ``failed`` and the others still run.
        """
        now = time.time() if now is None else now
        done = {"prepare": 0, "expire": 0, "finalize": 0, "notify": 0, "grant_reports": 0,
                "failed": 0}
        steps = (("agents", self._agents), ("prepare", self._prepare),
                 ("expire", self._expire), ("finalize", self._finalize),
                 ("notify", self._notify), ("grant_reports", self._grant_reports),
                 ("checkpoint", self._checkpoint))
        for name, step in steps:
            try:
                n = step(now)
            except (redis.ConnectionError, redis.TimeoutError):
                raise
            except Exception:
                log.exception("janitor step %s failed; the others go on", name)
                done["failed"] += 1
                self.failures += 1
                continue
            if name in done:
                done[name] += n
        if any(done.values()):
            log.info("janitor repairs: %s", done)
        return done

    def _agents(self, now: float) -> int:
        """Registered agents keep their ACL users, public-key copies and the use script."""
        agents.refresh(self.rt.redis, self.rt.keys)
        return 0

    def _prepare(self, now: float) -> int:
        n = 0
        for rid in self.rt.store.stale_received(now - self.stale_after):
            self.rt.enqueue(JobName.PREPARE, rid, job_id=job_id(JobName.PREPARE, rid))
            n += 1
        return n

    def _expire(self, now: float) -> int:
        n = 0
        for rid in self.rt.store.due_ids(now - self.deadline_grace):
            try:
                if lifecycle.expire(self.rt, rid, now=now) is Change.CHANGED:
                    n += 1
            except (redis.ConnectionError, redis.TimeoutError):
                raise
            except Exception:
                log.exception("could not time out %s", rid)
                self.failures += 1
        return n

    def _finalize(self, now: float) -> int:
        n = 0
        for rid in self.rt.store.undelivered(now - self.stale_after):
            self.rt.enqueue(JobName.FINALIZE, rid, job_id=job_id(JobName.FINALIZE, rid))
            n += 1
        return n

    def _notify(self, now: float) -> int:
        rt = self.rt
        n = 0
        for rid in rt.cards.stale_claims(now - self.stale_after * CLAIM_FACTOR):
            # The claim is renewed, not dropped: notify removes it, and finding it tells that
            # run the job before it was cut short (it then looks for unrecorded cards).
            rt.cards.renew_claim(rid, now)
            rt.enqueue(JobName.NOTIFY, rid)
            n += 1
        return n

    def _grant_reports(self, now: float) -> int:
        # Agents' grant-use reports join the audit chain as their claims (checked first).
        return grant_reports.fold_reports(self.rt)

    def _checkpoint(self, now: float) -> int:
        audit.checkpoint_if_due(self.rt, self.rt.settings.audit_checkpoint_interval, now=now)
        self.follow_log()
        # Old entries move to the archive.
        audit.archive_if_due(self.rt, now=now)
        return 0

    def follow_log(self, limit: int = 20_000) -> int:
        """Bring the audit Merkle tree (no signature: a decision's checkpoint then adds only
        the entries since) and the audit index up to the log; returns how many entries the
        index read. The intake calls this every second between sweeps, so the work comes in
        small pieces rather than one burst of CPU every few seconds (a burst delayed the
        decisions being made meanwhile on the same cores)."""
        try:
            self.rt.audit.tree.advance(self.rt.audit.read_after)
        except ValueError as exc:
            log.error("audit tree not advanced: %s (run 'signoff audit verify')", exc)
        try:
            return self.rt.audit.index.update(self.rt.audit.read_after, limit=limit)
        except (redis.ConnectionError, redis.TimeoutError):
            raise
        except Exception:
            log.exception("audit index not updated; the next pass tries again")
            self.failures += 1
            return 0


def expire_due(second: int, now: float | None = None) -> int:
    """The timer of one deadline second (an rq job): time out every request due by now.

    ``now`` is for a controllable clock (tests drive the scheduled jobs with it). Run before
    its second by this host's clock (another host's clock is ahead), the requests of that
    second are not due here yet: the next second's timer is scheduled for them.

    Returns:
        How many requests were timed out.
    """
    rt = current()
    now = time.time() if now is None else now
    done = lifecycle.catch_up(rt, now=now)
    if now < second and rt.store.due_ids(second, limit=1):
        timeouts.schedule(rt, second + 1)
    return done
