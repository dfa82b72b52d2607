"""The inbox's per-application bundle and the checks every handler shares.

:class:`InboxContext` holds the runtime, the derived configuration, the session store, the
event hub, the OIDC client and the templates. Its helpers resolve the signed-in person
(re-checked against the policy directory on every request: someone removed from the
directory is signed out), verify POSTs (same origin, then the session's CSRF token, in
constant time), and render pages with the security headers every inbox response carries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import redis.asyncio as aioredis
from aiohttp import web
from jinja2 import Environment

from bot.inbox.config import InboxConfig
from bot.inbox.events import EventHub
from bot.inbox.oidc import OidcClient
from bot.inbox.sessions import CookiePolicy, Session, SessionStore
from signoff.redis_conn import connect_async
from signoff.runtime import Runtime

if TYPE_CHECKING:
    from policy import Person

SESSION: web.RequestKey[Session | None] = web.RequestKey("inbox_session", Session)
SET_COOKIE: web.RequestKey[Session] = web.RequestKey("inbox_set_cookie", Session)
CLEAR_COOKIE: web.RequestKey[bool] = web.RequestKey("inbox_clear_cookie", bool)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


class InboxContext:
    """Everything the inbox's handlers share in one web process."""

    def __init__(self, rt: Runtime, config: InboxConfig, templates: Environment) -> None:
        assert rt.settings.redis_url
        self.rt = rt
        self.config = config
        self.templates = templates
        self.cookies = CookiePolicy(secure=config.secure_cookies)
        # connect_async: redis.asyncio's from_url does not know redis+sentinel:// URLs.
        self.aredis: aioredis.Redis = connect_async(rt.settings.redis_url,
                                                    socket_connect_timeout=5)
        self.sessions = SessionStore(self.aredis, rt.keys, config.session_ttl)
        self.hub = EventHub(self.aredis, rt.keys.events)
        self.oidc: OidcClient | None = None
        settings = rt.settings
        if config.oidc_enabled and settings.oidc_issuer and settings.oidc_client_id \
                and config.redirect_url:
            secret = settings.oidc_client_secret
            self.oidc = OidcClient(settings.oidc_issuer, settings.oidc_client_id,
                                   secret.get_secret_value() if secret else None,
                                   config.redirect_url, settings.oidc_scopes)

    async def close(self) -> None:
        await self.hub.stop()
        if self.oidc is not None:
            await self.oidc.close()
        await self.aredis.aclose()

    # --- sessions -------------------------------------------------------------------------
    async def session(self, request: web.Request) -> Session | None:
        """The request's live session, if its cookie names one."""
        if SESSION not in request:
            request[SESSION] = await self.sessions.load(self.cookies.read(request))
        return request[SESSION]

    async def ensure_session(self, request: web.Request) -> Session:
        """The request's session, creating an anonymous one (and its cookie) if needed."""
        session = await self.session(request)
        if session is None:
            session = await self.sessions.new()
            self.use_session(request, session)
        return session

    def use_session(self, request: web.Request, session: Session) -> None:
        """Make ``session`` this request's, and send its cookie with the response."""
        request[SESSION] = session
        request[SET_COOKIE] = session

    async def person(self, request: web.Request) -> tuple[Session, Person] | None:
        """The signed-in person, re-resolved in the current directory."""
        session = await self.session(request)
        if session is None or not session.person:
            return None
        directory = await asyncio.to_thread(lambda: self.rt.policy.directory)
        person = directory.person(session.person)
        if person is None:
            return None
        return session, person

    async def require_person(self, request: web.Request) -> tuple[Session, Person]:
        """The signed-in person, or a redirect to the sign-in page."""
        found = await self.person(request)
        if found is None:
            raise web.HTTPSeeOther(f"/inbox/login?next={_quote_next(request.path)}")
        return found

    async def flash(self, session: Session, kind: str, text: str) -> None:
        session.flash.append({"kind": kind, "text": text})
        await self.sessions.save(session)

    # --- POST checks ----------------------------------------------------------------------
    def same_origin(self, request: web.Request) -> bool:
        """Whether a POST comes from the inbox's own pages (Origin, else Referer).

        A request with neither header is not a browser's cross-site form (browsers send
        Origin with every POST) and still needs the CSRF token.
        """
        presented = request.headers.get("Origin")
        if presented is None:
            referer = request.headers.get("Referer")
            if referer is None:
                return True
            presented = origin_of(referer)
        presented = presented.strip().lower()
        allowed = {f"{request.scheme}://{request.host}".lower()}
        if self.config.public_url:
            allowed.add(origin_of(self.config.public_url))
        return presented in allowed

    async def verified_post(self, request: web.Request, *, signed_in: bool = True
                            ) -> tuple[Session, dict[str, str]]:
        """Check a form POST: same origin, a live session, and its CSRF token.

        Raises:
            web.HTTPForbidden: on any failure (nothing is changed).
        """
        if not self.same_origin(request):
            raise web.HTTPForbidden(text="Cross-site request refused.")
        form = await request.post()
        session = await self.session(request)
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        if session is None or not session.csrf_ok(fields.get("csrf")):
            raise web.HTTPForbidden(text="The form expired or did not come from this inbox. "
                                         "Reload the page and try again.")
        if signed_in and not session.person:
            raise web.HTTPForbidden(text="Sign in first.")
        return session, fields

    # --- rendering ------------------------------------------------------------------------
    async def render(self, request: web.Request, template: str, status: int = 200,
                     **context: Any) -> web.Response:
        """Render a page (or fragment) with the common context; flash messages are shown once."""
        session = await self.session(request)
        flash: list[dict[str, str]] = []
        if session is not None and session.flash and not template.startswith("_"):
            flash, session.flash = session.flash, []
            await self.sessions.save(session)
        base = {
            "csrf": session.csrf if session else "",
            "signed_in": bool(session and session.person),
            "flash": flash,
            "config": self.config,
            "now": time.time(),
            "path": request.path,
        }
        html = await asyncio.to_thread(self.templates.get_template(template).render,
                                       **base, **context)
        return web.Response(text=html, status=status, content_type="text/html",
                            charset="utf-8")


def _quote_next(path: str) -> str:
    return quote(safe_next(path), safe="/")


def safe_next(value: str | None) -> str:
    """A local inbox path to go to after sign-in (anything else becomes ``/inbox``)."""
    if not value or not value.startswith("/inbox") or "//" in value or "\\" in value:
        return "/inbox"
    if any(c in value for c in "\r\n\t ") or value.startswith("/inbox/auth"):
        return "/inbox"
    return value


def _finish(request: web.Request, response: web.StreamResponse) -> None:
    ctx = request.app[INBOX]
    session = request.get(SET_COOKIE)
    if session is not None:
        ctx.cookies.set(response, session)
    elif request.get(CLEAR_COOKIE):
        ctx.cookies.clear(response)
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("X-Frame-Options", "DENY")
    if not request.path.startswith("/inbox/static/"):
        headers.setdefault("Cache-Control", "no-store")
    if ctx.config.secure_cookies and request.secure:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Session cookies and security headers for every inbox response (raised ones too)."""
    path = request.path
    if not (path == "/" or path.startswith("/inbox")):
        return await handler(request)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _finish(request, exc)
        raise
    if not response.prepared:  # a stream (SSE) set its own headers before it started
        _finish(request, response)
    return response


INBOX: web.AppKey[InboxContext] = web.AppKey("inbox", InboxContext)
