"""Signing in and out of the inbox: OpenID Connect, and the demo-only local sign-in.

OIDC: ``/inbox/auth/start`` stores a fresh ``state``, ``nonce`` and PKCE verifier in the
browser's (anonymous) session and redirects to the provider; ``/inbox/auth/callback`` accepts
the answer only for that session and that state, once, within ten minutes, verifies the ID
token, maps the email claim to a person in the policy directory, and replaces the session.

Demo: ``POST /inbox/auth/demo`` exists only when :class:`~bot.inbox.config.InboxConfig` turned
it on (``signoff demo``), and answers only loopback peers without proxy headers.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from bot.inbox.config import is_loopback
from bot.inbox.context import CLEAR_COOKIE, INBOX, SESSION, InboxContext, safe_next
from bot.inbox.oidc import OidcError, email_from_claims, pkce_pair

log = logging.getLogger(__name__)

SIGN_IN_WINDOW = 600
PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")


@dataclass(frozen=True)
class DemoPerson:
    """A person offered by the demo sign-in page."""

    email: str
    name: str
    groups: tuple[str, ...]
    owns: tuple[str, ...]


def demo_people(ctx: InboxContext) -> list[DemoPerson]:
    directory = ctx.rt.policy.directory
    owned: dict[str, list[str]] = {}
    for agent in directory.agents:
        owned.setdefault(directory.canonical_person(agent.owner), []).append(agent.id)
    return [DemoPerson(p.id, p.name, tuple(sorted(p.groups)), tuple(owned.get(p.id, [])))
            for p in directory.people]


def demo_peer_ok(request: web.Request) -> bool:
    """Whether a demo sign-in request comes straight from this machine (no proxy)."""
    if any(h in request.headers for h in PROXY_HEADERS):
        return False
    return is_loopback(request.remote)


async def _login_page(request: web.Request, status: int = 200, error: str | None = None,
                      next_path: str = "/inbox") -> web.Response:
    ctx = request.app[INBOX]
    await ctx.ensure_session(request)
    people = await asyncio.to_thread(demo_people, ctx) if ctx.config.demo_sign_in else []
    provider = urlsplit(ctx.rt.settings.oidc_issuer or "").hostname or ""
    return await ctx.render(request, "login.html", status=status, error=error, people=people,
                            next=next_path, oidc=ctx.oidc is not None, provider=provider)


async def login(request: web.Request) -> web.StreamResponse:
    """The sign-in page (straight on to the inbox when already signed in)."""
    ctx = request.app[INBOX]
    next_path = safe_next(request.query.get("next"))
    if await ctx.person(request) is not None:
        raise web.HTTPSeeOther(next_path)
    return await _login_page(request, next_path=next_path)


async def oidc_start(request: web.Request) -> web.StreamResponse:
    """Begin an OIDC sign-in: remember state, nonce and verifier; go to the provider."""
    ctx = request.app[INBOX]
    if ctx.oidc is None:
        raise web.HTTPNotFound()
    session = await ctx.ensure_session(request)
    verifier, _challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    pending = {"state": state, "nonce": nonce, "verifier": verifier,
               "next": safe_next(request.query.get("next")), "started": time.time()}
    try:
        url = await ctx.oidc.authorization_url(state, nonce, verifier)
    except OidcError as exc:
        log.warning("inbox sign-in could not start: %s", exc)
        return await _login_page(request, 502, f"Sign-in is unavailable: {exc}.")
    session.oidc = pending
    await ctx.sessions.save(session)
    raise web.HTTPFound(url)


async def oidc_callback(request: web.Request) -> web.StreamResponse:
    """Finish an OIDC sign-in started by this browser's session."""
    ctx = request.app[INBOX]
    if ctx.oidc is None:
        raise web.HTTPNotFound()
    session = await ctx.session(request)
    pending = session.oidc if session is not None else None
    if session is None or not isinstance(pending, dict):
        return await _login_page(request, 400, "This sign-in was not started here, or it "
                                 "already finished. Start again.")
    session.oidc = None  # one use, whatever happens next
    await ctx.sessions.save(session)
    next_path = safe_next(str(pending.get("next")))
    if time.time() - float(pending.get("started", 0)) > SIGN_IN_WINDOW:
        return await _login_page(request, 400, "The sign-in took too long. Start again.",
                                 next_path)
    state = request.query.get("state", "")
    if not hmac.compare_digest(state.encode(), str(pending.get("state", "")).encode()):
        return await _login_page(request, 400, "The sign-in answer does not match this "
                                 "browser's sign-in (state). Start again.", next_path)
    if "error" in request.query:
        said = request.query.get("error", "")[:100]
        return await _login_page(request, 403, f"The identity provider refused: {said}.",
                                 next_path)
    code = request.query.get("code", "")
    if not code:
        return await _login_page(request, 400, "The identity provider sent no code.",
                                 next_path)
    try:
        claims = await ctx.oidc.sign_in(code, str(pending["verifier"]), str(pending["nonce"]))
        email = email_from_claims(
            claims, ctx.rt.settings.oidc_email_claim,
            require_verified=ctx.rt.settings.oidc_require_email_verified)
    except OidcError as exc:
        log.warning("inbox sign-in refused: %s", exc)
        return await _login_page(request, 403, f"Sign-in failed: {exc}.", next_path)
    directory = await asyncio.to_thread(lambda: ctx.rt.policy.directory)
    person = directory.person(email)
    if person is None:
        log.warning("inbox sign-in by %s refused: not in the policy directory", email)
        return await _login_page(request, 403, f"{email} is not in Signoff's directory, so "
                                 "it cannot approve anything. Ask an administrator.",
                                 next_path)
    fresh = await ctx.sessions.rotate(session, person.id, "oidc")
    ctx.use_session(request, fresh)
    log.info("inbox: %s signed in with OpenID Connect", person.id)
    raise web.HTTPSeeOther(next_path)


async def demo_sign_in(request: web.Request) -> web.StreamResponse:
    """DEMO ONLY: sign in as a directory person by picking them from a list."""
    ctx = request.app[INBOX]
    if not ctx.config.demo_sign_in:
        raise web.HTTPNotFound()
    if not demo_peer_ok(request):
        raise web.HTTPForbidden(text="The demo sign-in answers this machine only.")
    session, form = await ctx.verified_post(request, signed_in=False)
    directory = await asyncio.to_thread(lambda: ctx.rt.policy.directory)
    person = directory.person(form.get("email"))
    if person is None:
        raise web.HTTPBadRequest(text="No such person in the directory.")
    fresh = await ctx.sessions.rotate(session, person.id, "demo")
    ctx.use_session(request, fresh)
    log.info("inbox: %s signed in with the demo sign-in", person.id)
    raise web.HTTPSeeOther(safe_next(form.get("next")))


async def logout(request: web.Request) -> web.StreamResponse:
    """Sign out: the session is deleted server-side and the cookie cleared."""
    ctx = request.app[INBOX]
    session, _form = await ctx.verified_post(request, signed_in=False)
    await ctx.sessions.delete(session)
    request[SESSION] = None
    request[CLEAR_COOKIE] = True
    raise web.HTTPSeeOther("/inbox/login")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/inbox/login", login)
    app.router.add_get("/inbox/auth/start", oidc_start)
    app.router.add_get("/inbox/auth/callback", oidc_callback)
    app.router.add_post("/inbox/auth/demo", demo_sign_in)
    app.router.add_post("/inbox/logout", logout)
