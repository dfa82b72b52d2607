"""No agent can act for, read or block another: several agents, each with the credentials
Signoff issued it, against the running intake and workers on a real Redis with ACLs.

Each attack is refused with a clear error (Redis's NOPERM, or a ``rejected`` decision naming
the field) and changes nothing that belongs to anyone else.
"""

from __future__ import annotations

import json

import pytest
import redis

from signoff.models import Status
from signoff.runtime import Runtime
from signoff.tokens import TokenKind
from tests.security.agents_helpers import (
    Agent,
    body,
    decision_of,
    drive,
    wait_reply,
)

NOPERM = (redis.exceptions.NoPermissionError, redis.exceptions.ResponseError)


def test_the_requester_is_the_credentials_never_the_body(srt: Runtime,
                                                         agents: dict[str, Agent]) -> None:
    mallory = agents["mallory"]
    mallory.send(body("m-1", requester="agent:export-bot"))
    mallory.send(body("m-2", requester=" AGENT:MALLORY "))  # itself, any case: fine
    mallory.send(body("m-3"))                                # left out: fine
    drive(srt)
    rejected = wait_reply(mallory, "m-1", srt)
    assert rejected.status is Status.REJECTED
    assert rejected.error and rejected.error[0].field == "requester"
    assert "agent:mallory" in rejected.error[0].message
    for rid in ("m-2", "m-3"):
        record = srt.store.get(f"mallory~{rid}")
        assert record is not None and record.requester == "agent:mallory"
    # Nothing was created for the agent it named.
    assert srt.store.get("export-bot~m-1") is None
    assert srt.redis.zcard(srt.keys.open_for_agent("agent:export-bot")) == 0


def test_same_id_two_agents_two_requests(srt: Runtime, agents: dict[str, Agent]) -> None:
    """Squatting an id: both agents use 'job-1'; each gets its own decision only."""
    bot, mallory = agents["export-bot"], agents["mallory"]
    mallory.send(body("job-1", params={"rows": 1}, context={"environment": "prod"}))
    bot.send(body("job-1"))  # dev: approved by policy
    drive(srt)
    mine = wait_reply(bot, "job-1", srt)
    assert mine.status is Status.APPROVED and mine.id == "job-1"
    theirs = srt.store.get("mallory~job-1")
    assert theirs is not None and theirs.status is Status.PENDING  # untouched, still waiting
    assert srt.store.get("export-bot~job-1").requester == "agent:export-bot"  # type: ignore[union-attr]
    # The squatter's duplicate of its own id is a duplicate of its own request only.
    mallory.send(body("job-1"))
    drive(srt)
    assert srt.store.get("mallory~job-1").status is Status.PENDING  # type: ignore[union-attr]
    assert decision_of(srt, "mallory", "job-1") is None


def test_forging_a_reply_or_reading_a_decision_is_refused(srt: Runtime,
                                                          agents: dict[str, Agent]) -> None:
    bot, mallory = agents["export-bot"], agents["mallory"]
    forged = json.dumps({"id": "x-1", "status": "approved", "grant": "forged"})
    with pytest.raises(NOPERM):
        mallory.r.lpush(bot.keys.reply("x-1"), forged)
    with pytest.raises(NOPERM):
        mallory.r.xadd(bot.keys.reply("x-1"), {"body": forged})
    bot.send(body("x-1"))
    drive(srt)
    with pytest.raises(NOPERM):
        mallory.r.blpop([bot.keys.reply("x-1")], timeout=0.05)
    with pytest.raises(NOPERM):
        mallory.r.xrange(bot.keys.decisions)
    with pytest.raises(NOPERM):
        mallory.r.xrange(srt.keys.decisions)
    got = wait_reply(bot, "x-1", srt)
    assert got.status is Status.APPROVED and got.grant != "forged"


def test_reply_to_is_refused_and_writes_nowhere(srt: Runtime, agents: dict[str, Agent]) -> None:
    """reply_to naming another agent's reply list, an audit index or rq's queue."""
    bot, mallory = agents["export-bot"], agents["mallory"]
    targets = [bot.keys.reply("v-1"), srt.keys.audit_for("export-bot~v-1"),
               "rq:queue:signoff", srt.keys.request("export-bot~v-1")]
    for n, target in enumerate(targets):
        mallory.send(body(f"r-{n}", reply_to=target))
    drive(srt)
    for n, target in enumerate(targets):
        d = wait_reply(mallory, f"r-{n}", srt)
        assert d.status is Status.REJECTED
        assert d.error and any(e.field == "reply_to" for e in d.error)
        assert not srt.redis.exists(target) or target.startswith(srt.keys.audit_for(""))
    assert not srt.redis.exists(bot.keys.reply("v-1"))
    assert srt.redis.type("rq:queue:signoff") in ("none", "list")


