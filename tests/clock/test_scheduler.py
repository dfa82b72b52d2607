"""rq's real scheduler in a real worker process (short real delays), and a worker that is
down across a deadline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rq.scheduler import SCHEDULER_KEY_TEMPLATE, RQScheduler

from signoff import lifecycle
from signoff.models import Decision, Status
from signoff.runtime import Runtime
from tests.clock.conftest import request_body
from tests.conftest import ROOT, TEST_SECRETS, run_intake, wait_for
from workers.worker import reclaim_scheduler_lock


class WorkerProcess:
    """``signoff worker`` as its own process group (so a kill takes its scheduler too)."""

    def __init__(self, rt: Runtime, log: Path) -> None:
        s = rt.settings
        env = {**os.environ, "REDIS_URL": s.redis_url or "", "SIGNOFF_POLICY": str(s.policy_path),
               "SIGNOFF_DATA_DIR": str(s.data_dir), "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
               "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
               "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"], "LOG_LEVEL": "INFO"}
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"], env=env,
                                     cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workers(crt: Runtime, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for w in started:
        w.stop()
    for w in started:
        if w.proc.returncode not in (0, -signal.SIGKILL, -signal.SIGTERM, None):
            print(w.log.read_text()[-3000:])


def send(rt: Runtime, rid: str, action: str = "fast.export") -> None:
    rt.redis.xadd(rt.keys.requests, {"body": json.dumps(request_body(rid, action))})
    assert run_intake(rt) == 1


def decision(rt: Runtime, rid: str) -> Decision | None:
    raw = rt.redis.lindex(rt.keys.reply(rid), 0)
    return Decision.model_validate_json(raw) if raw else None


def test_rq_scheduler_fires_reminder_escalation_then_timeout(
        crt: Runtime, workers: list[WorkerProcess], tmp_path: Path) -> None:
    workers.append(WorkerProcess(crt, tmp_path / "worker.log"))
    send(crt, "s-1")
    got = wait_for(lambda: decision(crt, "s-1"), timeout=40, message="the timed-out reply")
    assert got.status is Status.TIMED_OUT and got.grant is None
    trail = {e.event: e for e in crt.audit.for_request("s-1")}
    order = [e.event for e in crt.audit.for_request("s-1")
             if e.event in ("prepared", "reminded", "escalated", "expired")]
    assert order == ["prepared", "reminded", "escalated", "expired"]
    deadline = trail["prepared"].details["deadline"]
    assert trail["expired"].ts >= deadline  # never early
    assert trail["expired"].ts < deadline + 3  # the scheduler, not the janitor's sweep
    assert crt.store.get("s-1").json("extra_groups") == ["admins"]


def test_worker_down_across_the_deadline_times_out_after_restart(
        crt: Runtime, workers: list[WorkerProcess], tmp_path: Path) -> None:
    first = WorkerProcess(crt, tmp_path / "first.log")
    workers.append(first)
    send(crt, "s-2")
    wait_for(lambda: crt.store.status("s-2") is Status.PENDING, timeout=30,
             message="the request to be pending")
    first.kill()  # SIGKILL, worker and scheduler: nothing releases the scheduler lock
    deadline = crt.store.get("s-2").deadline
    time.sleep(max(deadline - time.time(), 0) + 1.0)
    assert crt.store.status("s-2") is Status.PENDING  # nobody was there to time it out
    assert decision(crt, "s-2") is None
    workers.append(WorkerProcess(crt, tmp_path / "second.log"))
    got = wait_for(lambda: decision(crt, "s-2"), timeout=30,
                   message="the timed-out reply after the restart")
    assert got.status is Status.TIMED_OUT
    assert [e.event for e in crt.audit.for_request("s-2")].count("expired") == 1


def test_a_dead_schedulers_lock_is_released_a_live_one_is_not(crt: Runtime) -> None:
    lock = RQScheduler.get_locking_key(crt.keys.queue)

    def plant(name: str, beat_age: float) -> None:
        beat = (datetime.now(tz=UTC) - timedelta(seconds=beat_age)).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        crt.redis.set(lock, name, ex=60)
        crt.redis.hset(SCHEDULER_KEY_TEMPLATE % name, "last_heartbeat", beat)

    plant("alive", 2)
    assert not reclaim_scheduler_lock(crt)
    assert crt.redis.get(lock) == "alive"
    plant("dead", 40)
    assert reclaim_scheduler_lock(crt)
    assert crt.redis.get(lock) is None
    assert not reclaim_scheduler_lock(crt)  # nothing to release


def test_restart_catches_up_without_any_scheduler(crt: Runtime) -> None:
    """``catch_up`` alone (what a starting worker runs) times out what came due."""
    send(crt, "s-3")
    assert lifecycle.prepare(crt, "s-3", now=time.time() - 10) == "pending"
    assert lifecycle.catch_up(crt) == 1
    assert crt.store.status("s-3") is Status.TIMED_OUT
