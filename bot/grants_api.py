"""Grant status and revocation over the HTTP API (approvers only).

- ``GET /api/v1/grants/{jti}``: the grant's state (issued, used, revoked), request, expiry.
- ``POST /api/v1/grants/{jti}/revoke`` and ``POST /api/v1/requests/{id}/grant/revoke``:
  ``{"reason": "..."}``; a person token of a member of the request's approver groups. An
  unused grant is revoked atomically (a use racing the revocation either wins or is refused),
  the request's cards are refreshed and the audit records who and why (as a hash).
"""

from __future__ import annotations

import asyncio
import json
import re

from aiohttp import web

from bot.api import RID, _auth, problem
from bot.appkeys import RT
from signoff import grants
from signoff.grants import RevokeOutcome
from signoff.runtime import Runtime
from signoff.tokens import TokenKind

JTI = "{jti:[0-9a-f]{32}}"
_JTI_RE = re.compile(r"^[0-9a-f]{32}$")
MAX_REASON = 2000

STATUS = {RevokeOutcome.NOT_FOUND: 404, RevokeOutcome.FORBIDDEN: 403,
          RevokeOutcome.ALREADY_USED: 409, RevokeOutcome.ALREADY_REVOKED: 409,
          RevokeOutcome.EXPIRED: 409}


async def _person(request: web.Request) -> tuple[str | None, web.Response | None]:
    who = await _auth(request)
    if who is None:
        return None, problem(401, "Unauthorized", "missing or unknown bearer token")
    if who.kind is not TokenKind.PERSON:
        return None, problem(403, "Forbidden", "agent credentials cannot revoke grants")
    return who.subject, None


async def _reason(request: web.Request) -> tuple[str, web.Response | None]:
    if not request.can_read_body:
        return "", None
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", problem(400, "Bad Request", "body is not JSON")
    reason = data.get("reason", "") if isinstance(data, dict) else None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        return "", problem(400, "Bad Request",
                           f"reason must be a string of at most {MAX_REASON} characters")
    return reason, None


async def _revoke(request: web.Request, *, jti: str | None, rid: str | None) -> web.Response:
    rt = request.app[RT]
    person, err = await _person(request)
    if err is not None:
        return err
    assert person is not None
    reason, err = await _reason(request)
    if err is not None:
        return err
    result = await asyncio.to_thread(grants.revoke, rt, by=person, jti=jti, request_id=rid,
                                     reason=reason)
    if result.ok:
        return web.json_response({"result": result.outcome.value, "jti": result.jti,
                                  "request_id": result.request_id})
    return problem(STATUS.get(result.outcome, 409), "Revocation refused", result.message,
                   code=result.outcome.value)


async def revoke_by_jti(request: web.Request) -> web.Response:
    return await _revoke(request, jti=request.match_info["jti"], rid=None)


async def revoke_by_request(request: web.Request) -> web.Response:
    return await _revoke(request, jti=None, rid=request.match_info["rid"])


async def grant_status(request: web.Request) -> web.Response:
    rt = request.app[RT]
    _person_id, err = await _person(request)
    if err is not None:
        return err
    jti = request.match_info["jti"]
    info = await asyncio.to_thread(grants.status, rt, jti) if _JTI_RE.match(jti) else None
    if info is None:
        return problem(404, "Not Found", f"no grant {jti}")
    keep = ("jti", "rid", "act", "sub", "psh", "iat", "exp", "apr", "state", "used_at",
            "revoked_at", "revoked_by")
    return web.json_response({k: info[k] for k in keep if k in info})


def setup(app: web.Application, rt: Runtime) -> None:
    """Mount the grant routes."""
    app.router.add_get(f"/api/v1/grants/{JTI}", grant_status)
    app.router.add_post(f"/api/v1/grants/{JTI}/revoke", revoke_by_jti)
    app.router.add_post(f"/api/v1/requests/{RID}/grant/revoke", revoke_by_request)
