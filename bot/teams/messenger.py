"""Proactive Teams cards: post, update in place, short messages.

The workers call this through :class:`signoff.messenger.Messenger`. Each call is one proactive
turn through botbuilder's ``CloudAdapter.continue_conversation`` with a saved conversation
reference (:mod:`bot.teams.conversations`); posting uses ``send_activity`` and updating uses
``update_activity`` on the posted activity id.

Faults: Signoff's own retry policy (tenacity) covers every Bot Connector call: 5xx and
network errors are retried with a short backoff; what is still failing becomes a retryable
:class:`~signoff.messenger.DeliveryError`, so the delivery tries again later and, after its last
try, records the failure on the request (shown on every card and in the audit log). A 429 is
never waited out here: it raises :class:`~signoff.messenger.RateLimited` with ``Retry-After`` and
the delivery reschedules the work for then (Teams allows 50 requests per second per app per
tenant, :data:`TEAMS_LIMIT`). botbuilder's connector client would otherwise retry PUT but not
POST (urllib3 2 ignores msrest's method list), so its built-in retries are switched off per
call to keep one visible policy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import requests
from botbuilder.core import MessageFactory, TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
    ErrorResponseException,
)
from botframework.connector import Channels
from botframework.connector.auth import BotFrameworkAuthentication
from msrest.exceptions import ClientRequestError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from bot.teams.auth import build_authentication
from bot.teams.conversations import ConversationBook, SavedConversation
from bot.teams.render import (
    CONTENT_TYPE,
    VERB_DIGEST_APPROVE,
    VERB_DIGEST_DENY,
    render_card,
)
from signoff import batch, clicks
from signoff.cards import slot
from signoff.cardview.view import CardView
from signoff.messenger import DeliveryError, RateLimited, SendLimit
from signoff.settings import Settings

if TYPE_CHECKING:
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

T = TypeVar("T")

ATTEMPTS = 3
MAX_RETRY_AFTER = 10.0  # longer waits are left to the job's own retry schedule
CALL_TIMEOUT = 30.0
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# "50 requests per second per app per tenant" (Teams bot rate limits); kept across every
# worker through the ledger's shared bucket.
TEAMS_LIMIT = SendLimit(per_second=50.0, burst=50.0, per="app")
DIGEST_MAX_LINES = 40


class ConnectorError(Exception):
    """One failed Bot Connector call, classified (message safe to show: no tokens)."""

    def __init__(self, message: str, status: int | None, retryable: bool,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


def _retry_after(response: Any) -> float | None:
    raw = getattr(response, "headers", {}).get("Retry-After") if response is not None else None
    try:
        return max(float(raw), 0.0) if raw is not None else None
    except (TypeError, ValueError):
        return None


def classify(exc: BaseException) -> ConnectorError:
    """Turn whatever a connector call raised into a :class:`ConnectorError`."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, ErrorResponseException):
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        retryable = status in RETRYABLE_STATUS if status is not None else True
        if status == 413:
            text = "the card is too large for Teams (HTTP 413)"
        elif status in (401, 403):
            text = f"the Bot Connector refused Signoff's credentials (HTTP {status})"
        elif status == 404:
            text = "Teams does not know this conversation or message (HTTP 404)"
        else:
            text = f"the Bot Connector answered HTTP {status}"
        return ConnectorError(text, status, retryable, _retry_after(response))
    if isinstance(exc, (ClientRequestError, requests.RequestException, ConnectionError,
                        TimeoutError)):
        return ConnectorError(f"could not reach the Bot Connector ({type(exc).__name__})",
                              None, True)
    if isinstance(exc, PermissionError):
        return ConnectorError(str(exc) or "could not get a Bot Framework token", None, False)
    return ConnectorError(f"unexpected error talking to Teams ({type(exc).__name__})",
                          None, False)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    after = exc.retry_after if isinstance(exc, ConnectorError) else None
    if after is not None:
        return min(after, MAX_RETRY_AFTER)
    return float(min(0.25 * (2 ** (state.attempt_number - 1)), 4.0))


def _is_retryable(exc: BaseException) -> bool:
    # 429 is not retried in the call: the delivery reschedules it (RateLimited).
    return isinstance(exc, ConnectorError) and exc.retryable and exc.status != 429 and not (
        exc.retry_after is not None and exc.retry_after > MAX_RETRY_AFTER)


def _no_connector_retries(context: TurnContext, adapter: CloudAdapter) -> None:
    client = context.turn_state.get(adapter.BOT_CONNECTOR_CLIENT_KEY)
    config = getattr(client, "config", None)
    if config is None:
        return
    # The requests session may already hold this Retry object: change it in place.
    policy = config.retry_policy.policy
    policy.total = policy.connect = policy.read = 0
    policy.status_forcelist = frozenset()
    policy.respect_retry_after_header = False
    policy.raise_on_status = False
    config.connection.timeout = CALL_TIMEOUT


