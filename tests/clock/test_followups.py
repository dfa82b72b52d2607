"""Reminders, escalation and the timeout fire in order, with a controllable clock."""

from __future__ import annotations

import time

from signoff import lifecycle
from signoff.job_names import timeout_job_id
from signoff.models import Decision, Status
from signoff.runtime import Runtime
from tests.clock.conftest import advance, open_request, scheduled
from tests.conftest import run_jobs

# A clock far in the future: rq's real scheduler (if one ran) would never reach these timers.
T0 = float(int(time.time()) + 10 * 86400)


def timer(rt: Runtime, after: int) -> str:
    """The job id of the timeout timer of the second T0 + ``after``."""
    return timeout_job_id(int(T0) + after, rt.keys.prefix)


def audit_trail(rt: Runtime, rid: str) -> list[str]:
    return [e.event for e in rt.audit.for_request(rid)]


def reply(rt: Runtime, rid: str) -> Decision:
    raw = rt.redis.lindex(rt.keys.reply(rid), 0)
    assert raw
    return Decision.model_validate_json(raw)


def test_timers_are_scheduled_at_their_times(crt: Runtime) -> None:
    open_request(crt, "c-1", T0)
    assert scheduled(crt) == [(T0 + 60, "remind-c-1-0"), (T0 + 120, "escalate-c-1-0"),
                              (T0 + 180, "remind-c-1-1"), (T0 + 240, "escalate-c-1-1"),
                              (T0 + 300, timer(crt, 300))]
    assert crt.store.get("c-1").deadline == T0 + 300


def test_reminders_escalation_and_timeout_fire_in_order(crt: Runtime) -> None:
    open_request(crt, "c-2", T0)
    assert advance(crt, T0 + 59) == []  # nothing is due yet
    fired = advance(crt, T0 + 130)
    assert [(t - T0, f, r) for t, f, r in fired] == [(60, "remind", "reminded"),
                                                    (120, "escalate", "escalated")]
    record = crt.store.get("c-2")
    assert record.status is Status.PENDING and record.json("extra_groups") == ["admins"]
    fired = advance(crt, T0 + 10_000)
    assert [(t - T0, f, r) for t, f, r in fired] == [(180, "remind", "reminded"),
                                                    (240, "escalate", "escalated"),
                                                    (300, "expire_due", 1)]
    trail = audit_trail(crt, "c-2")
    follow = [e for e in trail if e in ("reminded", "escalated", "expired")]
    assert follow == ["reminded", "escalated", "reminded", "escalated", "expired"]
    assert crt.store.get("c-2").status is Status.TIMED_OUT
    decision = reply(crt, "c-2")  # fail closed: the agent is told
    assert decision.status is Status.TIMED_OUT and decision.grant is None
    assert scheduled(crt) == []


def test_escalated_group_may_decide_and_the_rest_is_unscheduled(crt: Runtime) -> None:
    open_request(crt, "c-3", T0)
    erin = crt.policy.directory.person("erin@example.com")
    before = lifecycle.submit_vote(crt, "c-3", erin, "deny")
    assert not before.ok  # admins may not decide yet
    advance(crt, T0 + 125)
    after = lifecycle.submit_vote(crt, "c-3", erin, "deny")
    assert after.ok and after.code == "final"
    run_jobs(crt)
    assert reply(crt, "c-3").status is Status.DENIED
    assert scheduled(crt) == []  # no reminder, step or timeout is left to fire as a no-op
    assert advance(crt, T0 + 10_000) == []


def test_timers_due_during_downtime_time_the_request_out_in_order(crt: Runtime) -> None:
    open_request(crt, "c-4", T0)
    fired = advance(crt, T0 + 1000, late=True)  # the scheduler comes back after the deadline
    # The first late timer times the request out; closing it unschedules the rest.
    assert [(f, r) for _t, f, r in fired] == [("remind", "late")]
    assert scheduled(crt) == []
    trail = audit_trail(crt, "c-4")
    assert "reminded" not in trail and "escalated" not in trail
    assert trail.count("expired") == 1
    assert reply(crt, "c-4").status is Status.TIMED_OUT


def test_catch_up_times_out_only_what_is_due(crt: Runtime) -> None:
    open_request(crt, "c-5", T0)
    open_request(crt, "c-6", T0 + 1000)
    assert lifecycle.catch_up(crt, now=T0 + 299) == 0
    assert lifecycle.catch_up(crt, now=T0 + 300) == 1
    assert lifecycle.catch_up(crt, now=T0 + 300) == 0
    run_jobs(crt)
    assert reply(crt, "c-5").status is Status.TIMED_OUT
    assert crt.store.get("c-6").status is Status.PENDING


def test_an_early_expire_job_reschedules_itself(crt: Runtime) -> None:
    from workers import jobs

    open_request(crt, "c-7", T0)
    before = set(scheduled(crt))
    assert jobs.expire("c-7", now=T0 + 299.5) == "not_due"
    assert [t - T0 for t, _jid in set(scheduled(crt)) - before] == [301]
    assert crt.store.get("c-7").status is Status.PENDING


def test_an_early_timeout_timer_schedules_the_next_second(crt: Runtime) -> None:
    from workers import janitor

    open_request(crt, "c-8", T0 + 0.5)  # due at T0 + 300.5: the timer of T0 + 301
    assert janitor.expire_due(int(T0) + 301, now=T0 + 300.2) == 0  # this clock is behind
    assert (T0 + 302, timer(crt, 302)) in scheduled(crt)
    assert crt.store.get("c-8").status is Status.PENDING
    assert janitor.expire_due(int(T0) + 302, now=T0 + 302) == 1
    assert crt.store.get("c-8").status is Status.TIMED_OUT


def test_requests_due_in_the_same_second_share_one_timer(crt: Runtime) -> None:
    for i, at in enumerate((T0 + 0.1, T0 + 0.6, T0 + 1.0)):
        open_request(crt, f"sh-{i}", at, action="fast.export")
    open_request(crt, "sh-3", T0 + 1.2, action="fast.export")
    timers = [(t - T0, jid) for t, jid in scheduled(crt) if jid.startswith("timeout-")]
    assert timers == [(5, timer(crt, 5)), (6, timer(crt, 6))]
    erin, alice = (crt.policy.directory.person(p) for p in ("erin@example.com",
                                                            "alice@example.com"))
    assert erin is not None and alice is not None
    # Decided: the timer stays while another request of its second is open...
    assert lifecycle.submit_vote(crt, "sh-0", alice, "approve").ok
    run_jobs(crt)
    assert (T0 + 5, timer(crt, 5)) in scheduled(crt)
    # ... and goes with the last one.
    for rid in ("sh-1", "sh-2"):
        assert lifecycle.submit_vote(crt, rid, alice, "deny").ok
    run_jobs(crt)
    timers = [(t - T0, jid) for t, jid in scheduled(crt) if jid.startswith("timeout-")]
    assert timers == [(6, timer(crt, 6))]
    fired = advance(crt, T0 + 10)
    assert [(t - T0, f, r) for t, f, r in fired if f == "expire_due"] == [(6, "expire_due", 1)]
    assert crt.store.get("sh-3").status is Status.TIMED_OUT
    assert scheduled(crt) == []


def test_timer_ids_are_per_deployment() -> None:
    """rq's job ids are global to a Redis: two deployments (key prefixes) never share a timer."""
    assert timeout_job_id(5, "signoff") != timeout_job_id(5, "other")
    assert timeout_job_id(5, "a:b").startswith("timeout-a_b-")
