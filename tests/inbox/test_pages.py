"""The inbox pages over real HTTP: what each person sees, and voting through the form."""

from __future__ import annotations

import re

from aiohttp.test_utils import TestServer

from signoff.models import Status
from signoff.runtime import Runtime
from tests.inbox.conftest import (
    SECRET_CARD,
    SECRET_EMAIL,
    SECRET_KEY,
    client,
    csrf_of,
    export_body,
    iam_body,
    make_pending,
    sign_in,
)


def section(html: str, heading: str) -> str:
    """The HTML of the list section whose heading starts with ``heading``."""
    start = html.index(heading)
    end = html.find("<section", start)
    return html[start:end if end != -1 else len(html)]


async def test_pages_need_a_signed_in_person(rt: Runtime, server: TestServer) -> None:
    async with client(server) as http:
        async with http.get("/inbox", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/inbox/login?next=/inbox"
        async with http.get("/inbox/r/exp-1", allow_redirects=False) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == "/inbox/login?next=/inbox/r/exp-1"
        for path in ("/inbox/_list", "/inbox/events", "/inbox/r/exp-1/_live"):
            async with http.get(path, allow_redirects=False) as resp:
                assert resp.status == 401, path
        async with http.get("/", allow_redirects=False) as resp:
            assert resp.status == 302 and resp.headers["Location"] == "/inbox"


async def test_each_person_sees_what_they_may_decide(rt: Runtime, server: TestServer) -> None:
    make_pending(rt, export_body("exp-1"), iam_body("iam-1"))
    async with client(server) as http:
        await sign_in(http, "alice@example.com")
        async with http.get("/inbox") as resp:
            html = await resp.text()
        decide = section(html, "Needs your decision")
        assert 'data-request-id="exp-1"' in decide and 'data-request-id="iam-1"' in decide
        assert "2 of dba — 0 so far" in decide
        assert re.search(r'data-deadline="[0-9.]+"[^>]*>\d+ min left', decide)
        # Masked values are marked, and the originals are nowhere.
        assert '<mark class="masked"' in html
        for secret in (SECRET_EMAIL, SECRET_CARD, SECRET_KEY, "4111"):
            assert secret not in html
    async with client(server) as http:
        await sign_in(http, "dave@example.com")
        async with http.get("/inbox") as resp:
            html = await resp.text()
        assert "Nothing needs your decision" in section(html, "Needs your decision")
        # Asked on dave's behalf and waiting on others: listed once, under "Asked on your
        # behalf", saying why he cannot decide it.
        assert html.count('data-request-id="iam-1"') == 1
        assert "Waiting on others" not in html
        mine = section(html, "Asked on your behalf")
        assert 'data-request-id="iam-1"' in mine
        assert "This action is being done on your behalf" in mine
        assert "btn-approve" not in mine
    async with client(server) as http:
        await sign_in(http, "frank@example.com")
        async with http.get("/inbox") as resp:
            html = await resp.text()
        assert "Nothing needs your decision" in html
        assert 'data-request-id="exp-1"' in section(html, "Asked on your behalf")


async def test_two_dbas_approve_through_the_form(rt: Runtime, server: TestServer) -> None:
    make_pending(rt, export_body("exp-2"))
    async with client(server) as http:
        token = await sign_in(http, "alice@example.com")
        async with http.post("/inbox/r/exp-2/decide", data={
                "csrf": token, "choice": "approve", "back": "list"}, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/inbox"
        async with http.get("/inbox") as resp:
            html = await resp.text()
        assert "Vote recorded; waiting for more approvals." in html
        assert "2 of dba — 1 so far" in section(html, "Waiting on others")
        async with http.get("/inbox") as resp:
            assert "Vote recorded" not in await resp.text(), "a flash message shows once"
    record = rt.store.get("exp-2")
    assert record is not None and record.votes["alice@example.com"].channel == "web"
    async with client(server) as http:
        token = await sign_in(http, "bob@example.com")
        async with http.post("/inbox/r/exp-2/decide", data={
                "csrf": token, "choice": "approve"}, allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/inbox/r/exp-2"
        async with http.get("/inbox/r/exp-2") as resp:
            page = await resp.text()
    assert "Request approved." in page
    assert "Approved by alice@example.com, bob@example.com" in page
    assert page.count('class="vote vote-approve"') == 2
    for event in ("requested", "prepared", "vote", "decided"):
        assert f'class="ev ev-{event}"' in page
    assert rt.store.status("exp-2") is Status.APPROVED


async def test_request_page_shows_the_masked_payload(rt: Runtime, server: TestServer) -> None:
    make_pending(rt, export_body("exp-3", reason="<script>alert(1)</script> for " + SECRET_EMAIL))
    async with client(server) as http:
        await sign_in(http, "carol@example.com")
        async with http.get("/inbox/r/exp-3") as resp:
            assert resp.status == 200
            page = await resp.text()
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert resp.headers["X-Frame-Options"] == "DENY"
            assert resp.headers["Cache-Control"] == "no-store"
        async with http.get("/inbox/r/nope-404") as resp:
            assert resp.status == 404
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "warehouse.customers" in page and "DATA-42" in page
    assert "Payload SHA-256" in page and rt.store.get("exp-3").get("payload_sha256") in page
    assert re.search(r'<mark class="masked"[^>]*>\[SECRET\]</mark>', page)
    assert "Masked values are highlighted" in page
    for secret in (SECRET_EMAIL, SECRET_CARD, SECRET_KEY):
        assert secret not in page


async def test_requester_is_refused_even_with_a_forged_form(rt: Runtime,
                                                           server: TestServer) -> None:
    make_pending(rt, iam_body("iam-2"))
    async with client(server) as http:
        token = await sign_in(http, "dave@example.com")
        async with http.get("/inbox/r/iam-2") as resp:
            page = await resp.text()
        assert "btn-approve" not in page
        assert "This action is being done on your behalf; someone else must decide it." in page
        async with http.post("/inbox/r/iam-2/decide", data={
                "csrf": token, "choice": "approve"}, allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get("/inbox/r/iam-2") as resp:
            page = await resp.text()
        assert 'class="flash flash-error"' in page
    record = rt.store.get("iam-2")
    assert record is not None and record.votes == {} and record.status is Status.PENDING
    refused = [e for e in rt.audit.for_request("iam-2") if e.event == "click_refused"]
    assert refused and refused[0].actor == "dave@example.com"
    assert refused[0].details["code"] == "on_behalf_of"


async def test_deny_needs_a_reason_when_the_rule_says_so(rt: Runtime,
                                                         server: TestServer) -> None:
    make_pending(rt, export_body("exp-4"))
    async with client(server) as http:
        token = await sign_in(http, "bob@example.com")
        async with http.get("/inbox/r/exp-4") as resp:
            assert "Reason (required)" in await resp.text()
        async with http.post("/inbox/r/exp-4/decide", data={
                "csrf": token, "choice": "deny"}, allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get("/inbox/r/exp-4") as resp:
            assert "A reason is required to deny this request." in await resp.text()
        assert rt.store.status("exp-4") is Status.PENDING
        async with http.post("/inbox/r/exp-4/decide", data={
                "csrf": token, "choice": "deny", "comment": "Use the anonymised view"},
                allow_redirects=False) as resp:
            assert resp.status == 303
        async with http.get("/inbox/r/exp-4") as resp:
            page = await resp.text()
    assert "Denied by bob@example.com" in page and "Use the anonymised view" in page
    assert rt.store.status("exp-4") is Status.DENIED


async def test_fragments_follow_the_state(rt: Runtime, server: TestServer) -> None:
    make_pending(rt, export_body("exp-5"))
    async with client(server) as http:
        await sign_in(http, "alice@example.com")
        async with http.get("/inbox/r/exp-5/_live") as resp:
            fragment = await resp.text()
            assert "<html" not in fragment and "2 of dba — 0 so far" in fragment
        from signoff import lifecycle

        directory = rt.policy.directory
        assert lifecycle.submit_vote(rt, "exp-5", directory.person("carol@example.com"),
                                     "approve", channel="slack").ok
        async with http.get("/inbox/r/exp-5/_live") as resp:
            assert "2 of dba — 1 so far" in await resp.text()
        async with http.get("/inbox/_list") as resp:
            listing = await resp.text()
            assert "<html" not in listing and "1 so far" in listing
        html = listing
    assert csrf_of(html)
