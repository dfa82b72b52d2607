"""OpenID Connect sign-in against a local identity provider (authorization code + PKCE)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric import rsa

from bot.app import create_app
from bot.inbox.oidc import OidcClient, OidcError, email_from_claims, pkce_pair, s256
from signoff.runtime import Runtime
from tests.conftest import free_port, make_settings

CLIENT_ID = "signoff-inbox"
CLIENT_SECRET = "s3cret with spaces&symbols, long enough for HS256"
IDP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
DROP = object()  # a claim set to this is left out of the ID token


@dataclass
class FakeIdP:
    """A tiny identity provider: discovery, authorize (auto-consent), token, JWKS."""

    key: Any = IDP_KEY
    email: str = "alice@example.com"
    claims: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)
    token_calls: list[dict[str, str]] = field(default_factory=list)
    base: str = ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self.discovery)
        app.router.add_get("/authorize", self.authorize)
        app.router.add_post("/token", self.token)
        app.router.add_get("/jwks", self.jwks)
        return app

    async def discovery(self, request: web.Request) -> web.Response:
        return web.json_response({
            "issuer": self.base, "authorization_endpoint": self.base + "/authorize",
            "token_endpoint": self.base + "/token", "jwks_uri": self.base + "/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_basic"]})

    async def jwks(self, request: web.Request) -> web.Response:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwk.update({"kid": "k1", "use": "sig", "alg": "RS256"})
        return web.json_response({"keys": [jwk]})

    async def authorize(self, request: web.Request) -> web.Response:
        q = request.query
        assert q["response_type"] == "code" and q["client_id"] == CLIENT_ID
        assert q["code_challenge_method"] == "S256" and "openid" in q["scope"].split()
        code = f"code-{len(self.codes)}"
        self.codes[code] = dict(q)
        raise web.HTTPFound(f"{q['redirect_uri']}?code={code}&state={q['state']}")

    async def token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_calls.append(form)
        auth = request.headers.get("Authorization", "")
        user, _, pw = base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
        from urllib.parse import unquote

        if (unquote(user), unquote(pw)) != (CLIENT_ID, CLIENT_SECRET):
            return web.json_response({"error": "invalid_client"}, status=401)
        grant = self.codes.pop(str(form.get("code")), None)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if s256(str(form.get("code_verifier"))) != grant["code_challenge"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        now = int(time.time())
        claims = {"iss": self.base, "aud": CLIENT_ID, "sub": "user-1", "iat": now,
                  "exp": now + 300, "nonce": grant["nonce"], "email": self.email,
                  "email_verified": True, **self.claims}
        claims = {k: v for k, v in claims.items() if v is not DROP}
        token = jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "k1"})
        return web.json_response({"access_token": "at", "token_type": "Bearer",
                                  "id_token": token})


@pytest.fixture
async def idp() -> AsyncIterator[FakeIdP]:
    fake = FakeIdP()
    srv = TestServer(fake.app(), host="127.0.0.1")
    await srv.start_server()
    fake.base = str(srv.make_url("")).rstrip("/")
    yield fake
    await srv.close()


@pytest.fixture
async def oidc_server(redis_url: str, tmp_path: Path, idp: FakeIdP, request: Any
                      ) -> AsyncIterator[TestServer]:
    port = free_port()
    extra = getattr(request, "param", {})
    settings = make_settings(redis_url, tmp_path / "d", oidc_issuer=idp.base,
                             oidc_client_id=CLIENT_ID, oidc_client_secret=CLIENT_SECRET,
                             public_url=f"http://127.0.0.1:{port}", demo_sign_in=True, **extra)
    rt = Runtime(settings)
    srv = TestServer(create_app(rt), host="127.0.0.1", port=port)
    await srv.start_server()
    yield srv
    await srv.close()
    rt.close()


def http_for(srv: TestServer) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def start(http: aiohttp.ClientSession, srv: TestServer, nxt: str = "/inbox/r/x-1"
                ) -> str:
    """Begin a sign-in; returns the provider's redirect back to the callback."""
    async with http.get(srv.make_url(f"/inbox/auth/start?next={nxt}"),
                        allow_redirects=False) as resp:
        assert resp.status == 302
        to_idp = resp.headers["Location"]
    async with http.get(to_idp, allow_redirects=False) as resp:
        assert resp.status == 302
        return resp.headers["Location"]


