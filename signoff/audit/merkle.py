"""An RFC 9162 (Certificate Transparency v2) Merkle tree over the audit entries.

Leaf ``i`` is the entry with ``seq = i + 1``; its leaf data is the entry's chain hash as ASCII
hex (:func:`leaf_data`), which already commits to the entry's content and to its predecessor,
so a verifier recomputes that hash from the entry and then the leaf. Hashes follow RFC 9162 section 2.1.1:
``leaf = SHA-256(0x00 || data)``, ``node = SHA-256(0x01 || left || right)``, and a tree of
``n`` leaves splits at the largest power of two smaller than ``n``. A checkpoint signs the
tree head (size and root) next to the chain head, so one entry can be shown with an inclusion
proof (RFC 9162 section 2.1.3) instead of the whole log.

The algorithms are written here (about sixty lines) because no maintained PyPI package
implements RFC 9162's tree and proof verification without pulling in a transparency-log
client; they are checked against a naive recursive definition in the tests.

:class:`MerkleState` keeps the tree current in Redis without rereading the log: the right-edge
frontier (one root per perfect subtree, O(log n)) and the root of every complete 1,024-leaf
chunk, so a tree head costs the new entries only, and a proof needs at most two chunks' entries
plus the chunk roots.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import redis

from signoff.audit.entry import Entry
from signoff.keys import Keys

CHUNK = 1024  # leaves per cached subtree root (a power of two)
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()  # RFC 9162: MTH({}) = HASH()


def leaf_data(entry: Entry) -> bytes:
    """The bytes a leaf commits to: the entry's chain hash, SHA-256(prev || "\\n" || canonical
    body), as 64 ASCII hex digits (whoever checks a leaf checks that hash first)."""
    return entry.hash.encode()  # utf-8: a tampered hash field must not crash a check


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf hashes (RFC 9162 2.1.1), iteratively through a frontier."""
    if not leaves:
        return bytes.fromhex(EMPTY_ROOT)
    f = Frontier()
    for h in leaves:
        f.push(h)
    return f.root()


class Frontier:
    """The right edge of a growing tree: (size, root) of each perfect subtree, largest first.

    Pushing a leaf merges equal-sized neighbours; the root of the whole tree folds the
    subtrees from the smallest (RFC 9162 puts the perfect left part on the left).
    """

    def __init__(self, size: int = 0, nodes: Iterable[tuple[int, bytes]] = ()) -> None:
        self.size = size
        self.nodes: list[tuple[int, bytes]] = list(nodes)

    def push(self, h: bytes) -> tuple[int, bytes] | None:
        """Add a leaf hash; returns (start, root) of a CHUNK-sized subtree it completed."""
        self.nodes.append((1, h))
        self.size += 1
        completed = None
        while len(self.nodes) >= 2 and self.nodes[-1][0] == self.nodes[-2][0]:
            (s, left), (_, right) = self.nodes[-2], self.nodes[-1]
            self.nodes[-2:] = [(2 * s, node_hash(left, right))]
            if 2 * s == CHUNK:
                completed = (self.size - CHUNK, self.nodes[-1][1])
        return completed

    def root(self) -> bytes:
        if not self.nodes:
            return bytes.fromhex(EMPTY_ROOT)
        h = self.nodes[-1][1]
        for _s, left in reversed(self.nodes[:-1]):
            h = node_hash(left, h)
        return h

    def to_json(self) -> str:
        return json.dumps([[s, h.hex()] for s, h in self.nodes])

    @classmethod
    def from_json(cls, size: int, raw: str) -> Frontier:
        return cls(size, [(int(s), bytes.fromhex(h)) for s, h in json.loads(raw or "[]")])


