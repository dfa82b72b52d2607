"""Block Kit rendering: pure functions from the channel-neutral view model to Slack JSON.

This module owns Slack's limits and truncation; nothing else in Signoff knows them. Every
string that came from an agent or a payload is escaped (``&``, ``<``, ``>``), so a request
cannot smuggle ``<!channel>`` pings or disguised links into a card, and is clipped to the
limit of the element that holds it without splitting an escape sequence. Inputs are
:class:`~signoff.cardview.view.CardView` objects, which hold masked data only.

No I/O and no clock: ``now`` is passed in; ``mention`` maps a person (email) to a Slack user
id when the caller knows one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.commands import CommandKind, CommandResult
from signoff import clicks
from signoff.cardview.view import CardView
from signoff.models import Status
from signoff.standing import window_choices, window_label

# --- Slack's documented limits (Block Kit reference, api.slack.com/reference/block-kit) -------------
MESSAGE_BLOCKS = 50
MODAL_BLOCKS = 100
SECTION_TEXT = 3000
FIELD_TEXT = 2000
SECTION_FIELDS = 10
HEADER_TEXT = 150
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
ACTION_ID = 255
BLOCK_ID = 255
ACTIONS_ELEMENTS = 25
CONTEXT_ELEMENTS = 10
CONTEXT_TEXT = 3000
CONFIRM_TITLE = 100
CONFIRM_TEXT = 300
CONFIRM_BUTTON = 30
MODAL_TITLE = 24
MODAL_BUTTON = 24
PRIVATE_METADATA = 3000
INPUT_LABEL = 2000
INPUT_MAX_LENGTH = 3000
# chat.postMessage accepts 40,000 characters of ``text``; it is only the notification
# fallback here, so it stays short.
FALLBACK_TEXT = 3000

# --- action and callback ids the web handlers listen for --------------------------------
APPROVE = "signoff_approve"
STEP_UP_APPROVE = "signoff_step_up_approve"  # link buttons to the inbox's step-up page
STEP_UP_DENY = "signoff_step_up_deny"
DENY = "signoff_deny"
DETAILS = "signoff_details"
STANDING = "signoff_standing"  # "Approve for a while…": a modal to choose the window
STANDING_CALLBACK = "signoff_standing_modal"
STANDING_BLOCK = "standing"
STANDING_INPUT = "standing_select"
EDIT = "signoff_edit"  # "Edit…": a modal with the rule's editable params
EDIT_CALLBACK = "signoff_edit_modal"
EDIT_BLOCK = "signoff_edit_"  # + the param's name
EDIT_INPUT = "value"
DIGEST_APPROVE = "signoff_digest_approve"  # "Approve all I may decide" on a digest
DIGEST_DENY = "signoff_digest_deny"
DIGEST_REVIEW = "signoff_digest_review"  # a link to the inbox
PAGE = "signoff_page"
DENY_CALLBACK = "signoff_deny_reason"
REASON_BLOCK = "reason"
REASON_INPUT = "reason_input"
PRESET_BLOCK = "preset"  # the policy's deny_reasons, when it has any
PRESET_INPUT = "preset_select"
# What Signoff writes into message metadata so a retried job can find its own card.
CARD_EVENT = "signoff_card"
VOTE_EVENT = "signoff_vote"

TRUNCATED = "…"
Mention = Callable[[str], str | None]


def _no_mention(_person: str) -> str | None:
    return None


# --- text helpers -------------------------------------------------------------------------
def escape(text: str) -> str:
    """Escape Slack's three control characters (mrkdwn and plain text alike)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int, suffix: str = TRUNCATED) -> str:
    """``text`` cut to ``limit`` characters, ending with ``suffix`` when cut (no escaping)."""
    if len(text) <= limit:
        return text
    return text[: max(limit - len(suffix), 0)] + suffix[: limit]


def clip_escaped(raw: str, limit: int, suffix: str = TRUNCATED) -> str:
    """Escape ``raw`` and clip it to ``limit`` without splitting an ``&amp;``-style entity."""
    full = escape(raw)
    if len(full) <= limit:
        return full
    return escape(raw[:_fit_prefix(raw, max(limit - len(suffix), 0))]) + suffix[:limit]


