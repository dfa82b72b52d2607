"""``/signoff status|pending|mine|help`` over real HTTP, and the channel-neutral answers
(bot.commands) that Slack and Teams both render."""

from __future__ import annotations

import json

from bot import commands
from bot.commands import CommandKind
from bot.slack import render
from signoff.runtime import Runtime
from tests.fakes.slack_api import FakeSlack, block_errors, iter_blocks_text
from tests.slack.conftest import (
    SlackClient,
    block_action,
    card_buttons,
    export_body,
    submit,
    until,
)


def shown(answer: dict[str, object]) -> str:
    return "\n".join(iter_blocks_text(answer.get("blocks") or []))  # type: ignore[arg-type]


def test_help_and_bad_input_get_help_not_a_stack_trace(srt: Runtime, fake_slack: FakeSlack,
                                                       web: SlackClient) -> None:
    for text, error in (("", None), ("help", None), ("frobnicate", "Unknown command"),
                        ("status", "Usage: status"), ("status ../../etc", "not a request id"),
                        ("status nope-404", "There is no request nope-404"),
                        ("pending lots", "Usage: pending"), ("mine 0", "Usage: mine")):
        status, answer = web.command("U0ALICE", text, fake_slack)
        assert status == 200, text
        assert answer["response_type"] == "ephemeral"
        body = shown(answer)
        assert "/signoff status &lt;request-id&gt;" in body, text
        if error:
            assert error in body, (text, body)
        assert block_errors(answer["blocks"]) == []


def test_status_pending_mine(srt: Runtime, fake_slack: FakeSlack, web: SlackClient) -> None:
    submit(srt, export_body("r-cmd"))
    status, answer = web.command("U0ALICE", "status r-cmd", fake_slack)
    assert status == 200 and answer["response_type"] == "ephemeral"
    body = shown(answer)
    assert "db.export" in body and "2 of dba — 0 so far" in body
    assert "sk_live" not in json.dumps(answer) and "jane.doe@example.org" not in json.dumps(answer)
    assert render.APPROVE in json.dumps(answer)  # Alice may decide: the buttons are there
    # Frank (the request is for him) sees it without buttons.
    _, frank = web.command("U0FRANK", "status r-cmd", fake_slack)
    assert render.APPROVE not in json.dumps(frank) and render.DETAILS in json.dumps(frank)

    _, pending = web.command("U0ALICE", "pending", fake_slack)
    assert "r-cmd" in shown(pending)
    for user in ("U0FRANK", "U0DAVE"):  # may not decide it: not listed
        _, other = web.command(user, "pending", fake_slack)
        assert "r-cmd" not in shown(other) and "Nothing is waiting for you." in shown(other)
    _, mine = web.command("U0FRANK", "mine", fake_slack)
    assert "r-cmd" in shown(mine)
    _, alices = web.command("U0ALICE", "mine", fake_slack)
    assert "r-cmd" not in shown(alices)
    _, stranger = web.command("U0STRANGER", "pending", fake_slack)
    assert "does not know your account" in shown(stranger)


def test_vote_from_a_status_answer(srt: Runtime, fake_slack: FakeSlack,
                                   web: SlackClient) -> None:
    submit(srt, export_body("r-eph"))
    _, answer = web.command("U0BOB", "status r-eph", fake_slack)
    button = card_buttons(answer["blocks"])[render.APPROVE]
    payload = block_action("U0BOB", button, channel="C0GENERAL", message_ts="", fake=fake_slack)
    payload["container"] = {"type": "message", "is_ephemeral": True, "channel_id": "C0GENERAL"}
    assert web.interact(payload)[0] == 200
    assert list(srt.store.get("r-eph").votes) == ["bob@example.com"]  # type: ignore[union-attr]
    # The answer goes back through the response_url (the app need not be in that channel).
    answer_back = until(fake_slack.responses, what="response_url answer")[0]
    assert answer_back["text"] == "Vote recorded; waiting for more approvals."
    assert answer_back["replace_original"] is False and fake_slack.ephemerals() == []


def test_pending_pages_newest_first(srt: Runtime, fake_slack: FakeSlack,
                                    web: SlackClient) -> None:
    ids = [f"r-page-{i:02d}" for i in range(12)]
    submit(srt, *(export_body(rid) for rid in ids))
    _, first = web.command("U0CAROL", "pending", fake_slack)
    listed = [line for line in shown(first).split("\n") if "`r-page-" in line]
    assert len(listed) == 10
    assert "r-page-11" in listed[0] and "r-page-02" in listed[-1]
    nxt = card_buttons(first["blocks"])[render.PAGE]
    assert nxt["value"] == "pending 2"
    # Clicking "Next page" replaces the ephemeral answer via its response_url.
    payload = block_action("U0CAROL", nxt, channel="C0GENERAL", message_ts="", fake=fake_slack)
    assert web.interact(payload)[0] == 200
    page2 = until(fake_slack.responses, what="page 2")[0]
    assert page2["replace_original"] is True
    text = "\n".join(iter_blocks_text(page2["blocks"]))
    assert "r-page-01" in text and "r-page-00" in text and "r-page-02" not in text
    assert render.PAGE not in json.dumps(page2)  # no page 3


# --- the channel-neutral layer --------------------------------------------------------------
def test_answer_is_channel_neutral(srt: Runtime) -> None:
    submit(srt, export_body("r-n1"), export_body("r-n2"))
    directory = srt.policy.directory
    alice = directory.person("alice@example.com")
    result = commands.answer(srt, alice, "pending")
    assert result.ok and result.kind is CommandKind.PENDING
    assert [v.request_id for v in result.items] == ["r-n2", "r-n1"]
    assert not result.has_more and result.next_command is None
    status = commands.answer(srt, alice, "STATUS r-n1")
    assert status.kind is CommandKind.STATUS and status.decidable
    assert status.view is not None and status.view.request_id == "r-n1"
    # Partial masking for the groups the policy allows it (dba), full masking otherwise.
    assert commands.answer(srt, directory.person("frank@example.com"), "status r-n1"
                           ).decidable is False
    assert commands.answer(srt, None, "mine").error == commands.UNKNOWN_PERSON
    helped = commands.answer(srt, alice, "what")
    assert helped.kind is CommandKind.HELP and helped.error == "Unknown command 'what'."
    text = commands.plain_text(status)
    assert "r-n1" in text and "2 of dba — 0 so far" in text
