"""Adaptive Cards for Teams, rendered by pure functions from the channel-neutral view model.

Everything here is pure (no I/O; time is passed in) and owns Teams' limits: the card stays
under the size Teams accepts for a bot message, long values are cut with a note, and the
lists are bounded. Cards use schema 1.4 (Universal Actions: ``Action.Execute`` and
``refresh``), which every current Teams client renders.

Untrusted text (anything an agent sent, even masked: resource, reason, params, context,
requester, vote comments) is only ever placed in ``TextRun`` inlines, which Adaptive Cards
never interpret as Markdown, so an agent cannot plant links or fake emphasis on an approval
card. ``TextBlock`` (Markdown, date/time functions) carries only text Signoff writes itself.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from bot.commands import CommandKind
from signoff import clicks
from signoff.cardview.view import CardView, VoteLine
from signoff.models import Status
from signoff.standing import window_choices, window_label

if TYPE_CHECKING:
    from bot.commands import CommandResult

CARD_VERSION = "1.4"
SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"
CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"

# Teams refuses bot messages over about 28 KB (the whole activity); the card keeps a margin
# for the envelope (ids, conversation, channelData).
MAX_CARD_BYTES = 24_000
MAX_PARAMS_CHARS = 6_000
MAX_TEXT_CHARS = 1_000
MAX_CONTEXT_ENTRIES = 15
MAX_CONTEXT_VALUE_CHARS = 300
MAX_VOTES_SHOWN = 20
MAX_FAILURES_SHOWN = 5
MAX_LIST_ITEMS = 10
MAX_COMMENT_CHARS = 500

DETAILS_ID = "signoff-details"
COMMENT_INPUT_ID = "comment"
PRESET_INPUT_ID = "preset"
STANDING_INPUT_ID = "standing"

VERB_APPROVE = "approve"
VERB_DENY = "deny"
VERB_REFRESH = "refresh"
VERB_EDIT = "edit"  # edit the editable params (Input.Text edit.<name>) and approve
EDIT_INPUT_PREFIX = "edit."
VERB_DIGEST_APPROVE = "digest_approve"  # "Approve all I may decide" on a digest card
VERB_DIGEST_DENY = "digest_deny"

REFRESH_HINT = (
    "Approvers see Approve and Deny on this card. If you should and do not, "
    "choose More options (…), then Refresh, on this message."
)


class Tone(str, Enum):
    """How a notice on a card looks."""

    INFO = "emphasis"
    GOOD = "good"
    BAD = "attention"


@dataclass(frozen=True)
class Notice:
    """A short message shown at the top of a card (why a click was refused, what happened)."""

    text: str
    tone: Tone = Tone.INFO


_STATUS_STYLE = {
    Status.RECEIVED: "emphasis",
    Status.PENDING: "emphasis",
    Status.APPROVED: "good",
    Status.DENIED: "attention",
    Status.TIMED_OUT: "attention",
    Status.CANCELLED: "default",
    Status.REJECTED: "attention",
}

_TITLE = {
    Status.RECEIVED: "Approval request (being prepared)",
    Status.PENDING: "Approval needed",
    Status.APPROVED: "Approved",
    Status.DENIED: "Denied",
    Status.TIMED_OUT: "Expired",
    Status.CANCELLED: "Cancelled",
    Status.REJECTED: "Rejected",
}


# --------------------------------------------------------------------------------------------
# small builders
# --------------------------------------------------------------------------------------------
def clip(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, saying how much was cut."""
    if len(text) <= limit:
        return text
    cut = len(text) - limit
    return text[:limit] + f" … ({cut} more characters not shown)"


