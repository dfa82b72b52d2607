"""Passkey step-up at the vote choke point (lifecycle.submit_vote) with a software
authenticator: enrolment, the accepted vote and its audit and grant, and every refusal
(no proof, no passkey, replayed, stale, another request / choice / person, another person's
credential, a cloned authenticator's sign count, wrong origin, no user verification),
each leaving the request, the proof and the credential as they were."""

from __future__ import annotations

import json
import logging
from typing import Any

import jwt
import pytest

from signoff import lifecycle, passkeys, stepup
from signoff.audit import Event
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_jobs
from tests.stepup.authenticator import SoftAuthenticator
from tests.stepup.conftest import ORIGIN, RP_ID, assertion, drop_body, enrol, make_pending


def person(rt: Runtime, email: str) -> Any:
    return rt.policy.directory.person(email)


def vote(rt: Runtime, rid: str, email: str, choice: str, proof: Any = None,
         channel: str = "web", comment: str | None = None) -> lifecycle.VoteReply:
    return lifecycle.submit_vote(rt, rid, person(rt, email), choice, comment, channel=channel,
                                 step_up=proof)


def unchanged(rt: Runtime, rid: str) -> None:
    record = rt.store.get(rid)
    assert record is not None and record.status is Status.PENDING and record.votes == {}


def events(rt: Runtime, rid: str = "", name: str = "") -> list[Any]:
    if rid:
        return [e for e in rt.audit.for_request(rid) if not name or e.event == name]
    return [e for e in rt.audit.iter_entries("-", "+") if not name or e.event == name]


def test_enrol_vote_audit_and_grant(rt: Runtime) -> None:
    make_pending(rt, drop_body("drop-1"))
    device = enrol(rt, "alice@example.com")
    [entry] = events(rt, name=Event.PASSKEY_ENROLLED.value)
    assert entry.actor == "alice@example.com"
    assert entry.details["credential_id"] == passkeys.store(rt).list_for(
        "alice@example.com")[0].credential_id

    # A click without a proof (any channel) is refused, saying where to go.
    for channel in ("slack", "teams", "web", "api"):
        reply = vote(rt, "drop-1", "alice@example.com", "approve", channel=channel)
        assert not reply.ok and reply.code == "step_up_required"
        assert "http://localhost:8765/inbox/r/drop-1/step-up" in reply.message
    unchanged(rt, "drop-1")

    proof = assertion(rt, device, "drop-1", "alice@example.com", "approve")
    reply = vote(rt, "drop-1", "alice@example.com", "approve", proof)
    assert reply.ok, reply.message
    assert rt.store.status("drop-1") is Status.APPROVED
    [voted] = events(rt, "drop-1", Event.VOTE.value)
    step = voted.details["step_up"]
    assert step["method"] == "passkey"
    assert step["credential_id"] == json.loads(json.dumps(proof))["id"]
    assert step["flags"] == {"up": True, "uv": True}
    assert step["sign_count"] == device.sign_count == 1
    assert rt.store.get("drop-1").votes["alice@example.com"].step_up == "passkey"

    run_jobs(rt)
    decision = json.loads(rt.redis.lindex(rt.keys.reply("drop-1"), 0))
    assert decision["approvers"][0]["step_up"] == "passkey"
    claims = jwt.decode(decision["grant"], options={"verify_signature": False})
    assert claims["stp"] == ["alice@example.com"] and claims["apr"] == ["alice@example.com"]
    [issued] = events(rt, "drop-1", Event.GRANT_ISSUED.value)
    assert issued.details["stepped_up"] == ["alice@example.com"]


def test_no_passkey_gets_a_way_to_enrol(rt: Runtime) -> None:
    make_pending(rt, drop_body("drop-2"))
    reply = vote(rt, "drop-2", "bob@example.com", "approve")
    assert reply.code == "step_up_no_passkey"
    assert "http://localhost:8765/inbox/passkeys" in reply.message
    result = lifecycle.step_up_options(rt, "drop-2", person(rt, "bob@example.com"), "approve")
    assert isinstance(result, stepup.Refusal) and result.code is stepup.Code.NO_PASSKEY
    unchanged(rt, "drop-2")


