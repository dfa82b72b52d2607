"""Inclusion proofs: show one entry to an auditor without the rest of the log.

A proof carries the entry, its leaf index, the tree size, the audit path (RFC 9162 2.1.3) and
the signed checkpoint whose tree head it leads to. :func:`check_proof` needs nothing but the
proof and the audit public keys (pinned by the verifier, never taken from the proof).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import jwt

from signoff.audit.checkpoints import Checkpoint, check_checkpoint, sign_checkpoint
from signoff.audit.entry import Entry
from signoff.audit.merkle import CHUNK, ProofBuilder, leaf_data, leaf_hash, root_from_path

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext

PROOF_FORMAT = "signoff-audit-inclusion-proof/1"

# Reads the entries of chunk c (leaves c*CHUNK .. c*CHUNK+CHUNK-1), given the stream id of the
# previous chunk's last entry ("" for the first chunk).
ChunkReader = Callable[[int, str], list[Entry]]


@dataclass(frozen=True)
class InclusionProof:
    entry: Entry
    index: int
    size: int
    path: tuple[str, ...]
    checkpoint: Checkpoint
    log: str

    def to_dict(self) -> dict[str, Any]:
        return {"format": PROOF_FORMAT, "log": self.log, "entry": self.entry.to_dict(),
                "leaf_index": self.index, "tree_size": self.size, "path": list(self.path),
                "checkpoint": self.checkpoint.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InclusionProof:
        if data.get("format") != PROOF_FORMAT:
            raise ValueError(f"not a Signoff inclusion proof (format {data.get('format')!r})")
        return cls(Entry.from_dict(data["entry"]), int(data["leaf_index"]),
                   int(data["tree_size"]), tuple(str(p) for p in data["path"]),
                   Checkpoint.from_dict(data["checkpoint"]), str(data.get("log", "")))


class ProofOutcome(str, Enum):
    VERIFIED = "verified"  # signature, tree head and path all check
    UNSIGNED = "unsigned"  # the path leads to the checkpoint's root, but no pinned key checked it
    INVALID = "invalid"


@dataclass(frozen=True)
class ProofResult:
    outcome: ProofOutcome
    reason: str

    @property
    def ok(self) -> bool:
        return self.outcome is ProofOutcome.VERIFIED


def check_proof(proof: InclusionProof, jwks: dict[str, Any] | None,
                log_name: str | None = None) -> ProofResult:
    """Check a proof offline.

    Args:
        proof: the proof.
        jwks: the audit public keys, obtained independently of the proof; None: the
            signature cannot be checked, which the result says (never VERIFIED).
        log_name: the audit stream the checkpoint must be signed for, when known.
    """
    e, cp = proof.entry, proof.checkpoint
    if e.error:
        return ProofResult(ProofOutcome.INVALID, e.error)
    if e.expected_hash() != e.hash:
        return ProofResult(ProofOutcome.INVALID, "the entry's content does not match its hash")
    if proof.index != e.seq - 1:
        return ProofResult(ProofOutcome.INVALID,
                           f"leaf index {proof.index} is not entry seq {e.seq}")
    if proof.size != cp.seq or not cp.root:
        return ProofResult(ProofOutcome.INVALID,
                           "the checkpoint does not sign a tree head of this size")
    try:
        path = [bytes.fromhex(p) for p in proof.path]
    except ValueError:
        return ProofResult(ProofOutcome.INVALID, "the audit path is not hex")
    root = root_from_path(proof.index, proof.size, leaf_hash(leaf_data(e)), path)
    if root is None or root.hex() != cp.root:
        return ProofResult(ProofOutcome.INVALID,
                           "the audit path does not lead to the checkpoint's tree head")
    if jwks is None:
        return ProofResult(ProofOutcome.UNSIGNED,
                           "the path leads to the tree head, but its signature was NOT checked: "
                           "no pinned audit public keys")
    why = check_checkpoint(cp, jwks, log_name)
    if why is not None:
        return ProofResult(ProofOutcome.INVALID, f"checkpoint: {why}")
    try:
        claims = jwt.decode(cp.token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return ProofResult(ProofOutcome.INVALID, "checkpoint: unreadable")
    if int(claims.get("tree_size", -1)) != proof.size:
        return ProofResult(ProofOutcome.INVALID, "checkpoint: no signed tree size")
    return ProofResult(ProofOutcome.VERIFIED,
                       f"entry seq {e.seq} is leaf {proof.index} of the tree of {proof.size} "
                       f"entries signed by {cp.kid}")


def stream_chunk_reader(rt: AuditContext) -> ChunkReader:
    """Chunk entries from the live stream."""

    def read(c: int, after_id: str) -> list[Entry]:
        return rt.audit.read_after(after_id, CHUNK)

    return read


class Prover:
    """Builds proofs from the stored tree (chunk roots) and a chunk reader.

    Args:
        rt: the runtime.
        reader: reads a chunk's entries (the archive's reader also finds archived ones).
    """

    def __init__(self, rt: AuditContext, reader: ChunkReader | None = None) -> None:
        self.rt = rt
        self.reader = reader or stream_chunk_reader(rt)
        self.chunks = rt.audit.tree.chunks()

    def _after_id(self, c: int) -> str:
        return self.chunks[c - 1][1] if c > 0 else ""

    def chunk_entries(self, c: int, size: int) -> list[Entry]:
        first = c * CHUNK + 1
        last = min(first + CHUNK - 1, size)
        rows = [e for e in self.reader(c, self._after_id(c)) if first <= e.seq <= last]
        if [e.seq for e in rows] != list(range(first, last + 1)):
            raise ValueError(f"entries seq {first}..{last} are not all in the log")
        return rows

    def entry(self, ref: str) -> Entry:
        """An entry by stream id (``1700000000000-0``) or sequence number (``seq:42`` or
        ``42``)."""
        text = ref.strip()
        if "-" in text and not text.startswith("seq:"):
            rows = self.rt.audit.entries(text, text)
            if rows:
                return rows[0]
            for c in range(len(self.chunks) + 1):  # archived: look through the chunks
                for e in self.reader(c, self._after_id(c)):
                    if e.stream_id == text:
                        return e
            raise LookupError(f"no audit entry {text}")
        seq = int(text.removeprefix("seq:"))
        head = self.rt.audit.tree.head().size
        if seq < 1:
            raise LookupError(f"no audit entry seq {seq}")
        c = (seq - 1) // CHUNK
        for e in self.reader(c, self._after_id(c)):
            if e.seq == seq:
                return e
        raise LookupError(f"no audit entry seq {seq} (the tree covers 1..{head})")

    def prove(self, ref: str, checkpoint: Checkpoint | None = None) -> InclusionProof:
        """A proof for one entry against ``checkpoint`` (default: the newest checkpoint with
        a tree head that covers the entry; one is signed when none does yet)."""
        e = self.entry(ref)
        cp = checkpoint
        if cp is None:
            # The newest checkpoint covers every entry before it; sign one when it does not
            # reach this entry yet (or predates tree heads).
            newest = self.rt.redis.xrevrange(self.rt.keys.audit_checkpoints, "+", "-", count=1)
            latest = Checkpoint.from_stream(newest[0][1]) if newest else None
            cp = latest if latest is not None and latest.root and latest.seq >= e.seq else (
                sign_checkpoint(self.rt))
            self.chunks = self.rt.audit.tree.chunks()
        if cp is None or not cp.root or cp.seq < e.seq:
            raise LookupError(f"no signed tree head covers seq {e.seq}")
        builder = ProofBuilder(cp.seq, [h for h, _ in self.chunks],
                               lambda c: [leaf_hash(leaf_data(x))
                                          for x in self.chunk_entries(c, cp.seq)])
        path = builder.path(e.seq - 1)
        return InclusionProof(e, e.seq - 1, cp.seq, tuple(p.hex() for p in path), cp,
                              self.rt.keys.audit)


def load_proof(text: str) -> InclusionProof:
    return InclusionProof.from_dict(json.loads(text))
