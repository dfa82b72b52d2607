"""Audit at scale: one million entries, the index against a scan, verification and proofs.

    .venv/bin/python bench/audit.py [--n 1000000] [--verify-n 200000]

On a private redis-server it writes a year of audit history (requests of five entries each:
requested with one of 20,000 resources, card posted, vote, decided, grant issued; a few hot
resources get most requests), hashed and chained exactly as Signoff chains it, then measures
in the same run:

- "who approved what on resource X in the last 90 days": the index (one ZRANGE BYSCORE) against
  the scan it replaces (read the 90 days of entries, join each vote to its request's resource),
  for a hot and a typical resource;
- building the index and the Merkle tree from the whole log (entries/s);
- verification over ``--verify-n`` entries with the Merkle tree heads against the chain-only
  verification it extends (entries/s and ratio);
- an inclusion proof for an entry near the end: building it and checking it;
- the cost of the checkpoint signed after every decision: a vote and a decision appended with
  and without it (on a fresh log in the same server).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Run as a script, this folder would shadow the top-level packages (bench/policy.py).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signoff.audit import (  # noqa: E402
    GENESIS,
    Entry,
    entry_hash,
    sign_checkpoint,
    verify_chain,
)
from signoff.audit.proofs import Prover, check_proof  # noqa: E402
from signoff.redis_conn import EmbeddedRedis, connect  # noqa: E402
from signoff.runtime import Runtime  # noqa: E402
from signoff.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
YEAR = 365 * 86400
RESOURCES = 20_000
PEOPLE = [f"person{i}@example.com" for i in range(200)]
ACTIONS = ["db.export", "iam.grant", "infra.apply", "db.delete", "secrets.read"]


def resource_of(rng: random.Random) -> str:
    # A few hot resources (prod databases) and a long tail.
    if rng.random() < 0.2:
        return f"db/hot-{rng.randrange(5)}"
    return f"res/{rng.randrange(RESOURCES)}"


def load(rt: Runtime, n: int, now: float) -> None:
    """Write ``n`` chained entries spread over the last year (pipelined XADDs)."""
    r: Any = rt.redis
    rng = random.Random(7)
    prev, seq, last_ms = GENESIS, 0, 0
    pipe = r.pipeline(transaction=False)
    start = now - YEAR
    step = YEAR / n
    rid = 0
    while seq < n:
        rid += 1
        resource = resource_of(rng)
        action = rng.choice(ACTIONS)
        approver = rng.choice(PEOPLE)
        approve = rng.random() < 0.8
        steps: list[tuple[str, str, dict[str, Any]]] = [
            ("requested", "agent:bot", {"action": action, "resource": resource,
                                        "on_behalf_of": "", "payload_sha256": "0" * 64,
                                        "source": "stream"}),
            ("card_posted", "signoff", {"channel": "slack"}),
            ("vote", approver, {"choice": "approve" if approve else "deny",
                                "channel": "slack", "approvals": int(approve),
                                "denials": int(not approve)}),
            ("decided", approver, {"status": "approved" if approve else "denied"}),
            ("grant_issued", "signoff", {"jti": f"{rid:032x}"}),
        ]
        for event, actor, details in steps:
            if seq >= n:
                break
            seq += 1
            ts = round(start + seq * step, 6)
            body = {"seq": seq, "ts": ts, "event": event, "request_id": f"r{rid}",
                    "actor": actor, "details": details}
            digest = entry_hash(prev, body)
            ms = max(int(ts * 1000), last_ms + 1)
            last_ms = ms
            pipe.xadd(rt.keys.audit, {"seq": seq, "ts": repr(ts), "event": event,
                                      "request_id": f"r{rid}", "actor": actor,
                                      "details": json.dumps(details, sort_keys=True),
                                      "prev": prev, "hash": digest}, id=f"{ms}-0")
            prev = digest
            if seq % 5000 == 0:
                pipe.execute()
    pipe.hset(rt.keys.audit_head, mapping={"seq": seq, "hash": prev, "id": f"{last_ms}-0"})
    pipe.execute()


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def scan_approvals(rt: Runtime, resource: str, since: float) -> list[tuple[str, str, str]]:
    """The baseline: read every entry of the period and join votes to their requests."""
    facts: dict[str, tuple[str, str]] = {}
    out = []
    for e in rt.audit.iter_entries(str(int(since * 1000)), "+", batch=5000):
        if e.event == "requested":
            facts[e.request_id] = (str(e.details.get("resource", "")),
                                   str(e.details.get("action", "")))
        elif e.event == "vote" and e.details.get("choice") == "approve":
            res, action = facts.get(e.request_id, ("", ""))
            if res == resource:
                out.append((e.actor, action, e.request_id))
    return out


def seal_cost(url: str, settings: Settings, n: int = 300) -> None:
    """Vote + decided appends with and without the per-decision checkpoint."""
    per_pair = {}
    for per in (False, True):
        rt = Runtime(settings.model_copy(update={"key_prefix": f"seal{int(per)}",
                                                 "audit_checkpoint_per_decision": per}))
        rt.audit.append("requested", "warm", "agent:bot")
        rt.audit.append("decided", "warm", "alice@example.com", status="approved")
        t, _ = timed(lambda r=rt: [(r.audit.append("vote", f"r{i}", "alice@example.com",
                                                    choice="approve"),
                                    r.audit.append("decided", f"r{i}", "alice@example.com",
                                                   status="approved")) for i in range(n)])
        per_pair[per] = t / n * 1000
        rt.close()
    print(f"{'vote + decided appends, checkpoint after the decision':56} "
          f"{per_pair[True]:7.2f} ms (without: {per_pair[False]:.2f} ms, "
          f"+{per_pair[True] - per_pair[False]:.2f} ms)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--verify-n", type=int, default=200_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start()
        try:
            settings = Settings(_env_file=None, redis_url=url,  # type: ignore[call-arg]
                                data_keys="k1:" + "B" * 43, hmac_secret="x" * 32,
                                masking_key="y" * 32, audit_checkpoint_per_decision=False,
                                policy_path=ROOT / "examples" / "policy.yaml")
            rt = Runtime(settings)
            now = time.time()
            secs, _ = timed(lambda: load(rt, args.n, now))
            print(f"{'load (chained entries, pipelined)':56} {args.n / secs:10.0f}/s  "
                  f"({args.n:,} entries, {secs:.1f} s)")
            mem = int(connect(url).info("memory")["used_memory"])
            print(f"{'Redis memory, log only':56} {mem / 1e6:10.0f} MB")

            secs, _ = timed(lambda: rt.audit.index.update(rt.audit.read_after, batch=5000))
            print(f"{'build the index (whole log)':56} {args.n / secs:10.0f}/s")
            mem2 = int(connect(url).info("memory")["used_memory"])
            print(f"{'Redis memory added by the index':56} {(mem2 - mem) / 1e6:10.0f} MB")
            secs, head = timed(lambda: rt.audit.tree.advance(rt.audit.read_after, batch=5000))
            print(f"{'build the Merkle tree (whole log)':56} {args.n / secs:10.0f}/s")
            sign_checkpoint(rt)

            since = now - 90 * 86400
            for resource in ("db/hot-1", "res/4242"):
                lat = []
                rows: list[Any] = []
                for _ in range(20):
                    t, rows = timed(lambda r=resource: rt.audit.index.approvals(r, since))
                    lat.append(t)
                idx = statistics.median(lat)
                scan_t, scanned = timed(lambda r=resource: scan_approvals(rt, r, since))
                same = sorted((r.actor, r.action, r.request_id) for r in rows) == sorted(scanned)
                print(f"who approved what on {resource:10} in 90 days: {len(rows):5} approvals; "
                      f"index {idx * 1000:8.2f} ms (median of 20), scan {scan_t * 1000:9.0f} ms "
                      f"-> {scan_t / idx:8.0f}x faster; same answer: {same}")

            vn = min(args.verify_n, args.n)
            entries: list[Entry] = rt.audit.entries("-", "+", count=vn)
            base_t, base = timed(lambda: verify_chain(iter(entries), check_tree=False))
            tree_t, with_tree = timed(lambda: verify_chain(iter(entries)))
            assert base.ok and with_tree.ok
            print(f"{'verify, chain only (the baseline)':56} {vn / base_t:10.0f}/s")
            print(f"{'verify, chain + Merkle tree':56} {vn / tree_t:10.0f}/s  "
                  f"(ratio {base_t / tree_t:.2f}x)")
            read_t, _ = timed(lambda: rt.audit.entries("-", "+", count=vn))
            print(f"{'read entries from Redis (for scale)':56} {vn / read_t:10.0f}/s")

            prover = Prover(rt)
            target = f"seq:{args.n - 1234}"
            prove_t, proof = timed(lambda: prover.prove(target))
            check_t, result = timed(lambda: check_proof(proof, rt.audit_keys.jwks()))
            assert result.ok, result.reason
            print(f"{'inclusion proof near the end: build / check':56} "
                  f"{prove_t * 1000:7.1f} ms / {check_t * 1000:.2f} ms "
                  f"({len(proof.path)} hashes)")
            print(f"{'(tree head size / root)':56} {head.size} / {head.root[:16]}…")
            rt.close()
            seal_cost(url, settings)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
