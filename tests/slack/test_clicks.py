"""Clicks over real HTTP: signed block_actions and view_submission requests against the running
web server, the real rq jobs, and the fake Slack Web API."""

from __future__ import annotations

import json
import time
from typing import Any

from bot.slack import render
from signoff import clicks
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_jobs
from tests.fakes.slack_api import FakeSlack, Message, block_errors, iter_blocks_text
from tests.slack.conftest import (
    SlackClient,
    block_action,
    card_buttons,
    export_body,
    submit,
    until,
    view_submission,
)

APPROVALS = "C0APPROVALS"


def only_card(fake: FakeSlack, rid: str) -> Message:
    cards = fake.cards(rid)
    assert len(cards) == 1, [c.channel for c in cards]
    return cards[0]


def card_text(message: Message) -> str:
    return "\n".join(iter_blocks_text(message.blocks or []))


def click_payload(fake: FakeSlack, user: str, card: Message, action_id: str,
                  **kw: Any) -> dict[str, Any]:
    button = card_buttons(card.blocks or [])[action_id]
    return block_action(user, button, channel=card.channel, message_ts=card.ts, fake=fake, **kw)


def click(web: SlackClient, fake: FakeSlack, user: str, card: Message, action_id: str,
          **kw: Any) -> tuple[int, str]:
    return web.interact(click_payload(fake, user, card, action_id, **kw))


def ephemeral_for(fake: FakeSlack, user: str) -> list[str]:
    return [e.text for e in fake.ephemerals() if e.user == user]


def test_two_dbas_approve_cards_update_agent_gets_grant(
        srt: Runtime, fake_slack: FakeSlack, web: SlackClient) -> None:
    submit(srt, export_body("r-ok"))
    card = only_card(fake_slack, "r-ok")
    assert card.channel == APPROVALS
    assert block_errors(card.blocks) == []
    text = card_text(card)
    assert "sk_live" not in text and "jane.doe@example.org" not in text  # masked
    assert "&lt;!channel&gt;" in text and "<!channel>" not in text  # no smuggled pings
    assert "2 of dba — 0 so far" in text

    started = time.perf_counter()
    status, body = click(web, fake_slack, "U0ALICE", card, render.APPROVE)
    assert status == 200 and body == ""
    assert time.perf_counter() - started < 3.0  # Slack's ack deadline
    record = srt.store.get("r-ok")
    assert record is not None and list(record.votes) == ["alice@example.com"]
    assert record.votes["alice@example.com"].channel == "slack"
    assert until(lambda: ephemeral_for(fake_slack, "U0ALICE"), what="ephemeral") == [
        "Vote recorded; waiting for more approvals."]

    run_jobs(srt)  # update_cards: the card shows progress and a thread reply
    card = only_card(fake_slack, "r-ok")
    assert card.edits == 1 and "2 of dba — 1 so far" in card_text(card)
    replies = fake_slack.replies(APPROVALS, card.ts)
    assert [r.text for r in replies] == [
        ":white_check_mark: <@U0ALICE> approved · 2 of dba — 1 so far"]

    status, _ = click(web, fake_slack, "U0BOB", card, render.APPROVE)
    assert status == 200
    assert srt.store.status("r-ok") is Status.APPROVED
    run_jobs(srt)  # finalize: grant, reply, cards, DM to the human it acts for

    reply = json.loads(srt.redis.lpop(srt.keys.reply("r-ok")))
    assert reply["status"] == "approved" and reply["grant"]
    assert [a["person"] for a in reply["approvers"]] == ["alice@example.com", "bob@example.com"]
    assert srt.redis.llen(srt.keys.reply("r-ok")) == 0

    card = only_card(fake_slack, "r-ok")
    final = card_text(card)
    assert "Approved by <@U0ALICE>, <@U0BOB>" in final
    assert render.APPROVE not in {b["action_id"] for b in card_buttons(card.blocks or {})
                                  .values()}
    assert block_errors(card.blocks) == []
    thread = [r.text for r in fake_slack.replies(APPROVALS, card.ts)]
    assert len(thread) == 2 and "<@U0BOB> approved" in thread[1]
    dms = fake_slack.messages(fake_slack.dm_channel("U0FRANK"))
    assert len(dms) == 1 and "Approved by" in dms[0].text and "r-ok" in dms[0].text


def test_refused_clicks_change_nothing(srt: Runtime, fake_slack: FakeSlack,
                                             web: SlackClient) -> None:
    submit(srt, export_body("r-no"))
    card = only_card(fake_slack, "r-no")
    version = srt.store.get("r-no").version  # type: ignore[union-attr]
    cases = {
        "U0FRANK": "This action is being done on your behalf; someone else must decide it.",
        "U0ERIN": "You own the agent that made this request; someone else must decide it.",
        "U0DAVE": "Only members of dba can decide this request.",
        "U0STRANGER": "Signoff does not know your account",
    }
    for user in cases:
        status, _ = click(web, fake_slack, user, card, render.APPROVE)
        assert status == 200
    for user, expected in cases.items():
        said = until(lambda u=user: ephemeral_for(fake_slack, u), what=user)
        assert said[0].startswith(expected), (user, said)
    record = srt.store.get("r-no")
    assert record is not None and record.votes == {} and record.version == version
    refused = [e for e in srt.audit.entries() if e.event == "click_refused"]
    assert len(refused) == 4


