"""Running rq workers for Signoff's queue, with rq's scheduler for deadlines and reminders.

Each worker process runs its card delivery as a child process
(:mod:`workers.delivery_process`): rq jobs write down card work and go on to the next job; the
child does the Slack and Teams calls concurrently, on its own GIL. The queues, in priority
order: ``signoff:urgent`` (finalize, when the process that decided a request could not), then
``signoff`` (everything else).

``SimpleWorker`` runs jobs in the worker process itself: the runtime (Redis pools, the
policy, the spaCy model) is loaded once before the first job instead of once per fork, which
is what makes masking affordable per request. A killed worker's job is retried by rq's
abandoned-job cleanup (jobs carry retries) and, whatever happens, by the janitor sweep.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler
from rq.scripts import release_lock
from rq.serializers import JSONSerializer
from rq.utils import utcparse

from signoff import lifecycle, tracing
from signoff.runtime import Runtime, set_current
from workers import delivery, jobs
from workers.delivery_process import DeliveryChild

log = logging.getLogger(__name__)


class TracedWorker(SimpleWorker):
    """rq's in-process worker, with each job in a span under the trace that enqueued it (the
    job's meta carries it) and the request id as an attribute."""

    def perform_job(self, job: Job, queue: Queue, *args: Any) -> bool:
        job_args: Any = job.args or ()
        rid = job_args[0] if job_args and isinstance(job_args[0], str) else None
        if not tracing.enabled() or rid is None:
            # (a batch job opens one span per request itself)
            return bool(super().perform_job(job, queue, *args))
        parent = (job.meta or {}).get(tracing.TRACEPARENT)
        name = "job " + str(job.func_name or "?").rsplit(".", 1)[-1]
        with tracing.span(name, rid, parent=parent):
            return bool(super().perform_job(job, queue, *args))


def build_worker(rt: Runtime, name: str | None = None,
                 maintenance_interval: int | None = None) -> SimpleWorker:
    """A worker on Signoff's queue using the runtime's bytes connection."""
    queues = [Queue(name, connection=rt.redis_bytes, serializer=JSONSerializer)
              for name in (rt.keys.urgent_queue, rt.keys.queue)]  # in priority order
    return TracedWorker(queues, connection=rt.redis_bytes, serializer=JSONSerializer,
                        name=name, maintenance_interval=maintenance_interval
                        or rt.settings.worker_maintenance_interval,
                        job_monitoring_interval=5)


def close_sockets_in_forks(rt: Runtime) -> None:
    """In a process forked from this one (rq's scheduler is), close the inherited Redis
    sockets at once.

    Otherwise the fork keeps a copy of every socket open: when this worker is SIGKILLed
    inside a blocking pop, Redis still sees that connection waiting and hands the next job
    pushed to the queue to it, and the job is lost (queued, in no list, run by no one). The
    sockets are only closed in the fork (no shutdown: that would cut the parent's
    connection too) and without the pools' locks, which a fork may have inherited held;
    redis-py opens fresh connections in the fork when it is used (its pid check)."""
    pools = [rt.redis.connection_pool, rt.redis_bytes.connection_pool]

    def close_inherited() -> None:
        for pool in pools:
            # redis-py's pool keeps its connections in these (no public way to reach the
            # sockets without taking the pool's lock).
            conns = list(getattr(pool, "_available_connections", []) or [])
            conns += list(getattr(pool, "_in_use_connections", []) or [])
            for conn in conns:
                sock = getattr(conn, "_sock", None)
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass

    os.register_at_fork(after_in_child=close_inherited)


def warm(rt: Runtime) -> None:
    """Load the policy and the masking model before taking jobs."""
    rt.policy  # noqa: B018 - loads and validates the policy file
    warm_masker = getattr(rt.masker, "warm", None)
    if callable(warm_masker):
        warm_masker()


# A scheduler whose heartbeat (every second) is this old is dead: rq would keep its lock for
# another minute (the lock's TTL), during which no timer fires.
SCHEDULER_STALE_SECONDS = 15.0


