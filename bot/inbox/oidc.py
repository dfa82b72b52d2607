"""OpenID Connect sign-in: authorization code flow with PKCE (RFC 7636, S256).

Hand-written on aiohttp's client on purpose: Authlib, the usual choice, has client
integrations for requests, httpx, Flask, Django and Starlette but not aiohttp, and the flow
itself is one discovery document, one redirect and one token POST. The security-critical
step, verifying the ID token (signature against the provider's JWKS, ``iss``, ``aud``,
``exp``, ``iat``), is PyJWT's; this module adds the checks the OIDC core spec puts on the
relying party: the ``nonce``, ``azp`` when there are several audiences, asymmetric
algorithms only, and the discovered issuer being exactly the configured one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import jwt

from policy.identity import canonical_email

# Never "none" or an HMAC algorithm: the client secret must not be able to mint ID tokens.
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
              "ES512", "EdDSA")
METADATA_TTL = 3600
JWKS_REFRESH_MIN = 60
LEEWAY = 60


class OidcError(Exception):
    """Sign-in failed; the message is safe to show (no tokens, no secrets)."""


def pkce_pair() -> tuple[str, str]:
    """A PKCE code verifier (86 URL-safe characters) and its S256 challenge."""
    verifier = secrets.token_urlsafe(64)
    return verifier, s256(verifier)


def s256(verifier: str) -> str:
    """RFC 7636 section 4.2: BASE64URL(SHA256(ASCII(verifier))) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document the flow uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_methods: tuple[str, ...]


