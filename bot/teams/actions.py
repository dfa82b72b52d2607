"""``adaptiveCard/action`` invokes: Approve, Deny, and each viewer's refresh.

The platform JWT has already been validated when an invoke gets here (:mod:`bot.teams.web`).
Then, in order: Signoff's own HMAC in the action data (the button was minted by Signoff for
this request), replay refusal (the invoke's activity id is the click nonce; the vote script
also refuses it atomically), the tenant allow-list, the AAD object id mapped to a person
through the policy directory, and :func:`signoff.lifecycle.submit_vote` (separation of
duties and the atomic vote). The answer is always the card for this viewer: updated after a
vote, or with a notice saying why the click was refused.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from dataclasses import dataclass
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from botbuilder.schema import Activity

from bot.commands import view_for
from bot.teams.render import (
    COMMENT_INPUT_ID,
    CONTENT_TYPE,
    EDIT_INPUT_PREFIX,
    MAX_COMMENT_CHARS,
    PRESET_INPUT_ID,
    STANDING_INPUT_ID,
    VERB_APPROVE,
    VERB_DENY,
    VERB_DIGEST_APPROVE,
    VERB_DIGEST_DENY,
    VERB_EDIT,
    VERB_REFRESH,
    Notice,
    Tone,
    render_card,
    render_notice_card,
)
from bot.teams.tenants import TenantPolicy, activity_tenant
from policy import Refused
from signoff import batch, clicks, edits, lifecycle
from signoff.audit import Event
from signoff.lifecycle import check_decider
from signoff.models import Status
from signoff.standing import parse_window
from signoff.store import Record

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

ERROR_TYPE = "application/vnd.microsoft.error"
VERB_CHOICE = {VERB_APPROVE: "approve", VERB_DENY: "deny", VERB_REFRESH: "details",
               VERB_EDIT: "approve",
               VERB_DIGEST_APPROVE: "approve", VERB_DIGEST_DENY: "deny"}
DIGEST_VERBS = (VERB_DIGEST_APPROVE, VERB_DIGEST_DENY)
# Refusals worth telling a viewer on refresh; others (unknown account, already voted, not
# an approver) would only be noise on every card a channel member opens.
_EXPLAINED_ON_REFRESH = frozenset({"requester", "on_behalf_of", "agent_owner",
                                   "agent_identity"})
TENANT_REFUSED = ("This Microsoft Teams organization is not allowed to use this Signoff "
                  "deployment. Nothing was recorded.")
BAD_BUTTON = ("This button was not made by Signoff for this request, so nothing was "
              "recorded.")


def card_response(card: dict[str, Any]) -> dict[str, Any]:
    """The ``adaptiveCard/action`` answer that replaces the card for this viewer."""
    return {"statusCode": int(HTTPStatus.OK), "type": CONTENT_TYPE, "value": card}


def error_response(status: HTTPStatus, message: str) -> dict[str, Any]:
    """An ``adaptiveCard/action`` error answer (malformed invokes only)."""
    return {"statusCode": int(status), "type": ERROR_TYPE,
            "value": {"code": status.phrase.replace(" ", ""), "message": message}}


@dataclass(frozen=True)
class Verdict:
    """Whether a viewer may vote now, and the reason when not."""

    allowed: bool
    code: str = ""
    reason: str = ""


def verdict(rt: Runtime, record: Record, person: Person | None) -> Verdict:
    """The separation-of-duties answer for this viewer (what a click would get)."""
    if record.status is not Status.PENDING or not record.get("evaluation"):
        return Verdict(False, "closed")
    result = check_decider(record, person, rt.policy.directory)
    if isinstance(result, Refused):
        return Verdict(False, result.code.value, result.reason)
    return Verdict(True)


def click_nonce(activity: Activity) -> str:
    """The replay key of one click: the invoke's activity id (Teams sends it once)."""
    return "teams:" + hashlib.sha256(str(activity.id).encode()).hexdigest()[:32]


