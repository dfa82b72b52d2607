"""``signoff agent add | list | acl | rotate | remove`` and ``signoff request`` with the
credentials it printed: the safe set-up is the easy one."""

from __future__ import annotations

import json
from pathlib import Path

import redis
from click.testing import CliRunner

from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import TEST_SECRETS
from workers.cli import main as cli_main


def _env(rt: Runtime, tmp_path: Path, redis_url: str | None = None) -> dict[str, str]:
    return {"REDIS_URL": redis_url or rt.settings.redis_url or "",
            "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
            "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
            "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
            "SIGNOFF_POLICY": str(rt.settings.policy_path),
            "SIGNOFF_DATA_DIR": str(tmp_path / "data")}


def run(rt: Runtime, tmp_path: Path, *args: str, redis_url: str | None = None) -> str:
    result = CliRunner().invoke(cli_main, list(args), env=_env(rt, tmp_path, redis_url))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_agent_lifecycle_from_the_command_line(srt: Runtime, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_main, ["agent", "add", "Agent:CLI-Bot", "--json"],
                                env=_env(srt, tmp_path))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert "not in the policy's directory" in result.stderr
    assert out["agent"] == "cli-bot" and out["requester"] == "agent:cli-bot"
    assert out["api_token"].startswith("so_a_")
    r = redis.Redis.from_url(out["redis_url"], decode_responses=True)
    assert r.ping()
    assert "cli-bot" in run(srt, tmp_path, "agent", "list")
    assert out["api_token"] not in run(srt, tmp_path, "agent", "list")
    acl = run(srt, tmp_path, "agent", "acl", "cli-bot")
    assert "signoff:agent:cli-bot:" in acl and "reset" in acl
    # The agent's own request, with nothing but its URL: the requester comes from it.
    sent = run(srt, tmp_path, "request", "db.export", "warehouse.customers", "--params",
               '{"rows": 1}', "--env", "dev", "--id", "cli-1", "--no-wait",
               redis_url=out["redis_url"])
    assert sent.strip() == "cli-1"
    from tests.security.agents_helpers import drive

    drive(srt)
    record = srt.store.get("cli-bot~cli-1")
    assert record is not None and record.requester == "agent:cli-bot"
    assert record.status is Status.APPROVED
    # Asking as someone else with those credentials is refused before anything is sent.
    result = CliRunner().invoke(cli_main, [
        "request", "db.export", "t", "--requester", "agent:export-bot", "--no-wait"],
        env=_env(srt, tmp_path, out["redis_url"]))
    assert result.exit_code != 0 and "cannot ask as" in result.output
    rotated = json.loads(run(srt, tmp_path, "agent", "rotate", "cli-bot", "--json"))
    assert rotated["redis_url"] != out["redis_url"]
    assert "removed" in run(srt, tmp_path, "agent", "remove", "cli-bot")
    result = CliRunner().invoke(cli_main, ["agent", "add", "no:colons"],
                                env=_env(srt, tmp_path))
    assert result.exit_code != 0 and "not a valid agent name" in result.output
