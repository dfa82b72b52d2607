"""The audit log: an append-only Redis stream whose entries form a SHA-256 hash chain.

Each entry carries ``seq``, ``ts``, ``event``, ``request_id``, ``actor``, ``details`` (masked
data and hashes only: never an original payload, a grant token or a secret), ``prev`` (the
previous entry's hash) and ``hash`` = SHA-256(prev || "\\n" || canonical JSON of the body).

One idea per module:

- :mod:`~signoff.audit.events`: every kind of entry.
- :mod:`~signoff.audit.entry`: one entry and its hash.
- :mod:`~signoff.audit.log`: the stream (append, read).
- :mod:`~signoff.audit.checkpoints`: signed statements about the chain head.
- :mod:`~signoff.audit.verify`: recompute the chain and name what was tampered with.
- :mod:`~signoff.audit.export`: JSON lines and a checkpoint for an auditor.
- :mod:`~signoff.audit.query`: filters and renderings (table, JSON lines, CSV).
- :mod:`~signoff.audit.merkle`: the RFC 9162 Merkle tree over the entries.
- :mod:`~signoff.audit.proofs`: inclusion proofs for one entry.
- :mod:`~signoff.audit.archive`: old entries to files, the chain kept whole.

The names below are the package's public surface (``from signoff.audit import AuditLog``).
"""

from __future__ import annotations

from signoff.audit.archive import Archive, ArchiveError, Segment, archive_if_due
from signoff.audit.checkpoints import (
    CHECKPOINT_AUDIENCE,
    CHECKPOINT_ISSUER,
    Checkpoint,
    check_checkpoint,
    checkpoint_if_due,
    checkpoints,
    seal_after,
    sign_checkpoint,
    sign_tree_head,
)
from signoff.audit.entry import GENESIS, Entry, entry_hash
from signoff.audit.events import FINAL_EVENTS, SEAL_EVENTS, Event
from signoff.audit.export import ExportResult, export, read_checkpoint_file, read_export
from signoff.audit.index import AuditIndex, IndexRow
from signoff.audit.log import MAX_APPEND_ATTEMPTS, REDACTED, SECRET_KEYS, AuditLog, redact
from signoff.audit.query import (
    COLUMNS,
    QueryFilter,
    RequestFacts,
    Row,
    facts_from,
    query,
    render,
)
from signoff.audit.verify import (
    MAX_TRACKED_GAPS,
    Problem,
    ProblemKind,
    VerifyReport,
    verify_chain,
    verify_store,
)

__all__ = [
    "CHECKPOINT_AUDIENCE",
    "CHECKPOINT_ISSUER",
    "COLUMNS",
    "FINAL_EVENTS",
    "GENESIS",
    "MAX_APPEND_ATTEMPTS",
    "MAX_TRACKED_GAPS",
    "REDACTED",
    "SEAL_EVENTS",
    "SECRET_KEYS",
    "Archive",
    "ArchiveError",
    "AuditIndex",
    "AuditLog",
    "Checkpoint",
    "Entry",
    "Event",
    "ExportResult",
    "IndexRow",
    "Problem",
    "ProblemKind",
    "QueryFilter",
    "RequestFacts",
    "Row",
    "Segment",
    "VerifyReport",
    "archive_if_due",
    "check_checkpoint",
    "checkpoint_if_due",
    "checkpoints",
    "entry_hash",
    "export",
    "facts_from",
    "query",
    "read_checkpoint_file",
    "read_export",
    "redact",
    "render",
    "seal_after",
    "sign_checkpoint",
    "sign_tree_head",
    "verify_chain",
    "verify_store",
]