def reclaim_scheduler_lock(rt: Runtime, stale_after: float = SCHEDULER_STALE_SECONDS,
                           now: float | None = None) -> bool:
    """Release the rq scheduler lock of a scheduler that died without releasing it.

    rq's scheduler renews its queue lock (TTL 61 s) with its heartbeat; after a SIGKILL the
    lock outlives it and a restarted worker could not schedule anything until it expires. The
    lock is released (token-checked, so a live scheduler keeps it) only when its owner's
    heartbeat is older than ``stale_after`` seconds.

    Returns:
        True when a dead scheduler's lock was released.
    """
    conn = rt.redis_bytes
    lock_key = RQScheduler.get_locking_key(rt.keys.queue)
    owner = conn.get(lock_key)
    if not owner:
        return False
    name = owner.decode() if isinstance(owner, bytes) else str(owner)
    beat = conn.hget(SCHEDULER_KEY_TEMPLATE % name, "last_heartbeat")
    if beat is None:
        return False  # between acquiring and registering, or both keys are about to expire
    last = utcparse(beat.decode() if isinstance(beat, bytes) else str(beat)).timestamp()
    now = time.time() if now is None else now
    if now - last < stale_after:
        return False
    released = bool(release_lock(conn, lock_key, name))
    if released:
        log.warning("released the scheduler lock of %s (no heartbeat for %.0fs)", name,
                    now - last)
    return released


def run_worker(rt: Runtime, burst: bool = False, with_scheduler: bool = True,
               name: str | None = None) -> bool:
    """Install the runtime, warm it, and work until stopped (or the queue is empty).

    rq's worker exits when Redis goes away; here it waits for Redis to come back and starts a
    fresh worker, so a Redis restart (or failover) needs no operator. A job that was running
    when the connection dropped is recovered by rq's abandoned-job cleanup or the janitor.
    """
    set_current(rt)
    close_sockets_in_forks(rt)
    warm(rt)
    # The job thread spends its time waiting on Redis; the delivery loop's thread renders and
    # parses. A short switch interval gives the job thread the GIL back soon after each reply
    # (the default 5 ms, paid on every round trip of a finalize, is what a decision would wait).
    sys.setswitchinterval(0.0005)
    tracing.configure(rt.settings, "worker")
    child: DeliveryChild | None = None
    if burst:
        delivery.start_loop(rt, jobs.messengers(rt))
    else:
        # Card calls in the worker's delivery process; this process keeps a loop for
        # best-effort messages (reminders, "your request was decided") only.
        delivery.start_loop(rt, jobs.messengers(rt), drains=False)
        child = DeliveryChild(rt.settings).start()
        delivery.use_external(child.kick)
    try:
        return _work(rt, burst, with_scheduler, name)
    finally:
        if child is not None:
            delivery.use_external(None)
            child.stop()


def _work(rt: Runtime, burst: bool, with_scheduler: bool, name: str | None) -> bool:
    if with_scheduler:
        reclaim_scheduler_lock(rt)
    caught = lifecycle.catch_up(rt)
    if caught:
        log.info("timed out %d request(s) whose deadline passed while no worker ran", caught)
    backoff = 0.2
    while True:
        try:
            worker = build_worker(rt, name=name)
            worked = bool(worker.work(burst=burst, with_scheduler=with_scheduler,
                                      logging_level=rt.settings.log_level))
            # rq's work() also *returns* after an error it caught ("found an unhandled
            # exception, quitting": e.g. Redis gone longer than its own retries). Only a
            # requested stop (SIGTERM/SIGINT) or burst mode may end the process.
            if burst or worker._shutdown_requested_date is not None:
                return worked
            log.warning("rq worker quit without a stop request; starting a fresh one in "
                        "%.1fs", backoff)
        except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
            log.warning("worker lost Redis (%s); restarting in %.1fs", exc, backoff)
        time.sleep(backoff)
        backoff = min(backoff * 2, 5.0)
        name = None  # the old registration may linger until its TTL
