"""Signed checkpoints: an Ed25519 JWS over the head's ``seq`` and ``hash`` and the Merkle tree
head (``size`` = ``seq``, ``root``), made periodically (the janitor), after every decision, and
on demand (export, proofs, archive); verification holds the chain and the tree against them."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt

from signoff.audit.entry import Entry
from signoff.audit.events import SEAL_EVENTS
from signoff.audit.merkle import TreeHead
from signoff.keys import Keys

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext
    from signoff.signing_keys import SigningKey

CHECKPOINT_AUDIENCE = "signoff-audit"
CHECKPOINT_ISSUER = "signoff"
log = logging.getLogger(__name__)


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
    root: str = ""  # Merkle tree head over entries 1..seq ("" on checkpoints made before trees)

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "hash": self.hash, "entry": self.entry_id, "ts": self.ts,
                "kid": self.kid, "token": self.token, "exported": self.exported,
                "tree_size": self.seq, "root": self.root}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Checkpoint:
        return cls(int(data["seq"]), str(data["hash"]), str(data.get("entry", "")),
                   float(data.get("ts", 0)), str(data.get("kid", "")), str(data["token"]),
                   bool(data.get("exported", False)), str(data.get("root", "")))

    @classmethod
    def from_stream(cls, f: dict[str, str]) -> Checkpoint:
        return cls(int(f["seq"]), f["hash"], f.get("entry", ""), float(f.get("ts", 0)),
                   f.get("kid", ""), f["token"], f.get("exported") == "1", f.get("root", ""))


def sign_checkpoint(rt: AuditContext, *, exported: bool = False, now: float | None = None,
                    nonempty: bool = False) -> Checkpoint | None:
    """Bring the Merkle tree up to the newest entry and sign its head with the audit key.

    The chain head and the tree head are one snapshot (the tree's last entry), so the two
    always agree; the checkpoint is stored in the same transaction as the tree update. Nothing
    is signed over a log whose sequence numbers do not continue the tree (entries removed or
    reordered): that raises ``ValueError``.

    Args:
        nonempty: the caller knows the log has entries (saves a read after an append).

    Returns:
        The checkpoint, or None while the log is empty.
    """
    if not nonempty and rt.audit.head()[0] == 0:
        return None
    # The key first: creating the first audit key appends its own entry, which the
    # checkpoint should cover.
    key = rt.audit_keys.active()
    made: list[Checkpoint] = []

    def seal(th: TreeHead) -> dict[str, Any]:
        cp, fields = _signed(rt, key, th, exported, now)
        made[:] = [cp]
        return fields

    th = rt.audit.tree.advance(rt.audit.read_after, seal=seal)
    if th.size == 0:
        return None
    if th.sealed:
        return made[0]
    return sign_tree_head(rt, th, exported=exported, now=now)  # nothing new: sign again


def _signed(rt: AuditContext, key: SigningKey, th: TreeHead, exported: bool, now: float | None
            ) -> tuple[Checkpoint, dict[str, Any]]:
    now = time.time() if now is None else now
    claims = {"iss": CHECKPOINT_ISSUER, "aud": CHECKPOINT_AUDIENCE, "iat": int(now),
              "log": rt.keys.audit, "seq": th.size, "hash": th.last_hash, "entry": th.last_id,
              "tree_size": th.size, "root": th.root}
    token = jwt.encode(claims, key.private, algorithm="EdDSA", headers={"kid": key.kid})
    cp = Checkpoint(th.size, th.last_hash, th.last_id, now, key.kid, token, exported, th.root)
    return cp, {"seq": th.size, "hash": th.last_hash, "entry": th.last_id, "ts": repr(now),
                "kid": key.kid, "token": token, "exported": "1" if exported else "0",
                "root": th.root}


def sign_tree_head(rt: AuditContext, th: TreeHead, *, exported: bool = False,
                   now: float | None = None) -> Checkpoint:
    """Sign and store a checkpoint for the tree head ``th`` (its last entry is the chain head
    it vouches for; an archive signs the head of the part it takes away)."""
    cp, fields = _signed(rt, rt.audit_keys.active(), th, exported, now)
    rt.redis.xadd(rt.keys.audit_checkpoints, fields)
    return cp


def checkpoints(r: Any, keys: Keys) -> list[Checkpoint]:
    """Every stored checkpoint, oldest first."""
    out = []
    for _sid, f in r.xrange(keys.audit_checkpoints, "-", "+"):
        try:
            out.append(Checkpoint.from_stream(f))
        except (KeyError, ValueError):
            continue
    return out


def checkpoint_if_due(rt: AuditContext, every: float, now: float | None = None) -> Checkpoint | None:
    """Sign a checkpoint when the last one is older than ``every`` seconds and entries were
    appended since (the janitor calls this every few seconds)."""
    now = time.time() if now is None else now
    thin_checkpoints(rt, now)
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
    try:
        cp = sign_checkpoint(rt, now=now)
    except ValueError as exc:
        log.error("audit checkpoint refused: %s (run 'signoff audit verify')", exc)
        return None
    return cp


# Per-decision checkpoints older than a day are thinned to the newest one per hour: a later
# checkpoint covers every entry before it, so nothing is lost for verification, and the stream
# stays small (exported checkpoints are always kept).
THIN_AFTER = 86400.0
THIN_TO = 3600.0


def thin_checkpoints(rt: AuditContext, now: float, window: float = 86400.0) -> int:
    """Drop superseded checkpoints that aged past a day within the last ``window`` seconds of
    ageing (the janitor calls this every few seconds: after the first pass the window holds
    the hourly survivors and the few that just aged).

    Returns:
        How many were dropped.
    """
    r: Any = rt.redis
    hi = int((now - THIN_AFTER) * 1000)
    lo = int((now - THIN_AFTER - window) * 1000)
    if hi <= 0:
        return 0
    rows = r.xrange(rt.keys.audit_checkpoints, max(lo, 0), hi)
    newest: dict[int, str] = {}
    for sid, f in rows:
        if f.get("exported") != "1":
            newest[int(sid.partition("-")[0]) // int(THIN_TO * 1000)] = sid
    keep = set(newest.values())
    drop = [sid for sid, f in rows if f.get("exported") != "1" and sid not in keep]
    if drop:
        r.xdel(rt.keys.audit_checkpoints, *drop)
    return len(drop)


def seal_after(rt: AuditContext) -> Callable[[Entry], None]:
    """The hook the Runtime installs on its AuditLog: a checkpoint right after every decision."""

    # One sealer at a time in a process: concurrent decisions would otherwise each read the
    # same new entries and race on the tree's WATCH, redoing the work on every conflict (the
    # first decisions after a quiet spell stalled for a third of a second on this). A thread
    # that waited finds its entry already covered by the checkpoint the one before it signed.
    lock = threading.Lock()
    covered = [0]  # the highest seq a checkpoint stored by this process covers

    def seal(entry: Entry) -> None:
        if entry.event not in SEAL_EVENTS:
            return
        with lock:
            if entry.seq <= covered[0]:
                return
            try:
                cp = sign_checkpoint(rt, nonempty=True)
            # Whatever goes wrong here (Redis, a broken log, an audit key that will not
            # unseal), the decision already stands and must be answered; the janitor signs
            # later.
            except Exception as exc:
                log.warning("audit checkpoint after %s seq %d failed: %s", entry.event,
                            entry.seq, exc)
                return
            if cp is not None:
                covered[0] = max(covered[0], cp.seq)

    return seal


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
    if int(claims["seq"]) != cp.seq or claims["hash"] != cp.hash or str(
            claims.get("root", "")) != cp.root:
        return "the stored seq/hash/root differ from what was signed"
    if log_name is not None and claims.get("log") not in (None, log_name):
        return f"signed for another log ({claims.get('log')!r})"
    return None

