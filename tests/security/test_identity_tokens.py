"""API person tokens speak for a person only while the directory lists them: checked on
every call (reads, listings, decisions), in any spelling or alias of theirs."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from signoff import lifecycle
from signoff.runtime import Runtime, set_current
from signoff.tokens import TokenKind
from tests.conftest import bearer, make_settings, run_jobs

POLICY = """
version: 1
directory:
  people:
    - {email: alice@example.com, groups: [dba], aliases: [a.anders@example.com]}
    - {email: bob@example.com, groups: [dba]}
    - {email: erin@example.com, groups: [admins]}
  groups: {dba: {description: DBAs}, admins: {description: admins}}
  agents:
    - {id: "agent:bot", owner: erin@example.com}
default:
  require: {approvers: 1 of dba, channels: [web]}
"""
WITHOUT_ALICE = POLICY.replace(
    "    - {email: alice@example.com, groups: [dba], aliases: [a.anders@example.com]}\n", "")


@pytest.fixture
def trt(redis_url: str, tmp_path: Path) -> Iterator[Runtime]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    runtime = Runtime(make_settings(redis_url, tmp_path / "data", policy_path=policy))
    set_current(runtime)
    yield runtime
    runtime.close()


@pytest.fixture
async def api(trt: Runtime) -> AsyncIterator[aiohttp.ClientSession]:
    srv = TestServer(create_app(trt), host="127.0.0.1")
    await srv.start_server()
    async with aiohttp.ClientSession(str(srv.make_url(""))) as http:
        yield http
    await srv.close()


def pending(rt: Runtime, rid: str) -> None:
    body = {"id": rid, "action": "db.export", "resource": "t", "params": {},
            "requester": "agent:bot"}
    assert lifecycle.ingest(rt, json.dumps(body)).outcome == "accepted"
    run_jobs(rt)


async def status(http: aiohttp.ClientSession, method: str, path: str, token: str,
                 **kw: object) -> int:
    async with http.request(method, path, headers=bearer(token), **kw) as resp:
        return resp.status


async def test_a_person_removed_from_the_directory_can_no_longer_read_or_decide(
        trt: Runtime, api: aiohttp.ClientSession) -> None:
    pending(trt, "t-1")
    pending(trt, "t-2")
    alice = trt.tokens.create(TokenKind.PERSON, "alice@example.com")
    assert await status(api, "GET", "/api/v1/requests/t-1", alice) == 200
    assert await status(api, "GET", "/api/v1/requests", alice) == 200
    assert await status(api, "POST", "/api/v1/requests/t-1/decision", alice,
                        json={"decision": "approve"}) == 200
    # Alice leaves: the policy's directory no longer lists her. Her token was never revoked.
    Path(str(trt.settings.policy_path)).write_text(WITHOUT_ALICE)
    assert trt.policies.reload()
    assert await status(api, "GET", "/api/v1/requests/t-2", alice) == 401
    assert await status(api, "GET", "/api/v1/requests", alice) == 401
    assert await status(api, "POST", "/api/v1/requests/t-2/decision", alice,
                        json={"decision": "approve"}) == 401
    assert trt.store.get("t-2").votes == {}
    assert trt.tokens.lookup(alice) is None
    # Back in the directory, the same token works again (it is the directory that decides).
    Path(str(trt.settings.policy_path)).write_text(POLICY)
    assert trt.policies.reload()
    assert await status(api, "GET", "/api/v1/requests/t-2", alice) == 200


async def test_a_token_in_another_spelling_or_alias_speaks_for_the_person(
        trt: Runtime, api: aiohttp.ClientSession) -> None:
    pending(trt, "t-3")
    token = trt.tokens.create(TokenKind.PERSON, " A.Anders@Example.COM ")
    info = trt.tokens.lookup(token)
    assert info is not None and info.subject == "alice@example.com"
    assert await status(api, "POST", "/api/v1/requests/t-3/decision", token,
                        json={"decision": "approve"}) == 200
    assert list(trt.store.get("t-3").votes) == ["alice@example.com"]


def test_a_person_token_without_a_directory_fails_closed(trt: Runtime) -> None:
    from signoff.tokens import TokenStore

    token = trt.tokens.create(TokenKind.PERSON, "bob@example.com")
    assert TokenStore(trt.redis, trt.keys).lookup(token) is None
    assert trt.tokens.lookup(token).subject == "bob@example.com"


async def test_an_inbox_session_ends_when_the_person_leaves_the_directory(
        redis_url: str, tmp_path: Path) -> None:
    from tests.inbox.conftest import client, sign_in

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    rt = Runtime(make_settings(redis_url, tmp_path / "data", policy_path=policy,
                               demo_sign_in=True))
    set_current(rt)
    srv = TestServer(create_app(rt), host="127.0.0.1")
    await srv.start_server()
    try:
        pending(rt, "t-4")
        async with client(srv) as http:
            await sign_in(http, " A.Anders@Example.com ")  # an alias, in another spelling
            async with http.get("/inbox/r/t-4") as resp:
                assert resp.status == 200
            policy.write_text(WITHOUT_ALICE)
            assert rt.policies.reload()
            async with http.get("/inbox/r/t-4", allow_redirects=False) as resp:
                assert resp.status in (303, 401, 403)
                assert "/inbox/login" in resp.headers.get("Location", "/inbox/login")
    finally:
        await srv.close()
        rt.close()
