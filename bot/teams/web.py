"""``POST /api/messages``: Teams activities into botbuilder's ``CloudAdapter``.

Mounted on the shared aiohttp app only when Teams is configured (``MICROSOFT_APP_ID`` and a
password or managed identity). The request is authenticated before anything else, by
botframework-connector's own JWT validation, and every authentication failure is a 401 that
changes nothing. This handler exists, rather than ``CloudAdapter.process``, because of three
botbuilder 4.17 pitfalls:

- only ``PermissionError`` becomes 401 there: an expired, malformed or wrongly signed token
  or an unknown key id surfaces as a 500. Here authentication runs on its own first, and any
  failure of it is a 401 (a metadata server that cannot be reached is a 503);
- a missing ``Authorization`` header reaches the validator as ``""`` and crashes it: here it
  is refused up front;
- the adaptive-card invoke response: the bot returns the response model and this handler
  serializes it exactly once.

Only activities from the Teams channel are served: a registration may also have Web Chat or
Direct Line enabled, whose clients write their own ``from`` (and so any AAD object id).
"""

from __future__ import annotations

import logging

import aiohttp
import requests
from aiohttp import web
from botbuilder.core import serializer_helper
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import Activity
from botframework.connector import Channels
from botframework.connector.auth import EmulatorValidation, SkillValidation
from msrest.serialization import Model

from bot.teams.auth import build_authentication, describe, teams_configured
from bot.teams.bot import SignoffTeamsBot
from bot.teams.tenants import TenantPolicy
from signoff.runtime import Runtime

log = logging.getLogger(__name__)

ROUTE = "/api/messages"


def _unauthorized(detail: str) -> web.Response:
    return web.json_response({"error": "unauthorized", "detail": detail}, status=401,
                             headers={"WWW-Authenticate": "Bearer"})


class TeamsEndpoint:
    """The Bot Framework messaging endpoint for one runtime."""

    def __init__(self, rt: Runtime) -> None:
        settings = rt.settings
        self.tenants = TenantPolicy.from_settings(settings)
        self.auth = build_authentication(settings)
        self.adapter = CloudAdapter(self.auth)
        self.bot = SignoffTeamsBot(rt, self.tenants)
        if self.tenants.closed:
            log.warning("Teams is configured but no tenant is allowed: set "
                        "SIGNOFF_TEAMS_ALLOWED_TENANTS or MICROSOFT_APP_TENANT_ID")
        log.info("Teams endpoint at %s (%s)", ROUTE, describe(settings))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Authenticate, then run the activity through the adapter and the bot."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme != "Bearer" or not token or " " in token:
            return _unauthorized("a Bot Framework bearer token is required")
        if "application/json" not in request.headers.get("Content-Type", ""):
            return web.json_response({"error": "expected application/json"}, status=415)
        try:
            body = await request.json()
            activity = Activity().deserialize(body) if isinstance(body, dict) else None
        except (ValueError, TypeError, AttributeError):
            activity = None
        if activity is None or not activity.type:
            return web.json_response({"error": "the body is not an activity"}, status=400)
        if _is_emulator_or_skill(header):
            # Only the Bot Framework channel service talks to Signoff: emulator tokens are
            # checked against a different issuer set and skills need a claims validator.
            return _unauthorized("only Bot Framework channel tokens are accepted")
        try:
            auth_result = await self.auth.authenticate_request(activity, header)
        except (TimeoutError, aiohttp.ClientError, requests.RequestException) as exc:
            log.warning("cannot fetch the Bot Framework signing keys: %s", type(exc).__name__)
            return web.json_response({"error": "cannot verify the token right now"},
                                     status=503, headers={"Retry-After": "5"})
        except Exception as exc:
            # Any failure to authenticate is a refusal (fail closed); the reason is logged
            # without the token.
            log.info("Teams request refused: %s: %s", type(exc).__name__, exc)
            return _unauthorized("the token did not validate")
        if activity.channel_id != Channels.ms_teams:
            # The same registration may have Web Chat or Direct Line enabled, whose clients
            # choose their own "from" and channelData: only Teams' word on who clicked counts.
            return web.json_response({"error": "only Microsoft Teams activities are accepted"},
                                     status=403)
        missing = _unaddressable(activity)
        if missing:
            # Teams addresses every activity; one that names no conversation (or no sender)
            # cannot be answered or attributed, so no handler sees it (botbuilder would fail
            # building the reply, a 500, possibly after a handler had acted).
            return web.json_response({"error": f"malformed activity: no {missing}"}, status=400)
        try:
            response = await self.adapter.process_activity(auth_result, activity,
                                                           self.bot.on_turn)
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            # An authenticated activity whose shape the handlers cannot read (e.g. a null in
            # membersAdded): Teams never sends one; refused as malformed, not a 500.
            log.warning("malformed Teams %s activity refused", activity.type, exc_info=True)
            return web.json_response({"error": "malformed activity"}, status=400)
        except Exception:
            log.exception("Teams activity %s failed", activity.type)
            return web.json_response({"error": "internal error"}, status=500)
        if response is None:
            return web.Response(status=201)
        body = response.body
        if isinstance(body, Model):
            body = serializer_helper(body)
        if body is None:
            return web.Response(status=int(response.status))
        return web.json_response(body, status=int(response.status))


def _unaddressable(activity: Activity) -> str | None:
    """What an activity lacks to be handled and answered: its conversation's id, its sender's
    id or the connector's URL (``None`` when it has all three)."""
    required = {"conversation.id": activity.conversation.id if activity.conversation else None,
                "from.id": activity.from_property.id if activity.from_property else None,
                "serviceUrl": activity.service_url}
    for name, value in required.items():
        if not isinstance(value, str) or not value.strip():
            return name
    return None


def _is_emulator_or_skill(header: str) -> bool:
    try:
        return bool(EmulatorValidation.is_token_from_emulator(header)
                    or SkillValidation.is_skill_token(header))
    except Exception:
        return False  # not even a JWT: the channel validation refuses it


def setup(app: web.Application, rt: Runtime) -> None:
    """Mount ``POST /api/messages`` when Teams is configured."""
    if not teams_configured(rt.settings):
        return
    endpoint = TeamsEndpoint(rt)
    app.router.add_post(ROUTE, endpoint.handle)
