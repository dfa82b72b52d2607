"""`signoff policy check | explain | rules | directory | schema`."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from workers.cli import main

from .conftest import EXAMPLE, policy_text


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["policy", *args], input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_check_ok() -> None:
    code, out, _ = run("check", str(EXAMPLE))
    assert code == 0
    assert "OK (version" in out and "6 people" in out and "3 agents" in out


def test_check_reports_every_error_and_exits_non_zero(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(policy_text("rules:\n  - id: r\n    require: {approvers: 2 of dbas, timeout: soon}\n"))
    code, out, err = run("check", str(bad), str(EXAMPLE))
    assert code == 1
    lines = err.strip().splitlines()
    assert lines[0] == (
        f"{bad}:15:26: rules[0].require.approvers: group 'dbas' is not defined in the "
        "directory; did you mean 'dba'?"
    )
    assert lines[1].startswith(f"{bad}:15:46: rules[0].require.timeout: must be a duration")
    assert lines[-1] == f"{bad}: 2 errors"
    assert "OK" in out  # the good file is still checked


def test_check_uses_signoff_policy_by_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SIGNOFF_POLICY", str(EXAMPLE))
    code, out, _ = run("check")
    assert code == 0 and str(EXAMPLE) in out


def test_explain(tmp_path: Path) -> None:
    req = tmp_path / "req.json"
    req.write_text(json.dumps({
        "id": "r1", "action": "db.export", "resource": "customers", "requester": "agent:export-bot",
        "on_behalf_of": "frank@example.com", "context": {"environment": "prod"},
    }))
    code, out, _ = run("explain", str(req), "--policy", str(EXAMPLE), "--who")
    assert code == 0
    assert "prod-data-export — 2 of dba" in out
    assert "✗ dev-auto (line" in out and "environment 'prod' does not match 'dev'" in out
    assert "✓ alice@example.com (counts for dba)" in out
    assert "✗ erin@example.com: You own the agent" in out
    assert "gives no reason, so Signoff would reject it" in out
    code, out, _ = run("explain", "-", "--policy", str(EXAMPLE), "--json",
                       stdin=json.dumps({"body": req.read_text()}))
    assert code == 0 and json.loads(out)["rule_id"] == "prod-data-export"


def test_explain_at_a_time(tmp_path: Path) -> None:
    body = {"id": "r1", "action": "infra.apply", "resource": "stack", "requester": "agent:deploy-bot"}
    code, out, _ = run("explain", "-", "--policy", str(EXAMPLE), "--at", "2024-06-08T12:00:00+02:00",
                       stdin=json.dumps(body))
    assert code == 0 and "auto-denied" in out and "Sat 12:00 Europe/Berlin" in out


def test_explain_bad_request(tmp_path: Path) -> None:
    code, _, err = run("explain", "-", "--policy", str(EXAMPLE), stdin='{"id": "x"}')
    assert code == 1 and "is not a valid request" in err and "action: Field required" in err
    code, _, err = run("explain", "-", "--policy", str(EXAMPLE), stdin="{nope")
    assert code == 1 and "<stdin>" not in err and "not JSON" in err


def test_rules_directory_and_schema() -> None:
    code, out, _ = run("rules", "--policy", str(EXAMPLE))
    assert code == 0 and "iam-grant" in out and "1 of secops and 1 of the resource owner" in out
    assert "Mon-Fri 09:00-18:00 Europe/Berlin" in out
    code, out, _ = run("directory", "--policy", str(EXAMPLE))
    assert code == 0 and "agent:export-bot" in out and "owner erin@example.com" in out
    code, out, _ = run("schema")
    assert code == 0 and json.loads(out)["title"] == "Signoff policy v1"
