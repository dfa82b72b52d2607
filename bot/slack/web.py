"""Slack's inbound side: a slack-bolt ``AsyncApp`` mounted at ``POST /slack/events``.

Order of checks for every click, all before ``ack()`` (Slack wants an answer within 3 s):

1. bolt's request-verification middleware: the ``v0`` HMAC-SHA256 signature over
   ``v0:{timestamp}:{body}`` with the signing secret, and the 5-minute timestamp window. A
   failure is a 401 and nothing else runs.
2. Signoff's own HMAC in the button value (:mod:`signoff.clicks`): the button was minted by
   Signoff for this request and this choice.
3. The Slack user is mapped to a person through the policy directory only (unknown: refused).
4. :func:`signoff.lifecycle.submit_vote`: separation of duties, then one atomic Lua vote that
   also refuses a replayed click (the nonce is the user and Slack's ``action_ts``) and counts
   the quorum.

The listener then acks; the slow Slack calls (the ephemeral answer, opening a modal) run in
bolt's lazy listeners after the HTTP response, and card updates run in rq jobs that
``submit_vote`` enqueued. bolt is configured with ``process_before_response=True`` so that
the ack is returned the moment the listener calls it, rather than polled for.

``setup(app, rt)`` mounts nothing unless the bot token and the signing secret are set; with
``SLACK_APP_TOKEN`` it also connects over Socket Mode (:mod:`bot.slack.socket`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from bot import commands
from bot.appkeys import RT
from bot.slack import render
from bot.slack.messenger import client_for
from signoff import batch, clicks, edits, lifecycle
from signoff.audit import Event
from signoff.cardview.view import CardView
from signoff.models import Status
from signoff.standing import parse_window

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
COMMAND = "/signoff"
BOLT: web.AppKey[AsyncApp] = web.AppKey("slack_bolt", AsyncApp)

NOT_OURS = ("This button was not issued by Signoff for this request, so nothing was recorded.")
TRY_AGAIN = "Signoff could not record that just now; nothing changed. Please try again."


@dataclass(frozen=True)
class _Outcome:
    """What the ack step decided, for the lazy step (kept JSON-simple: bolt deep-copies it)."""

    say: str = ""
    modal: str = ""
    ok: bool = False


class SlackHandlers:
    """The bolt listeners, bound to one runtime.

    Args:
        rt: the runtime (store, policy, audit, queue).
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.key = rt.hmac_key

    # --- identity -------------------------------------------------------------------------
    def person(self, slack_user: str | None) -> Person | None:
        """The directory person with this Slack user id (``None``: not an approver)."""
        return self.rt.policy.directory.by_slack(slack_user)

    def mention(self, email: str) -> str | None:
        found = self.rt.policy.directory.person(email)
        return found.slack_id if found is not None else None

    # --- votes ----------------------------------------------------------------------------
    def _vote_sync(self, user: str, value: str, expected: str, nonce: str,
                   comment: str | None = None) -> _Outcome:
        """Steps 2-4 for one click (sync: Redis). Refusals are audited."""
        try:
            click = clicks.verify(self.key, value)
            if click.choice != expected:
                raise clicks.ClickError("the button's choice does not match its action")
        except clicks.ClickError as exc:
            self.rt.audit.append(Event.CLICK_REFUSED, "", f"slack:{user}", channel="slack",
                                 code="bad_button", reason=str(exc))
            return _Outcome(say=NOT_OURS)
        person = self.person(user)
        if click.choice == "deny" and comment is None and self._deny_reasons(click.request_id):
            return _Outcome(modal=click.request_id)  # offer the policy's preset reasons
        # The card's version: a click on a card drawn before an approver's edit is stale.
        reply = lifecycle.submit_vote(self.rt, click.request_id, person, click.choice, comment,
                                      channel="slack", nonce=nonce, actor_label=f"slack:{user}",
                                      card_version=click.version)
        if reply.code == "comment_required" and comment is None:
            return _Outcome(modal=click.request_id)
        return _Outcome(say=reply.message, ok=reply.ok)

    def _deny_reasons(self, request_id: str) -> bool:
        """Whether the request's rule offers preset deny reasons (deny_reasons)."""
        record = self.rt.store.get(request_id, with_votes=False)
        evaluation = record.json("evaluation", {}) if record is not None else {}
        requirement = evaluation.get("requirement", {}) if isinstance(evaluation, dict) else {}
        return bool(requirement.get("deny_reasons"))

    async def _decide_ack(self, ack: Any, body: dict[str, Any], context: Any, approve_id: str,
                          decide: Callable[[str, str, str, str], _Outcome], what: str) -> None:
        """An Approve / Deny button (a card's or a digest's): ``decide(user, signed value,
        expected choice, nonce)`` verifies and votes in a thread, then the click is acked."""
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id") or "")
        expected = "approve" if action.get("action_id") == approve_id else "deny"
        # Slack's action_ts is unique per click; with the user it makes the replay nonce.
        nonce = f"slack:{user}:{action.get('action_ts') or body.get('trigger_id') or ''}"
        try:
            outcome = await asyncio.to_thread(decide, user, str(action.get("value") or ""),
                                              expected, nonce)
        except Exception:
            log.exception("%s from Slack user %s failed", what, user)
            outcome = _Outcome(say=TRY_AGAIN)
        context["signoff"] = {"say": outcome.say, "modal": outcome.modal}
        await ack()

    async def vote_ack(self, ack: Any, body: dict[str, Any], context: Any) -> None:
        """Approve / Deny buttons: verify, vote atomically, then ack."""
        await self._decide_ack(ack, body, context, render.APPROVE, self._vote_sync, "vote")

    async def _open_modal(self, body: dict[str, Any], client: AsyncWebClient, respond: Any,
                          build: Callable[[CardView, str, str], dict[str, Any] | None],
                          refusal: str) -> None:
        """Open the modal ``build`` draws for a signed button's pending request (None from
        ``build``: the rule does not offer it, and the clicker is told ``refusal``)."""
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id") or "")
        value = str(action.get("value") or "")

        def load() -> tuple[str, dict[str, Any] | None]:
            try:
                click = clicks.verify(self.key, value)
            except clicks.ClickError:
                return NOT_OURS, None
            record = self.rt.store.get(click.request_id)
            if record is None or record.status is not Status.PENDING:
                return "This request is no longer waiting for a decision.", None
            modal = build(commands.view_for(record, self.person(user)), value,
                          _channel_of(body))
            return ("", modal) if modal is not None else (refusal, None)

        say, modal = await asyncio.to_thread(load)
        if modal is not None:
            await _slack(client.views_open(trigger_id=body.get("trigger_id"), view=modal))
        elif say:
            await _tell_clicker(body, client, respond, say)

    async def standing_open(self, body: dict[str, Any], client: AsyncWebClient,
                            respond: Any) -> None:
        """"Approve for a while…": the modal to choose the window."""
        await self._open_modal(
            body, client, respond,
            lambda view, value, channel: (render.standing_modal(view, value, channel)
                                          if view.standing_max else None),
            "This rule does not allow standing approvals.")

    async def standing_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any],
                              context: Any) -> None:
        """Approve with the chosen window, through ``submit_vote`` (the signed value and its
        card version re-verified)."""
        user = str((body.get("user") or {}).get("id") or "")
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except json.JSONDecodeError:
            meta = {}
        values = (view.get("state") or {}).get("values") or {}
        picked = ((values.get(render.STANDING_BLOCK) or {}).get(render.STANDING_INPUT) or {}
                  ).get("selected_option") or {}
        window = parse_window(str(picked.get("value") or ""))
        nonce = f"slack:{user}:view:{view.get('id') or body.get('trigger_id') or ''}"

        def vote() -> _Outcome:
            try:
                click = clicks.verify(self.key, str(meta.get("v") or ""))
                if click.choice != "approve":
                    raise clicks.ClickError("not an approve button")
            except clicks.ClickError as exc:
                self.rt.audit.append(Event.CLICK_REFUSED, "", f"slack:{user}", channel="slack",
                                     code="bad_button", reason=str(exc))
                return _Outcome(say=NOT_OURS)
            if window is None:
                return _Outcome(say="Choose how long the approval stands.")
            reply = lifecycle.submit_vote(self.rt, click.request_id, self.person(user),
                                          "approve", channel="slack", nonce=nonce,
                                          actor_label=f"slack:{user}", standing=window,
                                          card_version=click.version)
            return _Outcome(say=reply.message, ok=reply.ok)

        try:
            outcome = await asyncio.to_thread(vote)
        except Exception:
            log.exception("standing approval from Slack user %s failed", user)
            outcome = _Outcome(say=TRY_AGAIN)
        if not outcome.ok:
            await ack(response_action="errors", errors={render.STANDING_BLOCK: outcome.say[:150]})
            return
        context["signoff"] = {"say": outcome.say, "channel": str(meta.get("c") or "")}
        await ack()

    async def edit_open(self, body: dict[str, Any], client: AsyncWebClient,
                        respond: Any) -> None:
        """"Edit…": the modal with the rule's editable params (for people who may decide)."""
        await self._open_modal(
            body, client, respond,
            lambda view, value, channel: (render.edit_modal(view, value, channel)
                                          if view.editable else None),
            "This request has nothing an approver may edit.")

    def _edit_sync(self, user: str, value: str, changes: dict[str, str], nonce: str
                   ) -> _Outcome:
        try:
            click = clicks.verify(self.key, value)
            if click.choice != "approve":
                raise clicks.ClickError("not an edit button")
        except clicks.ClickError as exc:
            self.rt.audit.append(Event.CLICK_REFUSED, "", f"slack:{user}", channel="slack",
                                 code="bad_button", reason=str(exc))
            return _Outcome(say=NOT_OURS)
        reply = edits.submit_edit(self.rt, click.request_id, self.person(user), changes,
                                  channel="slack", nonce=nonce, actor_label=f"slack:{user}",
                                  card_version=click.version)
        return _Outcome(say=reply.message, ok=reply.ok)

    async def edit_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any],
                          context: Any) -> None:
        """The edit modal: re-verify the signed value, edit within the bounds and approve, or
        show why not in the modal."""
        user = str((body.get("user") or {}).get("id") or "")
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except json.JSONDecodeError:
            meta = {}
        values = ((view.get("state") or {}).get("values") or {})
        changes = {block[len(render.EDIT_BLOCK):]: str((inputs.get(render.EDIT_INPUT) or {}
                                                        ).get("value") or "")
                   for block, inputs in values.items()
                   if block.startswith(render.EDIT_BLOCK) and isinstance(inputs, dict)}
        nonce = f"slack:{user}:view:{view.get('id') or body.get('trigger_id') or ''}"
        try:
            outcome = await asyncio.to_thread(self._edit_sync, user, str(meta.get("v") or ""),
                                              changes, nonce)
        except Exception:
            log.exception("edit from Slack user %s failed", user)
            outcome = _Outcome(say=TRY_AGAIN)
        if not outcome.ok:
            first = next(iter(values), None)
            await ack(response_action="errors",
                      errors={first or render.EDIT_BLOCK: outcome.say[:150]})
            return
        context["signoff"] = {"say": outcome.say, "channel": str(meta.get("c") or "")}
        await ack()

    def _digest_sync(self, user: str, value: str, expected: str, nonce: str) -> _Outcome:
        """A digest's *Approve all I may decide* / *Deny all*: verify the signed button, then
        each listed request through ``submit_vote`` (:func:`signoff.batch.decide_digest`)."""
        try:
            click = clicks.verify(self.key, value)
            if click.choice != expected or batch.parse_digest_target(click.request_id) is None:
                raise clicks.ClickError("the button's choice or target does not match")
        except clicks.ClickError as exc:
            self.rt.audit.append(Event.CLICK_REFUSED, "", f"slack:{user}", channel="slack",
                                 code="bad_button", reason=str(exc))
            return _Outcome(say=NOT_OURS)
        items = batch.decide_digest(self.rt, click.request_id, click.version, self.person(user),
                                    click.choice, channel="slack", nonce=nonce,
                                    actor_label=f"slack:{user}")
        if items is None:
            return _Outcome(say="That digest is no longer available; decide in the inbox.")
        return _Outcome(say=batch.summary(items), ok=any(i.ok for i in items))

    async def digest_ack(self, ack: Any, body: dict[str, Any], context: Any) -> None:
        """A digest's Approve all I may decide / Deny all."""
        await self._decide_ack(ack, body, context, render.DIGEST_APPROVE, self._digest_sync,
                               "digest decision")

    async def vote_after(self, body: dict[str, Any], client: AsyncWebClient,
                         context: Any, respond: Any) -> None:
        """After the ack: open the deny-reason modal, or tell the clicker what happened."""
        info = context.get("signoff") or {}
        user = str((body.get("user") or {}).get("id") or "")
        channel = _channel_of(body)
        if info.get("modal"):
            record = await asyncio.to_thread(self.rt.store.get, info["modal"])
            if record is None:
                return
            view = commands.view_for(record, self.person(user))
            value = str((body.get("actions") or [{}])[0].get("value") or "")
            await _slack(client.views_open(trigger_id=body.get("trigger_id"),
                                           view=render.deny_modal(view, value, channel)))
            return
        if info.get("say"):
            await _tell_clicker(body, client, respond, info["say"])

    # --- deny with a reason ---------------------------------------------------------------
    async def deny_submit(self, ack: Any, body: dict[str, Any], view: dict[str, Any],
                          context: Any) -> None:
        """The deny-reason modal: re-verify the signed value, record the deny, close or
        show why not in the modal."""
        user = str((body.get("user") or {}).get("id") or "")
        try:
            meta = json.loads(view.get("private_metadata") or "{}")
        except json.JSONDecodeError:
            meta = {}
        values = (view.get("state") or {}).get("values") or {}
        reason = (values.get(render.REASON_BLOCK) or {}).get(render.REASON_INPUT, {}).get(
            "value") or ""
        if not reason.strip():  # a preset reason from the policy (deny_reasons)
            picked = ((values.get(render.PRESET_BLOCK) or {}).get(render.PRESET_INPUT) or {}
                      ).get("selected_option") or {}
            reason = str(picked.get("value") or "")
        if not reason.strip():
            await ack(response_action="errors",
                      errors={render.REASON_BLOCK: "Please give a reason."})
            return
        nonce = f"slack:{user}:view:{view.get('id') or body.get('trigger_id') or ''}"
        try:
            outcome = await asyncio.to_thread(self._vote_sync, user, str(meta.get("v") or ""),
                                              "deny", nonce, reason.strip())
        except Exception:
            log.exception("deny from Slack user %s failed", user)
            outcome = _Outcome(say=TRY_AGAIN)
        if not outcome.ok:
            await ack(response_action="errors", errors={render.REASON_BLOCK: outcome.say})
            return
        context["signoff"] = {"say": outcome.say, "channel": str(meta.get("c") or "")}
        await ack()

    async def deny_after(self, body: dict[str, Any], client: AsyncWebClient,
                         context: Any) -> None:
        info = context.get("signoff") or {}
        user = str((body.get("user") or {}).get("id") or "")
        if info.get("say") and info.get("channel"):
            await _slack(client.chat_postEphemeral(channel=info["channel"], user=user,
                                                   text=info["say"]))

    # --- details --------------------------------------------------------------------------
    async def details_ack(self, ack: Any) -> None:
        await ack()

    async def details_open(self, body: dict[str, Any], client: AsyncWebClient,
                           respond: Any) -> None:
        """"View details": the whole masked payload in a modal, for people in the directory."""
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id") or "")

        def load() -> tuple[str, dict[str, Any] | None]:
            try:
                click = clicks.verify(self.key, str(action.get("value") or ""))
            except clicks.ClickError:
                return NOT_OURS, None
            person = self.person(user)
            if person is None:
                return commands.UNKNOWN_PERSON, None
            record = self.rt.store.get(click.request_id)
            if record is None:
                return f"There is no request {click.request_id}.", None
            view = commands.view_for(record, person)
            return "", render.details_modal(view, now=time.time(), mention=self.mention)

        problem, modal = await asyncio.to_thread(load)
        if modal is not None:
            await _slack(client.views_open(trigger_id=body.get("trigger_id"), view=modal))
        else:
            await _tell_clicker(body, client, respond, problem)

    # --- /signoff -------------------------------------------------------------------------
    async def command_ack(self, ack: Any, body: dict[str, Any]) -> None:
        """``/signoff status|pending|mine|help``: answered in the ack, ephemeral, masked."""
        user = str(body.get("user_id") or "")
        try:
            message = await asyncio.to_thread(self._answer, user, str(body.get("text") or ""))
        except Exception:
            log.exception("/signoff from Slack user %s failed", user)
            message = {"text": TRY_AGAIN}
        await ack(response_type="ephemeral", **message)

    def _answer(self, user: str, text: str) -> dict[str, Any]:
        result = commands.answer(self.rt, self.person(user), text)
        return render.command_message(result, self.key, now=time.time(), mention=self.mention)

    async def page_ack(self, ack: Any) -> None:
        await ack()

    async def page_respond(self, body: dict[str, Any], respond: Any) -> None:
        """"Next page" under a listing: replace the ephemeral answer with the next page."""
        action = (body.get("actions") or [{}])[0]
        user = str((body.get("user") or {}).get("id") or "")
        message = await asyncio.to_thread(self._answer, user, str(action.get("value") or ""))
        try:
            await respond(replace_original=True, response_type="ephemeral", **message)
        except Exception as exc:  # the response_url expired or Slack refused it
            log.warning("could not show the next page: %s", type(exc).__name__)


