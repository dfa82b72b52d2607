"""One platform's trouble stays its own: card delivery in a worker's delivery loop (in this
process, against the Slack and Teams fakes), with Slack rate-limiting, failing ambiguously or
flooded. Assertions are about order and independence, never milliseconds; every wait is
bounded."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from signoff import lifecycle, tracing
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs, wait_for
from tests.fakes.slack_api import FakeSlack
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import (
    body,
    install_teams,
    send,
    slack_card_final,
    teams_posts,
)
from workers import delivery, jobs

SLACK = "slack:#approvals"


@pytest.fixture
def loop(rrt: Runtime, bf: FakeBotFramework) -> Iterator[delivery.DeliveryLoop]:
    """A worker's delivery loop in this process (jobs run here hand their cards to it)."""
    install_teams(rrt, bf.service_url)
    running = delivery.start_loop(rrt, jobs.messengers(rrt))
    yield running
    delivery.stop_loop()


def submit(rt: Runtime, *bodies: dict[str, Any]) -> None:
    send(rt, *bodies)
    run_intake(rt)
    run_jobs(rt)


def approve(rt: Runtime, rid: str) -> None:
    person = rt.policy.directory.person("alice@example.com")
    assert lifecycle.submit_vote(rt, rid, person, "approve").code == "final"
    run_jobs(rt)  # finalize (urgent queue), then the card updates


def test_a_slack_429_storm_delays_neither_teams_cards_nor_decisions(
        rrt: Runtime, fake_slack: FakeSlack, bf: FakeBotFramework,
        loop: delivery.DeliveryLoop) -> None:
    # Slack refuses every post for 20 s, asking each time to wait 3 s.
    fake_slack.inject("chat.postMessage", "429", seconds=20, retry_after=3)
    ids = [f"st-{i}" for i in range(4)]
    submit(rrt, *(body(rid) for rid in ids))
    # Every Teams card and inbox card arrives while Slack is still refusing.
    wait_for(lambda: all(teams_posts(bf, rid) for rid in ids), timeout=15,
             message="Teams cards during the Slack storm")
    assert all(rrt.cards.has_card(rid, "web:inbox") for rid in ids)
    assert all(not fake_slack.cards(rid) for rid in ids)
    held = rrt.cards.due_at(SLACK)
    refused = [c for c in fake_slack.calls("chat.postMessage") if c.status == 429]
    assert refused and held is not None and held >= refused[0].at + 3 - 0.1
    # A decision goes straight through: its reply is delivered while Slack still refuses.
    approve(rrt, ids[0])
    assert rrt.redis.llen(rrt.keys.reply(ids[0])) == 1
    assert rrt.store.status(ids[0]) is Status.APPROVED
    assert not any(fake_slack.cards(rid) for rid in ids)  # Slack had no card yet
    # Teams' card of the decided request is brought up to date meanwhile.
    wait_for(lambda: any(u.conversation_id == teams_posts(bf, ids[0])[0].conversation_id
                         and u.activity_id == teams_posts(bf, ids[0])[0].activity_id
                         for u in bf.updates()), timeout=15, message="the Teams update")
    # No call to Slack's channel came before the Retry-After it was given each time.
    calls = fake_slack.calls("chat.postMessage")
    for before, after in itertools.pairwise(calls):
        if before.status == 429 and after.params.get("channel") == before.params.get("channel"):
            assert after.at >= before.at + 3 - 0.1, (before.at, after.at)
    # Slack answers again: the pending requests get their one card; the decided one none.
    fake_slack.clear_faults()
    wait_for(lambda: all(fake_slack.cards(rid) for rid in ids[1:]), timeout=20,
             message="Slack cards after the storm")
    assert all(len(fake_slack.cards(rid)) == 1 for rid in ids[1:])
    assert fake_slack.cards(ids[0]) == []
    assert all(len(teams_posts(bf, rid)) == 1 for rid in ids)


def test_an_ambiguous_slack_failure_posts_once_and_only_then_reads_history(
        rrt: Runtime, fake_slack: FakeSlack, loop: delivery.DeliveryLoop) -> None:
    submit(rrt, body("amb-0", action="db.read"))
    wait_for(lambda: fake_slack.cards("amb-0"), timeout=10, message="the first card")
    assert fake_slack.calls("conversations.history") == []  # a first post does not look
    # Slack stores the next card and the answer is lost (500 after the work).
    fake_slack.inject("chat.postMessage", "500_after", times=1)
    submit(rrt, body("amb-1", action="db.read"))
    wait_for(lambda: rrt.cards.has_card("amb-1", SLACK), timeout=15, message="recorded")
    assert len(fake_slack.cards("amb-1")) == 1
    assert fake_slack.calls("conversations.history")  # looked before trying again
    card = json.loads(rrt.redis.hget(rrt.keys.cards("amb-1"), SLACK))
    assert card["ref"]["ts"] == fake_slack.cards("amb-1")[0].ts


