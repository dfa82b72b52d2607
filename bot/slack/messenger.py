"""The outbound side of Slack: post, update and find approval cards, and send short messages.

Workers use :class:`SlackMessenger` through :class:`signoff.messenger.Messenger`. Every call goes
through slack_sdk's ``AsyncWebClient`` (``base_url`` = ``SIGNOFF_SLACK_API_URL``, so a local
fake or proxy can stand in for Slack) with slack_sdk's own retry handlers:

- HTTP 429: never waited out here. The call raises :class:`~signoff.messenger.RateLimited` with
  Slack's ``Retry-After``, and the delivery reschedules that channel's work for then (a 429
  means Slack did nothing, so trying again later is safe for every method). A worker never
  sleeps through a rate limit, and other channels' cards go on meanwhile.
- 5xx and connection errors (:class:`AsyncServerErrorRetryHandler`,
  :class:`AsyncConnectionErrorRetryHandler`) are retried by the library only for idempotent
  calls (``chat.update``, reads). For ``chat.postMessage`` such a failure is ambiguous (Slack
  may have posted the message before failing), so before trying again the messenger looks for
  the card it may already have posted (:meth:`SlackMessenger.find_posted`, by message
  metadata): a retry never posts a second card. A first post does not look: reading the
  channel's history is only for a retry that may follow a post that went through.

Slack allows about one message per second per channel, with short bursts
(:data:`SLACK_LIMIT`); a channel that would get more cards than that gets a digest
(:meth:`SlackMessenger.post_digest`) that lists them, updated as they are decided.

Whatever still fails is raised as :class:`~signoff.messenger.DeliveryError` (``retryable`` tells
the job whether rq should try again); tokens never appear in messages.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack import render
from policy import PolicyHolder
from signoff import batch, clicks
from signoff.cards import slot
from signoff.cardview.view import CardView
from signoff.messenger import DeliveryError, RateLimited, SendLimit
from signoff.settings import Settings

log = logging.getLogger(__name__)

# Slack ids: channels C…, private channels G…, DMs D…; users U… / W… (Enterprise Grid).
_CONVERSATION_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
# ok:false codes worth another try later; every other Slack error code is permanent
# (channel_not_found, invalid_blocks, not_authed, missing_scope, ...).
_RETRYABLE_CODES = frozenset({"ratelimited", "internal_error", "fatal_error",
                              "service_unavailable", "request_timeout"})
HISTORY_PAGES = 5
LIST_PAGES = 20
# chat.postMessage: "1 message per second per channel, short bursts allowed" (Slack's rate
# limit documentation). The delivery keeps under it; the fake enforces it.
SLACK_LIMIT = SendLimit(per_second=1.0, burst=6.0, per="destination")
DIGEST_EVENT = "signoff_digest"
DIGEST_MAX_LINES = 40


class _Ambiguous(DeliveryError):
    """A failure after which Slack may or may not have carried out the call (5xx, timeout)."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable, ambiguous=True)


def client_for(settings: Settings, *, timeout: int = 10, rate_limit_retries: int = 5,
               server_error_retries: int = 2, connection_retries: int = 2,
               idempotent: bool = True) -> AsyncWebClient:
    """An ``AsyncWebClient`` against ``settings.slack_api_url`` with slack_sdk's retry handlers.

    Args:
        settings: needs ``slack_bot_token``.
        timeout: seconds per HTTP call.
        rate_limit_retries: how many 429s in a row to wait out (each honours Retry-After);
            0 (the messenger's workers) raises at once instead.
        server_error_retries: retries after HTTP 500/503 (idempotent clients only).
        connection_retries: retries after a dropped connection (idempotent clients only).
        idempotent: False for the client that posts messages: it retries 429 only.
    """
    if settings.slack_bot_token is None:
        raise ValueError("SLACK_BOT_TOKEN is not set")
    handlers: list[Any] = []
    if rate_limit_retries:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=rate_limit_retries))
    if idempotent:
        handlers += [AsyncServerErrorRetryHandler(max_retry_count=server_error_retries),
                     AsyncConnectionErrorRetryHandler(max_retry_count=connection_retries)]
    return AsyncWebClient(token=settings.slack_bot_token.get_secret_value(),
                          base_url=settings.slack_api_url, timeout=timeout,
                          retry_handlers=handlers)