def _run(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextRun", "text": text, **style}


def _rich(*runs: dict[str, Any], **props: Any) -> dict[str, Any]:
    return {"type": "RichTextBlock", "inlines": list(runs), **props}


def _text(text: str, **props: Any) -> dict[str, Any]:
    """A TextBlock: only for text Signoff writes itself (it is Markdown)."""
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


def _row(title: str, value: dict[str, Any]) -> dict[str, Any]:
    """One fact as two columns: a trusted title and a value element."""
    return {
        "type": "ColumnSet",
        "spacing": "Small",
        "columns": [
            {"type": "Column", "width": 2,
             "items": [_text(title, weight="Bolder", isSubtle=True)]},
            {"type": "Column", "width": 5, "items": [value]},
        ],
    }


def _plain_row(title: str, value: str, **style: Any) -> dict[str, Any]:
    return _row(title, _rich(_run(value, **style)))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hhmm(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M UTC")


def time_left_text(seconds: int) -> str:
    """``"1 h 5 min left"``, ``"45 min left"``, ``"less than a minute left"``."""
    if seconds <= 0:
        return "deadline passed"
    if seconds < 60:
        return "less than a minute left"
    minutes = seconds // 60
    hours, minutes = divmod(minutes, 60)
    if hours >= 48:
        return f"{hours // 24} days left"
    if hours:
        return f"{hours} h {minutes} min left" if minutes else f"{hours} h left"
    return f"{minutes} min left"


def _deadline_block(view: CardView, now: float) -> dict[str, Any]:
    left = view.seconds_left(now)
    iso = _iso(view.deadline)
    # Adaptive Cards' DATE/TIME functions show the deadline in each viewer's own time zone.
    when = f"{{{{TIME({iso})}}}}"
    if left > 20 * 3600:
        when = f"{{{{DATE({iso}, SHORT)}}}} {when}"
    return _text(f"{time_left_text(left)} (until {when})")


def _value_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# --------------------------------------------------------------------------------------------
# the request card
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Budget:
    """How much of the variable content a card may carry (shrunk until the card fits)."""

    params_chars: int = MAX_PARAMS_CHARS
    text_chars: int = MAX_TEXT_CHARS
    context_entries: int = MAX_CONTEXT_ENTRIES
    votes: int = MAX_VOTES_SHOWN


_BUDGETS = (
    _Budget(),
    _Budget(params_chars=2_000, text_chars=600, context_entries=8, votes=10),
    _Budget(params_chars=400, text_chars=300, context_entries=3, votes=5),
    _Budget(params_chars=0, text_chars=150, context_entries=0, votes=3),
)


def render_card(view: CardView, hmac_key: bytes, *, viewer_can_decide: bool | None = None,
                notice: Notice | None = None, now: float | None = None) -> dict[str, Any]:
    """The Adaptive Card for one request.

    Args:
        view: the masked, channel-neutral view.
        hmac_key: Signoff's button key; every ``Action.Execute`` carries
            :func:`signoff.clicks.sign_dict` data for this request and version.
        viewer_can_decide: ``None`` for the card posted to a conversation (everyone sees it:
            no buttons, and a ``refresh`` so each viewer's client asks for their own view);
            ``True`` for a viewer who may vote now (comment box, Approve and Deny);
            ``False`` for a viewer who may not (no buttons).
        notice: a message shown on top (why a click was refused, what was recorded).
        now: the time to compute "time left" from (defaults to the clock).

    Returns:
        The card as a JSON-ready dict, at most :data:`MAX_CARD_BYTES` when serialized.
    """
    now = time.time() if now is None else now
    card: dict[str, Any] = {}
    for budget in _BUDGETS:
        card = _card(view, hmac_key, viewer_can_decide, notice, now, budget)
        if card_size(card) <= MAX_CARD_BYTES:
            return card
    # Even the smallest budget is too big (only possible with huge notices or failures):
    # send the essentials and point to the other channels.
    return _minimal_card(view, hmac_key, viewer_can_decide, now)


def card_size(card: dict[str, Any]) -> int:
    """Serialized size in bytes, as Teams counts it."""
    return len(json.dumps(card, ensure_ascii=False, separators=(",", ":")).encode())


def _card(view: CardView, key: bytes, can: bool | None, notice: Notice | None, now: float,
          budget: _Budget) -> dict[str, Any]:
    body: list[dict[str, Any]] = [_header(view, budget)]
    if notice is not None:
        body.append(_notice(notice, budget))
    body.extend(_facts(view, now, budget))
    if view.votes:
        body.append(_votes(view.votes, budget))
    if view.notify_failures:
        body.append(_failures(view.notify_failures))
    body.append(_details(view, budget))
    actions: list[dict[str, Any]] = [
        {"type": "Action.ToggleVisibility", "title": "Show details",
         "targetElements": [DETAILS_ID]},
    ]
    if view.open:
        if view.step_up:
            body.append(_text(STEP_UP_TEXT if view.step_up_link("approve") else
                              STEP_UP_TEXT_NO_LINK, weight="Bolder"))
        if can is True:
            if not view.step_up:
                if view.deny_reasons:  # the policy's preset reasons for denying
                    body.append({"type": "Input.ChoiceSet", "id": PRESET_INPUT_ID,
                                 "label": "Reason for denying", "style": "compact",
                                 "placeholder": "Pick one, or write below",
                                 "choices": [{"title": clip(r, 100), "value": clip(r, 200)}
                                             for r in view.deny_reasons[:20]]})
                body.append(_comment_input(view))
                if view.standing_max:  # approve, and the same request again for a while
                    body.append({"type": "Input.ChoiceSet", "id": STANDING_INPUT_ID,
                                 "label": "Approve", "style": "compact", "value": "",
                                 "choices": [{"title": "this request only", "value": ""}] + [
                                     {"title": "and the same again for " + window_label(w),
                                      "value": str(w)}
                                     for w in window_choices(view.standing_max)]})
                if view.editable:
                    body.extend(_edit_inputs(view))
            actions = _vote_actions(view, key) + actions
        elif can is None:
            body.append(_text(REFRESH_HINT, isSubtle=True, size="Small"))
    card = _envelope(view)
    if view.open:
        card["refresh"] = refresh_block(view, key)
    card["body"] = body
    card["actions"] = actions
    return card


def _envelope(view: CardView) -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": SCHEMA_URL,
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        # Shown by clients that cannot render the card; ids and actions are pattern-checked.
        "fallbackText": f"Signoff request {view.request_id} ({view.title}): "
                        f"{view.status_text}",
    }


def refresh_block(view: CardView, key: bytes) -> dict[str, Any]:
    """``refresh``: each viewer's client asks the bot for their own view of the card.

    No ``userIds``: Teams then refreshes automatically for everyone in conversations of up
    to 60 members, and offers Refresh in the message menu elsewhere.
    """
    return {
        "action": {
            "type": "Action.Execute",
            "title": "Refresh",
            "verb": VERB_REFRESH,
            "data": clicks.sign_dict(key, view.request_id, view.version, "details"),
        },
    }


def _header(view: CardView, budget: _Budget) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        _text(_TITLE[view.status], size="Large", weight="Bolder"),
        _rich(_run(view.title, weight="Bolder", fontType="Monospace"),
              _run(" on "), _run(clip(view.resource, budget.text_chars), weight="Bolder")),
    ]
    if view.merged_count:
        items.append(_text(f"One decision for {view.repeats} identical requests from this "
                           "agent: each gets its own reply and grant.", isSubtle=True))
    if not view.open:
        items.append(_rich(_run(clip(view.final_line(), budget.text_chars))))
    return {"type": "Container", "style": _STATUS_STYLE[view.status], "bleed": True,
            "items": items}


