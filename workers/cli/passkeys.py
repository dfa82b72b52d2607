"""``signoff passkeys``: list people's passkeys and revoke them (a lost or stolen device).

Revocation is audited (``passkey_removed``, ``revoked: true``, with the admin's reason); the
person enrols a new passkey in the inbox after signing in again.
"""

from __future__ import annotations

import json
import time

import click

from signoff import passkeys
from signoff.runtime import Runtime
from workers.cli.config import resolved_settings


def _person_id(rt: Runtime, email: str) -> str:
    """The directory's id for ``email`` (a person no longer listed keeps their lower-cased
    address, so their passkeys can still be revoked)."""
    person = rt.policy.directory.person(email)
    return person.id if person is not None else email.strip().lower()


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts)) if ts else "never"


@click.group("passkeys")
def passkeys_cmd() -> None:
    """List and revoke people's passkeys (used for step-up approvals)."""


@passkeys_cmd.command("list")
@click.option("--person", default=None, help="Only this person's passkeys (email).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def list_cmd(person: str | None, as_json: bool) -> None:
    """Every registered passkey: person, credential id, name, added, last used, counter."""
    with resolved_settings() as settings:
        rt = Runtime(settings)
        store = passkeys.store(rt)
        people = [_person_id(rt, person)] if person else store.people()
        found = 0
        for who in people:
            for key in store.list_for(who):
                found += 1
                if as_json:
                    click.echo(json.dumps({"person": who, **key.public()}, sort_keys=True))
                else:
                    click.echo(f"{who}  {key.credential_id[:16]}…  {key.name!r}  "
                               f"added {_when(key.created_at)}  used {_when(key.last_used_at)}"
                               f"  count {key.sign_count}")
        if not found and not as_json:
            click.echo("no passkeys" + (f" for {people[0]}" if person else ""))


@passkeys_cmd.command("revoke")
@click.option("--person", required=True, help="Whose passkey (email).")
@click.option("--credential", "credential_id", default=None,
              help="The credential id (or a unique prefix, as `passkeys list` shows).")
@click.option("--all", "revoke_all", is_flag=True, help="Revoke every passkey of the person.")
@click.option("--reason", default="", help="Why (recorded in the audit log).")
@click.option("--by", default="admin:cli", show_default=True,
              help="Who revokes (recorded in the audit log).")
def revoke_cmd(person: str, credential_id: str | None, revoke_all: bool, reason: str,
               by: str) -> None:
    """Revoke one passkey (--credential) or all of a person's (--all); audited."""
    if bool(credential_id) == revoke_all:
        raise click.UsageError("give exactly one of --credential or --all")
    with resolved_settings() as settings:
        rt = Runtime(settings)
        who = _person_id(rt, person)
        if revoke_all:
            n = passkeys.revoke_all(rt, who, by, reason)
            if not n:
                raise click.ClickException(f"{who} has no passkeys")
            click.echo(f"revoked {n} passkey{'s' if n != 1 else ''} of {who}")
            return
        assert credential_id
        matches = [k for k in passkeys.store(rt).list_for(who)
                   if k.credential_id.startswith(credential_id.rstrip("…"))]
        if len(matches) != 1:
            raise click.ClickException(
                f"{who} has no passkey with that id" if not matches else
                "that prefix matches several passkeys; give more of the id")
        passkeys.remove(rt, who, matches[0].credential_id, by, reason)
        click.echo(f"revoked passkey {matches[0].credential_id} ({matches[0].name}) of {who}")
