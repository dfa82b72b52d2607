"""Outbound delivery against the fake Web API: rate limits, server errors, timeouts, crashes
between posting and recording, permanent failures. No card is ever lost or posted twice."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from bot.cli import preview_view
from bot.slack.messenger import SlackMessenger
from signoff import lifecycle
from signoff.cardview.view import CardView
from signoff.messenger import DeliveryError, RateLimited
from signoff.models import AgentRequest, Status
from signoff.runtime import Runtime
from tests.conftest import run_jobs
from tests.fakes.slack_api import FakeSlack, block_errors, view_errors
from tests.slack.conftest import export_body, submit, until

APPROVALS = "C0APPROVALS"


def view_of(srt: Runtime, rid: str = "r-view", **over: Any) -> CardView:
    request = AgentRequest.model_validate(export_body(rid, **over))
    return preview_view(srt.policy, srt.masker, request)


def messenger(srt: Runtime, **kw: Any) -> SlackMessenger:
    kw.setdefault("timeout", 2)
    return SlackMessenger(srt.settings, srt.hmac_key, **kw)


def deliver_until(srt: Runtime, predicate: Any, timeout: float = 15.0) -> None:
    """What a worker's delivery loop does: drain whatever is due, until ``predicate``."""
    from workers import jobs

    def step() -> Any:
        jobs.deliver_due()
        return predicate()

    until(step, timeout=timeout, what="cards delivered")


def test_429_is_raised_and_the_channel_waits_for_retry_after(srt: Runtime,
                                                             fake_slack: FakeSlack) -> None:
    # The messenger never sleeps through Retry-After: it says how long to wait.
    fake_slack.inject("chat.postMessage", "429", times=1, retry_after=2)
    with pytest.raises(RateLimited) as caught:
        asyncio.run(messenger(srt).post(view_of(srt), "#approvals"))
    assert caught.value.retry_after == 2.0
    assert fake_slack.cards("r-view") == []
    # Through the delivery: the channel's card is rescheduled for when Slack allows it.
    fake_slack.inject("chat.postMessage", "429", times=1, retry_after=1)
    submit(srt, export_body("r-later"))
    refused = fake_slack.calls("chat.postMessage")[-1]
    assert refused.status == 429 and fake_slack.cards("r-later") == []
    slot = "slack:#approvals"
    due = srt.cards.due_at(slot)
    assert due is not None and due >= refused.at + 1.0 - 0.05
    from workers import jobs

    jobs.deliver_due()  # not due yet: nothing is called
    assert fake_slack.calls("chat.postMessage")[-1] is refused or time.time() >= due
    deliver_until(srt, lambda: fake_slack.cards("r-later"))
    calls = fake_slack.calls("chat.postMessage")
    assert calls[-1].at - refused.at >= 1.0 - 0.05  # not before Retry-After
    assert len(fake_slack.cards("r-later")) == 1
    assert srt.cards.has_card("r-later", slot)


def test_first_post_does_not_read_the_history(srt: Runtime, fake_slack: FakeSlack) -> None:
    submit(srt, export_body("r-first"))
    assert len(fake_slack.cards("r-first")) == 1
    assert fake_slack.calls("conversations.history") == []


def test_429_storm_loses_and_duplicates_nothing(srt: Runtime, fake_slack: FakeSlack) -> None:
    # Every chat.postMessage is refused with 429 for 2.5 s while three requests are notified
    # (the real notify jobs, in an rq worker); the delivery resumes when Slack allows.
    fake_slack.inject("chat.postMessage", "429", seconds=2.5, retry_after=1)
    ids = ["r-storm-1", "r-storm-2", "r-storm-3"]
    submit(srt, *(export_body(rid) for rid in ids))
    assert any(c.status == 429 for c in fake_slack.calls("chat.postMessage"))
    deliver_until(srt, lambda: all(srt.cards.has_card(rid, "slack:#approvals") for rid in ids))
    for rid in ids:
        assert len(fake_slack.cards(rid)) == 1, rid
        recorded = srt.redis.hgetall(srt.keys.cards(rid))
        assert "slack:#approvals" in recorded
        failures = srt.store.get(rid).json("notify_failures", [])  # type: ignore[union-attr]
        assert not [f for f in failures if f.startswith("slack")], failures
    assert len(fake_slack.messages(APPROVALS)) == len(ids)


