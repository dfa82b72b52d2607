"""Agent-written inputs are checked and none can stop Signoff: poison entries on an agent's
request stream and grant-report stream, spoiled keys in its own namespace, and forged
reports are recorded (dead-lettered with the reason) while every other agent keeps working.
"""

from __future__ import annotations

import json

import jwt
import pytest
import redis

from signoff.agents import redis_major
from signoff.models import Status
from signoff.runtime import Runtime
from tests.security.agents_helpers import (
    Agent,
    body,
    dead_reasons,
    drive,
    wait_reply,
)
from workers.intake import IntakeConsumer
from workers.janitor import Janitor


def test_poison_request_entries_never_stop_the_intake(srt: Runtime,
                                                      agents: dict[str, Agent]) -> None:
    mallory, bot = agents["mallory"], agents["export-bot"]
    for fields in ({"body": "not json"}, {"nobody": "x"}, {"body": "\xff\xfe"},
                   {"body": "[1,2]"}, {"body": json.dumps({"id": 5})},
                   {"cancel": "{"}, {"cancel": json.dumps({"id": "../x"})},
                   {"body": "{" * 100_000}):
        mallory.r.xadd(mallory.keys.requests, fields)
    bot.send(body("ok-1"))
    drive(srt)
    assert wait_reply(bot, "ok-1", srt).status is Status.APPROVED
    reasons = dead_reasons(srt)
    assert len(reasons) >= 6 and all(reasons)
    assert srt.redis.xpending(mallory.keys.requests, "signoff-intake")["pending"] == 0


def test_grant_report_poison_and_forgeries(srt: Runtime, agents: dict[str, Agent]) -> None:
    """Unreadable reports are dead-lettered; a report about a grant never issued, or issued to
    another agent, never reaches the audit; a true one is recorded as the agent's claim."""
    bot, mallory = agents["export-bot"], agents["mallory"]
    bot.send(body("g-1"))
    decision = wait_reply(bot, "g-1", srt)
    jti = jwt.decode(decision.grant or "", options={"verify_signature": False})["jti"]
    mk = mallory.keys
    for fields in ({"result": "used"}, {"result": "used", "report": "not json"},
                   {"result": "nonsense", "report": "{}"},
                   {"result": "used", "report": json.dumps([1])},
                   {"result": "used", "report": json.dumps({"jti": "f" * 32, "verified": True})},
                   {"result": "used", "report": json.dumps({"jti": jti, "verified": True})}):
        mallory.r.xadd(mk.grant_reports, fields)
    before = {e.event for e in srt.audit.for_request("export-bot~g-1")}
    done = Janitor(srt).tick()
    assert done["failed"] == 0 and done["grant_reports"] == 6
    reasons = dead_reasons(srt)
    assert any("not JSON" in r for r in reasons)
    assert any("did not issue" in r for r in reasons)
    assert any("issued to 'agent:export-bot'" in r for r in reasons)
    assert {e.event for e in srt.audit.for_request("export-bot~g-1")} == before
    assert srt.redis.hget(srt.keys.grant(jti), "state") == "issued"
    # The owner's real use, through its SDK under its ACL, is its claim (never "verified").
    bot.client.verify_grant(type("D", (), {"grant": decision.grant, "id": "g-1",
                                           "raw": {}})(), "db.export",
                            "warehouse.customers", body("g-1")["params"])
    Janitor(srt).tick()
    used = [e for e in srt.audit.for_request("export-bot~g-1") if e.event == "grant_used"]
    assert len(used) == 1
    assert used[0].details["claim"] is True and "verified" not in used[0].details
    assert used[0].details["reported_by"] == "agent:export-bot"
    assert srt.redis.hget(srt.keys.grant(jti), "state") == "used"
    # Repeating a claim (or claiming refusals of a grant that does not exist) cannot flood
    # the audit chain: one entry per grant and outcome; the rest are dropped or dead letters.
    before = len(srt.audit.entries())
    for _ in range(20):
        bot.r.xadd(bot.keys.grant_reports, {"jti": jti, "result": "used",
                                            "report": json.dumps({"jti": jti})})
        bot.r.xadd(bot.keys.grant_reports, {"jti": "", "result": "refused", "report": json.dumps(
            {"jti": "", "code": "bad_signature"})})
    Janitor(srt).tick()
    assert len([e for e in srt.audit.entries()[before:] if e.event.startswith("grant")]) == 0


