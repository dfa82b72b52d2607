"""Malformed requests of every kind get a clear answer and lose nothing; duplicates are one."""

from __future__ import annotations

import json

import pytest

from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs
from tests.core.test_smoke_lifecycle import export_request, send


def reply_of(rt: Runtime, rid: str) -> dict:
    raw = rt.redis.lrange(rt.keys.reply(rid), 0, -1)
    assert len(raw) == 1, f"expected exactly one reply for {rid}, got {len(raw)}"
    return json.loads(raw[0])


def dead_reasons(rt: Runtime) -> list[str]:
    return [f["reason"] for _, f in rt.redis.xrange(rt.keys.dead)]


def pending_in_group(rt: Runtime) -> int:
    info = rt.redis.xinfo_groups(rt.keys.requests)
    return int(info[0]["pending"])


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.pop("action"), "action"),
        (lambda b: b.pop("requester"), "requester"),
        (lambda b: b.update(action=42), "action"),
        (lambda b: b.update(context="prod"), "context"),
        (lambda b: b.update(reason=["x"]), "reason"),
        (lambda b: b.update(surprise=True), "surprise"),
        (lambda b: b.update(action="db export!"), "action"),
        (lambda b: b.update(on_behalf_of="x" * 400), "on_behalf_of"),
    ],
)
def test_invalid_fields_are_rejected_field_by_field(rt: Runtime, mutate, field) -> None:
    body = export_request("bad-1")
    mutate(body)
    send(rt, body)
    run_intake(rt)
    run_jobs(rt)
    reply = reply_of(rt, "bad-1")
    assert reply["status"] == "rejected"
    assert field in [e["field"] for e in reply["error"]]
    assert pending_in_group(rt) == 0


def test_not_json_with_recoverable_id_is_rejected(rt: Runtime) -> None:
    send(rt, '{"id": "broken-1", "action": "db.export",')
    run_intake(rt)
    run_jobs(rt)
    reply = reply_of(rt, "broken-1")
    assert reply["status"] == "rejected"
    assert reply["error"][0]["message"].startswith("not JSON")


@pytest.mark.parametrize(
    "raw",
    ["not json at all", "[1, 2, 3]", '"just a string"', "null", '{"action": "x"}',
     '{"id": "bad id with spaces", "action": "x"}', '{"id": 12}', b"\xff\xfe\x00garbage"],
)
def test_no_usable_id_goes_to_dead_letters(rt: Runtime, raw) -> None:
    send(rt, raw)
    run_intake(rt)
    assert len(dead_reasons(rt)) == 1
    assert dead_reasons(rt)[0]
    assert pending_in_group(rt) == 0


def test_message_without_body_field_is_dead_lettered(rt: Runtime) -> None:
    rt.redis.xadd(rt.keys.requests, {"payload": "{}"})
    run_intake(rt)
    assert dead_reasons(rt) == ["message has no 'body' field"]


def test_invalid_utf8_with_id_is_rejected(rt: Runtime) -> None:
    raw = b'{"id": "utf-1", "action": "db.export", "reason": "\xc3\x28"}'
    send(rt, raw)
    run_intake(rt)
    run_jobs(rt)
    reply = reply_of(rt, "utf-1")
    assert reply["status"] == "rejected"
    assert "UTF-8" in reply["error"][0]["message"]


def test_ten_megabyte_params_are_rejected_without_loading(rt: Runtime) -> None:
    body = export_request("big-1", params={"blob": "x" * 10_000_000})
    send(rt, body)
    run_intake(rt)
    run_jobs(rt)
    reply = reply_of(rt, "big-1")
    assert reply["status"] == "rejected"
    assert "limit" in reply["error"][0]["message"]
    # The 10 MB body is not kept anywhere but the stream entry itself.
    assert rt.redis.memory_usage(rt.keys.request("big-1")) < 10_000


def test_deep_nesting_is_rejected(rt: Runtime) -> None:
    deep: object = "leaf"
    for _ in range(100):
        deep = {"a": deep}
    send(rt, export_request("deep-1", params=deep))
    very_deep = '{"id": "deep-2", "params": ' + "[" * 100_000 + "]" * 100_000 + "}"
    send(rt, very_deep)
    run_intake(rt)
    run_jobs(rt)
    assert reply_of(rt, "deep-1")["status"] == "rejected"
    assert "deeper" in json.dumps(reply_of(rt, "deep-1")["error"])
    assert reply_of(rt, "deep-2")["status"] == "rejected"


def test_same_id_twice_is_one_request(rt: Runtime) -> None:
    send(rt, export_request("dup-1"))
    send(rt, export_request("dup-1"))
    run_intake(rt)
    run_jobs(rt)
    send(rt, export_request("dup-1", reason="changed my mind"))
    run_intake(rt)
    run_jobs(rt)
    assert rt.store.status("dup-1") is Status.PENDING
    assert rt.redis.zcard(rt.keys.pending) == 1
    events = [e.event for e in rt.audit.for_request("dup-1")]
    assert events.count("requested") == 1
    assert events.count("duplicate") == 2
    assert pending_in_group(rt) == 0


def test_crashed_consumer_entries_are_reclaimed(rt: Runtime) -> None:
    from workers.intake import IntakeConsumer

    send(rt, export_request("claim-1"))
    dead = IntakeConsumer(rt, name="crashed", block_ms=10)
    dead.ensure_group()
    # The crashed consumer read the entry but never acknowledged it.
    rt.redis_bytes.xreadgroup("signoff-intake", "crashed", {rt.keys.requests: ">"}, count=10)
    assert pending_in_group(rt) == 1
    alive = IntakeConsumer(rt, name="alive", block_ms=10)
    alive.reclaim_idle_ms = 0
    assert alive.reclaim() == 1
    run_jobs(rt)
    assert rt.store.status("claim-1") is Status.PENDING
    assert pending_in_group(rt) == 0


def test_requests_sent_before_intake_ever_ran_are_read(rt: Runtime) -> None:
    for i in range(5):
        send(rt, export_request(f"early-{i}", params={"rows": i}))
    assert run_intake(rt) == 5
