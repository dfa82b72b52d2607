"""``signoff keys`` (signing and data keys) and ``signoff grant`` (inspect, verify, revoke).

Key rotation, step by step, is in docs/security.md. In short: ``signoff keys rotate`` makes a
new grant key active while the old one keeps verifying until its grants expire (then
``signoff keys prune`` drops it); for the data keys (AES-GCM, from ``SIGNOFF_DATA_KEYS``) put
the new key first, run ``signoff keys rewrap``, then remove the old key from the setting.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from signoff import crypto, grants
from signoff.grant_check import GrantError, unverified_claims
from signoff.grants import KeyRing, Purpose
from signoff.runtime import Runtime
from workers.cli.run import resolved_settings


def _runtime() -> Any:
    ctx = resolved_settings()
    settings = ctx.__enter__()
    click.get_current_context().call_on_close(lambda: ctx.__exit__(None, None, None))
    return Runtime(settings)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts)) if ts else "-"


PURPOSES = click.Choice([p.value for p in Purpose])


@click.group()
def keys() -> None:
    """Manage grant and audit signing keys, and re-encrypt data after a data-key rotation."""


@keys.command("rotate")
@click.option("--purpose", type=PURPOSES, default=Purpose.GRANT.value, show_default=True)
def rotate(purpose: str) -> None:
    """Make a new signing key active; the old one keeps verifying until its grants expire."""
    rt = _runtime()
    key = KeyRing(rt, purpose).rotate()
    click.echo(f"{purpose} key {key.kid} is now active")


@keys.command("list")
def list_keys() -> None:
    """Every signing key: id, purpose, created, retired, active, sealed with which data key."""
    rt = _runtime()
    click.echo(f"{'KID':28} {'PURPOSE':7} {'CREATED':21} {'RETIRED':21} {'ACTIVE':6} SEALED")
    for purpose in Purpose:
        for info in KeyRing(rt, purpose).infos():
            sealed = info.sealed_with if info.has_private else "(public only)"
            click.echo(f"{info.kid:28} {purpose.value:7} {_when(info.created_at):21} "
                       f"{_when(info.retired_at):21} {'yes' if info.active else '':6} {sealed}")


@keys.command("prune")
def prune() -> None:
    """Drop retired grant keys whose grants have all expired (audit keys keep their public
    half forever)."""
    rt = _runtime()
    for purpose in Purpose:
        gone = KeyRing(rt, purpose).prune()
        click.echo(f"{purpose.value}: pruned {len(gone)}" + (f" ({', '.join(gone)})" if gone
                                                             else ""))


@keys.command("jwks")
@click.option("--purpose", type=PURPOSES, default=Purpose.GRANT.value, show_default=True)
def jwks(purpose: str) -> None:
    """Print the public keys as a JWK Set."""
    click.echo(json.dumps(KeyRing(_runtime(), purpose).jwks(), indent=2, sort_keys=True))


@keys.command("rewrap")
def rewrap() -> None:
    """Re-encrypt stored payloads and signing keys under the active data key."""
    rt = _runtime()
    ring = rt.data_keyring
    done = skipped = failed = 0
    cursor = 0
    while True:
        ids = rt.redis.zrange(rt.keys.all_requests, cursor, cursor + 499)
        if not ids:
            break
        cursor += len(ids)
        pipe = rt.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hget(rt.keys.request(rid), "ciphertext")
        for rid, token in zip(ids, pipe.execute(), strict=True):
            if not token:
                skipped += 1
                continue
            try:
                new = crypto.rewrap(ring, token, rid.encode())
            except crypto.DecryptError as exc:
                failed += 1
                click.echo(f"cannot re-encrypt {rid}: {exc}", err=True)
                continue
            if new is None:
                skipped += 1
                continue
            rt.redis.hset(rt.keys.request(rid), "ciphertext", new)
            done += 1
    resealed = sum(KeyRing(rt, p).reseal() for p in Purpose)
    click.echo(f"payloads: {done} re-encrypted, {skipped} already current or empty, "
               f"{failed} failed; signing keys resealed: {resealed}; active data key "
               f"{crypto.active_kid(ring)}")
    if failed:
        raise click.ClickException("some payloads did not decrypt: keep the old data key")


@click.group()
def grant() -> None:
    """Inspect, verify or revoke grants."""


@grant.command("show")
@click.argument("token")
def show(token: str) -> None:
    """Print a grant's claims (not verified) and its state in Redis."""
    claims = unverified_claims(token)
    if not claims:
        raise click.ClickException("not a grant token")
    rt = _runtime()
    state = grants.status(rt, str(claims.get("jti", ""))) or {}
    click.echo(json.dumps({"claims": claims, "state": state.get("state", "unknown")},
                          indent=2, sort_keys=True))


