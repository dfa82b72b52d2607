"""``signoff passkeys list|revoke`` (audited admin revocation) and ``signoff audit query
--step-up`` (votes proven with a passkey), through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from signoff import lifecycle, passkeys
from signoff.runtime import Runtime
from tests.conftest import TEST_SECRETS
from tests.stepup.conftest import PUBLIC_URL, assertion, drop_body, enrol, make_pending
from workers.cli import main as cli_main


def run(rt: Runtime, tmp_path: Path, *args: str) -> tuple[int, str]:
    env = {"REDIS_URL": rt.settings.redis_url, "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
           "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
           "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
           "SIGNOFF_POLICY": str(rt.settings.policy_path), "SIGNOFF_PUBLIC_URL": PUBLIC_URL,
           "SIGNOFF_DATA_DIR": str(tmp_path / "cli-data")}
    result = CliRunner().invoke(cli_main, list(args), env=env)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def alice_credential(rt: Runtime) -> str:
    """The credential id of Alice's first passkey (the one her vote used)."""
    return passkeys.store(rt).list_for("alice@example.com")[0].credential_id


def test_list_revoke_and_query_step_up_votes(rt: Runtime, tmp_path: Path) -> None:
    make_pending(rt, drop_body("drop-q", "q"), drop_body("read-q", "r") | {"action": "db.read"})
    alice = enrol(rt, "alice@example.com", "laptop")
    enrol(rt, "alice@example.com", "phone", confirm_with=alice)
    bob = enrol(rt, "bob@example.com", "key")
    assert lifecycle.submit_vote(rt, "drop-q", rt.policy.directory.person("alice@example.com"),
                                 "approve", step_up=assertion(rt, alice, "drop-q",
                                                              "alice@example.com",
                                                              "approve")).ok
    assert lifecycle.submit_vote(rt, "read-q", rt.policy.directory.person("bob@example.com"),
                                 "approve").ok

    code, out = run(rt, tmp_path, "passkeys", "list", "--json")
    assert code == 0, out
    rows = [json.loads(line) for line in out.splitlines()]
    assert sorted((r["person"], r["name"]) for r in rows) == [
        ("alice@example.com", "laptop"), ("alice@example.com", "phone"),
        ("bob@example.com", "key")]
    assert all("public_key" not in r for r in rows)

    code, out = run(rt, tmp_path, "audit", "query", "--step-up", "--format", "jsonl")
    assert code == 0, out
    [vote] = [json.loads(line) for line in out.splitlines()]
    assert vote["request_id"] == "drop-q" and vote["actor"] == "alice@example.com"
    assert vote["details"]["step_up"]["flags"] == {"up": True, "uv": True}
    assert vote["details"]["step_up"]["credential_id"] == alice_credential(rt)

    # Revoke one by prefix, then all of a person's; both audited with the reason.
    bob_id = passkeys.store(rt).list_for("bob@example.com")[0].credential_id
    code, out = run(rt, tmp_path, "passkeys", "revoke", "--person", "BOB@example.com",
                    "--credential", bob_id[:10], "--reason", "laptop stolen")
    assert code == 0 and "revoked passkey" in out, out
    code, out = run(rt, tmp_path, "passkeys", "revoke", "--person", "alice@example.com",
                    "--all", "--reason", "left the team", "--by", "admin:erin")
    assert code == 0 and "revoked 2 passkeys" in out, out
    code, out = run(rt, tmp_path, "passkeys", "revoke", "--person", "alice@example.com",
                    "--all")
    assert code == 1 and "has no passkeys" in out
    code, out = run(rt, tmp_path, "passkeys", "revoke", "--person", "alice@example.com")
    assert code == 2 and "exactly one of --credential or --all" in out
    code, out = run(rt, tmp_path, "audit", "query", "--event", "passkey_removed",
                    "--format", "jsonl")
    removed = [json.loads(line) for line in out.splitlines()]
    assert [(r["actor"], r["details"]["owner"], r["details"]["reason"]) for r in removed] == [
        ("admin:cli", "bob@example.com", "laptop stolen"),
        ("admin:erin", "alice@example.com", "left the team"),
        ("admin:erin", "alice@example.com", "left the team")]
    assert passkeys.store(rt).people() == []
    assert bob.credential_id  # the device still exists; Signoff no longer accepts it
