"""End to end: a secret planted in each agent-controlled field of a request, taken through the
real intake and prepare on a real Redis, never reaches any surface: the Slack card and its
details modal, the Teams card, the API view, the inbox's request and list pages (with the
request's audit entries), a cancelled request's card, the audit log or the log lines."""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from bot.api import view_json
from bot.slack import render as slack_render
from bot.teams import render as teams_render
from signoff import lifecycle
from signoff.cardview.view import build_view
from signoff.runtime import Runtime
from signoff.settings import Settings
from tests.conftest import make_settings

CSRF_RE = re.compile(r'name="csrf(?:" value|-token" content)="([^"]+)"')

AWS = "AKIAQYLPMN5HHHFPZAM2"
GHP = "ghp_k9ZxW2vQ7rT4yU8iO1pA3sD5fG6hJ0lKmNb2"
STRIPE = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"
PASSWORD = "Tr0ub4dor!3xyzzy"
SSN = "536-22-8841"
CARD = "4111 1111 1111 1111"
OUTSIDER = "victim.person@customer-mail.example"
WALLET = "1BoatSLRHtKNngkdXEeobR76b53LETtpyT"
KEY = b"surface test hmac key 0123456789abcdef"

SECRETS = (AWS, GHP, STRIPE, PASSWORD, SSN, CARD, OUTSIDER, WALLET)


def body(rid: str, **over: Any) -> str:
    doc: dict[str, Any] = {
        "id": rid,
        "action": f"db.export.{AWS}",
        "resource": f"postgres://admin:{PASSWORD}@db.internal:5432/shop",
        "requester": f"agent:{STRIPE}",
        "on_behalf_of": OUTSIDER,
        "reason": f"Customer SSN {SSN} asked; use token {GHP} and pay to {WALLET}.",
        "context": {
            "environment": f"prod {GHP}",
            "ticket": f"OPS-1 {OUTSIDER}",
            "extra": {"deep": [{"cmd": f"mysql -p{PASSWORD} shop"}]},
            "blob": base64.b64encode(json.dumps({"password": PASSWORD}).encode()).decode(),
        },
        "params": {
            "customer": {"name": "Jane Roe", "ssn": SSN, "card": CARD},
            STRIPE: "primary",
            "xml": f"<cfg><apiKey>{PASSWORD}</apiKey></cfg>",
            "url": f"https://api.example.com/cb?access_token={PASSWORD}&state=1",
            "firewall": {"cidr": "0.0.0.0/0", "port": 443},
        },
    }
    doc.update(over)
    return json.dumps(doc)


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """The suite's settings with the inbox's demo sign-in on (loopback only)."""
    return make_settings(redis_url, tmp_path / "data", demo_sign_in=True)


def surfaces(rt: Runtime, rid: str) -> dict[str, str]:
    """Every rendering of request ``rid`` as text, except the inbox's pages (:func:`pages`)."""
    record = rt.store.get(rid)
    assert record is not None
    view = build_view(record)
    now = time.time()
    return {
        "slack card": json.dumps(slack_render.render_card(view, KEY, now=now)),
        "slack modal": json.dumps(slack_render.details_modal(view, now=now)),
        "teams card": json.dumps(teams_render.render_card(view, KEY, now=now)),
        "api view": json.dumps(view_json(view)),
        "audit": json.dumps([e.__dict__ if hasattr(e, "__dict__") else str(e)
                             for e in rt.audit.for_request(rid)], default=str),
        "final line": view.final_line(),
    }


async def pages(rt: Runtime, server: TestServer, rid: str) -> dict[str, str]:
    """The inbox's list page and request page (with the request's audit trail), over HTTP from
    the real web app, signed in as a directory person."""
    person = next(iter(rt.policy.directory.people))
    async with aiohttp.ClientSession(str(server.make_url("")),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.get("/inbox/login") as resp:
            token = CSRF_RE.search(await resp.text())
            assert token is not None
        async with http.post("/inbox/auth/demo", data={"csrf": token.group(1), "email": person.id,
                                                       "next": "/inbox"}, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
        out = {}
        for name, path in (("inbox list page", "/inbox"), ("inbox request page", f"/inbox/r/{rid}"),
                           ("inbox live fragment", f"/inbox/r/{rid}/_live")):
            async with http.get(path) as resp:
                assert resp.status == 200, (path, resp.status)
                out[name] = await resp.text()
        return out


def assert_clean(texts: dict[str, str]) -> None:
    for name, text in texts.items():
        for secret in SECRETS:
            assert secret not in text, (name, secret)
            assert secret.lower() not in text.lower(), (name, secret)


async def test_no_agent_field_leaks_to_any_surface(rt: Runtime, server: TestServer,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="signoff")
    result = lifecycle.ingest(rt, body("surface-1"), enqueue=False)
    assert result.outcome == "accepted", result
    rid = result.request_id
    assert rid is not None
    assert lifecycle.prepare(rt, rid) == "pending"
    texts = surfaces(rt, rid)
    texts.update(await pages(rt, server, rid))
    assert "db.export" in texts["inbox request page"]
    assert_clean(texts)
    assert_clean({"log lines": caplog.text})
    # What the reviewer needs is still there.
    card = texts["slack card"]
    assert "0.0.0.0/0" in card or "0.0.0.0/0" in texts["slack modal"]
    assert "db.export" in card and "primary" in texts["slack modal"]
    assert "prod" in texts["teams card"]


async def test_cancel_reason_is_masked(rt: Runtime, server: TestServer) -> None:
    result = lifecycle.ingest(rt, body("surface-2", requester="agent:ops-bot"), enqueue=False)
    rid = result.request_id
    assert rid is not None and lifecycle.prepare(rt, rid) == "pending"
    assert lifecycle.cancel(rt, rid, "agent:ops-bot", f"rotated {GHP}, mail {OUTSIDER}") == "changed"
    assert_clean({**surfaces(rt, rid), **await pages(rt, server, rid)})


def test_known_people_and_agents_shown_as_they_are(rt: Runtime) -> None:
    person = next(iter(rt.policy.directory.people))
    result = lifecycle.ingest(rt, body("surface-3", requester="agent:ops-bot", on_behalf_of=person.id,
                                       context={"environment": "prod"}), enqueue=False)
    rid = result.request_id
    assert rid is not None and lifecycle.prepare(rt, rid) == "pending"
    record = rt.store.get(rid)
    assert record is not None
    view = build_view(record)
    assert view.on_behalf_of == person.id
    assert view.requester == "agent:ops-bot"
    assert view.environment == "prod"
    assert AWS not in view.action and view.action.startswith("db.export.")


@pytest.mark.parametrize("rid", [f"export-{AWS}", "req-victim.person@customer-mail.example", f"x-{GHP}"])
def test_request_id_holding_a_secret_is_refused(rt: Runtime, rid: str) -> None:
    result = lifecycle.ingest(rt, body(rid, requester="agent:ops-bot"), enqueue=False)
    assert result.outcome == "rejected"
    assert [e.field for e in result.errors] == ["id"]
    assert "opaque id" in result.errors[0].message
    assert rid not in result.errors[0].message


def test_ordinary_ids_are_accepted(rt: Runtime) -> None:
    for rid in ("6f1c2b8e-1d2a-4c4b-9a5e-2b7f0c3d4e5f", "export-2024-06-01-7", "mcp:warehouse:call-42"):
        result = lifecycle.ingest(rt, body(rid, requester="agent:ops-bot"), enqueue=False)
        assert result.outcome == "accepted", (rid, result)
