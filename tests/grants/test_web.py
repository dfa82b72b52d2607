"""Over HTTP: the public keys, grant status and revocation by approvers only."""

from __future__ import annotations

import asyncio

import aiohttp
import jwt
import pytest
from aiohttp.test_utils import TestServer

from signoff.grant_check import GrantError, check_grant, unverified_claims
from signoff.grants import KeyRing, Purpose
from signoff.runtime import Runtime
from signoff.tokens import TokenKind
from tests.conftest import bearer
from tests.grants.helpers import PARAMS, human_approved


async def test_jwks_verifies_a_grant_with_nothing_else(rt: Runtime, server: TestServer) -> None:
    decision = human_approved(rt, "w-1")  # rq needs the main thread
    await asyncio.to_thread(KeyRing(rt, Purpose.AUDIT).active)
    async with aiohttp.ClientSession(str(server.make_url(""))) as http:
        async with http.get("/.well-known/jwks.json") as resp:
            assert resp.status == 200
            assert "max-age" in resp.headers["Cache-Control"]
            jwks = await resp.json()
        async with http.get("/.well-known/signoff-audit-keys.json") as resp:
            audit_jwks = await resp.json()
    assert all(k["kty"] == "OKP" and k["crv"] == "Ed25519" and "d" not in k
               for k in jwks["keys"] + audit_jwks["keys"])
    assert not {k["kid"] for k in jwks["keys"]} & {k["kid"] for k in audit_jwks["keys"]}
    # A third party verifies the grant with PyJWT and the published key only.
    kid = jwt.get_unverified_header(decision.grant)["kid"]
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == kid))
    claims = jwt.decode(decision.grant, key, algorithms=["EdDSA"], audience="signoff-grant")
    assert claims["rid"] == "w-1"


async def test_revoke_over_http_needs_an_approver_of_that_request(
        rt: Runtime, server: TestServer) -> None:
    decision = human_approved(rt, "w-2")
    jti = unverified_claims(decision.grant)["jti"]
    frank = rt.tokens.create(TokenKind.PERSON, "frank@example.com")
    agent = rt.tokens.create(TokenKind.AGENT, "agent:export-bot")
    carol = rt.tokens.create(TokenKind.PERSON, "carol@example.com")
    async with aiohttp.ClientSession(str(server.make_url(""))) as http:
        async with http.post(f"/api/v1/grants/{jti}/revoke") as resp:
            assert resp.status == 401
        async with http.post(f"/api/v1/grants/{jti}/revoke", headers=bearer(agent)) as resp:
            assert resp.status == 403
        async with http.post(f"/api/v1/grants/{jti}/revoke", headers=bearer(frank),
                             json={"reason": "no"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["code"] == "forbidden"
        async with http.get(f"/api/v1/grants/{jti}", headers=bearer(carol)) as resp:
            assert (await resp.json())["state"] == "issued"
        async with http.post("/api/v1/requests/w-2/grant/revoke", headers=bearer(carol),
                             json={"reason": "exported the wrong table"}) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["jti"] == jti
        async with http.post(f"/api/v1/grants/{jti}/revoke", headers=bearer(carol)) as resp:
            assert resp.status == 409
            assert (await resp.json())["code"] == "already_revoked"
        async with http.get(f"/api/v1/grants/{jti}", headers=bearer(carol)) as resp:
            body = await resp.json()
            assert body["state"] == "revoked" and body["revoked_by"] == "carol@example.com"
        async with http.post(f"/api/v1/grants/{'0' * 32}/revoke", headers=bearer(carol)) as resp:
            assert resp.status == 404
    with pytest.raises(GrantError) as err:
        check_grant(rt.redis, rt.keys, decision.grant, action="db.export",
                    resource="warehouse.customers", params=PARAMS)
    assert err.value.code == "revoked"
