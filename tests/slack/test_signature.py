"""Every inbound Slack request is verified before anything else: a bad signature or a stale
timestamp is a 401 and changes nothing."""

from __future__ import annotations

import json
import time
from pathlib import Path

from bot.slack import render
from signoff.runtime import Runtime
from tests.conftest import DATA
from tests.fakes.slack_api import FakeSlack
from tests.slack.conftest import (
    SIGNING_SECRET,
    SlackClient,
    block_action,
    card_buttons,
    command_body,
    export_body,
    signed_headers,
    slack_signature,
    submit,
)

VECTOR = DATA / "slack" / "signature_test_vector.json"


def test_signing_helper_matches_slacks_documented_vector() -> None:
    vector = json.loads(VECTOR.read_text())
    got = slack_signature(vector["signing_secret"], vector["timestamp"], vector["body"])
    assert got == vector["expected_signature"]


def test_slacks_vector_is_refused_as_stale(srt: Runtime, web: SlackClient) -> None:
    # Correctly signed by Slack, but from 2018: outside the 5-minute window.
    vector = json.loads(VECTOR.read_text())
    headers = {**vector["headers"], "Content-Type": "application/x-www-form-urlencoded"}
    assert web.send(vector["body"], headers)[0] == 401


def _approve_payload(srt: Runtime, fake: FakeSlack) -> dict[str, object]:
    submit(srt, export_body("r-sig"))
    card = fake.cards("r-sig")[0]
    button = card_buttons(card.blocks or [])[render.APPROVE]
    return block_action("U0ALICE", button, channel=card.channel, message_ts=card.ts,
                        fake=fake)


def _nothing_changed(srt: Runtime, fake: FakeSlack) -> None:
    record = srt.store.get("r-sig")
    assert record is not None and record.votes == {}
    assert not any(e.event in ("vote", "click_refused") for e in srt.audit.entries())
    assert fake.ephemerals() == []


def test_forged_signature_is_401_and_changes_nothing(srt: Runtime, fake_slack: FakeSlack,
                                                     web: SlackClient) -> None:
    payload = _approve_payload(srt, fake_slack)
    body = web.form(payload)
    # Signed with the wrong secret.
    assert web.send(body, signed_headers(body, secret="not-the-secret"))[0] == 401
    # A correct signature for a different body (the payload was tampered with).
    other = web.form({**payload, "user": {"id": "U0BOB"}})
    assert web.send(other, signed_headers(body))[0] == 401
    # No signature headers at all.
    assert web.send(body, {"Content-Type": "application/x-www-form-urlencoded"})[0] == 401
    # Bytes that are not UTF-8 (nothing Slack sends can carry a valid signature).
    assert web.send(b"payload=\xff\xfe", signed_headers("payload=\ufffd"))[0] == 401
    _nothing_changed(srt, fake_slack)
    time.sleep(0.2)  # any stray follow-up would have reached the fake by now
    assert fake_slack.ephemerals() == []


def test_stale_timestamp_is_401(srt: Runtime, fake_slack: FakeSlack,
                                web: SlackClient) -> None:
    payload = _approve_payload(srt, fake_slack)
    body = web.form(payload)
    old = time.time() - 6 * 60
    assert web.send(body, signed_headers(body, timestamp=old))[0] == 401
    future = time.time() + 6 * 60
    assert web.send(body, signed_headers(body, timestamp=future))[0] == 401
    _nothing_changed(srt, fake_slack)
    # Inside the window the same click is accepted.
    assert web.send(body, signed_headers(body, timestamp=time.time() - 60))[0] == 200
    assert list(srt.store.get("r-sig").votes) == ["alice@example.com"]  # type: ignore[union-attr]


def test_forged_slash_command_is_401(srt: Runtime, fake_slack: FakeSlack,
                                     web: SlackClient) -> None:
    body = command_body("U0ALICE", "pending", fake_slack)
    assert web.send(body, signed_headers(body, secret=SIGNING_SECRET + "x"))[0] == 401


def test_slack_is_not_mounted_without_its_settings(redis_url: str, tmp_path: Path) -> None:
    from bot.app import create_app
    from tests.conftest import make_settings

    rt = Runtime(make_settings(redis_url, tmp_path / "d"))
    try:
        app = create_app(rt)
        paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
        assert "/slack/events" not in paths
    finally:
        rt.close()
