"""Registered agents for the adversarial tests: each with the credentials Signoff issued it
(its own Redis ACL user on the suite's redis-server, and an API token), and the trusted shared
stream off, as in any deployment with an external Redis."""

from __future__ import annotations

import json
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
from signoff.runtime import Runtime, set_current
from signoff.sdk import Client
from tests.conftest import make_settings, run_intake, run_jobs

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


@pytest.fixture
def srt(redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    """A runtime with the trusted shared stream off."""
    from workers import jobs

    runtime = Runtime(make_settings(redis_url, tmp_path / "data", trusted_stream=False))
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
