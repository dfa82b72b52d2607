"""Card delivery that keeps failing: one channel never holds the others back, and a post
still failing after rq's retries is tried again later instead of being dropped (in-process
rq jobs against the Slack fake; the scheduled retry is fired by hand)."""

from __future__ import annotations

import json
import time

from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from signoff import lifecycle
from signoff.runtime import Runtime
from tests.conftest import run_jobs
from tests.fakes.slack_api import FakeSlack
from tests.reliability.support import body
from workers import jobs


def open_read(rt: Runtime, rid: str) -> None:
    """A pending request whose rule posts to Slack and the web inbox; no job queued."""
    assert lifecycle.ingest(rt, json.dumps(body(rid, action="db.read")), enqueue=False
                            ).outcome == "accepted"
    assert lifecycle.prepare(rt, rid) == "pending"
    rt.queue.empty()  # the test runs the notify jobs it wants


def scheduled_notify(rt: Runtime) -> list[tuple[float, list[object]]]:
    registry = ScheduledJobRegistry(queue=rt.queue)
    out = []
    for job_id, score in rt.redis_bytes.zrange(registry.key, 0, -1, withscores=True):
        job = Job.fetch(job_id.decode(), connection=rt.redis_bytes, serializer=JSONSerializer)
        if job.func_name == lifecycle.JOB_NOTIFY:
            out.append((score, list(job.args)))
    return out


def fire_scheduled(rt: Runtime) -> None:
    """What rq's scheduler does when the time comes: move the jobs to the queue, run them."""
    registry = ScheduledJobRegistry(queue=rt.queue)
    for job_id in rt.redis_bytes.zrange(registry.key, 0, -1):
        job = Job.fetch(job_id.decode(), connection=rt.redis_bytes, serializer=JSONSerializer)
        registry.remove(job)
        rt.queue.enqueue_job(job)
    run_jobs(rt)


def test_one_channel_failing_does_not_hold_back_the_others(rrt: Runtime,
                                                           fake_slack: FakeSlack) -> None:
    open_read(rrt, "cr-1")
    fake_slack.inject("chat.postMessage", "500", times=1000)
    rrt.enqueue(lifecycle.JOB_NOTIFY, "cr-1")  # retries left: the Slack failure is raised
    run_jobs(rrt)
    assert rrt.redis.hexists(rrt.keys.cards("cr-1"), "web:inbox")
    assert not rrt.redis.hexists(rrt.keys.cards("cr-1"), "slack:#approvals")
    assert not rrt.store.get("cr-1").get("notify_failures")  # type: ignore[union-attr]


def test_a_post_failing_past_rq_retries_is_tried_again_later(rrt: Runtime,
                                                             fake_slack: FakeSlack) -> None:
    open_read(rrt, "cr-2")
    fake_slack.inject("chat.postMessage", "500", times=1000)
    rrt.enqueue(lifecycle.JOB_NOTIFY, "cr-2", "slack_channel", "#approvals", retries=0)
    before = time.time()
    run_jobs(rrt)
    record = rrt.store.get("cr-2")
    assert record is not None and not record.get("notify_failures")
    later = scheduled_notify(rrt)
    assert [args for _, args in later] == [["cr-2", "slack_channel", "#approvals", 1]]
    assert later[0][0] >= before + jobs.LATER_DELAY - 1
    # The slot's claim is released (the later round claims it again when it runs).
    assert rrt.redis.zscore(rrt.keys.notifying, "cr-2|slack_channel|#approvals") is None
    # Slack answers again: the later round posts the one card.
    fake_slack.clear_faults()
    fire_scheduled(rrt)
    assert len(fake_slack.cards("cr-2")) == 1
    assert rrt.redis.hexists(rrt.keys.cards("cr-2"), "slack:#approvals")
    assert scheduled_notify(rrt) == []


def test_after_the_last_round_the_failure_is_recorded(rrt: Runtime,
                                                      fake_slack: FakeSlack) -> None:
    open_read(rrt, "cr-3")
    fake_slack.inject("chat.postMessage", "500", times=1000)
    rrt.enqueue(lifecycle.JOB_NOTIFY, "cr-3", "slack_channel", "#approvals",
                jobs.LATER_ROUNDS, retries=0)
    run_jobs(rrt)
    failures = rrt.store.get("cr-3").json("notify_failures", [])  # type: ignore[union-attr]
    assert any(f.startswith("slack:#approvals") for f in failures), failures
    assert scheduled_notify(rrt) == []
    assert fake_slack.cards("cr-3") == []


def test_a_notify_job_lost_before_any_card_is_rerun_by_the_janitor(
        rrt: Runtime, fake_slack: FakeSlack) -> None:
    from workers.janitor import CLAIM_FACTOR, Janitor

    open_read(rrt, "cr-4")  # prepared; its notify job lost (the worker died, Redis restarted)
    claim = lifecycle.notify_claim("cr-4")
    assert rrt.redis.zscore(rrt.keys.notifying, claim) is not None
    janitor = Janitor(rrt)
    assert janitor.tick()["notify"] == 0  # not stale yet
    later = time.time() + janitor.stale_after * CLAIM_FACTOR + 1
    assert janitor.tick(now=later)["notify"] == 1
    run_jobs(rrt)
    assert len(fake_slack.cards("cr-4")) == 1
    assert rrt.redis.hexists(rrt.keys.cards("cr-4"), "web:inbox")
    assert rrt.redis.zcard(rrt.keys.notifying) == 0
