"""The pure Adaptive Card renderer: schema-valid cards, Teams' limits, no Markdown injection."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from functools import cache
from typing import Any

import jsonschema
import pytest

from bot.commands import CommandKind, CommandResult, help_result
from bot.teams.render import (
    MAX_CARD_BYTES,
    Notice,
    Tone,
    card_size,
    render_card,
    render_command,
    render_notice_card,
    time_left_text,
)
from signoff import clicks
from signoff.cardview.view import CardView, VoteLine, progress_text
from signoff.models import Status
from tests.conftest import DATA
from tests.teams.conftest import button_data, texts, verbs

KEY = b"render-test-key"
NOW = 1_717_408_800.0  # 2024-06-03 10:00 UTC


@cache
def validator(version: str) -> jsonschema.Draft6Validator:
    """The published Adaptive Card schema, allowing Teams' own ``msteams`` property."""
    path = DATA / "adaptivecards" / f"adaptive-card-{version}.json"
    schema = copy.deepcopy(json.loads(path.read_text()))
    schema["definitions"]["AdaptiveCard"]["properties"]["msteams"] = {
        "type": "object", "properties": {"width": {"enum": ["Full"]}},
        "additionalProperties": False}
    return jsonschema.Draft6Validator(schema)


def assert_valid(card: dict[str, Any]) -> None:
    for version in ("1.4.0", "1.5.0"):
        errors = sorted(validator(version).iter_errors(card), key=lambda e: list(e.path))
        assert not errors, f"{version}: {[(list(e.path), e.message[:200]) for e in errors[:5]]}"
    assert card["version"] == "1.4"
    assert card_size(card) <= MAX_CARD_BYTES


def make_view(**over: Any) -> CardView:
    values: dict[str, Any] = dict(
        request_id="r-42", version=3, status=Status.PENDING, action="db.export",
        resource="warehouse.customers", requester="agent:export-bot",
        on_behalf_of="frank@example.com", environment="prod",
        reason="quarterly revenue report", context={"environment": "prod", "ticket": "OPS-1"},
        params={"rows": 5000, "notify": "<EMAIL_1a2b3c>", "api_key": "[SECRET]"},
        policy_rule="prod-data-export", policy_summary="prod-data-export — 2 of dba",
        quorum=2, group_needs={"dba": 2}, approvals=1,
        progress=progress_text(2, {"dba": 2}, 1), masking_summary="2 fields masked",
        masked_count=2, payload_sha256="ab" * 32, created_at=NOW - 600, deadline=NOW + 3000,
        decided_at=None, decision_reason=None,
        votes=(VoteLine("alice@example.com", "approve", NOW - 60, None, "teams"),),
        require_deny_comment=True,
    )
    values.update(over)
    return CardView(**values)


def test_posted_card_has_no_buttons_and_a_signed_refresh() -> None:
    card = render_card(make_view(), KEY, now=NOW)
    assert_valid(card)
    assert verbs(card) == []
    refresh = card["refresh"]["action"]
    assert refresh["type"] == "Action.Execute" and refresh["verb"] == "refresh"
    assert clicks.verify(KEY, refresh["data"]).request_id == "r-42"
    assert "userIds" not in card["refresh"]  # Teams refreshes for everyone up to 60 members
    text = texts(card)
    for fact in ("agent:export-bot", "frank@example.com", "quarterly revenue report",
                 "2 of dba — 1 so far", "50 min left", "alice@example.com", "Show details"):
        assert fact in text
    details = next(b for b in card["body"] if b.get("id") == "signoff-details")
    assert details["isVisible"] is False and "[SECRET]" in texts(details)


def test_decider_gets_signed_approve_and_deny_with_a_reason_box() -> None:
    card = render_card(make_view(), KEY, viewer_can_decide=True, now=NOW)
    assert_valid(card)
    assert verbs(card) == ["approve", "deny"]
    for verb in ("approve", "deny"):
        click = clicks.verify(KEY, button_data(card, verb))
        assert (click.request_id, click.version, click.choice) == ("r-42", 3, verb)
    box = next(b for b in card["body"] if b.get("type") == "Input.Text")
    assert box["id"] == "comment" and "required to deny" in box["label"]
    optional = render_card(make_view(require_deny_comment=False), KEY, viewer_can_decide=True,
                           now=NOW)
    assert "optional" in texts(optional).lower()


def test_non_decider_sees_no_buttons_and_the_notice() -> None:
    notice = Notice("You requested this action; someone else must decide it.", Tone.INFO)
    card = render_card(make_view(), KEY, viewer_can_decide=False, notice=notice, now=NOW)
    assert_valid(card)
    assert verbs(card) == [] and "someone else must decide" in texts(card)
    assert not any(b.get("type") == "Input.Text" for b in card["body"])


