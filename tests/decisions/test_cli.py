"""``signoff standing list|revoke`` and ``signoff delegation add|list|revoke`` through the real
command line (audited; a revoked standing approval stops the next request at once)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from signoff import lifecycle
from signoff.runtime import Runtime
from tests.conftest import TEST_SECRETS, run_jobs
from tests.decisions.conftest import export, make_pending
from workers.cli import main as cli_main


def run(rt: Runtime, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"REDIS_URL": rt.settings.redis_url, "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
           "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
           "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
           "SIGNOFF_POLICY": str(rt.settings.policy_path),
           "SIGNOFF_DATA_DIR": str(tmp_path / "cli-data")}
    result = CliRunner().invoke(cli_main, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_standing_and_delegation_commands(rt: Runtime, tmp_path: Path) -> None:
    make_pending(rt, export("c-1"))
    directory = rt.policy.directory
    for who in ("alice@example.com", "bob@example.com"):
        assert lifecycle.submit_vote(rt, "c-1", directory.person(who), "approve",
                                     standing=3600).ok
    run_jobs(rt)
    code, out = run(rt, tmp_path, "standing", "list", "--json")
    assert code == 0, out
    [item] = [json.loads(line) for line in out.splitlines()]
    assert item["approvers"] == ["alice@example.com", "bob@example.com"] and item["active"]
    code, out = run(rt, tmp_path, "standing", "list")
    assert "by @alice, @bob  until" in out
    assert make_pending(rt, export("c-2")) == ["approved"]
    code, out = run(rt, tmp_path, "standing", "revoke", item["id"], "--by", "ops@example.com")
    assert code == 0 and "revoked" in out, out
    assert make_pending(rt, export("c-3")) == ["pending"]
    assert [e.actor for e in rt.audit.for_request("c-1") if e.event == "standing_revoked"] == [
        "ops@example.com"]
    code, out = run(rt, tmp_path, "standing", "revoke", "st-0000")
    assert code != 0 and "no standing approval" in out

    code, out = run(rt, tmp_path, "delegation", "add", "--from", "alice@example.com", "--to",
                    "dave@example.com", "--for", "8h", "--reason", "holiday")
    assert code == 0 and "dave@example.com decides for alice@example.com" in out, out
    did = out.split(":")[0]
    code, out = run(rt, tmp_path, "delegation", "list", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == [did]
    assert lifecycle.submit_vote(rt, "c-3", directory.person("dave@example.com"), "approve",
                                 for_person="alice@example.com").ok
    code, out = run(rt, tmp_path, "delegation", "add", "--from", "alice@example.com", "--to",
                    "alice@example.com", "--for", "1h")
    assert code != 0 and "themselves" in out
    code, out = run(rt, tmp_path, "delegation", "revoke", did)
    assert code == 0
    code, out = run(rt, tmp_path, "delegation", "list")
    assert "no delegations" in out
