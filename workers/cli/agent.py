"""Agent-side and operator commands: ``request``, ``status``, ``pending``, ``cancel``, ``decide``.

``request`` is a real agent (it uses the SDK over the wire contract); the others read the
store, and ``decide`` records a vote as a person through the same separation-of-duties check
as every channel (for operators on the Redis host).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from signoff.sdk import ApprovalTimeout, Client
from workers.cli.config import resolved_settings


def _print(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


@click.command()
@click.argument("action")
@click.argument("resource")
@click.option("--params", default="{}", help="JSON payload (or @file.json).")
@click.option("--requester", default=None,
              help="Only for the trusted single-agent mode: the agent identity the body names. "
                   "With the REDIS_URL 'signoff agent add' printed, the agent is that one.")
@click.option("--on-behalf-of", default=None, help="The human the agent acts for.")
@click.option("--reason", default=None)
@click.option("--env", "environment", default=None, help="context.environment")
@click.option("--id", "request_id", default=None, help="Idempotency key (generated if absent).")
@click.option("--wait/--no-wait", default=True, help="Wait for the decision.")
@click.option("--timeout", default=600.0, show_default=True)
def request(action: str, resource: str, params: str, requester: str | None,
            on_behalf_of: str | None,
            reason: str | None, environment: str | None, request_id: str | None, wait: bool,
            timeout: float) -> None:
    """Send an approval request as an agent; print the decision (exit 1 unless approved)."""
    raw = Path(params[1:]).read_text() if params.startswith("@") else params
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--params") from exc
    with resolved_settings(agent=True) as settings:
        assert settings.redis_url
        try:
            client = Client(settings.redis_url, requester=requester, prefix=settings.key_prefix)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        handle = client.request(action, resource, payload, on_behalf_of=on_behalf_of,
                                reason=reason, context={"environment": environment}
                                if environment else {}, id=request_id)
        click.echo(f"sent {handle.id}; waiting for a decision..." if wait else handle.id,
                   err=wait)
        if not wait:
            return
        try:
            decision = handle.wait(timeout)
        except ApprovalTimeout as exc:
            raise click.ClickException(str(exc)) from exc
        _print(decision.raw)
        sys.exit(0 if decision.approved else 1)


@click.command()
@click.argument("request_id")
def status(request_id: str) -> None:
    """Show one request (masked)."""
    # Server extra: `signoff request` (this module) runs on the agent-only install.
    from bot.api import view_json
    from signoff.cardview.view import build_view
    from signoff.runtime import Runtime

    with resolved_settings() as settings:
        rt = Runtime(settings)
        record = rt.store.get(request_id)
        if record is None:
            raise click.ClickException(f"no request {request_id}")
        _print(view_json(build_view(record)))


@click.command()
@click.option("--person", default=None, help="Only what this person may decide.")
@click.option("--limit", default=20, show_default=True)
def pending(person: str | None, limit: int) -> None:
    """List pending requests, newest first."""
    # Server extra: `signoff request` (this module) runs on the agent-only install.
    from signoff.cardview.view import build_view
    from signoff.runtime import Runtime

    with resolved_settings() as settings:
        rt = Runtime(settings)
        groups = None
        if person:
            who = rt.policy.directory.person(person)
            if who is None:
                raise click.ClickException(f"{person} is not in the policy directory")
            groups = sorted(who.groups)
        ids = rt.store.pending_ids(groups=groups, limit=limit)
        if not ids:
            click.echo("nothing pending")
        now = time.time()
        for rid in ids:
            record = rt.store.get(rid)
            if record is None:
                continue
            v = build_view(record)
            click.echo(f"{rid}  {v.action}  {v.resource}  {v.progress}  "
                       f"{v.seconds_left(now) // 60} min left")


@click.command()
@click.argument("request_id")
@click.option("--by", required=True, help="The requesting agent or the person it acts for.")
@click.option("--reason", default="")
def cancel(request_id: str, by: str, reason: str) -> None:
    """Cancel a pending request."""
    # Server extra: `signoff request` (this module) runs on the agent-only install.
    from signoff import lifecycle
    from signoff.runtime import Runtime

    with resolved_settings() as settings:
        result = lifecycle.cancel(Runtime(settings), request_id, by, reason)
        if result is not lifecycle.Cancel.CHANGED:
            raise click.ClickException(f"not cancelled: {result.value}")
        click.echo(f"cancelled {request_id}")


@click.command()
@click.argument("request_id")
@click.argument("choice", type=click.Choice(["approve", "deny"]))
@click.option("--as", "person_email", required=True, help="The approver's email.")
@click.option("--comment", default=None)
def decide(request_id: str, choice: str, person_email: str, comment: str | None) -> None:
    """Approve or deny as a person (same rules as every channel)."""
    # Server extra: `signoff request` (this module) runs on the agent-only install.
    from signoff import lifecycle
    from signoff.runtime import Runtime

    with resolved_settings() as settings:
        rt = Runtime(settings)
        person = rt.policy.directory.person(person_email)
        reply = lifecycle.submit_vote(rt, request_id, person, choice, comment, channel="cli",
                                      actor_label=person_email)
        if not reply.ok:
            raise click.ClickException(reply.message)
        click.echo(reply.message)
