"""Intake with per-agent streams: requests/s ingested through registered agents' own streams
(1, 10 and 100 agents) against the trusted shared stream, measured in the same run.

Run: ``.venv/bin/python bench/agents.py`` (``--quick`` for a smoke run).

Each scenario writes ``--requests`` request bodies (spread evenly over the agents' streams, or
all on ``signoff:requests``) to a private redis-server, then times the real intake consumer
(:class:`workers.intake.IntakeConsumer`: one XREADGROUP over every stream, validation,
encryption, the store's Lua scripts, audit, one prepare job per read) until every request is
stored. The ratio against the trusted stream is what the per-agent namespaces cost the
intake. A last figure: a poisoned agent stream (half its entries malformed) next to clean
ones, and how much the clean agents' throughput drops.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from signoff.agents import AgentRegistry
from signoff.redis_conn import EmbeddedRedis
from signoff.runtime import Runtime
from signoff.settings import Settings
from workers.intake import IntakeConsumer

ROOT = Path(__file__).resolve().parent.parent
SECRETS: dict[str, Any] = {"hmac_secret": "bench-hmac-secret-0123456789abcdef",
           "data_keys": "k1:" + "B" * 43,
           "masking_key": "bench-masking-key-0123456789abcdef"}


def body(rid: str) -> str:
    return json.dumps({"id": rid, "action": "db.export", "resource": "warehouse.customers",
                       "params": {"rows": 10}, "on_behalf_of": "frank@example.com",
                       "context": {"environment": "dev"}})


def runtime(url: str, data: Path) -> Runtime:
    """The example policy with its flood limits lifted (the bench measures the intake, not
    the limits answering rate_limited)."""
    policy = yaml.safe_load((ROOT / "examples" / "policy.yaml").read_text())
    policy["limits"] = {"rate": "1000000/min", "per_action_rate": "1000000/min",
                        "max_pending": 1000000}
    data.mkdir(parents=True, exist_ok=True)
    path = data / "policy.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    settings = Settings(_env_file=None, redis_url=url, data_dir=data,  # type: ignore[call-arg]
                        policy_path=path, trusted_stream=True, **SECRETS)
    return Runtime(settings)


def scenario(rt: Runtime, agents: int, requests: int, poison_share: float = 0.0
             ) -> tuple[float, float]:
    """(seconds to ingest every request, seconds for the clean ones only)."""
    rt.redis.flushall()
    registry = AgentRegistry(rt.redis, rt.keys)
    names = [f"bench-{i}" for i in range(agents)]
    for name in names:
        registry.add(name, rt.settings.redis_url or "")
    pipe = rt.redis.pipeline(transaction=False)
    clean = 0
    for i in range(requests):
        if agents:
            stream = rt.keys.agent(names[i % agents]).requests
            raw = body(f"r-{i}")
            if poison_share and i % agents == 0 and (i // agents) % 2 == 0:
                raw = "{not json"  # the poisoned agent: half its entries unreadable
            else:
                clean += 1
        else:
            stream = rt.keys.requests
            raw = json.dumps({**json.loads(body(f"r-{i}")), "requester": "agent:export-bot"})
            clean += 1
        pipe.xadd(stream, {"body": raw})
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    consumer = IntakeConsumer(rt, name="bench", block_ms=1, batch=100)
    consumer.ensure_group()
    start = time.perf_counter()
    while consumer.handled < requests:
        consumer.poll(block_ms=1)
    took = time.perf_counter() - start
    for name in names:
        registry.remove(name)
    return took, took * clean / requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    logging.disable(logging.WARNING)  # the poisoned agent's dead letters are expected
    if args.quick:
        args.requests, args.rounds = 300, 1
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp), port=0)
        url = server.start()
        try:
            rt = runtime(url, Path(tmp) / "data")
            scenario(rt, 1, min(args.requests, 200))  # warm up: policy, masker, scripts
            cases = (("trusted shared stream (baseline)", 0, 0.0),
                     ("1 registered agent", 1, 0.0),
                     ("10 registered agents", 10, 0.0),
                     ("100 registered agents", 100, 0.0),
                     ("10 agents, one sending 50 % poison", 10, 0.5))
            # Rounds interleave the cases, so a noisy neighbour slows them all alike.
            times: dict[str, list[float]] = {label: [] for label, _, _ in cases}
            for _ in range(args.rounds):
                for label, agents, poison in cases:
                    times[label].append(scenario(rt, agents, args.requests, poison)[0])
            rows = [(label, args.requests / statistics.median(times[label]))
                    for label, _, _ in cases]
            rt.close()
        finally:
            server.stop()
    base = rows[0][1]
    print(f"intake, {args.requests} requests per scenario, median of {args.rounds} rounds")
    for label, rate in rows:
        print(f"{label:40} {rate:8.0f} requests/s  x{rate / base:4.2f}")


if __name__ == "__main__":
    main()
