"""Reminders, escalation and the timeout fire in order, with a controllable clock."""

from __future__ import annotations

import time

from signoff import lifecycle
from signoff.models import Decision, Status
from signoff.runtime import Runtime
from tests.clock.conftest import advance, open_request, scheduled
from tests.conftest import run_jobs

# A clock far in the future: rq's real scheduler (if one ran) would never reach these timers.
T0 = float(int(time.time()) + 10 * 86400)


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
                              (T0 + 300, "expire-c-1")]
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
                                                    (300, "expire", "changed")]
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
