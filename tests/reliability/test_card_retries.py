"""Card delivery that keeps failing: one channel never holds the others back, and a post
that keeps failing is backed off and tried again later instead of being dropped, then
recorded as undeliverable after its last try (in-process rq jobs against the Slack fake; the
delivery loop's rounds are run by hand)."""

from __future__ import annotations

import json
import time

from signoff import lifecycle
from signoff.runtime import Runtime
from tests.conftest import run_jobs, wait_for
from tests.fakes.slack_api import FakeSlack
from tests.reliability.support import body
from workers import delivery, jobs

SLOT = "slack:#approvals"


def open_read(rt: Runtime, rid: str) -> None:
    """A pending request whose rule posts to Slack and the web inbox; no job queued."""
    assert lifecycle.ingest(rt, json.dumps(body(rid, action="db.read")), enqueue=False
                            ).outcome == "accepted"
    assert lifecycle.prepare(rt, rid) == "pending"
    rt.queue.empty()  # the test runs the notify jobs it wants


def test_one_channel_failing_does_not_hold_back_the_others(rrt: Runtime,
                                                           fake_slack: FakeSlack) -> None:
    open_read(rrt, "cr-1")
    fake_slack.inject("chat.postMessage", "500", times=1000)
    rrt.enqueue(lifecycle.JOB_NOTIFY, "cr-1")  # retries left: the Slack failure is raised
    run_jobs(rrt)
    assert rrt.redis.hexists(rrt.keys.cards("cr-1"), "web:inbox")
    assert not rrt.redis.hexists(rrt.keys.cards("cr-1"), "slack:#approvals")
    assert not rrt.store.get("cr-1").get("notify_failures")  # type: ignore[union-attr]


def test_a_post_that_keeps_failing_is_backed_off_and_tried_again_later(
        rrt: Runtime, fake_slack: FakeSlack) -> None:
    open_read(rrt, "cr-2")
    fake_slack.inject("chat.postMessage", "500", times=1000)
    before = time.time()
    rrt.enqueue(lifecycle.JOB_NOTIFY, "cr-2", "slack_channel", "#approvals", retries=0)
    run_jobs(rrt)
    record = rrt.store.get("cr-2")
    assert record is not None and not record.get("notify_failures")
    # The card's work stays in the ledger, backed off: not dropped, not retried at once.
    ops = rrt.cards.ops(SLOT)
    assert [op.request_id for op in ops] == ["cr-2"] and ops[0].tries == 1
    assert ops[0].not_before >= before + delivery.BACKOFF[0] - 0.01
    assert (rrt.cards.due_at(SLOT) or 0) >= ops[0].not_before
    # Slack answers again: the next round posts the one card.
    fake_slack.clear_faults()
    wait_for(lambda: (jobs.deliver_due(), rrt.cards.has_card("cr-2", SLOT))[1], timeout=15,
             message="the card posted later")
    assert len(fake_slack.cards("cr-2")) == 1
    assert rrt.cards.ops(SLOT) == [] and rrt.cards.due_at(SLOT) is None


def test_after_the_last_try_the_failure_is_recorded(rrt: Runtime,
                                                    fake_slack: FakeSlack) -> None:
    open_read(rrt, "cr-3")
    fake_slack.inject("chat.postMessage", "500", times=1000)
    rrt.cards.queue("cr-3", "slack", "#approvals", target="slack_channel")
    op = rrt.cards.ops(SLOT)[0]
    op.tries = delivery.MAX_TRIES - 1  # every earlier try failed
    rrt.cards.update_op(SLOT, op)
    jobs.deliver_due()
    failures = rrt.store.get("cr-3").json("notify_failures", [])  # type: ignore[union-attr]
    assert any(f.startswith("slack:#approvals") for f in failures), failures
    assert rrt.cards.ops(SLOT) == [] and rrt.cards.due_at(SLOT) is None
    assert fake_slack.cards("cr-3") == []


def test_a_notify_job_lost_before_any_card_is_rerun_by_the_janitor(
        rrt: Runtime, fake_slack: FakeSlack) -> None:
    from workers.janitor import CLAIM_FACTOR, Janitor

    open_read(rrt, "cr-4")  # prepared; its notify job lost (the worker died, Redis restarted)
    assert rrt.cards.claimed("cr-4")
    janitor = Janitor(rrt)
    assert janitor.tick()["notify"] == 0  # not stale yet
    later = time.time() + janitor.stale_after * CLAIM_FACTOR + 1
    assert janitor.tick(now=later)["notify"] == 1
    run_jobs(rrt)
    assert len(fake_slack.cards("cr-4")) == 1
    assert rrt.redis.hexists(rrt.keys.cards("cr-4"), "web:inbox")
    assert rrt.cards.claims() == []


def test_a_decision_made_while_its_card_is_posted_is_not_dropped(
        rrt: Runtime, fake_slack: FakeSlack) -> None:
    """The post (version 2) is in flight when the request is decided (version 3): the
    update job finds the work already queued (merged into it); taking the post's work off
    the outbox must keep it, so the card still comes to show the decision."""
    open_read(rrt, "dv-1")
    name = rrt.cards.queue("dv-1", "slack", "#approvals")
    record = rrt.store.get("dv-1")
    assert record is not None
    posted = int(record.get("version") or 0)
    person = rrt.policy.directory.person("alice@example.com")
    assert lifecycle.submit_vote(rrt, "dv-1", person, "approve").ok  # meanwhile, decided
    rrt.cards.queue("dv-1", "slack", "#approvals")  # update_cards: merged into the queued work
    rrt.cards.done_at(name, {"dv-1": posted})  # the post ends, showing the older version
    assert [op.request_id for op in rrt.cards.ops(name)] == ["dv-1"]
    current = int(rrt.store.get("dv-1").get("version") or 0)  # type: ignore[union-attr]
    rrt.cards.done_at(name, {"dv-1": current})  # the update brought it up to date
    assert rrt.cards.ops(name) == []


def test_a_hold_set_before_the_clock_stepped_back_is_not_waited_out(rrt: Runtime) -> None:
    """A destination held "until now + 5 s" by a clock two hours ahead would otherwise wait
    two hours once the clock is right again."""
    open_read(rrt, "ck-1")
    name = rrt.cards.queue("ck-1", "slack", "#approvals")
    now = time.time()
    rrt.cards.hold(name, now + 7200 + 5)
    assert name in rrt.cards.due(now)
    assert not rrt.cards.holds(rrt.cards.due_at(name), now)
    rrt.cards.hold(name, now + 5)  # an ordinary hold still holds
    assert name not in rrt.cards.due(now) and rrt.cards.holds(rrt.cards.due_at(name), now)
