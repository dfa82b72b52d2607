"""The inbox in headless Chromium: sign in, approve, watch a second session update live,
be refused as the requester; cookie flags and CSRF from a real browser; screenshots.

Debian's ``chromium`` (``make test`` installs it) driven by Playwright's sync API; the app
runs in a thread with its own event loop; the rq jobs (notify, update_cards, finalize) run in
a real ``signoff worker`` process, so "someone decided elsewhere" reaches the pages exactly
as in production: worker -> web messenger -> Redis pub/sub -> SSE -> the page.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import create_app
from signoff import lifecycle
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import free_port, wait_for
from tests.inbox.conftest import IMG, SECRET_CARD, SECRET_EMAIL, export_body, iam_body
from tests.inbox.conftest import make_pending as prepare_requests
from workers.supervisor import child_environment

playwright_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 10_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                       reason="Debian's chromium is not installed (make test installs it)"),
]


class ServerThread:
    """The real web app on a free loopback port, served from a background event loop."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def _start() -> None:
            self.runner = web.AppRunner(create_app(self.rt), shutdown_timeout=2)
            await self.runner.setup()
            await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

        self.loop.run_until_complete(_start())
        self.ready.set()
        self.loop.run_forever()

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(15), "the web app did not start"

    def stop(self) -> None:
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def app_url(rt: Runtime) -> Iterator[str]:
    server = ServerThread(rt)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def worker(rt: Runtime, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``signoff worker`` on the test Redis (same secrets and policy)."""
    log = open(tmp_path / "worker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "workers.cli", "worker"],
                            env=child_environment(rt.settings), stdout=log,
                            stderr=subprocess.STDOUT)
    yield proc
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield chromium
        chromium.close()


def signed_in(browser: object, url: str, email: str, **context_args: object) -> object:
    """A new browser context signed in as ``email`` through the demo sign-in page."""
    context = browser.new_context(**context_args)  # type: ignore[attr-defined]
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.goto(f"{url}/inbox")
    assert "/inbox/login" in page.url
    page.click(f'button.person[data-email="{email}"]')
    page.wait_for_url(f"{url}/inbox")
    return page


def live(page: object) -> None:
    """Wait until the page's event stream is open."""
    page.wait_for_selector('body[data-sse="open"]')  # type: ignore[attr-defined]


def web_card_version(rt: Runtime, rid: str) -> int:
    import json

    raw = rt.redis.hget(rt.keys.cards(rid), "web:inbox")
    return int(json.loads(raw)["version"]) if raw else -1


def test_approve_live_update_and_self_approval_refused(rt: Runtime, app_url: str,
                                                        worker: subprocess.Popen[bytes],
                                                        browser: object) -> None:
    expect = playwright_api.expect
    prepare_requests(rt, export_body("exp-b"), iam_body("iam-b"))
    # The real notify jobs: the worker's web messenger records and announces the cards.
    rt.enqueue("workers.jobs.notify", "exp-b", "web", "")
    rt.enqueue("workers.jobs.notify", "iam-b", "web", "")

    alice = signed_in(browser, app_url, "alice@example.com",
                      viewport={"width": 1100, "height": 900})
    live(alice)
    # Decided elsewhere (as from Slack) while the page is open: the worker's update job
    # announces it and the list shows it without a reload.
    wait_for(lambda: web_card_version(rt, "exp-b") >= 0, 60, message="the worker's notify")
    assert lifecycle.submit_vote(rt, "iam-b", rt.policy.directory.person("carol@example.com"),
                                 "approve", channel="slack").ok
    expect(alice.locator('article[data-request-id="iam-b"]')).to_contain_text(
        "1 from dba and 1 from secops — 1 so far")
    card = alice.locator('article[data-request-id="exp-b"]')
    expect(card).to_contain_text("2 of dba — 0 so far")
    expect(card.locator("mark.masked").first).to_be_visible()
    assert SECRET_EMAIL not in alice.content() and SECRET_CARD not in alice.content()
    IMG.mkdir(parents=True, exist_ok=True)
    alice.screenshot(path=str(IMG / "inbox.png"), full_page=True)

    # Cookie flags as the browser stored them; HttpOnly keeps the id from page scripts.
    cookies = {c["name"]: c for c in alice.context.cookies()}
    session = cookies["signoff_session"]
    assert session["httpOnly"] is True and session["sameSite"] == "Lax"
    assert session["secure"] is False  # plain http on loopback (see bot/inbox/config.py)
    assert alice.evaluate("document.cookie") == ""

    # A form post without the CSRF token is refused, from the page's own origin.
    status = alice.evaluate("""async () => (await fetch('/inbox/r/exp-b/decide', {
        method: 'POST', body: new URLSearchParams({choice: 'approve'})})).status""")
    assert status == 403
    assert rt.store.get("exp-b").votes == {}

    # Bob watches the request page in a second session.
    bob = signed_in(browser, app_url, "bob@example.com", viewport={"width": 1100, "height": 900})
    bob.goto(f"{app_url}/inbox/r/exp-b")
    live(bob)
    expect(bob.locator(".progress-text")).to_have_text("2 of dba — 0 so far")
    bob.locator("details.deny-box summary").click()
    bob.fill("textarea[name=comment]", "half-typed reason")  # must survive live updates

    card.get_by_role("button", name="Approve").click()
    expect(alice.locator(".flash-ok")).to_have_text("Vote recorded; waiting for more approvals.")
    # Bob's page updates by itself.
    expect(bob.locator(".progress-text")).to_have_text("2 of dba — 1 so far")
    expect(bob.locator(".votes")).to_contain_text("alice@example.com approved")
    assert bob.input_value("textarea[name=comment]") == "half-typed reason"
    bob.screenshot(path=str(IMG / "request.png"), full_page=True)

    # Alice's list shows the request as waiting on others; Bob approves; it leaves her list.
    live(alice)
    expect(alice.locator('article[data-request-id="exp-b"]')).to_contain_text("You voted to approve")
    bob.get_by_role("button", name="Approve").click()
    expect(bob.locator(".flash-ok")).to_have_text("Request approved.")
    expect(bob.locator(".final")).to_contain_text("Approved by alice@example.com, bob@example.com")
    expect(alice.locator('article[data-request-id="exp-b"]')).to_have_count(0)
    assert rt.store.status("exp-b") is Status.APPROVED
    # The worker finalizes: one reply for the agent, and the web card brought up to date.
    wait_for(lambda: rt.redis.llen(rt.keys.reply("exp-b")) == 1, 30, message="the reply")
    wait_for(lambda: web_card_version(rt, "exp-b") == rt.store.get("exp-b").version, 30,
             message="the web card update")

    # Dave asked (through the agent) for his own IAM grant: no button, and a forged
    # submission with a valid CSRF token is refused by submit_vote.
    dave = signed_in(browser, app_url, "dave@example.com")
    dave.goto(f"{app_url}/inbox/r/iam-b")
    expect(dave.locator(".note-refused")).to_have_text(
        "This action is being done on your behalf; someone else must decide it.")
    assert dave.get_by_role("button", name="Approve").count() == 0
    dave.evaluate("""() => {
        const f = document.createElement('form');
        f.method = 'post'; f.action = '/inbox/r/iam-b/decide';
        for (const [k, v] of [['csrf', document.querySelector('meta[name=csrf-token]').content],
                              ['choice', 'approve']]) {
            const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;
            f.appendChild(i);
        }
        document.body.appendChild(f); f.submit();
    }""")
    expect(dave.locator(".flash-error")).to_have_text(
        "This action is being done on your behalf; someone else must decide it.")
    record = rt.store.get("iam-b")
    assert record.status is Status.PENDING and "dave@example.com" not in record.votes

    # Phone width: readable, nothing wider than the screen.
    phone = signed_in(browser, app_url, "carol@example.com",
                      viewport={"width": 390, "height": 844}, device_scale_factor=2,
                      is_mobile=True, has_touch=True)
    expect(phone.locator('article[data-request-id="iam-b"]')).to_be_visible()
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(IMG / "inbox-phone.png"), full_page=True)
    for page in (alice, bob, dave, phone):
        page.context.close()
