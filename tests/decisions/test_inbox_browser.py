"""The inbox in headless Chromium: select several requests and decide them at once (keyboard
shortcuts shown and working), preset deny reasons, approve for a while, edit within bounds
(refused outside them), extend the deadline, the history with filters and search, standing
approvals listed and revoked, delegations created."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff.models import Status
from signoff.runtime import Runtime
from signoff.settings import Settings
from tests.conftest import make_settings, run_jobs
from tests.decisions.conftest import POLICY, export, make_pending

playwright_api = pytest.importorskip("playwright.sync_api")
from tests.inbox.test_browser import ARGS, CHROMIUM, ServerThread, signed_in  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists() and not shutil.which("chromium"),
                       reason="Debian's chromium is not installed (make test installs it)"),
]


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text())
    return make_settings(redis_url, tmp_path / "data", policy_path=policy, demo_sign_in=True)


@pytest.fixture
def app_url(rt: Runtime) -> Iterator[str]:
    server = ServerThread(rt)
    server.start()
    yield server.url
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, timeout=30_000)
        yield chromium
        chromium.close()


def status(rt: Runtime, rid: str) -> Status:
    record = rt.store.get(rid)
    assert record is not None
    return record.status


def test_bulk_keyboard_and_preset_reasons(rt: Runtime, app_url: str, browser: object) -> None:
    # Different row counts: identical requests would ride on one card (merging).
    make_pending(rt, *(export(f"k-{n}", params={"rows": n, "format": "csv"}) for n in (1, 2, 3)),
                 export("k-mine", on_behalf_of="alice@example.com"))
    page = signed_in(browser, app_url, "alice@example.com")
    assert "j / k next / previous" in page.inner_text(".shortcuts")  # type: ignore[attr-defined]
    # k-mine acts for Alice: no checkbox for it.
    assert page.locator('input.pick[value="k-mine"]').count() == 0  # type: ignore[attr-defined]
    cards = page.locator("article.card[data-request-id]")  # type: ignore[attr-defined]
    order = [cards.nth(i).get_attribute("data-request-id") for i in range(cards.count())]
    page.wait_for_selector('body[data-sse="open"]')  # type: ignore[attr-defined]
    page.wait_for_selector("body[data-refreshed]")  # type: ignore[attr-defined]
    page.keyboard.press("j")  # type: ignore[attr-defined]
    page.keyboard.press("x")  # type: ignore[attr-defined]
    page.keyboard.press("j")  # type: ignore[attr-defined]
    page.keyboard.press("x")  # type: ignore[attr-defined]
    assert "2 selected" in page.inner_text("#bulk .bulk-count")  # type: ignore[attr-defined]
    picked = order[:2]
    page.click('#bulk button[value="approve"]')  # type: ignore[attr-defined]
    page.wait_for_selector(".flash")  # type: ignore[attr-defined]
    assert "2 of 2 went through" in page.inner_text(".flash")  # type: ignore[attr-defined]
    votes = {rid: list(rt.store.get(rid).votes) for rid in ("k-1", "k-2", "k-3")}  # type: ignore[union-attr]
    assert sorted(r for r, v in votes.items() if v == ["alice@example.com"]) == sorted(picked)

    # Bob denies with the keyboard and a preset reason from the policy.
    bob = signed_in(browser, app_url, "bob@example.com")
    target = bob.locator("article.card[data-request-id]").first  # type: ignore[attr-defined]
    rid = target.get_attribute("data-request-id")
    bob.keyboard.press("j")  # type: ignore[attr-defined]
    bob.keyboard.press("d")  # type: ignore[attr-defined]
    box = target.locator("details.deny-box")
    assert box.get_attribute("open") is not None
    box.locator("select.preset").select_option("Too many rows")
    box.locator('button:has-text("Deny request")').click()
    bob.wait_for_selector(".flash")  # type: ignore[attr-defined]
    record = rt.store.get(rid)
    assert record is not None and record.status is Status.DENIED
    assert [v.comment for v in record.votes.values() if v.choice == "deny"] == ["Too many rows"]


def test_standing_edit_extend_history_delegation(rt: Runtime, app_url: str,
                                                 browser: object) -> None:
    make_pending(rt, export("w-1"), export("w-2", params={"rows": 50000, "format": "csv"}))
    assert make_pending(rt, export("w-4", resource="warehouse.refunds")) == ["pending"]
    alice = signed_in(browser, app_url, "alice@example.com")
    bob = signed_in(browser, app_url, "bob@example.com")
    # Approve for a while, on the request page.
    for page, window in ((alice, "3600"), (bob, "900")):
        page.goto(f"{app_url}/inbox/r/w-1")  # type: ignore[attr-defined]
        page.wait_for_selector("body[data-refreshed]")  # type: ignore[attr-defined]
        page.select_option("select.standing", window)  # type: ignore[attr-defined]
        page.click('form.approve-form button[value="approve"]')  # type: ignore[attr-defined]
        page.wait_for_selector(".flash")  # type: ignore[attr-defined]
    run_jobs(rt)
    assert status(rt, "w-1") is Status.APPROVED
    alice.goto(f"{app_url}/inbox/standing")  # type: ignore[attr-defined]
    assert "By @alice, @bob until" in alice.inner_text(".standing-list")  # type: ignore[attr-defined]
    assert make_pending(rt, export("w-3")) == ["approved"]
    run_jobs(rt)  # finalize: the grant, the reply, the history index
    alice.goto(f"{app_url}/inbox/r/w-3")  # type: ignore[attr-defined]
    assert re.search(r"Approved under a standing approval by @alice, @bob until \d\d:\d\d",
                     alice.inner_text("p.final"))  # type: ignore[attr-defined]
    alice.goto(f"{app_url}/inbox/standing")  # type: ignore[attr-defined]
    alice.click('.standing-list button:has-text("Revoke")')  # type: ignore[attr-defined]
    alice.wait_for_selector(".flash")  # type: ignore[attr-defined]
    assert "revoked" in alice.inner_text(".flash")  # type: ignore[attr-defined]
    assert make_pending(rt, export("w-5", params={"rows": 77, "format": "csv"})) == ["pending"]

    # Edit before approving: outside the bounds refused, within them approved.
    alice.goto(f"{app_url}/inbox/r/w-2")  # type: ignore[attr-defined]
    alice.wait_for_selector("body[data-refreshed]")  # type: ignore[attr-defined]
    alice.click(".edit-box summary")  # type: ignore[attr-defined]
    alice.fill('input[name="edit.rows"]', "20000")  # type: ignore[attr-defined]
    alice.click('.edit-form button[type="submit"]')  # type: ignore[attr-defined]
    alice.wait_for_selector(".flash-error")  # type: ignore[attr-defined]
    assert "maximum of 10000" in alice.inner_text(".flash-error")  # type: ignore[attr-defined]
    alice.click(".edit-box summary")  # type: ignore[attr-defined]
    alice.fill('input[name="edit.rows"]', "9000")  # type: ignore[attr-defined]
    alice.click('.edit-form button[type="submit"]')  # type: ignore[attr-defined]
    alice.wait_for_selector(".flash-ok")  # type: ignore[attr-defined]
    assert "Edited and approved" in alice.inner_text(".flash-ok")  # type: ignore[attr-defined]
    assert "rows 50000 → 9000" in alice.inner_text(".edits")  # type: ignore[attr-defined]

    # Extend the deadline (the rule allows 2h in total).
    before = rt.store.get("w-2").deadline  # type: ignore[union-attr]
    alice.select_option('.extend-form select[name="by"]', "3600s")  # type: ignore[attr-defined]
    alice.click('.extend-form button')  # type: ignore[attr-defined]
    alice.wait_for_selector(".flash-ok")  # type: ignore[attr-defined]
    assert rt.store.get("w-2").deadline == before + 3600  # type: ignore[union-attr]

    # History: filters and search.
    alice.goto(f"{app_url}/inbox/history?status=approved")  # type: ignore[attr-defined]
    ids = alice.eval_on_selector_all(  # type: ignore[attr-defined]
        "table.history tr[data-request-id]", "rows => rows.map(r => r.dataset.requestId)")
    assert sorted(ids) == ["w-1", "w-3"]
    alice.fill('input[name="q"]', "w-3")  # type: ignore[attr-defined]
    alice.click('.filters button')  # type: ignore[attr-defined]
    alice.wait_for_url(re.compile(r".*q=w-3.*"))  # type: ignore[attr-defined]
    assert alice.locator("table.history tr[data-request-id]").count() == 1  # type: ignore[attr-defined]

    # Delegation: Alice hands her approvals to Dave (sre), who then decides w-4 for her.
    alice.goto(f"{app_url}/inbox/delegations")  # type: ignore[attr-defined]
    alice.fill('input[name="to"]', "dave@example.com")  # type: ignore[attr-defined]
    alice.click('.delegate-form button')  # type: ignore[attr-defined]
    alice.wait_for_selector(".flash-ok")  # type: ignore[attr-defined]
    dave = signed_in(browser, app_url, "dave@example.com")
    # Dave's own inbox lists what he may decide for Alice.
    assert "for alice@example.com" in dave.inner_text(  # type: ignore[attr-defined]
        "#h-delegated + .delegated-requests")
    dave.goto(f"{app_url}/inbox/delegations")  # type: ignore[attr-defined]
    dave.click('.delegated-requests a >> nth=0')  # type: ignore[attr-defined]
    dave.click('.decide-for button[value="approve"]')  # type: ignore[attr-defined]
    dave.wait_for_selector(".flash-ok")  # type: ignore[attr-defined]
    assert "For alice@example.com" in dave.inner_text(".flash-ok")  # type: ignore[attr-defined]
    voted = [v for rid in ("w-2", "w-4", "w-5")
             for v in rt.store.get(rid).votes.values()  # type: ignore[union-attr]
             if v.by == "dave@example.com"]
    assert [v.person for v in voted] == ["alice@example.com"]
