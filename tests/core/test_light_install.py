"""The agent SDK installs light: the repository's wheel, installed without extras into a fresh
virtualenv, brings none of the server's weight, and an agent using it gets a decision and a
verified grant from a real Signoff (the suite's redis-server; the service side runs here, in
the suite's own environment).

Slow (it builds a wheel and installs its few dependencies from the package index): about a
minute, most of it pip.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from signoff.runtime import Runtime
from tests.conftest import ROOT, run_intake, run_jobs

pytestmark = pytest.mark.slow

# Distributions (and their import names) only the server may bring.
SERVER_WEIGHT = {"spacy": "spacy", "thinc": "thinc", "botbuilder-core": "botbuilder",
                 "slack-bolt": "slack_bolt", "presidio-analyzer": "presidio_analyzer",
                 "presidio-anonymizer": "presidio_anonymizer", "playwright": "playwright"}
# What the wheel needs to build: the project's sources, never the suite or a .venv.
SOURCES = ("pyproject.toml", "README.md", "signoff", "bot", "workers", "policy")
PIP_TIMEOUT = 240

AGENT = textwrap.dedent("""
    import json, sys
    import signoff
    from signoff import AsyncClient, Client, requires_approval  # the SDK's public names
    from signoff.grant_check import check_grant  # grant checking ships with it

    url, request_id = sys.argv[1], sys.argv[2]
    # A registered agent's own URL carries its identity; the shared stream names a requester.
    client = Client(url) if "@" in url else Client(url, requester="agent:light")
    params = {"version": "2.0.1", "replicas": 2}
    handle = client.request("deploy.service", "checkout-api", params,
                            context={"environment": "dev"}, id=request_id)
    decision = handle.wait(60)
    client.verify_grant(decision, "deploy.service", "checkout-api", params)
    print(json.dumps({"status": decision.status, "grant": bool(decision.grant),
                      "modules": sorted(m for m in sys.modules if m.split(".")[0] in {MODULES})}))
""")


def run(cmd: list[str], cwd: Path, timeout: float = PIP_TIMEOUT) -> str:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={k: v for k, v in os.environ.items()
                                 if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHON"))})
    assert result.returncode == 0, f"{cmd}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtualenv with the wheel installed, no extras."""
    work = tmp_path_factory.mktemp("light")
    src = work / "src"
    src.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(work / "dist"),
         str(src)], cwd=work)
    wheels = list((work / "dist").glob("signoff-*.whl"))
    assert len(wheels) == 1, wheels
    venv = work / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=work)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
         "--disable-pip-version-check", str(wheels[0])], cwd=work)
    return venv


def test_wheel_without_extras_has_none_of_the_server_weight(light_venv: Path) -> None:
    listed = json.loads(run([str(light_venv / "bin" / "python"), "-m", "pip", "list",
                             "--format", "json", "--disable-pip-version-check"], cwd=light_venv))
    installed = {d["name"].lower().replace("_", "-") for d in listed}
    assert "signoff" in installed
    assert not installed & set(SERVER_WEIGHT), installed & set(SERVER_WEIGHT)
    assert not any(name.startswith(("botbuilder", "presidio", "slack-")) for name in installed)
    modules = sorted(set(SERVER_WEIGHT.values()))
    probe = (f"import importlib.util, json; print(json.dumps([m for m in {modules!r} "
             "if importlib.util.find_spec(m)]))")
    found = json.loads(run([str(light_venv / "bin" / "python"), "-c", probe], cwd=light_venv))
    assert found == []


@pytest.mark.parametrize("credentials", ["registered agent", "trusted shared stream"])
def test_an_agent_on_the_light_install_gets_a_decision_and_a_verified_grant(
        light_venv: Path, rt: Runtime, tmp_path: Path, credentials: str) -> None:
    from signoff.agents import AgentRegistry

    script = tmp_path / "agent.py"
    script.write_text(AGENT.replace("{MODULES}", repr(set(SERVER_WEIGHT.values()))))
    assert rt.settings.redis_url
    url = rt.settings.redis_url
    if credentials == "registered agent":
        # Its own Redis ACL user, confined to its namespace (what `signoff agent add` prints).
        url = AgentRegistry(rt.redis, rt.keys).add("light", url).redis_url
    agent = subprocess.Popen([str(light_venv / "bin" / "python"), str(script),
                              url, "req-light-1"], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # The service side (intake, then the jobs) runs here until the agent has its answer.
        deadline = time.monotonic() + 60
        while agent.poll() is None and time.monotonic() < deadline:
            run_intake(rt)
            run_jobs(rt)
            time.sleep(0.1)
        out, err = agent.communicate(timeout=10)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait(5)
    assert agent.returncode == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"status": "approved", "grant": True, "modules": []}


def test_the_agent_cli_runs_light_and_server_commands_say_what_is_missing(
        light_venv: Path, rt: Runtime, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNOFF_", "REDIS_URL"))}
    env["REDIS_URL"] = str(rt.settings.redis_url)
    signoff = str(light_venv / "bin" / "signoff")
    sent = subprocess.run([signoff, "request", "deploy.service", "checkout-api", "--requester",
                           "agent:light", "--env", "dev", "--id", "req-light-cli", "--no-wait"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "req-light-cli"
    assert run_intake(rt) >= 1
    # A service command on the agent-only install: one line, exit 2, no traceback.
    served = subprocess.run([signoff, "worker"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60)
    assert served.returncode == 2, (served.stdout, served.stderr)
    assert "Traceback" not in served.stderr
    assert "pip install 'signoff[server]'" in served.stderr