def _notice(notice: Notice, budget: _Budget) -> dict[str, Any]:
    return {"type": "Container", "style": notice.tone.value,
            "items": [_rich(_run(clip(notice.text, budget.text_chars), weight="Bolder"))]}


def _facts(view: CardView, now: float, budget: _Budget) -> list[dict[str, Any]]:
    rows = [_plain_row("Requested by", view.requester)]
    if view.on_behalf_of:
        rows.append(_plain_row("On behalf of", view.on_behalf_of))
    if view.environment:
        rows.append(_plain_row("Environment", view.environment))
    if view.reason:
        rows.append(_plain_row("Reason", clip(view.reason, budget.text_chars)))
    policy = view.policy_summary or view.policy_rule or "default"
    rows.append(_plain_row("Policy", clip(policy, budget.text_chars)))
    rows.append(_plain_row("Approvals", view.progress))
    if view.open:
        rows.append(_row("Time left", _deadline_block(view, now)))
    elif view.decided_at:
        rows.append(_row("Decided", _text(f"{{{{DATE({_iso(view.decided_at)}, SHORT)}}}} "
                                          f"{{{{TIME({_iso(view.decided_at)})}}}}")))
    rows.append(_plain_row("Request", view.request_id, fontType="Monospace"))
    return rows


def _vote_line(vote: VoteLine, budget: _Budget) -> dict[str, Any]:
    mark = "✅" if vote.choice == "approve" else "❌"
    verb = "approved" if vote.choice == "approve" else "denied"
    runs = [_run(f"{mark} "), _run(vote.person, weight="Bolder"),
            _run(f" {verb} · {_hhmm(vote.at)} · {vote.channel}", isSubtle=True)]
    if vote.comment:
        runs.append(_run(": " + clip(vote.comment, min(budget.text_chars, MAX_COMMENT_CHARS))))
    return _rich(*runs, spacing="Small")


def _votes(votes: tuple[VoteLine, ...], budget: _Budget) -> dict[str, Any]:
    items: list[dict[str, Any]] = [_text("Votes", weight="Bolder")]
    items += [_vote_line(v, budget) for v in votes[: budget.votes]]
    if len(votes) > budget.votes:
        items.append(_text(f"… and {len(votes) - budget.votes} more", isSubtle=True))
    return {"type": "Container", "separator": True, "items": items}


