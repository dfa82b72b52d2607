"""The CPU priority of Signoff's background processes.

A decision is a few milliseconds of CPU in the web process, and the agent waits on it; a card
update can wait a few hundred milliseconds without anyone noticing. When both run on the same
machine (``make demo``, one host running the Procfile, a small VM) and the cores are busy, the
kernel shares them evenly by default, so each click waits its turn behind card rendering,
msrest and rq's own bookkeeping. The worker and delivery processes therefore lower their own
priority (``SIGNOFF_WORKER_NICE``, a Unix nice value): the scheduler then runs the web's
decision first whenever both are ready, and the background work still gets every cycle the
web does not use. On machines of their own it changes nothing.

The rq scheduler and the delivery process a worker starts inherit its priority.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def lower_priority(nice: int) -> int:
    """Run this process (and what it starts later) at nice value ``nice`` at least; a
    process started nicer stays as it is. Returns the nice value in effect.

    Lowering one's own priority needs no privilege; where the platform refuses anyway (some
    sandboxes), the process runs on at its priority and says so once."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if nice <= current:
        return current
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except OSError as exc:
        log.warning("cannot lower this process's CPU priority to nice %d (%s); running at %d",
                    nice, exc.strerror, current)
        return current
    return nice
