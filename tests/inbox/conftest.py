"""Fixtures for the web inbox: demo sign-in on, one masking engine for the session, helpers.

Async tests run the real app (``bot.app.create_app``) in aiohttp's ``TestServer`` on a free
loopback port. Requests are made pending with the real ``ingest`` and ``prepare`` (no rq
job from inside the event loop: the notify and update jobs call ``asyncio.run``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from signoff import lifecycle
from signoff.models import Status
from signoff.runtime import Runtime
from signoff.settings import Settings
from tests.conftest import EXAMPLE_POLICY, ROOT, TEST_SECRETS, make_settings

# Where the browser tests save their screenshots: a temporary folder, so the suite never
# rewrites a tracked file; `make screenshots` sets SCREENSHOTS_DIR=docs/img to refresh the
# README's pictures on purpose.
IMG = (ROOT / os.environ["SCREENSHOTS_DIR"] if os.environ.get("SCREENSHOTS_DIR")
       else Path(tempfile.mkdtemp(prefix="signoff-screenshots-")))
CSRF_RE = re.compile(r'name="csrf(?:" value|-token" content)="([^"]+)"')

# Values masking must hide; the pages must never contain them.
SECRET_EMAIL = "jane.doe@acme-corp.com"
SECRET_CARD = "4111 1111 1111 1111"
SECRET_KEY = "sk_live_51HxQeT2eZvKYlo2CabcdefGHIJKL"


def export_body(rid: str = "exp-1", **over: Any) -> dict[str, Any]:
    """A prod data export (rule prod-data-export: 2 of dba, deny needs a reason)."""
    body: dict[str, Any] = {
        "id": rid, "action": "db.export", "resource": "warehouse.customers",
        "params": {"query": "select * from customers where churned", "rows": 1200,
                   "notify": SECRET_EMAIL, "card_on_file": SECRET_CARD,
                   "api_key": SECRET_KEY},
        "requester": "agent:export-bot", "on_behalf_of": "frank@example.com",
        "reason": f"Churn report requested by {SECRET_EMAIL}",
        "context": {"environment": "prod", "ticket": "DATA-42"},
    }
    body.update(over)
    return body


def iam_body(rid: str = "iam-1", **over: Any) -> dict[str, Any]:
    """An IAM grant on behalf of dave (rule iam-grant: 1 of secops and 1 of dba)."""
    body: dict[str, Any] = {
        "id": rid, "action": "iam.grant", "resource": "role/db-reader",
        "params": {"principal": "dave@example.com", "duration": "4h"},
        "requester": "agent:deploy-bot", "on_behalf_of": "dave@example.com",
        "reason": "Investigate incident INC-7", "context": {"environment": "prod"},
    }
    body.update(over)
    return body


def make_pending(rt: Runtime, *bodies: dict[str, Any]) -> None:
    """Ingest and prepare requests in-process (the real lifecycle), dropping queued jobs."""
    rt.__dict__["masker"] = shared_masker()
    for body in bodies:
        result = lifecycle.ingest(rt, json.dumps(body))
        assert result.outcome == "accepted", result
        assert lifecycle.prepare(rt, body["id"]) == "pending"
        record = rt.store.get(body["id"])
        assert record is not None and record.status is Status.PENDING
    rt.queue.empty()


def csrf_of(html: str) -> str:
    found = CSRF_RE.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


@functools.cache
def shared_masker() -> Any:
    """One masking engine (spaCy loaded once) for every inbox test that makes requests."""
    from policy import load_policy
    from signoff.masking import Masker

    policy = load_policy(EXAMPLE_POLICY)
    return Masker(key=TEST_SECRETS["masking_key"].encode(),
                  custom_detectors=policy.custom_detectors).warm()


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    """The suite's settings with the demo sign-in on (loopback only, as ``signoff demo``)."""
    return make_settings(redis_url, tmp_path / "data", demo_sign_in=True)


def client(server: TestServer) -> aiohttp.ClientSession:
    """A cookie-keeping HTTP client for the test server (no automatic redirects)."""
    return aiohttp.ClientSession(str(server.make_url("")),
                                 cookie_jar=aiohttp.CookieJar(unsafe=True))


async def sign_in(http: aiohttp.ClientSession, email: str) -> str:
    """Sign in with the demo sign-in; returns the signed-in session's CSRF token."""
    async with http.get("/inbox/login") as resp:
        assert resp.status == 200
        token = csrf_of(await resp.text())
    async with http.post("/inbox/auth/demo", data={"csrf": token, "email": email,
                                                   "next": "/inbox"},
                         allow_redirects=False) as resp:
        assert resp.status == 303, await resp.text()
    async with http.get("/inbox") as resp:
        assert resp.status == 200
        return csrf_of(await resp.text())
