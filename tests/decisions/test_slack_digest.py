"""A flooding agent's requests in Slack: past the channel's rate they land on one digest card
("N × db.export from agent:etl-bot") with Review each, Approve all I may decide and Deny all,
over real HTTP with signed requests against the fake Slack. Each member goes through
submit_vote: a request the clicker may not decide (it acts for them) or that needs a passkey
is never decided by the button; a tampered button is refused; a card drawn before an edit
cannot approve the edited request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack import render
from signoff import clicks, edits
from signoff.models import Status
from signoff.runtime import Runtime, set_current
from tests.conftest import run_jobs
from tests.decisions.conftest import POLICY, export
from tests.fakes.slack_api import FakeSlack, iter_blocks_text
from tests.inbox.conftest import shared_masker
from tests.slack.conftest import (
    SlackClient,
    WebThread,
    block_action,
    card_buttons,
    slack_settings,
    submit,
    until,
)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def srt(redis_url: str, tmp_path: Path, fake_slack: FakeSlack) -> Iterator[Runtime]:
    from workers import jobs

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text())
    runtime = Runtime(slack_settings(redis_url, tmp_path / "data", fake_slack,
                                     policy_path=policy, public_url="http://localhost:8765"))
    runtime.__dict__["masker"] = shared_masker()
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


@pytest.fixture
def loop(srt: Runtime) -> Iterator[None]:
    """A worker's delivery loop in this process (the jobs run here hand it their cards)."""
    from workers import delivery, jobs

    delivery.start_loop(srt, jobs.messengers(srt))
    yield
    delivery.stop_loop()


@pytest.fixture
def web(srt: Runtime, loop: None) -> Iterator[SlackClient]:
    thread = WebThread(srt).start()
    yield SlackClient(thread.url + "/slack/events")
    thread.stop()


def digest_message(fake: FakeSlack) -> Any:
    messages = until(lambda: fake.digests(), what="a digest card")
    assert len(messages) == 1
    return messages[0]


def text_of(message: Any) -> str:
    return "\n".join(iter_blocks_text(message.blocks or []))


def click(web: SlackClient, fake: FakeSlack, user: str, message: Any, action_id: str,
          value: str | None = None) -> tuple[int, str]:
    button = card_buttons(message.blocks or [])[action_id]
    return web.interact(block_action(user, button, channel=message.channel,
                                     message_ts=message.ts, fake=fake, value=value))


def test_digest_buttons_decide_only_what_each_person_may(
        srt: Runtime, fake_slack: FakeSlack, web: SlackClient) -> None:
    bodies = [export(f"f-{n}", params={"rows": n, "format": "csv"}) for n in range(1, 17)]
    for body in bodies[1::2]:
        body["on_behalf_of"] = "alice@example.com"  # Alice may not decide these
    submit(srt, *bodies)
    digest = digest_message(fake_slack)
    members = json.loads(srt.redis.hget(srt.keys.digest(
        "slack:#approvals", digest.metadata["event_payload"]["digest"]), "ids"))
    mine = [rid for rid in members if int(rid[2:]) % 2 == 0]  # acting for Alice
    others = [rid for rid in members if rid not in mine]
    assert mine and others, members
    text = text_of(digest)
    assert f"{len(members)} × db.export from agent:etl-bot" in text
    buttons = card_buttons(digest.blocks or [])
    assert buttons[render.DIGEST_REVIEW]["url"] == "http://localhost:8765/inbox"

    # A tampered button (claims more members than it listed) is refused, nothing recorded.
    value = json.loads(buttons[render.DIGEST_APPROVE]["value"])
    forged = json.dumps({**value, "v": value["v"] + 5})
    status, _ = click(web, fake_slack, "U0ALICE", digest, render.DIGEST_APPROVE, value=forged)
    assert status == 200
    # A digest button signed for a digest that does not exist decides nothing either.
    other = clicks.sign(srt.hmac_key, "digest:slack:#other|nope", 3, "approve")
    click(web, fake_slack, "U0ALICE", digest, render.DIGEST_APPROVE, value=other)
    assert all(not srt.store.get(rid).votes for rid in members)  # type: ignore[union-attr]

    status, _ = click(web, fake_slack, "U0ALICE", digest, render.DIGEST_APPROVE)
    assert status == 200
    said = until(lambda: [e.text for e in fake_slack.ephemerals() if e.user == "U0ALICE"
                          and "went through" in e.text], what="the summary")[-1]
    assert f"{len(others)} of {len(members)} went through" in said
    assert f"{mine[0]}: This action is being done on your behalf" in said
    for rid in members:
        votes = srt.store.get(rid).votes  # type: ignore[union-attr]
        assert list(votes) == ([] if rid in mine else ["alice@example.com"])
    # Bob approves all: every one he may decide is approved; the digest shows it.
    click(web, fake_slack, "U0BOB", digest, render.DIGEST_APPROVE)
    until(lambda: all(srt.store.get(rid).status is Status.APPROVED  # type: ignore[union-attr]
                      for rid in others), what="approved")
    assert all(srt.store.get(rid).status is Status.PENDING  # type: ignore[union-attr]
               for rid in mine)
    run_jobs(srt)
    until(lambda: "Approved by alice@example.com, bob@example.com" in text_of(
        digest_message(fake_slack)), what="the digest updated")
    # Carol denies what is left (the ones acting for Alice).
    click(web, fake_slack, "U0CAROL", digest_message(fake_slack), render.DIGEST_DENY)
    until(lambda: all(srt.store.get(rid).status is Status.DENIED  # type: ignore[union-attr]
                      for rid in mine), what="denied")


