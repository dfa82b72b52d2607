"""Passkey step-up in headless Chromium with a virtual authenticator (the DevTools
protocol's WebAuthn domain): a DBA with no passkey is sent to enrol one, enrols it with
navigator.credentials.create, comes back and approves the request with
navigator.credentials.get; the vote's audit entry names the authenticator's credential and
counter. Refusals from the real authenticator's assertions: one made for another request or
for the other choice, and an authenticator that cannot verify the user.

The inbox is served on 127.0.0.1 and visited as http://localhost:PORT: WebAuthn needs a
secure context and a host name for the RP ID (SIGNOFF_PUBLIC_URL's host).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff import passkeys
from signoff.audit import Event
from signoff.models import Status
from signoff.runtime import Runtime, set_current
from signoff.settings import Settings
from tests.conftest import free_port, make_settings, run_jobs
from tests.inbox.conftest import IMG
from tests.inbox.test_browser import ARGS, CHROMIUM, WAIT_MS, ServerThread
from tests.stepup.conftest import POLICY, drop_body, make_pending

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                 reason="Debian's chromium is not installed (make test does)")]

PORT = free_port()
URL = f"http://localhost:{PORT}"


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", policy_path=POLICY, public_url=URL,
                         demo_sign_in=True)


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    runtime = Runtime(settings)
    set_current(runtime)
    yield runtime
    runtime.close()


@pytest.fixture
def app_url(rt: Runtime) -> Iterator[str]:
    server = ServerThread(rt)
    server.port = PORT
    server.start()
    yield URL
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield chromium
        chromium.close()


def signed_in_with_authenticator(browser: Any, email: str, *, verified: bool = True
                                 ) -> tuple[Any, Any, str]:
    """A browser context signed in as ``email`` with a virtual platform authenticator."""
    context = browser.new_context()
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": verified,
        "automaticPresenceSimulation": True}})
    page.goto(f"{URL}/inbox")
    assert "/inbox/login" in page.url
    page.click(f'button.person[data-email="{email}"]')
    page.wait_for_url(f"{URL}/inbox")
    return page, cdp, added["authenticatorId"]


def credentials(cdp: Any, authenticator: str) -> list[dict[str, Any]]:
    return list(cdp.send("WebAuthn.getCredentials",
                         {"authenticatorId": authenticator})["credentials"])


def proof_for(page: Any, rid: str, choice: str) -> dict[str, Any]:
    """Ask the inbox for step-up options and let the virtual authenticator answer them,
    as the page's own script does, returning the assertion JSON (not sent)."""
    return dict(page.evaluate("""async ([rid, choice]) => {
        const csrf = document.querySelector('meta[name=csrf-token]').content;
        const resp = await fetch(`/inbox/r/${rid}/step-up/options`, {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({choice})});
        const o = (await resp.json()).publicKey;
        const dec = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')
            + '==='.slice((s.length + 3) % 4)), c => c.charCodeAt(0)).buffer;
        const enc = (b) => b ? btoa(String.fromCharCode(...new Uint8Array(b)))
            .replace(/\\+/g, '-').replace(/\\//g, '_').replace(/=+$/, '') : null;
        o.challenge = dec(o.challenge);
        o.allowCredentials.forEach(c => { c.id = dec(c.id); });
        const cred = await navigator.credentials.get({publicKey: o});
        const r = cred.response;
        return {id: cred.id, rawId: enc(cred.rawId), type: cred.type, response: {
            clientDataJSON: enc(r.clientDataJSON), authenticatorData: enc(r.authenticatorData),
            signature: enc(r.signature), userHandle: enc(r.userHandle)}};
    }""", [rid, choice]))


