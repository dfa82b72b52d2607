"""The intake removes the stream entries every consumer group is done with: an acknowledged
entry is trimmed, an entry a crashed consumer read but never acknowledged stays until it is
reclaimed and handled, and another group's unread entries are kept."""

from __future__ import annotations

import base64
import json

from signoff import crypto
from signoff.keys import INTAKE_GROUP
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs
from tests.core.test_smoke_lifecycle import export_request, send
from workers.intake import MAX_DELIVERIES, IntakeConsumer


def ids_in_stream(rt: Runtime) -> list[str]:
    return [str(f.get("body") and json.loads(f["body"])["id"])
            for _, f in rt.redis.xrange(rt.keys.requests)]


def test_acknowledged_entries_are_removed(rt: Runtime) -> None:
    for i in range(5):
        send(rt, export_request(f"tr-{i}", params={"rows": i}))
    assert run_intake(rt) == 5
    assert rt.redis.xlen(rt.keys.requests) == 0
    info = rt.redis.xinfo_groups(rt.keys.requests)[0]
    assert info["name"] == INTAKE_GROUP and info["pending"] == 0
    run_jobs(rt)
    for i in range(5):
        assert rt.store.status(f"tr-{i}") is Status.PENDING
    send(rt, export_request("tr-5"))
    assert run_intake(rt) == 1  # the group reads on after the trim
    assert rt.redis.xlen(rt.keys.requests) == 0


def test_a_crashed_consumers_entries_stay_until_reclaimed(rt: Runtime) -> None:
    send(rt, export_request("cr-1"))
    send(rt, export_request("cr-2", params={"rows": 2}))
    crashed = IntakeConsumer(rt, name="crashed", block_ms=10)
    crashed.ensure_group()
    # It read both entries and died before acknowledging them.
    rt.redis_bytes.xreadgroup(INTAKE_GROUP, "crashed", {rt.keys.requests: ">"}, count=10)
    send(rt, export_request("cr-3", params={"rows": 3}))
    alive = IntakeConsumer(rt, name="alive", block_ms=10)
    assert alive.poll(block_ms=10) == 1
    # cr-3 is acknowledged but newer than the dead consumer's oldest entry: nothing is lost.
    assert ids_in_stream(rt) == ["cr-1", "cr-2", "cr-3"]
    assert rt.store.status("cr-1") is None
    alive.reclaim_idle_ms = 0
    assert alive.reclaim() == 2
    assert rt.redis.xlen(rt.keys.requests) == 0
    run_jobs(rt)
    for rid in ("cr-1", "cr-2", "cr-3"):
        assert rt.store.status(rid) is Status.PENDING


def test_entries_another_group_has_not_read_are_kept(rt: Runtime) -> None:
    send(rt, export_request("og-1"))
    IntakeConsumer(rt, name="first", block_ms=10).ensure_group()
    rt.redis.xgroup_create(rt.keys.requests, "other", id="0")
    send(rt, export_request("og-2", params={"rows": 2}))
    assert run_intake(rt) == 2
    assert ids_in_stream(rt) == ["og-1", "og-2"]
    rows = rt.redis.xreadgroup("other", "o", {rt.keys.requests: ">"}, count=1)
    rt.redis.xack(rt.keys.requests, "other", rows[0][1][0][0])
    send(rt, export_request("og-3", params={"rows": 3}))
    assert run_intake(rt) == 1
    assert ids_in_stream(rt) == ["og-2", "og-3"]  # "other" has read og-1 only


def test_a_dead_lettered_entry_is_kept_sealed_in_the_dead_letter(rt: Runtime,
                                                                  monkeypatch) -> None:
    from signoff import lifecycle

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    send(rt, export_request("dl-1"))
    consumer = IntakeConsumer(rt, name="flaky", block_ms=10)
    consumer.ensure_group()
    consumer.reclaim_idle_ms = 0
    monkeypatch.setattr(lifecycle, "ingest", broken)
    consumer.poll(block_ms=10)
    for _ in range(MAX_DELIVERIES - 1):
        consumer.reclaim()
    assert rt.redis.xlen(rt.keys.requests) == 0  # dead-lettered, acknowledged, trimmed
    [(_, dead)] = rt.redis.xrange(rt.keys.dead)
    assert dead["reason"].startswith(f"intake failed {MAX_DELIVERIES} times")
    entry = json.loads(crypto.decrypt(rt.data_keyring, dead["entry"], dead["source"].encode()))
    body = json.loads(base64.b64decode(entry["body"]))
    assert body["id"] == "dl-1"
    assert "sk_live" not in json.dumps(dead)  # the body is sealed, like a stored request
