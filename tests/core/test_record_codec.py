"""The record's compact encoding: the descriptive fields packed into one compressed hash field,
read back whole through Store.get; plain fields (and records written before) read as always."""

from __future__ import annotations

import json

import pytest

from signoff import lifecycle, record_codec
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs
from tests.core.test_smoke_lifecycle import export_request, send


def raw_fields(rt: Runtime, rid: str) -> dict[str, bytes]:
    return {k.decode(): v for k, v in rt.redis_bytes.hgetall(rt.keys.request(rid)).items()}


def test_round_trip_keeps_every_value() -> None:
    fields = {"evaluation": json.dumps({"rule_id": "r", "explanation": ["\u2713 ünïcode"]}),
              "shown": "{}", "id": "a~b", "masked": "x" * 5000, "error": ""}
    blob = record_codec.pack(fields)
    assert blob.startswith(b"z1:") and len(blob) < 500
    assert record_codec.unpack(blob) == fields
    assert record_codec.unpack(None) == {} and record_codec.unpack(b"") == {}
    with pytest.raises(record_codec.UnreadableRecord):
        record_codec.unpack(b"zz:abc")


def test_a_pending_request_packs_its_descriptive_fields(rt: Runtime) -> None:
    send(rt, export_request("pk-1"))
    run_intake(rt)
    run_jobs(rt)
    raw = raw_fields(rt, "pk-1")
    assert record_codec.PACKED in raw
    # Only what is read through Record is packed: every field a Lua script or another module
    # reads by name is a hash field of its own.
    assert not set(raw) & record_codec.PACKABLE
    for name in ("status", "deadline", "index_keys", "created_at", "req_quorum", "req_groups",
                 "payload_sha256", "body_sha256", "ciphertext", "agent", "version"):
        assert name in raw, name
    record = rt.store.get("pk-1")
    assert record is not None and record.status is Status.PENDING
    assert record.evaluation.rule_id and record.action == "db.export"
    assert record.json("shown")["action"] == "db.export" and record.get("masked")
    assert record.get(record_codec.PACKED) is None
    assert rt.redis.memory_usage(rt.keys.request("pk-1"), samples=0) < 3000


def test_a_plain_field_wins_over_a_packed_one(rt: Runtime) -> None:
    send(rt, export_request("pk-2"))
    run_intake(rt)
    run_jobs(rt)
    # A later write of a packed name (an approver's edit writes the masked views) counts.
    rt.store.set_fields("pk-2", {"masked": '{"edited": true}'})
    assert rt.store.get("pk-2").json("masked") == {"edited": True}
    d = rt.policy.directory
    reply = lifecycle.submit_vote(rt, "pk-2", d.person("alice@example.com"), "approve")
    assert reply.ok
    assert rt.store.get("pk-2").json("masked") == {"edited": True}


def test_records_written_before_the_encoding_still_read(rt: Runtime) -> None:
    send(rt, export_request("pk-3"))
    run_intake(rt)
    run_jobs(rt)
    whole = rt.store.get("pk-3")
    assert whole is not None
    key = rt.keys.request("pk-3")
    rt.redis.delete(key)  # the same record, every field plain (as written before)
    rt.redis.hset(key, mapping=whole.fields)
    again = rt.store.get("pk-3")
    assert again is not None and again.fields == whole.fields


def test_open_drops_a_plain_field_the_packed_one_replaces(rt: Runtime) -> None:
    """A plain field of a packed name written while the request was received (an older
    version's create) is dropped by open: the packed value is the newer one."""
    send(rt, export_request("pk-4"))
    run_intake(rt)
    rt.redis.hset(rt.keys.request("pk-4"), "shown", '{"stale": true}')
    run_jobs(rt)
    assert "shown" not in raw_fields(rt, "pk-4")
    assert rt.store.get("pk-4").json("shown")["action"] == "db.export"