class TeamsMessenger:
    """Messenger for Microsoft Teams.

    Args:
        settings: the Teams settings (app id, password, tenant, URLs, configured names).
        rt: the runtime (Redis for conversation references, the HMAC key for buttons).
        authentication: botbuilder authentication to use (built from ``settings`` when
            omitted).
    """

    kind = "teams"
    repost_safe = False  # the Bot Connector lists no messages: see find_posted
    limit: SendLimit | None = TEAMS_LIMIT

    def __init__(self, settings: Settings, rt: Runtime,
                 authentication: BotFrameworkAuthentication | None = None) -> None:
        if not settings.microsoft_app_id:
            raise ValueError("MICROSOFT_APP_ID is not set")
        self.app_id = settings.microsoft_app_id
        self.hmac_key = rt.hmac_key
        self._public_url = settings.public_url
        self.book = ConversationBook(rt.redis, rt.keys, settings.teams_conversations)
        self.adapter = CloudAdapter(authentication or build_authentication(settings))

    # --- the Messenger protocol ---------------------------------------------------------
    async def post(self, view: CardView, destination: str) -> dict[str, Any]:
        saved = await self._resolve(destination)
        activity = card_activity(render_card(view, self.hmac_key), view)

        async def send(context: TurnContext) -> str:
            response = await context.send_activity(activity)
            if response is None or not response.id:
                raise ConnectorError("the Bot Connector returned no message id", None, False)
            return str(response.id)

        activity_id = await self._call(saved.reference, send, "post")
        reference = saved.reference
        return {"conversation_id": saved.conversation_id, "activity_id": activity_id,
                "service_url": reference.service_url,
                "tenant_id": reference.conversation.tenant_id if reference.conversation
                else None}

    async def update(self, view: CardView, destination: str, ref: dict[str, Any], *,
                     thread_votes: bool = True) -> None:
        activity = card_activity(render_card(view, self.hmac_key), view)
        await self._replace(ref, activity)

    async def _replace(self, ref: dict[str, Any], activity: Activity) -> None:
        reference = await self._reference_for(ref)
        activity.id = str(ref["activity_id"])

        async def replace(context: TurnContext) -> None:
            await context.update_activity(activity)

        await self._call(reference, replace, "update")

    async def post_digest(self, views: Sequence[CardView], destination: str,
                          digest_id: str) -> dict[str, Any]:
        """One card listing several requests (more than the rate allows one card each)."""
        saved = await self._resolve(destination)
        activity = digest_activity(views, **self._digest_buttons(destination, digest_id))

        async def send(context: TurnContext) -> str:
            response = await context.send_activity(activity)
            if response is None or not response.id:
                raise ConnectorError("the Bot Connector returned no message id", None, False)
            return str(response.id)

        activity_id = await self._call(saved.reference, send, "post")
        reference = saved.reference
        return {"conversation_id": saved.conversation_id, "activity_id": activity_id,
                "service_url": reference.service_url,
                "tenant_id": reference.conversation.tenant_id if reference.conversation
                else None}

    def _digest_buttons(self, destination: str, digest_id: str) -> dict[str, Any]:
        """Signoff's key, the signed target and the inbox's address for a digest's buttons."""
        base = (self._public_url or "").rstrip("/")
        return {"key": self.hmac_key,
                "target": batch.digest_target(slot(self.kind, destination), digest_id),
                "inbox": f"{base}/inbox" if base.startswith(("https://", "http://")) else ""}

    async def update_digest(self, views: Sequence[CardView], destination: str,
                            ref: dict[str, Any], digest_id: str) -> None:
        await self._replace(ref, digest_activity(
            views, **self._digest_buttons(destination, digest_id)))

    async def tell(self, destination: str, text: str) -> None:
        saved = await self._resolve(destination)
        message = MessageFactory.text(text)

        async def send(context: TurnContext) -> None:
            await context.send_activity(message)

        await self._call(saved.reference, send, "message")

    async def find_posted(self, view: CardView, destination: str) -> dict[str, Any] | None:
        """Teams gives a bot no way to list a conversation's messages, so there is nothing
        to look up: the notify job records each post as soon as :meth:`post` returns, and
        that record is what keeps a retried job from posting twice."""
        return None

    # --- internals ----------------------------------------------------------------------
    async def _resolve(self, destination: str) -> SavedConversation:
        saved = await asyncio.to_thread(self.book.resolve, destination)
        if saved is None:
            raise DeliveryError(
                f"no Teams conversation is named {destination!r}: install the Signoff app "
                "there, or map the name with SIGNOFF_TEAMS_CONVERSATIONS",
                retryable=False)
        return saved

    async def _reference_for(self, ref: dict[str, Any]) -> ConversationReference:
        conversation_id = str(ref.get("conversation_id") or "")
        saved = await asyncio.to_thread(self.book.get, conversation_id)
        if saved is not None:
            return saved.reference
        if not ref.get("service_url") or not conversation_id:
            raise DeliveryError("the posted card's reference is incomplete", retryable=False)
        # The conversation was forgotten (the app was removed), yet the message may remain.
        return ConversationReference(
            channel_id=Channels.ms_teams,
            service_url=str(ref["service_url"]),
            conversation=ConversationAccount(id=conversation_id,
                                             tenant_id=ref.get("tenant_id")),
            bot=ChannelAccount(id=f"28:{self.app_id}"),
        )

    async def _call(self, reference: ConversationReference,
                    operation: Callable[[TurnContext], Awaitable[T]], what: str) -> T:
        results: list[T] = []

        async def logic(context: TurnContext) -> None:
            _no_connector_retries(context, self.adapter)
            results.append(await operation(context))

        async def attempt() -> None:
            results.clear()
            try:
                await asyncio.wait_for(
                    self.adapter.continue_conversation(reference, logic, self.app_id),
                    timeout=CALL_TIMEOUT)
            except Exception as exc:
                raise classify(exc) from exc

        try:
            async for try_ in AsyncRetrying(stop=stop_after_attempt(ATTEMPTS), wait=_wait,
                                            retry=retry_if_exception(_is_retryable),
                                            reraise=True):
                with try_:
                    await attempt()
        except ConnectorError as exc:
            if exc.status == 429:
                raise RateLimited(f"Teams {what} failed: {exc}",
                                  retry_after=exc.retry_after or 1.0) from exc
            log.warning("Teams %s failed: %s", what, exc)
            ambiguous = what == "post" and (exc.status is None or exc.status >= 500)
            raise DeliveryError(f"Teams {what} failed: {exc}", retryable=exc.retryable,
                                ambiguous=ambiguous and exc.retryable) from exc
        if not results:
            raise DeliveryError(f"Teams {what} did not run", retryable=True)
        return results[0]


