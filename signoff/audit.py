"""The audit log: an append-only Redis stream whose entries form a SHA-256 hash chain.

Each entry carries ``seq``, ``ts``, ``event``, ``request_id``, ``actor``, ``details`` (masked
data and hashes only: never an original payload, a grant token or a secret), ``prev`` (the
previous entry's hash) and ``hash`` = SHA-256(prev || "\\n" || canonical JSON of the body).
An append is one Lua compare-and-set on the chain head (``signoff/lua/audit_append.lua``):
the caller hashes against the head it knows and the script appends only if that is still the
head, so concurrent writers can never fork the chain, and a single writer needs one round
trip per entry.

Signed checkpoints (an Ed25519 JWS over ``seq`` and ``hash`` of the head, made periodically
and on demand) pin the chain: :func:`verify_chain` recomputes every hash and names the first
entry that was edited, dropped, reordered, forged or cut off, against the checkpoints.
:func:`export` writes JSON lines plus a fresh signed checkpoint and the public keys, which an
auditor verifies offline (``signoff audit verify --file``).
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import io
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
import redis

from signoff.keys import Keys
from signoff.models import canonical_json

if TYPE_CHECKING:
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

GENESIS = "0" * 64
CHECKPOINT_AUDIENCE = "signoff-audit"
CHECKPOINT_ISSUER = "signoff"
# Detail keys whose values are never written, whatever a caller passes: a last line of
# defence behind the rule that callers audit masked data and hashes only.
SECRET_KEYS = frozenset({"password", "passwd", "secret", "token", "grant", "authorization",
                         "api_key", "apikey", "private_key", "ciphertext", "cookie", "params",
                         "payload", "original"})
REDACTED = "[redacted]"
MAX_APPEND_ATTEMPTS = 1000


class Event(str, Enum):
    """Every kind of audit entry."""

    REQUESTED = "requested"
    DUPLICATE = "duplicate"
    MERGED = "merged"
    REJECTED = "rejected"
    PREPARED = "prepared"
    CARD_POSTED = "card_posted"
    CARD_FAILED = "card_failed"
    VOTE = "vote"
    CLICK_REFUSED = "click_refused"
    DECIDED = "decided"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CANCEL_REFUSED = "cancel_refused"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    GRANT_ISSUED = "grant_issued"
    GRANT_USED = "grant_used"
    GRANT_REFUSED = "grant_refused"
    GRANT_REVOKED = "grant_revoked"
    REVOKE_REFUSED = "revoke_refused"
    POLICY_RELOADED = "policy_reloaded"
    POLICY_REFUSED = "policy_refused"
    TOKEN_CREATED = "token_created"  # noqa: S105 - an event name, not a password
    KEY_ROTATED = "key_rotated"


# Events that settle a request, and the status each one means.
FINAL_EVENTS = {"rejected": "rejected", "expired": "timed_out", "cancelled": "cancelled"}


@dataclass(frozen=True)
class Entry:
    """One audit entry as stored.

    ``error`` is set when the stored fields could not even be parsed (a tampered entry); such
    an entry never verifies.
    """

    stream_id: str
    seq: int
    ts: float
    event: str
    request_id: str
    actor: str
    details: dict[str, Any]
    prev: str
    hash: str
    error: str = ""

    def body(self) -> dict[str, Any]:
        """The fields the hash covers."""
        return {"seq": self.seq, "ts": self.ts, "event": self.event,
                "request_id": self.request_id, "actor": self.actor, "details": self.details}

    def expected_hash(self) -> str:
        return entry_hash(self.prev, self.body())

    @property
    def intact(self) -> bool:
        """Whether the stored hash matches the content (says nothing about the links)."""
        return not self.error and self.expected_hash() == self.hash

    @classmethod
    def from_stream(cls, stream_id: str, fields: dict[str, str]) -> Entry:
        try:
            details = json.loads(fields.get("details", "{}"))
            if not isinstance(details, dict):
                raise ValueError("details is not an object")
            return cls(
                stream_id=stream_id, seq=int(fields["seq"]), ts=float(fields["ts"]),
                event=fields["event"], request_id=fields.get("request_id", ""),
                actor=fields.get("actor", ""), details=details,
                prev=fields["prev"], hash=fields["hash"],
            )
        except (KeyError, ValueError, TypeError) as exc:
            seq = fields.get("seq", "")
            return cls(stream_id, int(seq) if str(seq).isdigit() else -1, 0.0,
                       str(fields.get("event", "")), str(fields.get("request_id", "")),
                       str(fields.get("actor", "")), {}, str(fields.get("prev", "")),
                       str(fields.get("hash", "")), error=f"unreadable entry: {exc}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Entry:
        """Inverse of :meth:`to_dict` (an exported JSON line)."""
        try:
            return cls(str(data["id"]), int(data["seq"]), float(data["ts"]), str(data["event"]),
                       str(data.get("request_id", "")), str(data.get("actor", "")),
                       dict(data["details"]), str(data["prev"]), str(data["hash"]))
        except (KeyError, ValueError, TypeError) as exc:
            seq = data.get("seq") if isinstance(data, dict) else None
            return cls(str(data.get("id", "")) if isinstance(data, dict) else "",
                       seq if isinstance(seq, int) else -1, 0.0, "", "", "", {}, "", "",
                       error=f"unreadable entry: {exc}")

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.stream_id, **self.body(), "prev": self.prev, "hash": self.hash}


def entry_hash(prev: str, body: dict[str, Any]) -> str:
    """SHA-256 over the previous hash and the canonical entry body."""
    return hashlib.sha256(prev.encode() + b"\n" + canonical_json(body)).hexdigest()


def redact(details: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe details with the values of secret-looking keys removed, at any depth."""

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): REDACTED if str(k).lower() in SECRET_KEYS else walk(v)
                    for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [walk(v) for v in value]
        return value

    return dict(walk(json.loads(json.dumps(details, default=str))))