def test_refusals_change_nothing(rt: Runtime) -> None:
    make_pending(rt, drop_body("drop-a", "a"), drop_body("drop-b", "b"))
    alice = enrol(rt, "alice@example.com")
    bob = enrol(rt, "bob@example.com")
    store = passkeys.store(rt)

    def count(email: str) -> int:
        return store.list_for(email)[0].sign_count

    def refused(rid: str, email: str, choice: str, proof: Any, code: str, text: str,
                comment: str | None = None) -> None:
        before = count(email)
        reply = vote(rt, rid, email, choice, proof, comment=comment)
        assert not reply.ok and reply.code == code, (reply.code, reply.message)
        assert text in reply.message
        assert count(email) == before
        unchanged(rt, rid)
        assert any(e.details.get("code") == code
                   for e in events(rt, rid, Event.STEP_UP_REFUSED.value))

    # Another choice, another request, another person's proof.
    proof = assertion(rt, alice, "drop-a", "alice@example.com", "approve")
    refused("drop-a", "alice@example.com", "deny", proof, "step_up_other_choice",
            "made to approve, not to deny", comment="no")
    refused("drop-b", "alice@example.com", "approve", proof, "step_up_other_request",
            "another request")
    refused("drop-a", "bob@example.com", "approve", proof, "step_up_other_person",
            "someone else")
    # Bob's authenticator answering a challenge made for Alice: not her credential.
    forged = assertion(rt, bob, "drop-a", "alice@example.com", "approve")
    refused("drop-a", "alice@example.com", "approve", forged, "step_up_not_your_passkey",
            "belongs to someone else")
    # Another origin (a phishing site relaying the challenge).
    phished = assertion(rt, alice, "drop-a", "alice@example.com", "approve",
                        origin="http://localhost:9999")
    refused("drop-a", "alice@example.com", "approve", phished, "step_up_invalid",
            "did not verify")
    # Made inside a frame on another site (same origin string, crossOrigin set).
    framed = assertion(rt, alice, "drop-a", "alice@example.com", "approve", cross_origin=True)
    refused("drop-a", "alice@example.com", "approve", framed, "step_up_invalid",
            "inside another site")
    # No user verification (no PIN or biometric).
    lazy = SoftAuthenticator(ORIGIN, RP_ID, alice.key, alice.credential_id, alice.sign_count,
                             alice.user_handle, user_verified=False)
    refused("drop-a", "alice@example.com", "approve",
            assertion(rt, lazy, "drop-a", "alice@example.com", "approve"),
            "step_up_not_verified", "did not verify you")
    # Garbage.
    refused("drop-a", "alice@example.com", "approve", {"id": "x"}, "step_up_invalid",
            "not a WebAuthn")
    # A challenge Signoff never issued (self-made, well-formed, correctly bound).
    import os

    nonce = os.urandom(16)
    record = rt.store.get("drop-a")
    made_up = stepup.bound_challenge("drop-a", record.get("payload_sha256"), "approve",
                                     "alice@example.com", nonce)
    from tests.stepup.authenticator import b64u

    refused("drop-a", "alice@example.com", "approve", alice.get({"challenge": b64u(made_up)}),
            "step_up_expired", "expired or was not issued")

    # The original proof still works afterwards: every refusal left it unused.
    assert vote(rt, "drop-a", "alice@example.com", "approve", proof).ok


def test_replayed_and_stale(rt: Runtime) -> None:
    make_pending(rt, drop_body("drop-r"))
    alice = enrol(rt, "alice@example.com")
    record = rt.store.get("drop-r")
    proof = assertion(rt, alice, "drop-r", "alice@example.com", "approve")
    # Stale: made more than the rule's 2 minutes before it is used.
    import time

    late = stepup.check(rt, record, "alice@example.com", "approve", 120, proof,
                        now=time.time() + 121)
    assert isinstance(late, stepup.Refusal) and late.code is stepup.Code.STALE
    assert "within the last 120s" in late.message
    first = stepup.check(rt, record, "alice@example.com", "approve", 120, proof)
    assert isinstance(first, stepup.Proof)
    again = stepup.check(rt, record, "alice@example.com", "approve", 120, proof)
    assert isinstance(again, stepup.Refusal) and again.code is stepup.Code.REPLAYED
    # Through the vote path too: the consumed proof cannot decide the request.
    reply = vote(rt, "drop-r", "alice@example.com", "approve", proof)
    assert reply.code == "step_up_replayed" and "already used" in reply.message
    unchanged(rt, "drop-r")


