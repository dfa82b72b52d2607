"""The resource and person indexes: answers without a scan, the same as the scan's."""

from __future__ import annotations

import json
import time
from pathlib import Path

from click.testing import CliRunner

from signoff import audit
from signoff.audit import QueryFilter, query
from signoff.runtime import Runtime
from tests.audit.test_merkle import cli_env
from workers.cli.audit import audit as audit_cli


def request(rt: Runtime, rid: str, resource: str, action: str, approver: str | None,
            ts_shift: float = 0.0) -> None:
    rt.audit.append(audit.Event.REQUESTED, rid, "agent:bot", action=action, resource=resource,
                    on_behalf_of="dana@example.com", payload_sha256="0" * 64)
    rt.audit.append(audit.Event.CARD_POSTED, rid, "signoff", channel="slack")
    if approver:
        rt.audit.append(audit.Event.VOTE, rid, approver, choice="approve", channel="slack")
        rt.audit.append(audit.Event.DECIDED, rid, approver, status="approved")
    else:
        rt.audit.append(audit.Event.VOTE, rid, "erin@example.com", choice="deny")
        rt.audit.append(audit.Event.DECIDED, rid, "erin@example.com", status="denied")


def test_who_approved_what_on_a_resource(rt: Runtime) -> None:
    request(rt, "r1", "db/customers", "db.export", "alice@example.com")
    request(rt, "r2", "db/orders", "db.export", "bob@example.com")
    request(rt, "r3", "db/customers", "db.delete", None)
    index = rt.audit.index
    # A vote that arrives in a later batch still finds its request's facts.
    assert index.update(rt.audit.read_after, batch=3) == 12
    request(rt, "r4", "db/customers", "iam.grant", "carol@example.com")
    index.update(rt.audit.read_after)
    got = [(r.actor, r.action, r.request_id) for r in index.approvals("db/customers")]
    assert got == [("alice@example.com", "db.export", "r1"),
                   ("carol@example.com", "iam.grant", "r4")]
    assert index.approvals("db/customers", since=time.time() + 60) == []
    assert [r.outcome for r in index.for_person("erin@example.com")] == ["deny", "denied"]
    # Replaying the log changes nothing (rows are set members).
    index.reset()
    index.update(rt.audit.read_after)
    assert len(index.approvals("db/customers")) == 2
    assert len(index.for_resource("db/customers")) == 3 * 3  # requested, vote, decided x3


def test_query_by_resource_matches_a_scan(rt: Runtime) -> None:
    for i in range(30):
        request(rt, f"q{i}", f"res/{i % 3}", "db.export", "alice@example.com" if i % 2 else None)
    via_index = [r.entry.seq for r in query(rt, QueryFilter(resource="res/1"), limit=10_000)]
    scanned = [e.seq for e in rt.audit.iter_entries()
               if e.request_id and int(e.request_id[1:]) % 3 == 1 and e.event in (
                   "requested", "vote", "decided")]
    assert via_index == scanned


def test_approvals_and_query_commands(rt: Runtime, tmp_path: Path) -> None:
    request(rt, "c1", "db/customers", "db.export", "alice@example.com")
    request(rt, "c2", "db/customers", "db.delete", None)
    env = cli_env(rt, tmp_path)
    result = CliRunner().invoke(audit_cli, ["approvals", "--resource", "db/customers",
                                            "--json"], env=env)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.output.splitlines()]
    assert [(r["actor"], r["action"]) for r in rows] == [("alice@example.com", "db.export")]
    result = CliRunner().invoke(audit_cli, ["query", "--resource", "db/customers", "--format",
                                            "jsonl"], env=env)
    assert result.exit_code == 0, result.output
    assert {json.loads(x)["request_id"] for x in result.output.splitlines()} == {"c1", "c2"}
