"""The timeout timers: one rq timer per deadline second, shared by every request due in it.

A request's deadline is in the ``deadlines`` index (written atomically with the transition
that opens it, removed by the one that closes it). The timer of the second its deadline falls
in (rounded up: rq schedules to whole seconds, and the close refuses a timeout asked for early)
times out every request due by then (:func:`signoff.lifecycle.catch_up`), so requests opened
in the same second share one scheduled rq job instead of each keeping its own: at load that is
one job per second of deadlines, not one per pending request.

A timer is dropped (:func:`drop_unused`) once no open request's deadline falls in its second,
atomically with that check, so a request opened meanwhile keeps it (the opening transition
writes the deadline before the timer is scheduled). A timer that is due or running is never
dropped: it runs and rq deletes it. The janitor's sweep stays the safety net behind all of it.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from rq.job import Job
from rq.registry import ScheduledJobRegistry

from signoff.job_names import JobName, timeout_job_id

if TYPE_CHECKING:
    from signoff.runtime import Runtime

# KEYS[1] deadlines zset, KEYS[2] rq's scheduled registry, KEYS[3] the timer's rq job hash
# ARGV[1] the second, ARGV[2] the timer's job id. Drops the timer when no open request's
# deadline falls in (second - 1, second]; returns 1 when it did.
_DROP_UNUSED = """
local second = tonumber(ARGV[1])
if redis.call('ZCOUNT', KEYS[1], '(' .. tostring(second - 1), tostring(second)) > 0 then
  return 0
end
if redis.call('ZREM', KEYS[2], ARGV[2]) == 0 then return 0 end
redis.call('DEL', KEYS[3])
return 1
"""


def second_of(deadline: float) -> int:
    """The second whose timer times out a request due at ``deadline``."""
    return math.ceil(deadline)


def schedule(rt: Runtime, deadline: float) -> None:
    """Make sure the timer of ``deadline``'s second is scheduled (it may be already: enqueueing
    it again keeps one job). Call after the deadline is in the ``deadlines`` index."""
    second = second_of(deadline)
    rt.enqueue(JobName.EXPIRE_DUE, second, job_id=timeout_job_id(second, rt.keys.prefix),
               at=second)


def drop_unused(rt: Runtime, deadline: float, now: float | None = None) -> bool:
    """Drop the timer of ``deadline``'s second when no open request still needs it (and it is
    not due yet: a due timer is rq's to run and delete). True when it was dropped."""
    second = second_of(deadline)
    now = time.time() if now is None else now
    if second <= now:
        return False
    job_id = timeout_job_id(second, rt.keys.prefix)
    registry = ScheduledJobRegistry(queue=rt.queue)
    script = rt.redis_bytes.register_script(_DROP_UNUSED)
    return bool(script(keys=[rt.keys.deadlines, registry.key, Job.key_for(job_id)],
                       args=[second, job_id]))
