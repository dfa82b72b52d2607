"""The Block Kit renderer is pure and owns Slack's limits: whatever the (masked) view holds,
Slack accepts the result, and nothing an agent wrote can turn into a ping or a link."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.commands import CommandKind, CommandResult
from bot.slack import render
from signoff import clicks
from signoff.cardview.view import CardView, VoteLine
from signoff.models import Status
from tests.conftest import ROOT
from tests.fakes.slack_api import block_errors, iter_blocks_text, view_errors

KEY = b"k" * 32
NOW = 1_800_000_000.0


def base_view(**over: Any) -> CardView:
    view = CardView(
        request_id="r-1", version=3, status=Status.PENDING, action="db.export",
        resource="warehouse.customers", requester="agent:export-bot",
        on_behalf_of="frank@example.com", environment="prod", reason="Churn analysis",
        context={"environment": "prod", "ticket": "OPS-1"},
        params={"table": "customers", "contact": "<EMAIL_1a2b3c>"},
        policy_rule="prod-data-export", policy_summary="prod-data-export — 2 of dba",
        quorum=2, group_needs={"dba": 2}, approvals=1, progress="2 of dba — 1 so far",
        masking_summary="6 fields masked", masked_count=6, payload_sha256="ab" * 32,
        created_at=NOW - 600, deadline=NOW + 3000, decided_at=None, decision_reason=None,
        votes=(VoteLine("alice@example.com", "approve", NOW - 60, None, "slack"),),
    )
    return replace(view, **over)


def mention(email: str) -> str | None:
    return {"alice@example.com": "U0ALICE", "bob@example.com": "U0BOB",
            "frank@example.com": "U0FRANK"}.get(email)


def texts(blocks: list[dict[str, Any]]) -> str:
    return "\n".join(iter_blocks_text(blocks))


def test_open_card_shows_what_an_approver_needs() -> None:
    card = render.render_card(base_view(), KEY, now=NOW, mention=mention)
    assert block_errors(card["blocks"]) == []
    body = texts(card["blocks"])
    for expected in ("db.export", "`agent:export-bot`", "<@U0FRANK>", "warehouse.customers",
                     ":rotating_light: prod", "`prod-data-export`", "2 of dba — 1 so far",
                     "6 fields masked", "Churn analysis", "&lt;EMAIL_1a2b3c&gt;",
                     "50 min left", "<!date^1800003000^{date_short_pretty} at {time}|",
                     "<@U0ALICE> approved"):
        assert expected in body, expected
    buttons = {b["action_id"]: b for b in card["blocks"][-1]["elements"]}
    assert set(buttons) == {render.APPROVE, render.DENY, render.DETAILS}
    assert buttons[render.APPROVE]["style"] == "primary" and "confirm" in buttons[render.APPROVE]
    assert buttons[render.DENY]["style"] == "danger"
    assert clicks.verify(KEY, buttons[render.DENY]["value"]).choice == "deny"
    assert card["text"].startswith("Approval needed: db.export")


def test_closed_cards_have_a_status_line_and_no_vote_buttons() -> None:
    approved = base_view(status=Status.APPROVED, decided_at=NOW, votes=(
        VoteLine("alice@example.com", "approve", NOW - 60, None, "slack"),
        VoteLine("bob@example.com", "approve", NOW - 5, None, "teams")))
    card = render.render_card(approved, KEY, now=NOW, mention=mention)
    assert ":white_check_mark: *Approved by <@U0ALICE>, <@U0BOB>* · <!date^1800000000^{time}|" \
        in texts(card["blocks"])
    ids = [e["action_id"] for b in card["blocks"] if b["type"] == "actions"
           for e in b["elements"]]
    assert ids == [render.DETAILS]
    expired = base_view(status=Status.TIMED_OUT, decided_at=NOW, votes=())
    assert "Expired — denied automatically" in texts(
        render.render_card(expired, KEY, now=NOW)["blocks"])
    denied = base_view(status=Status.DENIED, decided_at=NOW, votes=(
        VoteLine("carol@example.com", "deny", NOW, "Not <@U0BOSS> approved", "slack"),))
    body = texts(render.render_card(denied, KEY, now=NOW)["blocks"])
    assert "*Denied by carol@example.com*" in body and "Not &lt;@U0BOSS&gt; approved" in body


def test_agent_text_cannot_ping_or_link() -> None:
    evil = "<!channel> <!here> <@U0ADMIN> <https://evil.example|click me> & ```"
    view = base_view(reason=evil, resource=evil, action="db.export",
                     params={"note": evil}, context={"x": evil})
    for blocks in (render.render_card(view, KEY, now=NOW)["blocks"],
                   render.details_modal(view, now=NOW)["blocks"]):
        body = texts(blocks)
        for raw in ("<!channel>", "<!here>", "<@U0ADMIN>", "<https://evil"):
            assert raw not in body
        assert "&lt;!channel&gt;" in body


def test_huge_payload_is_truncated_on_the_card_and_whole_in_the_modal() -> None:
    params = {"rows": [{"i": i, "value": "v" * 50} for i in range(400)]}
    view = base_view(params=params)
    card = render.render_card(view, KEY, now=NOW)
    assert block_errors(card["blocks"]) == []
    payload = next(b for b in card["blocks"] if b.get("block_id", "").startswith("payload"))
    assert len(payload["text"]["text"]) <= render.SECTION_TEXT
    assert "use View details for the whole payload" in payload["text"]["text"]
    modal = render.details_modal(view, now=NOW)
    assert view_errors(modal) == []
    shown = texts(modal["blocks"])
    assert '"i": 399' in shown and "not shown" not in shown
    # Beyond what 100 blocks hold, the modal says how much it left out.
    enormous = base_view(params={"blob": ["x" * 2900] * 150})
    modal = render.details_modal(enormous, now=NOW)
    assert view_errors(modal) == [] and len(modal["blocks"]) == render.MODAL_BLOCKS
    assert "more characters are not shown" in texts(modal["blocks"])


def test_deny_modal_carries_the_signed_value() -> None:
    value = clicks.sign(KEY, "r-1", 3, "deny")
    modal = render.deny_modal(base_view(), value, "C0APPROVALS")
    assert view_errors(modal) == []
    assert json.loads(modal["private_metadata"]) == {"v": value, "c": "C0APPROVALS"}
    assert modal["blocks"][1]["block_id"] == render.REASON_BLOCK


def test_command_answers_fit_slack() -> None:
    items = tuple(base_view(request_id=f"r-{i}") for i in range(10))
    result = CommandResult(kind=CommandKind.PENDING, title="Waiting for your decision",
                           items=items, has_more=True, next_command="pending 2")
    msg = render.command_message(result, KEY, now=NOW, mention=mention)
    assert block_errors(msg["blocks"]) == []
    assert msg["blocks"][-1]["elements"][0]["value"] == "pending 2"


# --- property: any masked view renders to blocks Slack accepts ----------------------------
text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=600)
json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), text)
payloads = st.recursive(json_leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=6), st.dictionaries(text, kids, max_size=6)), max_leaves=60)
votes = st.lists(st.builds(VoteLine, person=st.emails(), choice=st.sampled_from(
    ["approve", "deny"]), at=st.floats(NOW - 1e5, NOW), comment=st.one_of(st.none(), text),
    channel=st.just("slack")), max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=st.sampled_from(list(Status)), action=st.text(min_size=1, max_size=400),
       resource=text, reason=text, params=payloads, votes=votes,
       rid=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", fullmatch=True),
       failures=st.lists(text, max_size=5), env=text, merged=st.integers(0, 5))
def test_any_view_renders_within_slack_limits(status: Status, action: str, resource: str,
                                              reason: str, params: Any,
                                              votes: list[VoteLine], rid: str,
                                              failures: list[str], env: str,
                                              merged: int) -> None:
    view = base_view(status=status, action=action, resource=resource, reason=reason,
                     params=params, votes=tuple(votes), request_id=rid,
                     notify_failures=tuple(failures), environment=env or None,
                     decided_at=None if status is Status.PENDING else NOW,
                     merged_count=merged)
    card = render.render_card(view, KEY, now=NOW, mention=mention)
    assert block_errors(card["blocks"]) == [], card
    assert len(card["text"]) <= render.FALLBACK_TEXT
    assert view_errors(render.details_modal(view, now=NOW, mention=mention)) == []
    assert view_errors(render.deny_modal(view, clicks.sign(KEY, rid, 1, "deny"), "C1")) == []
    for block in card["blocks"]:
        for el in block.get("elements", []) if block["type"] == "actions" else []:
            assert clicks.verify(KEY, el["value"]).request_id == rid


def test_cli_prints_the_slack_card_for_a_request(tmp_path: Any, monkeypatch: Any,
                                                  shared_masker: Any) -> None:
    from bot.cli import card

    monkeypatch.chdir(tmp_path)  # no .env from the repository
    request = {"id": "cli-1", "action": "db.export", "resource": "warehouse.customers",
               "params": {"contact": "jane.doe@example.org", "api_key": "sk_live_51Hx0000"},
               "requester": "agent:export-bot", "on_behalf_of": "frank@example.com",
               "reason": "Churn analysis", "context": {"environment": "prod"}}
    path = tmp_path / "req.json"
    path.write_text(json.dumps(request))
    policy = str(ROOT / "examples" / "policy.yaml")
    result = CliRunner().invoke(card, ["--channel", "slack", "--policy", policy, str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert block_errors(out["blocks"]) == []
    body = json.dumps(out, ensure_ascii=False)
    assert "jane.doe@example.org" not in body and "sk_live" not in body
    assert "2 of dba — 0 so far" in body and "<@U0FRANK>" in body
    # A request the policy would reject is explained, not rendered.
    path.write_text(json.dumps({**request, "reason": ""}))
    bad = CliRunner().invoke(card, ["--policy", policy, str(path)])
    assert bad.exit_code != 0 and "requires a reason" in bad.output
    path.write_text("{not json")
    assert "the request is invalid" in CliRunner().invoke(
        card, ["--policy", policy, str(path)]).output
