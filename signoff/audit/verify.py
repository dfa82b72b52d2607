"""Verification: recompute every hash and name the first entry that was edited, dropped,
reordered, forged or cut off, against the signed checkpoints."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from signoff.audit.archive import Archive
from signoff.audit.checkpoints import Checkpoint, check_checkpoint, checkpoints
from signoff.audit.entry import GENESIS, Entry
from signoff.audit.merkle import Frontier, leaf_data, leaf_hash

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext


class ProblemKind(str, Enum):
    """What verification can find."""

    EDITED = "edited"  # the content no longer matches the entry's own hash
    UNREADABLE = "unreadable"  # fields missing or not parseable
    BROKEN_LINK = "broken_link"  # hash fine, but it does not chain to the entry before it
    DROPPED = "dropped"  # sequence numbers missing
    REORDERED = "reordered"  # an entry appears after one that should follow it
    DUPLICATE = "duplicate"  # a sequence number appears twice
    BAD_START = "bad_start"  # the first entry does not start the chain (or its anchor)
    TRUNCATED = "truncated"  # the log ends before a signed checkpoint
    CHECKPOINT_MISMATCH = "checkpoint_mismatch"  # rewritten history under a signed checkpoint
    BAD_CHECKPOINT = "bad_checkpoint"  # a checkpoint whose signature does not verify
    HEAD_MISMATCH = "head_mismatch"  # the recorded head is not the last entry
    ARCHIVE = "archive"  # an archived segment is missing, changed, or its anchor is not signed


@dataclass(frozen=True)
class Problem:
    """One finding; ``seq`` names the entry (or the first of a range)."""

    kind: ProblemKind
    seq: int
    stream_id: str
    message: str
    suspects: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "seq": self.seq, "id": self.stream_id,
                "message": self.message, "suspects": list(self.suspects)}


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_chain`."""

    checked: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str = ""
    problems: list[Problem] = field(default_factory=list)
    checkpoints_checked: int = 0
    signed_seq: int = 0  # highest seq covered by a good checkpoint
    roots_checked: int = 0  # signed Merkle tree heads recomputed from the entries
    keys_source: str = ""  # where the public keys came from ("" : none, signatures unchecked)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.seq, p.kind.value)) if self.problems else None

    @property
    def unsigned(self) -> int:
        """Entries after the last good checkpoint (chained, not yet covered by a signature)."""
        return max((self.last_seq or 0) - self.signed_seq, 0)

    def to_dict(self) -> dict[str, Any]:
        first = self.first_problem
        return {"ok": self.ok, "checked": self.checked, "first_seq": self.first_seq,
                "last_seq": self.last_seq, "last_hash": self.last_hash,
                "checkpoints_checked": self.checkpoints_checked, "signed_seq": self.signed_seq,
                "unsigned": self.unsigned, "roots_checked": self.roots_checked,
                "keys_source": self.keys_source,
                "first_problem": first.to_dict() if first else None,
                "problems": [p.to_dict() for p in sorted(
                    self.problems, key=lambda p: (p.seq, p.kind.value))]}


MAX_TRACKED_GAPS = 100_000


