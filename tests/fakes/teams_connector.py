"""A local Bot Framework for tests: the Bot Connector, its OpenID metadata, and a token server.

One aiohttp application runs in its own thread and event loop (botbuilder's token fetch is
synchronous, so the fake must never share a loop with the code under test) on two sites:

- plain HTTP: the Bot Connector (the ``serviceUrl`` of every test activity) and the OpenID
  metadata + JWKS that inbound tokens are validated against (a test RSA key with the
  ``msteams`` endorsement, as the real keys carry);
- HTTPS (a self-signed test CA): the Entra token endpoint MSAL fetches outbound tokens from,
  with tenant discovery, checking the client id and secret.

The connector records every sent and updated activity, checks the bearer token it issued,
refuses activities over Teams' size limit (413), answers 404 for unknown messages, and can
inject 429/5xx answers. Tests mint inbound JWTs the way the Bot Framework does.

Like Teams, the connector answers 429 (``Retry-After``) over 50 requests per second per app
per tenant (:data:`APP_LIMIT`), and it can answer with a latency profile
(:data:`tests.fakes.latency.TEAMS`: 120-250 ms with jitter); tests run without latency
unless they ask for it, ``bench/load.py`` with the profile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import itertools
import json
import secrets
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from jwt.algorithms import RSAAlgorithm

from tests.fakes.latency import Bucket, Latency

ISSUER = "https://api.botframework.com"
MAX_ACTIVITY_BYTES = 28_000  # Teams refuses larger bot messages
KID = "fake-bf-key-1"
# "50 requests per second per app per tenant" (Teams bot rate limits): (per second, burst).
APP_LIMIT = (50.0, 50.0)


@dataclass
class Recorded:
    """One activity the connector received."""

    method: str  # "POST" (new message) or "PUT" (update)
    conversation_id: str
    activity_id: str
    body: dict[str, Any]
    reply_to: str | None = None

    @property
    def card(self) -> dict[str, Any] | None:
        """The Adaptive Card it carries, if any."""
        for att in self.body.get("attachments") or []:
            if att.get("contentType") == "application/vnd.microsoft.card.adaptive":
                return dict(att["content"])
        return None


@dataclass
class Fault:
    """An injected answer for the next matching connector calls."""

    method: str
    status: int
    times: int
    retry_after: str | None = None


@dataclass
class _State:
    activities: list[Recorded] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    refused: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _tls_material(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA and a server certificate for 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signoff test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True,
                                       crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False,
                                       decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return ca_path, cert_path, key_path


class FakeBotFramework:
    """The fake Bot Framework; start it, use its URLs, stop it.

    Args:
        folder: where the TLS material is written.
        app_id: the bot's app id (token audience and client id).
        app_password: the client secret the token endpoint accepts.
    """

    def __init__(self, folder: Path, app_id: str, app_password: str, *,
                 latency: Latency | None = None,
                 app_limit: tuple[float, float] | None = APP_LIMIT) -> None:
        self.latency = latency or Latency()
        self.app_limit = app_limit
        self._buckets: dict[str, Bucket] = {}
        self.app_id = app_id
        self.app_password = app_password
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.rogue_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca_path, self._cert, self._key = _tls_material(folder)
        self.state = _State()
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.http_port = 0
        self.https_port = 0

    # --- URLs ---------------------------------------------------------------------------
    @property
    def service_url(self) -> str:
        """The Bot Connector base URL (the activities' ``serviceUrl``)."""
        return f"http://127.0.0.1:{self.http_port}/"

    @property
    def metadata_url(self) -> str:
        """The OpenID metadata URL inbound tokens are checked against."""
        return f"http://127.0.0.1:{self.http_port}/v1/.well-known/openidconfiguration"

    @property
    def login_url(self) -> str:
        """The Entra login base (HTTPS) outbound tokens come from."""
        return f"https://127.0.0.1:{self.https_port}"

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeBotFramework:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve())
            except BaseException as exc:  # surfaced to start()
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup() if self._runner else asyncio.sleep(0))
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-bot-framework", daemon=True)
        self._thread.start()
        if not ready.wait(15) or errors:
            raise RuntimeError(f"fake Bot Framework did not start: {errors}")
        return self

    async def _serve(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/v1/.well-known/openidconfiguration", self._openid)
        app.router.add_get("/v1/.well-known/keys", self._jwks)
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._tenant)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_post("/v3/conversations/{cid}/activities", self._send)
        app.router.add_post("/v3/conversations/{cid}/activities/{reply_to}", self._send)
        app.router.add_put("/v3/conversations/{cid}/activities/{aid}", self._update)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        http_site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await http_site.start()
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(self._cert, self._key)
        https_site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls)
        await https_site.start()
        self.http_port = http_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.https_port = https_site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # --- test controls ------------------------------------------------------------------
    def reset(self) -> None:
        """Forget recorded activities, messages and pending faults (tokens stay valid)."""
        with self.state.lock:
            self.state.activities.clear()
            self.state.messages.clear()
            self.state.faults.clear()
            self.state.refused.clear()

    def inject(self, method: str, status: int, times: int = 1,
               retry_after: str | None = None) -> None:
        """Answer the next ``times`` ``method`` calls with ``status``."""
        with self.state.lock:
            self.state.faults.append(Fault(method.upper(), status, times, retry_after))

    @property
    def activities(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.activities)

    def activities_after(self, n: int) -> list[Recorded]:
        """The activities recorded after the first ``n`` (a poller's increment)."""
        with self.state.lock:
            return self.state.activities[n:]

    def posts(self) -> list[Recorded]:
        return [a for a in self.activities if a.method == "POST"]

    def updates(self) -> list[Recorded]:
        return [a for a in self.activities if a.method == "PUT"]

    def message(self, conversation_id: str, activity_id: str) -> dict[str, Any] | None:
        """The current content of a posted message (after any updates)."""
        with self.state.lock:
            return self.state.messages.get((conversation_id, activity_id))

    @property
    def refused(self) -> list[int]:
        """Statuses of calls the connector refused (auth, size, injected faults)."""
        with self.state.lock:
            return list(self.state.refused)

    @property
    def token_requests(self) -> int:
        with self.state.lock:
            return self.state.token_requests

    def wait_posts(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.posts()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"expected {count} posts, got {len(self.posts())}")

    # --- inbound tokens, minted the way the Bot Framework does --------------------------
    def mint(self, service_url: str | None = None, *, audience: str | None = None,
             issuer: str = ISSUER, expires_in: int = 3600, not_before: int | None = None,
             key: Any = None, kid: str = KID, extra: dict[str, Any] | None = None) -> str:
        """A channel-to-bot JWT (RS256) for ``service_url`` (defaults: valid, for our bot)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "serviceurl": service_url or self.service_url,
            "nbf": now - 60 if not_before is None else not_before,
            "exp": now + expires_in,
            "iss": issuer,
            "aud": self.app_id if audience is None else audience,
        }
        claims.update(extra or {})
        return jwt.encode(claims, key or self.signing_key, algorithm="RS256",
                          headers={"kid": kid, "x5t": kid})

    # --- handlers -----------------------------------------------------------------------
    async def _openid(self, request: web.Request) -> web.Response:
        base = f"http://127.0.0.1:{self.http_port}"
        return web.json_response({
            "issuer": ISSUER,
            "authorization_endpoint": "https://invalid.example/authorize",
            "jwks_uri": f"{base}/v1/.well-known/keys",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        })

    async def _jwks(self, request: web.Request) -> web.Response:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.signing_key.public_key()))
        jwk.update({"kid": KID, "use": "sig", "endorsements": ["msteams", "webchat"]})
        return web.json_response({"keys": [jwk]})

    async def _tenant(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        base = f"https://127.0.0.1:{self.https_port}/{tenant}"
        return web.json_response({
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "issuer": f"https://login.microsoftonline.com/{tenant}/v2.0",
        })

    async def _token(self, request: web.Request) -> web.Response:
        if request.scheme != "https":
            return web.json_response({"error": "invalid_request"}, status=400)
        form = await request.post()
        ok = (form.get("grant_type") == "client_credentials"
              and form.get("client_id") == self.app_id
              and secrets.compare_digest(str(form.get("client_secret", "")), self.app_password)
              and form.get("scope") == "https://api.botframework.com/.default")
        with self.state.lock:
            self.state.token_requests += 1
        if not ok:
            return web.json_response({"error": "invalid_client",
                                      "error_description": "bad client credentials"},
                                     status=401)
        token = secrets.token_urlsafe(24)
        with self.state.lock:
            self.state.tokens.add(token)
        return web.json_response({"token_type": "Bearer", "expires_in": 3600,
                                  "ext_expires_in": 3600, "access_token": token})

    def _check(self, request: web.Request, method: str, size: int) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        with self.state.lock:
            authorized = header.startswith("Bearer ") and header[7:] in self.state.tokens
            fault = None
            if authorized and self.state.faults and self.state.faults[0].method == method:
                fault = self.state.faults[0]
                fault.times -= 1
                if fault.times <= 0:
                    self.state.faults.popleft()
            if not authorized:
                self.state.refused.append(401)
                return web.json_response({"error": {"code": "Unauthorized"}}, status=401)
            if fault is not None:
                self.state.refused.append(fault.status)
                headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                return web.json_response({"error": {"code": "Injected",
                                                    "message": f"HTTP {fault.status}"}},
                                         status=fault.status, headers=headers)
            if size > MAX_ACTIVITY_BYTES:
                self.state.refused.append(413)
                return web.json_response({"error": {"code": "MessageSizeTooBig"}}, status=413)
        return None

    def _limited(self, raw: bytes) -> web.Response | None:
        """429 when the app is over its per-tenant rate (the call does nothing)."""
        if self.app_limit is None:
            return None
        try:
            tenant = str(((json.loads(raw) or {}).get("conversation") or {}).get("tenantId")
                         or "")
        except (ValueError, AttributeError):
            tenant = ""
        with self.state.lock:
            bucket = self._buckets.setdefault(tenant, Bucket(*self.app_limit))
        if bucket.take():
            return None
        with self.state.lock:
            self.state.refused.append(429)
        return web.json_response({"error": {"code": "Throttled"}}, status=429,
                                 headers={"Retry-After": "1"})

    async def _send(self, request: web.Request) -> web.Response:
        raw = await request.read()
        await self.latency.wait()
        refused = self._check(request, "POST", len(raw)) or self._limited(raw)
        if refused is not None:
            return refused
        body = json.loads(raw)
        cid = request.match_info["cid"]
        aid = f"1:{next(self._ids)}"
        with self.state.lock:
            self.state.activities.append(Recorded("POST", cid, aid, body,
                                                  request.match_info.get("reply_to")))
            self.state.messages[(cid, aid)] = body
        return web.json_response({"id": aid}, status=201)

    async def _update(self, request: web.Request) -> web.Response:
        raw = await request.read()
        await self.latency.wait()
        refused = self._check(request, "PUT", len(raw)) or self._limited(raw)
        if refused is not None:
            return refused
        cid, aid = request.match_info["cid"], request.match_info["aid"]
        body = json.loads(raw)
        with self.state.lock:
            if (cid, aid) not in self.state.messages:
                self.state.refused.append(404)
                return web.json_response({"error": {"code": "NotFound"}}, status=404)
            self.state.activities.append(Recorded("PUT", cid, aid, body))
            self.state.messages[(cid, aid)] = body
        return web.json_response({"id": aid})