@cache
def _append_script() -> str:
    return resources.files("signoff.lua").joinpath("audit_append.lua").read_text()


class AuditLog:
    """Appends to and reads the audit stream.

    Args:
        client: redis-py client with ``decode_responses=True``.
        keys: the key builder.
        index_ttl: seconds the per-request index of an entry lives (0: forever); the chain
            itself never expires.
    """

    def __init__(self, client: redis.Redis, keys: Keys, index_ttl: int = 0) -> None:
        # Any: redis-py's stubs cannot express decode_responses=True (replies typed bytes|str).
        self.r: Any = client
        self.keys = keys
        self.index_ttl = index_ttl
        self._script = client.register_script(_append_script())
        # The head this process last saw: a hint that saves a read per append. The Lua
        # compare-and-set is what keeps the chain right when the hint is stale.
        self._head: tuple[int, str] | None = None
        self._lock = threading.Lock()

    def head(self) -> tuple[int, str, str]:
        """(seq, hash, stream id) of the newest entry as the head records it."""
        raw = self.r.hgetall(self.keys.audit_head)
        return int(raw.get("seq", "0")), raw.get("hash", GENESIS), raw.get("id", "")

    def append(self, event: Event | str, request_id: str = "", actor: str = "",
               **details: Any) -> Entry:
        """Append one entry to the chain (retrying while other writers move the head)."""
        name = event.value if isinstance(event, Event) else event
        clean = redact(details)
        details_json = json.dumps(clean, sort_keys=True)
        with self._lock:
            head = self._head
        if head is None:
            seq0, hash0, _ = self.head()
            head = (seq0, hash0)
        for _ in range(MAX_APPEND_ATTEMPTS):
            seq, prev = head[0] + 1, head[1]
            ts = round(time.time(), 6)
            body = {"seq": seq, "ts": ts, "event": name, "request_id": request_id,
                    "actor": actor, "details": clean}
            digest = entry_hash(prev, body)
            index_key = self.keys.audit_for(request_id) if request_id else self.keys.audit_head
            result = self._script(
                keys=[self.keys.audit, self.keys.audit_head, index_key],
                args=[prev, seq, repr(ts), name, request_id, actor, details_json, digest,
                      "1" if request_id else "0", self.index_ttl])
            if result[0] == "ok":
                with self._lock:
                    self._head = (seq, digest)
                return Entry(str(result[1]), seq, ts, name, request_id, actor, clean, prev,
                             digest)
            head = (int(result[1]), str(result[2]))
        raise RuntimeError("audit append kept conflicting; is something rewriting the head?")

    def entries(self, start: str = "-", end: str = "+", count: int | None = None) -> list[Entry]:
        """Entries in stream order."""
        rows = self.r.xrange(self.keys.audit, start, end, count=count)
        return [Entry.from_stream(sid, fields) for sid, fields in rows]

    def iter_entries(self, start: str = "-", end: str = "+", batch: int = 1000
                     ) -> Iterator[Entry]:
        """Every entry between two stream ids, in order, read in batches."""
        while True:
            rows = self.r.xrange(self.keys.audit, start, end, count=batch)
            if not rows:
                return
            for sid, fields in rows:
                yield Entry.from_stream(sid, fields)
            if len(rows) < batch:
                return
            ms, _, n = rows[-1][0].partition("-")
            start = f"{ms}-{int(n) + 1}"

    def for_request(self, request_id: str, limit: int = 500) -> list[Entry]:
        """Entries about one request, through the per-request index (no stream scan)."""
        ids = self.r.lrange(self.keys.audit_for(request_id), 0, limit - 1)
        pipe = self.r.pipeline(transaction=False)
        for sid in ids:
            pipe.xrange(self.keys.audit, sid, sid)
        out: list[Entry] = []
        for rows in pipe.execute():
            out.extend(Entry.from_stream(sid, fields) for sid, fields in rows)
        return out

    def count(self) -> int:
        return int(self.r.xlen(self.keys.audit))


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """A signed statement that the chain's entry ``seq`` has hash ``hash``."""

    seq: int
    hash: str
    entry_id: str
    ts: float
    kid: str
    token: str
    exported: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "entry": self.entry_id, "ts": self.ts,
                "kid": self.kid, "token": self.token, "exported": self.exported}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(int(data["seq"]), str(data["hash"]), str(data.get("entry", "")),
                   float(data.get("ts", 0)), str(data.get("kid", "")), str(data["token"]),
                   bool(data.get("exported", False)))