async def test_sign_in_with_pkce_maps_the_email_to_a_person(oidc_server: TestServer,
                                                            idp: FakeIdP) -> None:
    async with http_for(oidc_server) as http:
        async with http.get(oidc_server.make_url("/inbox/login")) as resp:
            page = await resp.text()
        assert "Sign in with 127.0.0.1" in page and "data-email" not in page, \
            "OIDC configured: no demo sign-in"
        back = await start(http, oidc_server)
        grant = next(iter(idp.codes.values()))
        assert grant["redirect_uri"] == str(oidc_server.make_url("/inbox/auth/callback"))
        assert len(grant["state"]) >= 40 and len(grant["nonce"]) >= 40
        async with http.get(back, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
            assert resp.headers["Location"] == "/inbox/r/x-1"
        verifier = idp.token_calls[0]["code_verifier"]
        assert 43 <= len(verifier) <= 128 and s256(verifier) == grant["code_challenge"]
        async with http.get(oidc_server.make_url("/inbox")) as resp:
            assert resp.status == 200 and "Alice Anders" in await resp.text()
        # The same answer cannot be used twice.
        async with http.get(back, allow_redirects=False) as resp:
            assert resp.status == 400


@pytest.mark.parametrize(("claims", "email", "message"), [
    ({}, "mallory@example.com", "is not in Signoff&#39;s directory"),
    ({"nonce": "another-sign-in"}, "alice@example.com", "nonce"),
    ({"aud": "some-other-app"}, "alice@example.com", "InvalidAudienceError"),
    ({"iss": "https://evil.example"}, "alice@example.com", "InvalidIssuerError"),
    ({"exp": int(time.time()) - 3600}, "alice@example.com", "ExpiredSignatureError"),
    ({"email_verified": False}, "alice@example.com", "not verified"),
    ({"email_verified": "false"}, "alice@example.com", "not verified"),
    ({"email_verified": "yes"}, "alice@example.com", "not verified"),
    ({"email_verified": None}, "alice@example.com", "not verified"),
    ({"email_verified": DROP}, "alice@example.com", "no email_verified claim"),
    ({"email_verified": DROP}, "Alice@Example.com", "no email_verified claim"),
])
async def test_bad_id_tokens_are_refused(oidc_server: TestServer, idp: FakeIdP,
                                         claims: dict, email: str, message: str) -> None:
    idp.claims, idp.email = claims, email
    async with http_for(oidc_server) as http:
        back = await start(http, oidc_server)
        async with http.get(back, allow_redirects=False) as resp:
            assert resp.status == 403
            assert message in await resp.text()
        async with http.get(oidc_server.make_url("/inbox"), allow_redirects=False) as resp:
            assert resp.status == 303


async def test_answers_for_another_browser_or_state_are_refused(oidc_server: TestServer,
                                                                idp: FakeIdP) -> None:
    async with http_for(oidc_server) as victim, http_for(oidc_server) as attacker:
        back = await start(attacker, oidc_server)
        # Login CSRF: the attacker's code in the victim's browser finds no sign-in there.
        async with victim.get(back, allow_redirects=False) as resp:
            assert resp.status == 400
        back = await start(victim, oidc_server)
        parts = urlsplit(back)
        q = parse_qs(parts.query)
        tampered = f"{parts.scheme}://{parts.netloc}{parts.path}?code={q['code'][0]}&state=x"
        async with victim.get(tampered, allow_redirects=False) as resp:
            assert resp.status == 400 and "state" in await resp.text()
        assert not idp.token_calls, "no code is exchanged without the right state"


async def test_client_checks_pkce_and_algorithms(idp: FakeIdP) -> None:
    verifier, challenge = pkce_pair()
    assert challenge == base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    oidc = OidcClient(idp.base, CLIENT_ID, CLIENT_SECRET, "http://127.0.0.1:1/cb")
    try:
        url = await oidc.authorization_url("st", "no", verifier)
        assert f"code_challenge={challenge}" in url and "code_challenge_method=S256" in url
        forged = jwt.encode({"iss": idp.base, "aud": CLIENT_ID, "sub": "x", "iat": 1,
                             "exp": 2 ** 31, "nonce": "no"}, CLIENT_SECRET, algorithm="HS256")
        with pytest.raises(OidcError, match="algorithm"):
            await oidc.verify_id_token(forged, "no")
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        foreign = jwt.encode({"iss": idp.base, "aud": CLIENT_ID, "sub": "x",
                              "iat": int(time.time()), "exp": int(time.time()) + 60,
                              "nonce": "no"}, other_key, algorithm="RS256",
                             headers={"kid": "k1"})
        with pytest.raises(OidcError, match="InvalidSignatureError"):
            await oidc.verify_id_token(foreign, "no")
    finally:
        await oidc.close()
    with pytest.raises(OidcError):
        email_from_claims({"sub": "x"})
    assert email_from_claims({"email": "Bob@Example.com", "email_verified": "true"}) == \
        "bob@example.com"


async def _signs_in(srv: TestServer) -> tuple[int, str]:
    async with http_for(srv) as http:
        back = await start(http, srv)
        async with http.get(back, allow_redirects=False) as resp:
            status, text = resp.status, await resp.text()
        if status == 303:
            async with http.get(srv.make_url("/inbox")) as resp:
                text = await resp.text()
        return status, text


async def test_a_verified_email_in_another_spelling_is_the_same_person(
        oidc_server: TestServer, idp: FakeIdP) -> None:
    idp.email = "  ALICE@Example.COM "
    status, page = await _signs_in(oidc_server)
    assert status == 303 and "Alice Anders" in page


@pytest.mark.parametrize("oidc_server", [{"oidc_require_email_verified": False}],
                         indirect=True)
async def test_providers_without_email_verified_need_the_documented_setting(
        oidc_server: TestServer, idp: FakeIdP) -> None:
    idp.claims = {"email_verified": DROP}
    status, page = await _signs_in(oidc_server)
    assert status == 303 and "Alice Anders" in page, "setting off: a token without the claim"
    idp.claims = {"email_verified": False}
    status, page = await _signs_in(oidc_server)
    assert status == 403 and "not verified" in page, "an explicit false is refused anyway"


def test_email_from_claims_needs_the_provider_to_vouch_for_the_address() -> None:
    with pytest.raises(OidcError, match="no email_verified claim"):
        email_from_claims({"email": "bob@example.com"})
    assert email_from_claims({"email": "bob@example.com"}, require_verified=False) == \
        "bob@example.com"
    for bad in (False, "false", "True ", 1, 0, None, [], {}):
        with pytest.raises(OidcError, match="not verified"):
            email_from_claims({"email": "bob@example.com", "email_verified": bad},
                              require_verified=False)
    assert email_from_claims({"email": " Bob@Example.com ", "email_verified": True}) == \
        "bob@example.com"
    for lookalike in ("bob@example.com\u200b", "\uff42ob@example.com", "bo\u00df@example.com"):
        with pytest.raises(OidcError, match="look like another address"):
            email_from_claims({"email": lookalike, "email_verified": True})
