"""Flood control against the running stack: an agent in a loop floods the request stream
while another agent works normally. Identical requests merge onto one card ("×12"), the
over-limit ones are answered ``rejected: rate_limited`` at once, the other agent is not
slowed, and every request still ends exactly once."""

from __future__ import annotations

import json
import time

import pytest

from signoff.models import Status
from signoff.runtime import Runtime
from signoff.tokens import TokenKind
from tests.conftest import wait_for
from tests.fakes.slack_api import iter_blocks_text
from tests.reliability.conftest import StackFactory
from tests.reliability.support import (
    api_vote,
    assert_exactly_once,
    body,
    send,
    slack_card,
    slack_click,
    slack_shown,
    wait_replies,
)

pytestmark = pytest.mark.slow


def test_a_flooding_agent_is_merged_and_rate_limited_without_hurting_others(
        rrt: Runtime, make_stack: StackFactory) -> None:
    stack = make_stack(teams=False)
    fake = stack.fake
    assert fake is not None
    # agent:flood may send 15 requests an hour (policy); stay clear of the window's edge.
    if time.time() % 3600 > 3590:
        time.sleep(3600 - time.time() % 3600 + 1)
    same = [f"fl-s{i}" for i in range(12)]
    distinct = [f"fl-d{i}" for i in range(30)]
    others = [f"ok-{i}" for i in range(5)]
    loop_body = body("x", action="db.read", requester="agent:flood")["params"]
    send(rrt, *(body(rid, action="db.read", requester="agent:flood", params=loop_body)
                for rid in same),
         *(body(rid, action="db.read", requester="agent:flood") for rid in distinct),
         *(body(rid, action="db.read") for rid in others))
    limited = distinct[3:]  # 12 + 3 = 15 requests in the hour; the rest are refused
    wait_replies(rrt, limited, stack=stack)
    for rid in limited:
        reply = json.loads(rrt.redis.lindex(rrt.keys.reply(rid), 0))
        assert reply["status"] == "rejected"
        assert "rate_limited" in json.dumps(reply["error"]), reply
    # One card for the twelve identical requests, showing the count; one for each other,
    # or, past the channel's rate (one message a second, short bursts), a digest.
    card = slack_card(fake, same[0])
    wait_for(lambda: "×12" in "\n".join(iter_blocks_text(fake.cards(same[0])[0].blocks or [])),
             timeout=30, message="the ×12 card")
    assert all(fake.cards(rid) == [] for rid in same[1:])
    for rid in distinct[:3] + others:
        slack_shown(rrt, fake, rid)
    assert all(fake.cards(rid) == [] for rid in limited)
    posts = fake.calls("chat.postMessage")
    assert len(posts) <= 1 + 3 + len(others) and not [c for c in posts if c.status == 429]
    # One click approves the twelve; each agent call gets its own reply and grant.
    status, _ = slack_click(stack, same[0], "U0ALICE", "signoff_approve")
    assert status == 200 and card is not None
    alice = rrt.tokens.create(TokenKind.PERSON, "alice@example.com")
    for rid in distinct[:3] + others:
        assert api_vote(stack.url, alice, rid).status_code == 200
    ids = same + distinct + others
    wait_replies(rrt, ids, stack=stack)
    outcome = assert_exactly_once(rrt, ids, fake=fake, unposted_ok=True)
    grants = {outcome.replies[rid]["grant"] for rid in same}
    assert len(grants) == 12 and None not in grants
    assert {outcome.statuses[rid] for rid in same + distinct[:3] + others} == {"approved"}
    assert rrt.store.status(limited[0]) is Status.REJECTED
