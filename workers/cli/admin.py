"""``signoff token``: API credentials for approvers (a person) and agents (may only ask)."""

from __future__ import annotations

import time

import click

from signoff.audit import Event
from signoff.runtime import Runtime
from signoff.tokens import TokenKind
from workers.cli.run import resolved_settings


@click.group()
def token() -> None:
    """Create, list and revoke API tokens (stored only as SHA-256)."""


@token.command("create")
@click.option("--person", default=None, help="Approver email (must be in the directory).")
@click.option("--agent", default=None, help="Agent id (may create requests, never decide).")
@click.option("--label", default="")
def create(person: str | None, agent: str | None, label: str) -> None:
    """Issue a token; it is printed once and never stored."""
    if bool(person) == bool(agent):
        raise click.UsageError("give exactly one of --person or --agent")
    with resolved_settings() as settings:
        rt = Runtime(settings)
        if person:
            if rt.policy.directory.person(person) is None:
                raise click.ClickException(f"{person} is not in the policy directory")
            value = rt.tokens.create(TokenKind.PERSON, person, label)
            rt.audit.append(Event.TOKEN_CREATED, "", "cli", kind="person",
                            subject=rt.policy.directory.canonical_person(person))
        else:
            assert agent
            value = rt.tokens.create(TokenKind.AGENT, agent, label)
            rt.audit.append(Event.TOKEN_CREATED, "", "cli", kind="agent", subject=agent)
        click.echo(value)


@token.command("list")
def list_tokens() -> None:
    """List tokens (hash prefix, kind, subject, created)."""
    with resolved_settings() as settings:
        for t in Runtime(settings).tokens.list():
            created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(t.created_at))
            click.echo(f"{t.token_hash[:12]}  {t.kind.value:6}  {t.subject}  {created}  {t.label}")


@token.command("revoke")
@click.argument("hash_prefix")
def revoke(hash_prefix: str) -> None:
    """Revoke tokens by the hash prefix `token list` shows."""
    with resolved_settings() as settings:
        n = Runtime(settings).tokens.revoke(hash_prefix)
        if not n:
            raise click.ClickException("no token has that hash prefix")
        click.echo(f"revoked {n}")
