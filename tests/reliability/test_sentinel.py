"""Redis high availability: a primary, a replica and three Sentinels on loopback; the stack
(intake, worker, web) connects with a ``redis+sentinel://`` URL and waits for one replica on
every settling transition (``SIGNOFF_REDIS_WAIT_REPLICAS=1``). The primary is SIGKILLed:
the Sentinels promote the replica, every process follows it without a restart, no decided
request is lost, and rq's scheduler (whose process rebuilds its connection from the worker's
Sentinel pool) keeps firing timers on the new primary."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis

from signoff.models import Status
from signoff.runtime import Runtime, set_current
from signoff.tokens import TokenKind
from tests.conftest import wait_for
from tests.reliability.ha import RedisHA
from tests.reliability.support import (
    ChannelStack,
    api_vote,
    assert_exactly_once,
    body,
    channel_settings,
    send,
    wait_pending,
    wait_replies,
)

pytestmark = pytest.mark.slow
T = TypeVar("T")


def retrying(fn: Callable[[], T], timeout: float = 15.0) -> T:
    """Call ``fn`` until Redis answers (the first call after a failover may meet a dead
    connection)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except (redis.ConnectionError, redis.TimeoutError, redis.ReadOnlyError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[RedisHA]:
    cluster = RedisHA(tmp_path / "ha", down_after_ms=1000).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def ha_rt(ha: RedisHA, tmp_path: Path, policy_path: Path) -> Iterator[Runtime]:
    runtime = Runtime(channel_settings(ha.url, tmp_path / "data", policy_path, None, None,
                                       redis_wait_replicas=1))
    set_current(runtime)
    yield runtime
    runtime.close()


def test_primary_killed_stack_follows_the_replica_and_keeps_every_decision(
        ha: RedisHA, ha_rt: Runtime, tmp_path: Path, policy_path: Path) -> None:
    rt = ha_rt
    stack = ChannelStack(rt.settings, tmp_path, policy_path,
                         env={"REDIS_URL": ha.url, "SIGNOFF_REDIS_WAIT_REPLICAS": "1"})
    stack.start_all()
    try:
        alice = rt.tokens.create(TokenKind.PERSON, "alice@example.com")
        before = [f"ha-b{i}" for i in range(8)]
        send(rt, *(body(rid, action="db.archive") for rid in before))
        wait_pending(rt, before, stack=stack)
        decided = before[:5]
        for rid in decided:  # each answered only once a replica has the decision
            resp = api_vote(stack.url, alice, rid)
            assert resp.status_code == 200, resp.text
        wait_replies(rt, decided, stack=stack)
        assert rt.store.under_replicated == 0
        # A reminder due a few seconds after the primary dies: only rq's scheduler fires it.
        send(rt, body("ha-remind", action="db.remind"))
        wait_pending(rt, ["ha-remind"], stack=stack)

        old = ha.kill_primary()
        started = time.monotonic()
        new = ha.wait_failover(old)
        failover_s = time.monotonic() - started
        # Every decision anyone was told about is on the new primary.
        for rid in decided:
            assert retrying(lambda r=rid: rt.store.status(r)) is Status.APPROVED, rid
            assert retrying(lambda r=rid: rt.redis.llen(rt.keys.reply(r))) == 1

        # With the replica promoted, none is left to acknowledge: each settling transition
        # waits the whole SIGNOFF_REDIS_WAIT_TIMEOUT_MS (the decision stands; a warning).
        lone = before[5]
        t0 = time.monotonic()
        assert retrying_http(lambda: api_vote(stack.url, alice, lone)).status_code == 200
        degraded_ms = (time.monotonic() - t0) * 1000
        # The old primary comes back: the Sentinels make it a replica of the new one.
        ha.restart(old)
        wait_for(lambda: retrying(ha.replicas_of_primary) >= 1, timeout=30,
                 message="the old primary back as a replica")
        after = [f"ha-a{i}" for i in range(6)]
        retrying(lambda: send(rt, *(body(rid, action="db.archive") for rid in after)))
        wait_pending(rt, after, timeout=60, stack=stack)
        t0 = time.monotonic()
        for rid in before[6:] + after:
            resp = retrying_http(lambda r=rid: api_vote(stack.url, alice, r))
            assert resp.status_code == 200, resp.text
        healed_ms = (time.monotonic() - t0) * 1000 / len(before[6:] + after)
        ids = before + after
        wait_replies(rt, ids, timeout=60, stack=stack)
        wait_for(lambda: any(e.event == "reminded" for e in rt.audit.for_request("ha-remind")),
                 timeout=30, message="the reminder fired by rq's scheduler after failover")
        assert_exactly_once(rt, ids, status=Status.APPROVED)
        assert ha.primary_port() == new
        print(f"failover took {failover_s:.1f}s (down-after 1000 ms); a decision with no "
              f"replica left took {degraded_ms:.0f} ms, with the old primary back as a "
              f"replica {healed_ms:.0f} ms")
    except Exception:
        print(stack.logs())
        raise
    finally:
        stack.stop()


def retrying_http(fn: Callable[[], Any], attempts: int = 20) -> Any:
    """An API call repeated while the web process still meets the old primary (5xx)."""
    resp = fn()
    for _ in range(attempts):
        if resp.status_code < 500:
            return resp
        time.sleep(0.25)
        resp = fn()
    return resp


def test_a_decision_is_on_the_replica_before_the_click_is_answered(
        ha: RedisHA, ha_rt: Runtime) -> None:
    import threading

    from signoff import lifecycle
    from tests.conftest import run_intake

    rt = ha_rt
    assert rt.store.wait_replicas == 1
    replica = RedisHA.client(next(p for p in ha.ports.values() if p != ha.primary_port()))
    send(rt, body("wr-1", action="db.archive"), body("wr-2", action="db.archive"))
    run_intake(rt)
    for rid in ("wr-1", "wr-2"):
        assert lifecycle.prepare(rt, rid) == "pending"
    alice = rt.policy.directory.person("alice@example.com")
    assert lifecycle.submit_vote(rt, "wr-1", alice, "approve").code == "final"
    # WAIT returned: the replica already holds the decision (no polling needed).
    assert replica.hget(rt.keys.request("wr-1"), "status") == "approved"
    assert rt.store.under_replicated == 0
    # A replica that stops acknowledging (here: busy for a second) holds the answer back
    # up to the timeout; the decision stands and the shortfall is counted and logged.
    rt.store.wait_timeout_ms = 300
    busy = threading.Thread(target=lambda: replica.execute_command("DEBUG", "SLEEP", "1"))
    busy.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    assert lifecycle.submit_vote(rt, "wr-2", alice, "approve").code == "final"
    waited = time.monotonic() - t0
    busy.join(5)
    assert waited >= 0.25 and rt.store.under_replicated >= 1
    assert rt.store.status("wr-2") is Status.APPROVED


async def test_agent_sdk_clients_take_a_sentinel_url(ha: RedisHA, ha_rt: Runtime) -> None:
    from signoff import lifecycle
    from signoff.sdk import AsyncClient, Client
    from tests.conftest import run_intake

    sync = Client(ha.url, requester="agent:rel").request(
        "db.archive", "warehouse.orders", {"n": 1}, id="sdk-sync",
        context={"environment": "prod"})
    client = AsyncClient(ha.url, requester="agent:rel")
    handle = await client.request("db.archive", "warehouse.orders", {"n": 2}, id="sdk-async",
                                  context={"environment": "prod"})
    run_intake(ha_rt)
    for rid in ("sdk-sync", "sdk-async"):
        assert lifecycle.prepare(ha_rt, rid) == "pending"
        assert lifecycle.cancel(ha_rt, rid, "agent:rel") == "changed"  # and finalized
        assert lifecycle.finalize(ha_rt, rid) == "already_delivered"
    assert sync.wait(timeout=5).status is Status.CANCELLED
    assert (await handle.wait(timeout=5)).status is Status.CANCELLED
    await client.aclose()
