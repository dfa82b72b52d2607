"""The inbox's passkey pages: enrol, list and remove passkeys; decide a step-up request.

- ``GET /inbox/passkeys``: the signed-in person's passkeys, with "Add a passkey" and remove.
- ``POST /inbox/passkeys/options`` and ``POST /inbox/passkeys/register``: the enrolment
  ceremony (JSON; same origin and the session's CSRF token in ``X-CSRF-Token``). Adding a
  passkey needs a sign-in at most :data:`signoff.passkeys.ENROL_FRESH_SIGN_IN` old.
- ``POST /inbox/passkeys/remove``: a form (``credential_id``, ``csrf``).
- ``GET /inbox/r/{id}/step-up?choice=approve|deny``: the step-up page chat buttons open.
- ``POST /inbox/r/{id}/step-up/options`` and ``POST /inbox/r/{id}/step-up``: the assertion
  options for this decision, then the vote with the assertion, through
  :func:`signoff.lifecycle.submit_vote` (which verifies and consumes the proof).

The browser side is ``static/passkeys.js`` (``navigator.credentials``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bot.appkeys import METRICS
from bot.inbox.context import INBOX, InboxContext, safe_next
from bot.inbox.model import load_detail
from bot.inbox.sessions import Session
from bot.web_channel import WebMessenger
from signoff import lifecycle, passkeys, stepup
from signoff.cardview.view import build_view

log = logging.getLogger(__name__)
# Any id the store may hold (agent-scoped ids included); an unknown one is a 404.
RID = "{rid:[^/]{1,200}}"
MAX_BODY = 32_768
MAX_COMMENT = 2000


def _json_error(status: int, message: str, code: str = "refused", **extra: Any
                ) -> web.Response:
    return web.json_response({"ok": False, "code": code, "message": message, **extra},
                             status=status)


async def _json_post(ctx: InboxContext, request: web.Request) -> tuple[Session, dict[str, Any]]:
    """Check a JSON POST from the inbox's own script: same origin, signed-in session, CSRF
    token in the ``X-CSRF-Token`` header (constant-time), then the body.

    Raises:
        web.HTTPException: on any failure (nothing is changed).
    """
    if not ctx.same_origin(request):
        raise web.HTTPForbidden(text="Cross-site request refused.")
    session = await ctx.session(request)
    if session is None or not session.csrf_ok(request.headers.get("X-CSRF-Token")):
        raise web.HTTPForbidden(text="The page expired or did not come from this inbox. "
                                     "Reload it and try again.")
    if not session.person:
        raise web.HTTPForbidden(text="Sign in first.")
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY,
                                            actual_size=request.content_length)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(raw))
    try:
        body = json.loads(raw or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text="The body is not JSON.") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="The body must be a JSON object.")
    return session, body


# --------------------------------------------------------------------------------------------
# enrolment
# --------------------------------------------------------------------------------------------
async def passkeys_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, person = await ctx.require_person(request)
    keys = await asyncio.to_thread(passkeys.store(ctx.rt).list_for, person.id)
    rp = passkeys.RelyingParty.from_settings(ctx.rt.settings)
    fresh = time.time() - session.created <= passkeys.ENROL_FRESH_SIGN_IN
    back = stepup_next(request.query.get("next"))
    return await ctx.render(request, "passkeys.html", person=person, passkeys=keys,
                            available=rp is not None, unavailable=passkeys.UNAVAILABLE,
                            fresh=fresh, back=back, max_passkeys=passkeys.MAX_PASSKEYS)


def stepup_next(value: str | None) -> str:
    """A step-up page to return to after enrolling (anything else: none)."""
    if value and value.startswith("/inbox/r/") and "//" not in value and "\\" not in value \
            and not any(c in value for c in "\r\n\t ") and "/step-up" in value:
        return value
    return ""


async def enrol_options(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, _body = await _json_post(ctx, request)
    if time.time() - session.created > passkeys.ENROL_FRESH_SIGN_IN:
        return _json_error(403, "For your security, sign in again before adding a passkey "
                                "(your sign-in is older than 15 minutes).", "sign_in_again")
    person = ctx.rt.policy.directory.person(session.person or "")
    if person is None:
        return _json_error(403, "You are not in the directory.", "forbidden")
    try:
        ceremony, options = await asyncio.to_thread(passkeys.begin_enrolment, ctx.rt,
                                                    person.id, person.name)
    except passkeys.PasskeyError as exc:
        return _json_error(409, exc.message, exc.code)
    public_key = json.loads(options)
    confirm = public_key.pop("confirm", None)
    return web.json_response({"ok": True, "ceremony": ceremony, "publicKey": public_key,
                              "confirm": confirm})


async def enrol_register(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, body = await _json_post(ctx, request)
    if time.time() - session.created > passkeys.ENROL_FRESH_SIGN_IN:
        return _json_error(403, "For your security, sign in again before adding a passkey.",
                           "sign_in_again")
    person = ctx.rt.policy.directory.person(session.person or "")
    if person is None:
        return _json_error(403, "You are not in the directory.", "forbidden")
    credential, ceremony = body.get("credential"), body.get("ceremony")
    if not isinstance(credential, dict) or not isinstance(ceremony, str):
        return _json_error(400, "The passkey answer is missing.", "invalid")
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    try:
        key = await asyncio.to_thread(passkeys.finish_enrolment, ctx.rt, person.id, ceremony,
                                      credential, name or "", body.get("confirmation"))
    except passkeys.PasskeyError as exc:
        return _json_error(400, exc.message, exc.code)
    await ctx.flash(session, "ok", f"Passkey “{key.name}” added.")
    return web.json_response({"ok": True, "credential_id": key.credential_id,
                              "name": key.name})


async def remove(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, form = await ctx.verified_post(request)
    person = session.person or ""
    credential_id = form.get("credential_id", "")
    result = await asyncio.to_thread(passkeys.remove, ctx.rt, person, credential_id, person)
    if result is passkeys.Removal.REMOVED:
        await ctx.flash(session, "ok", "Passkey removed.")
    else:
        await ctx.flash(session, "error", "That passkey is not yours or was already removed.")
    raise web.HTTPSeeOther("/inbox/passkeys")


# --------------------------------------------------------------------------------------------
# step-up decisions
# --------------------------------------------------------------------------------------------
async def step_up_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    rid = request.match_info["rid"]
    choice = request.query.get("choice", "approve")
    if choice not in ("approve", "deny"):
        choice = "approve"
    found = await ctx.person(request)
    if found is None:
        # Chat buttons land here signed out: come back to this request *and* this choice.
        back = safe_next(stepup.step_up_path(rid, choice))
        raise web.HTTPSeeOther(f"/inbox/login?next={quote(back, safe='/')}")
    person = found[1]
    detail = await asyncio.to_thread(load_detail, ctx.rt, person, rid)
    if detail is None:
        return await ctx.render(request, "missing.html", status=404, person=person, rid=rid)
    count = await asyncio.to_thread(passkeys.store(ctx.rt).count, person.id)
    return await ctx.render(request, "step_up.html", person=person, detail=detail,
                            item=detail.item, view=detail.item.view, choice=choice,
                            has_passkey=count > 0,
                            available=passkeys.RelyingParty.from_settings(
                                ctx.rt.settings) is not None,
                            unavailable=passkeys.UNAVAILABLE,
                            here=stepup.step_up_path(rid, choice))


async def step_up_options(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, body = await _json_post(ctx, request)
    rid = request.match_info["rid"]
    choice = body.get("choice")
    if choice not in ("approve", "deny"):
        return _json_error(400, "Choose approve or deny.", "bad_choice")
    person = ctx.rt.policy.directory.person(session.person or "")
    result = await asyncio.to_thread(lifecycle.step_up_options, ctx.rt, rid, person, choice)
    if isinstance(result, stepup.Refusal):
        extra = {"enrol": f"/inbox/passkeys?next={stepup.step_up_path(rid, choice)}"} if (
            result.code is stepup.Code.NO_PASSKEY) else {}
        return _json_error(409, result.message, result.code.value, **extra)
    options, within = result
    return web.json_response({"ok": True, "publicKey": json.loads(options), "within": within})


async def step_up_vote(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, body = await _json_post(ctx, request)
    rid = request.match_info["rid"]
    choice = body.get("choice")
    comment = body.get("comment") if isinstance(body.get("comment"), str) else ""
    comment = (comment or "").strip()
    if choice not in ("approve", "deny"):
        return _json_error(400, "Choose approve or deny.", "bad_choice")
    if len(comment) > MAX_COMMENT:
        return _json_error(400, f"Keep the reason under {MAX_COMMENT} characters.", "comment")
    credential = body.get("credential")
    if not isinstance(credential, dict):
        return _json_error(400, "The passkey answer is missing.", "step_up_required")

    def _vote() -> lifecycle.VoteReply:
        person = ctx.rt.policy.directory.person(session.person or "")
        return lifecycle.submit_vote(ctx.rt, rid, person, choice, comment or None,
                                     channel="web", actor_label=session.person or "",
                                     step_up=credential)

    reply = await asyncio.to_thread(_vote)
    request.app[METRICS].votes.labels("web", reply.code).inc()
    if not reply.ok:
        return _json_error(409 if reply.code in ("closed", "already_voted") else 403,
                           reply.message, reply.code)
    await ctx.flash(session, "ok", reply.message)
    if reply.record is not None:
        messenger = WebMessenger(ctx.rt.redis, ctx.rt.keys.events)
        await messenger.update(build_view(reply.record), "inbox", {})
    return web.json_response({"ok": True, "message": reply.message, "code": reply.code,
                              "next": f"/inbox/r/{rid}"})


def setup_routes(app: web.Application) -> None:
    """Mount the passkey and step-up routes (the inbox's middleware covers them).

    A policy whose rules need a passkey on a deployment where passkeys cannot work (no
    public address) is said once at start: such votes are refused until it is set.
    """
    rt = app[INBOX].rt
    if passkeys.RelyingParty.from_settings(rt.settings) is None:
        needing = [r.id for r in rt.policy.rules if r.requirement.step_up]
        if needing:
            log.error("passkey step-up: rules %s need a passkey, but %s Votes on them are "
                      "refused until then.", ", ".join(needing), passkeys.UNAVAILABLE)
    app.router.add_get("/inbox/passkeys", passkeys_page)
    app.router.add_post("/inbox/passkeys/options", enrol_options)
    app.router.add_post("/inbox/passkeys/register", enrol_register)
    app.router.add_post("/inbox/passkeys/remove", remove)
    app.router.add_get(f"/inbox/r/{RID}/step-up", step_up_page)
    app.router.add_post(f"/inbox/r/{RID}/step-up/options", step_up_options)
    app.router.add_post(f"/inbox/r/{RID}/step-up", step_up_vote)
