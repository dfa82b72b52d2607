"""Every rq job Signoff enqueues, spelled once.

The values are the dotted paths rq imports (the functions live in :mod:`workers.jobs`); the
core enqueues by these names without importing the workers.
"""

from __future__ import annotations

from enum import StrEnum


class JobName(StrEnum):
    """An rq job function, by the dotted name rq resolves."""

    PREPARE = "workers.jobs.prepare"
    PREPARE_BATCH = "workers.jobs.prepare_batch"
    NOTIFY = "workers.jobs.notify"
    DELIVER = "workers.jobs.deliver"
    FINALIZE = "workers.jobs.finalize"
    EXPIRE = "workers.jobs.expire"
    UPDATE = "workers.jobs.update_cards"
    REMIND = "workers.jobs.remind"
    ESCALATE = "workers.jobs.escalate"


# Delivering a decision to its agent is the only job on the urgent queue: workers take it
# first, and card traffic (posts, updates, reminders) never sits in front of it.
URGENT_JOBS = frozenset({JobName.FINALIZE})
