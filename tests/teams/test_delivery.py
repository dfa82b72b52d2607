"""Proactive delivery: saved and configured conversations, retries, recorded failures."""

from __future__ import annotations

import asyncio

import pytest

from bot.teams.conversations import ConversationBook, normalize_name, parse_configured
from bot.teams.messenger import TeamsMessenger
from signoff.cardview.view import build_view
from signoff.messenger import DeliveryError, Messenger
from signoff.runtime import Runtime
from tests.conftest import run_jobs, wait_for
from tests.fakes.teams_connector import FakeBotFramework
from tests.teams.conftest import (
    APPROVALS,
    BOT_ID,
    OPS,
    TeamsClient,
    button_data,
    card_of,
    open_request,
    texts,
)
from workers import delivery, jobs


def test_installs_name_conversations_first_come_and_removal_frees_them(
        trt: Runtime, teams: TeamsClient) -> None:
    book = ConversationBook(trt.redis, trt.keys)
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    saved = book.resolve("#Approvals")
    assert saved is not None and saved.conversation_id == APPROVALS
    assert saved.reference.service_url == teams.bf.service_url
    assert saved.reference.activity_id is None and saved.reference.user is None
    # Another team with the same name cannot take the name over.
    assert teams.install("19:impostor@thread.tacv2", "approvals").status_code == 201
    assert book.resolve("approvals").conversation_id == APPROVALS  # type: ignore[union-attr]
    assert book.resolve("19:impostor@thread.tacv2") is not None  # still reachable by id
    # The bot removed from the team: reference and name are gone; the name is free again.
    removal = teams.base("conversationUpdate", "erin", APPROVALS)
    removal["membersRemoved"] = [{"id": BOT_ID}]
    assert teams.post(removal).status_code == 201
    assert book.resolve("approvals") is None and book.get(APPROVALS) is None
    assert teams.install("19:new@thread.tacv2", "Approvals").status_code == 201
    # A team named like a person does not get that person's name.
    assert teams.install("19:sly@thread.tacv2", "bob@example.com").status_code == 201
    assert book.resolve("bob@example.com") is None
    assert book.resolve("approvals").conversation_id == "19:new@thread.tacv2"  # type: ignore[union-attr]
    # A personal install is saved under the person's email.
    personal = teams.base("installationUpdate", "bob", "a:personal-bob", "personal")
    personal["action"] = "add"
    assert teams.post(personal).status_code == 201
    assert book.resolve("bob@example.com") is not None


def test_configured_names_win(trt: Runtime, teams: TeamsClient) -> None:
    assert parse_configured(" Approvals = 19:x@thread.tacv2 , bad, =y, ops=a:1 ") == {
        "approvals": "19:x@thread.tacv2", "ops": "a:1"}
    assert normalize_name("  #DB  Approvals ") == "db-approvals"
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    assert teams.install(OPS, "Ops").status_code == 201
    book = ConversationBook(trt.redis, trt.keys, configured=f"approvals={OPS}")
    assert book.resolve("approvals").conversation_id == OPS  # type: ignore[union-attr]
    assert book.names_for(OPS) == ["approvals", "ops"]


def deliver_until(predicate: object, timeout: float = 10.0) -> None:
    """What a worker's delivery loop does: drain whatever is due, until ``predicate``."""

    def step() -> object:
        jobs.deliver_due()
        return predicate()  # type: ignore[operator]

    wait_for(step, timeout=timeout, interval=0.05, message="cards delivered")


def test_connector_429_and_5xx_are_retried_and_post_once(trt: Runtime, bf: FakeBotFramework,
                                                         teams: TeamsClient) -> None:
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    assert teams.install(OPS, "Ops").status_code == 201
    bf.inject("POST", 429, retry_after="0")
    bf.inject("POST", 503)
    open_request(trt, "x1")
    # The 429 is not waited out in the call: the delivery reschedules it (Retry-After 0).
    deliver_until(lambda: len(bf.posts()) >= 2)
    posts = bf.posts()
    assert sorted(p.conversation_id for p in posts) == sorted([APPROVALS, OPS])
    assert bf.refused == [429, 503]
    record = trt.store.get("x1")
    assert record is not None and not record.get("notify_failures")
    # Updates retry too.
    base = posts[0].card
    assert base is not None
    alice = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], "alice"))
    bf.inject("PUT", 502, times=2)
    card_of(teams.invoke("approve", button_data(alice, "approve"), "alice"))
    run_jobs(trt)
    assert len(bf.updates()) == 2 and bf.refused == [429, 503, 502, 502]