def _failures(failures: tuple[str, ...]) -> dict[str, Any]:
    items: list[dict[str, Any]] = [_text("Not delivered everywhere", weight="Bolder")]
    items += [_rich(_run(clip(f, 300)), spacing="Small") for f in failures[:MAX_FAILURES_SHOWN]]
    if len(failures) > MAX_FAILURES_SHOWN:
        items.append(_text(f"… and {len(failures) - MAX_FAILURES_SHOWN} more", isSubtle=True))
    return {"type": "Container", "style": "warning", "items": items}


def _details(view: CardView, budget: _Budget) -> dict[str, Any]:
    items: list[dict[str, Any]] = [
        _plain_row("Masked", view.masking_summary),
    ]
    if budget.params_chars:
        items.append(_text("Parameters (masked)", weight="Bolder"))
        items.append(_rich(_run(clip(view.params_json(), budget.params_chars),
                                fontType="Monospace", size="Small")))
    else:
        items.append(_text("Parameters are too large for a Teams card; see them in the web "
                           "inbox.", isSubtle=True))
    entries = sorted(view.context.items())
    for name, value in entries[: budget.context_entries]:
        items.append(_row(f"context.{_safe_label(name)}",
                          _rich(_run(clip(_value_text(value), MAX_CONTEXT_VALUE_CHARS)))))
    if len(entries) > budget.context_entries:
        items.append(_text(f"… and {len(entries) - budget.context_entries} more context "
                           "entries", isSubtle=True))
    items.append(_plain_row("Payload SHA-256", view.payload_sha256, fontType="Monospace",
                            size="Small"))
    return {"type": "Container", "id": DETAILS_ID, "isVisible": False, "separator": True,
            "items": items}


def _safe_label(name: str) -> str:
    """A context key for a (Markdown) title: letters, digits and ``._-`` only (no link
    syntax), bounded."""
    kept = "".join(c if c.isalnum() or c in "-._" else "-" for c in str(name))[:40]
    return kept or "-"


def _comment_input(view: CardView) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "Input.Text",
        "id": COMMENT_INPUT_ID,
        "isMultiline": True,
        "maxLength": MAX_COMMENT_CHARS,
    }
    if view.require_deny_comment:
        element["label"] = "Reason for denying (required to deny)"
        element["placeholder"] = "Why is this denied?"
    else:
        element["label"] = "Comment (optional)"
        element["placeholder"] = "Add a comment to your vote"
    return element


STEP_UP_TEXT = ("🔐 This request needs a passkey: a click in Teams is not enough. The buttons "
                "open the Signoff inbox, where you confirm your vote with your passkey.")
STEP_UP_TEXT_NO_LINK = ("🔐 This request needs a passkey: a click in Teams is not enough. "
                        "Decide it in the Signoff inbox, where you confirm your vote with "
                        "your passkey.")


def _edit_inputs(view: CardView) -> list[dict[str, Any]]:
    """An ``Input.Text`` per editable param (``edit.<name>``), its bounds in the label; sent
    with *Edit and approve* (signoff.edits checks them)."""
    params = view.params if isinstance(view.params, dict) else {}
    out: list[dict[str, Any]] = []
    for name, bounds in list(view.editable.items())[:10]:
        current = params.get(name)
        out.append({"type": "Input.Text", "id": EDIT_INPUT_PREFIX + name,
                    "label": clip(f"{name} (allowed: {json.dumps(bounds, sort_keys=True)})",
                                  200),
                    "value": "" if current is None else clip(
                        current if isinstance(current, str) else json.dumps(current), 2000),
                    "maxLength": 2000})
    return out


def _vote_actions(view: CardView, key: bytes) -> list[dict[str, Any]]:
    rid, version = view.request_id, view.version
    if view.step_up:  # a passkey proves who votes: the buttons open the inbox's step-up page
        return [{"type": "Action.OpenUrl", "title": title, "url": view.step_up_link(choice)}
                for title, choice in (("Approve with passkey", "approve"),
                                      ("Deny with passkey", "deny"))
                if view.step_up_link(choice)]
    return [
        {"type": "Action.Execute", "title": "Approve", "verb": VERB_APPROVE,
         "style": "positive", "associatedInputs": "Auto",
         "data": clicks.sign_dict(key, rid, version, "approve")},
        {"type": "Action.Execute", "title": "Deny", "verb": VERB_DENY,
         "style": "destructive", "associatedInputs": "Auto",
         "data": clicks.sign_dict(key, rid, version, "deny")},
    ] + ([{"type": "Action.Execute", "title": "Edit and approve", "verb": VERB_EDIT,
           "associatedInputs": "Auto",
           "data": clicks.sign_dict(key, rid, version, "approve")}] if view.editable else [])