@grant.command("verify")
@click.argument("token")
@click.option("--action", required=True)
@click.option("--resource", help="The resource about to be acted on.")
@click.option("--params", "params_json", help="The exact params, as JSON.")
@click.option("--payload", "payload_file", type=click.Path(exists=True, dir_okay=False,
                                                           path_type=Path),
              help="A JSON file with resource and params (instead of --resource/--params); a "
                   "whole request body also binds its id, requester and context.")
@click.option("--request-id", default=None, help="The request this run was approved as.")
@click.option("--requester", default=None, help="The agent about to run it.")
@click.option("--env", "environment", default=None, help="The environment it runs in.")
@click.option("--context", "context_json", default=None,
              help="The request's context as sent, as JSON (binds its hash and environment).")
@click.option("--consume", is_flag=True, help="Also use the grant up (single use).")
def verify(token: str, action: str, resource: str | None, params_json: str | None,
           payload_file: Path | None, request_id: str | None, requester: str | None,
           environment: str | None, context_json: str | None, consume: bool) -> None:
    """Check a grant against exactly what would run (exit 1 when refused)."""
    payload = json.loads(payload_file.read_text()) if payload_file else None
    params = json.loads(params_json) if params_json is not None else None
    context = json.loads(context_json) if context_json is not None else None
    if context is not None and not isinstance(context, dict):
        raise click.UsageError("--context must be a JSON object")
    if payload is None and resource is None:
        raise click.UsageError("give --resource (and --params) or --payload")
    rt = _runtime()
    try:
        claims = grants.verify(rt, token, action=action, resource=resource, params=params,
                               payload=payload, request_id=request_id, requester=requester,
                               context=context, environment=environment, consume=consume,
                               actor="cli")
    except GrantError as exc:
        click.echo(f"REFUSED ({exc.code}): {exc}")
        raise SystemExit(1) from exc
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"OK: grant {claims['jti']} for request {claims['rid']} "
               f"({'consumed' if consume else 'not consumed'})")


@grant.command("revoke")
@click.argument("jti", required=False)
@click.option("--request", "request_id", help="Revoke the grant of this request instead.")
@click.option("--by", required=True, help="Who revokes (an approver of that request).")
@click.option("--reason", default="", help="Why (its SHA-256 goes to the audit).")
@click.option("--override", is_flag=True,
              help="Skip the approver-group check (local administrators; audited as admin:BY).")
def revoke(jti: str | None, request_id: str | None, by: str, reason: str,
           override: bool) -> None:
    """Revoke an unused grant by its id or its request's id."""
    if bool(jti) == bool(request_id):
        raise click.UsageError("give a grant id or --request, not both")
    rt = _runtime()
    who = f"admin:{by}" if override else rt.policy.directory.canonical_person(by)
    result = grants.revoke(rt, by=who, jti=jti, request_id=request_id, reason=reason,
                           check_groups=not override)
    if not result.ok:
        raise click.ClickException(f"{result.outcome.value}: {result.message}")
    click.echo(f"revoked grant {result.jti} of request {result.request_id}")
