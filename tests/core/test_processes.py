"""The whole lifecycle through real processes: ``signoff intake``, ``signoff worker`` and
``signoff web`` as children, an agent using the SDK, approvers using the HTTP API. Then the
faults: a worker SIGKILLed mid-job, Redis restarted mid-flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from rq.registry import StartedJobRegistry

from signoff.models import Status
from signoff.runtime import Runtime
from signoff.sdk import Client, requires_approval
from signoff.settings import Settings
from signoff.tokens import TokenKind
from tests.conftest import (
    EXAMPLE_POLICY,
    TEST_SECRETS,
    RedisServer,
    free_port,
    stop_processes,
    wait_for,
)
from tests.core.test_smoke_lifecycle import export_request

pytestmark = pytest.mark.slow


class Stack:
    """The three Procfile processes against the suite's Redis."""

    def __init__(self, settings: Settings, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SIGNOFF_", "SLACK_",
                                                                       "MICROSOFT_"))},
            "REDIS_URL": str(settings.redis_url),
            "SIGNOFF_POLICY": str(EXAMPLE_POLICY),
            "SIGNOFF_TRUSTED_STREAM": "1",  # these agents speak request v1 (shared stream)
            "SIGNOFF_DATA_DIR": str(workdir / "data"),
            "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
            "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
            "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
            "SIGNOFF_REPAIR_AFTER": "2",
            "SIGNOFF_WORKER_MAINTENANCE_INTERVAL": "2",
            "PORT": str(self.port),
            "LOG_LEVEL": "WARNING",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "workers.cli", name], env=self.env,
                                cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        for name in ("intake", "worker", "web"):
            self.start(name)
        wait_for(self.web_ready, timeout=30, message="web /healthz")

    def web_ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[name]
        proc.send_signal(sig)
        proc.wait(15)

    def stop(self) -> None:
        stop_processes(self.procs.values(), 15)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}"
                         for p in sorted(self.workdir.glob("*.log")))


def distinct(rid: str, i: int) -> dict:
    """A request whose payload differs from its neighbours' (identical ones would merge)."""
    return export_request(rid, params={"rows": 1000 + i})


