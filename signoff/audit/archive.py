"""A log that runs for years: old entries move to JSON lines files, the chain stays whole.

:meth:`Archive.archive` takes the oldest entries (whole 1,024-entry Merkle chunks, all older
than the configured age and already delivered to every SIEM destination), checks their chain,
signs a checkpoint exactly at the last of them (its tree head comes from the chunk roots), and
writes ``audit-<first>-<last>.jsonl`` plus ``audit-<first>-<last>.checkpoint.json`` beside it
(written to a temporary name, fsynced, renamed). Only then is the stream trimmed
(``XTRIM MINID``) and the segment recorded in Redis.

Verification runs across the segments and the live stream as one chain (archive files first,
from genesis); without the files it starts from the last segment's signed checkpoint, whose
signature anchors the live stream's first link and Merkle frontier.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signoff.audit.checkpoints import Checkpoint, sign_tree_head
from signoff.audit.entry import GENESIS, Entry
from signoff.audit.export import read_export
from signoff.audit.merkle import CHUNK, Frontier, TreeHead, root_of
from signoff.audit.proofs import ChunkReader

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext

log = logging.getLogger(__name__)

# At most this many chunks (131,072 entries) per segment file: a backlog is archived over a
# few janitor rounds in files of a size that is easy to move, hash and read back.
MAX_SEGMENT_CHUNKS = 128


class ArchiveError(Exception):
    """The archive cannot proceed (says why in one line); nothing was trimmed."""


@dataclass(frozen=True)
class Segment:
    """One archived file: entries ``first_seq..last_seq`` and the checkpoint at ``last_seq``."""

    first_seq: int
    last_seq: int
    first_id: str
    last_id: str
    prev: str  # the hash the first entry chains to
    last_hash: str
    file: str
    sha256: str
    checkpoint: dict[str, Any]
    archived_at: float

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Segment:
        return cls(**json.loads(raw))


def _next_id(stream_id: str) -> str:
    ms, _, n = stream_id.partition("-")
    return f"{ms}-{int(n) + 1}"


def _id_time(stream_id: str) -> float:
    return int(stream_id.partition("-")[0]) / 1000


class Archive:
    """The archived segments of the audit log (Redis owns the list, the folder the files).

    Args:
        rt: the runtime.
        folder: where the files live (default ``SIGNOFF_AUDIT_ARCHIVE_DIR``).
    """

    def __init__(self, rt: AuditContext, folder: Path | None = None) -> None:
        self.rt = rt
        self.r: Any = rt.redis
        self.folder = folder if folder is not None else rt.settings.audit_archive_dir

    # --- reads ------------------------------------------------------------------------
    def segments(self) -> list[Segment]:
        return [Segment.from_json(raw) for raw in self.r.lrange(self.rt.keys.audit_archive, 0, -1)]

    def archived_through(self) -> int:
        last = self.r.lindex(self.rt.keys.audit_archive, -1)
        return Segment.from_json(last).last_seq if last else 0

    def _path(self, seg: Segment) -> Path:
        if self.folder is None:
            raise ArchiveError("no archive folder (set SIGNOFF_AUDIT_ARCHIVE_DIR or pass one)")
        return Path(self.folder) / seg.file

    def read(self, seg: Segment) -> Iterator[Entry]:
        return read_export(self._path(seg))

    def chunk_reader(self) -> ChunkReader:
        """Reads a Merkle chunk's entries from its segment file when archived, else the stream."""
        segs = self.segments()

        def read(c: int, after_id: str) -> list[Entry]:
            first = c * CHUNK + 1
            for seg in segs:
                if seg.first_seq <= first <= seg.last_seq:
                    return [e for e in self.read(seg) if first <= e.seq < first + CHUNK]
            return self.rt.audit.read_after(after_id, CHUNK)

        return read

    # --- the archive run ---------------------------------------------------------------
    def archive(self, older_than_days: float | None = None, now: float | None = None
                ) -> Segment | None:
        """Move the whole chunks older than the age (and delivered to every sink) to a file.

        Returns:
            The new segment, or None when nothing is old enough yet.

        Raises:
            ArchiveError: no folder, or the entries to archive do not verify (then nothing
                is written or trimmed: a tampered log is never archived as if it were good).
        """
        if self.folder is None:
            raise ArchiveError("no archive folder (set SIGNOFF_AUDIT_ARCHIVE_DIR)")
        days = self.rt.settings.audit_archive_after_days if older_than_days is None else (
            older_than_days)
        if days <= 0:
            return None
        now = time.time() if now is None else now
        cutoff = now - days * 86400
        oldest = self.r.xrange(self.rt.keys.audit, "-", "+", count=1)
        if not oldest or _id_time(oldest[0][0]) >= cutoff:
            return None  # the cheap answer on most janitor rounds
        try:
            self.rt.audit.tree.advance(self.rt.audit.read_after)  # chunk roots up to date
        except ValueError as exc:
            raise ArchiveError(f"the live log does not verify, nothing archived: {exc}"
                               ) from None
        self.rt.audit.index.update(self.rt.audit.read_after)  # nothing leaves unindexed
        chunks = self.rt.audit.tree.chunks()
        done = self.archived_through()
        floor = self._delivered_floor()
        c_first = done // CHUNK
        c_last = c_first - 1
        for c in range(c_first, min(len(chunks), c_first + MAX_SEGMENT_CHUNKS)):
            end_seq = (c + 1) * CHUNK
            if _id_time(chunks[c][1]) >= cutoff or end_seq > floor:
                break
            c_last = c
        if c_last < c_first:
            return None
        seg = self._write(done, (c_last + 1) * CHUNK, chunks, now)
        # The index keeps what the live stream keeps: rows older than the archived part go.
        self.rt.audit.index.drop_before(_id_time(seg.last_id))
        return seg

    def _delivered_floor(self) -> int:
        """The highest seq the index and every configured sink destination have read (entries
        beyond it stay live so they can still read them)."""
        sinks = self.rt.settings.audit_sinks
        floors = [self.rt.audit.index.cursor()[1]]  # the index reads the stream too
        for s in sinks:
            raw = self.r.hget(self.rt.keys.audit_sink(s.name), "seq")
            floors.append(int(raw or 0))
        return min(floors)

    def _write(self, done: int, last_seq: int, chunks: list[tuple[bytes, str]],
               now: float) -> Segment:
        assert self.folder is not None
        segs = self.segments()
        prev = segs[-1].last_hash if segs else GENESIS
        first_seq = done + 1
        last_id = chunks[last_seq // CHUNK - 1][1]
        folder = Path(self.folder)
        folder.mkdir(parents=True, exist_ok=True)
        name = f"audit-{first_seq:012d}-{last_seq:012d}"
        tmp = folder / f".{name}.jsonl.tmp"
        digest = hashlib.sha256()
        expected, link, first_id, last_hash = first_seq, prev, "", ""
        with tmp.open("w", encoding="utf-8") as fh:
            for e in self.rt.audit.iter_entries("-", last_id):
                if e.seq < first_seq:
                    continue
                if e.error or e.seq != expected or e.prev != link or not e.intact:
                    fh.close()
                    tmp.unlink()
                    raise ArchiveError(f"entry seq {e.seq} ({e.stream_id}) does not verify; "
                                       "run 'signoff audit verify'; nothing archived")
                line = json.dumps(e.to_dict(), sort_keys=True, ensure_ascii=False) + "\n"
                fh.write(line)
                digest.update(line.encode())
                first_id = first_id or e.stream_id
                expected, link, last_hash = e.seq + 1, e.hash, e.hash
            fh.flush()
            os.fsync(fh.fileno())
        if expected != last_seq + 1:
            tmp.unlink()
            raise ArchiveError(f"the stream ends at seq {expected - 1}, the tree at {last_seq}")
        root = root_of([h for h, _ in chunks[:last_seq // CHUNK]]).hex()
        cp = sign_tree_head(self.rt, TreeHead(last_seq, root, last_id, last_hash), now=now)
        seg = Segment(first_seq, last_seq, first_id, last_id, prev, last_hash, f"{name}.jsonl",
                      digest.hexdigest(), cp.to_dict(), now)
        side = folder / f".{name}.checkpoint.json.tmp"
        side.write_text(json.dumps({
            "checkpoint": cp.to_dict(), "log": self.rt.keys.audit, "entries_file": seg.file,
            "entries_sha256": seg.sha256, "count": seg.count, "first_seq": first_seq,
            "last_seq": last_seq, "prev": prev, "exported_at": now}, indent=2,
            sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, folder / seg.file)
        os.replace(side, folder / f"{name}.checkpoint.json")
        pipe = self.r.pipeline()
        pipe.rpush(self.rt.keys.audit_archive, seg.to_json())
        pipe.xtrim(self.rt.keys.audit, minid=_next_id(last_id), approximate=False)
        pipe.execute()
        self._drop_old_checkpoints(last_seq)
        log.info("archived audit seq %d..%d to %s", first_seq, last_seq, seg.file)
        return seg

    def _drop_old_checkpoints(self, upto: int) -> None:
        """Checkpoints inside an archived segment are superseded by its own (kept in the file
        and in the segment record); the newest ones stay."""
        key = self.rt.keys.audit_checkpoints
        stale = [sid for sid, f in self.r.xrange(key, "-", "+")
                 if f.get("seq", "").isdigit() and int(f["seq"]) < upto]
        for i in range(0, len(stale), 500):
            self.r.xdel(key, *stale[i:i + 500])

    # --- verification support ----------------------------------------------------------
    def anchor(self, jwks: dict[str, Any] | None) -> tuple[tuple[int, str], Frontier | None,
                                                          Checkpoint] | None:
        """Where the live stream must start when the archive files are not at hand: the last
        segment's signed (seq, hash), and the Merkle frontier the chunk roots give there
        when they fold to the signed root."""
        segs = self.segments()
        if not segs:
            return None
        cp = Checkpoint.from_dict(segs[-1].checkpoint)
        roots = [h for h, _ in self.rt.audit.tree.chunks()[:cp.seq // CHUNK]]
        frontier: Frontier | None = None
        if cp.seq % CHUNK == 0 and len(roots) == cp.seq // CHUNK and root_of(
                roots).hex() == cp.root:
            frontier = Frontier()
            # A chunk-aligned frontier: perfect subtrees of the binary digits of size/CHUNK.
            rest = roots
            while rest:
                k = 1 << (len(rest).bit_length() - 1)
                frontier.nodes.append((k * CHUNK, root_of(rest[:k])))
                rest = rest[k:]
            frontier.size = cp.seq
        return (cp.seq, cp.hash), frontier, cp

    def entries(self) -> Iterator[Entry]:
        """Every entry, archived then live, in order."""
        for seg in self.segments():
            if self._path(seg).exists():  # a missing file shows as dropped entries
                yield from self.read(seg)
        yield from self.rt.audit.iter_entries()

    def file_problems(self) -> list[tuple[int, str]]:
        """(seq, why) for segment files that are missing or differ from the digest recorded
        when written (a changed file is named at its last seq: the entry checks name the
        changed line itself)."""
        out: list[tuple[int, str]] = []
        for seg in self.segments():
            path = self._path(seg)
            if not path.exists():
                out.append((seg.first_seq, f"archived segment {seg.file} (seq {seg.first_seq}.."
                                           f"{seg.last_seq}) is missing"))
                continue
            h = hashlib.sha256()
            with path.open("rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != seg.sha256:
                out.append((seg.last_seq,
                            f"archived segment {seg.file} changed since it was written"))
        return out


def archive_if_due(rt: AuditContext, now: float | None = None) -> Segment | None:
    """The janitor's hook: archive when an age and a folder are configured."""
    if rt.settings.audit_archive_after_days <= 0 or rt.settings.audit_archive_dir is None:
        return None
    try:
        return Archive(rt).archive(now=now)
    except ArchiveError as exc:
        log.error("audit archive: %s", exc)
        return None
