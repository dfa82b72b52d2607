"""Lifecycle benchmark: XADD → pending throughput and API decision → agent BLPOP latency.

Run: ``.venv/bin/python bench/lifecycle.py`` (options: ``--requests``, ``--workers``,
``--rate``, ``--decisions``). Everything runs here on a private Redis: the baseline is an rq
no-op job on the same Redis with the same worker class and serializer, measured in the same
run, so the ratios hold on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import redis
import requests
from rq import Queue
from rq.serializers import JSONSerializer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._stack import BenchStack, summary, wait_until
from signoff.keys import Keys
from signoff.runtime import Runtime
from signoff.settings import Settings
from signoff.tokens import TokenKind

POLICY = """
version: 1
directory:
  people:
    - {email: alice@example.com, groups: [dba]}
    - {email: bob@example.com, groups: [dba]}
    - {email: erin@example.com, groups: [admins]}
    - {email: frank@example.com}
  groups: {dba: {description: DBAs}, admins: {description: admins}}
  agents:
    - {id: "agent:bench", owner: erin@example.com}
rules:
  - id: prod-data-export
    match: {action: "db.export*", environment: prod}
    require:
      approvers: 2 of dba
      timeout: 1h
      channels: [web]
"""

WORKER_CODE = """
import sys, redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
r = redis.Redis.from_url(sys.argv[1])
q = Queue("bench", connection=r, serializer=JSONSerializer)
SimpleWorker([q], connection=r, serializer=JSONSerializer).work(burst=sys.argv[2] == "burst", logging_level="WARNING")
"""


def body(i: int, run: str) -> str:
    return json.dumps({
        "id": f"{run}-{i}", "action": "db.export", "resource": "warehouse.customers",
        "params": {"rows": 1000 + i, "notify": f"user{i}@example.org",
                   "filter": "region = 'EU' and signup > '2024-01-01'"},
        "requester": "agent:bench", "on_behalf_of": "frank@example.com",
        "reason": "Quarterly revenue report for the finance team", "context": {"environment": "prod"},
    })


def rq_baseline(stack: BenchStack, n: int, rate: float, samples: int) -> dict[str, float]:
    """No-op jobs: throughput of one worker, then enqueue → result latency at a steady rate."""
    r = redis.Redis.from_url(stack.redis.url)
    q = Queue("bench", connection=r, serializer=JSONSerializer)
    for i in range(n):
        q.enqueue("bench._stack.noop", i)
    t0 = time.perf_counter()
    stack.spawn("bench._run", stack.redis.url, "burst").wait()
    throughput = n / (time.perf_counter() - t0)
    worker = stack.spawn("bench._run", stack.redis.url, "forever")
    time.sleep(1.5)
    lat = []
    for i in range(samples):
        start = time.perf_counter()
        job = q.enqueue("bench._stack.noop", i)
        while job.get_status(refresh=True).value != "finished":
            time.sleep(0.0005)
        lat.append((time.perf_counter() - start) * 1000)
        time.sleep(max(1 / rate - lat[-1] / 1000, 0))
    worker.terminate()
    worker.wait(10)
    return {"throughput": throughput, **summary(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rate", type=float, default=10.0, help="decisions per second")
    ap.add_argument("--decisions", type=int, default=100)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the processes")
    args = ap.parse_args()

    stack = BenchStack(POLICY, env=dict(e.split("=", 1) for e in args.env))
    (Path(__file__).resolve().parent / "_run.py").write_text(WORKER_CODE)
    try:
        url = stack.start_redis()
        base = rq_baseline(stack, args.requests, args.rate, args.decisions)
        r = redis.Redis.from_url(url, decode_responses=True)
        r.flushall()
        stack.start_signoff(workers=args.workers)
        keys = Keys()
        settings = Settings(_env_file=None, redis_url=url, policy_path=stack.policy,  # type: ignore[call-arg]
                            hmac_secret="x" * 32, data_keys="k1:" + "B" * 43, masking_key="y" * 32)
        rt = Runtime(settings)
        alice = rt.tokens.create(TokenKind.PERSON, "alice@example.com")
        bob = rt.tokens.create(TokenKind.PERSON, "bob@example.com")

        # Warm-up (imports, spaCy, policy, first grant key) outside the timed part.
        r.xadd(keys.requests, {"body": body(0, "warm")})
        wait_until(lambda: r.zcard(keys.pending) == 1, 120, "warm-up request")
        for tok in (alice, bob):
            requests.post(f"{stack.url}/api/v1/requests/warm-0/decision",
                          json={"decision": "approve"},
                          headers={"Authorization": f"Bearer {tok}"}, timeout=10)
        wait_until(lambda: r.llen(keys.reply("warm-0")), 60, "warm-up decision")

        pipe = r.pipeline(transaction=False)
        for i in range(args.requests):
            pipe.xadd(keys.requests, {"body": body(i, "t")})
        t0 = time.perf_counter()
        pipe.execute()
        wait_until(lambda: r.zcard(keys.pending) >= args.requests, 600, "all pending")
        elapsed = time.perf_counter() - t0
        rps = args.requests / elapsed

        http = requests.Session()
        lat: list[float] = []
        for i in range(args.decisions):
            rid = f"t-{i}"
            http.post(f"{stack.url}/api/v1/requests/{rid}/decision", json={"decision": "approve"},
                      headers={"Authorization": f"Bearer {alice}"}, timeout=10)
            got: list[float] = []
            reply_key = keys.reply(rid)

            def agent(key: str = reply_key, out: list[float] = got) -> None:
                redis.Redis.from_url(url).blpop([key], timeout=30)
                out.append(time.perf_counter())

            th = threading.Thread(target=agent)
            th.start()
            start = time.perf_counter()
            resp = http.post(f"{stack.url}/api/v1/requests/{rid}/decision",
                             json={"decision": "approve"},
                             headers={"Authorization": f"Bearer {bob}"}, timeout=10)
            assert resp.ok, resp.text
            th.join(30)
            lat.append((got[0] - start) * 1000)
            time.sleep(max(1 / args.rate - lat[-1] / 1000, 0))
        dec = summary(lat)
        slow = [(i, round(v)) for i, v in enumerate(lat) if v > 10 * dec["p50"]]
        if slow:
            print(f"samples over 10x p50 (index, ms): {slow}")
        print(f"Signoff lifecycle benchmark ({args.workers} worker process(es), "
              f"{args.requests} requests, {args.decisions} decisions at {args.rate}/s)")
        print(f"{'measure':44} {'signoff':>10} {'baseline':>10} {'ratio':>8}")
        print(f"{'XADD -> pending, requests/s':44} {rps:10.1f} {base['throughput']:10.1f} "
              f"{rps / base['throughput']:8.2f}   (baseline: rq no-op jobs/s)")
        for p in ("p50", "p99", "max"):
            print(f"{'decision -> agent BLPOP, ms ' + p:44} {dec[p]:10.1f} {base[p]:10.1f} "
                  f"{dec[p] / base[p]:8.2f}   (baseline: rq no-op enqueue -> finished)")
        rt.close()
    finally:
        stack.stop()
        (Path(__file__).resolve().parent / "_run.py").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
