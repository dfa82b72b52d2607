"""``signoff standing`` and ``signoff delegation``: list and revoke standing approvals;
create, list and revoke delegations (an operator's commands: they run with the deployment's
Redis, so they act as ``--by``, audited)."""

from __future__ import annotations

import json
import time

import click

from policy.durations import parse_duration
from signoff.audit import Event
from signoff.delegation import DelegationError, Delegations
from signoff.runtime import Runtime
from signoff.standing import StandingApprovals
from workers.cli.config import resolved_settings


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts)) if ts else "-"


@click.group("standing")
def standing_cmd() -> None:
    """Standing approvals: the same request approved again for a while."""


@standing_cmd.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def standing_list(as_json: bool) -> None:
    """Active standing approvals: id, agent, action, resource, person, approvers, until."""
    with resolved_settings() as settings:
        rt = Runtime(settings)
        items = StandingApprovals(rt.redis, rt.keys).active()
        for st in items:
            if as_json:
                click.echo(json.dumps(st.to_public(), sort_keys=True))
            else:
                pub = st.to_public()
                click.echo(f"{st.id}  {pub['requester']}  {pub['action']}  {pub['resource']}  "
                           f"for {pub['on_behalf_of'] or '-'}  by {st.by_text()}  until "
                           f"{_when(st.expires_at)}  used {st.uses}×")
        if not items and not as_json:
            click.echo("no active standing approvals")


@standing_cmd.command("revoke")
@click.argument("standing_id")
@click.option("--by", default="admin:cli", show_default=True,
              help="Who revokes (recorded in the audit log).")
def standing_revoke(standing_id: str, by: str) -> None:
    """Revoke a standing approval: the next request it would cover waits for people again."""
    with resolved_settings() as settings:
        rt = Runtime(settings)
        store = StandingApprovals(rt.redis, rt.keys)
        before = store.get(standing_id)
        if before is None:
            raise click.ClickException(f"no standing approval {standing_id}")
        done = store.revoke(standing_id, by)
        assert done is not None
        if before.active:
            rt.audit.append(Event.STANDING_REVOKED, before.source_request, by,
                            standing=standing_id, channel="cli", uses=done.uses)
            click.echo(f"revoked {standing_id} (used {done.uses}×)")
        else:
            click.echo(f"{standing_id} had already ended")


@click.group("delegation")
def delegation_cmd() -> None:
    """Delegations: a person's approvals handed to another for a while."""


@delegation_cmd.command("add")
@click.option("--from", "from_person", required=True, help="Whose approvals (email).")
@click.option("--to", "to_person", required=True, help="The delegate (email).")
@click.option("--for", "duration", required=True, help="How long: 8h, 3d, ...")
@click.option("--reason", default="", help="Why (shown to both, audited).")
@click.option("--by", default="admin:cli", show_default=True, help="Who creates it (audit).")
def delegation_add(from_person: str, to_person: str, duration: str, reason: str,
                   by: str) -> None:
    """Delegate FROM's approvals to TO for a while; TO decides in their own name."""
    try:
        seconds = parse_duration(duration)
    except (TypeError, ValueError) as exc:
        raise click.BadParameter("a duration such as 8h or 3d", param_hint="--for") from exc
    with resolved_settings() as settings:
        rt = Runtime(settings)
        try:
            made = Delegations(rt.redis, rt.keys).create(
                rt.policy.directory, from_person, to_person, seconds, created_by=by,
                reason=reason)
        except DelegationError as exc:
            raise click.ClickException(str(exc)) from exc
        rt.audit.append(Event.DELEGATION_CREATED, "", by, delegation=made.id,
                        from_person=made.from_person, to_person=made.to_person,
                        starts_at=made.starts_at, ends_at=made.ends_at, channel="cli")
        click.echo(f"{made.id}: {made.to_person} decides for {made.from_person} until "
                   f"{_when(made.ends_at)}")


@delegation_cmd.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def delegation_list(as_json: bool) -> None:
    """Delegations that have not ended."""
    with resolved_settings() as settings:
        rt = Runtime(settings)
        items = Delegations(rt.redis, rt.keys).all_active()
        for d in items:
            if as_json:
                click.echo(json.dumps(d.to_public(), sort_keys=True))
            else:
                click.echo(f"{d.id}  {d.from_person} -> {d.to_person}  {_when(d.starts_at)}"
                           f" .. {_when(d.ends_at)}  {d.reason}")
        if not items and not as_json:
            click.echo("no delegations")


@delegation_cmd.command("revoke")
@click.argument("delegation_id")
@click.option("--by", default="admin:cli", show_default=True, help="Who revokes (audit).")
def delegation_revoke(delegation_id: str, by: str) -> None:
    """End a delegation now."""
    with resolved_settings() as settings:
        rt = Runtime(settings)
        store = Delegations(rt.redis, rt.keys)
        found = store.get(delegation_id)
        if found is None:
            raise click.ClickException(f"no delegation {delegation_id}")
        if not found.revoked_at:
            store.revoke(delegation_id, by)
            rt.audit.append(Event.DELEGATION_REVOKED, "", by, delegation=delegation_id,
                            from_person=found.from_person, to_person=found.to_person,
                            channel="cli")
        click.echo(f"revoked {delegation_id}")
