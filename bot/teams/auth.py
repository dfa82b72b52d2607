"""How the Teams bot authenticates, using botbuilder's own code both ways.

Inbound: botframework-connector validates every activity's bearer JWT (the issuer, the
audience = our app id, the signature with keys from the OpenID metadata, the channel's key
endorsements, the ``serviceurl`` claim against the activity). The metadata URL is a setting
(``SIGNOFF_TEAMS_OPENID_METADATA_URL``) so tests point it at a local server; overriding it
selects botbuilder's "parameterized" authentication, so every public-cloud value it needs
is given here explicitly.

Outbound: client-credentials tokens from Microsoft Entra through MSAL, as botbuilder does,
but from one MSAL application per process so tokens are cached until they expire
(botbuilder 4.17 builds a new MSAL application, hence a new token, for every proactive turn).
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botframework.connector.auth import (
    AuthenticationConstants,
    ConnectorFactory,
    ManagedIdentityServiceClientCredentialsFactory,
    MicrosoftAppCredentials,
    ServiceClientCredentialsFactory,
)
from botframework.connector.auth.jwt_token_extractor import (
    JwtTokenExtractor,
    _OpenIdConfig,
    _OpenIdMetadata,
)
from jwt.algorithms import RSAAlgorithm
from msal import ConfidentialClientApplication
from msrest.authentication import Authentication

from signoff.settings import Settings

log = logging.getLogger(__name__)

BOT_FRAMEWORK_ISSUER = AuthenticationConstants.TO_BOT_FROM_CHANNEL_TOKEN_ISSUER
BOT_FRAMEWORK_SCOPE = AuthenticationConstants.TO_CHANNEL_FROM_BOT_OAUTH_SCOPE
EMULATOR_METADATA = AuthenticationConstants.TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL
PUBLIC_CALLER_ID = "urn:botframework:azure"
MULTI_TENANT_AUTHORITY_TENANT = AuthenticationConstants.DEFAULT_CHANNEL_AUTH_TENANT
METADATA_TIMEOUT_SECONDS = 10
TOKEN_TIMEOUT_SECONDS = 15


def teams_configured(settings: Settings) -> bool:
    """Whether this deployment talks to Teams (an app id and a password or managed identity)."""
    if not settings.microsoft_app_id:
        return False
    if settings.microsoft_app_type.lower() == "userassignedmsi":
        return True
    return settings.microsoft_app_password is not None


@dataclass(frozen=True)
class BotFrameworkConfig:
    """The configuration object botbuilder's ``ConfigurationBotFrameworkAuthentication`` reads.

    Built from :class:`~signoff.settings.Settings` (components never read the environment).
    It holds no secret: credentials come from :class:`SignoffCredentialsFactory`.
    """

    APP_ID: str
    APP_TYPE: str
    APP_TENANTID: str | None
    TO_CHANNEL_FROM_BOT_LOGIN_URL: str
    TO_CHANNEL_FROM_BOT_OAUTH_SCOPE: str
    TO_BOT_FROM_CHANNEL_TOKEN_ISSUER: str
    TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL: str
    TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL: str
    OAUTH_URL: str
    CALLER_ID: str
    VALIDATE_AUTHORITY: bool = True


def authority(settings: Settings) -> str:
    """The Entra authority outbound tokens come from (the app's tenant for single-tenant)."""
    tenant = MULTI_TENANT_AUTHORITY_TENANT
    if settings.microsoft_app_type.lower() == "singletenant" and settings.microsoft_app_tenant_id:
        tenant = settings.microsoft_app_tenant_id
    return settings.teams_login_url.rstrip("/") + "/" + tenant


def config_from_settings(settings: Settings) -> BotFrameworkConfig:
    """The botbuilder configuration for these settings (public-cloud values, our URLs)."""
    if not settings.microsoft_app_id:
        raise ValueError("MICROSOFT_APP_ID is not set")
    return BotFrameworkConfig(
        APP_ID=settings.microsoft_app_id,
        APP_TYPE=settings.microsoft_app_type,
        APP_TENANTID=settings.microsoft_app_tenant_id,
        TO_CHANNEL_FROM_BOT_LOGIN_URL=authority(settings),
        TO_CHANNEL_FROM_BOT_OAUTH_SCOPE=BOT_FRAMEWORK_SCOPE,
        TO_BOT_FROM_CHANNEL_TOKEN_ISSUER=BOT_FRAMEWORK_ISSUER,
        TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL=settings.teams_openid_metadata_url,
        TO_BOT_FROM_EMULATOR_OPENID_METADATA_URL=EMULATOR_METADATA,
        OAUTH_URL=BOT_FRAMEWORK_SCOPE,
        CALLER_ID=PUBLIC_CALLER_ID,
    )


def build_authentication(settings: Settings) -> ConfigurationBotFrameworkAuthentication:
    """botbuilder's authentication for these settings, with Signoff's credentials factory."""
    config = config_from_settings(settings)
    install_metadata(config.TO_BOT_FROM_CHANNEL_OPENID_METADATA_URL)
    return ReusingAuthentication(config, credentials_factory=SignoffCredentialsFactory(settings))


# How many connector and user-token clients a process keeps (one per app identity, service
# URL and audience: a deployment has a handful).
CLIENTS_KEPT = 64


class ReusingAuthentication(ConfigurationBotFrameworkAuthentication):  # type: ignore[misc]
    """botbuilder's authentication, reusing the clients it builds for each inbound activity.

    Hand-written because botbuilder 4.17 builds a new Bot Connector client and a new
    user-token client for every activity it receives, each an msrest client with its own
    configuration, retry policy and config parser: about a tenth of the web process's CPU
    under Teams clicks (bench/load.py). The clients hold nothing of the activity (only the
    bot's credentials, which cache their token until it expires, and the service URL), so
    one per app identity, service URL and audience serves every activity. Authentication
    itself is untouched: every activity's token is still validated first.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connectors: dict[tuple[str, str, str], Any] = {}
        self._token_clients: dict[str, Any] = {}

    async def authenticate_request(self, activity: Any, auth_header: str) -> Any:
        result = await super().authenticate_request(activity, auth_header)
        factory = getattr(result, "connector_factory", None)
        if factory is not None:
            result.connector_factory = _ReusedConnectors(
                factory, self._connectors, _app_id(result.claims_identity))
        return result

    async def create_user_token_client(self, claims_identity: Any) -> Any:
        app_id = _app_id(claims_identity)
        client = self._token_clients.get(app_id)
        if client is None:
            client = await super().create_user_token_client(claims_identity)
            _keep(self._token_clients, app_id, client)
        return client


class _ReusedConnectors(ConnectorFactory):  # type: ignore[misc]
    """A connector factory that builds one client per (app id, service URL, audience)."""

    def __init__(self, inner: Any, cache: dict[tuple[str, str, str], Any], app_id: str) -> None:
        self._inner = inner
        self._cache = cache
        self._app_id = app_id

    async def create(self, service_url: str, audience: str | None = None) -> Any:
        key = (self._app_id, service_url, audience or "")
        client = self._cache.get(key)
        if client is None:
            client = await self._inner.create(service_url, audience)
            _keep(self._cache, key, client)
        return client


def _app_id(claims_identity: Any) -> str:
    """The bot's app id an activity was sent to (the token's audience), as botbuilder reads it."""
    value = claims_identity.get_claim_value(AuthenticationConstants.AUDIENCE_CLAIM) or \
        claims_identity.get_claim_value(AuthenticationConstants.APP_ID_CLAIM)
    return str(value or "")


def _keep(cache: dict[Any, Any], key: Any, client: Any) -> None:
    if len(cache) >= CLIENTS_KEPT:
        cache.clear()
    cache[key] = client


# --------------------------------------------------------------------------------------------
# inbound: the OpenID metadata (signing keys)
# --------------------------------------------------------------------------------------------
class AsyncOpenIdMetadata(_OpenIdMetadata):  # type: ignore[misc]
    """botbuilder's signing-key cache, fetching without blocking and failing closed.

    Hand-written because botbuilder 4.17's own refresh calls ``requests.get`` without a
    timeout on the event loop (one slow metadata server would stall every request of the web
    process), and an unknown key id surfaces as an ``IndexError``. This subclass keeps its
    caching rules (refresh daily, and at most hourly for an unknown key id) and replaces only
    the fetch (aiohttp, bounded) and the lookup (an unknown key is a ``PermissionError``).
    """

    async def _refresh(self) -> None:
        timeout = aiohttp.ClientTimeout(total=METADATA_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as http:
            async with http.get(self.url) as resp:
                resp.raise_for_status()
                document = await resp.json(content_type=None)
            jwks_uri = document["jwks_uri"]
            async with http.get(jwks_uri) as resp:
                resp.raise_for_status()
                keys = (await resp.json(content_type=None))["keys"]
        self.keys = [k for k in keys if isinstance(k, dict) and k.get("kid")]
        self.last_updated = datetime.now()

    def _find(self, key_id: str) -> _OpenIdConfig | None:
        if not self.keys:
            return None
        for key in self.keys:
            if key.get("kid") == key_id:
                public_key = RSAAlgorithm.from_jwk(json.dumps(key))
                return _OpenIdConfig(public_key, key.get("endorsements", []))
        return None

    async def get(self, key_id: str) -> _OpenIdConfig:
        found = await super().get(key_id)
        if found is None:
            raise PermissionError("the token's signing key is not in the OpenID metadata")
        return found


def install_metadata(url: str) -> None:
    """Make botbuilder's class-wide key cache use :class:`AsyncOpenIdMetadata` for ``url``."""
    current = JwtTokenExtractor.metadataCache.get(url)
    if not isinstance(current, AsyncOpenIdMetadata):
        JwtTokenExtractor.metadataCache[url] = AsyncOpenIdMetadata(url)


