"""Proactive Teams cards: post, update in place, short messages.

The workers call this through :class:`signoff.messenger.Messenger`. Each call goes through
botbuilder's Bot Connector client (``ConnectorClient.conversations``) with a saved conversation
reference (:mod:`bot.teams.conversations`) applied to the activity, exactly as a proactive
turn (``CloudAdapter.continue_conversation``) would send it; posting uses
``send_to_conversation`` / ``reply_to_activity`` and updating ``update_activity`` on the posted
activity id. The connector client comes from the adapter's own connector factory (the same
credentials and token cache) and is kept per service URL: a proactive turn would build a new
connector client and a user-token client for every call (and open a new connection), which
was most of a worker's CPU per Teams card (``bench/teams_calls.py``).

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
from copy import copy
from typing import TYPE_CHECKING, Any, TypeVar, cast

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
    ResourceResponse,
)
from botframework.connector import Channels
from botframework.connector.aio import ConnectorClient
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


def _no_connector_retries(client: ConnectorClient) -> None:
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
        self._connectors: dict[str, ConnectorClient] = {}

    # --- the Messenger protocol ---------------------------------------------------------
    async def post(self, view: CardView, destination: str) -> dict[str, Any]:
        saved = await self._resolve(destination)
        activity = card_activity(render_card(view, self.hmac_key), view)
        activity_id = await self._call(saved.reference, _sender(activity), "post")
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
        activity_id = str(ref["activity_id"])

        async def replace(client: ConnectorClient, reference: ConversationReference) -> None:
            sent = TurnContext.apply_conversation_reference(activity, reference)
            sent.id = activity_id
            await _connector_call(client, "update_activity", sent, activity_id)

        await self._call(reference, replace, "update")

    async def post_digest(self, views: Sequence[CardView], destination: str,
                          digest_id: str) -> dict[str, Any]:
        """One card listing several requests (more than the rate allows one card each)."""
        saved = await self._resolve(destination)
        activity = digest_activity(views, **self._digest_buttons(destination, digest_id))
        activity_id = await self._call(saved.reference, _sender(activity), "post")
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
        await self._call(saved.reference, _sender(MessageFactory.text(text), need_id=False),
                         "message")

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

    async def _connector(self, service_url: str) -> ConnectorClient:
        """The Bot Connector client for ``service_url``, built once by the adapter's connector
        factory for the bot's own identity (as a proactive turn builds it)."""
        client = self._connectors.get(service_url)
        if client is None:
            auth = self.adapter.bot_framework_authentication
            factory = auth.create_connector_factory(
                self.adapter.create_claims_identity(self.app_id))
            client = await factory.create(service_url, auth.get_originating_audience())
            _no_connector_retries(client)
            self._connectors[service_url] = client
        return client

    async def _call(self, reference: ConversationReference,
                    operation: Callable[[ConnectorClient, ConversationReference], Awaitable[T]],
                    what: str) -> T:
        results: list[T] = []

        async def attempt() -> None:
            results.clear()
            try:
                client = await self._connector(str(reference.service_url))
                results.append(await asyncio.wait_for(operation(client, reference),
                                                      timeout=CALL_TIMEOUT))
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


# The Bot Connector operations Signoff calls: (HTTP method, botbuilder's operation whose URL
# template is used).
_OPERATIONS = {"send_to_conversation": "POST", "reply_to_activity": "POST",
               "update_activity": "PUT"}


async def _connector_call(client: ConnectorClient, operation: str, activity: Activity,
                          activity_id: str | None = None) -> ResourceResponse | None:
    """One Bot Connector operation, as botbuilder's ``client.conversations.<operation>`` sends
    it (its URL template, headers, credentials, HTTP pipeline and error type), except that
    an attachment's content (the Adaptive Card, a plain JSON object) goes into the body as it
    is. botbuilder's generated operation runs the whole activity through msrest's generic
    deserialize-then-serialize walk, card included, which cost more CPU than everything else
    in a card post (bench/teams_calls.py); only the activity around the card is serialized
    by msrest here."""
    ops = client.conversations
    template = getattr(ops, operation).metadata["url"]
    args = {"conversationId": ops._serialize.url("conversation_id", activity.conversation.id,
                                                 "str")}
    if activity_id is not None:
        args["activityId"] = ops._serialize.url("activity_id", activity_id, "str")
    url = ops._client.format_url(template, **args)
    headers = {"Accept": "application/json", "Content-Type": "application/json; charset=utf-8"}
    request = (ops._client.put if _OPERATIONS[operation] == "PUT" else ops._client.post)(
        url, {}, headers, _wire(activity))
    response = await ops._client.async_send(request, stream=False)
    if response.status_code not in (200, 201, 202):
        raise ErrorResponseException(ops._deserialize, response)
    if response.status_code == 202 or not response.text():
        return None
    return cast(ResourceResponse, ops._deserialize("ResourceResponse", response))


def _wire(activity: Activity) -> dict[str, Any]:
    """The activity's JSON: msrest serializes everything but the attachments' contents,
    which are JSON objects already and are put in as they are."""
    attachments = list(activity.attachments or [])
    contents = [a.content for a in attachments]
    try:
        for a in attachments:
            a.content = None
        body = cast(dict[str, Any], activity.serialize())
    finally:
        for a, content in zip(attachments, contents, strict=True):
            a.content = content
    for wire, content in zip(body.get("attachments") or [], contents, strict=True):
        if content is not None:
            wire["content"] = content
    return body


def _sender(activity: Activity, need_id: bool = True
            ) -> Callable[[ConnectorClient, ConversationReference], Awaitable[str]]:
    """Send ``activity`` into the referenced conversation as a proactive turn's
    ``send_activity`` does (the reference applied; a reply to the conversation's activity when
    it names one); returns the new message's id."""

    async def send(client: ConnectorClient, reference: ConversationReference) -> str:
        sent = TurnContext.apply_conversation_reference(copy(activity), reference)
        sent.id = None
        sent.input_hint = sent.input_hint or "acceptingInput"
        if sent.reply_to_id:
            response = await _connector_call(client, "reply_to_activity", sent, sent.reply_to_id)
        else:
            response = await _connector_call(client, "send_to_conversation", sent)
        if need_id and (response is None or not response.id):
            raise ConnectorError("the Bot Connector returned no message id", None, False)
        return str(response.id) if response is not None and response.id else ""

    return send


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
