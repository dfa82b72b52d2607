"""The gateway's configuration file and command line: a bad setup is one line and an exit,
never a traceback, and nothing starts listening beyond loopback without a token."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from signoff.mcp.config import ConfigError, load_config
from tests.mcp.conftest import ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gw.yaml"
    path.write_text(text)
    return path


def test_a_good_file_resolves_paths_and_environment(tmp_path: Path) -> None:
    path = write(tmp_path, """
agent: agent:claude-desktop
redis_url: ${AGENT_URL}
policy: policy.yaml
servers:
  - {name: warehouse, command: [python, server.py], cwd: sub, resource_argument: table}
  - {name: tickets, url: "http://127.0.0.1:9000/mcp"}
""")
    config = load_config(path, {"AGENT_URL": "redis://u:p@127.0.0.1:6379/0"})
    assert config.redis_url == "redis://u:p@127.0.0.1:6379/0"
    assert config.policy == tmp_path / "policy.yaml"
    assert config.servers[0].cwd == tmp_path / "sub"
    assert config.servers[0].resource_for("drop", {"table": "orders"}) == "orders"
    assert config.servers[1].resource_for("drop", {"table": "orders"}) == "tickets"


@pytest.mark.parametrize(("text", "message"), [
    ("agent: a\nservers: []\n", "servers"),
    ("agent: a\nservers:\n  - {name: x}\n", "exactly one of command"),
    ("agent: a\nservers:\n  - {name: x, command: [a], url: 'http://h/mcp'}\n",
     "exactly one of command"),
    ("agent: a\nservers:\n  - {name: x, url: 'ftp://h'}\n", "http://"),
    ("agent: a\nservers:\n  - {name: x, command: [a]}\n  - {name: x, command: [b]}\n", "unique"),
    ("agent: a\nredis_url: ${NOPE}\nservers:\n  - {name: x, command: [a]}\n", "${NOPE}"),
    ("agent: a\nservers: [\n", "not valid YAML"),
    ("agent: a\nserverz: []\n", "serverz"),
    ("- just a list\n", "mapping"),
])
def test_bad_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text), {})
    assert message in str(err.value) and "\n" not in str(err.value)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workers.cli", "mcp", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize(("extra", "message"), [
    ((), "no Redis URL"),
    (("--http", "0.0.0.0:8765", "--redis-url", "redis://127.0.0.1:1/0"), "http_token"),
    (("--http", "nonsense"), "HOST:PORT"),
])
def test_the_command_refuses_a_bad_setup_in_one_line(tmp_path: Path, extra: tuple[str, ...],
                                                     message: str) -> None:
    path = write(tmp_path, "agent: agent:x\nservers:\n  - {name: w, command: [python]}\n")
    done = _cli("--config", str(path), *extra)
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""  # stdout is the MCP channel


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    done = _cli("--config", str(tmp_path / "nope.yaml"))
    assert done.returncode == 1 and "cannot read" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("annotations", "rule"), [
    ({"readOnlyHint": True}, "mcp-read-only — auto-approved"),
    ({"readOnlyHint": False, "destructiveHint": False}, "mcp-write — 1 of platform"),
    ({"readOnlyHint": False, "destructiveHint": True}, "mcp-destructive — 1 of platform"),
    ({}, "mcp-destructive — 1 of platform"),  # MCP's default: not read-only, destructive
])
def test_policy_explain_for_mcp_actions_with_the_example_policy(
        tmp_path: Path, annotations: dict, rule: str) -> None:
    import json

    request = {"id": "mcp-1", "action": "mcp.warehouse.drop_table", "resource": "customers",
               "params": {"table": "customers"}, "requester": "agent:claude-desktop",
               "context": {"environment": "prod", "mcp": {
                   "server": "warehouse", "tool": "drop_table", "annotations": annotations}}}
    path = tmp_path / "request.json"
    path.write_text(json.dumps(request))
    done = subprocess.run([sys.executable, "-m", "workers.cli", "policy", "explain", str(path),
                           "--policy", str(ROOT / "examples" / "policy.yaml")], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert rule in done.stdout.splitlines()[0], done.stdout