def verify_chain(entries: Iterable[Entry], *, checkpoints: Sequence[Checkpoint] = (),
                 jwks: dict[str, Any] | None = None, head: tuple[int, str] | None = None,
                 anchor: tuple[int, str] | None = (0, GENESIS), log_name: str | None = None,
                 tree: Frontier | None = None, check_tree: bool = True) -> VerifyReport:
    """Recompute the chain and name what was tampered with.

    Streaming: memory is bounded by the gaps it is tracking, not by the log's length.

    Args:
        entries: entries in stored order.
        checkpoints: signed checkpoints to hold the chain against (the exported one too).
        jwks: audit public keys; checkpoints are trusted only when their signature verifies
            with one of these (without keys, checkpoints are not used).
        head: the (seq, hash) the store says is newest, to catch a cut or hidden append.
        anchor: (seq, hash) the first entry must follow: genesis by default; None accepts any
            start (a partial export).
        log_name: the stream name checkpoints must be signed for.
        tree: the Merkle frontier just before the first entry, to check the signed tree
            heads (built from nothing when the chain starts at genesis; None with a partial
            log whose earlier leaves are unknown: then only the chain is checked).
        check_tree: False skips the tree heads (the benchmark's baseline).
    """
    report = VerifyReport()
    if tree is None and anchor == (0, GENESIS) and check_tree:
        tree = Frontier()
    good_cps: dict[int, Checkpoint] = {}
    for cp in checkpoints:
        report.checkpoints_checked += 1
        why = check_checkpoint(cp, jwks, log_name) if jwks is not None else "no public keys"
        if why is None:
            good_cps.setdefault(cp.seq, cp)
            if good_cps[cp.seq].hash != cp.hash:
                report.problems.append(Problem(
                    ProblemKind.BAD_CHECKPOINT, cp.seq, cp.entry_id,
                    f"two validly signed checkpoints disagree about seq {cp.seq}"))
        elif jwks is not None:
            report.problems.append(Problem(ProblemKind.BAD_CHECKPOINT, cp.seq, cp.entry_id,
                                           f"checkpoint for seq {cp.seq}: {why}"))
    matched_cp = 0  # highest checkpoint seq the chain agreed with

    prev_entry: Entry | None = None
    expected = anchor[0] + 1 if anchor is not None else None
    prev_hash = anchor[1] if anchor is not None else None
    gaps: dict[int, str] = {}  # missing seq -> stream id of the entry after the gap
    max_seq = 0

    for e in entries:
        report.checked += 1
        if report.first_seq is None:
            report.first_seq = e.seq
        flagged = False
        if e.error:
            report.problems.append(Problem(ProblemKind.UNREADABLE, e.seq, e.stream_id, e.error))
            flagged = True
        elif e.expected_hash() != e.hash:
            report.problems.append(Problem(
                ProblemKind.EDITED, e.seq, e.stream_id,
                f"entry seq {e.seq} ({e.stream_id}) was edited: its content no longer matches "
                "its hash"))
            flagged = True
        if expected is not None and e.seq != expected:
            if e.seq > expected:
                for s in range(expected, e.seq):
                    if len(gaps) < MAX_TRACKED_GAPS:
                        gaps[s] = e.stream_id
            elif e.seq in gaps:
                gaps.pop(e.seq)
                report.problems.append(Problem(
                    ProblemKind.REORDERED, e.seq, e.stream_id,
                    f"entry seq {e.seq} ({e.stream_id}) appears after seq {max_seq}: "
                    "entries were reordered", (e.seq, max_seq)))
                flagged = True
            else:
                report.problems.append(Problem(
                    ProblemKind.DUPLICATE, e.seq, e.stream_id,
                    f"entry seq {e.seq} ({e.stream_id}) appears again (a replayed or forged "
                    "entry)"))
                flagged = True
        if not flagged and prev_hash is not None and e.prev != prev_hash:
            if prev_entry is None:
                report.problems.append(Problem(
                    ProblemKind.BAD_START, e.seq, e.stream_id,
                    f"the first entry, seq {e.seq} ({e.stream_id}), does not start the chain"))
            elif e.seq == (prev_entry.seq + 1):
                report.problems.append(Problem(
                    ProblemKind.BROKEN_LINK, e.seq, e.stream_id,
                    f"entry seq {e.seq} ({e.stream_id}) does not chain to seq {prev_entry.seq}: "
                    f"seq {prev_entry.seq} was rewritten with a recomputed hash, or seq {e.seq} "
                    "was forged", (prev_entry.seq, e.seq)))
        if tree is not None:
            if tree.size + 1 == e.seq and not e.error:
                tree.push(leaf_hash(leaf_data(e)))
            else:
                tree = None  # the leaves no longer line up; the chain checks say why
        if e.seq in good_cps:
            cp = good_cps[e.seq]
            # The tree is checked only while the chain is clean: an earlier finding already
            # names what changed, and a tree mismatch there would only repeat it.
            if cp.root and tree is not None and tree.size == e.seq and cp.hash == e.hash and (
                    not report.problems) and tree.root().hex() != cp.root:
                report.problems.append(Problem(
                    ProblemKind.CHECKPOINT_MISMATCH, e.seq, e.stream_id,
                    f"the Merkle tree over seq 1..{e.seq} differs from the tree head signed at "
                    f"seq {e.seq}", (e.seq,)))
                report.roots_checked -= 1
            if cp.root and tree is not None and tree.size == e.seq:
                report.roots_checked += 1
            if cp.hash != e.hash:
                lo = matched_cp + 1
                report.problems.append(Problem(
                    ProblemKind.CHECKPOINT_MISMATCH, lo, e.stream_id,
                    f"history was rewritten between seq {lo} and seq {e.seq}: the chain no "
                    f"longer reaches the hash signed at seq {e.seq}", (lo, e.seq)))
            else:
                matched_cp = max(matched_cp, e.seq)
        if expected is None or e.seq >= expected:
            expected = e.seq + 1
        max_seq = max(max_seq, e.seq)
        prev_hash = e.hash
        prev_entry = e
        report.last_seq = e.seq
        report.last_hash = e.hash

    # Whatever is still missing was dropped; report each run of missing numbers once.
    run_start: int | None = None
    ordered = sorted(gaps)
    for i, s in enumerate(ordered):
        if run_start is None:
            run_start = s
        if i + 1 == len(ordered) or ordered[i + 1] != s + 1:
            span = f"seq {run_start}" if run_start == s else f"seq {run_start}..{s}"
            report.problems.append(Problem(
                ProblemKind.DROPPED, run_start, gaps[run_start],
                f"entries {span} were deleted (missing before stream id {gaps[run_start]})",
                tuple(range(run_start, s + 1))[:100]))
            run_start = None

    last = report.last_seq or 0
    top = max(good_cps, default=0)
    if top > last:
        report.problems.append(Problem(
            ProblemKind.TRUNCATED, last + 1, good_cps[top].entry_id,
            f"the log ends at seq {last} but a signed checkpoint covers seq {top}: entries "
            f"{last + 1}..{top} were removed"))
    report.signed_seq = matched_cp
    if head is not None and report.last_seq is not None and (
            head[0] != report.last_seq or head[1] != report.last_hash):
        report.problems.append(Problem(
            ProblemKind.HEAD_MISMATCH, min(head[0], report.last_seq) + 1, "",
            f"the chain head says seq {head[0]} but the log ends at seq {report.last_seq} "
            "with another hash: entries were cut off, or appended around Signoff"))
    return report


