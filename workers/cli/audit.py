"""``signoff audit`` and ``signoff sink``: the tamper-evident audit log for people who check it.

``verify`` recomputes the hash chain and the Merkle tree heads of the log (archive and live
stream, or an exported file offline) against signed checkpoints, with public keys the verifier
pinned (never keys shipped inside the file), and names the first entry that was edited,
dropped, reordered, forged or cut off. ``prove`` / ``verify-proof`` show one entry with an
RFC 9162 inclusion proof. ``query`` and ``approvals`` answer questions (a resource's from the
index), ``report`` builds the evidence per control (HTML, PDF, JSON), ``export`` writes JSON
lines and a signed checkpoint, ``archive`` moves old entries to files. ``signoff sink``
delivers every entry to the SIEM.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import click
import jwt
import redis
from prometheus_client import CollectorRegistry, start_http_server

from signoff import audit as al
from signoff.audit.archive import Archive, ArchiveError
from signoff.audit.proofs import InclusionProof, ProofOutcome, Prover, check_proof
from signoff.audit.sink import Sink, SinkCollector, status
from signoff.runtime import Runtime
from signoff.settings import load_settings
from workers.cli.run import resolved_settings

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
    """The command's runtime, built once per invocation (an embedded Redis starts once)."""
    click_ctx = click.get_current_context()
    if "signoff.runtime" not in click_ctx.meta:
        ctx = resolved_settings()
        settings = ctx.__enter__()
        click_ctx.call_on_close(lambda: ctx.__exit__(None, None, None))
        click_ctx.meta["signoff.runtime"] = Runtime(settings)
    return click_ctx.meta["signoff.runtime"]


@click.group(name="audit")
def audit() -> None:
    """Verify, prove, query, report on, export and archive the audit log."""


