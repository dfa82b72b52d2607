"""Inbox sessions: server-side in Redis, a random id in an HttpOnly cookie, a CSRF token each.

The cookie holds only a 256-bit random id; Redis holds the session under the id's SHA-256, so
reading Redis does not hand out live sessions, and there is no signing secret to manage or
rotate (which is why this is not aiohttp-session's encrypted-cookie storage: a server-side
session can be revoked, and its CSRF token never leaves the server except in the page).
Every session, signed in or not, has its own CSRF token; signing in replaces the session
(new id, new token), so a session id planted before sign-in is worthless after it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from signoff.keys import Keys

ANONYMOUS_TTL = 15 * 60
COOKIE_SECURE = "__Host-signoff_session"
COOKIE_PLAIN = "signoff_session"


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


@dataclass
class Session:
    """One browser's session.

    Attributes:
        sid: the cookie value (never stored).
        csrf: the token every form and POST must echo.
        person: the signed-in person's email, or None before sign-in.
        via: how they signed in (``oidc`` or ``demo``).
        created: when this session was made.
        expires: when it ends (absolute).
        oidc: a sign-in in progress (state, nonce, PKCE verifier, next page).
        flash: messages to show once on the next page.
    """

    sid: str
    csrf: str
    person: str | None = None
    via: str = ""
    created: float = field(default_factory=time.time)
    expires: float = 0.0
    oidc: dict[str, Any] | None = None
    flash: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("sid")
        return json.dumps(data)

    def csrf_ok(self, presented: str | None) -> bool:
        """Constant-time comparison of a presented CSRF token with this session's."""
        if not presented:
            return False
        return hmac.compare_digest(presented.encode(), self.csrf.encode())


class SessionStore:
    """Sessions in Redis (``keys.session(sha256(id))``), with expiry.

    Args:
        client: an asyncio Redis client with ``decode_responses=True``.
        keys: the key builder.
        ttl: lifetime of a signed-in session, in seconds.
    """

    def __init__(self, client: aioredis.Redis, keys: Keys, ttl: int) -> None:
        self.r = client
        self.keys = keys
        self.ttl = ttl

    def _key(self, sid: str) -> str:
        return self.keys.session(_digest(sid))

    async def load(self, sid: str | None) -> Session | None:
        """The live session for a cookie value, or None (unknown, malformed or expired)."""
        if not sid or len(sid) > 200:
            return None
        raw = await self.r.get(self._key(sid))
        if not raw:
            return None
        data = json.loads(raw)
        session = Session(sid=sid, **data)
        if session.expires and session.expires < time.time():
            await self.r.delete(self._key(sid))
            return None
        return session

    async def new(self, person: str | None = None, via: str = "") -> Session:
        """A fresh session (anonymous unless ``person`` is given) with a new CSRF token."""
        now = time.time()
        ttl = self.ttl if person else ANONYMOUS_TTL
        session = Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                          person=person, via=via, created=now, expires=now + ttl)
        await self.save(session)
        return session

    async def save(self, session: Session) -> None:
        """Write a session back, keeping its absolute expiry."""
        left = int(session.expires - time.time())
        if left <= 0:
            await self.delete(session)
            return
        await self.r.set(self._key(session.sid), session.to_json(), ex=left)

    async def delete(self, session: Session) -> None:
        await self.r.delete(self._key(session.sid))

    async def rotate(self, old: Session | None, person: str, via: str) -> Session:
        """Replace ``old`` by a signed-in session (new id and CSRF token; flash kept)."""
        session = await self.new(person=person, via=via)
        if old is not None:
            session.flash = old.flash
            await self.save(session)
            await self.delete(old)
        return session


@dataclass(frozen=True)
class CookiePolicy:
    """How the session cookie is set: always HttpOnly, SameSite=Lax, Path=/.

    ``Lax`` rather than ``Strict``: the identity provider redirects back with a top-level
    GET that must carry the cookie holding the sign-in state, and a link to a request page
    from chat should find the person signed in. Every state change is a POST with a CSRF
    token, which ``Lax`` never sends cross-site anyway.
    """

    secure: bool

    @property
    def name(self) -> str:
        return COOKIE_SECURE if self.secure else COOKIE_PLAIN

    def read(self, request: web.Request) -> str | None:
        return request.cookies.get(self.name)

    def set(self, response: web.StreamResponse, session: Session) -> None:
        max_age = max(int(session.expires - time.time()), 1)
        response.set_cookie(self.name, session.sid, max_age=max_age, path="/",
                            secure=self.secure, httponly=True, samesite="Lax")

    def clear(self, response: web.StreamResponse) -> None:
        response.set_cookie(self.name, "", max_age=0, path="/", secure=self.secure,
                            httponly=True, samesite="Lax")