def send_vote(page: Any, rid: str, choice: str, credential: dict[str, Any],
              comment: str = "") -> dict[str, Any]:
    return dict(page.evaluate("""async ([rid, choice, credential, comment]) => {
        const csrf = document.querySelector('meta[name=csrf-token]').content;
        const resp = await fetch(`/inbox/r/${rid}/step-up`, {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': csrf},
            body: JSON.stringify({choice, credential, comment})});
        return {status: resp.status, ...(await resp.json())};
    }""", [rid, choice, credential, comment]))


def test_enrol_then_approve_with_passkey(rt: Runtime, app_url: str, browser: Any) -> None:
    expect = playwright_api.expect
    make_pending(rt, drop_body("drop-b", "b"), drop_body("drop-c", "c"),
                 drop_body("drop-d", "d"))
    page, cdp, authenticator = signed_in_with_authenticator(browser, "alice@example.com")

    # The request page offers the step-up buttons, not the one-click form.
    page.goto(f"{URL}/inbox/r/drop-b")
    expect(page.locator(".note-step-up")).to_contain_text("needs a passkey")
    page.get_by_role("link", name="Approve with passkey").click()
    page.wait_for_url(f"{URL}/inbox/r/drop-b/step-up?choice=approve")
    # No passkey yet: a clear way to enrol, which brings her back here.
    expect(page.locator("#enrol-first")).to_contain_text("you have none yet")
    page.click("#enrol-link")
    page.wait_for_url(lambda u: "/inbox/passkeys?next=" in u)
    page.fill('input[name="name"]', "work laptop")
    page.click("#enrol")
    page.wait_for_url(f"{URL}/inbox/r/drop-b/step-up?choice=approve")
    [cred] = credentials(cdp, authenticator)
    [stored] = passkeys.store(rt).list_for("alice@example.com")
    assert stored.name == "work laptop"
    assert json.dumps(stored.credential_id) == json.dumps(
        cred["credentialId"].replace("+", "-").replace("/", "_").rstrip("="))
    enrolled = [e for e in rt.audit.iter_entries("-", "+")
                if e.event == Event.PASSKEY_ENROLLED.value]
    assert [e.details["credential_id"] for e in enrolled] == [stored.credential_id]

    expect(page.locator("#confirm")).to_have_text("Approve with passkey")
    IMG.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(IMG / "step-up.png"), full_page=True)
    # Approve with the passkey: the vote lands, the page shows the decision.
    page.click("#confirm")
    page.wait_for_url(f"{URL}/inbox/r/drop-b")
    expect(page.locator(".flash-ok")).to_have_text("Request approved.")
    assert rt.store.status("drop-b") is Status.APPROVED
    [vote] = [e for e in rt.audit.for_request("drop-b") if e.event == Event.VOTE.value]
    step = vote.details["step_up"]
    [cred] = credentials(cdp, authenticator)
    assert step["credential_id"] == stored.credential_id
    assert step["flags"] == {"up": True, "uv": True}
    assert step["sign_count"] == cred["signCount"] >= 1
    run_jobs(rt)
    decision = json.loads(rt.redis.lindex(rt.keys.reply("drop-b"), 0))
    assert decision["approvers"] == [{**decision["approvers"][0], "step_up": "passkey"}]

    # Assertions from the real authenticator, sent for the wrong decision: refused, and
    # nothing changes (the proof stays usable for what it was made for).
    page.goto(f"{URL}/inbox/r/drop-c/step-up?choice=approve")
    proof = proof_for(page, "drop-c", "approve")
    other = send_vote(page, "drop-d", "approve", proof)
    assert other["status"] == 403 and other["code"] == "step_up_other_request"
    flipped = send_vote(page, "drop-c", "deny", proof, comment="no")
    assert flipped["status"] == 403 and flipped["code"] == "step_up_other_choice"
    assert rt.store.get("drop-c").votes == {} and rt.store.get("drop-d").votes == {}
    assert send_vote(page, "drop-c", "approve", proof)["ok"] is True
    replay = send_vote(page, "drop-c", "approve", proof)
    assert replay["status"] == 409  # decided; the proof is spent either way
    assert rt.store.status("drop-c") is Status.APPROVED
    page.context.close()