def _error(method: str, exc: Exception) -> DeliveryError:
    """A DeliveryError that names the method and Slack's error code (never the token)."""
    if isinstance(exc, SlackApiError):
        status = exc.response.status_code
        code = ""
        try:
            code = str(exc.response.get("error") or "")
        except (AttributeError, TypeError):
            code = ""
        if status == 429:
            try:
                after = float(exc.response.headers.get("Retry-After") or 1)
            except (AttributeError, TypeError, ValueError):
                after = 1.0
            return RateLimited(f"{method}: rate limited by Slack", retry_after=after)
        if status >= 500:
            return _Ambiguous(f"{method}: Slack answered HTTP {status}", retryable=True)
        code = code or f"HTTP {status}"
        return DeliveryError(f"{method}: {code}", retryable=code in _RETRYABLE_CODES)
    if isinstance(exc, TimeoutError | aiohttp.ClientError):
        return _Ambiguous(f"{method}: {type(exc).__name__} talking to Slack", retryable=True)
    return DeliveryError(f"{method}: {type(exc).__name__}", retryable=False)


def _code(exc: DeliveryError) -> str:
    return str(exc).rpartition(": ")[2]


class SlackMessenger:
    """Posts and updates approval cards in Slack channels and DMs.

    Args:
        settings: Signoff's settings (``slack_bot_token``, ``slack_api_url``, the policy path).
        hmac_key: key for Signoff's own HMAC on button values.
        timeout: seconds per Slack API call.
        rate_limit_retries: 429s waited out per call (each honours ``Retry-After``); 0 (the
            default) raises :class:`~signoff.messenger.RateLimited` at once.
        post_attempts: attempts at posting one message after ambiguous failures (5xx,
            timeouts), each preceded by a search for the message the last attempt may
            have posted.
        mention: maps a person (email) to a Slack user id for ``<@U…>`` mentions; by default
            the policy directory's ``slack`` ids.
        clock: wall clock for "time left" on cards.
    """

    kind = "slack"
    repost_safe = True  # find_posted looks the card up by its message metadata
    limit: SendLimit | None = SLACK_LIMIT

    def __init__(self, settings: Settings, hmac_key: bytes, *, timeout: int = 10,
                 rate_limit_retries: int = 0, post_attempts: int = 3,
                 mention: render.Mention | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self._key = hmac_key
        self._client = client_for(settings, timeout=timeout,
                                  rate_limit_retries=rate_limit_retries)
        self._post_client = client_for(settings, timeout=timeout,
                                       rate_limit_retries=rate_limit_retries, idempotent=False)
        self._timeout = timeout
        self._post_attempts = max(post_attempts, 1)
        self._mention = mention or self._directory_mention
        self._clock = clock
        self._names: dict[str, str] = {}
        self._dms: dict[str, str] = {}
        self._policy: Any = None

    async def bind_loop(self) -> None:
        """Keep one HTTP session (pooled connections) for every call from now on; for a
        long-lived event loop (a worker's delivery loop). Without it each call opens its own."""
        session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._client.session = session
        self._post_client.session = session

    async def unbind_loop(self) -> None:
        """Close the session :meth:`bind_loop` opened (the loop is ending)."""
        session = self._client.session
        self._client.session = self._post_client.session = None
        if session is not None:
            await session.close()

    # --- Messenger ------------------------------------------------------------------------
    async def post(self, view: CardView, destination: str) -> dict[str, Any]:
        """Post the card; returns ``{"channel": id, "ts": ts}`` for updates."""
        channel = await self._resolve(destination)
        card = render.render_card(view, self._key, now=self._clock(), mention=self._mention)
        ts = await self._post_once(channel, view, card, render.card_metadata(view),
                                   lambda: self.find_posted(view, destination))
        return {"channel": channel, "ts": ts}

    async def update(self, view: CardView, destination: str, ref: dict[str, Any], *,
                     thread_votes: bool = True) -> None:
        """Replace a posted card with the current view, then thread a reply per new vote."""
        channel, ts = str(ref["channel"]), str(ref["ts"])
        card = render.render_card(view, self._key, now=self._clock(), mention=self._mention)
        await self._call(self._client, "chat.update", channel=channel, ts=ts,
                         metadata=render.card_metadata(view), **card)
        if thread_votes:
            await self._thread_votes(view, channel, ts)

    async def post_digest(self, views: Sequence[CardView], destination: str,
                          digest_id: str) -> dict[str, Any]:
        """One message listing several requests (the channel's rate has no room for a card
        each). Returns ``{"channel", "ts"}``."""
        channel = await self._resolve(destination)
        content = digest_content(views, now=self._clock(),
                                 **self._digest_buttons(views, destination, digest_id))
        meta = {"event_type": DIGEST_EVENT, "event_payload": {"digest": digest_id}}

        async def find() -> dict[str, Any] | None:
            return await self._find_message(channel, min(v.created_at for v in views),
                                            DIGEST_EVENT, "digest", digest_id)

        ts = await self._post_once(channel, views[0], content, meta, find)
        return {"channel": channel, "ts": ts}

    def _digest_buttons(self, views: Sequence[CardView], destination: str,
                        digest_id: str) -> dict[str, Any]:
        """What a digest's buttons need: Signoff's key, the signed target (the ledger's
        slot and the digest), and the inbox's address for *Review each*."""
        base = (self.settings.public_url or "").rstrip("/")
        return {"key": self._key, "target": batch.digest_target(slot(self.kind, destination),
                                                                digest_id),
                "inbox": f"{base}/inbox" if base.startswith(("https://", "http://")) else ""}

    async def update_digest(self, views: Sequence[CardView], destination: str,
                            ref: dict[str, Any], digest_id: str) -> None:
        content = digest_content(views, now=self._clock(),
                                 **self._digest_buttons(views, destination, digest_id))
        await self._call(self._client, "chat.update", channel=str(ref["channel"]),
                         ts=str(ref["ts"]), **content,
                         metadata={"event_type": DIGEST_EVENT,
                                   "event_payload": {"digest": digest_id}})

    async def tell(self, destination: str, text: str) -> None:
        """A short message to a channel or a person (``U…``: their DM with the app)."""
        channel = await self._resolve(destination)
        await self._call(self._client, "chat.postMessage", channel=channel,
                         text=render.clip_escaped(text, render.FALLBACK_TEXT),
                         unfurl_links=False, unfurl_media=False)

    async def find_posted(self, view: CardView, destination: str) -> dict[str, Any] | None:
        """The card for ``view``'s request already posted at ``destination``, if any.

        Reads the conversation's history since the request was created and matches the
        message metadata Signoff attaches to every card. When the app may not read the
        history (a missing scope, not a member) it cannot have posted there: ``None``.
        """
        try:
            channel = await self._resolve(destination)
            return await self._find_message(channel, view.created_at, render.CARD_EVENT,
                                            "request_id", view.request_id)
        except DeliveryError as exc:
            if exc.retryable:
                raise
            log.info("cannot search %s for an earlier card (%s); posting", destination, exc)
        return None

    async def _find_message(self, channel: str, since: float, event_type: str, key: str,
                            value: str) -> dict[str, Any] | None:
        """A top-level message in ``channel`` since ``since`` whose metadata is
        ``event_type`` with ``event_payload[key] == value``."""
        oldest = f"{max(since - 5.0, 0.0):.6f}"
        cursor: str | None = None
        for _ in range(HISTORY_PAGES):
            args: dict[str, Any] = {"channel": channel, "oldest": oldest, "limit": 200,
                                    "include_all_metadata": True}
            if cursor:
                args["cursor"] = cursor
            resp = await self._call(self._client, "conversations.history", **args)
            for message in resp.get("messages") or []:
                meta = message.get("metadata") or {}
                if meta.get("event_type") == event_type and \
                        (meta.get("event_payload") or {}).get(key) == value:
                    return {"channel": channel, "ts": str(message["ts"])}
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                break
        return None

    # --- helpers ----------------------------------------------------------------------------
    async def _post_once(self, channel: str, view: CardView, content: dict[str, Any],
                         metadata: dict[str, Any],
                         find: Callable[[], Any]) -> str:
        """chat.postMessage that never duplicates: after an ambiguous failure it looks for
        the message (``find``) before posting again."""
        joined = False
        attempt = 0
        while True:
            attempt += 1
            try:
                resp = await self._call(self._post_client, "chat.postMessage", channel=channel,
                                        metadata=metadata, unfurl_links=False,
                                        unfurl_media=False, **content)
                return str(resp["ts"])
            except _Ambiguous:
                if attempt >= self._post_attempts:
                    raise
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5.0))
                found = await find()
                if found:
                    log.info("found the message an earlier attempt posted in %s", channel)
                    return str(found["ts"])
            except DeliveryError as exc:
                if _code(exc) == "not_in_channel" and not joined and channel.startswith("C"):
                    # A public channel the app was not invited to: join it (channels:join)
                    # and try once more; private channels need an invitation.
                    joined = True
                    await self._call(self._client, "conversations.join", channel=channel)
                    continue
                raise

    async def _thread_votes(self, view: CardView, channel: str, ts: str) -> None:
        """One thread reply per vote under the card, each posted once (found by metadata)."""
        if not view.votes:
            return
        resp = await self._call(self._client, "conversations.replies", channel=channel, ts=ts,
                                limit=200, include_all_metadata=True)
        done = set()
        for message in resp.get("messages") or []:
            meta = message.get("metadata") or {}
            payload = meta.get("event_payload") or {}
            if meta.get("event_type") == render.VOTE_EVENT and \
                    payload.get("request_id") == view.request_id:
                done.add((payload.get("person"), payload.get("choice")))
        for vote in view.votes:
            if (vote.person, vote.choice) in done:
                continue
            text = render.vote_reply(view, vote.person, vote.choice, vote.comment, self._mention)
            meta = render.vote_metadata(view, vote.person, vote.choice)

            async def find(person: str = vote.person, choice: str = vote.choice
                           ) -> dict[str, Any] | None:
                again = await self._call(self._client, "conversations.replies", channel=channel,
                                         ts=ts, limit=200, include_all_metadata=True)
                for message in again.get("messages") or []:
                    payload = (message.get("metadata") or {}).get("event_payload") or {}
                    if payload.get("request_id") == view.request_id and \
                            payload.get("person") == person and payload.get("choice") == choice:
                        return {"ts": message["ts"]}
                return None

            await self._post_once(channel, view, {"text": text, "thread_ts": ts}, meta, find)

    async def _resolve(self, destination: str) -> str:
        """A conversation id for a destination: ``#name``, a conversation id or a user id."""
        dest = destination.strip()
        if _CONVERSATION_ID.match(dest):
            return dest
        if _USER_ID.match(dest):
            if dest not in self._dms:
                resp = await self._call(self._client, "conversations.open", users=dest)
                self._dms[dest] = str(resp["channel"]["id"])
            return self._dms[dest]
        name = dest.lstrip("#").lower()
        if name not in self._names:
            await self._load_channels()
        if name not in self._names:
            raise DeliveryError(f"channel {destination} was not found (or the app cannot "
                                "see it: invite it to private channels)", retryable=False)
        return self._names[name]

    async def _load_channels(self) -> None:
        cursor: str | None = None
        for _ in range(LIST_PAGES):
            args: dict[str, Any] = {"types": "public_channel,private_channel",
                                    "exclude_archived": True, "limit": 200}
            if cursor:
                args["cursor"] = cursor
            resp = await self._call(self._client, "conversations.list", **args)
            for ch in resp.get("channels") or []:
                self._names[str(ch["name"]).lower()] = str(ch["id"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor:
                return

    async def _call(self, client: AsyncWebClient, method: str, **kwargs: Any) -> Any:
        """One Web API call through slack_sdk's typed method (``chat.update`` ->
        ``client.chat_update``); every failure becomes a DeliveryError."""
        func = getattr(client, method.replace(".", "_"))
        try:
            return await func(**kwargs)
        except (TimeoutError, SlackApiError, aiohttp.ClientError) as exc:
            raise _error(method, exc) from None

    def _directory_mention(self, person: str) -> str | None:
        """The Slack id the policy directory lists for ``person`` (loaded on first use)."""
        try:
            if self._policy is None:
                self._policy = PolicyHolder(self.settings.policy_path)
            found = self._policy.get().directory.person(person)
        except Exception as exc:  # a broken policy file must not stop cards
            log.warning("no Slack mentions: the policy could not be read (%s)",
                        type(exc).__name__)
            return None
        return found.slack_id if found is not None else None


def digest_content(views: Sequence[CardView], now: float, key: bytes | None = None,
                   target: str = "", inbox: str = "") -> dict[str, Any]:
    """``text`` and ``blocks`` of a digest: the groups of similar requests ("14 × db.export
    from agent:etl-bot"), one line per request (what, who asks, its state), newest decisions
    shown as they happen. With ``key`` and ``target`` it has *Approve all I may decide* and
    *Deny all* (signed like every button; their value names how many requests this rendering
    lists, so a click never decides one it did not show; each goes through ``submit_vote``),
    and *Review each* (the inbox) when ``inbox`` is set."""
    waiting = sum(1 for v in views if v.open)
    groups = batch.group_lines([(v.action, v.requester) for v in views])
    head = (groups[0] if len(groups) == 1 else
            f"{len(views)} approval requests arrived faster than one card each")
    lines = []
    for v in list(views)[:DIGEST_MAX_LINES]:
        state = f"waiting · {v.progress}" if v.open else v.final_line()
        lines.append(f"• `{render.escape(v.request_id)}` *{render.escape(v.title)}* on "
                     f"{render.escape(v.resource)} — {render.escape(v.requester)} — "
                     f"{render.escape(state)}")
    if len(views) > DIGEST_MAX_LINES:
        lines.append(f"… and {len(views) - DIGEST_MAX_LINES} more")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": render.clip_escaped(head, 150)}}]
    chunk: list[str] = []
    size = 0
    for line in lines:  # sections of at most 3,000 characters
        if size + len(line) + 1 > 2900 and chunk:
            blocks.append({"type": "section", "text": {"type": "mrkdwn",
                                                       "text": "\n".join(chunk)}})
            chunk, size = [], 0
        chunk.append(line[:2900])
        size += len(line) + 1
    if chunk:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(chunk)}})
    if len(groups) > 1:
        blocks.insert(1, {"type": "section", "text": {"type": "mrkdwn", "text": render.escape(
            "; ".join(groups))[:2900]}})
    buttons: list[dict[str, Any]] = []
    if inbox:
        buttons.append({"type": "button", "action_id": render.DIGEST_REVIEW, "url": inbox,
                        "text": {"type": "plain_text", "text": "Review each"}})
    if key is not None and target and waiting:
        shown = len(views)
        buttons.append(render.button("Approve all I may decide", render.DIGEST_APPROVE,
                                     clicks.sign(key, target, shown, "approve"), "primary"))
        buttons.append(render.button(
            "Deny all", render.DIGEST_DENY, clicks.sign(key, target, shown, "deny"), "danger",
            confirm={"title": {"type": "plain_text", "text": "Deny them all?"},
                     "text": {"type": "plain_text",
                              "text": f"Deny every one of the {waiting} waiting requests "
                                      "you may decide."},
                     "confirm": {"type": "plain_text", "text": "Deny all"},
                     "deny": {"type": "plain_text", "text": "Cancel"}}))
    if buttons:
        blocks.append({"type": "actions", "block_id": "signoff_digest_actions",
                       "elements": buttons})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"{waiting} still waiting. Decide each in the Signoff inbox or with `/signoff pending`.")}]})
    return {"text": render.clip_escaped(f"{head}: {waiting} waiting", render.FALLBACK_TEXT),
            "blocks": blocks}