# --------------------------------------------------------------------------------------------
# outbound: tokens for the Bot Connector
# --------------------------------------------------------------------------------------------
class CachedMsalCredentials(MicrosoftAppCredentials):  # type: ignore[misc]
    """``MicrosoftAppCredentials`` whose MSAL application (and token cache) is shared."""

    def __init__(self, app_id: str, msal_app: ConfidentialClientApplication,
                 oauth_scope: str) -> None:
        super().__init__(app_id, "", oauth_scope=oauth_scope)
        self._msal = msal_app

    def get_access_token(self, force_refresh: bool = False) -> str:
        scope = self.oauth_scope
        if not scope.endswith("/.default"):
            scope += "/.default"
        # MSAL answers from its cache until the token is about to expire.
        result = self._msal.acquire_token_for_client(scopes=[scope])
        token = result.get("access_token") if isinstance(result, dict) else None
        if token:
            return str(token)
        error = result.get("error", "unknown_error") if isinstance(result, dict) else "no result"
        # The error code only: descriptions can echo request details.
        raise PermissionError(f"could not get a Bot Framework token: {error}")


class SignoffCredentialsFactory(ServiceClientCredentialsFactory):  # type: ignore[misc]
    """Credentials for outbound Bot Connector calls, one MSAL application per authority.

    Args:
        settings: app id, password (or managed identity), tenant, type and login URL.
    """

    def __init__(self, settings: Settings) -> None:
        self.app_id = settings.microsoft_app_id or ""
        self._password = settings.microsoft_app_password
        self._authority = authority(settings)
        self._msi = (ManagedIdentityServiceClientCredentialsFactory(self.app_id)
                     if settings.microsoft_app_type.lower() == "userassignedmsi" else None)
        self._apps: dict[str, ConfidentialClientApplication] = {}

    async def is_valid_app_id(self, app_id: str) -> bool:
        return bool(self.app_id) and hmac.compare_digest(str(app_id or ""), self.app_id)

    async def is_authentication_disabled(self) -> bool:
        return not self.app_id

    def _msal_app(self, login_endpoint: str) -> ConfidentialClientApplication:
        authority_url = login_endpoint or self._authority
        app = self._apps.get(authority_url)
        if app is None:
            if self._password is None:
                raise PermissionError("MICROSOFT_APP_PASSWORD is not set")
            app = ConfidentialClientApplication(
                client_id=self.app_id,
                client_credential=self._password.get_secret_value(),
                authority=authority_url,
                # The authority is configuration, not user input: no discovery round trip.
                instance_discovery=False,
                timeout=TOKEN_TIMEOUT_SECONDS,
            )
            self._apps[authority_url] = app
        return app

    async def create_credentials(self, app_id: str, oauth_scope: str, login_endpoint: str,
                                 validate_authority: bool) -> Authentication:
        if self._msi is not None:
            return await self._msi.create_credentials(app_id, oauth_scope, login_endpoint,
                                                      validate_authority)
        if not await self.is_valid_app_id(app_id):
            raise PermissionError("credentials requested for another app id")
        return CachedMsalCredentials(self.app_id, self._msal_app(login_endpoint),
                                     oauth_scope or BOT_FRAMEWORK_SCOPE)


def describe(settings: Settings) -> dict[str, Any]:
    """What the Teams setup is, for logs (no secrets)."""
    return {"app_id": settings.microsoft_app_id, "app_type": settings.microsoft_app_type,
            "openid_metadata": settings.teams_openid_metadata_url,
            "authority": authority(settings)}
