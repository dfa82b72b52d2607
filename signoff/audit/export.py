"""Export for an auditor: JSON lines, a freshly signed checkpoint and the public keys."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signoff.audit.checkpoints import Checkpoint, sign_checkpoint
from signoff.audit.entry import Entry

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext


@dataclass(frozen=True)
class ExportResult:
    """Where an export went and what it covers."""

    entries_path: Path
    checkpoint_path: Path
    keys_path: Path
    count: int
    first_seq: int
    last_seq: int


def export(rt: AuditContext, out_dir: Path, *, start: str = "-") -> ExportResult:
    """Write the log as JSON lines with a fresh signed checkpoint and the public keys.

    The checkpoint is signed first, then exactly the entries up to it are written, so the
    files agree even while Signoff keeps appending. The checkpoint is also recorded as
    exported, so later ``signoff audit verify`` runs hold the live log against it.

    Args:
        rt: the runtime.
        out_dir: a folder (created when missing).
        start: the first stream id to export (``-``: from the beginning).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    cp = sign_checkpoint(rt, exported=True)
    end = cp.entry_id if cp is not None else "+"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    entries_path = out_dir / f"audit-{stamp}.jsonl"
    digest = hashlib.sha256()
    count, first, last = 0, 0, 0
    with entries_path.open("w", encoding="utf-8") as fh:
        if cp is not None:
            for entry in rt.audit.iter_entries(start, end):
                line = json.dumps(entry.to_dict(), sort_keys=True, ensure_ascii=False) + "\n"
                fh.write(line)
                digest.update(line.encode())
                count += 1
                first = first or entry.seq
                last = entry.seq
    jwks = rt.audit_keys.jwks()
    keys_path = out_dir / "audit-keys.json"
    keys_path.write_text(json.dumps(jwks, indent=2, sort_keys=True) + "\n")
    checkpoint_path = out_dir / f"audit-{stamp}.checkpoint.json"
    checkpoint_path.write_text(json.dumps({
        "checkpoint": cp.to_dict() if cp is not None else None,
        "log": rt.keys.audit, "entries_file": entries_path.name,
        "entries_sha256": digest.hexdigest(), "count": count, "first_seq": first,
        "last_seq": last, "exported_at": time.time(), "keys": jwks,
    }, indent=2, sort_keys=True) + "\n")
    return ExportResult(entries_path, checkpoint_path, keys_path, count, first, last)


def read_export(path: Path) -> Iterator[Entry]:
    """Entries from an exported JSON lines file (a line that is not JSON never verifies)."""
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield Entry(f"line {n}", -1, 0.0, "", "", "", {}, "", "",
                            error=f"line {n} is not JSON: {exc.msg}")
                continue
            yield Entry.from_dict(data) if isinstance(data, dict) else Entry(
                f"line {n}", -1, 0.0, "", "", "", {}, "", "", error=f"line {n} is not an object")


def read_checkpoint_file(path: Path) -> tuple[Checkpoint | None, dict[str, Any]]:
    """(checkpoint, the whole document) from an exported checkpoint file."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    raw = doc.get("checkpoint")
    return (Checkpoint.from_dict(raw) if raw else None), doc

