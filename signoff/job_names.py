"""Every rq job Signoff enqueues, spelled once.

The values are the dotted paths rq imports (the functions live in :mod:`workers.jobs`); the
core enqueues by these names without importing the workers. The job ids a request's jobs and
timers get are built here too (:func:`job_id`), so every caller (lifecycle, merging, the
janitor) names the same job the same way.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum


class JobName(StrEnum):
    """An rq job function, by the dotted name rq resolves."""

    PREPARE = "workers.jobs.prepare"
    PREPARE_BATCH = "workers.jobs.prepare_batch"
    NOTIFY = "workers.jobs.notify"
    DELIVER = "workers.jobs.deliver"
    FINALIZE = "workers.jobs.finalize"
    EXPIRE = "workers.jobs.expire"
    # The timer of one deadline second, shared by every request due in it (signoff.timeouts).
    EXPIRE_DUE = "workers.janitor.expire_due"
    UPDATE = "workers.jobs.update_cards"
    REMIND = "workers.jobs.remind"
    ESCALATE = "workers.jobs.escalate"


# Delivering a decision to its agent is the only job on the urgent queue: workers take it
# first, and card traffic (posts, updates, reminders) never sits in front of it.
URGENT_JOBS = frozenset({JobName.FINALIZE})


def job_key(request_id: str) -> str:
    """rq job ids allow only [A-Za-z0-9_-]; request ids allow more, so hash them."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", request_id)
    if safe == request_id:
        return request_id
    return safe[:80] + "-" + hashlib.sha256(request_id.encode()).hexdigest()[:12]


def job_id(job: JobName, request_id: str, step: int | str | None = None) -> str:
    """The one rq job id of ``job`` for a request: ``finalize-{key}``, ``expire-{key}``,
    ``remind-{key}-{i}`` (``step``: a reminder's or escalation step's index, ``x{n}`` for the
    n-th deadline extension). Enqueueing the same job twice under it keeps one job."""
    name = f"{job.rsplit('.', 1)[1]}-{job_key(request_id)}"
    return name if step is None else f"{name}-{step}"


def timeout_job_id(second: int, prefix: str) -> str:
    """The rq job id of the timeout timer of one deadline second of the deployment with key
    prefix ``prefix``: ``timeout-{prefix}-{second}`` (rq's job ids are global to a Redis, and
    no request's job id starts so: they start with their job's name)."""
    return f"timeout-{job_key(prefix)}-{second}"


def followup_job_ids(request_id: str, reminders: int, escalations: int) -> list[str]:
    """The rq job ids of a request's scheduled timeout, reminders and escalation steps."""
    return ([job_id(JobName.EXPIRE, request_id)]
            + [job_id(JobName.REMIND, request_id, i) for i in range(reminders)]
            + [job_id(JobName.ESCALATE, request_id, i) for i in range(escalations)])
