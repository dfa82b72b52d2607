"""The Teams activity handler: installs, text commands and card actions.

Every activity reaching it is authenticated (:mod:`bot.teams.web`). Activities from tenants
outside the allow-list change nothing: installs are not saved, commands are not answered,
card actions get a card saying so.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import replace
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from botbuilder.core import ActivityHandler, InvokeResponse, MessageFactory, TurnContext
from botbuilder.schema import Activity, ActivityTypes, Attachment

from bot import commands
from bot.teams.actions import CardActions
from bot.teams.conversations import ConversationBook, conversation_id_of
from bot.teams.render import CONTENT_TYPE, render_command
from bot.teams.tenants import TenantPolicy, activity_tenant
from signoff.cardview.view import build_view

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

# Mentions arrive as "<at>Signoff</at> status r-1". Hand-written rather than botbuilder's
# remove_mention_text, which uses the display name as a regular expression.
_MENTION = re.compile(r"<at[^>]*>.*?</at>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]+>")
MAX_COMMAND_CHARS = 200
SAVE_EVENTS = frozenset({"channelCreated", "channelRenamed", "channelRestored", "teamRenamed",
                         "teamRestored"})
FORGET_EVENTS = frozenset({"channelDeleted", "teamDeleted", "teamArchived"})


def command_text(activity: Activity) -> str:
    """The command a message carries, without mentions, markup or surrounding space."""
    text = _TAG.sub(" ", _MENTION.sub(" ", activity.text or ""))
    text = text.replace("&nbsp;", " ")
    return " ".join(text.split())[:MAX_COMMAND_CHARS]


class SignoffTeamsBot(ActivityHandler):  # type: ignore[misc]
    """Signoff's Teams bot for one runtime.

    Args:
        rt: the runtime.
        tenants: the tenant allow-list.
    """

    def __init__(self, rt: Runtime, tenants: TenantPolicy) -> None:
        super().__init__()
        self.rt = rt
        self.tenants = tenants
        self.book = ConversationBook(rt.redis, rt.keys, rt.settings.teams_conversations)
        self.actions = CardActions(rt, tenants)

    # --- dispatch -----------------------------------------------------------------------
    async def on_turn(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if activity.type != ActivityTypes.invoke and not self.tenants.allows(
                activity_tenant(activity)):
            # Card actions answer for themselves (with a card); everything else is ignored.
            log.warning("Teams %s from a tenant that is not allowed ignored", activity.type)
            return
        await super().on_turn(turn_context)

    # --- installs -----------------------------------------------------------------------
    async def _save(self, activity: Activity) -> None:
        tenant = activity_tenant(activity)
        saved = await asyncio.to_thread(self.book.save, activity, tenant,
                                        lambda: self._email(activity))
        if saved is not None:
            log.info("Teams conversation saved (%s, names: %s)", saved.kind,
                     ", ".join(saved.names) or "none")

    def _email(self, activity: Activity) -> str | None:
        person = self._person(activity)
        return person.id if person else None

    def _person(self, activity: Activity) -> Person | None:
        aad = activity.from_property.aad_object_id if activity.from_property else None
        return self.rt.policy.directory.by_teams(aad) if aad else None

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        bot_id = activity.recipient.id if activity.recipient else None
        data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
        event = data.get("eventType")
        if any(m.id == bot_id for m in activity.members_removed or []) or event in FORGET_EVENTS:
            await asyncio.to_thread(self.book.forget, activity)
            log.info("Teams conversation forgotten (%s)", event or "bot removed")
            return
        if any(m.id == bot_id for m in activity.members_added or []) or event in SAVE_EVENTS:
            await self._save(activity)

    async def on_installation_update(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        if (activity.action or "").startswith("remove"):
            await asyncio.to_thread(self.book.forget, activity)
        else:
            await self._save(activity)

    # --- commands -----------------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        await self._save(activity)  # keeps the reference (and its service URL) current
        text = command_text(activity)
        person = await asyncio.to_thread(self._person, activity)
        result = await asyncio.to_thread(commands.answer, self.rt, person, text)
        personal = (activity.conversation.conversation_type if activity.conversation
                    else "") == "personal"
        if not personal:
            result = await asyncio.to_thread(self._shared_safe, result)
        footer = None
        if result.kind is commands.CommandKind.HELP:
            footer = await asyncio.to_thread(self._where_footer, activity)
        card = render_command(result, self.rt.hmac_key, footer=footer,
                              viewer_can_decide=result.decidable if personal else None)
        await turn_context.send_activity(MessageFactory.attachment(
            Attachment(content_type=CONTENT_TYPE, content=card)))

    def _shared_safe(self, result: commands.CommandResult) -> commands.CommandResult:
        """Everyone in a channel or group chat sees the answer: use the fully masked views
        (never a group's partial view) and leave the buttons to each viewer's refresh."""
        def masked(request_id: str) -> Any:
            record = self.rt.store.get(request_id)
            return build_view(record) if record is not None else None

        view = masked(result.view.request_id) if result.view is not None else None
        items = tuple(v for v in (masked(i.request_id) for i in result.items) if v is not None)
        return replace(result, view=view, items=items, decidable=False)

    def _where_footer(self, activity: Activity) -> str | None:
        conv_id = conversation_id_of(activity)
        if conv_id is None:
            return None
        names = self.book.names_for(conv_id)
        named = ("Policies can send cards here as {teams: " + names[0] + "}"
                 if names else "Policies can send cards here by this conversation's id")
        return f"{named}. Conversation id: {conv_id}"

    # --- card actions -------------------------------------------------------------------
    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse:
        activity = turn_context.activity
        if activity.name != "adaptiveCard/action":
            return InvokeResponse(status=int(HTTPStatus.NOT_IMPLEMENTED))
        try:
            body = await self.actions.handle(activity)
        except Exception:
            log.exception("Teams card action failed")
            body = {"statusCode": 500, "type": "application/vnd.microsoft.error",
                    "value": {"code": "InternalError",
                              "message": "Signoff could not answer this click. Message the "
                                         "bot 'status <request id>' to see whether your vote "
                                         "was recorded."}}
        # The body is already the wire form of an adaptive card invoke response
        # ({statusCode, type, value}): the web handler sends it as it is. As a botbuilder
        # model, msrest would walk every element of the card to serialize it again (a sixth of
        # the web process's CPU under Teams clicks, measured with bench/load.py).
        return InvokeResponse(status=int(HTTPStatus.OK), body=body)