class CardActions:
    """Handles ``adaptiveCard/action`` invokes for one runtime.

    Args:
        rt: the runtime.
        tenants: the tenant allow-list.
    """

    def __init__(self, rt: Runtime, tenants: TenantPolicy) -> None:
        self.rt = rt
        self.tenants = tenants

    async def handle(self, activity: Activity) -> dict[str, Any]:
        """Answer one invoke; never raises for anything a client can send."""
        value = activity.value if isinstance(activity.value, dict) else None
        action = value.get("action") if value else None
        if not isinstance(action, dict):
            return error_response(HTTPStatus.BAD_REQUEST, "The invoke carries no action.")
        verb = action.get("verb")
        data = action.get("data")
        if verb not in VERB_CHOICE or not isinstance(data, dict):
            return card_response(render_notice_card("Unknown action", BAD_BUTTON))
        # 1. Signoff's own HMAC: the button was minted for this request and this choice.
        try:
            click = clicks.verify(self.rt.hmac_key, {k: data.get(k) for k in "rvcs"})
        except clicks.ClickError:
            log.warning("Teams click with a bad Signoff signature refused")
            return card_response(render_notice_card("Button not valid", BAD_BUTTON))
        if click.choice != VERB_CHOICE[verb] or (verb in DIGEST_VERBS) != (
                batch.parse_digest_target(click.request_id) is not None):
            return card_response(render_notice_card("Button not valid", BAD_BUTTON))
        aad = (activity.from_property.aad_object_id if activity.from_property else None) or ""
        actor = f"teams:{aad or 'unknown'}"
        # 2. Replay: a click is accepted once (checked again atomically by the vote).
        nonce, replayed = "", False
        if verb != VERB_REFRESH:
            if not activity.id:
                return card_response(render_notice_card("Button not valid", BAD_BUTTON))
            nonce = click_nonce(activity)
            replayed = await asyncio.to_thread(self.rt.redis.sismember,
                                               self.rt.keys.clicks(click.request_id), nonce)
        # 3. The tenant allow-list (before anything about the request is shown).
        if not self.tenants.allows(activity_tenant(activity)):
            if verb != VERB_REFRESH:
                await asyncio.to_thread(
                    self.rt.audit.append, Event.CLICK_REFUSED, click.request_id, actor,
                    channel="teams", code="tenant_not_allowed", reason=TENANT_REFUSED)
            return card_response(render_notice_card("Not allowed", TENANT_REFUSED))
        # 4. The AAD object id, through the policy directory (unknown: None, refused later).
        person = await asyncio.to_thread(self._person, aad)
        if replayed:
            return await self._current(click.request_id, person, Notice(
                "This click was already received.", Tone.BAD))
        if verb == VERB_REFRESH:
            return await self._current(click.request_id, person, None, refresh=True)
        if verb in DIGEST_VERBS:
            # A digest's "Approve all I may decide" / "Deny all": each listed request through
            # submit_vote; the answer says which went through and why the others did not.
            items = await asyncio.to_thread(
                batch.decide_digest, self.rt, click.request_id, click.version, person,
                click.choice, channel="teams", nonce=nonce, actor_label=actor)
            if items is None:
                return card_response(render_notice_card(
                    "Not available", "That digest is no longer available; decide in the inbox."))
            return card_response(render_notice_card(
                "Decided" if any(i.ok for i in items) else "Nothing decided",
                batch.summary(items)))
        comment = data.get(COMMENT_INPUT_ID) or (
            data.get(PRESET_INPUT_ID) if click.choice == "deny" else None)
        comment = str(comment).strip()[:MAX_COMMENT_CHARS] if comment else None
        if verb == VERB_EDIT:
            # Edit and approve: the card's Input.Text fields, within the rule's bounds.
            changes = {k[len(EDIT_INPUT_PREFIX):]: str(v)[:2000] for k, v in data.items()
                       if isinstance(k, str) and k.startswith(EDIT_INPUT_PREFIX)
                       and len(k) > len(EDIT_INPUT_PREFIX) and v is not None}
            shown = await asyncio.to_thread(self.rt.store.get, click.request_id)
            view_params = view_for(shown, person).params if shown is not None else {}
            wanted = {k: v for k, v in changes.items() if not isinstance(view_params, dict)
                      or str(view_params.get(k)) != v.strip()}
            reply = await asyncio.to_thread(
                edits.submit_edit, self.rt, click.request_id, person, wanted or changes,
                channel="teams", comment=comment, nonce=nonce, actor_label=actor,
                card_version=click.version)
            tone = Tone.GOOD if reply.ok else Tone.BAD
            text = reply.message if reply.ok else f"Not recorded: {reply.message}"
            return await self._current(click.request_id, person, Notice(text, tone))
        # Approve for a while (the card's window choice, where the rule allows it).
        raw_window = data.get(STANDING_INPUT_ID) if click.choice == "approve" else None
        standing = parse_window(str(raw_window)) if raw_window else None
        if raw_window and standing is None:
            return await self._current(click.request_id, person, Notice(
                "Not recorded: choose how long the approval stands.", Tone.BAD))
        # 5. Separation of duties and the atomic vote.
        reply = await asyncio.to_thread(
            functools.partial(lifecycle.submit_vote, standing=standing),
            self.rt, click.request_id, person, click.choice, comment,
            channel="teams", nonce=nonce, actor_label=actor, card_version=click.version)
        tone = Tone.GOOD if reply.ok else Tone.BAD
        text = reply.message if reply.ok else f"Not recorded: {reply.message}"
        return await self._current(click.request_id, person, Notice(text, tone))

    def _person(self, aad: str) -> Person | None:
        return self.rt.policy.directory.by_teams(aad) if aad else None

    async def _current(self, request_id: str, person: Person | None, notice: Notice | None,
                       refresh: bool = False) -> dict[str, Any]:
        """The card as this viewer should see it now."""
        record = await asyncio.to_thread(self.rt.store.get, request_id)
        if record is None or (not record.get("masked") and record.status is not Status.REJECTED):
            text = notice.text if notice else "This request is not available."
            return card_response(render_notice_card("Request not available", text))
        view = view_for(record, person)
        seen = await asyncio.to_thread(verdict, self.rt, record, person)
        if refresh and not seen.allowed and seen.code in _EXPLAINED_ON_REFRESH:
            notice = Notice(seen.reason, Tone.INFO)
        return card_response(render_card(view, self.rt.hmac_key,
                                         viewer_can_decide=seen.allowed, notice=notice))