class OidcClient:
    """A relying party for one identity provider.

    Args:
        issuer: the issuer URL (discovery is ``{issuer}/.well-known/openid-configuration``).
        client_id: this application's client id.
        client_secret: its secret (None for a public client: PKCE alone).
        redirect_url: the callback URL registered with the provider.
        scopes: space-separated scopes; ``openid`` is always included.
        timeout: seconds for each call to the provider.
    """

    def __init__(self, issuer: str, client_id: str, client_secret: str | None,
                 redirect_url: str, scopes: str = "openid email profile",
                 timeout: float = 10.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_url = redirect_url
        words = scopes.split()
        self.scopes = " ".join(words if "openid" in words else ["openid", *words])
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._http: aiohttp.ClientSession | None = None
        self._metadata: tuple[float, ProviderMetadata] | None = None
        self._jwks: tuple[float, jwt.PyJWKSet] | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(timeout=self.timeout)
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._session().get(url, headers={"Accept": "application/json"}) as resp:
                if resp.status != 200:
                    raise OidcError(f"the identity provider answered {resp.status} for {url}")
                data = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise OidcError(f"the identity provider is unreachable ({type(exc).__name__})"
                            ) from exc
        if not isinstance(data, dict):
            raise OidcError(f"the identity provider sent no JSON object from {url}")
        return data

    async def metadata(self) -> ProviderMetadata:
        """The provider's discovery document (cached for an hour)."""
        now = time.monotonic()
        if self._metadata and now - self._metadata[0] < METADATA_TTL:
            return self._metadata[1]
        doc = await self._get_json(self.issuer + "/.well-known/openid-configuration")
        if str(doc.get("issuer", "")).rstrip("/") != self.issuer:
            raise OidcError("the discovery document names a different issuer")
        try:
            meta = ProviderMetadata(
                issuer=str(doc["issuer"]),
                authorization_endpoint=str(doc["authorization_endpoint"]),
                token_endpoint=str(doc["token_endpoint"]),
                jwks_uri=str(doc["jwks_uri"]),
                token_auth_methods=tuple(doc.get("token_endpoint_auth_methods_supported")
                                         or ("client_secret_basic",)),
            )
        except KeyError as exc:
            raise OidcError(f"the discovery document lacks {exc.args[0]}") from exc
        self._metadata = (now, meta)
        return meta

    async def authorization_url(self, state: str, nonce: str, verifier: str) -> str:
        """Where to send the browser to sign in."""
        meta = await self.metadata()
        query = urlencode({
            "response_type": "code", "client_id": self.client_id,
            "redirect_uri": self.redirect_url, "scope": self.scopes, "state": state,
            "nonce": nonce, "code_challenge": s256(verifier), "code_challenge_method": "S256",
        })
        sep = "&" if "?" in meta.authorization_endpoint else "?"
        return meta.authorization_endpoint + sep + query

    async def exchange(self, code: str, verifier: str) -> dict[str, Any]:
        """Trade the authorization code (and the PKCE verifier) for tokens."""
        meta = await self.metadata()
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": self.redirect_url, "code_verifier": verifier}
        auth = None
        if self.client_secret is None:
            form["client_id"] = self.client_id
        elif "client_secret_basic" in meta.token_auth_methods:
            # RFC 6749 section 2.3.1: both parts form-urlencoded before Basic encoding.
            auth = aiohttp.BasicAuth(quote(self.client_id, safe=""),
                                     quote(self.client_secret, safe=""))
        else:
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        try:
            async with self._session().post(meta.token_endpoint, data=form, auth=auth,
                                            headers={"Accept": "application/json"}) as resp:
                data = await resp.json(content_type=None)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise OidcError(f"the token request failed ({type(exc).__name__})") from exc
        if status != 200 or not isinstance(data, dict):
            error = data.get("error") if isinstance(data, dict) else None
            raise OidcError(f"the identity provider refused the code ({error or status})")
        if not isinstance(data.get("id_token"), str):
            raise OidcError("the identity provider sent no ID token")
        return data

    async def _signing_key(self, kid: str | None, alg: str) -> Any:
        now = time.monotonic()
        for attempt in range(2):
            if self._jwks is None or (attempt == 1 and now - self._jwks[0] >= JWKS_REFRESH_MIN):
                meta = await self.metadata()
                try:
                    keyset = jwt.PyJWKSet.from_dict(await self._get_json(meta.jwks_uri))
                except jwt.PyJWKSetError as exc:
                    raise OidcError("the identity provider's key set is unusable") from exc
                self._jwks = (now, keyset)
            keys = [k for k in self._jwks[1].keys
                    if (kid is None or k.key_id == kid) and k.public_key_use in (None, "sig")]
            if len(keys) == 1 or (kid is not None and keys):
                return keys[0].key
            if kid is None and len(keys) > 1:
                raise OidcError("the ID token names no key and the provider has several")
        raise OidcError("the ID token was signed with a key the provider does not publish")

    async def verify_id_token(self, token: str, nonce: str) -> dict[str, Any]:
        """The ID token's claims after every check the relying party owes."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise OidcError("the ID token is malformed") from exc
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise OidcError(f"the ID token uses an algorithm Signoff does not accept ({alg})")
        meta = await self.metadata()
        key = await self._signing_key(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key=key, algorithms=[alg], audience=self.client_id, issuer=meta.issuer,
                leeway=LEEWAY, options={"require": ["iss", "aud", "exp", "iat", "sub"]})
        except jwt.PyJWTError as exc:
            raise OidcError(f"the ID token is not valid ({type(exc).__name__})") from exc
        aud = claims.get("aud")
        if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != self.client_id:
            raise OidcError("the ID token was issued to another party (azp)")
        presented = claims.get("nonce")
        if not isinstance(presented, str) or not hmac.compare_digest(presented, nonce):
            raise OidcError("the ID token does not answer this sign-in (nonce)")
        return claims

    async def sign_in(self, code: str, verifier: str, nonce: str) -> dict[str, Any]:
        """Exchange the code and verify the ID token; returns its claims."""
        tokens = await self.exchange(code, verifier)
        return await self.verify_id_token(tokens["id_token"], nonce)


def email_from_claims(claims: dict[str, Any], claim: str = "email", *,
                      require_verified: bool = True) -> str:
    """The verified email in the claims, in canonical form (:mod:`policy.identity`).

    The provider must vouch for the address: ``email_verified`` must be true (the JSON
    boolean, or the string ``"true"`` some providers send). Anything else is refused: an
    address someone merely typed into their provider profile must not become an approver's
    identity. With ``require_verified=False`` (``SIGNOFF_OIDC_REQUIRE_EMAIL_VERIFIED=false``,
    for providers that never send the claim) a token without the claim is accepted; an
    explicit false, or a value that is neither true nor false, is still refused.
    """
    value = claims.get(claim)
    if not isinstance(value, str) or "@" not in value:
        raise OidcError(f"the identity provider sent no '{claim}' claim")
    if "email_verified" not in claims:
        if require_verified:
            raise OidcError("the identity provider does not say this email address is "
                            "verified (no email_verified claim)")
    elif not (claims["email_verified"] is True or claims["email_verified"] == "true"):
        raise OidcError("the identity provider says this email address is not verified")
    email = canonical_email(value)
    if not email or "@" not in email:
        raise OidcError(f"the identity provider sent no usable '{claim}' claim")
    if email != value.strip().lower():
        # Only case and surrounding spaces may differ from the directory's spelling at
        # sign-in: a verified mailbox whose name folds onto someone else's (full-width
        # letters, invisible characters, "ß" for "ss") is another mailbox, not that person.
        raise OidcError("the email address contains characters that would make it look like "
                        "another address")
    return email