def _fit_prefix(raw: str, budget: int) -> int:
    """Length of the longest prefix of ``raw`` whose escaped form fits ``budget``.

    Binary search over raw prefixes, so an ``&amp;``-style entity is never split.
    """
    lo, hi = 0, min(len(raw), budget)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(escape(raw[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return lo


def plain_safe(raw: str) -> str:
    """Agent text for a plain_text object: Slack parses no mentions there, but angle
    brackets are still swapped for look-alikes so nothing resembling one is shown."""
    return raw.replace("<", "\u2039").replace(">", "\u203a")


def _code(raw: str) -> str:
    """Inline code without breaking out of the backticks."""
    return "`" + escape(raw.replace("`", "'")) + "`"


def _fence_safe(raw: str) -> str:
    """Content for a ``` block: a triple backtick inside would close it early."""
    return raw.replace("```", "`\u200b``")


def code_block(raw: str, limit: int, note: str = "") -> tuple[str, bool]:
    """A ``` block of ``raw`` that fits ``limit`` characters; returns (text, truncated)."""
    body = _fence_safe(raw)
    fence = 8  # "```\n" + "\n```"
    full = "```\n" + escape(body) + "\n```"
    if len(full) <= limit:
        return full, False
    tail = "\n" + TRUNCATED + (" " + note if note else "")
    inner = clip_escaped(body, max(limit - fence - len(tail), 0), suffix="")
    return "```\n" + inner + tail + "\n```", True


def plain(text: str, limit: int) -> dict[str, Any]:
    """A plain_text object clipped to ``limit``."""
    return {"type": "plain_text", "text": clip(text, limit) or " ", "emoji": True}


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> dict[str, Any]:
    """A mrkdwn object clipped to ``limit`` (the caller has escaped what needs it)."""
    return {"type": "mrkdwn", "text": clip(text, limit) or " "}


def slack_date(ts: float, fmt: str = "{date_short_pretty} at {time}") -> str:
    """Slack date formatting: shown in each reader's own time zone, with a UTC fallback."""
    fallback = datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(ts)}^{fmt}|{fallback}>"


def duration_text(seconds: int) -> str:
    """"45 s", "12 min", "2 h 5 min", "3 d"."""
    if seconds < 60:
        return f"{seconds} s"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {rest} min" if rest else "")
    return f"{round(hours / 24)} d"


def who(person: str, mention: Mention) -> str:
    """``<@U123>`` when the person has a Slack id, else the escaped email."""
    uid = mention(person) if person else None
    return f"<@{uid}>" if uid else escape(person)


def _block_id(prefix: str, view: CardView) -> str:
    return clip(f"{prefix}-{view.version}", BLOCK_ID, suffix="")


# --- the approval card --------------------------------------------------------------------
STATUS_EMOJI = {
    Status.APPROVED: ":white_check_mark:",
    Status.DENIED: ":no_entry:",
    Status.TIMED_OUT: ":hourglass:",
    Status.CANCELLED: ":heavy_minus_sign:",
    Status.REJECTED: ":x:",
    Status.RECEIVED: ":hourglass_flowing_sand:",
    Status.PENDING: ":hourglass_flowing_sand:",
}


def status_line(view: CardView, mention: Mention = _no_mention) -> str:
    """"Approved by @alice, @bob · 14:02" / "Expired — denied automatically", as mrkdwn."""
    when = f" · {slack_date(view.decided_at, '{time}')}" if view.decided_at else ""
    emoji = STATUS_EMOJI.get(view.status, "")
    if view.status is Status.APPROVED:
        people = ", ".join(who(p, mention) for p in view.approvers) or "policy"
        return f"{emoji} *Approved by {people}*{when}"
    if view.status is Status.DENIED:
        people = ", ".join(who(p, mention) for p in view.deniers) or "policy"
        comment = next((v.comment for v in view.votes if v.choice == "deny" and v.comment),
                       None) or (view.decision_reason if not view.deniers else None)
        reason = f"\n>{clip_escaped(comment, 1500)}" if comment else ""
        return f"{emoji} *Denied by {people}*{when}{reason}"
    return f"{emoji} *{escape(view.status_text)}*{when}"


def fallback_text(view: CardView) -> str:
    """The notification text (what a phone shows); plain, short, escaped."""
    head = f"{view.title} by {view.requester}"
    if view.open:
        text = f"Approval needed: {head} on {view.resource} — {view.progress}"
    else:
        text = f"{view.status_text}: {head} on {view.resource}"
    return clip_escaped(text, FALLBACK_TEXT)


def _fields(view: CardView, mention: Mention) -> dict[str, Any]:
    env = view.environment or "—"
    env_text = (":rotating_light: " if env.lower() in ("prod", "production") else "") + \
        clip_escaped(env, 200)
    on_behalf = who(view.on_behalf_of, mention) if view.on_behalf_of else "—"
    policy = (_code(clip(view.policy_rule, 200)) + "\n" if view.policy_rule else "") + \
        clip_escaped(view.progress, 500)
    masking = clip_escaped(view.masking_summary, 800)
    if view.masked_count:
        masking = f":lock: {masking}"
    items = [
        ("Agent", _code(clip(view.requester, 300))),
        ("For", on_behalf),
        ("Resource", clip_escaped(view.resource, 1500)),
        ("Environment", env_text),
        ("Policy", policy),
        ("Masking", masking),
    ]
    return {"type": "section", "block_id": _block_id("facts", view),
            "fields": [mrkdwn(f"*{k}*\n{v}", FIELD_TEXT) for k, v in items][:SECTION_FIELDS]}


def _confirm_approve(view: CardView) -> dict[str, Any]:
    text = f"Approve {view.action} on {plain_safe(view.resource)}? The agent gets a grant " \
           "to run exactly this payload."
    return {"title": plain("Approve this request?", CONFIRM_TITLE),
            "text": plain(text, CONFIRM_TEXT),
            "confirm": plain("Approve", CONFIRM_BUTTON),
            "deny": plain("Cancel", CONFIRM_BUTTON)}


def button(text: str, action_id: str, value: str, style: str | None = None,
           confirm: dict[str, Any] | None = None) -> dict[str, Any]:
    """A button element; raises ValueError when ``value`` exceeds Slack's limit."""
    if len(value) > BUTTON_VALUE:
        raise ValueError(f"button value of {len(value)} characters exceeds {BUTTON_VALUE}")
    element: dict[str, Any] = {"type": "button", "text": plain(text, BUTTON_TEXT),
                               "action_id": clip(action_id, ACTION_ID, suffix=""),
                               "value": value}
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def _step_up_buttons(view: CardView) -> list[dict[str, Any]]:
    """Link buttons to the inbox's step-up page: a passkey proves who votes, so the
    vote is never taken from the click itself (Slack still sends the click; it is acked)."""
    out = []
    for text, action_id, choice, style in (("Approve with passkey", STEP_UP_APPROVE, "approve",
                                            "primary"),
                                           ("Deny with passkey", STEP_UP_DENY, "deny", "danger")):
        link = view.step_up_link(choice)
        if link and len(link) <= 3000:
            out.append({"type": "button", "text": plain(text, BUTTON_TEXT),
                        "action_id": action_id, "url": link, "style": style})
    return out


def step_up_text(view: CardView) -> str:
    """Why a step-up card has no ordinary buttons."""
    where = "The buttons open the Signoff inbox" if view.step_up_link("approve") else (
        "Decide it in the Signoff inbox")
    return (":closed_lock_with_key: This request needs a passkey: a click in Slack is not "
            f"enough. {where}, where you confirm your vote with your passkey.")


def _actions(view: CardView, hmac_key: bytes) -> dict[str, Any]:
    rid, ver = view.request_id, view.version
    elements = []
    if view.open and view.step_up:
        elements.extend(_step_up_buttons(view))
    elif view.open:
        elements.append(button("Approve", APPROVE, clicks.sign(hmac_key, rid, ver, "approve"),
                               style="primary", confirm=_confirm_approve(view)))
        elements.append(button("Deny", DENY, clicks.sign(hmac_key, rid, ver, "deny"),
                               style="danger"))
        if view.standing_max:
            # Opens a modal: approve this and the same request again for a chosen window.
            elements.append(button("Approve for a while…", STANDING,
                                   clicks.sign(hmac_key, rid, ver, "approve")))
        if view.editable:
            # Opens a modal with the rule's editable params (signoff.edits).
            elements.append(button("Edit…", EDIT, clicks.sign(hmac_key, rid, ver, "approve")))
    elements.append(button("View details", DETAILS, clicks.sign(hmac_key, rid, ver, "details")))
    return {"type": "actions", "block_id": _block_id("actions", view),
            "elements": elements[:ACTIONS_ELEMENTS]}


def _votes_text(view: CardView, mention: Mention) -> str:
    parts = []
    for vote in view.votes:
        mark = ":white_check_mark:" if vote.choice == "approve" else ":no_entry:"
        verb = "approved" if vote.choice == "approve" else "denied"
        parts.append(f"{mark} {who(vote.person, mention)} {verb} "
                     f"{slack_date(vote.at, '{time}')}")
    return "\n".join(parts)


def card_blocks(view: CardView, hmac_key: bytes, *, now: float,
                mention: Mention = _no_mention) -> list[dict[str, Any]]:
    """The approval card's blocks (at most :data:`MESSAGE_BLOCKS`)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "block_id": _block_id("head", view),
         "text": plain(plain_safe(view.title), HEADER_TEXT)},
    ]
    if not view.open:
        blocks.append({"type": "section", "block_id": _block_id("status", view),
                       "text": mrkdwn(status_line(view, mention))})
    blocks.append(_fields(view, mention))
    if view.reason:
        blocks.append({"type": "section", "block_id": _block_id("reason", view),
                       "text": mrkdwn("*Reason*\n>" + clip_escaped(view.reason, 2800)
                                      .replace("\n", "\n>"))})
    payload, _cut = code_block(view.params_json(), SECTION_TEXT - 40,
                               note="use View details for the whole payload")
    blocks.append({"type": "section", "block_id": _block_id("payload", view),
                   "text": mrkdwn(f"*Payload* (masked)\n{payload}")})
    if view.votes and view.open:
        blocks.append({"type": "section", "block_id": _block_id("votes", view),
                       "text": mrkdwn(clip(_votes_text(view, mention), SECTION_TEXT))})
    context = [f"Request {_code(clip(view.request_id, 200))}"]
    if view.merged_count:
        context.append(f":repeat: {view.repeats} identical requests from this agent; "
                       "one decision answers them all")
    if view.payload_sha256:
        context.append(f"sha256 {_code(view.payload_sha256[:16])}")
    if view.open and view.deadline:
        left = duration_text(view.seconds_left(now))
        context.append(f":stopwatch: {left} left · expires {slack_date(view.deadline)}")
    blocks.append({"type": "context", "block_id": _block_id("meta", view),
                   "elements": [mrkdwn(c, CONTEXT_TEXT) for c in context][:CONTEXT_ELEMENTS]})
    if view.notify_failures:
        where = ", ".join(escape(clip(f.split(": ", 1)[0], 100)) for f in view.notify_failures)
        blocks.append({"type": "context", "block_id": _block_id("failures", view),
                       "elements": [mrkdwn(f":warning: Not delivered to {clip(where, 2000)}; "
                                           "decide here or in the web inbox.", CONTEXT_TEXT)]})
    if view.open and view.step_up:
        blocks.append({"type": "context", "block_id": _block_id("stepup", view),
                       "elements": [mrkdwn(step_up_text(view), CONTEXT_TEXT)]})
    blocks.append(_actions(view, hmac_key))
    return blocks[:MESSAGE_BLOCKS]


def render_card(view: CardView, hmac_key: bytes, *, now: float,
                mention: Mention = _no_mention) -> dict[str, Any]:
    """The chat.postMessage / chat.update arguments for a card: ``text`` and ``blocks``."""
    return {"text": fallback_text(view), "blocks": card_blocks(view, hmac_key, now=now,
                                                               mention=mention)}


def card_metadata(view: CardView) -> dict[str, Any]:
    """Message metadata that lets :meth:`SlackMessenger.find_posted` recognise this card."""
    return {"event_type": CARD_EVENT,
            "event_payload": {"request_id": view.request_id, "version": view.version}}


def vote_reply(view: CardView, person: str, choice: str, comment: str | None,
               mention: Mention = _no_mention) -> str:
    """The thread reply announcing one vote."""
    if choice == "approve":
        text = f":white_check_mark: {who(person, mention)} approved · {view.progress}"
    else:
        text = f":no_entry: {who(person, mention)} denied"
        if comment:
            text += f": {clip_escaped(comment, 1500)}"
    return clip(text, SECTION_TEXT)


def vote_metadata(view: CardView, person: str, choice: str) -> dict[str, Any]:
    """Metadata marking a thread reply as the announcement of one vote (for idempotency)."""
    return {"event_type": VOTE_EVENT,
            "event_payload": {"request_id": view.request_id, "person": person,
                              "choice": choice}}


# --- modals -------------------------------------------------------------------------------
def details_modal(view: CardView, *, now: float,
                  mention: Mention = _no_mention) -> dict[str, Any]:
    """The "View details" modal: every masked field, the whole payload in as many blocks as
    a modal allows (truncated only beyond :data:`MODAL_BLOCKS`)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": plain(plain_safe(view.title), HEADER_TEXT)},
    ]
    if not view.open:
        blocks.append({"type": "section", "text": mrkdwn(status_line(view, mention))})
    blocks.append(_fields(view, mention))
    if view.reason:
        blocks.append({"type": "section", "text": mrkdwn(
            "*Reason*\n>" + clip_escaped(view.reason, 2900).replace("\n", "\n>"))})
    if view.context:
        ctx, _ = code_block(json.dumps(view.context, indent=2, ensure_ascii=False,
                                       sort_keys=True), SECTION_TEXT - 20)
        blocks.append({"type": "section", "text": mrkdwn(f"*Context*\n{ctx}")})
    blocks.append({"type": "section", "text": mrkdwn(
        f"*Payload* (masked: {clip_escaped(view.masking_summary, 500)})")})
    # Reserve room for the footer context block.
    room = MODAL_BLOCKS - len(blocks) - 1
    chunks = _payload_chunks(view.params_json(), room)
    blocks += [{"type": "section", "text": mrkdwn(c)} for c in chunks]
    footer = [f"Request {_code(clip(view.request_id, 200))}",
              f"sha256 {_code(view.payload_sha256)}" if view.payload_sha256 else "",
              f"created {slack_date(view.created_at)}" if view.created_at else ""]
    blocks.append({"type": "context", "elements": [mrkdwn(f, CONTEXT_TEXT)
                                                   for f in footer if f][:CONTEXT_ELEMENTS]})
    return {"type": "modal", "title": plain("Request details", MODAL_TITLE),
            "close": plain("Close", MODAL_BUTTON), "blocks": blocks[:MODAL_BLOCKS]}


def _payload_chunks(raw: str, max_blocks: int) -> list[str]:
    """Split a payload into ``` blocks of at most a section's text, at line ends when possible.

    Beyond ``max_blocks`` the last block says how much is not shown.
    """
    budget = SECTION_TEXT - 10 - 8  # 8: the fences
    pieces: list[str] = []
    current = ""
    for line in _fence_safe(raw).splitlines(keepends=True):
        while line:
            room = budget - len(escape(current))
            if len(escape(line)) <= room:
                current, line = current + line, ""
            elif current:
                pieces.append(current)
                current = ""
            else:
                n = max(_fit_prefix(line, budget), 1)
                pieces.append(line[:n])
                line = line[n:]
    if current:
        pieces.append(current)
    out = ["```\n" + escape(p.rstrip("\n")) + "\n```" for p in pieces]
    if len(out) > max_blocks:
        hidden = sum(len(p) for p in pieces[max_blocks - 1:])
        note = (f"{TRUNCATED} {hidden} more characters are not shown (the payload is larger "
                "than a Slack modal holds).")
        out = [*out[:max_blocks - 1], note]
    return out


def deny_modal(view: CardView, signed_value: str, channel_id: str | None) -> dict[str, Any]:
    """The modal asking for a reason before a deny is recorded.

    ``private_metadata`` carries the signed button value (re-verified on submission) and the
    channel to confirm in.
    """
    meta = json.dumps({"v": signed_value, "c": channel_id or ""}, separators=(",", ":"))
    if len(meta) > PRIVATE_METADATA:
        raise ValueError("private_metadata would exceed Slack's limit")
    return {
        "type": "modal",
        "callback_id": DENY_CALLBACK,
        "private_metadata": meta,
        "title": plain("Deny request", MODAL_TITLE),
        "submit": plain("Deny", MODAL_BUTTON),
        "close": plain("Cancel", MODAL_BUTTON),
        "blocks": [
            {"type": "section", "text": mrkdwn(
                f"*{clip_escaped(view.action, 200)}* on {clip_escaped(view.resource, 800)}\n"
                f"asked by {_code(clip(view.requester, 200))} · "
                f"request {_code(clip(view.request_id, 200))}")},
            *([{"type": "input", "block_id": PRESET_BLOCK, "optional": True,
                "label": plain("Pick a reason", INPUT_LABEL),
                "element": {"type": "static_select", "action_id": PRESET_INPUT,
                            "placeholder": plain("The policy's reasons", 150),
                            "options": [{"text": plain(r, 75), "value": clip(r, 150)}
                                        for r in view.deny_reasons[:20]]}}]
              if view.deny_reasons else []),
            {"type": "input", "block_id": REASON_BLOCK, "optional": bool(view.deny_reasons),
             "label": plain("Why are you denying it?" if not view.deny_reasons
                            else "Or in your own words", INPUT_LABEL),
             "element": {"type": "plain_text_input", "action_id": REASON_INPUT,
                         "multiline": True, "min_length": 1, "max_length": 2000,
                         "placeholder": plain("The agent and the requester will see this.",
                                              150)}},
        ],
    }


def standing_modal(view: CardView, signed_value: str, channel_id: str | None
                   ) -> dict[str, Any]:
    """The modal approving a request and the same request again for a window the approver
    picks (up to the rule's ``standing.max``); the signed value is re-verified on submit."""
    meta = json.dumps({"v": signed_value, "c": channel_id or ""}, separators=(",", ":"))
    if len(meta) > PRIVATE_METADATA:
        raise ValueError("private_metadata would exceed Slack's limit")
    options = [{"text": plain(f"this and the same request again for {window_label(w)}", 75),
                "value": str(w)} for w in window_choices(view.standing_max)]
    return {
        "type": "modal",
        "callback_id": STANDING_CALLBACK,
        "private_metadata": meta,
        "title": plain("Approve for a while", MODAL_TITLE),
        "submit": plain("Approve", MODAL_BUTTON),
        "close": plain("Cancel", MODAL_BUTTON),
        "blocks": [
            {"type": "section", "text": mrkdwn(
                f"*{clip_escaped(view.action, 200)}* on {clip_escaped(view.resource, 800)}\n"
                f"asked by {_code(clip(view.requester, 200))}. Later requests that are the same "
                "(agent, action, resource, person, context; params within the rule's bounds) are "
                "approved at once while the window lasts, once every approver chose one.")},
            {"type": "input", "block_id": STANDING_BLOCK,
             "label": plain("Approve", INPUT_LABEL),
             "element": {"type": "static_select", "action_id": STANDING_INPUT,
                         "options": options, "initial_option": options[0]}},
        ],
    }


def edit_modal(view: CardView, signed_value: str, channel_id: str | None) -> dict[str, Any]:
    """The modal that edits a request's editable params (each within its bounds, shown) and
    approves the edited version. ``private_metadata`` carries the signed button value
    (re-verified on submission, and its card version: a card drawn before someone else's
    edit is refused) and the channel."""
    meta = json.dumps({"v": signed_value, "c": channel_id or ""}, separators=(",", ":"))
    if len(meta) > PRIVATE_METADATA:
        raise ValueError("private_metadata would exceed Slack's limit")
    params = view.params if isinstance(view.params, dict) else {}
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": mrkdwn(
            f"*{clip_escaped(view.action, 200)}* on {clip_escaped(view.resource, 800)}\n"
            f"request {_code(clip(view.request_id, 200))} · approvals given before an edit "
            "no longer count")}]
    for name, bounds in list(view.editable.items())[:20]:
        current = params.get(name)
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": EDIT_INPUT,
                                   "max_length": 2000}
        if current is not None:
            element["initial_value"] = clip(current if isinstance(current, str)
                                            else json.dumps(current), 2000)
        blocks.append({"type": "input", "block_id": clip(EDIT_BLOCK + name, 255, suffix=""),
                       "label": plain(name, INPUT_LABEL), "element": element,
                       "hint": plain("allowed: " + json.dumps(bounds, sort_keys=True), 150)})
    return {
        "type": "modal",
        "callback_id": EDIT_CALLBACK,
        "private_metadata": meta,
        "title": plain("Edit, then approve", MODAL_TITLE),
        "submit": plain("Approve edited", MODAL_BUTTON),
        "close": plain("Cancel", MODAL_BUTTON),
        "blocks": blocks,
    }


