"""Step-up requests in chat and over the API: Slack and Teams cards say why and link to the
inbox's step-up page instead of voting; a signed Slack click (an old card's button, or a
forged value) and an API vote without the assertion are refused and change nothing; a proof
made through the API decides the request and the Slack card updates like any other vote."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack import render
from bot.teams import render as teams_render
from signoff import clicks
from signoff.cardview.view import build_view
from signoff.models import Status
from signoff.runtime import Runtime, set_current
from signoff.tokens import TokenKind
from tests.conftest import run_jobs
from tests.fakes.slack_api import FakeSlack, iter_blocks_text
from tests.slack.conftest import (
    SlackClient,
    WebThread,
    block_action,
    card_buttons,
    slack_settings,
    submit,
    until,
)
from tests.stepup.conftest import POLICY, PUBLIC_URL, drop_body, enrol


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def srt(redis_url: str, tmp_path: Path, fake_slack: FakeSlack) -> Iterator[Runtime]:
    from tests.inbox.conftest import shared_masker
    from workers import jobs

    runtime = Runtime(slack_settings(redis_url, tmp_path / "data", fake_slack,
                                     policy_path=POLICY, public_url=PUBLIC_URL))
    runtime.__dict__["masker"] = shared_masker()
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


@pytest.fixture
def server(srt: Runtime) -> Iterator[WebThread]:
    thread = WebThread(srt).start()
    yield thread
    thread.stop()


class Reply:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.text = body.decode()

    def json(self) -> Any:
        return json.loads(self.text)


def post(url: str, body: dict[str, Any], headers: dict[str, str]) -> Reply:
    """POST JSON with the standard library (bounded timeout); any status is returned."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={**headers, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return Reply(resp.status, resp.read())
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read())


def hmac_key(rt: Runtime) -> bytes:
    key: Any = rt.settings.hmac_key
    return bytes(key() if callable(key) else key)


def card_of(fake: FakeSlack, rid: str) -> Any:
    cards = fake.cards(rid)
    assert len(cards) == 1
    return cards[0]


def test_slack_card_links_to_step_up_and_clicks_cannot_vote(
        srt: Runtime, fake_slack: FakeSlack, server: WebThread) -> None:
    web = SlackClient(server.url + "/slack/events")
    submit(srt, drop_body("drop-s"))
    card = card_of(fake_slack, "drop-s")
    text = "\n".join(iter_blocks_text(card.blocks or []))
    assert "needs a passkey" in text and "a click in Slack is not enough" in text
    buttons = card_buttons(card.blocks or [])
    assert render.APPROVE not in buttons and render.DENY not in buttons
    approve = buttons[render.STEP_UP_APPROVE]
    assert approve["url"] == f"{PUBLIC_URL}/inbox/r/drop-s/step-up?choice=approve"
    assert buttons[render.STEP_UP_DENY]["url"].endswith("/inbox/r/drop-s/step-up?choice=deny")

    # Slack sends the link button's click too: acknowledged, nothing decided.
    status, _ = web.interact(block_action("U0ALICE", {**approve, "value": ""},
                                          channel=card.channel, message_ts=card.ts,
                                          fake=fake_slack))
    assert status == 200
    # A correctly signed Approve click (an old card, or a crafted one) reaches submit_vote,
    # which refuses it: the passkey is required whatever the channel.
    record = srt.store.get("drop-s")
    forged = {"action_id": render.APPROVE, "block_id": approve["block_id"],
              "text": {"type": "plain_text", "text": "Approve"},
              "value": clicks.sign(hmac_key(srt), "drop-s", record.version, "approve")}
    status, _ = web.interact(block_action("U0ALICE", forged, channel=card.channel,
                                          message_ts=card.ts, fake=fake_slack))
    assert status == 200
    until(lambda: any("passkey" in e.text for e in fake_slack.ephemerals()
                      if e.user == "U0ALICE"), what="the refusal shown to Alice")
    run_jobs(srt)
    record = srt.store.get("drop-s")
    assert record.status is Status.PENDING and record.votes == {}

    # Alice proves presence (here through the API with her passkey); the card updates.
    device = enrol(srt, "alice@example.com")
    token = srt.tokens.create(TokenKind.PERSON, "alice@example.com")
    headers = {"Authorization": f"Bearer {token}"}
    api = server.url + "/api/v1/requests/drop-s"
    refused = post(api + "/decision", {"decision": "approve"}, headers)
    assert refused.status_code == 403
    problem = refused.json()
    assert problem["code"] == "step_up_required"
    assert problem["step_up_url"] == f"{PUBLIC_URL}/inbox/r/drop-s/step-up"
    options = post(api + "/step-up", {"decision": "approve"}, headers)
    assert options.status_code == 200, options.text
    proof = device.get(options.json()["publicKey"])
    wrong = post(api + "/decision", {"decision": "deny", "comment": "x", "step_up": proof},
                 headers)
    assert wrong.status_code == 403 and wrong.json()["code"] == "step_up_other_choice"
    ok = post(api + "/decision", {"decision": "approve", "step_up": proof}, headers)
    assert ok.status_code == 200, ok.text
    replay = post(api + "/decision", {"decision": "approve", "step_up": proof}, headers)
    assert replay.status_code == 409  # the request is decided; nothing more changes
    run_jobs(srt)
    assert srt.store.status("drop-s") is Status.APPROVED
    updated = card_of(fake_slack, "drop-s")
    text = "\n".join(iter_blocks_text(updated.blocks or []))
    assert "alice" in text.lower() and "approved" in text.lower()
    assert render.STEP_UP_APPROVE not in card_buttons(updated.blocks or [])


def test_teams_card_opens_the_inbox(srt: Runtime) -> None:
    from tests.stepup.conftest import make_pending

    make_pending(srt, drop_body("drop-t"))
    view = build_view(srt.store.get("drop-t"))
    card = teams_render.render_card(view, b"k" * 32, viewer_can_decide=True)
    actions = [a for a in card["actions"] if a["type"] != "Action.ToggleVisibility"]
    assert [a["type"] for a in actions] == ["Action.OpenUrl", "Action.OpenUrl"]
    assert actions[0]["url"] == f"{PUBLIC_URL}/inbox/r/drop-t/step-up?choice=approve"
    assert "needs a passkey" in json.dumps(card)
    assert not any(a.get("verb") for a in card["actions"])