def test_cloned_authenticator_sign_count(rt: Runtime) -> None:
    make_pending(rt, drop_body("drop-c1", "c1"), drop_body("drop-c2", "c2"))
    alice = enrol(rt, "alice@example.com")
    clone = alice.clone()
    assert vote(rt, "drop-c1", "alice@example.com", "approve",
                assertion(rt, alice, "drop-c1", "alice@example.com", "approve")).ok
    stored = passkeys.store(rt).list_for("alice@example.com")[0].sign_count
    assert stored == 1
    # The clone still counts from 0: its next signature says 1, not more than 1.
    reply = vote(rt, "drop-c2", "alice@example.com", "approve",
                 assertion(rt, clone, "drop-c2", "alice@example.com", "approve"))
    assert reply.code == "step_up_sign_count" and "copied" in reply.message
    unchanged(rt, "drop-c2")
    assert passkeys.store(rt).list_for("alice@example.com")[0].sign_count == 1


def test_enrolment_rules_and_removal(rt: Runtime) -> None:
    make_pending(rt, drop_body("drop-x"))
    # Without user verification the passkey is not accepted; a prompt answers once.
    device = SoftAuthenticator(ORIGIN, RP_ID, user_verified=False)
    ceremony, options = passkeys.begin_enrolment(rt, "alice@example.com")
    with pytest.raises(passkeys.PasskeyError, match="could not be verified"):
        passkeys.finish_enrolment(rt, "alice@example.com", ceremony,
                                  device.create(json.loads(options)))
    with pytest.raises(passkeys.PasskeyError, match="expired or was already used"):
        passkeys.finish_enrolment(rt, "alice@example.com", ceremony,
                                  device.create(json.loads(options)))
    # A prompt made for Alice cannot register a passkey for Bob.
    ceremony, options = passkeys.begin_enrolment(rt, "alice@example.com")
    with pytest.raises(passkeys.PasskeyError):
        passkeys.finish_enrolment(rt, "bob@example.com", ceremony,
                                  SoftAuthenticator(ORIGIN, RP_ID).create(json.loads(options)))
    assert passkeys.store(rt).list_for("alice@example.com") == []
    assert passkeys.store(rt).list_for("bob@example.com") == []

    first = enrol(rt, "alice@example.com", "laptop")
    # A second passkey needs a confirmation from one she has (a stolen session is not
    # enough): none, or one from someone else's passkey, is refused.
    bob = enrol(rt, "bob@example.com", "bob's key")
    for confirm_with, text in ((None, "confirm adding another"),
                               (bob, "your own passkeys")):
        with pytest.raises(passkeys.PasskeyError, match=text):
            enrol(rt, "alice@example.com", "phone", confirm_with=confirm_with)
    second = enrol(rt, "alice@example.com", "phone", confirm_with=first)
    enrolled = events(rt, name=Event.PASSKEY_ENROLLED.value)
    assert enrolled[-1].details["confirmed_with"] == passkeys.store(rt).list_for(
        "alice@example.com")[0].credential_id
    keys = passkeys.store(rt).list_for("alice@example.com")
    assert [k.name for k in keys] == ["laptop", "phone"]
    # The same credential cannot be registered twice (or by someone else).
    ceremony, raw = passkeys.begin_enrolment(rt, "bob@example.com")
    options = json.loads(raw)
    confirmation = bob.get(options.pop("confirm"))
    with pytest.raises(passkeys.PasskeyError, match="already registered"):
        passkeys.finish_enrolment(rt, "bob@example.com", ceremony, first.create(options),
                                  confirmation=confirmation)

    proof = assertion(rt, first, "drop-x", "alice@example.com", "approve")
    assert passkeys.remove(rt, "alice@example.com", keys[0].credential_id,
                           by="alice@example.com") is passkeys.Removal.REMOVED
    reply = vote(rt, "drop-x", "alice@example.com", "approve", proof)
    assert reply.code == "step_up_unknown_passkey"
    unchanged(rt, "drop-x")
    assert passkeys.revoke_all(rt, "alice@example.com", by="admin:cli", reason="lost") == 1
    removed = events(rt, name=Event.PASSKEY_REMOVED.value)
    assert [(e.actor, e.details["revoked"]) for e in removed] == [
        ("alice@example.com", False), ("admin:cli", True)]
    assert vote(rt, "drop-x", "alice@example.com", "approve",
                assertion_or_none(rt, second)).code == "step_up_no_passkey"


