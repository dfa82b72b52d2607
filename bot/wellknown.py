"""Public keys, for anyone who verifies what Signoff signs.

- ``GET /.well-known/jwks.json``: the grant keys (a JWK Set, EdDSA/Ed25519). A retired key
  stays listed until every grant it signed has expired.
- ``GET /.well-known/signoff-audit-keys.json``: the audit checkpoint keys (kept forever, so an
  auditor can check old checkpoints).

Both are public data; they are cached briefly so a rotation shows up within a minute.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bot.appkeys import RT
from signoff.grants import KeyRing, Purpose
from signoff.runtime import Runtime

CACHE_SECONDS = 60


async def _keys(request: web.Request, purpose: Purpose) -> web.Response:
    rt = request.app[RT]
    jwks = await asyncio.to_thread(KeyRing(rt, purpose).jwks)
    return web.json_response(jwks, headers={
        "Cache-Control": f"public, max-age={CACHE_SECONDS}",
        "Access-Control-Allow-Origin": "*"})


async def grant_keys(request: web.Request) -> web.Response:
    return await _keys(request, Purpose.GRANT)


async def audit_keys(request: web.Request) -> web.Response:
    return await _keys(request, Purpose.AUDIT)


def setup(app: web.Application, rt: Runtime) -> None:
    """Mount the key routes."""
    app.router.add_get("/.well-known/jwks.json", grant_keys)
    app.router.add_get("/.well-known/signoff-audit-keys.json", audit_keys)
