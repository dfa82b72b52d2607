"""Delegation and batches over the HTTP API.

Delegation: the delegate decides in their own name "for alice" (alice's slot, the audit names
both); separation of duties applies to both; one human casts one vote per request; revoking
ends it. Batches: each request through submit_vote; a request the person may not decide (or
that needs a passkey) is reported, never decided."""

from __future__ import annotations

import aiohttp
from aiohttp.test_utils import TestServer

from signoff.models import Status
from signoff.runtime import Runtime
from tests.decisions.conftest import events, export, make_pending, reply


async def test_delegate_decides_for_alice_and_sod_applies_to_both(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    base = str(server.make_url(""))
    # g-2 differs from g-1 (identical requests would share g-1's card and its decision).
    make_pending(rt, export("g-1"), export("g-2", params={"rows": 6000, "format": "csv"}),
                 export("g-3", on_behalf_of="dave@example.com"))
    async with aiohttp.ClientSession(base) as http:
        # Dave (sre, not a dba) cannot decide an export himself.
        async with http.post("/api/v1/requests/g-1/decision", json={"decision": "approve"},
                             headers=tokens["dave"]) as resp:
            assert resp.status == 403
        # No delegation yet: "for alice" is refused.
        async with http.post("/api/v1/requests/g-1/decision",
                             json={"decision": "approve", "for": "alice@example.com"},
                             headers=tokens["dave"]) as resp:
            assert resp.status == 403 and (await resp.json())["code"] == "no_delegation"
        # Only administrators delegate for someone else.
        async with http.post("/api/v1/delegations",
                             json={"to": "dave@example.com", "for": "1h",
                                   "from": "bob@example.com"},
                             headers=tokens["alice"]) as resp:
            assert resp.status == 403
        async with http.post("/api/v1/delegations",
                             json={"to": "alice@example.com", "for": "1h"},
                             headers=tokens["alice"]) as resp:
            assert resp.status == 422  # not to oneself
        async with http.post("/api/v1/delegations",
                             json={"to": "DAVE@example.com ", "for": "8h", "reason": "holiday"},
                             headers=tokens["alice"]) as resp:
            created = await resp.json()
            assert resp.status == 201, created
        did = created["delegation"]["id"]
        assert created["delegation"]["to"] == "dave@example.com"
        async with http.get("/api/v1/delegations", headers=tokens["dave"]) as resp:
            assert [d["id"] for d in (await resp.json())["received"]] == [did]

        async with http.post("/api/v1/requests/g-1/decision",
                             json={"decision": "approve", "for": "alice@example.com"},
                             headers=tokens["dave"]) as resp:
            assert resp.status == 200, await resp.text()
        # One human, one vote: Alice herself no longer votes on g-1 (her slot is taken).
        async with http.post("/api/v1/requests/g-1/decision", json={"decision": "approve"},
                             headers=tokens["alice"]) as resp:
            assert resp.status in (403, 409)
        async with http.post("/api/v1/requests/g-1/decision", json={"decision": "approve"},
                             headers=tokens["bob"]) as resp:
            assert (await resp.json())["result"] == "final"
        # Separation of duties for the delegate: g-3 acts for dave, so not even "for alice".
        async with http.post("/api/v1/requests/g-3/decision",
                             json={"decision": "approve", "for": "alice@example.com"},
                             headers=tokens["dave"]) as resp:
            assert resp.status == 403 and (await resp.json())["code"] == "on_behalf_of"
        # Revoked by Alice: over at once.
        async with http.post(f"/api/v1/delegations/{did}/revoke",
                             headers=tokens["bob"]) as resp:
            assert resp.status == 403
        async with http.post(f"/api/v1/delegations/{did}/revoke",
                             headers=tokens["alice"]) as resp:
            assert resp.status == 200
        async with http.post("/api/v1/requests/g-2/decision",
                             json={"decision": "approve", "for": "alice@example.com"},
                             headers=tokens["dave"]) as resp:
            assert resp.status == 403 and (await resp.json())["code"] == "no_delegation"
    decision = reply(rt, "g-1")
    assert decision["status"] == "approved"
    vote = next(e for e in events(rt, "g-1", "vote") if e.actor == "alice@example.com")
    assert vote.details["delegate"] == "dave@example.com"
    assert vote.details["for_person"] == "alice@example.com"
    assert [e.details["to_person"] for e in rt.audit.entries()
            if e.event == "delegation_created"] == ["dave@example.com"]


async def test_delegate_cannot_vote_twice_through_two_principals(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    base = str(server.make_url(""))
    make_pending(rt, export("t-1"))
    async with aiohttp.ClientSession(base) as http:
        for who in ("alice", "bob"):
            async with http.post("/api/v1/delegations", json={"to": "carol@example.com",
                                                              "for": "1h"},
                                 headers=tokens[who]) as resp:
                assert resp.status == 201
        async with http.post("/api/v1/requests/t-1/decision",
                             json={"decision": "approve", "for": "alice@example.com"},
                             headers=tokens["carol"]) as resp:
            assert resp.status == 200
        for extra in ({"for": "bob@example.com"}, {}):
            async with http.post("/api/v1/requests/t-1/decision",
                                 json={"decision": "approve", **extra},
                                 headers=tokens["carol"]) as resp:
                assert resp.status in (403, 409), await resp.text()
    assert rt.store.get("t-1").status is Status.PENDING  # type: ignore[union-attr]


async def test_batch_decides_only_what_the_person_may_decide(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    base = str(server.make_url(""))
    make_pending(rt, export("b-1"), export("b-2", params={"rows": 6000, "format": "csv"}),
                 export("b-mine", on_behalf_of="alice@example.com"),
                 {"id": "b-drop", "action": "db.drop", "resource": "prod.orders",
                  "params": {}, "requester": "agent:etl-bot", "on_behalf_of": "erin@example.com",
                  "context": {"environment": "prod"}},
                 {"id": "b-sre", "action": "svc.restart", "resource": "api", "params": {},
                  "requester": "agent:etl-bot", "on_behalf_of": "erin@example.com",
                  "context": {}})
    async with aiohttp.ClientSession(base) as http:
        ids = ["b-1", "b-2", "b-mine", "b-drop", "b-sre", "nope", "b-1"]
        async with http.post("/api/v1/decisions", json={"ids": ids, "decision": "approve"},
                             headers=tokens["alice"]) as resp:
            data = await resp.json()
            assert resp.status == 200, data
        got = {r["id"]: (r["ok"], r["code"]) for r in data["results"]}
        assert got == {"b-1": (True, "recorded"), "b-2": (True, "recorded"),
                       "b-mine": (False, "on_behalf_of"), "b-drop": (False, "step_up_required"),
                       "b-sre": (False, "not_eligible"), "nope": (False, "not_found")}
        assert "2 of 6 went through" in data["summary"]
        async with http.post("/api/v1/decisions", json={"ids": ["b-1", "b-2"],
                                                        "decision": "deny",
                                                        "comment": "Too many rows"},
                             headers=tokens["bob"]) as resp:
            data = await resp.json()
        assert all(r["ok"] for r in data["results"])
        async with http.post("/api/v1/decisions", json={"ids": ["b-1"], "decision": "approve"},
                             headers=tokens["agent"]) as resp:
            assert resp.status == 403
    for rid in ("b-1", "b-2"):
        assert rt.store.get(rid).status is Status.DENIED  # type: ignore[union-attr]
    for rid in ("b-mine", "b-drop", "b-sre"):
        assert rt.store.get(rid).status is Status.PENDING  # type: ignore[union-attr]


async def test_extend_deadline_within_the_rule(rt: Runtime, server: TestServer,
                                               tokens: dict) -> None:
    base = str(server.make_url(""))
    make_pending(rt, export("x-1"), {"id": "x-rd", "action": "db.read", "resource": "t",
                                     "params": {}, "requester": "agent:etl-bot",
                                     "on_behalf_of": "erin@example.com", "context": {}})
    before = rt.store.get("x-1").deadline  # type: ignore[union-attr]
    async with aiohttp.ClientSession(base) as http:
        async with http.post("/api/v1/requests/x-1/extend", json={"by": "90m"},
                             headers=tokens["alice"]) as resp:
            assert resp.status == 200
        async with http.post("/api/v1/requests/x-1/extend", json={"by": "1h"},
                             headers=tokens["bob"]) as resp:
            body = await resp.json()
            assert resp.status == 422 and "30m left" in body["detail"], body
        async with http.post("/api/v1/requests/x-1/extend", json={"by": "30m"},
                             headers=tokens["erin"]) as resp:
            assert resp.status == 403  # it acts for her
        async with http.post("/api/v1/requests/x-rd/extend", json={"by": "30m"},
                             headers=tokens["alice"]) as resp:
            assert resp.status == 422
    assert rt.store.get("x-1").deadline == before + 5400  # type: ignore[union-attr]
    assert events(rt, "x-1", "deadline_extended")[0].details["seconds"] == 5400


async def test_history_filters_and_search(rt: Runtime, server: TestServer,
                                          tokens: dict) -> None:
    base = str(server.make_url(""))
    make_pending(rt, export("h-1"), export("h-2", params={"rows": 2, "format": "csv"}),
                 {"id": "h-rd", "action": "db.read", "resource": "warehouse.orders",
                  "params": {}, "requester": "agent:etl-bot",
                  "on_behalf_of": "erin@example.com", "context": {}})
    async with aiohttp.ClientSession(base) as http:
        await http.post("/api/v1/decisions", json={"ids": ["h-1", "h-rd"],
                                                   "decision": "approve"},
                        headers=tokens["alice"])
        await http.post("/api/v1/decisions", json={"ids": ["h-1"], "decision": "approve"},
                        headers=tokens["bob"])
        await http.post("/api/v1/decisions", json={"ids": ["h-2"], "decision": "deny",
                                                   "comment": "Wrong environment"},
                        headers=tokens["bob"])
        from tests.conftest import run_jobs

        run_jobs(rt)

        async def ids(**query: str) -> list[str]:
            async with http.get("/api/v1/history", params=query,
                                headers=tokens["carol"]) as resp:
                assert resp.status == 200, await resp.text()
                return [i["id"] for i in (await resp.json())["items"]]

        assert sorted(await ids()) == ["h-1", "h-2", "h-rd"]
        assert sorted(await ids(status="approved")) == ["h-1", "h-rd"]
        assert await ids(action="db.read") == ["h-rd"]
        assert await ids(person="bob", status="denied") == ["h-2"]
        assert await ids(q="wrong environment") == ["h-2"]
        assert await ids(agent="other-bot") == []
        async with http.get("/api/v1/history", params={"status": "bogus"},
                            headers=tokens["carol"]) as resp:
            assert resp.status == 400
        async with http.get("/api/v1/history", headers=tokens["agent"]) as resp:
            assert resp.status == 403