def test_spoiled_keys_in_its_own_namespace_stop_nothing(srt: Runtime,
                                                        agents: dict[str, Agent]) -> None:
    """Redis 6 lets an agent SET any key of its own: its stream, reply list, decisions, report
    stream. Signoff records and replaces them; the other agents are not slowed down."""
    mallory, bot = agents["mallory"], agents["export-bot"]
    if redis_major(srt.redis) >= 7:
        # Selectors confine SET to the use markers and XADD to the two streams.
        for key in (mallory.keys.requests, mallory.keys.decisions, mallory.keys.reply("s-2"),
                    mallory.keys.grant_reports, mallory.keys.public_keys,
                    mallory.keys.grant("j")):
            with pytest.raises(redis.exceptions.NoPermissionError):
                mallory.r.set(key, "x")
        with pytest.raises(redis.exceptions.NoPermissionError):
            mallory.r.xadd(mallory.keys.decisions, {"id": "forged"})
        return
    mallory.send(body("s-1"))
    consumer = IntakeConsumer(srt, name="t", block_ms=10)
    consumer.ensure_group()
    mallory.r.set(mallory.keys.requests, "x")
    mallory.r.set(mallory.keys.decisions, "x")
    mallory.r.set(mallory.keys.reply("s-2"), "x")
    mallory.r.set(mallory.keys.grant_reports, "x")
    bot.send(body("ok-2"))
    for _ in range(3):
        consumer.poll(block_ms=10)
    from tests.conftest import run_jobs

    run_jobs(srt)
    assert wait_reply(bot, "ok-2", srt).status is Status.APPROVED
    assert Janitor(srt).tick()["failed"] == 0
    mallory.send(body("s-2"))
    assert wait_reply(mallory, "s-2", srt).status is Status.APPROVED
    assert any("was a string" in r for r in dead_reasons(srt))


def test_intake_loop_survives_any_error_and_resets_backoff(srt: Runtime,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A round that raises is logged and retried; the loop never dies."""
    import threading

    consumer = IntakeConsumer(srt, name="t2", block_ms=10)
    calls = {"n": 0}
    stop = threading.Event()

    def flaky(block_ms: int | None = None) -> int:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ValueError("poison")
        if calls["n"] >= 4:
            stop.set()
        return 0

    monkeypatch.setattr(consumer, "poll", flaky)
    monkeypatch.setattr(consumer.janitor, "tick", lambda now=None: {})
    thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and calls["n"] >= 4 and consumer.errors == 2


def test_supervisor_backoff_grows_then_resets_once_healthy(srt: Runtime) -> None:
    """A child that keeps dying is restarted later and later; once it has run healthy, its
    next crash restarts it after the first delay again."""
    from workers.supervisor import Supervisor

    class Proc:
        def __init__(self) -> None:
            self.code: int | None = None
            self.returncode = 1

        def poll(self) -> int | None:
            return self.code

    spawned: list[Proc] = []
    sup = Supervisor(srt.settings, processes=("intake",))

    def spawn(name: str) -> Proc:
        spawned.append(Proc())
        return spawned[-1]

    sup._spawn = spawn  # type: ignore[method-assign,assignment]
    sup.start()
    t = 0.0
    delays = []
    for _ in range(4):
        spawned[-1].code = 1
        sup.watch_once(now=t)
        delays.append(sup.restart_at["intake"] - t)
        t = sup.restart_at["intake"]
        sup.watch_once(now=t)
    assert delays == [1.0, 2.0, 4.0, 8.0]
    sup.watch_once(now=t + Supervisor.HEALTHY_AFTER)  # ran healthy
    spawned[-1].code = 1
    sup.watch_once(now=t + Supervisor.HEALTHY_AFTER + 1)
    assert sup.restart_at["intake"] - (t + Supervisor.HEALTHY_AFTER + 1) == 1.0