def test_unverified_user_and_csrf_are_refused(rt: Runtime, app_url: str, browser: Any
                                              ) -> None:
    expect = playwright_api.expect
    make_pending(rt, drop_body("drop-u", "u"))
    page, cdp, authenticator = signed_in_with_authenticator(browser, "bob@example.com")
    page.goto(f"{URL}/inbox/passkeys")
    expect(page.locator("#no-passkeys")).to_be_visible()
    page.click("#enrol")
    expect(page.locator(".passkey-name")).to_have_text("Passkey " + time.strftime("%Y-%m-%d"))
    # A second passkey (a security key next to the laptop's): the page first asks the
    # existing passkey to confirm, then creates the new one.
    # (The browser talks to the laptop's authenticator for the confirmation, then to the
    # security key, plugged in between the two prompts, for the new passkey.)
    plugged: list[str] = []

    def plug_in_key() -> None:
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": authenticator})
        plugged.append(cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
            "protocol": "ctap2", "transport": "usb", "hasResidentKey": True,
            "hasUserVerification": True, "isUserVerified": True,
            "automaticPresenceSimulation": True}})["authenticatorId"])

    page.expose_function("plugInKey", plug_in_key)
    page.evaluate("""() => {
        const create = navigator.credentials.create.bind(navigator.credentials);
        navigator.credentials.create = async (options) => { await window.plugInKey();
                                                            return create(options); };
    }""")
    page.fill('input[name="name"]', "security key")
    page.click("#enrol")
    expect(page.locator(".passkey-name")).to_have_count(2)
    keys = passkeys.store(rt).list_for("bob@example.com")
    assert [k.name for k in keys][1] == "security key"
    confirmed = [e for e in rt.audit.iter_entries("-", "+")
                 if e.event == Event.PASSKEY_ENROLLED.value][-1]
    assert confirmed.details["confirmed_with"] == keys[0].credential_id
    # The authenticator can no longer verify Bob (no PIN or biometric): the browser refuses
    # user verification, and the page says nothing was sent.
    cdp.send("WebAuthn.setUserVerified", {"authenticatorId": plugged[0],
                                          "isUserVerified": False})
    page.goto(f"{URL}/inbox/r/drop-u/step-up?choice=approve")
    page.click("#confirm")
    expect(page.locator("#passkey-status")).to_contain_text("your vote was not sent")
    assert rt.store.get("drop-u").votes == {}
    # A vote without the session's CSRF token is refused before anything is checked.
    status = page.evaluate("""async () => (await fetch('/inbox/r/drop-u/step-up', {
        method: 'POST', headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({choice: 'approve', credential: {}})})).status""")
    assert status == 403
    # A chat button opened while signed out: sign-in brings the person back to this request
    # and this choice.
    other = browser.new_context()
    other.set_default_timeout(WAIT_MS)
    fresh = other.new_page()
    fresh.goto(f"{URL}/inbox/r/drop-u/step-up?choice=deny")
    assert "/inbox/login" in fresh.url
    fresh.click('button.person[data-email="carol@example.com"]')
    fresh.wait_for_url(f"{URL}/inbox/r/drop-u/step-up?choice=deny")
    other.close()
    # Removing the passkeys from the inbox is audited.
    page.goto(f"{URL}/inbox/passkeys")
    for _ in range(2):
        page.get_by_role("button", name="Remove").first.click()
        expect(page.locator(".flash-ok")).to_have_text("Passkey removed.")
    assert passkeys.store(rt).list_for("bob@example.com") == []
    assert any(e.event == Event.PASSKEY_REMOVED.value and e.actor == "bob@example.com"
               for e in rt.audit.iter_entries("-", "+"))
    assert rt.store.get("drop-u").status is Status.PENDING
    page.context.close()