def test_a_flood_is_coalesced_within_the_channel_rate(
        rrt: Runtime, fake_slack: FakeSlack, loop: delivery.DeliveryLoop) -> None:
    ids = [f"fl-{i}" for i in range(14)]
    submit(rrt, *(body(rid, action="db.read") for rid in ids))
    wait_for(lambda: all(rrt.cards.has_card(rid, SLACK) for rid in ids), timeout=20,
             message="every request on a Slack card or digest")
    posts = [c for c in fake_slack.calls("chat.postMessage") if c.status == 200]
    # Within Slack's rate: no 429, and far fewer messages than requests.
    assert not [c for c in fake_slack.calls("chat.postMessage") if c.status == 429]
    assert len(posts) < len(ids)
    cards = {rid: rrt.cards.card(rid, SLACK) for rid in ids}
    alone = [rid for rid, c in cards.items() if c is not None and not c.digest]
    digested = [rid for rid, c in cards.items() if c is not None and c.digest]
    assert digested, "nothing was coalesced"
    # Each request is shown once: on its own card, or on exactly one digest message.
    for rid in alone:
        assert len(fake_slack.cards(rid)) == 1
    for rid in digested:
        assert fake_slack.cards(rid) == []
        digest_id = cards[rid].digest  # type: ignore[union-attr]
        messages = fake_slack.digests(digest_id)
        assert len(messages) == 1 and rid in json.dumps(messages[0].blocks)
    # Deciding a coalesced request updates its digest in place (a batched update).
    rid = digested[0]
    approve(rrt, rid)
    digest_id = cards[rid].digest  # type: ignore[union-attr]

    def shows_decision() -> bool:
        message = fake_slack.digests(digest_id)[0]
        line = [b for b in json.dumps(message.blocks).split("\\n") if rid in b]
        return message.edits > 0 and bool(line) and "Approved" in line[0]

    wait_for(shows_decision, timeout=15, message="the digest shows the decision")
    assert len(fake_slack.digests(digest_id)) == 1
    wait_for(lambda: rrt.cards.card(rid, SLACK).version  # type: ignore[union-attr]
             == int(rrt.store.get(rid).get("version") or 0),  # type: ignore[union-attr]
             timeout=10, message="the recorded version")


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    yield exporter
    tracing.install(None)


def test_spans_follow_one_request_with_its_id(rrt: Runtime, fake_slack: FakeSlack,
                                              bf: FakeBotFramework,
                                              spans: InMemorySpanExporter) -> None:
    install_teams(rrt, bf.service_url)
    rid = "tr-1"
    agent = trace.get_tracer("agent", tracer_provider=TracerProvider())
    with agent.start_as_current_span("agent request") as root:
        headers: dict[str, str] = {}
        from opentelemetry import propagate

        propagate.inject(headers)
        rrt.redis.xadd(rrt.keys.requests, {"body": json.dumps(body(rid)),
                                           "traceparent": headers["traceparent"]})
    run_intake(rrt)
    run_jobs(rrt)
    assert fake_slack.cards(rid) and teams_posts(bf, rid)
    approve(rrt, rid)
    assert slack_card_final(fake_slack, rid)
    finished = spans.get_finished_spans()
    names = [s.name for s in finished]
    # (the vote's own process finalizes: no finalize job in between)
    for name in ("intake", "prepare", "card.post", "vote",
                 "finalize", "job update_cards", "card.update"):
        assert name in names, (name, names)
    assert names.count("card.post") == 2  # Slack and Teams (the inbox is an event)
    # The request id on every span, and every span in the agent's trace.
    trace_id = root.get_span_context().trace_id
    for s in finished:
        assert (s.attributes or {}).get(tracing.REQUEST_ID) == rid, s.name
        assert s.context is not None and s.context.trace_id == trace_id, s.name
    # With tracing off, nothing of it is written to Redis.
    tracing.install(None)
    submit(rrt, body("tr-2"))
    assert rrt.redis.get(rrt.keys.trace(rid)) and not rrt.redis.get(rrt.keys.trace("tr-2"))
