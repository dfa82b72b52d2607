"""``signoff audit``: verify, query and export the tamper-evident audit log.

``verify`` recomputes the hash chain of the live log (or of an exported file, offline, with
nothing but the public keys) and names the first entry that was edited, dropped, reordered,
forged or cut off. ``query`` filters entries by time, event, action, person, agent and status.
``export`` writes JSON lines, a freshly signed checkpoint and the public keys for an auditor.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from signoff import audit as al

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(value: str | None, now: float | None = None) -> float | None:
    """``2026-01-31``, ``2026-01-31T12:00:00Z`` (UTC unless an offset is given), or a
    relative ``90m`` / ``24h`` / ``7d`` meaning that long ago."""
    if value is None:
        return None
    m = _RELATIVE.match(value.strip())
    if m:
        now = datetime.now(tz=UTC).timestamp() if now is None else now
        return now - int(m.group(1)) * _UNITS[m.group(2)]
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a time (2026-01-31T12:00:00Z or 24h)"
                                 ) from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def _runtime() -> Any:
    from signoff.cli_run import resolved_settings
    from signoff.runtime import Runtime

    ctx = resolved_settings()
    settings = ctx.__enter__()
    click.get_current_context().call_on_close(lambda: ctx.__exit__(None, None, None))
    return Runtime(settings)


@click.group(name="audit")
def audit() -> None:
    """Verify, query and export the audit log."""


def _print_report(report: al.VerifyReport, as_json: bool, source: str) -> None:
    if as_json:
        click.echo(json.dumps({"source": source, **report.to_dict()}, indent=2))
        return
    span = (f"seq {report.first_seq}..{report.last_seq}" if report.checked else "no entries")
    if report.ok:
        click.echo(f"OK: {source}: {report.checked} entries ({span}); "
                   f"{report.checkpoints_checked} checkpoint(s); signed through seq "
                   f"{report.signed_seq}" + (f", {report.unsigned} newer entries chained but "
                                             "not yet signed" if report.unsigned else ""))
        return
    first = report.first_problem
    assert first is not None
    click.echo(f"TAMPERED: {source}: {report.checked} entries ({span}); "
               f"{len(report.problems)} problem(s)")
    click.echo(f"first: seq {first.seq}: {first.kind.value}: {first.message}")
    for p in sorted(report.problems, key=lambda p: (p.seq, p.kind.value)):
        if p is not first:
            click.echo(f"  seq {p.seq}: {p.kind.value}: {p.message}")


@audit.command("verify")
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Verify an exported JSON lines file offline instead of the live log.")
@click.option("--checkpoint", "checkpoint_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An exported checkpoint file to hold the log against (repeatable). With "
                   "--file, the export's own checkpoint.")
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Audit public keys (JWK Set) obtained independently; offline, the default is "
                   "the keys inside the checkpoint file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_cmd(file_: Path | None, checkpoint_files: tuple[Path, ...], keys_file: Path | None,
               as_json: bool) -> None:
    """Recompute the chain and name the first tampered entry (exit 1 when tampered)."""
    extra: list[al.Checkpoint] = []
    docs: list[dict[str, Any]] = []
    for path in checkpoint_files:
        cp, doc = al.read_checkpoint_file(path)
        docs.append(doc)
        if cp is not None:
            extra.append(cp)
    pinned = json.loads(keys_file.read_text()) if keys_file else None
    if file_ is not None:
        jwks = pinned or (docs[0].get("keys") if docs else None)
        if extra and jwks is None:
            raise click.UsageError("give --keys (the audit public keys) to check checkpoints")
        starts_at_genesis = _first_seq(file_) in (None, 1)
        report = al.verify_chain(
            al.read_export(file_), checkpoints=extra, jwks=jwks,
            anchor=(0, al.GENESIS) if starts_at_genesis else None,
            log_name=docs[0].get("log") if docs else None)
        for doc in docs:
            if doc.get("entries_file") == file_.name and doc.get("count") != report.checked:
                report.problems.append(al.Problem(
                    al.ProblemKind.TRUNCATED, (report.last_seq or 0) + 1, "",
                    f"the export says {doc.get('count')} entries, the file has "
                    f"{report.checked}"))
        _print_report(report, as_json, str(file_))
    else:
        rt = _runtime()
        if pinned is not None:
            extra_report = al.verify_chain(
                rt.audit.iter_entries(), checkpoints=[*al.checkpoints(rt.redis, rt.keys),
                                                      *extra],
                jwks=pinned, head=rt.audit.head()[:2], log_name=rt.keys.audit)
            report = extra_report
        else:
            report = al.verify_store(rt, extra)
        _print_report(report, as_json, rt.keys.audit)
    if not report.ok:
        sys.exit(1)


def _first_seq(path: Path) -> int | None:
    for entry in al.read_export(path):
        return entry.seq
    return None


@audit.command("query")
@click.option("--since", help="From this time (ISO 8601, UTC by default) or this long ago (24h).")
@click.option("--until", help="Up to this time (same forms).")
@click.option("--event", "events", multiple=True,
              type=click.Choice([e.value for e in al.Event]), help="Event kind (repeatable).")
@click.option("--action", help="Action glob, e.g. 'db.export*'.")
@click.option("--person", help="Who acted, or the human a request was made for.")
@click.option("--agent", help="The requesting agent.")
@click.option("--status", type=click.Choice(["received", "pending", "approved", "denied",
                                             "timed_out", "cancelled", "rejected"]),
              help="The request's final (or current) status.")
@click.option("--request", "request_id", help="One request id.")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table",
              show_default=True)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
def query_cmd(since: str | None, until: str | None, events: tuple[str, ...],
              action: str | None, person: str | None, agent: str | None, status: str | None,
              request_id: str | None, fmt: str, limit: int) -> None:
    """Print matching entries as a table, JSON lines or CSV."""
    flt = al.QueryFilter(since=parse_time(since), until=parse_time(until),
                            events=frozenset(events), action=action, person=person,
                            agent=agent, status=status, request_id=request_id)
    rt = _runtime()
    for line in al.render(al.query(rt, flt, limit=limit), fmt):
        click.echo(line)


@audit.command("export")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder to write into (created when missing).")
def export_cmd(out_dir: Path) -> None:
    """Write the log as JSON lines, a freshly signed checkpoint and the public keys."""
    rt = _runtime()
    result = al.export(rt, out_dir)
    click.echo(f"wrote {result.count} entries (seq {result.first_seq}..{result.last_seq}) to "
               f"{result.entries_path}")
    click.echo(f"checkpoint: {result.checkpoint_path}")
    click.echo(f"public keys: {result.keys_path}")
    click.echo("verify offline: signoff audit verify --file "
               f"{result.entries_path} --checkpoint {result.checkpoint_path} "
               "--keys <independently obtained audit-keys.json>")


@audit.command("checkpoint")
def checkpoint_cmd() -> None:
    """Sign a checkpoint of the current head now."""
    rt = _runtime()
    cp = al.sign_checkpoint(rt)
    if cp is None:
        raise click.ClickException("the audit log is empty")
    click.echo(f"signed seq {cp.seq} hash {cp.hash} with key {cp.kid}")
