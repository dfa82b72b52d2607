"""Merkle tree heads and inclusion proofs (RFC 9162), per-decision checkpoints, and keys that
are never taken from the file being verified."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import jwt
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import audit
from signoff.audit import ProblemKind
from signoff.audit.checkpoints import thin_checkpoints
from signoff.audit.merkle import (
    CHUNK,
    ProofBuilder,
    inclusion_path,
    leaf_hash,
    node_hash,
    root_from_path,
    root_of,
    split_point,
)
from signoff.audit.proofs import InclusionProof, ProofOutcome, Prover, check_proof
from signoff.runtime import Runtime
from signoff.signing_keys import public_jwk
from tests.audit.helpers import fill, raw, run_together, set_head
from tests.conftest import TEST_SECRETS, make_settings
from workers.cli.audit import audit as audit_cli


def naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 word for word (leaves are leaf hashes here)."""
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node_hash(naive_mth(leaves[:k]), naive_mth(leaves[k:]))


def naive_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(m, D[n]) word for word."""
    n = len(leaves)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*naive_path(m, leaves[:k]), naive_mth(leaves[k:])]
    return [*naive_path(m - k, leaves[k:]), naive_mth(leaves[:k])]


def hashes(n: int) -> list[bytes]:
    return [leaf_hash(str(i).encode()) for i in range(n)]


def test_tree_heads_and_paths_match_the_rfc_definitions() -> None:
    for n in range(1, 40):
        leaves = hashes(n)
        root = naive_mth(leaves)
        assert root_of(leaves) == root
        for m in range(n):
            path = inclusion_path(m, n, lambda lo, hi, lv=leaves: naive_mth(lv[lo:hi]))
            assert path == naive_path(m, leaves)
            assert root_from_path(m, n, leaves[m], path) == root
            if path:  # any change to the path, the index or the size breaks it
                bad = [bytes(32), *path[1:]]
                assert root_from_path(m, n, leaves[m], bad) != root
            assert n == 1 or root_from_path((m + 1) % n, n, leaves[m], path) != root
    assert root_of([]).hex() == hashlib.sha256(b"").hexdigest()


def test_proofs_from_chunk_roots_match_the_full_tree() -> None:
    n = 2 * CHUNK + 300
    leaves = hashes(n)
    chunk_roots = [root_of(leaves[c * CHUNK:(c + 1) * CHUNK]) for c in range(n // CHUNK)]
    asked: list[int] = []

    def chunk(c: int) -> list[bytes]:
        asked.append(c)
        return leaves[c * CHUNK:(c + 1) * CHUNK]

    for m in (0, 5, CHUNK - 1, CHUNK, 2 * CHUNK + 1, n - 1):
        asked.clear()
        b = ProofBuilder(n, chunk_roots, chunk)
        assert b.path(m) == naive_path(m, leaves)
        assert b.root() == naive_mth(leaves)
        assert len(set(asked)) <= 2  # the leaf's chunk and the partial last one, no more


def test_prove_and_verify_an_entry_offline(rt: Runtime, tmp_path: Path) -> None:
    fill(rt, 40)
    cp = audit.sign_checkpoint(rt)
    assert cp is not None and cp.root and cp.seq == 41
    jwks = rt.audit_keys.jwks()
    proof = Prover(rt).prove("seq:7")
    assert proof.entry.seq == 7 and proof.size == 41
    result = check_proof(proof, jwks, rt.keys.audit)
    assert result.outcome is ProofOutcome.VERIFIED, result.reason
    # Through JSON, as an auditor receives it.
    again = InclusionProof.from_dict(json.loads(json.dumps(proof.to_dict())))
    assert check_proof(again, jwks).ok
    # No pinned keys: the path is checked, the signature is said not to be.
    assert check_proof(proof, None).outcome is ProofOutcome.UNSIGNED
    # Keys of someone else (an attacker re-signing): refused.
    other = {"keys": [public_jwk(Ed25519PrivateKey.generate().public_key(), cp.kid)]}
    assert check_proof(proof, other).outcome is ProofOutcome.INVALID
    # An edited entry, a wrong path, a path for another entry: refused.
    d = proof.to_dict()
    d["entry"]["actor"] = "mallory"
    assert check_proof(InclusionProof.from_dict(d), jwks).outcome is ProofOutcome.INVALID
    d = proof.to_dict()
    d["path"][0] = "00" * 32
    assert not check_proof(InclusionProof.from_dict(d), jwks).ok
    d = Prover(rt).prove("seq:8").to_dict()
    d["path"] = proof.to_dict()["path"]
    assert not check_proof(InclusionProof.from_dict(d), jwks).ok
    # A forged checkpoint root (signed by an attacker's key) with a self-consistent path.
    d = proof.to_dict()
    d["checkpoint"]["root"] = "11" * 32
    assert not check_proof(InclusionProof.from_dict(d), jwks).ok


def cli_env(rt: Runtime, tmp_path: Path, redis: bool = True) -> dict[str, str]:
    env = {"SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
           "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
           "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
           "SIGNOFF_POLICY": str(rt.settings.policy_path),
           "SIGNOFF_DATA_DIR": str(tmp_path / "cli-data"),
           "SIGNOFF_AUDIT_CHECKPOINT_PER_DECISION": "false"}
    env["REDIS_URL"] = rt.settings.redis_url if redis else ""
    return env


def run(rt: Runtime, tmp_path: Path, *args: str, redis: bool = True) -> tuple[int, str]:
    result = CliRunner().invoke(audit_cli, list(args), env=cli_env(rt, tmp_path, redis))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_prove_and_verify_proof_commands(rt: Runtime, tmp_path: Path) -> None:
    entries = fill(rt, 30)
    keys = tmp_path / "keys.json"
    code, out = run(rt, tmp_path, "prove", entries[11].stream_id, "--out",
                    str(tmp_path / "p.json"))
    assert code == 0, out
    keys.write_text(json.dumps(rt.audit_keys.jwks()))
    code, out = run(rt, tmp_path, "verify-proof", str(tmp_path / "p.json"), "--keys", str(keys),
                    redis=False)
    assert code == 0 and out.startswith("VERIFIED: entry seq 12"), out
    code, out = run(rt, tmp_path, "verify-proof", str(tmp_path / "p.json"), redis=False)
    assert code == 3 and "SIGNATURES NOT CHECKED" in out
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["entry"]["details"]["index"] = 99
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    code, out = run(rt, tmp_path, "verify-proof", str(tmp_path / "bad.json"), "--keys", str(keys))
    assert code == 1 and out.startswith("INVALID")
    code, out = run(rt, tmp_path, "prove", "seq:999")
    assert code == 1 and "no audit entry seq 999" in out


def test_verify_never_trusts_keys_inside_the_export(rt: Runtime, tmp_path: Path) -> None:
    """An attacker rewrites the exported history, re-signs the checkpoint with a key of their
    own and ships that key inside the checkpoint file and as audit-keys.json."""
    fill(rt, 12)
    code, out = run(rt, tmp_path, "export", "--out", str(tmp_path / "exp"))
    assert code == 0, out
    entries = next((tmp_path / "exp").glob("audit-*Z.jsonl"))
    cp_file = next((tmp_path / "exp").glob("*.checkpoint.json"))
    lines = [json.loads(x) for x in entries.read_text().splitlines()]
    prev = audit.GENESIS
    for d in lines:
        if d["seq"] == 3:
            d["actor"] = "mallory"
        d["prev"] = prev
        d["hash"] = audit.Entry.from_dict(d).expected_hash()
        prev = d["hash"]
    entries.write_text("".join(json.dumps(d) + "\n" for d in lines))
    mine = Ed25519PrivateKey.generate()
    doc = json.loads(cp_file.read_text())
    cp = doc["checkpoint"]
    claims = jwt.decode(cp["token"], options={"verify_signature": False})
    claims["hash"] = prev
    cp["hash"] = prev
    cp["root"] = claims["root"] = ""
    cp["token"] = jwt.encode(claims, mine, algorithm="EdDSA", headers={"kid": cp["kid"]})
    doc["keys"] = {"keys": [public_jwk(mine.public_key(), cp["kid"])]}
    cp_file.write_text(json.dumps(doc))
    (tmp_path / "exp" / "audit-keys.json").write_text(json.dumps(doc["keys"]))
    args = ["verify", "--file", str(entries), "--checkpoint", str(cp_file)]
    # Offline with no pinned keys: never "OK" on the strength of the file's own keys.
    code, out = run(rt, tmp_path, *args, redis=False)
    assert code == 3 and "SIGNATURES NOT CHECKED" in out and "keys inside" in out
    assert "signatures NOT checked" in out
    # With Signoff's keys (from its Redis, or pinned in a file): the forgery is named.
    code, out = run(rt, tmp_path, *args)
    assert code == 1 and "bad_checkpoint" in out, out
    pinned = tmp_path / "pinned.json"
    pinned.write_text(json.dumps(rt.audit_keys.jwks()))
    code, out = run(rt, tmp_path, *args, "--keys", str(pinned), redis=False)
    assert code == 1 and "signature does not verify" in out


@pytest.fixture
def sealing_rt(redis_url: str, tmp_path: Path) -> Runtime:
    rt = Runtime(make_settings(redis_url, tmp_path / "d2", audit_checkpoint_per_decision=True))
    rt.redis.flushdb()
    return rt


def test_a_checkpoint_follows_every_decision_so_cutting_the_tail_is_found(
        sealing_rt: Runtime) -> None:
    rt = sealing_rt
    rt.audit.append(audit.Event.REQUESTED, "r1", "agent:bot", action="db.export")
    rt.audit.append(audit.Event.VOTE, "r1", "alice@example.com", choice="approve")
    decided = rt.audit.append(audit.Event.DECIDED, "r1", "alice@example.com", status="approved")
    cps = audit.checkpoints(rt.redis, rt.keys)
    assert cps and cps[-1].seq >= decided.seq and cps[-1].root
    assert audit.verify_store(rt).ok
    # An attacker with Redis write access removes the decision and fixes the head.
    rows = raw(rt)
    cut = [sid for sid, f in rows if int(f["seq"]) >= decided.seq]
    rt.redis.xdel(rt.keys.audit, *cut)
    set_head(rt, raw(rt))
    report = audit.verify_store(rt)
    assert report.first_problem is not None
    assert report.first_problem.kind is ProblemKind.TRUNCATED
    assert report.first_problem.seq == decided.seq
    rt.close()


def test_per_decision_checkpoints_are_thinned_after_a_day(sealing_rt: Runtime) -> None:
    rt = sealing_rt
    day = 86400.0
    base = time.time() - 3 * day
    for i in range(12):  # twelve checkpoints, 20 minutes apart, two and a half days ago
        rt.audit.append(audit.Event.VOTE, f"t{i}", "alice@example.com", choice="approve")
        audit.sign_checkpoint(rt, now=base + i * 1200)
    cps = rt.redis.xrange(rt.keys.audit_checkpoints)
    # Stream ids carry the time of the XADD, not of `now`; rewrite them to the past.
    rt.redis.delete(rt.keys.audit_checkpoints)
    for i, (_sid, f) in enumerate(cps):
        rt.redis.xadd(rt.keys.audit_checkpoints, f, id=f"{int((base + i * 1200) * 1000)}-0")
    n = thin_checkpoints(rt, time.time(), window=3 * day)
    left = audit.checkpoints(rt.redis, rt.keys)
    assert n == 12 - len(left) and 3 <= len(left) <= 5  # the newest per hour
    assert left[-1].seq == max(int(f["seq"]) for _s, f in cps)
    assert audit.verify_store(rt).ok
    rt.close()


def test_concurrent_decisions_share_checkpoints_and_each_is_covered_when_its_append_returns(
        sealing_rt: Runtime) -> None:
    """Sealing is one thread at a time per process: a decision that waited finds itself
    covered by the checkpoint the one before signed, so a burst of decisions signs fewer
    checkpoints than decisions, and none returns before a checkpoint covers it."""
    import threading

    rt = sealing_rt
    for i in range(300):  # a quiet spell's entries (nothing that seals), not yet in the tree
        rt.audit.append(audit.Event.REQUESTED, f"q{i}", "agent:bot", action="db.export")
    before = len(audit.checkpoints(rt.redis, rt.keys))
    uncovered: list[int] = []
    start = threading.Barrier(8)

    def decide(i: int) -> None:
        start.wait(10)
        entry = rt.audit.append(audit.Event.DECIDED, f"c{i}", "alice@example.com",
                                status="approved")
        newest = audit.checkpoints(rt.redis, rt.keys)[-1]
        if newest.seq < entry.seq:
            uncovered.append(entry.seq)

    run_together(decide, 8)
    assert not uncovered
    assert 1 <= len(audit.checkpoints(rt.redis, rt.keys)) - before < 8
    assert audit.verify_store(rt).ok
    rt.close()


def test_the_janitor_keeps_the_tree_up_with_the_log(sealing_rt: Runtime) -> None:
    """Between checkpoints the janitor brings the Merkle tree up to the log's head (nothing
    signed), so the next decision's checkpoint adds only the entries since."""
    from workers.janitor import Janitor

    rt = sealing_rt
    fill(rt, 50)
    before = len(audit.checkpoints(rt.redis, rt.keys))
    Janitor(rt).tick()
    assert rt.audit.tree.head().size == rt.audit.head()[0]
    assert len(audit.checkpoints(rt.redis, rt.keys)) <= before + 1  # the periodic one at most
    assert audit.verify_store(rt).ok
    rt.close()
