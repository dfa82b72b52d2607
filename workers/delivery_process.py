"""The card delivery as its own process: ``signoff delivery``, which every worker runs as its
child.

A worker's rq jobs write card work to the ledger's outbox (Redis); its delivery process does
the Slack and Teams calls (:class:`workers.delivery.DeliveryLoop`). Two processes rather than
two threads of one: the delivery renders cards and builds calls while the jobs prepare
requests, and in one process each waited for the other's GIL after every Redis round trip.
The worker tells its child which destinations have new work over the child's stdin (one a
line, so nothing waits for a poll); the child also polls the ledger's due index (work held for
a ``Retry-After`` or a backoff, work another worker queued), and it ends with its worker
(``PR_SET_PDEATHSIG`` on Linux; stdin closing everywhere). Without ``--parent`` it runs on its
own (a process type of its own, scaled separately) and only polls.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from typing import IO

from signoff import tracing
from signoff.runtime import Runtime, set_current
from signoff.settings import Settings
from workers import delivery
from workers.messengers import build_messengers
from workers.supervisor import Supervisor

log = logging.getLogger(__name__)

PROCESS = "delivery"
# prctl(2): "set the parent-death signal of the calling process".
PR_SET_PDEATHSIG = 1


class DeliveryChild:
    """A worker's side of its delivery process: start it, restart it when it dies, tell it
    about new work, stop it with the worker."""

    def __init__(self, settings: Settings) -> None:
        self.supervisor = Supervisor(settings, processes=(PROCESS,),
                                     args=("--parent", str(os.getpid())),
                                     stdin=subprocess.PIPE)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="delivery-child", daemon=True)

    def start(self) -> DeliveryChild:
        self._thread.start()
        return self

    def _watch(self) -> None:
        # The child is started (and restarted) from this thread, which lives as long as the
        # worker: the parent-death signal follows the thread that started the child.
        self.supervisor.start()
        while not self._stop.wait(0.2):
            self.supervisor.watch_once()
        self.supervisor.stop()

    def kick(self, names: Iterable[str]) -> None:
        """Tell the child these destinations have new work (lost while it restarts: its poll
        of the due index finds the work anyway)."""
        proc = self.supervisor.child(PROCESS)
        if proc is None or proc.stdin is None:
            return
        data = "".join(json.dumps(name) + "\n" for name in names).encode()
        with self._lock:
            try:
                proc.stdin.write(data)
                proc.stdin.flush()
            except (OSError, ValueError):  # it just died: the supervisor restarts it
                pass

    def stop(self, timeout: float = 20.0) -> None:
        self._stop.set()
        self._thread.join(timeout)


def _die_with(parent: int) -> bool:
    """Have the kernel end this process when its parent does (a SIGKILLed worker must not
    leave its delivery running: its leases and posts are the worker's). Written here with
    ctypes: one Linux call, which no dependency of the project offers. Returns False when
    the parent is already gone."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError) as exc:  # stdin closing still ends it
            log.warning("could not tie the delivery process to its worker: %s", exc)
    return os.getppid() == parent


def _read_kicks(source: IO[bytes], loop: delivery.DeliveryLoop, stop: threading.Event) -> None:
    """Destinations with new work, one JSON string a line, until the worker closes stdin."""
    for line in source:
        try:
            name = json.loads(line)
        except ValueError:
            continue
        if isinstance(name, str):
            loop.kick([name])
    stop.set()


def run_delivery(rt: Runtime, parent: int | None = None) -> None:
    """Deliver cards until SIGTERM (or until the worker ``parent`` is gone)."""
    if parent is not None and not _die_with(parent):
        return
    set_current(rt)
    tracing.configure(rt.settings, PROCESS)
    loop = delivery.start_loop(rt, build_messengers(rt))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if parent is not None:
        threading.Thread(target=_read_kicks, args=(sys.stdin.buffer, loop, stop),
                         name="kicks", daemon=True).start()
    try:
        while not stop.wait(1.0):
            if parent is not None and os.getppid() != parent:
                break
    finally:
        delivery.stop_loop()
