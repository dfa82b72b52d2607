"""Audit chain throughput: append (Lua compare-and-set) against the WATCH/MULTI append it
replaced, measured in the same run on the same private Redis; then verification and grant
use rates.

    .venv/bin/python bench/audit_chain.py [--n 5000]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from pathlib import Path

import redis

from signoff.audit import GENESIS, AuditLog, entry_hash, verify_store
from signoff.keys import Keys
from signoff.redis_conn import EmbeddedRedis, connect
from signoff.runtime import Runtime
from signoff.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def watch_multi_append(r: redis.Redis, keys: Keys, i: int) -> None:
    """The previous append: WATCH the head, read it, MULTI/EXEC, retry on conflict."""
    while True:
        with r.pipeline() as pipe:
            try:
                pipe.watch(keys.audit_head)
                head = pipe.hgetall(keys.audit_head)
                seq = int(head.get("seq", "0")) + 1
                prev = head.get("hash", GENESIS)
                ts = round(time.time(), 6)
                body = {"seq": seq, "ts": ts, "event": "vote", "request_id": f"r{i}",
                        "actor": "alice", "details": {"i": i}}
                digest = entry_hash(prev, body)
                pipe.multi()
                pipe.xadd(keys.audit, {"seq": seq, "ts": repr(ts), "event": "vote",
                                       "request_id": f"r{i}", "actor": "alice",
                                       "details": json.dumps({"i": i}), "prev": prev,
                                       "hash": digest})
                pipe.hset(keys.audit_head, mapping={"seq": seq, "hash": digest})
                pipe.execute()
                r.rpush(keys.audit_for(f"r{i}"), "x")
                return
            except redis.WatchError:
                continue


def rate(label: str, n: int, fn, threads: int = 1) -> float:  # type: ignore[no-untyped-def]
    per = n // threads

    def work(t: int) -> None:
        for i in range(per):
            fn(t * per + i)

    start = time.perf_counter()
    ts = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start
    print(f"{label:52} {per * threads / elapsed:9.0f}/s")
    return per * threads / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        url = server.start()
        try:
            r = connect(url)
            results = {}
            for threads in (1, 4):
                r.flushall()
                old_keys = Keys("old")
                results[("old", threads)] = rate(
                    f"WATCH/MULTI append, {threads} thread(s)", args.n,
                    lambda i, k=old_keys: watch_multi_append(r, k, i), threads)
                new_keys = Keys("new")
                logs = [AuditLog(r, new_keys) for _ in range(threads)]
                results[("new", threads)] = rate(
                    f"Lua CAS append, {threads} thread(s)", args.n,
                    lambda i, ls=logs, t=threads: ls[i % t].append(
                        "vote", f"r{i}", "alice", i=i), threads)
                print(f"{'  ratio (CAS / WATCH)':52} "
                      f"{results[('new', threads)] / results[('old', threads)]:9.2f}x")
            settings = Settings(_env_file=None, redis_url=url, key_prefix="new",  # type: ignore[call-arg]
                                data_keys="k1:" + "B" * 43, hmac_secret="x" * 32, masking_key="y" * 32,
                                policy_path=ROOT / "examples" / "policy.yaml")
            rt = Runtime(settings)
            count = rt.audit.count()
            start = time.perf_counter()
            report = verify_store(rt)
            elapsed = time.perf_counter() - start
            assert report.ok, report.to_dict()
            print(f"{'verify (live stream, batches of 1000)':52} {count / elapsed:9.0f}/s")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
