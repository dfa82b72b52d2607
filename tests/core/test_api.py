"""The HTTP API over real HTTP: agents ask, people decide, agents never decide."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from bot.app import create_app
from signoff.runtime import Runtime, set_current
from signoff.tokens import TokenKind
from tests.conftest import bearer, make_settings, run_intake, run_jobs
from tests.core.test_smoke_lifecycle import export_request


async def test_create_get_decide_over_http(rt: Runtime, server: TestServer) -> None:
    agent = rt.tokens.create(TokenKind.AGENT, "agent:export-bot")
    alice = rt.tokens.create(TokenKind.PERSON, "alice@example.com")
    bob = rt.tokens.create(TokenKind.PERSON, "bob@example.com")
    base = str(server.make_url(""))
    async with aiohttp.ClientSession(base) as http:
        body = export_request("api-1")
        async with http.post("/api/v1/requests", json=body, headers=bearer(agent)) as resp:
            assert resp.status == 202, await resp.text()
        run_intake(rt)
        run_jobs(rt)  # rq installs signal handlers: main thread only
        async with http.get("/api/v1/requests/api-1", headers=bearer(alice)) as resp:
            view = await resp.json()
            assert view["status"] == "pending"
            assert "sk_live" not in json.dumps(view)
            assert view["policy"]["progress"] == "2 of dba — 0 so far"
        async with http.get("/api/v1/requests", headers=bearer(alice)) as resp:
            assert [i["id"] for i in (await resp.json())["items"]] == ["api-1"]
        # Agent credentials never decide.
        async with http.post("/api/v1/requests/api-1/decision", json={"decision": "approve"},
                             headers=bearer(agent)) as resp:
            assert resp.status == 403
        async with http.post("/api/v1/requests/api-1/decision", json={"decision": "approve"},
                             headers=bearer("so_p_forged")) as resp:
            assert resp.status == 401
        async with http.post("/api/v1/requests/api-1/decision", json={"decision": "approve"},
                             headers=bearer(alice)) as resp:
            assert resp.status == 200, await resp.text()
        async with http.post("/api/v1/requests/api-1/decision", json={"decision": "approve"},
                             headers=bearer(bob)) as resp:
            data = await resp.json()
            assert data["result"] == "final" and data["request"]["status"] == "approved"
        async with http.post("/api/v1/requests/api-1/decision", json={"decision": "deny"},
                             headers=bearer(bob)) as resp:
            assert resp.status == 409
    run_jobs(rt)  # rq installs signal handlers: main thread only
    assert json.loads(rt.redis.lpop(rt.keys.reply("api-1")))["status"] == "approved"


async def test_api_rejects_bad_bodies_with_problem_json(rt: Runtime, server: TestServer) -> None:
    agent = rt.tokens.create(TokenKind.AGENT, "agent:export-bot")
    base = str(server.make_url(""))
    async with aiohttp.ClientSession(base) as http:
        async with http.post("/api/v1/requests", data=b"{nope", headers=bearer(agent)) as resp:
            assert resp.status == 400
            assert resp.content_type == "application/problem+json"
        body = export_request("api-2")
        del body["action"]
        async with http.post("/api/v1/requests", json=body, headers=bearer(agent)) as resp:
            assert resp.status == 422
            assert "action" in [e["field"] for e in (await resp.json())["errors"]]
        body = export_request("api-3", requester="agent:someone-else")
        async with http.post("/api/v1/requests", json=body, headers=bearer(agent)) as resp:
            assert resp.status == 403
        async with http.get("/healthz") as resp:
            assert (await resp.json())["ok"] is True
        async with http.get("/metrics") as resp:
            assert "signoff_pending_requests" in await resp.text()
        async with http.get("/openapi.json") as resp:
            spec = await resp.json()
            assert "/api/v1/requests/{id}/decision" in spec["paths"]


CROWD_POLICY = """
version: 1
directory:
  people:
{people}
  groups:
    crowd: {{description: many approvers}}
    admins: {{description: admins}}
  agents:
    - id: agent:bulk
      owner: owner@example.com
rules:
  - id: crowd-3
    match: {{action: "bulk.*"}}
    require:
      approvers: 3 of crowd
      channels: [web]
"""


async def test_fifty_concurrent_decisions_end_in_one_final_state(redis_url: str,
                                                                  tmp_path: Path) -> None:
    people = "\n".join(
        f"    - {{email: p{i}@example.com, groups: [crowd]}}" for i in range(50)
    ) + "\n    - {email: owner@example.com, groups: [admins]}"
    policy_file = tmp_path / "crowd.yaml"
    policy_file.write_text(CROWD_POLICY.format(people=people))
    rt = Runtime(make_settings(redis_url, tmp_path / "data", policy_path=policy_file))
    set_current(rt)
    tokens = [rt.tokens.create(TokenKind.PERSON, f"p{i}@example.com") for i in range(50)]
    rt.redis.xadd(rt.keys.requests, {"body": json.dumps({
        "id": "race-1", "action": "bulk.run", "resource": "x", "requester": "agent:bulk",
        "params": {}})})
    run_intake(rt)
    run_jobs(rt)
    srv = TestServer(create_app(rt), host="127.0.0.1")
    await srv.start_server()
    try:
        async with aiohttp.ClientSession(str(srv.make_url(""))) as http:
            async def click(token: str) -> dict:
                async with http.post("/api/v1/requests/race-1/decision",
                                     json={"decision": "approve"}, headers=bearer(token)) as r:
                    return {"status": r.status, **(await r.json())}

            results = await asyncio.gather(*(click(t) for t in tokens))
    finally:
        await srv.close()
    codes = [r.get("result") or r.get("code") for r in results]
    assert codes.count("final") == 1
    assert codes.count("recorded") == 2
    assert codes.count("closed") == 47
    run_jobs(rt)
    assert rt.redis.llen(rt.keys.reply("race-1")) == 1
    decision = json.loads(rt.redis.lpop(rt.keys.reply("race-1")))
    assert decision["status"] == "approved" and len(decision["approvers"]) == 3
    assert len(rt.store.get("race-1").votes) == 3
    assert rt.redis.xlen(rt.keys.decisions) == 1
    rt.close()
