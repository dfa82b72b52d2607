"""Deciding inside the Teams card, over real HTTP: every check a click goes through."""

from __future__ import annotations

import json
from typing import Any

from bot.teams.conversations import ConversationBook
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_jobs
from tests.fakes.teams_connector import FakeBotFramework
from tests.teams.conftest import (
    AAD,
    APPROVALS,
    OPS,
    OTHER_TENANT,
    TeamsClient,
    button_data,
    card_of,
    open_request,
    texts,
    verbs,
)


def install_both(teams: TeamsClient) -> None:
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    assert teams.install(OPS, "Ops").status_code == 201


def current_card(bf: FakeBotFramework, post: Any) -> dict[str, Any]:
    body = bf.message(post.conversation_id, post.activity_id)
    assert body is not None
    return dict(body["attachments"][0]["content"])


def refresh(teams: TeamsClient, base: dict[str, Any], who: str, **kw: Any) -> dict[str, Any]:
    return card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], who, **kw))


def audit_codes(rt: Runtime, rid: str) -> list[str]:
    return [e.details.get("code", "") for e in rt.audit.for_request(rid)
            if e.event == "click_refused"]


def test_two_dbas_approve_in_teams_and_every_card_follows(trt: Runtime, bf: FakeBotFramework,
                                                          teams: TeamsClient) -> None:
    tokens_before = bf.token_requests
    install_both(teams)
    open_request(trt, "q1")
    posts = bf.wait_posts(2)
    assert sorted(p.conversation_id for p in posts) == sorted([APPROVALS, OPS])
    base = posts[0].card
    assert base is not None and verbs(base) == [] and "refresh" in base
    assert "sk_live" not in json.dumps(base) and "jane.doe@example.org" not in json.dumps(base)

    # Each viewer's client refreshes: a DBA sees the buttons, a secops member does not.
    alice_card = refresh(teams, base, "alice")
    assert verbs(alice_card) == ["approve", "deny"]
    assert verbs(refresh(teams, base, "dave")) == []
    assert "sk_live" not in json.dumps(alice_card)

    first = card_of(teams.invoke("approve", button_data(alice_card, "approve"), "alice"))
    assert "Vote recorded; waiting for more approvals." in texts(first)
    assert verbs(first) == [] and "2 of dba — 1 so far" in texts(first)
    run_jobs(trt)
    updated = {(u.conversation_id, u.activity_id) for u in bf.updates()}
    assert updated == {(p.conversation_id, p.activity_id) for p in posts}
    for post in posts:
        assert "2 of dba — 1 so far" in texts(current_card(bf, post))

    bob_card = refresh(teams, base, "bob", conversation=OPS)
    final = card_of(teams.invoke("approve", button_data(bob_card, "approve"), "bob",
                                 conversation=OPS))
    assert "Request approved." in texts(final) and "refresh" not in final
    run_jobs(trt)
    for post in posts:
        card = current_card(bf, post)
        assert "refresh" not in card and verbs(card) == []
        assert "Approved by alice@example.com, bob@example.com" in texts(card)
    decision = json.loads(trt.redis.lpop(trt.keys.reply("q1")))
    assert decision["status"] == "approved" and decision["grant"]
    assert [(a["person"], a["channel"]) for a in decision["approvers"]] == [
        ("alice@example.com", "teams"), ("bob@example.com", "teams")]
    # One MSAL token served every outbound call of the worker's messenger.
    assert bf.token_requests - tokens_before == 1


def test_deny_needs_a_reason_and_the_reason_reaches_everyone(trt: Runtime,
                                                             bf: FakeBotFramework,
                                                             teams: TeamsClient) -> None:
    install_both(teams)
    open_request(trt, "d1")
    base = bf.wait_posts(2)[0].card
    assert base is not None
    card = refresh(teams, base, "carol")
    refused = card_of(teams.invoke("deny", button_data(card, "deny"), "carol", comment="  "))
    assert "Not recorded: A reason is required to deny this request." in texts(refused)
    assert verbs(refused) == ["approve", "deny"]  # carol may still decide
    denied = card_of(teams.invoke("deny", button_data(card, "deny"), "carol",
                                  comment="not this quarter"))
    assert "Request denied." in texts(denied)
    run_jobs(trt)
    for post in bf.posts():
        text = texts(current_card(bf, post))
        assert "Denied by carol@example.com" in text and "not this quarter" in text
    decision = json.loads(trt.redis.lpop(trt.keys.reply("d1")))
    assert decision["status"] == "denied" and decision["reason"] == "not this quarter"
    assert "grant" not in decision