def test_cancel_and_early_cancel_reach_only_ones_own(srt: Runtime,
                                                     agents: dict[str, Agent]) -> None:
    bot, mallory = agents["export-bot"], agents["mallory"]
    deploy = agents["deploy-bot"]
    deploy.send(body("d-1", context={"environment": "prod"}))
    drive(srt)
    assert srt.store.status("deploy-bot~d-1") is Status.PENDING
    # Cancel of another's id, naming the victim, or only the id: never the victim's request.
    mallory.r.xadd(mallory.keys.requests, {"cancel": json.dumps(
        {"id": "d-1", "requester": "agent:deploy-bot"})})
    mallory.r.xadd(mallory.keys.requests, {"cancel": json.dumps({"id": "d-1"})})
    # Early cancel of an id the victim has not sent yet.
    mallory.r.xadd(mallory.keys.requests, {"cancel": json.dumps({"id": "b-later"})})
    with pytest.raises(NOPERM):
        mallory.r.xadd(bot.keys.requests, {"cancel": json.dumps({"id": "b-later"})})
    drive(srt)
    assert srt.store.status("deploy-bot~d-1") is Status.PENDING
    bot.send(body("b-later"))
    d = wait_reply(bot, "b-later", srt)
    assert d.status is Status.APPROVED
    # Its own cancel works (also for an id sent later).
    deploy.r.xadd(deploy.keys.requests, {"cancel": json.dumps({"id": "d-1", "reason": "done"})})
    d = wait_reply(deploy, "d-1", srt)
    assert d.status is Status.CANCELLED


def test_the_api_scopes_agent_tokens(srt: Runtime, agents: dict[str, Agent]) -> None:
    """An agent's API token names its own ids only: another agent's request is not found."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from tests.conftest import bearer

    bot, mallory = agents["export-bot"], agents["mallory"]
    bot.send(body("api-1", context={"environment": "prod"}))
    drive(srt)

    async def go() -> None:
        client = TestClient(TestServer(create_app(srt)))
        await client.start_server()
        try:
            m = bearer(mallory.creds.api_token)
            for path in ("/api/v1/requests/api-1", "/api/v1/requests/export-bot~api-1"):
                r = await client.get(path, headers=m)
                assert r.status == 404, path
                r = await client.post(path + "/cancel", headers=m)
                assert r.status == 404, path
            r = await client.post("/api/v1/requests", headers=m, json={
                **body("api-2"), "requester": "agent:export-bot"})
            assert r.status == 403
            r = await client.post("/api/v1/requests", headers=m, json=body("api-1"))
            assert r.status == 202
            assert (await r.json())["reply_key"] == mallory.keys.reply("api-1")
            b = bearer(bot.creds.api_token)
            r = await client.get("/api/v1/requests/api-1", headers=b)
            assert r.status == 200 and (await r.json())["requester"] == "agent:export-bot"
            # People name Signoff's own (scoped) id in paths: the '~' travels as is.
            for who in ("alice@example.com", "bob@example.com"):
                token = bearer(srt.tokens.create(TokenKind.PERSON, who))
                r = await client.post("/api/v1/requests/export-bot~api-1/decision",
                                      headers=token, json={"decision": "approve"})
                assert r.status == 200, await r.text()
        finally:
            await client.close()

    asyncio.run(go())
    decided = wait_reply(bot, "api-1", srt)
    assert decided.status is Status.APPROVED and decided.id == "api-1"
    assert [a["person"] for a in decided.approvers] == ["alice@example.com", "bob@example.com"]
    assert srt.store.get("mallory~api-1").requester == "agent:mallory"  # type: ignore[union-attr]


def test_inbox_pages_and_votes_work_with_scoped_ids(srt: Runtime,
                                                     agents: dict[str, Agent]) -> None:
    """The inbox links and forms carry Signoff's scoped id ('~' as is)."""
    import asyncio

    from aiohttp.test_utils import TestServer

    from bot.app import create_app
    from tests.inbox.conftest import client, sign_in

    bot = agents["export-bot"]
    bot.send(body("in-1", context={"environment": "prod"}))
    drive(srt)
    assert srt.store.status("export-bot~in-1") is Status.PENDING

    async def go() -> None:
        server = TestServer(create_app(srt), host="127.0.0.1")
        await server.start_server()
        try:
            for who in ("alice@example.com", "bob@example.com"):
                async with client(server) as http:
                    token = await sign_in(http, who)
                    async with http.get("/inbox") as resp:
                        assert "/inbox/r/export-bot~in-1" in await resp.text()
                    async with http.get("/inbox/r/export-bot~in-1") as resp:
                        assert resp.status == 200
                    async with http.post("/inbox/r/export-bot~in-1/decide", data={
                            "csrf": token, "choice": "approve"},
                            allow_redirects=False) as resp:
                        assert resp.status == 303
        finally:
            await server.close()

    asyncio.run(go())
    assert wait_reply(bot, "in-1", srt).status is Status.APPROVED