@pytest.mark.parametrize("kind", ["500_after", "timeout_after"])
def test_ambiguous_failure_after_posting_does_not_duplicate(
        srt: Runtime, fake_slack: FakeSlack, kind: str) -> None:
    # Slack stores the message, then the answer is lost (500 or a timeout): the messenger
    # must find the message instead of posting again.
    fake_slack.inject("chat.postMessage", kind, times=1, delay=2.0)
    ref = asyncio.run(messenger(srt, timeout=1).post(view_of(srt), "#approvals"))
    cards = fake_slack.cards("r-view")
    assert len(cards) == 1 and ref["ts"] == cards[0].ts
    assert len(fake_slack.calls("chat.postMessage")) == 1
    assert fake_slack.calls("conversations.history")


def test_plain_500_is_retried_after_checking(srt: Runtime, fake_slack: FakeSlack) -> None:
    fake_slack.inject("chat.postMessage", "500", times=1)
    asyncio.run(messenger(srt).post(view_of(srt), "#approvals"))
    assert [c.status for c in fake_slack.calls("chat.postMessage")] == [500, 200]
    assert len(fake_slack.cards("r-view")) == 1


def test_retried_job_finds_card_posted_before_a_crash(srt: Runtime,
                                                      fake_slack: FakeSlack) -> None:
    from workers import jobs

    submit(srt, export_body("r-crash"))
    first = fake_slack.cards("r-crash")
    assert len(first) == 1
    # The worker died after chat.postMessage but before recording the card.
    srt.redis.hdel(srt.keys.cards("r-crash"), "slack:#approvals")
    fake_slack.page_size = 2  # and the card is a few pages back in the channel's history
    for i in range(5):
        fake_slack._m_chat_postMessage({"channel": APPROVALS, "text": f"chatter {i}"})
    # What the crash left: the card work, marked as attempted before the call.
    srt.cards.queue("r-crash", "slack", "#approvals", attempted=True)
    jobs.deliver_due()
    assert len(fake_slack.cards("r-crash")) == 1
    card = json.loads(srt.redis.hget(srt.keys.cards("r-crash"), "slack:#approvals"))
    assert card["ref"] == {"channel": APPROVALS, "ts": first[0].ts}
    assert fake_slack.calls("conversations.history")  # looked, because it was attempted
    # And a second run of the job does nothing at all.
    before = len(fake_slack.calls())
    jobs.notify("r-crash", "slack_channel", "#approvals")
    assert len(fake_slack.calls()) == before


@pytest.mark.parametrize("posted", [True, False], ids=["card-went-out", "card-did-not"])
def test_crash_cut_post_is_looked_up_before_a_digest_takes_it(
        srt: Runtime, fake_slack: FakeSlack, posted: bool) -> None:
    """A crash (a worker or Redis killed) between chat.postMessage and recording the card,
    and by the time the work runs again the channel's rate has room for only one call: the
    plan coalesces the posts onto a digest. The request whose earlier post may be out is
    looked up first: found, it keeps its own card and is on no digest; not found, it is an
    ordinary post. Either way it is shown exactly once."""
    from tests.conftest import run_intake

    crashed, others = "r-cut", ["r-late1", "r-late2", "r-late3"]
    if posted:
        submit(srt, export_body(crashed))
        assert len(fake_slack.cards(crashed)) == 1
        srt.redis.hdel(srt.keys.cards(crashed), "slack:#approvals")
    bodies = [export_body(rid) for rid in (others if posted else [crashed, *others])]
    for body in bodies:
        srt.redis.xadd(srt.keys.requests, {"body": json.dumps(body)})
    run_intake(srt)
    for body in bodies:
        assert lifecycle.prepare(srt, body["id"], notify=False) == "pending"
    srt.cards.queue(crashed, "slack", "#approvals", attempted=True)
    for rid in others:
        srt.cards.queue(rid, "slack", "#approvals")
    # Room for one call only: the posts have to share a digest.
    scope = "slack:#approvals"
    srt.cards.take(scope, 100, 1.0, 6.0)
    srt.redis.delete(srt.keys.send_rate(scope))
    srt.cards.take(scope, 5, 1.0, 6.0)

    def settled() -> bool:
        return srt.cards.pending("slack:#approvals") == 0 and all(
            srt.cards.has_card(rid, "slack:#approvals") for rid in [crashed, *others])

    deliver_until(srt, settled, timeout=30)
    for rid in [crashed, *others]:
        card = srt.cards.card(rid, "slack:#approvals")
        assert card is not None
        shown = len(fake_slack.cards(rid)) + (1 if card.digest else 0)
        assert shown == 1, (rid, fake_slack.cards(rid), card)
    card = srt.cards.card(crashed, "slack:#approvals")
    assert card is not None
    if posted:
        assert not card.digest
        assert card.ref["ts"] == fake_slack.cards(crashed)[0].ts
        assert fake_slack.calls("conversations.history")  # looked, because it was attempted
    assert any(c.digest for c in (srt.cards.card(r, "slack:#approvals") for r in others) if c)