def _print_report(report: al.VerifyReport, as_json: bool, source: str) -> None:
    if as_json:
        click.echo(json.dumps({"source": source, **report.to_dict()}, indent=2))
        return
    span = (f"seq {report.first_seq}..{report.last_seq}" if report.checked else "no entries")
    if report.ok:
        keys = (f"keys from {report.keys_source}" if report.keys_source
                else "signatures NOT checked")
        click.echo(f"OK: {source}: {report.checked} entries ({span}); "
                   f"{report.checkpoints_checked} checkpoint(s), {keys}; "
                   f"{report.roots_checked} Merkle tree head(s) recomputed; signed through seq "
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


class KeysSource(str, Enum):
    FILE = "--keys file"
    URL = "--keys-url"
    REDIS = "Signoff's Redis"
    NONE = ""


def pinned_keys(keys_file: Path | None, keys_url: str | None, *, live: bool
                ) -> tuple[dict[str, Any] | None, KeysSource]:
    """The audit public keys to trust, never from the file being verified.

    Order: ``--keys`` (a JWK Set obtained independently), ``--keys-url`` (Signoff's
    ``/.well-known/signoff-audit-keys.json``, fetched with PyJWT's JWKS client), then the
    keys in Signoff's Redis when ``REDIS_URL`` is configured (``live``: always).
    """
    if keys_file is not None:
        try:
            jwks = json.loads(keys_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"--keys {keys_file}: not a JWK Set ({exc})") from None
        if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
            raise click.ClickException(f"--keys {keys_file}: not a JWK Set (no 'keys' list)")
        return jwks, KeysSource.FILE
    if keys_url:
        try:
            data = jwt.PyJWKClient(keys_url, cache_jwk_set=False, timeout=10).fetch_data()
        except jwt.PyJWKClientError as exc:
            raise click.ClickException(f"--keys-url {keys_url}: {exc}") from None
        return dict(data), KeysSource.URL
    if live or _redis_configured():
        try:
            return _runtime().audit_keys.jwks(), KeysSource.REDIS
        except redis.RedisError as exc:
            raise click.ClickException(
                f"could not read the audit public keys from Redis ({exc}); give --keys FILE "
                "or --keys-url URL") from None
    return None, KeysSource.NONE


def _redis_configured() -> bool:
    try:
        return bool(load_settings().redis_url)
    except Exception:  # unusable settings just mean "no Redis to ask"
        return False


NO_KEYS = ("SIGNATURES NOT CHECKED: no pinned audit public keys (give --keys FILE or "
           "--keys-url URL, or run where Signoff's REDIS_URL is set); keys inside the file "
           "being verified are never trusted")


@audit.command("verify")
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Verify an exported JSON lines file offline instead of the live log.")
@click.option("--checkpoint", "checkpoint_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="An exported checkpoint file to hold the log against (repeatable). With "
                   "--file, the export's own checkpoint.")
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Audit public keys (JWK Set) obtained independently of the export.")
@click.option("--keys-url", help="Fetch the audit public keys from Signoff's "
                                 "/.well-known/signoff-audit-keys.json.")
@click.option("--archive", "archive_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Live log: also verify the archived segments in this folder "
                   "(default: SIGNOFF_AUDIT_ARCHIVE_DIR when set).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def verify_cmd(file_: Path | None, checkpoint_files: tuple[Path, ...], keys_file: Path | None,
               keys_url: str | None, archive_dir: Path | None, as_json: bool) -> None:
    """Recompute the chain and name the first tampered entry (exit 1 when tampered, 3 when
    the chain is intact but no pinned key could check the signatures)."""
    extra: list[al.Checkpoint] = []
    docs: list[dict[str, Any]] = []
    for path in checkpoint_files:
        try:
            cp, doc = al.read_checkpoint_file(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise click.ClickException(f"--checkpoint {path}: not a checkpoint file ({exc})"
                                       ) from None
        docs.append(doc)
        if cp is not None:
            extra.append(cp)
    if file_ is not None:
        jwks, source = pinned_keys(keys_file, keys_url, live=False)
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
        name = str(file_)
    else:
        jwks, source = pinned_keys(keys_file, keys_url, live=True)
        rt = _runtime()
        folder = archive_dir or rt.settings.audit_archive_dir
        report = al.verify_store(rt, extra, jwks=jwks, archive_dir=folder)
        name = rt.keys.audit
    report.keys_source = source.value
    _print_report(report, as_json, name)
    if not report.ok:
        sys.exit(1)
    if jwks is None:
        click.echo(NO_KEYS, err=True)
        sys.exit(3)


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
@click.option("--resource", help="One resource, exactly (answered from the index).")
@click.option("--step-up", "step_up", is_flag=True,
              help="Only votes proven with a passkey (credential, flags and counter in details).")
@click.option("--format", "fmt", type=click.Choice(["table", "jsonl", "csv"]), default="table",
              show_default=True)
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=1000, show_default=True)
def query_cmd(since: str | None, until: str | None, events: tuple[str, ...],
              action: str | None, person: str | None, agent: str | None, status: str | None,
              request_id: str | None, fmt: str, limit: int, step_up: bool = False,
              resource: str | None = None) -> None:
    """Print matching entries as a table, JSON lines or CSV."""
    flt = al.QueryFilter(since=parse_time(since), until=parse_time(until),
                         events=frozenset(events), action=action, person=person,
                         agent=agent, status=status, request_id=request_id,
                         step_up=step_up, resource=resource)
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


@audit.command("prove")
@click.argument("entry_ref", metavar="ENTRY_ID")
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the proof here instead of printing it.")
def prove_cmd(entry_ref: str, out_file: Path | None) -> None:
    """Print an inclusion proof for one entry (its stream id, or seq:N) against a signed
    tree head; check it offline with 'signoff audit verify-proof'."""
    rt = _runtime()
    prover = Prover(rt, Archive(rt).chunk_reader())
    try:
        proof = prover.prove(entry_ref)
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    text = json.dumps(proof.to_dict(), indent=2, sort_keys=True)
    if out_file is not None:
        out_file.write_text(text + "\n", encoding="utf-8")
        click.echo(f"proof for seq {proof.entry.seq} (tree of {proof.size}) written to "
                   f"{out_file}")
    else:
        click.echo(text)


@audit.command("verify-proof")
@click.argument("proof_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Audit public keys (JWK Set) obtained independently of the proof.")
@click.option("--keys-url", help="Fetch the audit public keys from Signoff's "
                                 "/.well-known/signoff-audit-keys.json.")
def verify_proof_cmd(proof_file: Path, keys_file: Path | None, keys_url: str | None) -> None:
    """Check an inclusion proof offline (exit 1: invalid, 3: signature not checked)."""
    try:
        proof = InclusionProof.from_dict(json.loads(proof_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"{proof_file}: not an inclusion proof ({exc})") from None
    jwks, _source = pinned_keys(keys_file, keys_url, live=False)
    result = check_proof(proof, jwks, proof.log or None)
    if result.outcome is ProofOutcome.VERIFIED:
        click.echo(f"VERIFIED: {result.reason}")
        return
    if result.outcome is ProofOutcome.UNSIGNED:
        click.echo(f"PATH OK, {NO_KEYS}")
        sys.exit(3)
    click.echo(f"INVALID: {result.reason}")
    sys.exit(1)


@audit.command("approvals")
@click.option("--resource", required=True, help="The resource, exactly.")
@click.option("--since", default="90d", show_default=True,
              help="From this time (ISO 8601) or this long ago (90d).")
@click.option("--until", help="Up to this time (same forms).")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
def approvals_cmd(resource: str, since: str, until: str | None, as_json: bool) -> None:
    """Who approved what on a resource (from the index: no scan of the log)."""
    rt = _runtime()
    rt.audit.index.update(rt.audit.read_after)
    rows = rt.audit.index.approvals(resource, parse_time(since), parse_time(until))
    if as_json:
        for row in rows:
            click.echo(json.dumps(row.to_dict(), sort_keys=True))
        return
    click.echo(f"{'TIME':20}  {'APPROVER':28}  {'ACTION':24}  {'REQUEST':24}  SEQ")
    for row in rows:
        when = datetime.fromtimestamp(row.ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        click.echo(f"{when:20}  {row.actor[:28]:28}  {row.action[:24]:24}  "
                   f"{row.request_id[:24]:24}  {row.seq}")
    click.echo(f"{len(rows)} approval(s) on {resource}; indexed through seq "
               f"{rt.audit.index.cursor()[1]}")
    kept_from = rt.audit.index.since()
    start = parse_time(since)
    if kept_from is not None and start is not None and start < kept_from:
        click.echo(f"note: entries before {datetime.fromtimestamp(kept_from, tz=UTC):%Y-%m-%d} "
                   "are archived; 'signoff audit report' and the archive files cover them")


@audit.command("reindex")
def reindex_cmd() -> None:
    """Rebuild the resource and person indexes from the log (rows are idempotent)."""
    rt = _runtime()
    rt.audit.index.reset()
    n = rt.audit.index.update(rt.audit.read_after)
    click.echo(f"indexed {n} entries")


@audit.command("archive")
@click.option("--older-than", "older", help="Archive entries older than this (e.g. 400d); "
                                          "default SIGNOFF_AUDIT_ARCHIVE_AFTER_DAYS.")
@click.option("--dir", "folder", type=click.Path(file_okay=False, path_type=Path),
              help="The archive folder (default SIGNOFF_AUDIT_ARCHIVE_DIR).")
def archive_cmd(older: str | None, folder: Path | None) -> None:
    """Move old entries (whole 1,024-entry chunks) to JSON lines files with their checkpoint
    and trim them from Redis."""
    rt = _runtime()
    days = None
    if older is not None:
        m = _RELATIVE.match(older.strip())
        if not m:
            raise click.BadParameter(f"{older!r} is not an age like 400d", param_hint="--older-than")
        days = int(m.group(1)) * _UNITS[m.group(2)] / 86400
    try:
        seg = Archive(rt, folder).archive(older_than_days=days)
    except ArchiveError as exc:
        raise click.ClickException(str(exc)) from None
    if seg is None:
        click.echo("nothing to archive (no whole chunk old enough and delivered)")
        return
    click.echo(f"archived seq {seg.first_seq}..{seg.last_seq} to {seg.file}")


@click.command(name="sink")
@click.option("--status", "show_status", is_flag=True,
              help="Print each destination's cursor, backlog and last error, then exit.")
@click.option("--metrics-port", type=click.IntRange(1, 65535),
              help="Also serve this process's /metrics on this port.")
def sink(show_status: bool, metrics_port: int | None) -> None:
    """Deliver every audit entry, in order, to the SIEM destinations in SIGNOFF_AUDIT_SINKS."""
    rt = _runtime()
    if show_status:
        for row in status(rt):
            click.echo(json.dumps(row, sort_keys=True))
        return
    if not rt.settings.audit_sinks:
        raise click.ClickException("SIGNOFF_AUDIT_SINKS is empty: no destination to deliver to")
    if metrics_port is not None:
        registry = CollectorRegistry()
        registry.register(SinkCollector(rt))
        start_http_server(metrics_port, registry=registry)
    worker = Sink(rt)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop)
        names = ", ".join(d.name for d in worker.destinations)
        click.echo(f"signoff sink: delivering {rt.keys.audit} to {names}")
        await worker.run()

    asyncio.run(main())


@audit.command("report")
@click.option("--since", default="90d", show_default=True,
              help="Start of the period (ISO 8601, UTC by default) or how long ago (90d).")
@click.option("--until", help="End of the period (same forms; default: now).")
@click.option("--format", "fmt", type=click.Choice(["html", "pdf", "json"]), default="html",
              show_default=True)
@click.option("--out", "out_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write (default: audit-report-<date>.<format>; '-' prints html "
                   "or json).")
@click.option("--samples", type=click.IntRange(0, 100), default=5, show_default=True,
              help="Decision entries shown with inclusion proofs.")
def report_cmd(since: str, until: str | None, fmt: str, out_file: Path | None,
               samples: int) -> None:
    """Evidence per control (SOC 2, ISO 27001, FedRAMP, GDPR Art. 30) with the log's figures
    for the period, charts, sampled inclusion proofs and the chain's verification."""
    # Imported here: the report loads matplotlib and Jinja, which no other audit command needs.
    from signoff.audit.report import collect
    from signoff.audit.report_render import PdfUnavailable, render_html, render_json, render_pdf

    start = parse_time(since)
    end = parse_time(until)
    assert start is not None
    if end is not None and end <= start:
        raise click.BadParameter("must be after --since", param_hint="--until")
    rt = _runtime()
    ev = collect(rt, start, end, samples=samples)
    if fmt == "pdf" and str(out_file) == "-":
        raise click.BadParameter("a PDF goes to a file", param_hint="--out")
    if out_file is None:
        day = datetime.fromtimestamp(ev.until, tz=UTC).strftime("%Y-%m-%d")
        out_file = Path(f"audit-report-{day}.{fmt}")
    if fmt == "pdf":
        try:
            out_file.write_bytes(render_pdf(ev))
        except PdfUnavailable as exc:
            raise click.ClickException(str(exc)) from None
    else:
        text = render_html(ev) if fmt == "html" else render_json(ev)
        if str(out_file) == "-":
            click.echo(text)
            return
        out_file.write_text(text, encoding="utf-8")
    state = "intact" if ev.verification.get("ok") else "TAMPERED"
    click.echo(f"wrote {out_file}: {ev.request_count} requests, {ev.entries} entries; chain "
               f"{state} through seq {ev.verification.get('signed_seq')}")