async def _tell_clicker(body: dict[str, Any], client: AsyncWebClient, respond: Any,
                        text: str) -> None:
    """An ephemeral answer to whoever clicked: on a card, chat.postEphemeral in its channel;
    on an ephemeral message (a /signoff answer, possibly in a channel the app is not in),
    through the click's response_url."""
    container = body.get("container") or {}
    if container.get("is_ephemeral") and body.get("response_url"):
        await _slack(respond(text=text, response_type="ephemeral", replace_original=False))
        return
    channel = _channel_of(body)
    user = str((body.get("user") or {}).get("id") or "")
    if channel and user:
        await _slack(client.chat_postEphemeral(channel=channel, user=user, text=text))


def _channel_of(body: dict[str, Any]) -> str:
    return str((body.get("channel") or {}).get("id")
               or (body.get("container") or {}).get("channel_id") or "")


async def _slack(call: Any) -> None:
    """Await a follow-up Slack call; failures are logged (the vote itself is already safe)."""
    try:
        await call
    except SlackApiError as exc:
        log.warning("Slack follow-up failed: %s", exc.response.get("error"))
    except Exception as exc:
        log.warning("Slack follow-up failed: %s", type(exc).__name__)


def build_bolt_app(rt: Runtime, client: AsyncWebClient | None = None) -> AsyncApp:
    """The slack-bolt app with Signoff's listeners.

    Args:
        rt: the runtime; ``settings.slack_bot_token`` must be set.
        client: the Web API client (default: one against ``settings.slack_api_url`` with
            slack_sdk's retry handlers, few rate-limit retries since users are waiting).
    """
    settings = rt.settings
    secret = settings.slack_signing_secret.get_secret_value() \
        if settings.slack_signing_secret is not None else ""
    client = client or client_for(settings, timeout=5, rate_limit_retries=1,
                                  server_error_retries=1, connection_retries=1)
    bolt = AsyncApp(
        name="signoff",
        client=client,
        signing_secret=secret,  # passed explicitly: bolt would otherwise read the environment
        process_before_response=True,
        request_verification_enabled=True,
        url_verification_enabled=True,
        ssl_check_enabled=True,
    )
    h = SlackHandlers(rt)
    bolt.action(render.APPROVE)(ack=h.vote_ack, lazy=[h.vote_after])
    bolt.action(render.DENY)(ack=h.vote_ack, lazy=[h.vote_after])
    bolt.action(render.DETAILS)(ack=h.details_ack, lazy=[h.details_open])
    # Step-up link buttons: the browser opens the inbox; the click itself only needs an ack.
    bolt.action(render.STEP_UP_APPROVE)(h.details_ack)
    bolt.action(render.STEP_UP_DENY)(h.details_ack)
    bolt.action(render.PAGE)(ack=h.page_ack, lazy=[h.page_respond])
    bolt.action(render.STANDING)(ack=h.details_ack, lazy=[h.standing_open])
    bolt.view(render.STANDING_CALLBACK)(ack=h.standing_submit, lazy=[h.deny_after])
    bolt.action(render.EDIT)(ack=h.details_ack, lazy=[h.edit_open])
    bolt.view(render.EDIT_CALLBACK)(ack=h.edit_submit, lazy=[h.deny_after])
    bolt.action(render.DIGEST_APPROVE)(ack=h.digest_ack, lazy=[h.vote_after])
    bolt.action(render.DIGEST_DENY)(ack=h.digest_ack, lazy=[h.vote_after])
    bolt.action(render.DIGEST_REVIEW)(h.details_ack)
    bolt.view(render.DENY_CALLBACK)(ack=h.deny_submit, lazy=[h.deny_after])
    bolt.command(COMMAND)(h.command_ack)
    bolt.error(_on_error)
    return bolt


