"""A misconfigured process says what is wrong, one line per problem, and exits 2 before doing
anything: real ``signoff`` subprocesses with bad environments (never a traceback, never a
secret echoed). Also ``signoff secrets`` (its block is accepted as printed) and
``signoff web --port 0``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.conftest import EXAMPLE_POLICY, TEST_SECRETS

CONFIG_EXIT = 2
SECRETS = {"SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
           "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
           "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"]}
LINE = re.compile(r"^[A-Z][A-Z0-9_]+: \S.*$")


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """The parent's environment without any Signoff setting, plus ``values``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIGNOFF_", "SLACK_", "MICROSOFT_", "REDIS_URL", "PORT", "HOST",
                                "LOG_LEVEL"))}
    env["SIGNOFF_DATA_DIR"] = str(tmp_path / "data")
    env.update(values)
    return env


def signoff(tmp_path: Path, *args: str, timeout: float = 60,
            **env: str) -> subprocess.CompletedProcess[str]:
    # cwd is an empty folder: no .env and no examples/ beside it.
    return subprocess.run([sys.executable, "-m", "workers.cli", *args], cwd=tmp_path,
                          env=clean_env(tmp_path, **env), capture_output=True, text=True,
                          timeout=timeout)


def refused(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The problem lines of a refused start (and the checks every refusal must pass)."""
    assert result.returncode == CONFIG_EXIT, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines and all(LINE.match(line) for line in lines), lines
    return lines


def by_variable(lines: list[str]) -> dict[str, str]:
    return {line.split(":", 1)[0]: line.split(":", 1)[1] for line in lines}


@pytest.mark.parametrize("command", ["web", "worker", "intake", "run"])
def test_missing_secrets_with_an_external_redis(tmp_path: Path, command: str,
                                                redis_url: str) -> None:
    lines = by_variable(refused(signoff(tmp_path, command, REDIS_URL=redis_url,
                                        SIGNOFF_POLICY=str(EXAMPLE_POLICY))))
    assert set(lines) == {"SIGNOFF_HMAC_SECRET", "SIGNOFF_DATA_KEYS", "SIGNOFF_MASKING_KEY"}
    for text in lines.values():
        assert "required with an external REDIS_URL" in text
        assert "signoff secrets" in text


@pytest.mark.parametrize("value, why", [
    ("k1:not base64!", "not URL-safe base64"),
    ("k1:" + "A" * 20, "not 32"),
    ("k1", "not kid:key"),
    (TEST_SECRETS["data_keys"] + "," + TEST_SECRETS["data_keys"], "twice"),
    (",", "no key"),
])
def test_malformed_data_keys_are_refused_before_the_intake_starts(
        tmp_path: Path, redis_url: str, value: str, why: str) -> None:
    result = signoff(tmp_path, "intake", REDIS_URL=redis_url, SIGNOFF_POLICY=str(EXAMPLE_POLICY),
                     **{**SECRETS, "SIGNOFF_DATA_KEYS": value})
    lines = by_variable(refused(result))
    assert list(lines) == ["SIGNOFF_DATA_KEYS"]
    assert why in lines["SIGNOFF_DATA_KEYS"]
    assert "kid:key" in lines["SIGNOFF_DATA_KEYS"]
    # The intake never got as far as its consumer group.
    import redis

    client = redis.Redis.from_url(redis_url)
    assert not client.keys("*"), "a refused process wrote to Redis"


def test_every_problem_at_once_and_no_secret_echoed(tmp_path: Path) -> None:
    short = "short-secret-value"
    result = signoff(tmp_path, "worker",
                     REDIS_URL="http://user:hunter2hunter2@redis.example:6379/0",
                     SIGNOFF_HMAC_SECRET=short, SIGNOFF_MASKING_KEY=short + "2",
                     SIGNOFF_DATA_KEYS="k1:" + "B" * 43, SIGNOFF_PUBLIC_URL="signoff.example.com",
                     SIGNOFF_TEAMS_LOGIN_URL="ftp://login.example", PORT="99999",
                     SIGNOFF_GRANT_TTL="-5", LOG_LEVEL="chatty", SIGNOFF_WORKER_NICE="25",
                     SIGNOFF_POLICY=str(tmp_path / "missing.yaml"))
    lines = by_variable(refused(result))
    assert set(lines) == {"REDIS_URL", "SIGNOFF_HMAC_SECRET", "SIGNOFF_MASKING_KEY", "PORT",
                          "SIGNOFF_PUBLIC_URL", "SIGNOFF_TEAMS_LOGIN_URL", "SIGNOFF_GRANT_TTL",
                          "LOG_LEVEL", "SIGNOFF_POLICY", "SIGNOFF_WORKER_NICE"}
    assert "redis://" in lines["REDIS_URL"]
    assert "at least 32 bytes" in lines["SIGNOFF_HMAC_SECRET"]
    assert "http:// or https://" in lines["SIGNOFF_PUBLIC_URL"]
    assert "missing.yaml does not exist" in lines["SIGNOFF_POLICY"]
    assert "19" in lines["SIGNOFF_WORKER_NICE"]
    assert "hunter2" not in result.stderr and short not in result.stderr


def test_unreadable_policy(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.yaml"
    folder.mkdir()
    lines = by_variable(refused(signoff(tmp_path, "web", SIGNOFF_POLICY=str(folder))))
    assert list(lines) == ["SIGNOFF_POLICY"]
    assert "not a readable file" in lines["SIGNOFF_POLICY"]
    # Default: examples/policy.yaml relative to the working directory, which says where it looked.
    lines = by_variable(refused(signoff(tmp_path, "worker")))
    assert str(tmp_path / "examples" / "policy.yaml") in lines["SIGNOFF_POLICY"]


def test_policy_with_errors_is_refused_with_its_places(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text("version: 1\nrules:\n  - id: x\n    match: {action: 3}\n    bogus: true\n")
    lines = refused(signoff(tmp_path, "intake", SIGNOFF_POLICY=str(bad)))
    assert all(line.startswith(f"SIGNOFF_POLICY: {bad}:") for line in lines), lines
    assert not (tmp_path / "data" / "redis").exists(), "the embedded Redis started anyway"


def test_operator_commands_are_checked_too(tmp_path: Path, redis_url: str) -> None:
    lines = by_variable(refused(signoff(tmp_path, "pending", REDIS_URL=redis_url,
                                        SIGNOFF_POLICY=str(EXAMPLE_POLICY),
                                        **{**SECRETS, "SIGNOFF_MASKING_KEY": "tiny"})))
    assert list(lines) == ["SIGNOFF_MASKING_KEY"]


def test_an_agent_needs_none_of_the_service_secrets(tmp_path: Path, redis_url: str) -> None:
    # `signoff request` is the agent's: a Redis URL is all it needs (no secrets, no policy).
    result = signoff(tmp_path, "request", "db.export", "warehouse", "--requester",
                     "agent:test", "--no-wait", REDIS_URL=redis_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    # ...but a bad URL is still refused in one line.
    lines = by_variable(refused(signoff(tmp_path, "request", "a", "b", "--requester", "x",
                                        REDIS_URL="redis//nowhere")))
    assert list(lines) == ["REDIS_URL"]


def test_secrets_prints_a_block_the_service_accepts(tmp_path: Path, redis_url: str) -> None:
    out = signoff(tmp_path, "secrets")
    assert out.returncode == 0, out.stderr
    values = dict(line.split("=", 1) for line in out.stdout.splitlines()
                  if line and not line.startswith("#"))
    assert set(values) == {"SIGNOFF_HMAC_SECRET", "SIGNOFF_DATA_KEYS", "SIGNOFF_MASKING_KEY"}
    again = signoff(tmp_path, "secrets")
    assert not set(values.values()) & set(again.stdout.split("=")), "secrets repeat"
    # A worker with exactly this block and an external Redis starts (burst: exits when idle).
    run = signoff(tmp_path, "worker", "--burst", REDIS_URL=redis_url,
                  SIGNOFF_POLICY=str(EXAMPLE_POLICY), LOG_LEVEL="WARNING", **values)
    assert run.returncode == 0, run.stderr


def test_web_port_zero_picks_a_free_port_and_prints_it(tmp_path: Path, redis_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "web", "--port", "0"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True,
                            env=clean_env(tmp_path, REDIS_URL=redis_url, LOG_LEVEL="WARNING",
                                          SIGNOFF_POLICY=str(EXAMPLE_POLICY), **SECRETS))
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and "listening" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"no address printed: {line!r}"
        port = int(match.group(1))
        assert port != 0
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_policy_commands_resolve_the_default_policy_or_say_where_they_looked(
        tmp_path: Path) -> None:
    looked = signoff(tmp_path, "policy", "check")
    assert looked.returncode == 1 and "Traceback" not in looked.stderr
    assert "SIGNOFF_POLICY is not set" in looked.stderr
    assert str(tmp_path / "examples" / "policy.yaml") in looked.stderr
    named = signoff(tmp_path, "policy", "rules", SIGNOFF_POLICY=str(tmp_path / "p.yaml"))
    assert named.returncode == 1 and f"SIGNOFF_POLICY names {tmp_path / 'p.yaml'}" in named.stderr
    found = signoff(tmp_path, "policy", "check", SIGNOFF_POLICY=str(EXAMPLE_POLICY))
    assert found.returncode == 0 and "OK" in found.stdout, found.stderr


def test_a_structured_setting_that_is_not_json(tmp_path: Path) -> None:
    lines = by_variable(refused(signoff(tmp_path, "worker", SIGNOFF_AUDIT_SINKS="not json",
                                        SIGNOFF_POLICY=str(EXAMPLE_POLICY))))
    assert list(lines) == ["SIGNOFF_AUDIT_SINKS"] and "JSON" in lines["SIGNOFF_AUDIT_SINKS"]
