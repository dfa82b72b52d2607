"""Edit before approving over the HTTP API: within bounds only, the edited version needs its
own quorum (votes on the earlier one dropped, a stale vote refused), the grant binds the
edited payload, the reply carries the edited params and both hashes, the audit says what
changed and who; an edit after the decision, outside the bounds or of a param the rule does
not declare is refused with a clear message; the SDK runs with the edited arguments."""

from __future__ import annotations

import json
import threading

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from signoff import edits, lifecycle
from signoff.models import payload_sha256
from signoff.runtime import Runtime
from signoff.sdk import Client, DecisionMismatch, requires_approval
from tests.conftest import run_intake, run_jobs, wait_for
from tests.decisions.conftest import events, export, make_pending, reply


async def test_edit_within_bounds_needs_quorum_on_the_edited_version(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    base = str(server.make_url(""))
    make_pending(rt, export("e-1", params={"rows": 50000, "format": "csv"}))
    sent_sha = payload_sha256("db.export", "warehouse.orders", {"rows": 50000, "format": "csv"})
    async with aiohttp.ClientSession(base) as http:
        # Bob approves the original; then Alice trims the rows: Bob's vote no longer counts.
        async with http.post("/api/v1/requests/e-1/decision",
                             json={"decision": "approve", "payload_sha256": sent_sha},
                             headers=tokens["bob"]) as resp:
            assert resp.status == 200
        async with http.post("/api/v1/requests/e-1/edit",
                             json={"params": {"rows": 20000}, "payload_sha256": sent_sha},
                             headers=tokens["alice"]) as resp:
            body = await resp.json()
            assert resp.status == 422 and "10000" in body["detail"], body
        async with http.post("/api/v1/requests/e-1/edit",
                             json={"params": {"format": "parquet"}},
                             headers=tokens["alice"]) as resp:
            body = await resp.json()
            assert resp.status == 422 and "may not be edited" in body["detail"]
        async with http.post("/api/v1/requests/e-1/edit",
                             json={"params": {"rows": "9000"}, "payload_sha256": sent_sha},
                             headers=tokens["alice"]) as resp:
            body = await resp.json()
            assert resp.status == 200, body
            view = body["request"]
        assert view["status"] == "pending"
        assert [v["person"] for v in view["votes"]] == ["alice@example.com"]
        edited_sha = view["payload_sha256"]
        assert edited_sha == payload_sha256("db.export", "warehouse.orders",
                                            {"rows": 9000, "format": "csv"})
        # Carol voting on what she saw before the edit: refused, nothing recorded.
        async with http.post("/api/v1/requests/e-1/decision",
                             json={"decision": "approve", "payload_sha256": sent_sha},
                             headers=tokens["carol"]) as resp:
            assert resp.status == 409 and (await resp.json())["code"] == "stale"
        async with http.post("/api/v1/requests/e-1/decision",
                             json={"decision": "approve", "payload_sha256": edited_sha},
                             headers=tokens["bob"]) as resp:
            data = await resp.json()
            assert data["result"] == "final", data
        # After the decision: no more edits.
        async with http.post("/api/v1/requests/e-1/edit", json={"params": {"rows": 10}},
                             headers=tokens["carol"]) as resp:
            assert resp.status == 409 and "no longer be edited" in (await resp.json())["detail"]
    decision = reply(rt, "e-1")
    assert decision["status"] == "approved"
    assert decision["params"] == {"rows": 9000, "format": "csv"}
    assert decision["original_payload_sha256"] == sent_sha
    assert decision["payload_sha256"] == edited_sha
    claims = jwt.decode(decision["grant"], options={"verify_signature": False})
    assert claims["psh"] == edited_sha
    assert sorted(claims["apr"]) == ["alice@example.com", "bob@example.com"]
    edited = events(rt, "e-1", "edited")
    assert len(edited) == 1 and edited[0].actor == "alice@example.com"
    assert edited[0].details["changes"] == [{"param": "rows", "from": "50000", "to": "9000"}]
    assert edited[0].details["votes_dropped"] == ["bob@example.com"]
    assert events(rt, "e-1", "edit_refused")


def test_edit_refused_for_someone_who_may_not_decide(rt: Runtime) -> None:
    make_pending(rt, export("e-2"))
    directory = rt.policy.directory
    for who, code in (("erin@example.com", "on_behalf_of"), ("frank@example.com", "agent_owner"),
                      ("dave@example.com", "not_eligible")):
        got = edits.submit_edit(rt, "e-2", directory.person(who), {"rows": 10})
        assert not got.ok and got.code == code, (who, got)
    assert rt.store.get("e-2").get("payload_sha256") == payload_sha256(  # type: ignore[union-attr]
        "db.export", "warehouse.orders", {"rows": 5000, "format": "csv"})


def test_sdk_runs_the_guarded_function_with_the_edited_arguments(rt: Runtime) -> None:
    rt.__dict__["masker"] = __import__("tests.inbox.conftest", fromlist=["x"]).shared_masker()
    client = Client(rt.settings.redis_url, requester="agent:etl-bot")
    ran: list[tuple[int, str]] = []

    @requires_approval("db.export", client=client, resource="warehouse.orders",
                       on_behalf_of="erin@example.com", reason="nightly",
                       context={"environment": "prod", "ticket": "OPS-7"}, timeout=30)
    def export_rows(rows: int, format: str = "csv") -> str:
        ran.append((rows, format))
        return f"{rows} {format}"

    @requires_approval("db.export", client=client, resource="warehouse.orders",
                       on_behalf_of="erin@example.com", reason="nightly",
                       context={"environment": "prod", "ticket": "OPS-7"}, timeout=30)
    def export_any(**params: object) -> str:
        return "ran"

    def decide_with_edit() -> None:
        rid = wait_for(lambda: _one_pending(rt), timeout=20, message="a pending request")
        got = edits.submit_edit(rt, rid, rt.policy.directory.person("alice@example.com"),
                                {"rows": 100})
        assert got.ok, got
        record = rt.store.get(rid)
        assert record is not None
        lifecycle.submit_vote(rt, rid, rt.policy.directory.person("bob@example.com"),
                              "approve", seen_sha256=record.get("payload_sha256"))
        run_jobs(rt)

    results: dict[str, object] = {}

    def call(fn: object, key: str, **kwargs: object) -> None:
        try:
            results[key] = fn(**kwargs)  # type: ignore[operator]
        except Exception as exc:
            results[key] = exc

    for fn, key, kwargs in ((export_rows, "named", {"rows": 50000}),
                            (export_any, "kwargs", {"rows": 50000, "format": "csv"})):
        worker = threading.Thread(target=call, args=(fn, key), kwargs=kwargs)
        worker.start()
        wait_for(lambda: rt.redis.xlen(rt.keys.requests) > 0, timeout=20, message="the request")
        run_intake(rt)
        run_jobs(rt)
        decide_with_edit()
        worker.join(30)
        assert not worker.is_alive()
    assert results["named"] == "100 csv" and ran == [(100, "csv")]
    # A function that takes its params only through **kwargs cannot be bound by name.
    assert isinstance(results["kwargs"], DecisionMismatch), results
    assert "cannot take" in str(results["kwargs"])


def _one_pending(rt: Runtime) -> str | None:
    ids = rt.store.pending_ids()
    return ids[0] if ids else None


@pytest.mark.parametrize("value,ok", [("10000", True), ("10001", False), ("0", False),
                                      ("ten", False), ("1e3", False)])
def test_bounds_are_json_schema(value: str, ok: bool) -> None:
    got = edits.check_edit({"rows": 5}, {"rows": {"type": "integer", "minimum": 1,
                                                  "maximum": 10000}}, {"rows": value})
    assert (not got.error) is ok, got
    assert json.dumps(got.params) or not ok


def test_an_edited_request_never_approves_its_identical_followers(rt: Runtime) -> None:
    big = {"rows": 50000, "format": "csv"}
    assert make_pending(rt, export("m-1", params=big), export("m-2", params=big)) == [
        "pending", "merged"]
    directory = rt.policy.directory
    assert edits.submit_edit(rt, "m-1", directory.person("alice@example.com"),
                             {"rows": 9000}).ok
    # A new request identical to the original gets its own card now.
    assert make_pending(rt, export("m-3", params=big)) == ["pending"]
    record = rt.store.get("m-1")
    assert record is not None
    assert lifecycle.submit_vote(rt, "m-1", directory.person("bob@example.com"), "approve",
                                 seen_sha256=record.get("payload_sha256")).code == "final"
    run_jobs(rt)
    assert rt.store.get("m-1").status.value == "approved"  # type: ignore[union-attr]
    follower = rt.store.get("m-2")
    assert follower is not None and follower.status.value != "approved"
    assert any(e.event == "merge_refused" for e in rt.audit.for_request("m-2"))
    assert rt.store.get("m-3").status.value == "pending"  # type: ignore[union-attr]


def test_async_guarded_function_runs_with_the_edited_arguments(rt: Runtime) -> None:
    import asyncio

    from signoff.sdk import AsyncClient

    rt.__dict__["masker"] = __import__("tests.inbox.conftest", fromlist=["x"]).shared_masker()
    ran: list[int] = []
    results: dict[str, object] = {}

    def agent() -> None:
        async def main() -> object:
            client = AsyncClient(rt.settings.redis_url, requester="agent:etl-bot")

            @requires_approval("db.export", client=client, resource="warehouse.orders",
                               on_behalf_of="erin@example.com", reason="nightly",
                               context={"environment": "prod", "ticket": "OPS-7"}, timeout=30)
            async def export_rows(rows: int, format: str = "csv") -> int:
                ran.append(rows)
                return rows

            try:
                return await export_rows(rows=50000)
            finally:
                await client.aclose()

        try:
            results["value"] = asyncio.run(main())
        except Exception as exc:
            results["value"] = exc

    worker = threading.Thread(target=agent)
    worker.start()
    wait_for(lambda: rt.redis.xlen(rt.keys.requests) > 0, timeout=20, message="the request")
    run_intake(rt)
    run_jobs(rt)
    rid = wait_for(lambda: _one_pending(rt), timeout=20, message="a pending request")
    assert edits.submit_edit(rt, rid, rt.policy.directory.person("alice@example.com"),
                             {"rows": 250}).ok
    record = rt.store.get(rid)
    assert record is not None
    assert lifecycle.submit_vote(rt, rid, rt.policy.directory.person("bob@example.com"),
                                 "approve", seen_sha256=record.get("payload_sha256")).ok
    run_jobs(rt)
    worker.join(30)
    assert not worker.is_alive()
    assert results["value"] == 250 and ran == [250], results