# --- slash command answers ----------------------------------------------------------------
def command_message(result: CommandResult, hmac_key: bytes, *, now: float,
                    mention: Mention = _no_mention) -> dict[str, Any]:
    """An ephemeral answer to ``/signoff``: ``text`` and ``blocks``."""
    blocks: list[dict[str, Any]] = []
    if result.error:
        blocks.append({"type": "section", "block_id": "error",
                       "text": mrkdwn(":warning: " + clip_escaped(result.error, 2900))})
    if result.kind is CommandKind.HELP:
        lines = "\n".join(f"`/signoff {escape(h.usage)}` — {escape(h.text)}"
                          for h in result.help)
        blocks.append({"type": "section", "block_id": "help", "text": mrkdwn(lines)})
        text = (result.error + " " if result.error else "") + "Signoff commands"
        return {"text": clip(text, FALLBACK_TEXT), "blocks": blocks}
    if result.view is not None:
        view = result.view
        card = card_blocks(view, hmac_key, now=now, mention=mention)
        if not result.decidable:
            # Only the details button: this person may not vote (or the request is closed).
            card = [b for b in card if b["type"] != "actions"] + [
                {"type": "actions", "block_id": _block_id("actions", view),
                 "elements": [button("View details", DETAILS, clicks.sign(
                     hmac_key, view.request_id, view.version, "details"))]}]
        blocks += card
        return {"text": fallback_text(view), "blocks": blocks[:MESSAGE_BLOCKS]}
    if result.kind is CommandKind.STATUS:
        return {"text": clip(result.error or result.title, FALLBACK_TEXT), "blocks": blocks}
    blocks.append({"type": "header", "block_id": "title",
                   "text": plain(result.title + (f" (page {result.page})"
                                                 if result.page > 1 else ""), HEADER_TEXT)})
    if not result.items:
        blocks.append({"type": "section", "block_id": "empty",
                       "text": mrkdwn(escape(result.empty_text))})
    for i, view in enumerate(result.items):
        state = clip_escaped(view.progress, 300) if view.open else status_line(view, mention)
        line = (f"*{clip_escaped(view.action, 200)}* on {clip_escaped(view.resource, 500)}\n"
                f"{_code(clip(view.request_id, 200))} · {_code(clip(view.requester, 200))}"
                + (f" for {who(view.on_behalf_of, mention)}" if view.on_behalf_of else "")
                + f"\n{state}")
        if view.open and view.deadline:
            line += f" · expires {slack_date(view.deadline)}"
        blocks.append({"type": "section", "block_id": f"item-{i}", "text": mrkdwn(line),
                       "accessory": button("Details", DETAILS, clicks.sign(
                           hmac_key, view.request_id, view.version, "details"))})
    if result.next_command:
        blocks.append({"type": "actions", "block_id": "paging",
                       "elements": [button("Next page", PAGE, result.next_command)]})
    text = f"{result.title}: {len(result.items)} shown"
    return {"text": clip(text, FALLBACK_TEXT), "blocks": blocks[:MESSAGE_BLOCKS]}