def card_activity(card: dict[str, Any], view: CardView) -> Activity:
    """A message activity carrying one Adaptive Card."""
    activity = MessageFactory.attachment(Attachment(content_type=CONTENT_TYPE, content=card))
    activity.type = ActivityTypes.message
    # Notification and chat-list preview text: ids and actions are pattern-checked.
    activity.summary = f"Approval request {view.request_id}: {view.title}"
    return activity


def digest_activity(views: Sequence[CardView], key: bytes | None = None, target: str = "",
                    inbox: str = "") -> Activity:
    """A card for several requests: the groups of similar ones ("14 × db.export from
    agent:etl-bot"), one line each, and (with ``key`` and ``target``) *Approve all I may
    decide* and *Deny all*, signed like every button and naming how many requests this
    rendering lists (each goes through ``submit_vote``); *Review each* opens the inbox."""
    waiting = sum(1 for v in views if v.open)
    groups = batch.group_lines([(v.action, v.requester) for v in views])
    body: list[dict[str, Any]] = [
        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
         "text": groups[0] if len(groups) == 1 else
         f"{len(views)} approval requests arrived faster than one card each"}]
    if len(groups) > 1:
        body.append({"type": "TextBlock", "wrap": True, "text": "; ".join(groups)[:600]})
    for v in list(views)[:DIGEST_MAX_LINES]:
        state = f"waiting · {v.progress}" if v.open else v.final_line()
        body.append({"type": "TextBlock", "wrap": True, "spacing": "Small",
                     "text": f"{v.request_id} · {v.title} on {v.resource} · {v.requester} · "
                             f"{state}"[:600]})
    if len(views) > DIGEST_MAX_LINES:
        body.append({"type": "TextBlock", "text": f"… and {len(views) - DIGEST_MAX_LINES} more"})
    body.append({"type": "TextBlock", "isSubtle": True, "wrap": True,
                 "text": f"{waiting} still waiting: decide each in the Signoff inbox."})
    card: dict[str, Any] = {"type": "AdaptiveCard", "version": "1.5",
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "body": body}
    actions: list[dict[str, Any]] = []
    if inbox:
        actions.append({"type": "Action.OpenUrl", "title": "Review each", "url": inbox})
    if key is not None and target and waiting:
        actions.append({"type": "Action.Execute", "title": "Approve all I may decide",
                        "verb": VERB_DIGEST_APPROVE, "style": "positive",
                        "data": clicks.sign_dict(key, target, len(views), "approve")})
        actions.append({"type": "Action.Execute", "title": "Deny all",
                        "verb": VERB_DIGEST_DENY, "style": "destructive",
                        "data": clicks.sign_dict(key, target, len(views), "deny")})
    if actions:
        card["actions"] = actions
    activity = MessageFactory.attachment(Attachment(content_type=CONTENT_TYPE, content=card))
    activity.type = ActivityTypes.message
    activity.summary = f"{len(views)} approval requests ({waiting} waiting)"
    return activity