def test_forged_button_value_is_refused(srt: Runtime, fake_slack: FakeSlack,
                                              web: SlackClient) -> None:
    submit(srt, export_body("r-a"), export_body("r-b"))
    card = only_card(fake_slack, "r-a")
    # A valid Slack request whose button names another request (HMAC does not match).
    forged = json.dumps({"r": "r-b", "v": 2, "c": "approve", "s": "0" * 32})
    status, _ = click(web, fake_slack, "U0ALICE", card, render.APPROVE, value=forged)
    assert status == 200
    # A real Deny button value sent as an Approve action.
    deny_value = card_buttons(card.blocks or [])[render.DENY]["value"]
    status, _ = click(web, fake_slack, "U0BOB", card, render.APPROVE, value=deny_value)
    assert status == 200
    until(lambda: len(fake_slack.ephemerals()) == 2, what="two refusals")
    assert {e.text for e in fake_slack.ephemerals()} == {
        "This button was not issued by Signoff for this request, so nothing was recorded."}
    for rid in ("r-a", "r-b"):
        assert srt.store.get(rid).votes == {}  # type: ignore[union-attr]


def test_replayed_click_is_refused(srt: Runtime, fake_slack: FakeSlack,
                                         web: SlackClient) -> None:
    submit(srt, export_body("r-replay"))
    card = only_card(fake_slack, "r-replay")
    button = card_buttons(card.blocks or [])[render.APPROVE]
    payload = block_action("U0ALICE", button, channel=card.channel, message_ts=card.ts,
                           fake=fake_slack)
    assert (web.interact(payload))[0] == 200
    # The identical signed request again (as an attacker replaying it would send it).
    assert (web.interact(payload))[0] == 200
    said = until(lambda: (lambda e: e if len(e) == 2 else None)(
        ephemeral_for(fake_slack, "U0ALICE")), what="two answers")
    # Refused (by the already-voted rule or by the click nonce), audited, nothing changed.
    assert said[1] in ("You have already voted on this request.",
                       "This click was already received.")
    assert any(e.event == "click_refused" for e in srt.audit.entries())
    record = srt.store.get("r-replay")
    assert record is not None and len(record.votes) == 1
    assert record.status is Status.PENDING


def test_deny_opens_modal_and_records_reason(srt: Runtime, fake_slack: FakeSlack,
                                                   web: SlackClient) -> None:
    submit(srt, export_body("r-deny"))
    card = only_card(fake_slack, "r-deny")
    status, _ = click(web, fake_slack, "U0CAROL", card, render.DENY)
    assert status == 200
    views = until(fake_slack.views, what="the deny modal")
    modal = views[0]
    assert modal["callback_id"] == render.DENY_CALLBACK
    assert srt.store.get("r-deny").votes == {}  # type: ignore[union-attr]

    # Submitting without a reason is answered inside the modal; nothing recorded.
    status, body = web.interact(view_submission("U0CAROL", modal, "   "))
    assert status == 200 and json.loads(body)["response_action"] == "errors"
    # A non-approver's submission is refused in the modal too.
    status, body = web.interact(view_submission("U0DAVE", modal, "no", view_id="V0D"))
    assert json.loads(body)["errors"][render.REASON_BLOCK].startswith("Only members of dba")
    assert srt.store.get("r-deny").votes == {}  # type: ignore[union-attr]

    status, body = web.interact(view_submission("U0CAROL", modal,
                                                      "No export without DPO sign-off"))
    assert status == 200 and body == ""  # an empty ack closes the modal
    assert srt.store.status("r-deny") is Status.DENIED
    until(lambda: ephemeral_for(fake_slack, "U0CAROL"), what="confirmation")
    run_jobs(srt)
    reply = json.loads(srt.redis.lpop(srt.keys.reply("r-deny")))
    assert reply["status"] == "denied" and reply["reason"] == "No export without DPO sign-off"
    assert "grant" not in reply
    final = card_text(only_card(fake_slack, "r-deny"))
    assert "Denied by <@U0CAROL>" in final and "No export without DPO sign-off" in final