def _minimal_card(view: CardView, key: bytes, can: bool | None, now: float
                  ) -> dict[str, Any]:
    body: list[dict[str, Any]] = [
        _text(_TITLE[view.status], size="Large", weight="Bolder"),
        _rich(_run(view.title, fontType="Monospace"), _run(f" · {view.request_id}")),
        _rich(_run(view.progress if view.open else clip(view.final_line(), 200))),
        _text("This request is too large to show in Teams; open it in the web inbox.",
              isSubtle=True),
    ]
    actions: list[dict[str, Any]] = []
    if view.open:
        body.append(_deadline_block(view, now))
        if can is True:
            body.append(_comment_input(view))
            actions = _vote_actions(view, key)
    card = _envelope(view)
    if view.open:
        card["refresh"] = refresh_block(view, key)
    card["body"] = body
    card["actions"] = actions
    return card


# --------------------------------------------------------------------------------------------
# standalone notices and command answers
# --------------------------------------------------------------------------------------------
def render_notice_card(title: str, text: str, tone: Tone = Tone.BAD) -> dict[str, Any]:
    """A small card that only says something (a refused click on an unknown request)."""
    return {
        "type": "AdaptiveCard", "$schema": SCHEMA_URL, "version": CARD_VERSION,
        "fallbackText": title,
        "body": [{"type": "Container", "style": tone.value,
                  "items": [_text(title, weight="Bolder"),
                            _rich(_run(clip(text, MAX_TEXT_CHARS)))]}],
    }


def _list_item(view: CardView, now: float) -> dict[str, Any]:
    state = (f"{view.progress} · {time_left_text(view.seconds_left(now))}" if view.open
             else view.final_line())
    return {
        "type": "Container", "separator": True, "spacing": "Small",
        "items": [
            _rich(_run(view.request_id, fontType="Monospace", weight="Bolder"),
                  _run("  "), _run(view.title, fontType="Monospace"), _run(" on "),
                  _run(clip(view.resource, 200))),
            _rich(_run(clip(state, 300), isSubtle=True), spacing="None"),
        ],
    }


def render_command(result: CommandResult, hmac_key: bytes, *, footer: str | None = None,
                   viewer_can_decide: bool | None = None, now: float | None = None
                   ) -> dict[str, Any]:
    """An Adaptive Card for a :class:`bot.commands.CommandResult` (``status``, ``pending``,
    ``mine``, ``help``), with the same content Slack's command shows.

    Args:
        result: the channel-neutral answer.
        hmac_key: for the request card of ``status``.
        footer: Teams-only information Signoff adds under help (this conversation's name).
        viewer_can_decide: how to render the request card of ``status`` (see
            :func:`render_card`; ``None`` in shared conversations).
        now: the clock, for "time left".
    """
    now = time.time() if now is None else now
    if result.kind is CommandKind.STATUS and result.view is not None:
        return render_card(result.view, hmac_key, viewer_can_decide=viewer_can_decide,
                           now=now)
    body: list[dict[str, Any]] = [_text(result.title, size="Medium", weight="Bolder")]
    if result.error:
        body.append({"type": "Container", "style": Tone.BAD.value,
                     "items": [_rich(_run(clip(result.error, MAX_TEXT_CHARS)))]})
    if result.kind in (CommandKind.PENDING, CommandKind.MINE):
        if result.items:
            body += [_list_item(v, now) for v in result.items[:MAX_LIST_ITEMS]]
        else:
            body.append(_rich(_run(result.empty_text)))
        if result.next_command:
            body.append(_rich(_run("More: ", isSubtle=True),
                              _run(result.next_command, fontType="Monospace")))
    if result.kind is CommandKind.HELP:
        for line in result.help:
            body.append(_rich(_run(line.usage, fontType="Monospace", weight="Bolder"),
                              _run(f" — {line.text}"), spacing="Small"))
        if footer:
            body.append(_rich(_run(clip(footer, MAX_TEXT_CHARS), isSubtle=True),
                              separator=True))
    return {"type": "AdaptiveCard", "$schema": SCHEMA_URL, "version": CARD_VERSION,
            "msteams": {"width": "Full"}, "fallbackText": result.title, "body": body}
