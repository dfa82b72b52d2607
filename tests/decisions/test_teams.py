"""Teams over real HTTP (signed Bot Framework activities against the fake connector): edit
the rule's editable params in the card's Input fields and approve the edited version (outside
the bounds refused with the reason); a digest card's Approve all I may decide and Deny all go
through submit_vote for each listed request, never one the person may not decide."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.teams.messenger import digest_activity
from bot.teams.render import VERB_DIGEST_APPROVE, VERB_DIGEST_DENY, VERB_EDIT
from signoff import batch
from signoff.cardview.view import build_view
from signoff.models import Status
from signoff.runtime import Runtime, set_current
from tests.decisions.conftest import POLICY, export, make_pending
from tests.fakes.teams_connector import FakeBotFramework
from tests.teams.conftest import (
    APP_ID,
    APP_PASSWORD,
    TeamsClient,
    WebServer,
    button_data,
    card_of,
    teams_settings,
    texts,
    verbs,
)


@pytest.fixture(scope="module")
def bf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeBotFramework]:
    fake = FakeBotFramework(tmp_path_factory.mktemp("bf"), APP_ID, APP_PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture
def trt(redis_url: str, tmp_path: Path, bf: FakeBotFramework,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    from workers import jobs

    bf.reset()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bf.ca_path))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.read_text())
    runtime = Runtime(teams_settings(redis_url, tmp_path / "data", bf, policy,
                                     public_url="http://localhost:8765"))
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


@pytest.fixture
def teams(bf: FakeBotFramework, trt: Runtime) -> Iterator[TeamsClient]:
    server = WebServer(trt).start()
    yield TeamsClient(bf, server)
    server.stop()


def card_for(rt: Runtime, rid: str) -> dict:
    """The card as the fake would show it before any viewer refreshes (its refresh data)."""
    from bot.teams.render import render_card

    record = rt.store.get(rid)
    assert record is not None
    return render_card(build_view(record), rt.hmac_key)


def test_edit_in_the_teams_card_within_bounds(trt: Runtime, teams: TeamsClient) -> None:
    make_pending(trt, export("te-1", params={"rows": 50000, "format": "csv"}))
    base = card_for(trt, "te-1")
    alice = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], "alice"))
    assert verbs(alice) == ["approve", "deny", VERB_EDIT]
    inputs = [b for b in alice["body"] if b.get("type") == "Input.Text"
              and b["id"].startswith("edit.")]
    assert [(i["id"], i["value"]) for i in inputs] == [("edit.rows", "50000")]
    data = button_data(alice, VERB_EDIT)
    refused = card_of(teams.invoke(VERB_EDIT, {**data, "edit.rows": "20000"}, "alice"))
    assert "maximum of 10000" in texts(refused)
    assert trt.store.get("te-1").get("original_payload_sha256") is None  # type: ignore[union-attr]
    done = card_of(teams.invoke(VERB_EDIT, {**data, "edit.rows": "9000"}, "alice"))
    assert "Edited and approved" in texts(done)
    record = trt.store.get("te-1")
    assert record is not None and list(record.votes) == ["alice@example.com"]
    assert record.json("edits")[0]["channel"] == "teams"
    # Bob's card was drawn before the edit: its Approve is stale and records nothing.
    stale = card_of(teams.invoke("approve", button_data(alice, "approve"), "bob"))
    assert "edited after you saw it" in texts(stale)
    assert list(trt.store.get("te-1").votes) == ["alice@example.com"]  # type: ignore[union-attr]


def test_teams_digest_buttons(trt: Runtime, teams: TeamsClient) -> None:
    bodies = [export(f"td-{n}", params={"rows": n, "format": "csv"}) for n in range(1, 7)]
    bodies[-1]["on_behalf_of"] = "alice@example.com"
    bodies.append({"id": "td-drop", "action": "db.drop", "resource": "prod.orders",
                   "params": {}, "requester": "agent:etl-bot",
                   "on_behalf_of": "erin@example.com", "context": {"environment": "prod"}})
    make_pending(trt, *bodies)
    ids = [b["id"] for b in bodies]
    # The digest the delivery loop would have made for this destination.
    digest = trt.cards.new_digest("teams:approvals", time.time())
    digest.ids = ids
    trt.cards.save_digest(digest, still_open=False, open_for=0)
    views = [build_view(trt.store.get(rid)) for rid in ids]  # type: ignore[arg-type]
    target = batch.digest_target("teams:approvals", digest.id)
    activity = digest_activity(views, key=trt.hmac_key, target=target,
                               inbox="http://localhost:8765/inbox")
    card = activity.attachments[0].content
    assert "6 × db.export from agent:etl-bot" in texts(card)
    assert [a["title"] for a in card["actions"]] == ["Review each", "Approve all I may decide",
                                                     "Deny all"]
    approve = button_data(card, VERB_DIGEST_APPROVE)
    # A forged count (more than the card listed) fails Signoff's signature.
    forged = card_of(teams.invoke(VERB_DIGEST_APPROVE, {**approve, "v": 99}, "alice"))
    assert "not valid" in texts(forged).lower() or "Button" in texts(forged)
    # A digest verb on a single request's signed button is refused.
    one = button_data(card_of(teams.invoke("refresh", card_for(trt, "td-1")["refresh"][
        "action"]["data"], "alice")), "approve")
    assert "not valid" in texts(card_of(teams.invoke(VERB_DIGEST_APPROVE, one, "alice"))).lower()
    assert not trt.store.get("td-1").votes  # type: ignore[union-attr]
    answer = card_of(teams.invoke(VERB_DIGEST_APPROVE, approve, "alice"))
    said = texts(answer)
    assert "5 of 7 went through" in said, said
    assert "td-6: This action is being done on your behalf" in said
    assert "td-drop: Needs a passkey" in said
    for rid in ids:
        votes = trt.store.get(rid).votes  # type: ignore[union-attr]
        assert list(votes) == ([] if rid in ("td-6", "td-drop") else ["alice@example.com"])
    deny = button_data(card, VERB_DIGEST_DENY)
    card_of(teams.invoke(VERB_DIGEST_DENY, deny, "bob", comment="Too many rows"))
    for rid in ids:  # a passkey request is not even denied without a passkey
        want = Status.PENDING if rid == "td-drop" else Status.DENIED
        assert trt.store.get(rid).status is want, rid  # type: ignore[union-attr]
    assert json.dumps(card).count("td-") >= 7


def test_deny_with_a_preset_reason_in_teams(trt: Runtime, teams: TeamsClient) -> None:
    make_pending(trt, export("tp-1"))
    base = card_for(trt, "tp-1")
    alice = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], "alice"))
    [choice] = [b for b in alice["body"] if b.get("id") == "preset"]
    assert [c["value"] for c in choice["choices"]] == ["Too many rows", "Wrong environment",
                                                       "Not during a freeze"]
    done = card_of(teams.invoke("deny", {**button_data(alice, "deny"),
                                         "preset": "Not during a freeze"}, "alice"))
    assert "Denied" in texts(done)
    record = trt.store.get("tp-1")
    assert record is not None and record.status is Status.DENIED
    assert [v.comment for v in record.votes.values()] == ["Not during a freeze"]


def test_approve_for_a_while_in_teams(trt: Runtime, teams: TeamsClient) -> None:
    make_pending(trt, export("tw-1"))
    base = card_for(trt, "tw-1")
    for who, window in (("alice", "3600"), ("bob", "14400")):
        card = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], who))
        [choice] = [b for b in card["body"] if b.get("id") == "standing"]
        assert [c["value"] for c in choice["choices"]] == ["", "900", "3600", "14400"]
        card_of(teams.invoke("approve", {**button_data(card, "approve"), "standing": window},
                             who))
    from tests.conftest import run_jobs

    run_jobs(trt)
    assert trt.store.get("tw-1").status is Status.APPROVED  # type: ignore[union-attr]
    assert make_pending(trt, export("tw-2")) == ["approved"]
    record = trt.store.get("tw-2")
    assert record is not None and record.get("standing_id")
