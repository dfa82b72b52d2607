"""Archiving old entries to files: the chain verifies across archive and live stream, proofs
still work for archived entries, and tampering with either side is named."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from signoff import audit
from signoff.audit import ProblemKind
from signoff.audit.archive import Archive, ArchiveError
from signoff.audit.merkle import CHUNK
from signoff.audit.proofs import Prover, check_proof
from signoff.runtime import Runtime
from tests.audit.helpers import fill, raw, set_head

LATER = time.time() + 30 * 86400  # "now" a month on: everything written today is old


@pytest.fixture
def archived(rt: Runtime) -> Runtime:
    fill(rt, 2 * CHUNK + 150)
    seg = Archive(rt).archive(older_than_days=7, now=LATER)
    assert seg is not None and (seg.first_seq, seg.last_seq) == (1, 2 * CHUNK)
    return rt


def test_archive_moves_whole_old_chunks_and_verification_spans_both(archived: Runtime) -> None:
    rt = archived
    live = rt.audit.entries()
    assert live[0].seq == 2 * CHUNK + 1 and rt.audit.count() == len(live)
    folder = rt.settings.audit_archive_dir
    assert folder is not None
    seg = Archive(rt).segments()[0]
    side = json.loads((folder / seg.file.replace(".jsonl", ".checkpoint.json")).read_text())
    assert side["checkpoint"]["seq"] == 2 * CHUNK and side["checkpoint"]["root"]
    audit.sign_checkpoint(rt)  # the live tail gets its own tree head
    report = audit.verify_store(rt)
    assert report.ok, report.to_dict()
    assert report.first_seq == 1 and report.checked == live[-1].seq
    assert report.roots_checked >= 2
    # The index keeps what the live stream keeps.
    kept = rt.audit.index.for_person("alice@example.com")
    assert kept and min(r.seq for r in kept) > 2 * CHUNK - 50
    assert rt.audit.index.since() is not None
    # Nothing new is old enough: no second segment.
    assert Archive(rt).archive(older_than_days=7, now=LATER) is None
    # Without the files, the live stream is anchored on the archive's signed checkpoint.
    bare = Runtime(rt.settings.model_copy(update={"audit_archive_dir": None}))
    report = audit.verify_store(bare)
    assert report.ok and report.first_seq == 2 * CHUNK + 1 and report.roots_checked >= 1
    bare.close()


def test_archived_entries_still_have_proofs(archived: Runtime) -> None:
    rt = archived
    prover = Prover(rt, Archive(rt).chunk_reader())
    for ref in ("seq:5", f"seq:{CHUNK + 7}", f"seq:{2 * CHUNK + 20}"):
        proof = prover.prove(ref)
        assert check_proof(proof, rt.audit_keys.jwks(), rt.keys.audit).ok, ref


def test_tampering_with_the_archive_or_the_cut_is_named(archived: Runtime) -> None:
    rt = archived
    folder = rt.settings.audit_archive_dir
    assert folder is not None
    seg = Archive(rt).segments()[0]
    path = folder / seg.file
    lines = path.read_text().splitlines(keepends=True)
    edited = json.loads(lines[99])
    edited["actor"] = "mallory"
    path.write_text("".join([*lines[:99], json.dumps(edited) + "\n", *lines[100:]]))
    report = audit.verify_store(rt)
    assert report.first_problem is not None and report.first_problem.seq == 100
    assert report.first_problem.kind is ProblemKind.EDITED
    assert any(p.kind is ProblemKind.ARCHIVE and "changed" in p.message
               for p in report.problems)
    path.unlink()
    report = audit.verify_store(rt)
    assert any(p.kind is ProblemKind.ARCHIVE and "missing" in p.message
               for p in report.problems)


def test_dropping_live_entries_after_the_archive_is_named(archived: Runtime) -> None:
    rt = archived
    rows = raw(rt)
    rt.redis.xdel(rt.keys.audit, rows[0][0], rows[1][0])  # the first two live entries
    bare = Runtime(rt.settings.model_copy(update={"audit_archive_dir": None}))
    report = audit.verify_store(bare)
    assert report.first_problem is not None and report.first_problem.seq == 2 * CHUNK + 1
    bare.close()


def test_cutting_the_tail_after_a_checkpoint_is_found(archived: Runtime) -> None:
    rt = archived
    cp = audit.sign_checkpoint(rt)
    assert cp is not None
    rows = raw(rt)
    rt.redis.xdel(rt.keys.audit, *[sid for sid, _ in rows[-10:]])
    set_head(rt, raw(rt))
    report = audit.verify_store(rt)
    assert report.first_problem is not None
    assert report.first_problem.kind is ProblemKind.TRUNCATED


def test_a_tampered_log_is_never_archived(rt: Runtime) -> None:
    fill(rt, CHUNK + 10)
    audit.sign_checkpoint(rt)
    rows = raw(rt)
    f = rows[40][1]
    d = json.loads(f["details"])
    d["index"] = -1
    f["details"] = json.dumps(d)
    rt.redis.delete(rt.keys.audit)
    for sid, fields in rows:
        rt.redis.xadd(rt.keys.audit, fields, id=sid)
    with pytest.raises(ArchiveError, match="seq 41"):
        Archive(rt).archive(older_than_days=7, now=LATER)
    assert rt.audit.count() == CHUNK + 11  # nothing trimmed
    folder = rt.settings.audit_archive_dir
    assert folder is None or not list(Path(folder).glob("*.jsonl"))


def test_archive_command(rt: Runtime, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from tests.audit.test_merkle import cli_env
    from workers.cli.audit import audit as audit_cli

    fill(rt, CHUNK + 5)
    env = {**cli_env(rt, tmp_path), "SIGNOFF_AUDIT_ARCHIVE_DIR": str(tmp_path / "arch")}
    result = CliRunner().invoke(audit_cli, ["archive", "--older-than", "0d"], env=env)
    assert result.exit_code == 0, result.output
    assert "nothing to archive" in result.output  # an age of 0 days means never
    time.sleep(1.1)  # stream ids carry the append time, to the millisecond
    result = CliRunner().invoke(audit_cli, ["archive", "--older-than", "1s"], env=env)
    assert result.exit_code == 0 and f"archived seq 1..{CHUNK}" in result.output, result.output
    result = CliRunner().invoke(audit_cli, ["verify"], env=env)
    assert result.exit_code == 0 and result.output.startswith("OK:"), result.output
