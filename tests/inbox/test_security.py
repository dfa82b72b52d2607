"""Sessions, cookies, CSRF and the demo sign-in's guards."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.app import create_app
from bot.inbox.config import InboxConfig, is_loopback
from bot.inbox.context import safe_next
from signoff.runtime import Runtime
from tests.conftest import make_settings
from tests.inbox.conftest import client, csrf_of, export_body, make_pending, sign_in


def cookie_header(resp: aiohttp.ClientResponse) -> str:
    values = resp.headers.getall("Set-Cookie", [])
    assert len(values) == 1, values
    return values[0]


async def test_session_cookie_flags_and_rotation_on_loopback(rt: Runtime,
                                                             server: TestServer) -> None:
    async with client(server) as http:
        async with http.get("/inbox/login") as resp:
            header = cookie_header(resp)
            token = csrf_of(await resp.text())
        attrs = [a.strip().lower() for a in header.split(";")]
        assert header.startswith("signoff_session=")
        assert "httponly" in attrs and "samesite=lax" in attrs and "path=/" in attrs
        assert "secure" not in attrs  # plain http on loopback only: see bot/inbox/config.py
        anonymous = header.split(";")[0].split("=", 1)[1]
        async with http.post("/inbox/auth/demo", data={"csrf": token,
                                                       "email": "alice@example.com"},
                             allow_redirects=False) as resp:
            assert resp.status == 303
            signed_in = cookie_header(resp).split(";")[0].split("=", 1)[1]
    assert signed_in != anonymous, "signing in must replace the session id"
    # The anonymous id planted before sign-in is worthless afterwards.
    async with aiohttp.ClientSession(str(server.make_url("")),
                                     cookies={"signoff_session": anonymous}) as other:
        async with other.get("/inbox", allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"].startswith("/inbox/login")
    async with aiohttp.ClientSession(str(server.make_url("")),
                                     cookies={"signoff_session": signed_in}) as same:
        async with same.get("/inbox", allow_redirects=False) as resp:
            assert resp.status == 200


async def test_https_public_url_gives_host_prefixed_secure_cookie(
        redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(redis_url, tmp_path / "d", public_url="https://signoff.example.com",
                             demo_sign_in=True)
    rt = Runtime(settings)
    srv = TestServer(create_app(rt), host="127.0.0.1")
    await srv.start_server()
    try:
        async with client(srv) as http:
            async with http.get("/inbox/login") as resp:
                header = cookie_header(resp)
                page = await resp.text()
                assert "Strict-Transport-Security" not in resp.headers  # not over https here
            attrs = [a.strip().lower() for a in header.split(";")]
            assert header.startswith("__Host-signoff_session=")
            assert {"secure", "httponly", "samesite=lax", "path=/"} <= set(attrs)
            assert not any(a.startswith("domain") for a in attrs)
            # A non-loopback public URL switches the demo sign-in off, whatever the flag says.
            assert "Demo sign-in" not in page and "data-email" not in page
            async with http.post("/inbox/auth/demo", data={"csrf": "x", "email": "alice@example.com"},
                                 allow_redirects=False) as resp:
                assert resp.status == 404
    finally:
        await srv.close()
        rt.close()


async def test_every_post_needs_the_session_csrf_token(rt: Runtime, server: TestServer) -> None:
    make_pending(rt, export_body("exp-c"))
    async with client(server) as http:
        token = await sign_in(http, "alice@example.com")
        cases = [
            ({"choice": "approve"}, {}),
            ({"choice": "approve", "csrf": ""}, {}),
            ({"choice": "approve", "csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}, {}),
            ({"choice": "approve", "csrf": token}, {"Origin": "https://evil.example"}),
            ({"choice": "approve", "csrf": token}, {"Origin": "null"}),
            ({"choice": "approve", "csrf": token}, {"Referer": "https://evil.example/x"}),
        ]
        for data, headers in cases:
            async with http.post("/inbox/r/exp-c/decide", data=data, headers=headers,
                                 allow_redirects=False) as resp:
                assert resp.status == 403, (data, headers)
        async with http.post("/inbox/logout", data={}, allow_redirects=False) as resp:
            assert resp.status == 403
        async with http.post("/inbox/auth/demo", data={"email": "bob@example.com"},
                             allow_redirects=False) as resp:
            assert resp.status == 403
        # Still alice, nothing recorded.
        async with http.get("/inbox") as resp:
            assert "Alice Anders" in await resp.text()
        record = rt.store.get("exp-c")
        assert record is not None and record.votes == {}
        assert not [e for e in rt.audit.for_request("exp-c") if e.event == "vote"]
        # The same-origin form with the token works.
        origin = str(server.make_url("")).rstrip("/")
        async with http.post("/inbox/r/exp-c/decide", data={"choice": "approve", "csrf": token},
                             headers={"Origin": origin}, allow_redirects=False) as resp:
            assert resp.status == 303
    record = rt.store.get("exp-c")
    assert record is not None and "alice@example.com" in record.votes


async def test_sign_out_ends_the_session_server_side(rt: Runtime, server: TestServer) -> None:
    async with client(server) as http:
        token = await sign_in(http, "bob@example.com")
        sid = next(c.value for c in http.cookie_jar if c.key == "signoff_session")
        async with http.post("/inbox/logout", data={"csrf": token},
                             allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/inbox/login"
            assert "max-age=0" in cookie_header(resp).lower()
    async with aiohttp.ClientSession(str(server.make_url("")),
                                     cookies={"signoff_session": sid}) as replay:
        async with replay.get("/inbox", allow_redirects=False) as resp:
            assert resp.status == 303


async def test_demo_sign_in_answers_only_local_unproxied_peers(rt: Runtime,
                                                               server: TestServer) -> None:
    async with client(server) as http:
        async with http.get("/inbox/login") as resp:
            page = await resp.text()
            token = csrf_of(page)
        assert "Demo mode." in page and 'data-email="frank@example.com"' in page
        for header in ("X-Forwarded-For", "Forwarded", "X-Real-IP"):
            async with http.post("/inbox/auth/demo", headers={header: "203.0.113.9"},
                                 data={"csrf": token, "email": "erin@example.com"},
                                 allow_redirects=False) as resp:
                assert resp.status == 403, header
        async with http.post("/inbox/auth/demo", data={"csrf": token,
                                                       "email": "mallory@example.com"},
                             allow_redirects=False) as resp:
            assert resp.status == 400


async def test_demo_sign_in_is_off_without_the_flag(redis_url: str, tmp_path: Path) -> None:
    rt = Runtime(make_settings(redis_url, tmp_path / "d"))
    srv = TestServer(create_app(rt), host="127.0.0.1")
    await srv.start_server()
    try:
        async with client(srv) as http:
            async with http.get("/inbox/login") as resp:
                page = await resp.text()
                token = csrf_of(page)
            assert "Sign-in is not configured" in page and "data-email" not in page
            async with http.post("/inbox/auth/demo", data={"csrf": token,
                                                           "email": "alice@example.com"},
                                 allow_redirects=False) as resp:
                assert resp.status == 404
    finally:
        await srv.close()
        rt.close()


@pytest.mark.parametrize(("overrides", "demo", "secure"), [
    ({"demo_sign_in": True}, True, False),
    ({"demo_sign_in": True, "host": "0.0.0.0"}, False, True),
    ({"demo_sign_in": True, "host": "10.1.2.3"}, False, True),
    ({"demo_sign_in": True, "public_url": "http://localhost:8000"}, True, False),
    ({"demo_sign_in": True, "public_url": "https://approvals.example.com"}, False, True),
    ({"demo_sign_in": True, "oidc_issuer": "https://idp.example.com",
      "oidc_client_id": "signoff", "public_url": "http://127.0.0.1:8000"}, False, False),
    ({"public_url": "http://approvals.example.com"}, False, True),
    ({}, False, False),
])
def test_config_errs_on_the_closed_side(tmp_path: Path, overrides: dict, demo: bool,
                                        secure: bool) -> None:
    config = InboxConfig.from_settings(make_settings("redis://127.0.0.1:1/0", tmp_path,
                                                     **overrides))
    assert config.demo_sign_in is demo
    assert config.secure_cookies is secure


def test_oidc_needs_a_redirect_and_https(tmp_path: Path) -> None:
    base = {"oidc_issuer": "https://idp.example.com", "oidc_client_id": "signoff"}
    assert not InboxConfig.from_settings(make_settings("redis://x", tmp_path, **base)).oidc_enabled
    ok = InboxConfig.from_settings(make_settings("redis://x", tmp_path, **base,
                                                 public_url="https://s.example.com/"))
    assert ok.oidc_enabled and ok.redirect_url == "https://s.example.com/inbox/auth/callback"
    plain = InboxConfig.from_settings(make_settings(
        "redis://x", tmp_path, oidc_issuer="http://idp.example.com", oidc_client_id="signoff",
        public_url="https://s.example.com"))
    assert not plain.oidc_enabled and "https" in " ".join(plain.problems)


def test_helpers() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("[::1]")
    assert is_loopback("localhost") and is_loopback("127.8.9.10")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com") and not is_loopback(None)
    assert safe_next("/inbox/r/abc") == "/inbox/r/abc"
    for bad in ("https://evil.example", "//evil.example", "/inbox//evil", "/inboxx\\x",
                "/inbox/auth/callback", "/other", None, "/inbox\r\nSet-Cookie: x"):
        assert safe_next(bad) == "/inbox", bad
