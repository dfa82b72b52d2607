"""``signoff policy``: check, explain and inspect the policy file."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from policy import Outcome, Policy, PolicyError, can_decide, load_policy
from policy.schema import SCHEMA
from signoff.masking.profile import MaskingConfig
from signoff.models import AgentRequest
from signoff.settings import load_settings


def _default_path() -> Path:
    """``SIGNOFF_POLICY`` (environment or ``.env``), else ``examples/policy.yaml`` in the
    working directory; a clear error naming where it looked when that file is not there."""
    settings = load_settings()
    path = settings.policy_path
    if path.is_file():
        return path
    where = path if path.is_absolute() else Path.cwd() / path
    if "policy_path" in settings.model_fields_set:
        why = f"SIGNOFF_POLICY names {where}, which is not a readable file"
    else:
        why = f"SIGNOFF_POLICY is not set, and the default {where} does not exist"
    raise click.ClickException(f"no policy file: {why}. Pass the file (FILE or --policy) or "
                               "set SIGNOFF_POLICY.")


def _load(path: Path | None) -> Policy:
    """The policy at ``path`` (default: ``SIGNOFF_POLICY``), or exit 1 with its errors."""
    target = path or _default_path()
    try:
        return load_policy(target, masking_validator=MaskingConfig.model_validate)
    except PolicyError as exc:
        _print_errors(exc)
        raise SystemExit(1) from None


def _print_errors(exc: PolicyError) -> None:
    for issue in exc.errors:
        click.echo(issue.format(exc.source), err=True)
    count = len(exc.errors)
    click.echo(f"{exc.source}: {count} error{'s' if count != 1 else ''}", err=True)


@click.group(name="policy")
def policy() -> None:
    """Check, explain and inspect the policy file."""


@policy.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
def check(files: tuple[Path, ...]) -> None:
    """Validate policy FILES (default: SIGNOFF_POLICY); list every error with line and column.

    Exits 1 when any file has errors.
    """
    failed = False
    for file in files or (_default_path(),):
        try:
            loaded = load_policy(file, masking_validator=MaskingConfig.model_validate)
        except PolicyError as exc:
            _print_errors(exc)
            failed = True
            continue
        people = sum(1 for _ in loaded.directory.people)
        click.echo(
            f"{file}: OK (version {loaded.version}; {len(loaded.rules)} rules, {people} people, "
            f"{len(loaded.directory.groups)} groups, {sum(1 for _ in loaded.directory.agents)} agents)"
        )
    if failed:
        raise SystemExit(1)


def _read_request(source: str) -> Any:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {source}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.ClickException(
            f"{source}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}"
        ) from None
    if isinstance(data, dict) and "body" in data and isinstance(data["body"], str | dict):
        body = data["body"]  # a stream entry as XADDed: {"body": "<json>"}
        data = json.loads(body) if isinstance(body, str) else body
    try:
        return AgentRequest.model_validate(data)
    except ValidationError as exc:
        lines = [
            f"  {'.'.join(str(p) for p in err['loc']) or '(request)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise click.ClickException(f"{source} is not a valid request:\n" + "\n".join(lines)) from None


def _parse_time(value: str | None) -> datetime.datetime | None:
    if value is None:
        return None
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not an ISO 8601 time like 2025-06-02T10:00+02:00") from None
    return when if when.tzinfo else when.replace(tzinfo=datetime.UTC)


@policy.command()
@click.argument("request_file", metavar="REQUEST.json")
@click.option("--policy", "policy_path", type=click.Path(path_type=Path),
              help="Policy file (default: SIGNOFF_POLICY).")
@click.option("--at", "at", metavar="TIME", help="Evaluate as of this ISO 8601 time (default: now).")
@click.option("--who", is_flag=True, help="Also say, for each person, whether they may decide.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored evaluation as JSON.")
def explain(request_file: str, policy_path: Path | None, at: str | None, who: bool,
            as_json: bool) -> None:
    """Show which rule REQUEST.json matches, why earlier rules did not, and what it requires.

    REQUEST.json is a request as an agent sends it (or ``-`` for standard input).
    """
    loaded = _load(policy_path)
    request = _read_request(request_file)
    evaluation = loaded.evaluate(request, _parse_time(at), explain_limit=None)
    if as_json:
        click.echo(json.dumps(evaluation.to_dict(), indent=2, ensure_ascii=False))
        return
    click.echo(evaluation.explain_text())
    if evaluation.requirement.require_reason and evaluation.outcome is Outcome.REQUIRE_APPROVAL \
            and not (request.reason or "").strip():
        click.echo("\nNote: this request gives no reason, so Signoff would reject it.")
    if who and evaluation.outcome is Outcome.REQUIRE_APPROVAL:
        click.echo("\nWho may decide:")
        for person in loaded.directory.people:
            verdict = can_decide(request, evaluation, person, {}, loaded.directory)
            if verdict:
                click.echo(f"  ✓ {person.id} (counts for {', '.join(getattr(verdict, 'groups', ()))})")
            else:
                click.echo(f"  ✗ {person.id}: {getattr(verdict, 'reason', '')}")


@policy.command()
@click.option("--policy", "policy_path", type=click.Path(path_type=Path),
              help="Policy file (default: SIGNOFF_POLICY).")
def rules(policy_path: Path | None) -> None:
    """List the rules in order, with what each requires."""
    loaded = _load(policy_path)
    for rule in (*loaded.rules, loaded.default):
        if rule.outcome is Outcome.REQUIRE_APPROVAL:
            what = rule.requirement.describe()
            if rule.resource_owner is not None:
                what += f" and {rule.resource_owner.approvals} of the resource owner"
        else:
            what = rule.outcome.value.replace("_", "-")
        if rule.window is not None:
            what += f" (only {rule.window}; auto-deny outside)"
        click.echo(f"{rule.label():40} {what}")


@policy.command()
@click.option("--policy", "policy_path", type=click.Path(path_type=Path),
              help="Policy file (default: SIGNOFF_POLICY).")
def directory(policy_path: Path | None) -> None:
    """List people, groups and agents."""
    loaded = _load(policy_path)
    found = loaded.directory
    click.echo("People:")
    for person in found.people:
        ids = ", ".join(x for x in (person.slack_id, person.teams_id) if x)
        click.echo(f"  {person.id:32} {', '.join(sorted(person.groups)) or '-':24} {ids}")
    click.echo("Groups:")
    for group in found.groups:
        click.echo(f"  {group:16} {', '.join(sorted(found.members(group))) or '(no members)'}")
    click.echo("Agents:")
    for agent in found.agents:
        click.echo(f"  {agent.id:32} owner {agent.owner}" + (f", team {agent.team}" if agent.team else ""))


@policy.command()
def schema() -> None:
    """Print the JSON Schema of policy files (schemas/policy.v1.json)."""
    click.echo(json.dumps(SCHEMA, indent=2, ensure_ascii=False))