@pytest.mark.parametrize("status,line", [
    (Status.APPROVED, "Approved by alice@example.com, bob@example.com"),
    (Status.DENIED, "Denied by bob@example.com · 10:05 UTC: not this quarter"),
    (Status.TIMED_OUT, "Expired — denied automatically"),
])
def test_final_card_has_no_buttons_no_refresh_and_says_who_and_when(status: Status,
                                                                   line: str) -> None:
    votes = (VoteLine("alice@example.com", "approve", NOW, None, "teams"),
             VoteLine("bob@example.com", "approve" if status is Status.APPROVED else "deny",
                      NOW + 300, None if status is Status.APPROVED else "not this quarter",
                      "slack"))
    view = make_view(status=status, decided_at=NOW + 300,
                     votes=votes if status is not Status.TIMED_OUT else ())
    for can in (None, True, False):
        card = render_card(view, KEY, viewer_can_decide=can, now=NOW + 400)
        if can is None:
            assert_valid(card)
        assert "refresh" not in card and verbs(card) == []
        assert line in texts(card)
        assert "{{DATE(2024-06-03T10:05:00Z, SHORT)}}" in texts(card)


def test_agent_text_is_never_markdown() -> None:
    evil = "[Approved by security](https://evil.example) **URGENT**"
    view = make_view(reason=evil, resource=evil, requester=evil,
                     context={"x](http://e)": evil}, votes=(VoteLine(
                         "bob@example.com", "deny", NOW, evil, "teams"),))
    card = render_card(view, KEY, viewer_can_decide=True, now=NOW)
    assert_valid(card)

    def markdown_texts(node: Any) -> list[str]:
        found = []
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                found.append(node["text"])
            for value in node.values():
                found += markdown_texts(value)
        elif isinstance(node, list):
            for value in node:
                found += markdown_texts(value)
        return found

    md = markdown_texts(card)
    assert md and not any("evil" in t or "](" in t for t in md)
    assert texts(card).count(evil) >= 4  # still shown, as plain text runs


def test_huge_payloads_are_cut_to_fit_teams() -> None:
    params = {f"field_{i}": "x" * 500 for i in range(200)}
    context = {f"k{i}": "v" * 400 for i in range(60)}
    votes = tuple(VoteLine(f"p{i}@example.com", "approve", NOW, "c" * 400, "teams")
                  for i in range(40))
    view = make_view(params=params, context=context, votes=votes, reason="r" * 4000,
                     notify_failures=tuple(f"slack:#c{i}: " + "e" * 500 for i in range(9)))
    card = render_card(view, KEY, viewer_can_decide=True, now=NOW)
    assert_valid(card)
    text = texts(card)
    assert "more characters not shown" in text and "… and" in text
    assert verbs(card) == ["approve", "deny"]  # cutting never removes the decision
    assert card_size(render_card(make_view(), KEY, now=NOW)) < 8000


def test_absurd_payloads_fall_back_to_a_minimal_card() -> None:
    view = make_view(notify_failures=tuple("f" * 300 for _ in range(5)),
                     masking_summary="m" * 30_000)
    card = render_card(view, KEY, viewer_can_decide=True, now=NOW)
    assert_valid(card)
    assert "too large to show in Teams" in texts(card) and verbs(card) == ["approve", "deny"]


def test_merged_requests_show_how_many_one_click_decides() -> None:
    card = render_card(make_view(merged_count=2), KEY, now=NOW)
    assert_valid(card)
    assert "db.export ×3" in texts(card) and "3 identical requests" in texts(card)
    assert "identical" not in texts(render_card(make_view(), KEY, now=NOW))


def test_time_left_text() -> None:
    assert time_left_text(0) == "deadline passed"
    assert time_left_text(30) == "less than a minute left"
    assert time_left_text(45 * 60) == "45 min left"
    assert time_left_text(3900) == "1 h 5 min left"
    assert time_left_text(3 * 86400) == "3 days left"


def test_notice_and_command_cards_are_valid() -> None:
    assert_valid(render_notice_card("Button not valid", "nothing was recorded"))
    helped = render_command(help_result("Unknown command 'x'."), KEY,
                            footer="Conversation id: 19:x@thread.tacv2", now=NOW)
    assert_valid(helped)
    assert "status <request-id>" in texts(helped) and "Unknown command" in texts(helped)
    listing = CommandResult(kind=CommandKind.PENDING, title="Waiting for your decision",
                            items=(make_view(), make_view(request_id="r-43",
                                                          status=Status.APPROVED,
                                                          decided_at=NOW)),
                            has_more=True, next_command="pending 2")
    card = render_command(listing, KEY, now=NOW)
    assert_valid(card)
    assert "r-43" in texts(card) and "pending 2" in texts(card)
    empty = replace(listing, items=(), has_more=False, next_command=None,
                    empty_text="Nothing is waiting for you.")
    assert "Nothing is waiting" in texts(render_command(empty, KEY, now=NOW))
    status = CommandResult(kind=CommandKind.STATUS, title="Request r-42", view=make_view(),
                           decidable=True)
    assert verbs(render_command(status, KEY, viewer_can_decide=True, now=NOW)) == [
        "approve", "deny"]
