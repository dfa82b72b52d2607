"""``signoff agent add | list | rotate | remove``: register agents and issue their credentials.

Each agent gets a Redis ACL user confined to its own keys (printed as a ready Redis URL) and
an API token; the secrets are printed once and never stored (Signoff keeps their SHA-256).
"""

from __future__ import annotations

import json
import time

import click
import redis

from signoff.agents import (
    AgentError,
    AgentRegistry,
    Credentials,
    acl_command,
    canonical_name,
    redis_major,
)
from signoff.redis_conn import connect
from signoff.runtime import Runtime
from signoff.settings import Settings
from workers.cli.run import resolved_settings


def _print_credentials(creds: object, as_json: bool) -> None:
    assert isinstance(creds, Credentials)
    if as_json:
        click.echo(json.dumps({"agent": creds.name, "requester": f"agent:{creds.name}",
                               "redis_url": creds.redis_url, "api_token": creds.api_token},
                              indent=2))
        return
    click.echo(f"agent:      agent:{creds.name}")
    click.echo(f"REDIS_URL:  {creds.redis_url}")
    click.echo(f"API token:  {creds.api_token}")
    click.echo("Shown once: store both in the agent's secret store. The Redis user may touch "
               "only this agent's own keys.", err=True)


@click.group()
def agent() -> None:
    """Register agents and issue their credentials (Redis ACL user + API token)."""


@agent.command("add")
@click.argument("name")
@click.option("--redis-url", "public_url", default=None,
              help="The Redis URL as agents reach it (default: Signoff's own, without its "
                   "credentials).")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def add(name: str, public_url: str | None, as_json: bool) -> None:
    """Register agent NAME; print its Redis URL and API token (once)."""
    _issue(name, public_url, as_json, rotate=False)


def _issue(name: str, public_url: str | None, as_json: bool, *, rotate: bool) -> None:
    """Issue agent NAME's credentials (new, or rotated) and print them once."""
    with resolved_settings() as settings:
        assert settings.redis_url
        registry = AgentRegistry(connect(settings.redis_url), settings.keys)
        issue = registry.rotate if rotate else registry.add
        try:
            creds = issue(name, public_url or settings.redis_url)
        except (AgentError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
        except redis.ResponseError as exc:
            verb = "change" if rotate else "create"
            raise click.ClickException(f"Redis refused to {verb} the agent's ACL user ({exc}); "
                                       "Signoff's Redis user needs ACL SETUSER") from exc
        _print_credentials(creds, as_json)
        if not rotate:
            _warn_if_unknown(settings, f"agent:{creds.name}")


def _warn_if_unknown(settings: object, requester: str) -> None:
    """Say so when the policy's directory does not list the agent (its owner and team then
    stay unknown to the rules)."""
    assert isinstance(settings, Settings)
    try:
        known = Runtime(settings).policy.directory.agent(requester) is not None
    except Exception:  # no readable policy here: nothing to compare with
        return
    if not known:
        click.echo(f"note: {requester} is not in the policy's directory (agents:); rules that "
                   "match its owner or team will not apply to it", err=True)


@agent.command("rotate")
@click.argument("name")
@click.option("--redis-url", "public_url", default=None,
              help="The Redis URL as agents reach it (default: Signoff's own).")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def rotate(name: str, public_url: str | None, as_json: bool) -> None:
    """New credentials for agent NAME; the old ones stop working at once."""
    _issue(name, public_url, as_json, rotate=True)


@agent.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Unregister agent NAME: its Redis user and API token stop working."""
    with resolved_settings() as settings:
        assert settings.redis_url
        registry = AgentRegistry(connect(settings.redis_url), settings.keys)
        try:
            gone = registry.remove(name)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        if not gone:
            raise click.ClickException(f"no agent {name}")
        click.echo(f"removed agent {name}")


@agent.command("list")
def list_agents() -> None:
    """List registered agents (never their secrets)."""
    with resolved_settings() as settings:
        assert settings.redis_url
        agents = AgentRegistry(connect(settings.redis_url), settings.keys).list()
        if not agents:
            click.echo("no agents registered (signoff agent add NAME)")
        for a in agents:
            created = time.strftime("%Y-%m-%d %H:%M", time.gmtime(a.created_at))
            click.echo(f"{a.name}  {a.requester}  redis user {a.acl_user}  since {created} UTC")


@agent.command("acl")
@click.argument("name")
def acl(name: str) -> None:
    """Print the ACL SETUSER rules Signoff gives agent NAME (password elided)."""
    with resolved_settings() as settings:
        assert settings.redis_url
        version = redis_major(connect(settings.redis_url))
        cmd = acl_command(settings.keys, canonical_name(name), "<sha256 of the password>",
                          version)
        click.echo(" ".join(cmd))
