"""Faults against the running stack (intake, worker and web as processes; Slack and Teams
fakes): each test breaks something mid-flight, lets the system recover on its own, and ends
with the same check: every request decided exactly once, every agent exactly one reply,
every card posted once, and the audit chain verifies."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import aiohttp
import pytest
import requests

from signoff.keys import INTAKE_GROUP
from signoff.models import Status
from signoff.runtime import Runtime
from signoff.tokens import TokenKind
from tests.conftest import RedisServer, wait_for
from tests.reliability.conftest import StackFactory
from tests.reliability.support import (
    api_vote,
    assert_exactly_once,
    body,
    diagnose,
    send,
    slack_card,
    slack_card_final,
    slack_click,
    slack_shown,
    teams_click,
    wait_pending,
    wait_replies,
)
from tests.slack.conftest import block_action, card_buttons

pytestmark = pytest.mark.slow


def test_redis_sigkilled_twice_mid_flight_loses_nothing(
        rrt: Runtime, make_stack: StackFactory, redis_server: RedisServer) -> None:
    stack = make_stack()
    alice = rrt.tokens.create(TokenKind.PERSON, "alice@example.com")
    first = [f"rk-a{i}" for i in range(8)]
    second = [f"rk-b{i}" for i in range(8)]
    send(rrt, *(body(rid) for rid in first))
    assert stack.fake is not None
    wait_for(lambda: stack.fake.cards_all() or stack.fake.digests(), timeout=30,  # type: ignore[union-attr]
             message="a first Slack message")
    # SIGKILL: no shutdown save; only what the append-only file already holds survives.
    redis_server.kill()
    redis_server.start()
    send(rrt, *(body(rid) for rid in second))
    ids = first + second
    wait_pending(rrt, ids, stack=stack)
    for rid in ids:
        # On its own card, or (past the channel's rate) on a digest message: once either way.
        slack_shown(rrt, stack.fake, rid)
    # Decide half in Slack, a quarter in Teams, a quarter over the API; kill Redis between.
    # A digest has no buttons: its requests are decided where it sends people (the API here).
    for rid in ids[:8]:
        if stack.fake.cards(rid):
            status, _ = slack_click(stack, rid, "U0ALICE", "signoff_approve")
            assert status == 200
        else:
            assert api_vote(stack.url, alice, rid).status_code == 200
    redis_server.kill()
    redis_server.start()
    wait_for(stack.web_ready, timeout=30, message="web back")
    for rid in ids[8:12]:
        assert teams_click(stack, rid, "bob", "approve").status_code == 200
    for rid in ids[12:]:
        assert api_vote(stack.url, alice, rid).status_code == 200
    wait_replies(rrt, ids, stack=stack)
    # A request decided in Slack before the crash's repair reached its other channels has no
    # card there (cards are not posted for decided requests); none has two.
    outcome = assert_exactly_once(rrt, ids, fake=stack.fake, bf=stack.bf, unposted_ok=True,
                                  teams_unrecorded_ok=True)
    assert set(outcome.statuses.values()) == {"approved"}


def test_worker_sigkilled_mid_notify_posts_each_card_once(
        rrt: Runtime, make_stack: StackFactory) -> None:
    stack = make_stack()
    fake = stack.fake
    assert fake is not None
    # Slack stores the first card, then holds the answer: the worker is inside the post.
    fake.inject("chat.postMessage", "timeout_after", times=1, delay=6.0)
    ids = [f"wk-{i}" for i in range(4)]
    send(rrt, *(body(rid) for rid in ids))
    wait_for(lambda: fake.cards(ids[0]), timeout=30, message="the stalled card")
    stack.kill("worker")
    stack.start("worker")

    def all_recorded() -> bool:
        return all(rrt.redis.hexists(rrt.keys.cards(rid), "slack:#approvals") for rid in ids)

    try:
        wait_for(all_recorded, timeout=45, interval=0.2, message="every Slack card recorded")
    except AssertionError:
        print(stack.logs())
        print(diagnose(rrt, ids))
        raise
    for rid in ids:
        status, _ = slack_click(stack, rid, "U0CAROL", "signoff_approve")
        assert status == 200
    wait_replies(rrt, ids, stack=stack)
    # The worker may die inside a Teams post too (the delivery posts to every channel at
    # once): that card is never posted a second time.
    assert_exactly_once(rrt, ids, fake=fake, bf=stack.bf, status=Status.APPROVED,
                        teams_unrecorded_ok=True)
    wait_for(lambda: all(slack_card_final(fake, rid) for rid in ids), timeout=30,
             message="every Slack card shows the decision")


def test_intake_killed_with_unacknowledged_messages_loses_none(
        rrt: Runtime, make_stack: StackFactory) -> None:
    stack = make_stack()
    stream = rrt.keys.requests
    # 1. The intake SIGKILLed in the middle of a burst it had read.
    burst = [f"ik-a{i}" for i in range(60)]
    send(rrt, *(body(rid, action="db.drop") for rid in burst))
    wait_for(lambda: rrt.redis.zcard(rrt.keys.all_requests) >= 3, timeout=30, interval=0.002,
             message="the intake inside the burst")
    stack.kill("intake")
    # 2. Another consumer of the group read messages and died before acknowledging any.
    ghosts = [f"ik-b{i}" for i in range(10)]
    send(rrt, *(body(rid, action="db.drop") for rid in ghosts))
    taken = rrt.redis.xreadgroup(INTAKE_GROUP, "ghost-host-1", {stream: ">"}, count=200)
    assert taken and taken[0][1], "the ghost consumer read nothing"
    pending = rrt.redis.xpending(stream, INTAKE_GROUP)["pending"]
    assert pending >= len(ghosts)
    # 3. Messages nobody has read yet.
    later = [f"ik-c{i}" for i in range(10)]
    send(rrt, *(body(rid, action="db.drop") for rid in later))
    stack.start("intake")
    ids = burst + ghosts + later
    wait_pending(rrt, ids, stack=stack)
    assert rrt.redis.xpending(stream, INTAKE_GROUP)["pending"] == 0
    assert rrt.redis.xlen(rrt.keys.dead) == 0
    # Each request was created once: a redelivered message is a duplicate, never a second one.
    created = Counter(e.request_id for e in rrt.audit.iter_entries() if e.event == "requested")
    assert all(created[rid] == 1 for rid in ids), {r: created[r] for r in ids if created[r] != 1}
    alice = rrt.tokens.create(TokenKind.PERSON, "alice@example.com")
    bob = rrt.tokens.create(TokenKind.PERSON, "bob@example.com")
    for rid in ids:
        assert api_vote(stack.url, alice, rid).status_code == 200
        assert api_vote(stack.url, bob, rid, "deny" if rid.endswith("7") else "approve"
                        ).status_code == 200
    wait_replies(rrt, ids, stack=stack)
    outcome = assert_exactly_once(rrt, ids, fake=stack.fake, bf=stack.bf)
    assert {rid for rid, s in outcome.statuses.items() if s == "denied"} == {
        rid for rid in ids if rid.endswith("7")}


RATE_LIMITED_FOR = 8.0  # the "a minute", scaled down (Retry-After 1 s)


def test_slack_rate_limiting_for_a_while_loses_no_card_and_no_decision(
        rrt: Runtime, make_stack: StackFactory) -> None:
    stack = make_stack()
    fake = stack.fake
    assert fake is not None
    alice = rrt.tokens.create(TokenKind.PERSON, "alice@example.com")
    start = time.monotonic()
    for method in ("chat.postMessage", "chat.update", "conversations.list"):
        fake.inject(method, "429", seconds=RATE_LIMITED_FOR, retry_after=1)
    early = [f"sl-a{i}" for i in range(4)]
    send(rrt, *(body(rid) for rid in early))
    wait_pending(rrt, early, stack=stack)
    # Decided over the API while Slack refuses everything: the agents are still answered.
    for rid in early[:2]:
        assert api_vote(stack.url, alice, rid).status_code == 200
    wait_replies(rrt, early[:2], timeout=60, stack=stack)
    replied_after = time.monotonic() - start
    late = [f"sl-b{i}" for i in range(4)]
    send(rrt, *(body(rid) for rid in late))
    undecided = early[2:] + late
    wait_pending(rrt, late, stack=stack)
    # Once Slack answers again every open request is shown once: on its own card (clicks
    # work), or, past the channel's rate, on a digest (decided over the API).
    bob = rrt.tokens.create(TokenKind.PERSON, "bob@example.com")
    for rid in undecided:
        slack_shown(rrt, fake, rid, timeout=60)
        if fake.cards(rid):
            status, _ = slack_click(stack, rid, "U0BOB", "signoff_approve")
            assert status == 200
        else:
            assert api_vote(stack.url, bob, rid).status_code == 200
    ids = early + late
    wait_replies(rrt, ids, stack=stack)
    assert_exactly_once(rrt, ids, fake=fake, bf=stack.bf, status=Status.APPROVED,
                        unposted_ok=True)
    carded = [rid for rid in undecided if fake.cards(rid)]
    wait_for(lambda: all(slack_card_final(fake, rid) for rid in carded), timeout=30,
             message="every Slack card shows the decision")
    refused = [c for c in fake.calls() if c.status == 429]
    assert refused, "Slack never rate-limited anything"
    print([(c.method, round(c.at - fake.calls()[0].at, 1), c.status) for c in fake.calls()][:40])
    print(f"replies during the rate limit after {replied_after:.1f}s; "
          f"{len(refused)} calls answered 429")


def test_web_restarted_during_a_burst_of_clicks(rrt: Runtime, make_stack: StackFactory) -> None:
    stack = make_stack(teams=False)
    fake = stack.fake
    assert fake is not None
    pairs = [f"wb-p{i}" for i in range(12)]  # two of dba, decided over the API
    reads = [f"wb-r{i}" for i in range(6)]  # one of dba, decided in Slack
    send(rrt, *(body(rid, action="db.drop") for rid in pairs),
         *(body(rid, action="db.read") for rid in reads))
    ids = pairs + reads
    wait_pending(rrt, ids, stack=stack)
    for rid in reads:
        slack_card(fake, rid)
    tokens = {who: rrt.tokens.create(TokenKind.PERSON, f"{who}@example.com")
              for who in ("alice", "bob", "carol")}
    slack_ids = {"alice": "U0ALICE", "bob": "U0BOB", "carol": "U0CAROL"}
    # Every DBA clicks everything at once; a click whose answer never came is clicked again
    # (the same Slack payload is re-sent: Signoff must see the replay).
    clicks: list[tuple[str, str]] = [(rid, who) for rid in ids for who in tokens]
    answers: dict[tuple[str, str], list[int]] = {c: [] for c in clicks}
    payloads = {}
    for rid in reads:
        card = slack_card(fake, rid)
        for who, uid in slack_ids.items():
            button = card_buttons(card.blocks or [])["signoff_approve"]
            payloads[(rid, who)] = block_action(uid, button, channel=card.channel,
                                                message_ts=card.ts, fake=fake)

    def click(c: tuple[str, str]) -> None:
        rid, who = c
        for _ in range(40):
            try:
                if rid in payloads:
                    status, _ = stack.slack.interact(payloads[c])
                else:
                    status = api_vote(stack.url, tokens[who], rid, timeout=5).status_code
            except (requests.RequestException, OSError, aiohttp.ClientError):
                status = 0
            answers[c].append(status)
            if status and status < 500:
                return
            time.sleep(0.25)

    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(click, c) for c in clicks]
        wait_for(lambda: sum(bool(a) for a in answers.values()) >= len(clicks) // 4,
                 timeout=30, interval=0.01, message="a quarter of the clicks answered")
        stack.kill("web")
        stack.start("web")
        for f in futures:
            f.result(timeout=60)
    assert any(0 in a or any(s >= 500 for s in a) for a in answers.values()), \
        "no click was caught by the restart"
    wait_replies(rrt, ids, stack=stack)
    outcome = assert_exactly_once(rrt, ids, fake=fake, status=Status.APPROVED)
    for rid in pairs:
        people = [a["person"] for a in outcome.replies[rid]["approvers"]]
        assert len(people) == 2 and len(set(people)) == 2, people
    for rid in reads:
        assert len(outcome.replies[rid]["approvers"]) == 1
    # Refused clicks said why (already decided / already voted / replay), none was lost.
    assert all(a and a[-1] in (200, 409) for a in answers.values()), answers


def faketime_env(clock_file: Path) -> dict[str, str]:
    """Run a process under libfaketime: its wall clock is the real one plus the offset in
    ``clock_file`` (re-read on every call), its monotonic clock stays real."""
    import libfaketime

    _reexec, env = libfaketime.get_reload_information()
    return {**env, "FAKETIME_TIMESTAMP_FILE": str(clock_file)}


def test_clock_jumping_past_deadlines(rrt: Runtime, make_stack: StackFactory,
                                      tmp_path: Path) -> None:
    clock = tmp_path / "faketime"
    clock.write_text("+0\n")
    stack = make_stack(teams=False, env=faketime_env(clock))
    fake = stack.fake
    assert fake is not None
    hour = [f"cj-h{i}" for i in range(6)]  # 1 h timeout, Slack and web
    long = [f"cj-l{i}" for i in range(3)]  # 4 h timeout
    send(rrt, *(body(rid, action="db.read") for rid in hour),
         *(body(rid, action="db.archive") for rid in long))
    wait_pending(rrt, hour + long, stack=stack)
    for rid in hour:
        slack_card(fake, rid)
    alice = rrt.tokens.create(TokenKind.PERSON, "alice@example.com")
    # Every Signoff process's wall clock jumps two hours ahead (a host resumed, NTP stepped).
    clock.write_text("+7200\n")
    # Clicks that arrive after the jump, before any timer could have run: refused.
    for rid in hour[:3]:
        resp = api_vote(stack.url, alice, rid)
        assert resp.status_code == 409, (rid, resp.status_code, resp.text)
    # Slack signs with the time that passed too; the click is verified, then refused.
    status, _ = slack_click(stack, hour[3], "U0BOB", "signoff_approve", at=time.time() + 7200)
    assert status == 200
    wait_for(lambda: any("timed out" in e.text for e in fake.ephemerals() if e.user == "U0BOB"),
             timeout=10, message="Bob told the request timed out")
    wait_replies(rrt, hour, stack=stack)
    assert api_vote(stack.url, alice, long[0]).status_code == 200
    wait_replies(rrt, long[:1], stack=stack)
    # And back: nothing fires again.
    clock.write_text("+0\n")
    time.sleep(3)
    outcome = assert_exactly_once(rrt, [*hour, long[0]], fake=fake)
    assert {outcome.statuses[rid] for rid in hour} == {"timed_out"}
    assert outcome.statuses[long[0]] == "approved"
    assert all(rrt.store.status(rid) is Status.PENDING for rid in long[1:])
    wait_for(lambda: all(slack_card_final(fake, rid) for rid in hour), timeout=30,
             message="every Slack card shows the timeout")