@pytest.fixture
def stack(rt: Runtime, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(rt.settings, tmp_path)
    s.start_all()
    yield s
    s.stop()


def approve(stack: Stack, rid: str, token: str) -> requests.Response:
    return requests.post(f"{stack.url}/api/v1/requests/{rid}/decision",
                         json={"decision": "approve"},
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)


def test_agent_decorator_runs_only_after_two_dbas_approve(rt: Runtime, stack: Stack) -> None:
    alice = rt.tokens.create(TokenKind.PERSON, "alice@example.com")
    bob = rt.tokens.create(TokenKind.PERSON, "bob@example.com")
    client = Client(rt.settings.redis_url, requester="agent:export-bot")
    ran: list[int] = []

    @requires_approval("db.export", client=client, resource="warehouse.customers",
                       on_behalf_of="frank@example.com", reason="quarterly report",
                       context={"environment": "prod"}, timeout=60)
    def export(rows: int, notify: str) -> int:
        ran.append(rows)
        return rows

    def approvers() -> None:
        rid = wait_for(lambda: rt.store.pending_ids(), timeout=30, message="pending request")[0]
        assert approve(stack, rid, alice).status_code == 200
        assert approve(stack, rid, bob).status_code == 200

    t = threading.Thread(target=approvers, daemon=True)
    t.start()
    try:
        assert export(5000, notify="jane@example.org") == 5000
    except Exception:
        print(stack.logs())
        raise
    t.join(10)
    assert ran == [5000]
    # The grant was consumed: the same decision cannot run twice.
    assert rt.redis.keys(rt.keys.grant_used("*"))


def test_card_traffic_yields_the_cpu_to_decisions(stack: Stack) -> None:
    """The worker and the delivery process it starts run at SIGNOFF_WORKER_NICE (10 by
    default), so on a shared machine the web's decisions get the cores first; the web and
    the intake keep the priority they were started with."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    background = max(base, 10)
    worker = stack.procs["worker"].pid

    def delivery_child() -> int | None:
        for task in Path(f"/proc/{worker}/task").glob("*/children"):
            try:
                for pid in task.read_text().split():
                    if b"delivery" in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0"):
                        return int(pid)
            except OSError:  # a thread or child that just ended
                continue
        return None

    child = wait_for(delivery_child, timeout=30, message="the worker's delivery process")
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, worker) == background, timeout=30,
             message="the worker at its nice value")
    wait_for(lambda: os.getpriority(os.PRIO_PROCESS, child) == background, timeout=30,
             message="the delivery process at its nice value")
    assert os.getpriority(os.PRIO_PROCESS, stack.procs["web"].pid) == base
    assert os.getpriority(os.PRIO_PROCESS, stack.procs["intake"].pid) == base


def test_worker_sigkilled_mid_job_loses_nothing(rt: Runtime, stack: Stack) -> None:
    n = 20
    for i in range(n):
        rt.redis.xadd(rt.keys.requests, {"body": json.dumps(distinct(f"k-{i}", i))})
    registry = StartedJobRegistry(rt.keys.queue, connection=rt.redis_bytes)
    wait_for(lambda: registry.count > 0, timeout=30, interval=0.001, message="a job in flight")
    stack.kill("worker")
    stack.start("worker")
    try:
        wait_for(lambda: rt.store.count_pending() == n, timeout=60, message="all pending")
    except AssertionError:
        print(stack.logs())
        raise
    alice = rt.tokens.create(TokenKind.PERSON, "alice@example.com")
    bob = rt.tokens.create(TokenKind.PERSON, "bob@example.com")
    for i in range(n):
        assert approve(stack, f"k-{i}", alice).status_code == 200
        assert approve(stack, f"k-{i}", bob).status_code == 200
    wait_for(lambda: all(rt.redis.llen(rt.keys.reply(f"k-{i}")) for i in range(n)),
             timeout=60, message="every reply")
    assert [rt.redis.llen(rt.keys.reply(f"k-{i}")) for i in range(n)] == [1] * n
    assert rt.redis.xlen(rt.keys.decisions) == n


def test_redis_restart_mid_flight_loses_nothing(rt: Runtime, stack: Stack,
                                                redis_server: RedisServer) -> None:
    for i in range(10):
        rt.redis.xadd(rt.keys.requests, {"body": json.dumps(distinct(f"a-{i}", i))})
    redis_server.restart()  # SIGTERM: the AOF is flushed; the processes must reconnect
    for i in range(10):
        rt.redis.xadd(rt.keys.requests, {"body": json.dumps(distinct(f"b-{i}", 100 + i))})
    try:
        wait_for(lambda: rt.store.count_pending() == 20, timeout=60, message="all pending")
    except AssertionError:
        print(stack.logs())
        raise
    alice = rt.tokens.create(TokenKind.PERSON, "alice@example.com")
    bob = rt.tokens.create(TokenKind.PERSON, "bob@example.com")
    ids = [f"a-{i}" for i in range(10)] + [f"b-{i}" for i in range(10)]
    for rid in ids[:10]:
        approve(stack, rid, alice)
    redis_server.restart()
    wait_for(stack.web_ready, timeout=30, message="web back")
    for rid in ids[:10]:
        assert approve(stack, rid, bob).status_code == 200
    try:
        wait_for(lambda: all(rt.redis.llen(rt.keys.reply(r)) for r in ids[:10]), timeout=60,
                 message="replies")
    except AssertionError:
        print(stack.logs())
        raise
    assert all(rt.store.status(r) is Status.APPROVED for r in ids[:10])
    assert all(rt.store.status(r) is Status.PENDING for r in ids[10:])
    assert rt.redis.xlen(rt.keys.decisions) == 10


def test_registered_agent_through_real_processes(rt: Runtime, tmp_path: Path) -> None:
    """With the trusted stream off (as with any external Redis), an agent registered while
    the processes run asks with nothing but its own Redis URL: the running intake picks its
    stream up from the registry, people approve over the API, and the decorator verifies and
    consumes the grant under the agent's ACL."""
    from signoff.agents import AgentRegistry

    s = Stack(rt.settings, tmp_path)
    s.env["SIGNOFF_TRUSTED_STREAM"] = "0"
    s.start_all()
    registry = AgentRegistry(rt.redis, rt.keys)
    try:
        creds = registry.add("export-bot", rt.settings.redis_url or "")
        alice = rt.tokens.create(TokenKind.PERSON, "alice@example.com")
        bob = rt.tokens.create(TokenKind.PERSON, "bob@example.com")
        client = Client(creds.redis_url)

        @requires_approval("db.export", client=client, resource="warehouse.customers",
                           on_behalf_of="frank@example.com", reason="quarterly report",
                           context={"environment": "prod"}, timeout=60)
        def export(rows: int) -> int:
            return rows

        def approvers() -> None:
            rid = wait_for(lambda: rt.store.pending_ids(), timeout=30,
                           message="pending request")[0]
            assert rid.startswith("export-bot~")
            assert rt.store.get(rid).requester == "agent:export-bot"  # type: ignore[union-attr]
            assert approve(s, rid, alice).status_code == 200
            assert approve(s, rid, bob).status_code == 200

        t = threading.Thread(target=approvers, daemon=True)
        t.start()
        try:
            assert export(7) == 7
        except Exception:
            print(s.logs())
            raise
        t.join(10)
        # The shared stream is not read: a body there naming the agent stays unanswered.
        rt.redis.xadd(rt.keys.requests, {"body": json.dumps(export_request("spoof-1"))})
        wait_for(lambda: rt.redis.xlen(rt.keys.agent("export-bot").decisions) == 1, timeout=10,
                 message="the agent's decision")
        threading.Event().wait(3)  # several intake rounds
        assert rt.store.get("spoof-1") is None
    finally:
        for name in registry.names():
            registry.remove(name)
        s.stop()