def assertion_or_none(rt: Runtime, device: SoftAuthenticator) -> Any:
    return None


def test_rule_without_step_up_is_unchanged(rt: Runtime) -> None:
    body = drop_body("read-1") | {"action": "db.read"}
    make_pending(rt, body)
    assert vote(rt, "read-1", "alice@example.com", "approve", channel="slack").ok


def test_one_proof_counts_once_under_racing_submissions(rt: Runtime) -> None:
    from concurrent.futures import ThreadPoolExecutor

    make_pending(rt, drop_body("drop-race"))
    alice = enrol(rt, "alice@example.com")
    proof = assertion(rt, alice, "drop-race", "alice@example.com", "approve")
    record = rt.store.get("drop-race")
    assert record is not None
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: stepup.check(rt, record, "alice@example.com",
                                                       "approve", 120, proof), range(8)))
    assert sum(isinstance(r, stepup.Proof) for r in results) == 1
    assert {r.code for r in results if isinstance(r, stepup.Refusal)} == {stepup.Code.REPLAYED}
    assert passkeys.store(rt).list_for("alice@example.com")[0].sign_count == 1


def test_without_a_public_address_step_up_fails_closed(rt: Runtime, redis_url: str,
                                                       tmp_path: Any, caplog: Any) -> None:
    from bot.slack import render
    from signoff.cardview.view import build_view
    from tests.conftest import make_settings
    from tests.stepup.conftest import POLICY

    make_pending(rt, drop_body("drop-n"))
    alice = enrol(rt, "alice@example.com")
    proof = assertion(rt, alice, "drop-n", "alice@example.com", "approve")
    bare = Runtime(make_settings(redis_url, tmp_path / "bare", policy_path=POLICY))
    try:
        with pytest.raises(passkeys.PasskeyError, match="SIGNOFF_PUBLIC_URL"):
            passkeys.begin_enrolment(bare, "bob@example.com")
        refused = lifecycle.step_up_options(bare, "drop-n", person(bare, "alice@example.com"),
                                            "approve")
        assert isinstance(refused, stepup.Refusal) and refused.code is stepup.Code.UNAVAILABLE
        reply = lifecycle.submit_vote(bare, "drop-n", person(bare, "alice@example.com"),
                                      "approve", step_up=proof)
        assert reply.code == "step_up_unavailable"
        unchanged(bare, "drop-n")
        # The web process says so once at start.
        from bot.app import create_app

        with caplog.at_level(logging.ERROR, logger="bot.inbox.passkeys"):
            create_app(bare)
        assert "rules prod-drop need a passkey" in caplog.text
        assert "SIGNOFF_PUBLIC_URL" in caplog.text
    finally:
        bare.close()
    # A card made without a public address has no buttons that could vote, and says why.
    record = rt.store.get("drop-n")
    assert record is not None
    view = build_view(record)
    from dataclasses import replace

    blocks = render.card_blocks(replace(view, step_up_url="/inbox/r/drop-n/step-up"),
                                b"k" * 32, now=0)
    actions = next(b for b in blocks if b["type"] == "actions")["elements"]
    assert [a["action_id"] for a in actions] == [render.DETAILS]
    assert "Decide it in the Signoff inbox" in json.dumps(blocks)