def test_self_approval_unknown_and_ineligible_users_are_refused(trt: Runtime,
                                                               bf: FakeBotFramework,
                                                               teams: TeamsClient) -> None:
    install_both(teams)
    open_request(trt, "s1")
    base = bf.wait_posts(2)[0].card
    assert base is not None
    approve = button_data(refresh(teams, base, "alice"), "approve")
    version = trt.store.get("s1").version  # type: ignore[union-attr]
    expected = {
        "frank": "being done on your behalf",  # the human the agent acts for
        "erin": "You own the agent",  # the agent's owner
        "mallory": "does not know your account",  # not in the directory
        "dave": "Only members of dba",  # not an approver of this rule
    }
    for who, reason in expected.items():
        card = card_of(teams.invoke("approve", approve, who))
        assert "Not recorded" in texts(card) and reason in texts(card), who
        assert verbs(card) == []
    # Frank's own view says why he has no buttons.
    assert "being done on your behalf" in texts(refresh(teams, base, "frank"))
    record = trt.store.get("s1")
    assert record is not None and record.votes == {} and record.version == version
    assert record.status is Status.PENDING
    assert sorted(audit_codes(trt, "s1")) == sorted(
        ["on_behalf_of", "agent_owner", "unknown_person", "not_eligible"])
    actors = [e.actor for e in trt.audit.for_request("s1") if e.event == "click_refused"]
    assert f"teams:{AAD['mallory']}" in actors


def test_a_replayed_click_counts_once(trt: Runtime, bf: FakeBotFramework,
                                      teams: TeamsClient) -> None:
    install_both(teams)
    open_request(trt, "p1")
    base = bf.wait_posts(2)[0].card
    assert base is not None
    approve = button_data(refresh(teams, base, "alice"), "approve")
    first = card_of(teams.invoke("approve", approve, "alice", activity_id="f:click-1"))
    assert "Vote recorded" in texts(first)
    replay = card_of(teams.invoke("approve", approve, "alice", activity_id="f:click-1"))
    assert "This click was already received." in texts(replay)
    again = card_of(teams.invoke("approve", approve, "alice", activity_id="f:click-2"))
    assert "already voted" in texts(again)
    record = trt.store.get("p1")
    assert record is not None and list(record.votes) == ["alice@example.com"]
    assert record.status is Status.PENDING


def test_forged_buttons_and_other_tenants_change_nothing(trt: Runtime, bf: FakeBotFramework,
                                                         teams: TeamsClient) -> None:
    install_both(teams)
    open_request(trt, "f1")
    open_request(trt, "f2", params={"rows": 10})  # not identical: its own card
    base = bf.wait_posts(4)[0].card
    assert base is not None
    approve = button_data(refresh(teams, base, "alice"), "approve")
    other = "f2" if approve["r"] == "f1" else "f1"
    forgeries = [
        {**approve, "s": "0" * 32},  # a made-up signature
        {**approve, "r": other},  # a valid signature moved to another request
        {**approve, "c": "deny"},  # the choice changed
        {"r": approve["r"]},  # no signature at all
    ]
    for data in forgeries:
        card = card_of(teams.invoke("approve", data, "bob"))
        assert "not made by Signoff" in texts(card)
    # A deny verb carrying the approve button's data is refused too.
    assert "not made by Signoff" in texts(card_of(teams.invoke("deny", approve, "bob",
                                                               comment="x")))
    # A tenant outside the allow-list: refused, audited, nothing saved.
    outsider = card_of(teams.invoke("approve", approve, "bob", tenant=OTHER_TENANT))
    assert "not allowed" in texts(outsider)
    assert "tenant_not_allowed" in audit_codes(trt, approve["r"])
    assert teams.install("19:elsewhere@thread.tacv2", "Elsewhere",
                         tenant=OTHER_TENANT).status_code == 201
    book = ConversationBook(trt.redis, trt.keys)
    assert book.resolve("elsewhere") is None
    for rid in ("f1", "f2"):
        record = trt.store.get(rid)
        assert record is not None and record.votes == {}


def test_a_malformed_invoke_is_a_bad_request(trt: Runtime, teams: TeamsClient) -> None:
    activity = teams.base("invoke")
    activity["name"] = "adaptiveCard/action"
    activity["value"] = {"nothing": True}
    response = teams.post(activity)
    assert response.status_code == 200
    assert response.json()["statusCode"] == 400
    activity["name"] = "task/fetch"
    assert teams.post(activity).status_code == 501