def test_undeliverable_card_is_recorded_and_request_stays_decidable(
        srt: Runtime, fake_slack: FakeSlack, monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import delivery, jobs

    monkeypatch.setattr(delivery, "MAX_TRIES", 1)  # this is the card's last try

    fake_slack.inject("chat.postMessage", "500", times=1000)
    rid = "r-down"
    srt.redis.xadd(srt.keys.requests, {"body": json.dumps(export_body(rid))})
    from tests.conftest import run_intake

    run_intake(srt)
    jobs.prepare(rid)
    # The card's last try gives up and records it.
    jobs.notify(rid, "slack_channel", "#approvals")
    record = srt.store.get(rid)
    assert record is not None and record.status is Status.PENDING
    failures = record.json("notify_failures", [])
    assert any(f.startswith("slack:#approvals: chat.postMessage") for f in failures), failures
    assert "xoxb" not in json.dumps(failures)
    audited = [e for e in srt.audit.entries() if e.event == "card_failed"]
    assert any(e.request_id == rid and "slack" in json.dumps(e.__dict__, default=str)
               for e in audited)
    assert fake_slack.cards(rid) == []
    # Decided through another channel (the web inbox / API path).
    directory = srt.policy.directory
    for who in ("alice@example.com", "bob@example.com"):
        reply = lifecycle.submit_vote(srt, rid, directory.person(who), "approve",
                                      channel="web", nonce=f"web:{who}")
        assert reply.ok, reply.message
    assert srt.store.status(rid) is Status.APPROVED


def test_permanent_error_is_not_retried(srt: Runtime, fake_slack: FakeSlack) -> None:
    del fake_slack.channels["approvals"]
    submit(srt, export_body("r-gone"))
    failures = srt.store.get("r-gone").json("notify_failures", [])  # type: ignore[union-attr]
    assert any("#approvals" in f and "not found" in f for f in failures), failures
    assert fake_slack.calls("chat.postMessage") == []


def test_joins_a_public_channel_it_was_not_in(srt: Runtime, fake_slack: FakeSlack) -> None:
    fake_slack.not_member.add(APPROVALS)
    submit(srt, export_body("r-join"))
    assert len(fake_slack.cards("r-join")) == 1
    assert [c.params["channel"] for c in fake_slack.calls("conversations.join")] == [APPROVALS]


def test_bad_token_is_a_permanent_error_without_the_token(srt: Runtime,
                                                          fake_slack: FakeSlack) -> None:
    fake_slack.token = "xoxb-some-other-token"
    with pytest.raises(DeliveryError) as err:
        asyncio.run(messenger(srt).post(view_of(srt), "C0APPROVALS"))
    assert not err.value.retryable and "invalid_auth" in str(err.value)
    assert "xoxb" not in str(err.value)


def test_update_threads_each_vote_once(srt: Runtime, fake_slack: FakeSlack) -> None:
    submit(srt, export_body("r-upd"))
    directory = srt.policy.directory
    lifecycle.submit_vote(srt, "r-upd", directory.person("alice@example.com"), "approve",
                          channel="web", nonce="n1")
    # The thread reply fails after Slack stored it: the messenger finds it rather than
    # posting it again, and later runs of the job do not repeat it either.
    fake_slack.inject("chat.postMessage", "500_after", times=1)
    run_update(srt, "r-upd")
    assert [c.status for c in fake_slack.calls("chat.postMessage")][-1] == 500
    run_update(srt, "r-upd")
    card = fake_slack.cards("r-upd")[0]
    assert [r.text for r in fake_slack.replies(APPROVALS, card.ts)] == [
        ":white_check_mark: <@U0ALICE> approved · 2 of dba — 1 so far"]
    assert block_errors(card.blocks) == []


def run_update(srt: Runtime, rid: str) -> None:
    from workers import jobs

    srt.redis.delete(f"{srt.keys.cards(rid)}:updating")
    # Make the recorded version stale so the job updates again.
    for slot, raw in srt.redis.hgetall(srt.keys.cards(rid)).items():
        card = json.loads(raw)
        card["version"] = 0
        srt.redis.hset(srt.keys.cards(rid), slot, json.dumps(card))
    jobs.update_cards(rid)


def test_fake_enforces_block_kit_limits(srt: Runtime, fake_slack: FakeSlack) -> None:
    m = messenger(srt)
    too_many = [{"type": "divider"}] * 51
    long_header = [{"type": "header", "text": {"type": "plain_text", "text": "x" * 151}}]
    big_value = [{"type": "actions", "elements": [{
        "type": "button", "text": {"type": "plain_text", "text": "Go"}, "action_id": "a" * 256,
        "value": "v" * 2001}]}]
    for blocks in (too_many, long_header, big_value):
        with pytest.raises(DeliveryError) as err:
            asyncio.run(m._call(m._client, "chat.postMessage", channel=APPROVALS, text="t",
                                blocks=blocks))
        assert "invalid_blocks" in str(err.value) and not err.value.retryable
    errors = block_errors(big_value)
    assert any("/action_id" in e for e in errors) and any("/value" in e for e in errors)
    assert view_errors({"type": "modal", "title": {"type": "plain_text", "text": "t" * 25},
                        "blocks": []})
    run_jobs(srt)


def test_identical_requests_share_one_card(srt: Runtime, fake_slack: FakeSlack) -> None:
    same = {"table": "customers", "limit": 10}
    submit(srt, export_body("r-same-1", params=same), export_body("r-same-2", params=same))
    assert fake_slack.cards("r-same-2") == []
    card = fake_slack.cards("r-same-1")
    assert len(card) == 1
    run_jobs(srt)
    card = fake_slack.cards("r-same-1")
    header = card[0].blocks[0]["text"]["text"]  # type: ignore[index]
    assert header == "db.export ×2"
    assert "2 identical requests" in json.dumps(card[0].blocks)


def _opened(srt: Runtime, rids: list[str]) -> None:
    """Requests pending with their Slack card work queued (no card posted yet)."""
    from tests.conftest import run_intake

    for rid in rids:
        srt.redis.xadd(srt.keys.requests, {"body": json.dumps(export_body(rid))})
    run_intake(srt)
    for rid in rids:
        assert lifecycle.prepare(srt, rid, notify=False) == "pending"
        srt.cards.queue(rid, "slack", "#approvals")


def _tokens_left(srt: Runtime, scope: str, n: int) -> None:
    """Leave exactly ``n`` calls in the destination's rate bucket."""
    srt.redis.delete(srt.keys.send_rate(scope))
    srt.cards.take(scope, 6 - n, 1.0, 6.0)


def test_an_open_digest_keeps_one_call_of_the_rate_for_the_next_digest(
        srt: Runtime, fake_slack: FakeSlack) -> None:
    """Past the channel's rate the requests share a digest; while it is open, cards of their
    own take only what the rate has beyond one call, which stays for the next digest's post
    (when this one fills it goes out at once instead of waiting for the rate)."""
    scope = "slack:#approvals"
    first = [f"r-flood{i}" for i in range(4)]
    _opened(srt, first)
    _tokens_left(srt, scope, 1)
    deliver_until(srt, lambda: srt.cards.pending(scope) == 0, timeout=30)
    digest = srt.cards.open_digest(scope)
    assert digest is not None and len(digest.ids) == 4  # the one call posted the digest
    more = [f"r-more{i}" for i in range(3)]
    _opened(srt, more)
    _tokens_left(srt, scope, 3)
    deliver_until(srt, lambda: srt.cards.pending(scope) == 0, timeout=30)
    cards = {rid: srt.cards.card(rid, scope) for rid in more}
    alone = [rid for rid, c in cards.items() if c is not None and not c.digest]
    digested = [rid for rid, c in cards.items() if c is not None and c.digest]
    assert len(alone) == 2 and len(digested) == 1, cards
    assert srt.cards.take(scope, 1, 1.0, 6.0).granted == 1  # the call kept back
