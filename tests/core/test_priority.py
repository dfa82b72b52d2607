"""The background processes' CPU priority (workers/priority.py), each case in a process of
its own (a process cannot take back a lower priority)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASE = os.getpriority(os.PRIO_PROCESS, 0)  # what the suite itself runs at (CI may nice it)
PROBE = ("import os, sys; from workers.priority import lower_priority; "
         "got = lower_priority(int(sys.argv[1])); "
         "print(got, os.getpriority(os.PRIO_PROCESS, 0))")


def probe(nice: int, start: int = 0) -> tuple[int, int]:
    """(what lower_priority returned, the nice value the process then ran at)."""
    prefix = ["nice", "-n", str(start)] if start else []
    out = subprocess.run([*prefix, sys.executable, "-c", PROBE, str(nice)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    return int(out[0]), int(out[1])


def test_the_process_runs_at_the_configured_nice_value() -> None:
    assert probe(10) == (max(BASE, 10),) * 2


def test_zero_leaves_the_priority_alone() -> None:
    assert probe(0) == (BASE, BASE)


def test_a_process_started_nicer_stays_as_it_is() -> None:
    # Never raised back (that would need a privilege, and an operator chose it).
    started = min(BASE + 12, 19)  # nice -n adds to the current value
    assert probe(5, start=12) == (started, started)