def inclusion_path(index: int, size: int, subtree: Callable[[int, int], bytes]) -> list[bytes]:
    """PATH(index, D[0:size]) of RFC 9162 2.1.3.1, asking ``subtree(lo, hi)`` for MTH(D[lo:hi])."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    while hi - lo > 1:
        k = split_point(hi - lo)
        if m < k:
            path.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree(lo, lo + k))
            lo, m = lo + k, m - k
    path.reverse()  # RFC order: from the leaf up
    return path


def root_from_path(index: int, size: int, leaf: bytes, path: Sequence[bytes]) -> bytes | None:
    """The root an inclusion proof leads to (RFC 9162 2.1.3.2), or None when malformed."""
    if not 0 <= index < size:
        return None
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


@dataclass(frozen=True)
class TreeHead:
    """The tree over the first ``size`` entries; ``last_id``/``last_hash``: entry ``size``."""

    size: int
    root: str  # hex
    last_id: str = ""
    last_hash: str = ""
    sealed: bool = False  # the caller's checkpoint was stored in the same transaction


class MerkleState:
    """The tree over the live log, kept current in Redis (one owner of its keys).

    ``advance`` reads only the entries appended since the last call; concurrent callers are
    serialised by WATCH on the state hash, so the frontier and chunk list never disagree.
    """

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.r: Any = client
        self.keys = keys

    @staticmethod
    def _load(raw: dict[str, str]) -> tuple[Frontier, str, str]:
        return (Frontier.from_json(int(raw.get("size", "0")), raw.get("frontier", "[]")),
                raw.get("last_id", ""), raw.get("last_hash", ""))

    def advance(self, read_after: Callable[[str, int], list[Entry]], batch: int = 1000,
                seal: Callable[[TreeHead], dict[str, Any]] | None = None) -> TreeHead:
        """Add every entry after the recorded last one; returns the tree head it reached.

        Args:
            read_after: reads up to ``count`` entries after a stream id.
            batch: entries per transaction.
            seal: makes the checkpoint for the final tree head (its stream fields), stored in
                the same transaction as the tree update (one round trip fewer after every
                decision); the returned head says ``sealed`` when it was.

        Raises:
            ValueError: the log's sequence numbers do not continue the tree (entries were
                removed or reordered): nothing is signed over a broken log.
        """
        while True:
            with self.r.pipeline() as pipe:
                try:
                    pipe.watch(self.keys.audit_merkle)
                    frontier, last_id, last_hash = self._load(
                        pipe.hgetall(self.keys.audit_merkle))
                    size0 = frontier.size
                    new_chunks: list[str] = []
                    rows = read_after(last_id, batch)
                    for e in rows:
                        if e.seq != frontier.size + 1 or e.error:
                            raise ValueError(f"audit entry seq {e.seq} ({e.stream_id}) does not "
                                             f"follow seq {frontier.size}")
                        done = frontier.push(leaf_hash(leaf_data(e)))
                        last_id, last_hash = e.stream_id, e.hash
                        if done is not None:
                            new_chunks.append(f"{done[1].hex()} {e.stream_id}")
                    th = TreeHead(frontier.size, frontier.root().hex(), last_id, last_hash)
                    if frontier.size == size0:
                        pipe.unwatch()
                        return th
                    final = len(rows) < batch
                    fields = seal(th) if seal is not None and final else None
                    pipe.multi()
                    pipe.hset(self.keys.audit_merkle, mapping={
                        "size": frontier.size, "last_id": last_id, "last_hash": last_hash,
                        "frontier": frontier.to_json()})
                    if new_chunks:
                        pipe.rpush(self.keys.audit_merkle_chunks, *new_chunks)
                    if fields is not None:
                        pipe.xadd(self.keys.audit_checkpoints, fields)
                    pipe.execute()
                except redis.WatchError:
                    continue
            if final:
                return replace(th, sealed=fields is not None)

    def head(self) -> TreeHead:
        frontier, last_id, last_hash = self._load(self.r.hgetall(self.keys.audit_merkle))
        return TreeHead(frontier.size, frontier.root().hex(), last_id, last_hash)

    def chunks(self) -> list[tuple[bytes, str]]:
        """(root, last stream id) of every complete chunk, in order."""
        out = []
        for item in self.r.lrange(self.keys.audit_merkle_chunks, 0, -1):
            h, _, sid = item.partition(" ")
            out.append((bytes.fromhex(h), sid))
        return out


class ProofBuilder:
    """Inclusion proofs for a tree of ``size`` leaves from chunk roots plus a few entries.

    Args:
        chunk_roots: roots of complete CHUNK-leaf subtrees, in order.
        leaves_of_chunk: leaf hashes of chunk ``c`` (complete, or the partial last one).
    """

    def __init__(self, size: int, chunk_roots: Sequence[bytes],
                 leaves_of_chunk: Callable[[int], list[bytes]]) -> None:
        self.size = size
        self.chunk_roots = chunk_roots
        self._leaves_of_chunk = leaves_of_chunk
        self._cache: dict[int, list[bytes]] = {}

    def _leaves(self, lo: int, hi: int) -> list[bytes]:
        out: list[bytes] = []
        c = lo // CHUNK
        while c * CHUNK < hi:
            if c not in self._cache:
                self._cache[c] = self._leaves_of_chunk(c)
            base = c * CHUNK
            out.extend(self._cache[c][max(lo - base, 0):hi - base])
            c += 1
        if len(out) != hi - lo:
            raise ValueError(f"the log has fewer entries than the tree ({lo}..{hi})")
        return out

    def subtree(self, lo: int, hi: int) -> bytes:
        n = hi - lo
        if n >= CHUNK and n & (n - 1) == 0 and lo % CHUNK == 0 and hi // CHUNK <= len(
                self.chunk_roots):
            return root_of(self.chunk_roots[lo // CHUNK:hi // CHUNK])
        if n > CHUNK:
            k = split_point(n)
            return node_hash(self.subtree(lo, lo + k), self.subtree(lo + k, hi))
        return root_of(self._leaves(lo, hi))

    def path(self, index: int) -> list[bytes]:
        return inclusion_path(index, self.size, self.subtree)

    def root(self) -> bytes:
        return self.subtree(0, self.size) if self.size else bytes.fromhex(EMPTY_ROOT)
