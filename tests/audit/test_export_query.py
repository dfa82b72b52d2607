"""Export for an auditor (verified offline with only the public key) and the query command."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner

from signoff import lifecycle
from signoff.runtime import Runtime
from tests.conftest import TEST_SECRETS, run_jobs
from tests.grants.helpers import auto_approved, body, human_approved
from workers.cli.audit import audit as audit_cli
from workers.cli.audit import parse_time


def cli_env(rt: Runtime, tmp_path: Path) -> dict[str, str]:
    return {"REDIS_URL": rt.settings.redis_url, "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
            "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
            "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
            "SIGNOFF_POLICY": str(rt.settings.policy_path),
            "SIGNOFF_DATA_DIR": str(tmp_path / "cli-data")}


def run(rt: Runtime, tmp_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(audit_cli, list(args), env=cli_env(rt, tmp_path))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def history(rt: Runtime) -> Runtime:
    """A few requests through the real lifecycle: approved by people, auto-approved,
    cancelled and rejected."""
    human_approved(rt, "q-prod")
    auto_approved(rt, "q-dev", action="db.export_small")
    lifecycle.ingest(rt, json.dumps(body("q-iam", env="prod", action="iam.grant",
                                         resource="role/db-reader")))
    run_jobs(rt)
    assert lifecycle.cancel(rt, "q-iam", "agent:export-bot", "not needed") == "changed"
    lifecycle.ingest(rt, json.dumps({"id": "q-bad", "action": "db.export"}))
    run_jobs(rt)
    return rt


def test_export_verifies_offline_and_tampering_in_the_file_is_named(
        history: Runtime, tmp_path: Path) -> None:
    rt = history
    code, out = run(rt, tmp_path, "export", "--out", str(tmp_path / "exp"))
    assert code == 0, out
    entries = next((tmp_path / "exp").glob("audit-*Z.jsonl"))
    checkpoint = next((tmp_path / "exp").glob("*.checkpoint.json"))
    keys = tmp_path / "exp" / "audit-keys.json"
    doc = json.loads(checkpoint.read_text())
    assert doc["count"] == len(entries.read_text().splitlines()) == doc["last_seq"]
    args = ["verify", "--file", str(entries), "--checkpoint", str(checkpoint), "--keys",
            str(keys)]
    code, out = run(rt, tmp_path, *args)
    assert code == 0 and out.startswith("OK:") and f"signed through seq {doc['last_seq']}" in out

    lines = entries.read_text().splitlines(keepends=True)
    edited = json.loads(lines[3])
    edited["actor"] = "mallory"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join([*lines[:3], json.dumps(edited) + "\n", *lines[4:]]))
    code, out = run(rt, tmp_path, "verify", "--file", str(tampered), "--checkpoint",
                    str(checkpoint), "--keys", str(keys), "--json")
    report = json.loads(out)
    assert code == 1 and report["first_problem"]["seq"] == 4
    assert report["first_problem"]["kind"] == "edited"

    tampered.write_text("".join(lines[:-2]))  # the last two entries cut off
    code, out = run(rt, tmp_path, "verify", "--file", str(tampered), "--checkpoint",
                    str(checkpoint), "--keys", str(keys))
    assert code == 1 and "TAMPERED" in out and "truncated" in out

    # A checkpoint signed by someone else's key is refused with the pinned keys.
    other = {"keys": [dict(json.loads(keys.read_text())["keys"][0], x="A" * 43)]}
    other_keys = tmp_path / "other.json"
    other_keys.write_text(json.dumps(other))
    code, out = run(rt, tmp_path, *args[:-1], str(other_keys))
    assert code == 1 and "bad_checkpoint" in out


def test_an_auditor_needs_only_hashlib_and_the_public_key(history: Runtime,
                                                          tmp_path: Path) -> None:
    """The recipe in docs/security.md, written without any Signoff code."""
    code, _ = run(history, tmp_path, "export", "--out", str(tmp_path / "exp"))
    assert code == 0
    entries = next((tmp_path / "exp").glob("audit-*Z.jsonl"))
    doc = json.loads(next((tmp_path / "exp").glob("*.checkpoint.json")).read_text())
    jwks = json.loads((tmp_path / "exp" / "audit-keys.json").read_text())

    prev = "0" * 64
    for expected_seq, line in enumerate(entries.read_text().splitlines(), 1):
        e = json.loads(line)
        body = {k: e[k] for k in ("seq", "ts", "event", "request_id", "actor", "details")}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"),
                               ensure_ascii=False).encode()
        assert e["seq"] == expected_seq and e["prev"] == prev
        assert hashlib.sha256(prev.encode() + b"\n" + canonical).hexdigest() == e["hash"]
        prev = e["hash"]
    token = doc["checkpoint"]["token"]
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    claims = jwt.decode(token, key, algorithms=["EdDSA"], audience="signoff-audit")
    assert claims["hash"] == prev and claims["seq"] == doc["last_seq"]


def test_live_verify_names_tampering_and_honours_an_exported_checkpoint(
        history: Runtime, tmp_path: Path) -> None:
    rt = history
    assert run(rt, tmp_path, "verify")[0] == 0
    code, _ = run(rt, tmp_path, "export", "--out", str(tmp_path / "exp"))
    checkpoint = next((tmp_path / "exp").glob("*.checkpoint.json"))
    last = rt.redis.xrevrange(rt.keys.audit, "+", "-", count=1)[0][0]
    rt.redis.xdel(rt.keys.audit, last)
    rt.redis.delete(rt.keys.audit_checkpoints, rt.keys.audit_head)
    code, out = run(rt, tmp_path, "verify", "--checkpoint", str(checkpoint))
    assert code == 1 and "truncated" in out


def test_query_filters_and_formats(history: Runtime, tmp_path: Path) -> None:
    rt = history
    code, out = run(rt, tmp_path, "query", "--action", "db.export*", "--event", "decided",
                    "--format", "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and {r["request_id"] for r in rows} == {"q-prod", "q-dev"}
    assert all(r["event"] == "decided" for r in rows)

    code, out = run(rt, tmp_path, "query", "--person", "alice@example.com", "--format",
                    "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert {r["event"] for r in rows} == {"vote"} and {r["request_id"] for r in rows} == {
        "q-prod"}

    code, out = run(rt, tmp_path, "query", "--person", "frank@example.com", "--event",
                    "requested", "--format", "jsonl")
    ids = {json.loads(line)["request_id"] for line in out.splitlines()}
    assert ids == {"q-prod", "q-dev", "q-iam"}  # made on frank's behalf

    code, out = run(rt, tmp_path, "query", "--status", "cancelled", "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert parsed and {r["request_id"] for r in parsed} == {"q-iam"}
    assert {r["event"] for r in parsed} >= {"requested", "cancelled"}
    assert "not needed" not in out  # the reason is kept as a hash only

    code, out = run(rt, tmp_path, "query", "--agent", "agent:export-bot", "--status",
                    "approved", "--event", "grant_issued")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["TIME", "SEQ", "EVENT"]
    assert sum("grant_issued" in line for line in out.splitlines()) == 2

    code, out = run(rt, tmp_path, "query", "--status", "rejected", "--format", "jsonl")
    assert {json.loads(line)["request_id"] for line in out.splitlines()} == {"q-bad"}

    code, out = run(rt, tmp_path, "query", "--since", "2999-01-01", "--format", "jsonl")
    assert code == 0 and out == ""
    code, out = run(rt, tmp_path, "query", "--since", "1h", "--request", "q-dev",
                    "--format", "jsonl")
    assert {json.loads(line)["request_id"] for line in out.splitlines()} == {"q-dev"}


def test_parse_time() -> None:
    assert parse_time("2026-01-31T00:00:00Z") == 1769817600.0
    assert parse_time("2026-01-31") == 1769817600.0
    assert parse_time("2h", now=10_000.0) == 2_800.0
    assert parse_time(None) is None
    with pytest.raises(Exception):
        parse_time("yesterday")
