"""The inbox's routes, mounted by ``bot/app.py`` through :func:`setup`.

Pages (all need a signed-in person in the policy directory):

- ``GET /inbox``: what the person may decide, what waits on others, their own requests.
- ``GET /inbox/r/{id}``: one request: masked payload, progress, votes, audit trail.
- ``POST /inbox/r/{id}/decide``: ``choice`` (approve | deny), ``comment``, ``csrf``; through
  :func:`signoff.lifecycle.submit_vote` (separation of duties, atomic vote), then back.
- ``GET /inbox/_list`` and ``GET /inbox/r/{id}/_live``: the fragments live updates swap in.
- ``GET /inbox/events``: server-sent events (``change``: id, version, status).

Sign-in routes are in :mod:`bot.inbox.auth`; static files under ``/inbox/static/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

from bot.appkeys import METRICS
from bot.inbox import auth, decisions
from bot.inbox import passkeys as passkey_pages
from bot.inbox.config import InboxConfig
from bot.inbox.context import CSP, INBOX, InboxContext, middleware
from bot.inbox.events import STOP
from bot.inbox.model import load_detail, load_inbox
from bot.inbox.render import build_environment
from bot.web_channel import WebMessenger
from signoff import lifecycle
from signoff.cardview.view import build_view
from signoff.models import RECORD_ID_PATTERN
from signoff.runtime import Runtime
from signoff.standing import parse_window

RID = "{rid:" + RECORD_ID_PATTERN.strip("^$") + "}"
STATIC = Path(__file__).parent / "static"
HEARTBEAT_SECONDS = 15.0
MAX_COMMENT = 2000


async def index(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    _session, person = await ctx.require_person(request)
    inbox = await asyncio.to_thread(load_inbox, ctx.rt, person)
    held = await asyncio.to_thread(decisions.delegated, ctx.rt, person)
    return await ctx.render(request, "inbox.html", person=person, inbox=inbox, delegated=held)


async def list_fragment(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    found = await ctx.person(request)
    if found is None:
        raise web.HTTPUnauthorized(text="Signed out.")
    inbox = await asyncio.to_thread(load_inbox, ctx.rt, found[1])
    held = await asyncio.to_thread(decisions.delegated, ctx.rt, found[1])
    return await ctx.render(request, "_list.html", person=found[1], inbox=inbox, delegated=held)


async def request_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    _session, person = await ctx.require_person(request)
    rid = request.match_info["rid"]
    detail = await asyncio.to_thread(load_detail, ctx.rt, person, rid)
    if detail is None:
        return await ctx.render(request, "missing.html", status=404, person=person, rid=rid)
    extras = await asyncio.to_thread(_extras, ctx.rt, person, rid)
    return await ctx.render(request, "request.html", person=person, detail=detail,
                            item=detail.item, view=detail.item.view, extras=extras)


async def request_fragment(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    found = await ctx.person(request)
    if found is None:
        raise web.HTTPUnauthorized(text="Signed out.")
    detail = await asyncio.to_thread(load_detail, ctx.rt, found[1], request.match_info["rid"])
    if detail is None:
        raise web.HTTPNotFound()
    extras = await asyncio.to_thread(_extras, ctx.rt, found[1], request.match_info["rid"])
    return await ctx.render(request, "_request_live.html", person=found[1], detail=detail,
                            item=detail.item, view=detail.item.view, extras=extras)


def _extras(rt: Runtime, person: Any, rid: str) -> decisions.Extras:
    return decisions.load_extras(rt, person, rt.store.get(rid))


async def decide(request: web.Request) -> web.StreamResponse:
    """Approve or deny from a form: same origin, session, CSRF, then ``submit_vote``."""
    ctx = request.app[INBOX]
    session, form = await ctx.verified_post(request)
    rid = request.match_info["rid"]
    back = "/inbox" if form.get("back") == "list" else f"/inbox/r/{rid}"
    choice = form.get("choice", "")
    # A preset deny reason from the policy (deny_reasons) stands in for a typed one.
    comment = (form.get("comment") or "").strip() or (form.get("preset") or "").strip()
    standing = parse_window(form.get("standing")) if form.get("standing") else None
    if form.get("standing") and standing is None:
        await ctx.flash(session, "error", "Choose how long the approval stands.")
        raise web.HTTPSeeOther(back)
    if len(comment) > MAX_COMMENT:
        await ctx.flash(session, "error", f"Keep the reason under {MAX_COMMENT} characters.")
        raise web.HTTPSeeOther(back)

    def _vote() -> lifecycle.VoteReply:
        person = ctx.rt.policy.directory.person(session.person)
        return lifecycle.submit_vote(ctx.rt, rid, person, choice, comment or None,
                                     channel="web", actor_label=session.person or "",
                                     standing=standing, seen_sha256=form.get("seen") or None)

    reply = await asyncio.to_thread(_vote)
    request.app[METRICS].votes.labels("web", reply.code).inc()
    await ctx.flash(session, "ok" if reply.ok else "error", reply.message)
    if reply.ok and reply.record is not None:
        # Tell other open pages now; the update job announces it again once cards are updated.
        messenger = WebMessenger(ctx.rt.redis, ctx.rt.keys.events)
        await messenger.update(build_view(reply.record), "inbox", {})
    raise web.HTTPSeeOther(back)


async def events(request: web.Request) -> web.StreamResponse:
    """Server-sent events for signed-in pages; ends when the session does."""
    ctx = request.app[INBOX]
    found = await ctx.person(request)
    if found is None:
        raise web.HTTPUnauthorized(text="Signed out.")
    session = found[0]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                           "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no",
                                           "X-Content-Type-Options": "nosniff",
                                           "Content-Security-Policy": CSP})
    queue = ctx.hub.subscribe()  # before the headers go out: the page is live from onopen
    try:
        await response.prepare(request)
        await response.write(b"retry: 3000\n: connected\n\n")
        while True:
            try:
                message = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                if await ctx.sessions.load(session.sid) is None:
                    break
                await response.write(b": keepalive\n\n")
                continue
            if message is STOP:
                break
            await response.write(f"event: change\ndata: {json.dumps(message)}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass
    finally:
        ctx.hub.unsubscribe(queue)
    return response


async def root(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/inbox")


def _static_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC.iterdir()):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def setup(app: web.Application, rt: Runtime) -> None:
    """Mount the inbox on the web application."""
    config = InboxConfig.from_settings(rt.settings)
    templates = build_environment()
    templates.globals["static_version"] = _static_version()
    ctx = InboxContext(rt, config, templates)
    app[INBOX] = ctx
    app.middlewares.append(middleware)

    async def _lifetime(_app: web.Application) -> AsyncIterator[None]:
        ctx.hub.start()
        yield
        await ctx.close()

    async def _end_streams(_app: web.Application) -> None:
        with contextlib.suppress(Exception):
            await ctx.hub.stop()

    app.cleanup_ctx.append(_lifetime)
    app.on_shutdown.append(_end_streams)
    auth.setup_routes(app)
    passkey_pages.setup_routes(app)
    decisions.setup_routes(app)
    app.router.add_get("/inbox", index)
    app.router.add_get("/inbox/_list", list_fragment)
    app.router.add_get("/inbox/events", events)
    app.router.add_get(f"/inbox/r/{RID}", request_page)
    app.router.add_get(f"/inbox/r/{RID}/_live", request_fragment)
    app.router.add_post(f"/inbox/r/{RID}/decide", decide)
    app.router.add_static("/inbox/static", STATIC, name="inbox-static")
    if not any(getattr(r, "canonical", None) == "/" for r in app.router.resources()):
        app.router.add_get("/", root)


__all__ = ["InboxContext", "setup"]
