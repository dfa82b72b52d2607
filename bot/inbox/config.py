"""What the inbox's settings mean: cookie security, which sign-in methods are on, and why.

Everything here is decided once from :class:`~signoff.settings.Settings` at startup, and
errs on the closed side:

- Cookies are ``Secure`` (and ``__Host-`` prefixed) unless the inbox's own address is plain
  ``http://`` on a loopback host (``127.0.0.0/8``, ``::1``, ``localhost``). There the cookie
  never crosses a network, and leaving ``Secure`` off is what lets every browser sign in to
  ``make demo`` (Chromium and Firefox accept ``Secure`` cookies from ``http://localhost``,
  Safari does not). Any other address, including an unset public URL on a non-loopback bind
  address, gets ``Secure``: a plain-http deployment then cannot keep a session at all, which
  is the intended failure.
- The demo sign-in is on only when ``SIGNOFF_DEMO_SIGN_IN`` is set *and* the inbox listens on
  a loopback address *and* its public URL (if any) is loopback *and* OpenID Connect is not
  configured. ``signoff demo`` sets the flag; a production deployment cannot turn it on by
  accident, and each demo sign-in request must also come from a loopback peer with no proxy
  forwarding headers (see :mod:`bot.inbox.auth`).
- OpenID Connect needs an issuer, a client id and a redirect URL (given, or
  ``{SIGNOFF_PUBLIC_URL}/inbox/auth/callback``); a non-https issuer is accepted only on
  loopback (local test identity providers).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from signoff.settings import Settings

log = logging.getLogger(__name__)

CALLBACK_PATH = "/inbox/auth/callback"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (a name or an address) can only mean this machine."""
    if not host:
        return False
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class InboxConfig:
    """The inbox's derived configuration.

    Attributes:
        public_url: the configured public base URL without a trailing slash, if any.
        secure_cookies: whether cookies carry ``Secure`` (and the ``__Host-`` prefix).
        demo_sign_in: whether the demo sign-in is mounted.
        oidc_enabled: whether OpenID Connect sign-in is mounted.
        redirect_url: the OIDC redirect URL registered with the identity provider.
        problems: configuration problems to show on the sign-in page (no secrets).
        session_ttl: seconds a signed-in session lasts (absolute).
    """

    public_url: str | None
    secure_cookies: bool
    demo_sign_in: bool
    oidc_enabled: bool
    redirect_url: str | None
    problems: tuple[str, ...]
    session_ttl: int

    @classmethod
    def from_settings(cls, settings: Settings) -> InboxConfig:
        """Derive the configuration (logging every refusal once)."""
        problems: list[str] = []
        public = settings.public_url.rstrip("/") if settings.public_url else None
        if public:
            parts = urlsplit(public)
            scheme, host = parts.scheme.lower(), parts.hostname
        else:
            scheme, host = "http", settings.host
        secure = not (scheme == "http" and is_loopback(host))

        oidc_asked = bool(settings.oidc_issuer or settings.oidc_client_id)
        oidc = bool(settings.oidc_issuer and settings.oidc_client_id)
        redirect = settings.oidc_redirect_url or (public + CALLBACK_PATH if public else None)
        if oidc_asked and not oidc:
            problems.append("OpenID Connect needs both SIGNOFF_OIDC_ISSUER and "
                            "SIGNOFF_OIDC_CLIENT_ID.")
        if oidc and not redirect:
            problems.append("OpenID Connect needs SIGNOFF_PUBLIC_URL or "
                            "SIGNOFF_OIDC_REDIRECT_URL to build its redirect URL.")
            oidc = False
        if oidc and settings.oidc_issuer:
            iss = urlsplit(settings.oidc_issuer)
            if iss.scheme != "https" and not (iss.scheme == "http" and is_loopback(iss.hostname)):
                problems.append("SIGNOFF_OIDC_ISSUER must be an https:// URL.")
                oidc = False

        demo = False
        if settings.demo_sign_in:
            if oidc_asked:
                problems.append("The demo sign-in is off because OpenID Connect is configured.")
            elif not is_loopback(settings.host):
                problems.append("The demo sign-in is off: it needs the inbox to listen on a "
                                "loopback address (HOST=127.0.0.1).")
            elif public and not is_loopback(host):
                problems.append("The demo sign-in is off: SIGNOFF_PUBLIC_URL is not a "
                                "loopback address.")
            else:
                demo = True
        for problem in problems:
            log.error("inbox: %s", problem)
        if demo:
            log.warning("inbox: DEMO SIGN-IN IS ON: anyone on this machine can sign in as "
                        "anyone in the directory. Never use it with real requests.")
        return cls(public_url=public, secure_cookies=secure, demo_sign_in=demo,
                   oidc_enabled=oidc, redirect_url=redirect if oidc else None,
                   problems=tuple(problems), session_ttl=max(60, settings.inbox_session_ttl))