def sign_checkpoint(rt: Runtime, *, exported: bool = False, now: float | None = None
                    ) -> Checkpoint | None:
    """Sign the current head with the audit key and store the checkpoint.

    Returns:
        The checkpoint, or None while the log is empty.
    """
    from signoff.grants import KeyRing, Purpose

    if rt.audit.head()[0] == 0:
        return None
    # The key first: creating the first audit key appends its own entry, which the
    # checkpoint should cover.
    key = KeyRing(rt, Purpose.AUDIT).active()
    seq, digest, entry_id = rt.audit.head()
    now = time.time() if now is None else now
    claims = {"iss": CHECKPOINT_ISSUER, "aud": CHECKPOINT_AUDIENCE, "iat": int(now),
              "log": rt.keys.audit, "seq": seq, "hash": digest, "entry": entry_id}
    token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})
    cp = Checkpoint(seq, digest, entry_id, now, key.kid, token, exported)
    rt.redis.xadd(rt.keys.audit_checkpoints, {
        "seq": seq, "hash": digest, "entry": entry_id, "ts": repr(now), "kid": key.kid,
        "token": token, "exported": "1" if exported else "0"})
    return cp


def checkpoints(r: Any, keys: Keys) -> list[Checkpoint]:
    """Every stored checkpoint, oldest first."""
    out = []
    for _sid, f in r.xrange(keys.audit_checkpoints, "-", "+"):
        try:
            out.append(Checkpoint(int(f["seq"]), f["hash"], f.get("entry", ""),
                                  float(f.get("ts", 0)), f.get("kid", ""), f["token"],
                                  f.get("exported") == "1"))
        except (KeyError, ValueError):
            continue
    return out


def checkpoint_if_due(rt: Runtime, every: float, now: float | None = None) -> Checkpoint | None:
    """Sign a checkpoint when the last one is older than ``every`` seconds and entries were
    appended since (the janitor calls this every few seconds)."""
    now = time.time() if now is None else now
    r: Any = rt.redis
    last = r.xrevrange(rt.keys.audit_checkpoints, "+", "-", count=1)
    seq, _h, _id = rt.audit.head()
    if last:
        fields = last[0][1]
        age = now - float(fields.get("ts", 0))
        # A negative age: the last one was signed by a clock that ran ahead; sign again now
        # rather than wait for real time to catch up with it.
        if int(fields.get("seq", 0)) >= seq or 0 <= age < every:
            return None
    elif seq == 0:
        return None
    return sign_checkpoint(rt, now=now)


