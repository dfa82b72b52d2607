"""Child processes, kept running: the Procfile's processes for ``signoff run`` and the demo,
and each worker's delivery process (:mod:`workers.delivery_process`).

A child that dies is restarted with a back-off per child that resets once it has run
healthy; stopping sends SIGTERM and waits, then kills what is left.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from typing import IO

from signoff.settings import Settings

log = logging.getLogger(__name__)


def child_environment(settings: Settings) -> dict[str, str]:
    """Environment for child processes: the same Redis and the same secrets."""
    env = dict(os.environ)
    assert settings.redis_url
    env["REDIS_URL"] = settings.redis_url
    env["SIGNOFF_DATA_DIR"] = str(settings.data_dir)
    env["SIGNOFF_POLICY"] = str(settings.policy_path)
    if settings.trusted_stream is not None:
        env["SIGNOFF_TRUSTED_STREAM"] = "1" if settings.trusted_stream else "0"
    for field, name in (("hmac_secret", "SIGNOFF_HMAC_SECRET"), ("data_keys", "SIGNOFF_DATA_KEYS"),
                        ("masking_key", "SIGNOFF_MASKING_KEY")):
        value = getattr(settings, field)
        if value is not None:
            env[name] = value.get_secret_value()
    return env


PROCESSES = ("web", "worker", "intake")


class Supervisor:
    """Runs the Procfile's processes as children and restarts one that dies."""

    def __init__(self, settings: Settings, processes: tuple[str, ...] = PROCESSES,
                 quiet: bool = False, args: tuple[str, ...] = (),
                 stdin: int | None = None) -> None:
        self.env = child_environment(settings)
        self.processes = processes
        self.args = args  # after each command's name
        self.stdin = stdin  # subprocess.PIPE: each child reads what the parent writes
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stopping = False
        self.quiet = quiet
        self.log_dir = settings.data_dir / "logs"
        self.started: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.restart_at: dict[str, float] = {}

    def _spawn(self, name: str) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "workers.cli", name, *self.args]
        out: IO[bytes] | None = None
        if self.quiet:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
        return subprocess.Popen(cmd, env=self.env, stdin=self.stdin, stdout=out,
                                stderr=subprocess.STDOUT if out is not None else None)

    def child(self, name: str) -> subprocess.Popen[bytes] | None:
        """The running child ``name`` (None between a death and its restart)."""
        proc = self.children.get(name)
        return proc if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        for name in self.processes:
            self.children[name] = self._spawn(name)
            self.started[name] = time.monotonic()

    # A child that keeps dying is restarted after 1, 2, 4 ... 60 s; one that then runs for
    # HEALTHY_AFTER seconds is healthy again, and its next crash restarts it after 1 s.
    BACKOFF_FIRST = 1.0
    BACKOFF_MAX = 60.0
    HEALTHY_AFTER = 30.0

    def watch_once(self, now: float | None = None) -> None:
        """Restart any child that exited while we are not stopping (with a back-off per
        child that resets once it has run healthy); never blocks."""
        now = time.monotonic() if now is None else now
        for name, proc in list(self.children.items()):
            if self.stopping:
                return
            started = self.started.get(name, now)
            if proc.poll() is None:
                if now - started >= self.HEALTHY_AFTER:
                    self.backoff.pop(name, None)
                continue
            due = self.restart_at.get(name)
            if due is None:
                if now - started >= self.HEALTHY_AFTER:
                    self.backoff.pop(name, None)
                delay = self.backoff.get(name, self.BACKOFF_FIRST)
                self.backoff[name] = min(delay * 2, self.BACKOFF_MAX)
                self.restart_at[name] = now + delay
                log.warning("%s exited with %s; restarting in %.0fs", name, proc.returncode,
                            delay)
                continue
            if now >= due:
                del self.restart_at[name]
                self.children[name] = self._spawn(name)
                self.started[name] = now

    def stop(self, timeout: float = 15) -> None:
        self.stopping = True
        for proc in self.children.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.children.values():
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