async def events(request: web.Request) -> web.Response:
    """``POST /slack/events``: hand the raw request to bolt (which verifies it first)."""
    bolt = request.app[BOLT]
    raw = await request.read()
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        # Slack sends UTF-8 only; nothing else can carry a valid signature.
        return web.json_response({"error": "invalid request"}, status=401)
    stamp = request.headers.get("X-Slack-Request-Timestamp", "")
    if not (stamp.isascii() and stamp.isdigit()) or not request.headers.get("X-Slack-Signature"):
        # Unsigned. (bolt's verifier would raise on a timestamp that is not a number: a 500.)
        return web.json_response({"error": "invalid request"}, status=401)
    headers: dict[str, str | Sequence[str]] = {
        k.lower(): request.headers.getall(k) for k in request.headers}
    try:
        bolt_request = AsyncBoltRequest(body=body, query=request.query_string, headers=headers)
        response = await bolt.async_dispatch(bolt_request)
    except MALFORMED as exc:
        # bolt reads some payload fields unchecked while building the request (a "channel"
        # that is not an object) or its error handler's arguments (an empty "actions"):
        # unsigned, that is a 401 like any other; signed, a malformed payload (400).
        secret = request.app[RT].settings.slack_signing_secret
        signed = secret is not None and SignatureVerifier(secret.get_secret_value()).is_valid(
            body, stamp, request.headers.get("X-Slack-Signature", ""))
        log.warning("%s Slack payload refused (%s)", "malformed" if signed else "unsigned",
                    type(exc).__name__)
        return web.json_response({"error": "malformed request" if signed else
                                  "invalid request"}, status=400 if signed else 401)
    return await to_aiohttp_response(response)


