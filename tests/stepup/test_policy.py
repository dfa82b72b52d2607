"""``require.step_up`` in the policy language: ``signoff policy check`` validates it (shape,
method, window bounds) with line and column, ``policy explain`` shows it, and the evaluation
stored on a request carries it to the vote."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from policy import load_policy
from policy.errors import PolicyError
from workers.cli import main as cli_main

BASE = """version: 1
directory:
  people:
    - {email: alice@example.com, groups: [dba]}
    - {email: bob@example.com, groups: [dba]}
defaults:
  approvers: 1 of dba
rules:
  - id: prod-drop
    match: {action: db.drop}
    require:
      approvers: 1 of dba
      step_up: STEP
"""


def write(tmp_path: Path, step: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(BASE.replace("STEP", step))
    return path


def check(path: Path) -> tuple[int, str]:
    result = CliRunner().invoke(cli_main, ["policy", "check", str(path)])
    return result.exit_code, result.output


def test_forms_and_explain(tmp_path: Path) -> None:
    for step, within in (("passkey", 300), ("{method: passkey, within: 90s}", 90),
                         ("{method: passkey}", 300)):
        policy = load_policy(write(tmp_path, step))
        requirement = policy.rules[0].requirement
        assert (requirement.step_up, requirement.step_up_within) == ("passkey", within)
        assert requirement.to_dict()["step_up"] == "passkey"
        assert type(requirement).from_dict(requirement.to_dict()) == requirement
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"id": "r1", "action": "db.drop", "resource": "prod.t",
                                   "params": {}, "requester": "agent:ops"}))
    result = CliRunner().invoke(cli_main, ["policy", "explain", str(request), "--policy",
                                           str(write(tmp_path, "{method: passkey, within: 2m}"))])
    assert result.exit_code == 0, result.output
    assert "step-up: every vote needs a passkey proof made within 2m" in result.output


def test_check_refuses_bad_step_up(tmp_path: Path) -> None:
    for step, where, text in (
            ("yubikey", "13:16", "must be 'passkey' or {method: passkey, within:"),
            ("{method: sms}", "13:16", "must be 'passkey'"),
            ("{method: passkey, within: soon}", "13:16", "must be 'passkey'"),
            ("{method: passkey, within: 2h}", "13:42", "between 30s and 1h"),
            ("{method: passkey, within: 5s}", "13:42", "between 30s and 1h"),
            ("{method: passkey, when: always}", "13:16", "must be 'passkey'")):
        path = write(tmp_path, step)
        code, out = check(path)
        assert code != 0, (step, out)
        assert f"policy.yaml:{where}" in out and text in out, (step, out)
        try:
            load_policy(path)
        except PolicyError:
            pass
        else:
            raise AssertionError(f"{step} loaded")
    code, out = check(write(tmp_path, "{method: passkey, within: 1h}"))
    assert code == 0 and "OK" in out, out
