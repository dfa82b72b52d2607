"""Socket Mode: with SLACK_APP_TOKEN the web process connects out to Slack over a WebSocket
(here the fake's) and handles commands and clicks through the same bolt listeners."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from bot.slack import render
from signoff.runtime import Runtime, set_current
from tests.fakes.slack_api import APP_TOKEN, FakeSlack, iter_blocks_text
from tests.slack.conftest import (
    WebThread,
    block_action,
    card_buttons,
    command_body,
    export_body,
    slack_settings,
    submit,
    until,
)


@pytest.fixture
def socket_rt(redis_url: str, tmp_path: Path, fake_slack: FakeSlack,
              shared_masker: Any) -> Iterator[Runtime]:
    from workers import jobs

    # Socket Mode only: no signing secret, so no public HTTP endpoint is mounted.
    settings = slack_settings(redis_url, tmp_path / "data", fake_slack,
                              slack_signing_secret=None, slack_app_token=APP_TOKEN)
    runtime = Runtime(settings)
    runtime.__dict__["masker"] = shared_masker
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


def test_commands_and_clicks_over_socket_mode(socket_rt: Runtime,
                                              fake_slack: FakeSlack) -> None:
    server = WebThread(socket_rt).start()
    try:
        paths = {r.resource.canonical for r in server.app.router.routes()
                 if r.resource is not None}
        assert "/slack/events" not in paths
        until(lambda: fake_slack.calls("apps.connections.open"), what="socket connect")
        assert fake_slack.calls("apps.connections.open")[0].error is None

        command = dict(parse_qsl(command_body("U0ALICE", "help", fake_slack)))
        fake_slack.send_socket({"envelope_id": "env-1", "type": "slash_commands",
                                "accepts_response_payload": True, "payload": command})
        ack = until(lambda: next((a for a in fake_slack.socket_acks()
                                  if a.get("envelope_id") == "env-1"), None), what="ack")
        shown = "\n".join(iter_blocks_text(ack["payload"]["blocks"]))
        assert "/signoff pending [page]" in shown

        submit(socket_rt, export_body("r-sock"))
        card = fake_slack.cards("r-sock")[0]
        button = card_buttons(card.blocks or [])[render.APPROVE]
        payload = block_action("U0BOB", button, channel=card.channel, message_ts=card.ts,
                               fake=fake_slack)
        fake_slack.send_socket({"envelope_id": "env-2", "type": "interactive",
                                "accepts_response_payload": False, "payload": payload})
        until(lambda: any(a.get("envelope_id") == "env-2" for a in fake_slack.socket_acks()),
              what="click ack")
        record = socket_rt.store.get("r-sock")
        assert record is not None and list(record.votes) == ["bob@example.com"]
        until(lambda: [e for e in fake_slack.ephemerals() if e.user == "U0BOB"],
              what="ephemeral")
    finally:
        server.stop()
