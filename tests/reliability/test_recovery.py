"""Steps a crash cut in two, finished by the retry (in-process, deterministic): the crash is
simulated by doing the first half of a step by hand, then running the real repair path.
The process-level fault tests found these; here each is pinned down."""

from __future__ import annotations

import json
import time

from signoff import lifecycle
from signoff.grants import GrantIssuer
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import finalize_left_to_the_job, run_intake, run_jobs
from tests.fakes.slack_api import FakeSlack
from tests.reliability.support import body, send, slack_card_final
from workers import jobs


def pending(rt: Runtime, rid: str, action: str = "db.read") -> None:
    send(rt, body(rid, action=action))
    run_intake(rt)
    run_jobs(rt)
    assert rt.store.status(rid) is Status.PENDING


def approve(rt: Runtime, rid: str) -> None:
    person = rt.policy.directory.person("alice@example.com")
    assert lifecycle.submit_vote(rt, rid, person, "approve").code == "final"


def test_grant_stored_but_not_recorded_is_recorded_by_the_retried_finalize(
        rrt: Runtime, fake_slack: FakeSlack) -> None:
    pending(rrt, "rc-1", action="db.drop")
    with finalize_left_to_the_job():
        for who in ("alice@example.com", "bob@example.com"):
            lifecycle.submit_vote(rrt, "rc-1", rrt.policy.directory.person(who), "approve")
    rrt.urgent_queue.empty()  # the finalize job ran into the crash
    record = rrt.store.get("rc-1")
    assert record is not None and record.status is Status.APPROVED
    # The first finalize stored the grant, then died before registering and auditing it.
    token, claims = GrantIssuer(rrt).mint(record, lifecycle.original(rrt, record))
    assert rrt.store.set_once("rc-1", "grant", token) == token
    assert lifecycle.finalize(rrt, "rc-1") == "delivered"
    issued = [e for e in rrt.audit.for_request("rc-1") if e.event == "grant_issued"]
    assert [e.details["jti"] for e in issued] == [claims["jti"]]
    assert issued[0].details.get("recovered") is True
    assert rrt.redis.hget(rrt.keys.grant(claims["jti"]), "state") == "issued"
    reply = json.loads(rrt.redis.lindex(rrt.keys.reply("rc-1"), 0))
    assert reply["grant"] == token
    assert lifecycle.finalize(rrt, "rc-1") == "already_delivered"
    assert len([e for e in rrt.audit.for_request("rc-1") if e.event == "grant_issued"]) == 1


def test_card_posted_but_not_recorded_is_found_and_updated_after_the_decision(
        rrt: Runtime, fake_slack: FakeSlack) -> None:
    pending(rrt, "rc-2")
    assert len(fake_slack.cards("rc-2")) == 1
    # The worker died after Slack stored the card, before recording it (its claim remains).
    rrt.redis.hdel(rrt.keys.cards("rc-2"), "slack:#approvals")
    approve(rrt, "rc-2")
    run_jobs(rrt)
    assert not slack_card_final(fake_slack, "rc-2")  # nobody knows where the card is
    # The janitor's repair of the claim: notify for that slot, on a decided request.
    assert jobs.notify("rc-2", "slack_channel", "#approvals").outcome is jobs.CardJob.CLOSED
    assert rrt.redis.hexists(rrt.keys.cards("rc-2"), "slack:#approvals")
    run_jobs(rrt)
    assert len(fake_slack.cards("rc-2")) == 1
    assert slack_card_final(fake_slack, "rc-2")


def test_a_cut_short_notify_job_s_card_is_found_after_the_decision(
        rrt: Runtime, fake_slack: FakeSlack) -> None:
    from workers.janitor import CLAIM_FACTOR, Janitor

    send(rrt, body("rc-3", action="db.read"))
    run_intake(rrt)
    run_jobs(rrt)
    assert len(fake_slack.cards("rc-3")) == 1
    # Redis lost the job's bookkeeping after Slack stored the card: the card is unrecorded
    # and the request's notify claim is all that is left.
    rrt.redis.hdel(rrt.keys.cards("rc-3"), "slack:#approvals")
    rrt.cards.claim_request("rc-3", now=0)
    approve(rrt, "rc-3")
    run_jobs(rrt)
    janitor = Janitor(rrt)
    assert janitor.tick(now=time.time() + janitor.stale_after * CLAIM_FACTOR + 1)["notify"] == 1
    run_jobs(rrt)
    assert rrt.redis.hexists(rrt.keys.cards("rc-3"), "slack:#approvals")
    assert len(fake_slack.cards("rc-3")) == 1 and slack_card_final(fake_slack, "rc-3")
    assert rrt.cards.claims() == []