def test_lasting_failures_are_recorded_and_shown_on_the_other_cards(
        trt: Runtime, bf: FakeBotFramework, teams: TeamsClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # "ops" is not installed yet: that delivery cannot work and is recorded at once.
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    open_request(trt, "x2")
    record = trt.store.get("x2")
    assert record is not None
    failures = record.json("notify_failures", [])
    assert any("no Teams conversation is named 'ops'" in f for f in failures)
    # Installed, but the connector keeps failing: after the last try, recorded too.
    assert teams.install(OPS, "Ops").status_code == 201
    bf.inject("POST", 500, times=3)
    monkeypatch.setattr(delivery, "MAX_TRIES", 1)  # this is the card's last try
    assert jobs.notify("x2", "teams", "ops") == jobs.CardWork(jobs.CardJob.QUEUED, 1)
    record = trt.store.get("x2")
    assert record is not None
    assert any("Bot Connector answered HTTP 500" in f for f in record.json("notify_failures"))
    events = [e.event for e in trt.audit.for_request("x2")]
    assert events.count("card_failed") == 2
    # The card that did arrive shows what did not, to its viewers and on its next update.
    posted = bf.posts()
    assert [p.conversation_id for p in posted] == [APPROVALS]
    base = posted[0].card
    assert base is not None
    alice = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], "alice"))
    assert "Not delivered everywhere" in texts(alice)
    card_of(teams.invoke("approve", button_data(alice, "approve"), "alice"))
    run_jobs(trt)
    update = bf.updates()[-1].card
    assert update is not None
    assert "HTTP 500" in texts(update) and "named 'ops'" in texts(update)


def test_messenger_contract(trt: Runtime, bf: FakeBotFramework, teams: TeamsClient) -> None:
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    open_request(trt, "x3")
    messenger = TeamsMessenger(trt.settings, trt)
    assert isinstance(messenger, Messenger) and messenger.kind == "teams"
    record = trt.store.get("x3")
    assert record is not None
    view = build_view(record)
    assert asyncio.run(messenger.find_posted(view, "approvals")) is None
    asyncio.run(messenger.tell("approvals", "Reminder: request x3 is still waiting."))
    assert bf.posts()[-1].body["text"] == "Reminder: request x3 is still waiting."
    # Three failing answers exhaust Signoff's three attempts: botbuilder's own connector
    # retries are off, so nothing else quietly absorbs them.
    posted = bf.posts()[0]
    ref = {"conversation_id": posted.conversation_id, "activity_id": posted.activity_id,
           "service_url": bf.service_url}
    bf.inject("PUT", 502, times=3)
    try:
        asyncio.run(messenger.update(view, "approvals", ref))
    except DeliveryError as exc:
        assert exc.retryable and "HTTP 502" in str(exc)
    else:
        raise AssertionError("three failed attempts must fail the update")
    assert bf.refused.count(502) == 3
    asyncio.run(messenger.update(view, "approvals", ref))
    assert bf.updates()[-1].activity_id == posted.activity_id
    # A message Teams no longer has cannot be updated: not retried.
    gone = {"conversation_id": APPROVALS, "activity_id": "1:999",
            "service_url": bf.service_url}
    try:
        asyncio.run(messenger.update(view, "approvals", gone))
    except DeliveryError as exc:
        assert not exc.retryable and "404" in str(exc)
    else:
        raise AssertionError("updating a missing message must fail")
    try:
        asyncio.run(messenger.post(view, "nowhere"))
    except DeliveryError as exc:
        assert not exc.retryable and "nowhere" in str(exc)
    else:
        raise AssertionError("posting to an unknown conversation must fail")


def test_post_cut_short_by_a_crash_is_never_repeated(trt: Runtime, bf: FakeBotFramework,
                                                     teams: TeamsClient) -> None:
    # Teams lists no messages, so a post a crash interrupted (marked attempted, no answer
    # recorded) cannot be checked: it is not posted again, whether or not it went out.
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    assert teams.install(OPS, "Ops").status_code == 201
    open_request(trt, "x4")
    deliver_until(lambda: len(bf.posts()) >= 2)
    before = len(bf.posts())
    # The worker died after the connector stored the card but before Signoff recorded it.
    trt.redis.hdel(trt.keys.cards("x4"), "teams:approvals")
    trt.cards.queue("x4", "teams", "approvals", attempted=True)
    for _ in range(3):
        jobs.deliver_due()
    assert len(bf.posts()) == before
    assert trt.cards.card("x4", "teams:approvals") is None
    # An ambiguous connector answer (a 5xx after sending) is still retried: that is the
    # documented limit (a second, unrecorded card), preferred to a card never sent.
    bf.inject("POST", 503)
    trt.cards.queue("x4", "teams", "ops", attempted=False)
    trt.redis.hdel(trt.keys.cards("x4"), "teams:ops")
    deliver_until(lambda: trt.cards.card("x4", "teams:ops") is not None)
    assert len(bf.posts()) == before + 1