def check_checkpoint(cp: Checkpoint, jwks: dict[str, Any], log_name: str | None = None
                     ) -> str | None:
    """Why a checkpoint's signature or content is wrong (None: it is good).

    Args:
        cp: the checkpoint.
        jwks: the audit public keys as a JWK Set.
        log_name: the expected ``log`` claim (the stream name), when known.
    """
    try:
        kid = str(jwt.get_unverified_header(cp.token).get("kid", ""))
    except jwt.PyJWTError:
        return "not a signed checkpoint"
    jwk = next((k for k in jwks.get("keys", []) if k.get("kid") == kid), None)
    if jwk is None:
        return f"signed with unknown key {kid!r}"
    try:
        key = jwt.algorithms.OKPAlgorithm.from_jwk(json.dumps(jwk))
        claims = jwt.decode(cp.token, key, algorithms=["EdDSA"],  # type: ignore[arg-type]
                            audience=CHECKPOINT_AUDIENCE, issuer=CHECKPOINT_ISSUER,
                            # iat is when it was signed, by the signer's clock: a record, not
                            # a validity window (a clock that ran ahead must not make a good
                            # checkpoint "not yet valid" to every later verifier).
                            options={"require": ["seq", "hash", "iat"], "verify_iat": False})
    except (jwt.PyJWTError, ValueError) as exc:
        return f"signature does not verify: {exc}"
    if int(claims["seq"]) != cp.seq or claims["hash"] != cp.hash:
        return "the stored seq/hash differ from what was signed"
    if log_name is not None and claims.get("log") not in (None, log_name):
        return f"signed for another log ({claims.get('log')!r})"
    return None


# --------------------------------------------------------------------------------------------
# verification
# --------------------------------------------------------------------------------------------
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
                "unsigned": self.unsigned,
                "first_problem": first.to_dict() if first else None,
                "problems": [p.to_dict() for p in sorted(
                    self.problems, key=lambda p: (p.seq, p.kind.value))]}


MAX_TRACKED_GAPS = 100_000


def verify_chain(entries: Iterable[Entry], *, checkpoints: Sequence[Checkpoint] = (),
                 jwks: dict[str, Any] | None = None, head: tuple[int, str] | None = None,
                 anchor: tuple[int, str] | None = (0, GENESIS), log_name: str | None = None,
                 ) -> VerifyReport:
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
    """
    report = VerifyReport()
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
        if e.seq in good_cps:
            cp = good_cps[e.seq]
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


def verify_store(rt: Runtime, extra_checkpoints: Sequence[Checkpoint] = ()) -> VerifyReport:
    """Verify the live stream against its stored checkpoints (plus any exported ones)."""
    from signoff.grants import KeyRing, Purpose

    jwks = KeyRing(rt, Purpose.AUDIT).jwks()
    seq, digest, _ = rt.audit.head()
    cps = [*checkpoints(rt.redis, rt.keys), *extra_checkpoints]
    return verify_chain(rt.audit.iter_entries(), checkpoints=cps, jwks=jwks,
                        head=(seq, digest) if seq else None, log_name=rt.keys.audit)


# --------------------------------------------------------------------------------------------
# export (for an auditor)
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportResult:
    """Where an export went and what it covers."""

    entries_path: Path
    checkpoint_path: Path
    keys_path: Path
    count: int
    first_seq: int
    last_seq: int


def export(rt: Runtime, out_dir: Path, *, start: str = "-") -> ExportResult:
    """Write the log as JSON lines with a fresh signed checkpoint and the public keys.

    The checkpoint is signed first, then exactly the entries up to it are written, so the
    files agree even while Signoff keeps appending. The checkpoint is also recorded as
    exported, so later ``signoff audit verify`` runs hold the live log against it.

    Args:
        rt: the runtime.
        out_dir: a folder (created when missing).
        start: the first stream id to export (``-``: from the beginning).
    """
    from signoff.grants import KeyRing, Purpose

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
    jwks = KeyRing(rt, Purpose.AUDIT).jwks()
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


# --------------------------------------------------------------------------------------------
# query
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueryFilter:
    """What ``signoff audit query`` selects; every given criterion must hold."""

    since: float | None = None
    until: float | None = None
    events: frozenset[str] = frozenset()
    action: str | None = None  # glob, e.g. db.export*
    person: str | None = None  # the actor, or the human a request was made for
    agent: str | None = None  # the requesting agent
    status: str | None = None  # the request's final (or current) status
    request_id: str | None = None


@dataclass(frozen=True)
class RequestFacts:
    """What the audit itself says about one request (joined onto each of its entries)."""

    action: str = ""
    agent: str = ""
    on_behalf_of: str = ""
    status: str = ""


@dataclass(frozen=True)
class Row:
    """One query result."""

    entry: Entry
    facts: RequestFacts

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {"id": e.stream_id, "seq": e.seq, "ts": e.ts,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.ts)),
                "event": e.event, "request_id": e.request_id, "actor": e.actor,
                "action": self.facts.action, "agent": self.facts.agent,
                "on_behalf_of": self.facts.on_behalf_of, "status": self.facts.status,
                "details": e.details}


def facts_from(entries: Iterable[Entry]) -> RequestFacts:
    """A request's action, agent, person and status, from its own audit entries."""
    action = agent = obo = ""
    status = ""
    for e in entries:
        if e.event == Event.REQUESTED.value:
            action = str(e.details.get("action", action))
            agent = e.actor or agent
            obo = str(e.details.get("on_behalf_of", "") or obo)
            status = status or "received"
        elif e.event == Event.PREPARED.value and status in ("", "received"):
            status = str(e.details.get("outcome") or "pending")
        elif e.event == Event.DECIDED.value:
            status = str(e.details.get("status", status))
        elif e.event in FINAL_EVENTS:
            status = FINAL_EVENTS[e.event]
        if not action and e.details.get("action"):
            action = str(e.details["action"])
    return RequestFacts(action, agent, obo.lower(), status)