MALFORMED = (AttributeError, IndexError, KeyError, TypeError, ValueError)


async def _on_error(error: Exception, logger: Any) -> BoltResponse | None:
    """bolt's error handler: bolt reads some fields of a signed payload unchecked (an empty
    ``actions`` list raises in its matcher); Slack never sends such a payload, so it is a
    400 (malformed), not a 500. Any other error stays a 500."""
    if isinstance(error, MALFORMED):
        log.warning("malformed Slack payload refused (%s)", type(error).__name__)
        return BoltResponse(status=400, body='{"error": "malformed request"}',
                            headers={"content-type": "application/json"})
    log.error("Slack request failed: %s", type(error).__name__, exc_info=error)
    return None


def setup(app: web.Application, rt: Runtime) -> None:
    """Mount Slack when it is configured (``bot.app.create_app`` calls this)."""
    settings = rt.settings
    if settings.slack_bot_token is None or not settings.slack_bot_token.get_secret_value():
        return
    http = settings.slack_signing_secret is not None and bool(
        settings.slack_signing_secret.get_secret_value())
    socket = settings.slack_app_token is not None and bool(
        settings.slack_app_token.get_secret_value())
    if not http and not socket:
        log.warning("SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (HTTP) nor "
                    "SLACK_APP_TOKEN (Socket Mode) is: Slack clicks cannot be received")
        return
    bolt = build_bolt_app(rt)
    app[BOLT] = bolt
    if http:
        app.router.add_post(EVENTS_PATH, events)
    if socket:
        # Socket Mode's client is imported only when Socket Mode is on.
        from bot.slack.socket import attach

        attach(app, bolt, settings)