def test_racing_approvers_count_exactly_once(srt: Runtime, fake_slack: FakeSlack,
                                                   web: SlackClient) -> None:
    submit(srt, export_body("r-race"))
    card = only_card(fake_slack, "r-race")
    # Alice double-clicks while Bob and Carol click too; quorum is 2 of dba.
    results = web.interact_many([
        click_payload(fake_slack, user, card, render.APPROVE)
        for user in ("U0ALICE", "U0ALICE", "U0BOB", "U0CAROL")])
    assert all(status == 200 for status, _ in results)
    record = srt.store.get("r-race")
    assert record is not None and record.status is Status.APPROVED
    assert len(record.approvers) == 2
    answers = until(lambda: (lambda e: e if len(e) == 4 else None)(
        [x.text for x in fake_slack.ephemerals()]), what="four answers")
    assert answers.count("Request approved.") == 1
    assert answers.count("Vote recorded; waiting for more approvals.") == 1
    assert sorted(a for a in answers if a not in (
        "Request approved.", "Vote recorded; waiting for more approvals.")) == sorted(
        answers[i] for i in range(4) if answers[i] in (
            "This request was already approved.", "You have already voted on this request."))
    run_jobs(srt)
    assert srt.redis.llen(srt.keys.reply("r-race")) == 1  # one reply, one grant
    assert sum(1 for e in srt.audit.entries() if e.event == "grant_issued"
               and e.request_id == "r-race") == 1


def test_every_slack_card_is_updated(srt: Runtime, fake_slack: FakeSlack,
                                           web: SlackClient) -> None:
    # iam-grant: #approvals plus a DM to every secops member; 1 of secops + the role's owner.
    body = export_body("r-iam", action="iam.grant", resource="role/db-reader",
                       params={"role": "db-reader", "user": "frank@example.com"})
    submit(srt, body)
    cards = fake_slack.cards("r-iam")
    where = sorted(c.channel for c in cards)
    assert where == sorted([APPROVALS, fake_slack.dm_channel("U0CAROL"),
                            fake_slack.dm_channel("U0DAVE")])
    dm = next(c for c in cards if c.channel == fake_slack.dm_channel("U0DAVE"))
    assert (click(web, fake_slack, "U0DAVE", dm, render.APPROVE))[0] == 200
    run_jobs(srt)
    assert (click(web, fake_slack, "U0ALICE", only_in(cards, APPROVALS),
                        render.APPROVE))[0] == 200
    assert srt.store.status("r-iam") is Status.APPROVED
    run_jobs(srt)
    for card in fake_slack.cards("r-iam"):
        text = card_text(card)
        assert "Approved by <@U0DAVE>, <@U0ALICE>" in text, card.channel
        assert render.APPROVE not in json.dumps(card.blocks)
        assert len(fake_slack.replies(card.channel, card.ts)) == 2, card.channel
    recorded = srt.redis.hgetall(srt.keys.cards("r-iam"))
    assert sum(1 for k in recorded if k.startswith("slack:")) == 3


def only_in(cards: list[Message], channel: str) -> Message:
    return next(c for c in cards if c.channel == channel)


def test_details_modal_shows_whole_masked_payload(srt: Runtime, fake_slack: FakeSlack,
                                                        web: SlackClient) -> None:
    big = {"rows": [{"n": i, "email": f"user{i}@example.org", "note": "x" * 40}
                    for i in range(150)]}
    submit(srt, export_body("r-big", params=big))
    card = only_card(fake_slack, "r-big")
    assert "View details" in card_text(card) and "…" in card_text(card)
    assert (click(web, fake_slack, "U0BOB", card, render.DETAILS))[0] == 200
    modal = (until(fake_slack.views, what="details modal"))[0]
    shown = "\n".join(iter_blocks_text(modal["blocks"]))
    assert '"n": 149' in shown  # the whole payload, across blocks
    assert "user7@example.org" not in shown  # still masked
    # Somebody outside the directory gets an explanation, not the payload.
    assert (click(web, fake_slack, "U0STRANGER", card, render.DETAILS))[0] == 200
    said = until(lambda: ephemeral_for(fake_slack, "U0STRANGER"), what="refusal")
    assert "does not know your account" in said[0]
    assert len(fake_slack.views()) == 1


def test_button_values_carry_our_hmac(srt: Runtime, fake_slack: FakeSlack) -> None:
    submit(srt, export_body("r-hmac"))
    buttons = card_buttons(only_card(fake_slack, "r-hmac").blocks or [])
    for action_id, choice in ((render.APPROVE, "approve"), (render.DENY, "deny"),
                              (render.DETAILS, "details")):
        verified = clicks.verify(srt.hmac_key, buttons[action_id]["value"])
        assert (verified.request_id, verified.choice) == ("r-hmac", choice)
    assert buttons[render.APPROVE]["confirm"]["confirm"]["text"] == "Approve"


def test_deny_without_required_reason_is_one_click(srt: Runtime, fake_slack: FakeSlack,
                                                    web: SlackClient) -> None:
    # iam-grant does not ask for a deny comment: Deny records the vote at once, no modal.
    submit(srt, export_body("r-quick", action="iam.grant", resource="role/db-reader",
                            params={"role": "db-reader", "user": "frank@example.com"}))
    card = next(c for c in fake_slack.cards("r-quick") if c.channel == APPROVALS)
    assert click(web, fake_slack, "U0DAVE", card, render.DENY)[0] == 200
    assert srt.store.status("r-quick") is Status.DENIED
    assert until(lambda: ephemeral_for(fake_slack, "U0DAVE")) == ["Request denied."]
    assert fake_slack.views() == []