def _stream_bound(ts: float | None, default: str) -> str:
    return default if ts is None else str(int(ts * 1000))


def query(rt: Runtime, flt: QueryFilter, limit: int = 1000) -> Iterator[Row]:
    """Entries matching ``flt``, oldest first, each joined with its request's facts."""
    log_ = rt.audit
    if flt.request_id:
        source: Iterable[Entry] = (e for e in log_.for_request(flt.request_id, limit=100_000)
                                   if _in_time(e, flt))
    else:
        source = log_.iter_entries(_stream_bound(flt.since, "-"), _stream_bound(flt.until, "+"))
    facts: dict[str, RequestFacts] = {}
    needs_facts = bool(flt.action or flt.agent or flt.status or flt.person)
    produced = 0
    for e in source:
        if flt.events and e.event not in flt.events:
            continue
        f = RequestFacts()
        if e.request_id:
            if e.request_id not in facts:
                facts[e.request_id] = facts_from(log_.for_request(e.request_id))
            f = facts[e.request_id]
        elif needs_facts and not flt.person:
            continue
        if flt.action and not fnmatch.fnmatchcase(f.action, flt.action):
            continue
        if flt.agent and flt.agent not in (f.agent, e.actor):
            continue
        if flt.status and f.status != flt.status:
            continue
        if flt.person and flt.person.lower() not in (e.actor.lower(), f.on_behalf_of):
            continue
        yield Row(e, f)
        produced += 1
        if produced >= limit:
            return


def _in_time(e: Entry, flt: QueryFilter) -> bool:
    return (flt.since is None or e.ts >= flt.since) and (flt.until is None or e.ts <= flt.until)


COLUMNS = ("time", "seq", "event", "request_id", "actor", "action", "agent", "status")


def render(rows: Iterable[Row], fmt: str) -> Iterator[str]:
    """Rows as ``table`` lines, ``jsonl`` or ``csv`` (details as JSON in one column)."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row.to_dict(), sort_keys=True, ensure_ascii=False)
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*COLUMNS, "on_behalf_of", "details"])
        yield buf.getvalue().rstrip("\r\n")
        for row in rows:
            d = row.to_dict()
            buf.seek(0)
            buf.truncate()
            writer.writerow([d[c] for c in COLUMNS] + [
                d["on_behalf_of"], json.dumps(d["details"], sort_keys=True)])
            yield buf.getvalue().rstrip("\r\n")
        return
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    materialized = [row.to_dict() for row in rows]
    widths = {c: len(c) for c in COLUMNS}
    for d in materialized:
        for c in COLUMNS:
            widths[c] = min(max(widths[c], len(str(d[c]))), 40)
    yield "  ".join(c.upper().ljust(widths[c]) for c in COLUMNS)
    for d in materialized:
        yield "  ".join(str(d[c])[:widths[c]].ljust(widths[c]) for c in COLUMNS).rstrip()
