"""Real parts for the MCP gateway tests: the Signoff processes (intake, worker, web) against
the suite's Redis, the example warehouse MCP server as the upstream (stdio, or streamable HTTP
in its own process), ``signoff mcp`` started the way a desktop client starts it (stdio) or as
an HTTP server, the ``mcp`` SDK's own ClientSession as the client, and people approving through
Signoff's HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from signoff.agents import AgentRegistry
from signoff.keys import SCOPE_SEP
from signoff.models import Status
from signoff.runtime import Runtime
from signoff.tokens import TokenKind
from tests.conftest import RedisServer, free_port, make_settings, stop_processes, wait_for
from tests.core.test_processes import Stack

ROOT = Path(__file__).resolve().parents[2]
WAREHOUSE = ROOT / "examples" / "mcp" / "warehouse_server.py"
AGENT_NAME = "mcp-test"
AGENT = f"agent:{AGENT_NAME}"

POLICY = """
version: 1
directory:
  people:
    - {email: alice@example.com, name: Alice Anders, groups: [platform]}
    - {email: bob@example.com, name: Bob Brown, groups: [platform]}
    - {email: frank@example.com, name: Frank Fischer}
  groups:
    platform: {description: Platform engineering}
  agents:
    - {id: "agent:mcp-test", owner: frank@example.com}
masking:
  profiles:
    fast: {strategy: redact, ner: false}
defaults:
  reminders: []
  channels: [web]
  masking: {profile: fast}
rules:
  - id: mcp-read-only
    match: {action: "mcp.*", context: {mcp.annotations.readOnlyHint: true}}
    decision: auto_approve
    reason: The MCP tool is read-only.
  - id: mcp-export-quick
    description: Exports time out quickly here (the timed-out test).
    match: {action: "mcp.*.export_rows"}
    when: 'has(params.rows) && int(params.rows) == 7'
    require: {approvers: 1 of platform, timeout: 3s}
  - id: mcp-write
    match: {action: "mcp.*", context: {mcp.annotations.destructiveHint: false}}
    require:
      approvers: 1 of platform
      timeout: 10m
      editable: {rows: {type: integer, minimum: 1, maximum: 1000}}
  - id: adapters
    match: {action: ["langgraph.*", "agents.*"]}
    require:
      approvers: 1 of platform
      editable:
        name: {type: string, maxLength: 40}
        amount: {type: integer, minimum: 1, maximum: 100}
  - id: mcp-destructive
    match: {action: "mcp.*"}
    require: {approvers: 1 of platform, deny_comment: true, timeout: 10m}
default:
  require: {approvers: 1 of platform}