def verify_store(rt: AuditContext, extra_checkpoints: Sequence[Checkpoint] = (), *,
                 jwks: dict[str, Any] | None = None, archive_dir: Path | None = None
                 ) -> VerifyReport:
    """Verify the log against its stored checkpoints (plus any exported ones).

    With archived segments and their folder at hand, the files and the live stream are one
    chain from genesis; without the folder, the live stream starts from the last segment's
    signed checkpoint (its signature, checked here, is the anchor).

    Args:
        rt: the runtime.
        extra_checkpoints: checkpoints kept elsewhere (exported ones).
        jwks: pinned audit public keys (default: the ones in Redis).
        archive_dir: the folder of the archived segments (default: the setting).
    """
    jwks = rt.audit_keys.jwks() if jwks is None else jwks
    seq, digest, _ = rt.audit.head()
    archive = Archive(rt, archive_dir)
    segments = archive.segments()
    seg_cps = [Checkpoint.from_dict(s.checkpoint) for s in segments]
    cps = [*checkpoints(rt.redis, rt.keys), *seg_cps, *extra_checkpoints]
    head = (seq, digest) if seq else None
    if not segments:
        return verify_chain(rt.audit.iter_entries(), checkpoints=cps, jwks=jwks, head=head,
                            log_name=rt.keys.audit)
    if archive.folder is not None:
        report = verify_chain(archive.entries(), checkpoints=cps, jwks=jwks, head=head,
                              log_name=rt.keys.audit)
        for at, why in archive.file_problems():
            report.problems.append(Problem(ProblemKind.ARCHIVE, at, "", why))
        return report
    anchored = archive.anchor(jwks)
    assert anchored is not None
    (a_seq, a_hash), frontier, cp = anchored
    report = verify_chain(rt.audit.iter_entries(), checkpoints=cps, jwks=jwks, head=head,
                          anchor=(a_seq, a_hash), log_name=rt.keys.audit, tree=frontier)
    bad = check_checkpoint(cp, jwks, rt.keys.audit)
    if bad is not None:
        report.problems.append(Problem(
            ProblemKind.ARCHIVE, a_seq, cp.entry_id,
            f"the archive's last checkpoint (seq {a_seq}) does not verify: {bad}"))
    return report
