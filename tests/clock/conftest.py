"""A small policy with short, known follow-up times, and a controllable clock that fires rq's
scheduled jobs in due order with ``now`` set to each job's time."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from signoff import lifecycle
from signoff.runtime import Runtime, set_current
from signoff.settings import Settings
from tests.conftest import make_settings, run_jobs

POLICY = """
version: 1
directory:
  people:
    - {email: alice@example.com, name: Alice, groups: [dba]}
    - {email: erin@example.com, name: Erin, groups: [admins]}
    - {email: frank@example.com, name: Frank}
  groups:
    dba: {description: DBAs}
    admins: {description: Admins}
  agents:
    - {id: "agent:bot", owner: frank@example.com}
defaults:
  channels: [web]
rules:
  - id: slow
    match: {action: "db.*"}
    require:
      approvers: 1 of dba
      timeout: 300
      reminders: [60, 180]
      escalation:
        - {after: 120, add: [admins]}
        - {after: 240, page: [admins]}
  - id: fast
    match: {action: "fast.*"}
    require:
      approvers: 1 of dba
      timeout: 4
      reminders: [1]
      escalation:
        - {after: 2, add: [admins]}
"""


@pytest.fixture
def clock_settings(redis_url: str, tmp_path: Path) -> Settings:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return make_settings(redis_url, tmp_path / "data", policy_path=path)


@pytest.fixture
def crt(clock_settings: Settings) -> Iterator[Runtime]:
    from workers import jobs

    runtime = Runtime(clock_settings)
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


def request_body(rid: str, action: str = "db.export", **extra: Any) -> dict[str, Any]:
    return {"id": rid, "action": action, "resource": "warehouse.orders",
            "params": {"rows": 10, "ref": rid}, "requester": "agent:bot",
            "on_behalf_of": "frank@example.com", "reason": "report", **extra}


def open_request(rt: Runtime, rid: str, now: float, action: str = "db.export") -> None:
    """Ingest and prepare with the clock at ``now`` (the deadline and timers count from it)."""
    assert lifecycle.ingest(rt, json.dumps(request_body(rid, action)), enqueue=False
                            ).outcome == "accepted"
    assert lifecycle.prepare(rt, rid, now=now) == "pending"
    run_jobs(rt)  # the card


def scheduled(rt: Runtime) -> list[tuple[float, str]]:
    """(due time, job id) of everything rq's scheduler holds, in due order."""
    registry = ScheduledJobRegistry(queue=rt.queue)
    rows = rt.redis_bytes.zrange(registry.key, 0, -1, withscores=True)
    return [(score, jid.decode()) for jid, score in rows]


def advance(rt: Runtime, until: float, late: bool = False) -> list[tuple[float, str, Any]]:
    """Move the clock to ``until``: fire each due scheduled job in due order, as rq's
    scheduler would, with ``now`` at the job's time (``late``: everything at ``until``, as
    when a scheduler comes back after downtime), then run what it enqueued.

    Returns:
        (time, job function, result) for each fired job.
    """
    registry = ScheduledJobRegistry(queue=rt.queue)
    fired = []
    while True:
        due = rt.redis_bytes.zrangebyscore(registry.key, "-inf", until, start=0, num=1,
                                           withscores=True)
        if not due:
            return fired
        job_id, score = due[0][0].decode(), due[0][1]
        job = Job.fetch(job_id, connection=rt.redis_bytes, serializer=JSONSerializer)
        registry.remove(job)
        when = until if late else score
        result = job.func(*job.args, now=when)
        fired.append((when, job.func_name.rsplit(".", 1)[1], result))
        run_jobs(rt)