"""


@dataclass
class Env:
    """What a test needs: the stack, a runtime on the same Redis, tokens, files."""

    stack: Stack
    rt: Runtime
    tmp: Path
    policy: Path
    agent_url: str = ""
    tokens: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def record_id(rid: str) -> str:
        """Signoff's id of the agent's request ``rid`` (ids are scoped per agent)."""
        return rid if SCOPE_SEP in rid else f"{AGENT_NAME}{SCOPE_SEP}{rid}"

    @staticmethod
    def agent_id(rid: str) -> str:
        """The id the agent itself knows a request by."""
        return rid.split(SCOPE_SEP, 1)[-1]

    def decide(self, rid: str, who: str, decision: str, comment: str | None = None
               ) -> requests.Response:
        body: dict[str, Any] = {"decision": decision}
        if comment:
            body["comment"] = comment
        return requests.post(f"{self.stack.url}/api/v1/requests/{self.record_id(rid)}/decision",
                             json=body,
                             headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=10)

    def edit(self, rid: str, who: str, params: dict[str, Any]) -> requests.Response:
        """An approver edits editable params and approves the edited version (HTTP API)."""
        return requests.post(f"{self.stack.url}/api/v1/requests/{self.record_id(rid)}/edit",
                             json={"params": params, "approve": True},
                             headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=10)

    async def pending_for(self, action: str, timeout: float = 20,
                          exclude: tuple[str, ...] = ()) -> str:
        """The id of a pending request for ``action`` (not one of ``exclude``); polls without
        blocking the event loop the MCP client runs on."""

        def find() -> str | None:
            for rid in self.rt.store.pending_ids():
                rec = self.rt.store.get(rid, with_votes=False)
                if rec is not None and rec.action == action \
                        and rid not in {self.record_id(x) for x in exclude}:
                    return str(rid)
            return None

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = await asyncio.to_thread(find)
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for a pending {action} request")

    def status(self, rid: str) -> Status | None:
        return self.rt.store.status(self.record_id(rid))


@pytest.fixture(scope="module")
def mcp_env(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[Env]:
    from signoff.redis_conn import connect

    tmp = tmp_path_factory.mktemp("mcp")
    if not redis_server.embedded.alive():
        redis_server.start()
    r = connect(redis_server.url)
    r.flushall()
    r.close()
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    settings = make_settings(redis_server.url, tmp / "data", policy_path=policy,
                             trusted_stream=False)
    rt = Runtime(settings)
    stack = Stack(settings, tmp)
    stack.env["SIGNOFF_POLICY"] = str(policy)
    stack.env["SIGNOFF_TRUSTED_STREAM"] = "0"  # agents use their own credentials only
    stack.start_all()
    # The gateway and the adapters act as a registered agent with its own Redis ACL user.
    creds = AgentRegistry(rt.redis, rt.keys).add(AGENT_NAME, redis_server.url)
    env = Env(stack, rt, tmp, policy, agent_url=creds.redis_url)
    for who in ("alice@example.com", "bob@example.com"):
        env.tokens[who] = rt.tokens.create(TokenKind.PERSON, who)
    yield env
    stack.stop()
    rt.close()


def gateway_config(env: Env, name: str, *, upstream_url: str | None = None,
                   log: Path | None = None, local_policy: bool = True,
                   **wait: float) -> Path:
    """Write a gateway config using the test's Redis and the warehouse upstream."""
    server: dict[str, Any] = {"name": "warehouse", "resource_argument": "table"}
    if upstream_url:
        server["url"] = upstream_url
    else:
        server["command"] = [sys.executable, str(WAREHOUSE)]
        server["env"] = {"WAREHOUSE_LOG": str(log or env.tmp / f"{name}.calls"),
                         "WAREHOUSE_FAULTS": "1"}
    data: dict[str, Any] = {
        "agent": AGENT, "redis_url": env.agent_url,
        "context": {"environment": "prod"}, "servers": [server],
        "wait": {"hold": 30, "hold_with_progress": 60, "progress_interval": 0.5, **wait},
    }
    if local_policy:
        data["policy"] = str(env.policy)
    path = env.tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def calls(path: Path) -> list[dict[str, Any]]:
    """What the warehouse actually ran."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@asynccontextmanager
async def stdio_gateway(config: Path) -> AsyncIterator[ClientSession]:
    """``signoff mcp --config`` started over stdio by the real MCP client."""
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "workers.cli", "mcp", "--config", str(config)],
                                   cwd=str(ROOT))
    async with AsyncExitStack() as stack:
        read, write = await stack.enter_async_context(stdio_client(params))
        session = await stack.enter_async_context(ClientSession(read, write))
        await asyncio.wait_for(session.initialize(), 30)
        yield session


@asynccontextmanager
async def http_session(url: str, headers: dict[str, str] | None = None
                       ) -> AsyncIterator[ClientSession]:
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        read, write = await stack.enter_async_context(
            streamable_http_client(url, http_client=http))
        session = await stack.enter_async_context(ClientSession(read, write))
        await asyncio.wait_for(session.initialize(), 30)
        yield session


def _port_open(port: int) -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def http_upstream(mcp_env: Env) -> Iterator[tuple[str, Path]]:
    """The warehouse as a streamable-HTTP server in its own process."""
    port = free_port()
    log = mcp_env.tmp / f"http-upstream-{port}.calls"
    proc = subprocess.Popen([sys.executable, str(WAREHOUSE), "--http", f"127.0.0.1:{port}"],
                            env={"WAREHOUSE_LOG": str(log), "WAREHOUSE_FAULTS": "1",
                                 "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: _port_open(port), timeout=30, message="HTTP upstream")
    yield f"http://127.0.0.1:{port}/mcp", log
    stop_processes([proc], 10)


def start_http_gateway(env: Env, upstream_url: str, **extra: Any
                       ) -> tuple[str, subprocess.Popen[bytes]]:
    """``signoff mcp --http`` in front of ``upstream_url``; extra config keys in ``extra``."""
    config = gateway_config(env, f"http-gw-{time.monotonic_ns()}", upstream_url=upstream_url)
    if extra:
        data = yaml.safe_load(config.read_text())
        config.write_text(yaml.safe_dump({**data, **extra}))
    port = free_port()
    with open(env.tmp / f"gateway-{port}.log", "ab") as errlog:
        proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "mcp", "--config",
                                 str(config), "--http", f"127.0.0.1:{port}"], cwd=ROOT,
                                stdout=errlog, stderr=subprocess.STDOUT)
    wait_for(lambda: _port_open(port), timeout=30, message="HTTP gateway")
    return f"http://127.0.0.1:{port}/mcp", proc


@pytest.fixture
def http_gateway(mcp_env: Env, http_upstream: tuple[str, Path]) -> Iterator[str]:
    """``signoff mcp --http`` in front of the HTTP upstream."""
    url, proc = start_http_gateway(mcp_env, http_upstream[0])
    yield url
    stop_processes([proc], 10)


def text_of(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)
