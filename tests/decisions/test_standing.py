"""Standing approvals over the HTTP API: created only by the quorum voting a window, cover the
same request again (own grant, own audit entry), never a different resource, person, context
or params outside the bounds; listed and revoked (the next request is not covered)."""

from __future__ import annotations

import aiohttp
import jwt
from aiohttp.test_utils import TestServer

from signoff.models import Status
from signoff.runtime import Runtime
from signoff.standing import StandingApprovals
from tests.decisions.conftest import change_policy, events, export, make_pending, reply


async def _approve(http: aiohttp.ClientSession, rid: str, headers: dict[str, str],
                   **extra: object) -> dict:
    async with http.post(f"/api/v1/requests/{rid}/decision",
                         json={"decision": "approve", **extra}, headers=headers) as resp:
        data = await resp.json()
        assert resp.status == 200, data
        return data


async def test_standing_covers_the_same_request_and_nothing_else(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    base = str(server.make_url(""))
    assert make_pending(rt, export("s-1")) == ["pending"]
    async with aiohttp.ClientSession(base) as http:
        await _approve(http, "s-1", tokens["alice"], standing="1h")
        await _approve(http, "s-1", tokens["bob"], standing="15m")
        first = reply(rt, "s-1")
        assert first["status"] == "approved"
        # Listed, with the smallest window voted and the people behind it.
        async with http.get("/api/v1/standing", headers=tokens["carol"]) as resp:
            items = (await resp.json())["items"]
        assert len(items) == 1 and items[0]["approvers"] == ["alice@example.com",
                                                             "bob@example.com"]
        st = items[0]
        assert 14 * 60 < st["expires_at"] - st["created_at"] <= 15 * 60
        assert events(rt, "s-1", "standing_created")

        # The same request again (other id), params within bounds: approved at once, own grant.
        outcomes = make_pending(
            rt, export("s-2"), export("s-3", params={"rows": 9000, "format": "csv"}),
            # not covered: another resource, person, context, params outside the bounds or
            # another fixed param, another agent
            export("x-res", resource="warehouse.customers"),
            export("x-obo", on_behalf_of="dave@example.com"),
            export("x-ctx", context={"environment": "prod", "ticket": "OPS-8"}),
            export("x-env", context={"environment": "staging", "ticket": "OPS-7"}),
            export("x-big", params={"rows": 10001, "format": "csv"}),
            export("x-fmt", params={"rows": 5000, "format": "parquet"}),
            export("x-add", params={"rows": 5000, "format": "csv", "where": "1=1"}),
            export("x-agent", requester="agent:other-bot"),
            export("x-type", params={"rows": "9000", "format": "csv"}),
            export("x-none", params={"format": "csv"}),
            # the same person, spelled differently: the same scope (one identity rule)
            export("s-case", on_behalf_of=" Erin@Example.com"))
        assert outcomes[:2] == ["approved", "approved"]
        assert outcomes[2:-1] == ["pending"] * 10, outcomes
        assert outcomes[-1] == "approved"
        second, third = reply(rt, "s-2"), reply(rt, "s-3")
        assert second["status"] == third["status"] == "approved"
        assert second["standing"] == st["id"]
        claims = jwt.decode(third["grant"], options={"verify_signature": False})
        assert claims["psh"] == third["payload_sha256"] != first["payload_sha256"]
        assert claims["rid"] == "s-3" and claims["apr"] == ["alice@example.com",
                                                            "bob@example.com"]
        decided = events(rt, "s-2", "decided")
        assert decided[0].details["standing"] == st["id"]
        assert decided[0].details["approvers"] == ["alice@example.com", "bob@example.com"]
        async with http.get("/api/v1/requests/s-2", headers=tokens["carol"]) as resp:
            line = (await resp.json())["decision"]
        assert line.startswith("Approved under a standing approval by @alice, @bob until ")

        # Erin (the person it acts for) revokes it: the next request is not covered.
        async with http.post(f"/api/v1/standing/{st['id']}/revoke",
                             headers=tokens["dave"]) as resp:
            assert resp.status == 403  # not eligible, not behind it, not the person
        async with http.post(f"/api/v1/standing/{st['id']}/revoke",
                             headers=tokens["erin"]) as resp:
            assert resp.status == 200, await resp.text()
        assert make_pending(rt, export("s-4")) == ["pending"]
        async with http.get("/api/v1/standing", headers=tokens["carol"]) as resp:
            assert (await resp.json())["items"] == []


async def test_no_standing_without_the_whole_quorum_choosing_a_window(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    base = str(server.make_url(""))
    make_pending(rt, export("q-1"))
    async with aiohttp.ClientSession(base) as http:
        await _approve(http, "q-1", tokens["alice"], standing="4h")
        await _approve(http, "q-1", tokens["bob"])  # no window
        assert reply(rt, "q-1")["status"] == "approved"
        assert StandingApprovals(rt.redis, rt.keys).active() == []
        assert make_pending(rt, export("q-2")) == ["pending"]
        # Longer than the rule allows, a deny "for a while", a rule without standing.
        async with http.post("/api/v1/requests/q-2/decision",
                             json={"decision": "approve", "standing": "5h"},
                             headers=tokens["alice"]) as resp:
            assert resp.status == 422 and "4h" in (await resp.json())["detail"]
        async with http.post("/api/v1/requests/q-2/decision",
                             json={"decision": "deny", "standing": "1h"},
                             headers=tokens["alice"]) as resp:
            assert resp.status == 422
        make_pending(rt, {"id": "rd-1", "action": "db.read", "resource": "warehouse.orders",
                          "params": {}, "requester": "agent:etl-bot",
                          "on_behalf_of": "erin@example.com", "context": {}})
        async with http.post("/api/v1/requests/rd-1/decision",
                             json={"decision": "approve", "standing": "1h"},
                             headers=tokens["alice"]) as resp:
            assert resp.status == 422
            assert "does not allow" in (await resp.json())["detail"]
    assert rt.store.get("q-2").status is Status.PENDING  # type: ignore[union-attr]


async def test_standing_stops_when_its_people_may_no_longer_decide(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    """The people behind a standing approval are checked again for each request it would
    cover: once they no longer make the rule's quorum (the directory changed), it covers
    nothing."""
    base = str(server.make_url(""))
    make_pending(rt, export("d-1"))
    async with aiohttp.ClientSession(base) as http:
        await _approve(http, "d-1", tokens["alice"], standing="1h")
        await _approve(http, "d-1", tokens["bob"], standing="1h")
    assert reply(rt, "d-1")["status"] == "approved"
    # Bob leaves the dba group: the standing approval no longer makes "2 of dba".
    change_policy(rt, "00000000-0000-0000-0000-000000000b0b, groups: [dba]",
                  "00000000-0000-0000-0000-000000000b0b, groups: [sre]")
    assert make_pending(rt, export("d-2")) == ["pending"]


async def test_a_delegates_part_of_a_standing_approval_ends_with_the_delegation(
        rt: Runtime, server: TestServer, tokens: dict) -> None:
    base = str(server.make_url(""))
    make_pending(rt, export("dg-1"))
    async with aiohttp.ClientSession(base) as http:
        async with http.post("/api/v1/delegations", json={"to": "dave@example.com",
                                                          "for": "8h"},
                             headers=tokens["alice"]) as resp:
            did = (await resp.json())["delegation"]["id"]
        await _approve(http, "dg-1", tokens["dave"], standing="1h", **{"for": "alice@example.com"})
        await _approve(http, "dg-1", tokens["bob"], standing="1h")
        assert reply(rt, "dg-1")["status"] == "approved"
        assert make_pending(rt, export("dg-2")) == ["approved"]
        created = events(rt, "dg-1", "standing_created")[0]
        assert created.details["delegates"] == {"alice@example.com": "dave@example.com"}
        async with http.post(f"/api/v1/delegations/{did}/revoke",
                             headers=tokens["alice"]) as resp:
            assert resp.status == 200
        # Dave's vote for Alice no longer counts: one DBA left, not "2 of dba".
        assert make_pending(rt, export("dg-3")) == ["pending"]