def test_a_card_drawn_before_an_edit_cannot_approve_the_edited_request(
        srt: Runtime, fake_slack: FakeSlack, web: SlackClient) -> None:
    submit(srt, export("ed-1", params={"rows": 50000, "format": "csv"}))
    card = until(lambda: fake_slack.cards("ed-1"), what="the card")[0]
    got = edits.submit_edit(srt, "ed-1", srt.policy.directory.person("alice@example.com"),
                            {"rows": 100})
    assert got.ok
    status, _ = click(web, fake_slack, "U0BOB", card, render.APPROVE)
    assert status == 200
    said = until(lambda: [e.text for e in fake_slack.ephemerals() if e.user == "U0BOB"],
                 what="the answer")
    assert "edited after you saw it" in said[-1]
    assert list(srt.store.get("ed-1").votes) == ["alice@example.com"]  # type: ignore[union-attr]


def edit_submission(user: str, modal: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """A view_submission of the edit modal with ``values`` typed in."""
    return {
        "type": "view_submission",
        "team": {"id": "T0SIGNOFF", "domain": "signoff-test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0SIGNOFF"},
        "api_app_id": "A0SIGNOFF", "token": "legacy-verification-token",
        "trigger_id": f"{time.time():.6f}.1.trigger",
        "view": {**modal, "id": f"V0EDIT{time.time_ns()}", "team_id": "T0SIGNOFF",
                 "hash": "1.abc", "app_id": "A0SIGNOFF", "bot_id": "B0SIGNBOT",
                 "state": {"values": {render.EDIT_BLOCK + k: {render.EDIT_INPUT: {
                     "type": "plain_text_input", "value": v}} for k, v in values.items()}}},
        "response_urls": [],
    }


def test_edit_in_the_slack_modal_within_bounds(
        srt: Runtime, fake_slack: FakeSlack, web: SlackClient) -> None:
    submit(srt, export("sm-1", params={"rows": 50000, "format": "csv"}))
    card = until(lambda: fake_slack.cards("sm-1"), what="the card")[0]
    status, _ = click(web, fake_slack, "U0ALICE", card, render.EDIT)
    assert status == 200
    modal = until(lambda: fake_slack.views(), what="the edit modal")[-1]
    assert modal["callback_id"] == render.EDIT_CALLBACK
    labels = [b["label"]["text"] for b in modal["blocks"] if b["type"] == "input"]
    assert labels == ["rows"]
    # Outside the bounds: the modal shows why; nothing changes.
    status, body = web.interact(edit_submission("U0ALICE", modal, {"rows": "20000"}))
    assert status == 200 and "maximum of 10000" in json.loads(body)["errors"][
        render.EDIT_BLOCK + "rows"]
    assert srt.store.get("sm-1").get("original_payload_sha256") is None  # type: ignore[union-attr]
    # Someone who may not decide it (Dave is no DBA) cannot edit it either.
    status, body = web.interact(edit_submission("U0DAVE", modal, {"rows": "10"}))
    assert status == 200 and "errors" in json.loads(body)
    status, body = web.interact(edit_submission("U0ALICE", modal, {"rows": "9000"}))
    assert status == 200 and body == ""
    record = srt.store.get("sm-1")
    assert record is not None and list(record.votes) == ["alice@example.com"]
    assert record.json("edits")[0]["changes"] == [{"param": "rows", "from": "50000",
                                                   "to": "9000"}]
    assert record.json("edits")[0]["channel"] == "slack"


def test_deny_with_a_preset_reason_in_slack(
        srt: Runtime, fake_slack: FakeSlack, web: SlackClient) -> None:
    submit(srt, export("dr-1"))
    card = until(lambda: fake_slack.cards("dr-1"), what="the card")[0]
    status, _ = click(web, fake_slack, "U0ALICE", card, render.DENY)
    assert status == 200
    modal = until(lambda: fake_slack.views(), what="the deny modal")[-1]
    assert modal["callback_id"] == render.DENY_CALLBACK
    select = next(b for b in modal["blocks"] if b.get("block_id") == render.PRESET_BLOCK)
    options = [o["value"] for o in select["element"]["options"]]
    assert options == ["Too many rows", "Wrong environment", "Not during a freeze"]
    assert srt.store.get("dr-1").status is Status.PENDING  # type: ignore[union-attr]
    payload = {
        "type": "view_submission", "team": {"id": "T0SIGNOFF", "domain": "signoff-test"},
        "user": {"id": "U0ALICE", "username": "u0alice", "team_id": "T0SIGNOFF"},
        "api_app_id": "A0SIGNOFF", "token": "legacy-verification-token",
        "trigger_id": "1.1.trigger",
        "view": {**modal, "id": "V0DENYPRESET", "team_id": "T0SIGNOFF", "hash": "1.abc",
                 "app_id": "A0SIGNOFF", "bot_id": "B0SIGNBOT", "state": {"values": {
                     render.PRESET_BLOCK: {render.PRESET_INPUT: {
                         "type": "static_select", "selected_option": {
                             "text": {"type": "plain_text", "text": "Wrong environment"},
                             "value": "Wrong environment"}}},
                     render.REASON_BLOCK: {render.REASON_INPUT: {
                         "type": "plain_text_input", "value": None}}}}},
        "response_urls": [],
    }
    status, body = web.interact(payload)
    assert status == 200 and body == "", body
    record = srt.store.get("dr-1")
    assert record is not None and record.status is Status.DENIED
    assert [v.comment for v in record.votes.values()] == ["Wrong environment"]


def test_approve_for_a_while_in_slack(
        srt: Runtime, fake_slack: FakeSlack, web: SlackClient) -> None:
    submit(srt, export("sw-1"))
    card = until(lambda: fake_slack.cards("sw-1"), what="the card")[0]
    for user, window in (("U0ALICE", "3600"), ("U0BOB", "900")):
        status, _ = click(web, fake_slack, user, card, render.STANDING)
        assert status == 200
        modal = until(lambda: [v for v in fake_slack.views()
                               if v.get("callback_id") == render.STANDING_CALLBACK],
                      what="the modal")[-1]
        options = [o["value"] for o in next(b for b in modal["blocks"] if b.get(
            "block_id") == render.STANDING_BLOCK)["element"]["options"]]
        assert options == ["900", "3600", "14400"]
        payload = {
            "type": "view_submission", "team": {"id": "T0SIGNOFF", "domain": "signoff-test"},
            "user": {"id": user, "username": user.lower(), "team_id": "T0SIGNOFF"},
            "api_app_id": "A0SIGNOFF", "token": "legacy-verification-token",
            "trigger_id": f"{time.time():.6f}.1.trigger",
            "view": {**modal, "id": f"V0ST{user}", "team_id": "T0SIGNOFF", "hash": "1.abc",
                     "app_id": "A0SIGNOFF", "bot_id": "B0SIGNBOT", "state": {"values": {
                         render.STANDING_BLOCK: {render.STANDING_INPUT: {
                             "type": "static_select",
                             "selected_option": {"text": {"type": "plain_text", "text": "x"},
                                                 "value": window}}}}}},
            "response_urls": []}
        status, body = web.interact(payload)
        assert status == 200 and body == "", body
    run_jobs(srt)
    record = srt.store.get("sw-1")
    assert record is not None and record.status is Status.APPROVED
    assert record.get("standing_created")
    submit(srt, export("sw-2"))
    assert srt.store.get("sw-2").status is Status.APPROVED  # type: ignore[union-attr]
    assert fake_slack.cards("sw-2") == []  # approved at once: no card to decide
