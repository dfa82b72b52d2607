"""Shared helpers for benchmarks: a private Redis, the Signoff processes, timing summaries."""

from __future__ import annotations

import gc
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from signoff.redis_conn import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "SIGNOFF_HMAC_SECRET": "bench-hmac-secret-0123456789abcdef",
    "SIGNOFF_DATA_KEYS": "k1:" + "B" * 43,
    "SIGNOFF_MASKING_KEY": "bench-masking-key-0123456789abcdef",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(round(p / 100 * (len(ordered) - 1)), len(ordered) - 1)
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99),
            "max": max(values) if values else float("nan"),
            "mean": statistics.fmean(values) if values else float("nan")}


def freeze_heap() -> None:
    """Before a timed phase: exempt what the benchmark's own process holds (its fakes keep
    every message posted) from garbage collection. A full collection of that heap stalled the
    load generator for about 100 ms, and the clicks it was timing looked that much slower."""
    gc.collect()
    gc.freeze()


def wait_until(pred: Callable[[], Any], timeout: float, what: str,
               every: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(every)
    raise SystemExit(f"benchmark gave up waiting for {what} after {timeout}s")


class BenchStack:
    """A throwaway Redis plus Signoff processes in a temp folder."""

    def __init__(self, policy: str, env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="signoff-bench-"))
        self.redis = EmbeddedRedis(self.dir / "data", port=free_port())
        self.policy = self.dir / "policy.yaml"
        self.policy.write_text(policy)
        self.port = free_port()
        self.extra_env = env or {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNOFF_", "SLACK_",
                                                                         "MICROSOFT_"))}
        return {**base, **SECRETS, "REDIS_URL": self.redis.url, "SIGNOFF_POLICY": str(self.policy),
                "SIGNOFF_DATA_DIR": str(self.dir / "data"), "PORT": str(self.port),
                "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT),
                # The benches' agents speak request v1 on the shared stream (trusted mode).
                "SIGNOFF_TRUSTED_STREAM": "1", **self.extra_env}

    def start_redis(self) -> str:
        return self.redis.start()

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.dir / f"{args[0]}-{len(self.procs)}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", *args], env=self.env(), cwd=self.dir,
                                stdout=log, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def start_signoff(self, workers: int = 1, web: bool = True) -> None:
        self.spawn("workers.cli", "intake")
        for _ in range(workers):
            self.workers.append(self.spawn("workers.cli", "worker"))
        if web:
            self.spawn("workers.cli", "web")
            wait_until(self._web_up, 60, "web")

    def worker_pids(self) -> list[int]:
        """The running workers and every process they started (each one's delivery process
        and rq's scheduler): a worker's CPU is theirs together."""
        pids = [p.pid for p in self.workers if p.poll() is None]
        out: list[int] = []
        while pids:
            pid = pids.pop()
            out.append(pid)
            for task in Path(f"/proc/{pid}/task").glob("*/children"):
                try:
                    pids += [int(c) for c in task.read_text().split()]
                except OSError:
                    continue
        return out

    def set_workers(self, n: int) -> None:
        """Run exactly ``n`` worker processes (stopping or starting some)."""
        while len(self.workers) > n:
            proc = self.workers.pop()
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        while len(self.workers) < n:
            self.workers.append(self.spawn("workers.cli", "worker"))

    def _web_up(self) -> bool:
        try:
            return requests.get(self.url + "/healthz", timeout=1).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()
        self.redis.stop()


def noop(i: int) -> int:
    """The baseline rq job: does nothing (what an rq round trip costs by itself)."""
    return i