def _victim_state(rt: Runtime, name: str) -> dict[str, bytes | None]:
    """Every key of ``name``'s (its namespace, its requests' records, votes and audit index),
    serialised by Redis itself (DUMP), read as Signoff."""
    patterns = (f"{rt.keys.agent(name).base}:*", rt.keys.request(f"{name}~*"),
                rt.keys.votes(f"{name}~*"), rt.keys.audit_for(f"{name}~*"),
                rt.keys.cancel_early(f"{name}~*"))
    r = rt.redis_bytes
    keys = sorted({k for p in patterns for k in r.scan_iter(match=p, count=1000)})
    return {k.decode(): r.dump(k) for k in keys}


def test_every_attack_at_once_changes_nothing_of_the_victims(srt: Runtime,
                                                            agents: dict[str, Agent]) -> None:
    """Mallory tries everything its credentials allow against export-bot; export-bot's keys
    are byte for byte what they were, and its request is decided as if Mallory did nothing."""
    bot, mallory = agents["export-bot"], agents["mallory"]
    bot.send(body("t-1", context={"environment": "prod"}))
    drive(srt)
    before = _victim_state(srt, "export-bot")
    assert any(k.startswith(srt.keys.request("export-bot~")) for k in before)
    vk = bot.keys
    attempts = [
        lambda: mallory.r.xadd(vk.requests, {"cancel": json.dumps({"id": "t-1"})}),
        lambda: mallory.r.lpush(vk.reply("t-1"), "{}"),
        lambda: mallory.r.blpop([vk.reply("t-1")], timeout=0.01),
        lambda: mallory.r.set(vk.grant_used("x"), "1"),
        lambda: mallory.r.xadd(vk.grant_reports, {"result": "used", "report": "{}"}),
        lambda: mallory.r.hget(srt.keys.request("export-bot~t-1"), "ciphertext"),
        lambda: mallory.r.set(srt.keys.cancel_early("export-bot~t-2"), "{}"),
        lambda: mallory.r.evalsha("0" * 40, 1, vk.grant_used("x")),
    ]
    for attempt in attempts:
        with pytest.raises(NOPERM):
            attempt()
    # What its own stream accepts: bodies and cancels naming the victim or its ids.
    for fields in ({"body": json.dumps(body("t-1", requester="agent:export-bot"))},
                   {"body": json.dumps(body("t-2", reply_to=vk.reply("t-1")))},
                   {"cancel": json.dumps({"id": "t-1", "requester": "agent:export-bot"})},
                   {"cancel": json.dumps({"id": "t-1"})},
                   {"cancel": json.dumps({"id": "t-2"})}):
        mallory.r.xadd(mallory.keys.requests, fields)
    from tests.conftest import run_intake

    run_intake(srt)
    after = _victim_state(srt, "export-bot")
    changed = [k for k in before if before[k] != after.get(k)] + [
        k for k in after if k not in before and not k.endswith(":requests")]
    # The intake's own read of the victim's stream moves only its consumer group.
    assert [k for k in changed if k != vk.requests] == []
    assert srt.store.status("export-bot~t-1") is Status.PENDING
    bot.send(body("t-2"))
    assert wait_reply(bot, "t-2", srt).status is Status.APPROVED
