"""Slack clicks benchmark: signed Approve clicks per second through the web server, and
click → agent reply latency, beside the same HTTP server answering an empty route.

Run: ``.venv/bin/python bench/slack_clicks.py`` (options: ``--clicks``, ``--concurrency``,
``--latency``). Everything runs here: a private redis-server, the fake Slack Web API
(tests/fakes/slack_api.py) in this process, one web process and one ``signoff worker``. The web
process is ``bot.app.create_app`` exactly as ``signoff web`` builds it, plus one extra route,
``POST /bench/empty``, that answers 200 with nothing: the baseline is the same server, the same
request bytes and headers, in the same run.

Each click is a block_actions request signed as Slack signs it, for a distinct pending request
whose rule needs one approval, so each click is the whole path: bolt's signature check,
Signoff's button HMAC, the directory, separation of duties, the atomic vote, the finalize job,
the grant, and the agent's BLPOP.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import redis

from bench._stack import SECRETS, BenchStack, summary, wait_until

SIGNING_SECRET = "bench-slack-signing-secret"

POLICY = """
version: 1
directory:
  people:
    - {email: alice@example.com, slack: U0ALICE, groups: [dba]}
    - {email: bob@example.com, slack: U0BOB, groups: [dba]}
    - {email: erin@example.com, slack: U0ERIN, groups: [admins]}
    - {email: frank@example.com, slack: U0FRANK}
  groups: {dba: {description: DBAs}, admins: {description: admins}}
  agents:
    - {id: "agent:bench", owner: erin@example.com}
masking:
  profiles:
    fast: {strategy: redact, ner: false}
rules:
  - id: bench-export
    match: {action: "db.export*", environment: prod}
    require:
      approvers: 1 of dba
      timeout: 1h
      channels: [{slack: "#approvals"}]
      masking: {profile: fast}
"""

SERVE = """
import logging, sys
from aiohttp import web
from bot.app import create_app
from signoff.runtime import Runtime
from signoff.settings import load_settings

async def empty(request):
    await request.read()
    return web.Response()

settings = load_settings()
logging.basicConfig(level=logging.WARNING)
app = create_app(Runtime(settings))
app.router.add_post("/bench/empty", empty)
web.run_app(app, host="127.0.0.1", port=settings.port, print=None, access_log=None)
"""


def signed(body: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = hmac.new(SIGNING_SECRET.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + sig.hexdigest(),
            "Content-Type": "application/x-www-form-urlencoded"}


def click_body(rid: str, version: int, key: bytes, user: str, n: int) -> str:
    from signoff import clicks

    payload = {
        "type": "block_actions", "team": {"id": "T0SIGNOFF", "domain": "bench"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0SIGNOFF"},
        "api_app_id": "A0SIGNOFF", "token": "legacy", "trigger_id": f"{n}.1.bench",
        "container": {"type": "message", "message_ts": "1.000001", "channel_id": "C0APPROVALS",
                      "is_ephemeral": False},
        "channel": {"id": "C0APPROVALS", "name": "approvals"},
        "message": {"type": "message", "ts": "1.000001", "text": "card"},
        "response_url": "http://127.0.0.1:9/unused",
        "actions": [{"action_id": "signoff_approve", "block_id": f"actions-{version}",
                     "text": {"type": "plain_text", "text": "Approve"},
                     "value": clicks.sign(key, rid, version, "approve"), "type": "button",
                     "action_ts": f"{time.time():.6f}.{n}"}],
    }
    return urlencode({"payload": json.dumps(payload)})


def make_pending(rt: Any, prefix: str, count: int) -> list[tuple[str, int]]:
    """Open ``count`` requests directly through the lifecycle (ingest + prepare)."""
    from signoff import lifecycle

    out = []
    for i in range(count):
        rid = f"{prefix}-{i:05d}"
        body = {"id": rid, "action": "db.export", "resource": "warehouse.orders",
                "params": {"batch": rid, "rows": 100}, "requester": "agent:bench",
                "on_behalf_of": "frank@example.com", "reason": "benchmark",
                "context": {"environment": "prod"}}
        lifecycle.ingest(rt, json.dumps(body), enqueue=False)
        assert lifecycle.prepare(rt, rid) == "pending", rid
        record = rt.store.get(rid, with_votes=False)
        out.append((rid, record.version))
    return out


async def blast(url: str, bodies: list[str], concurrency: int) -> tuple[float, list[float], int]:
    """POST every body (freshly signed) with ``concurrency`` in flight; (seconds, latencies
    in ms, non-200 count)."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for b in bodies:
        queue.put_nowait(b)
    latencies: list[float] = []
    bad = 0
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn) as http:

        async def runner() -> None:
            nonlocal bad
            while not queue.empty():
                body = queue.get_nowait()
                headers = signed(body)
                t0 = time.perf_counter()
                async with http.post(url, data=body.encode(), headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        bad += 1
                latencies.append((time.perf_counter() - t0) * 1000)

        start = time.perf_counter()
        await asyncio.gather(*(runner() for _ in range(concurrency)))
        return time.perf_counter() - start, latencies, bad


async def latency_run(url: str, empty_url: str, items: list[tuple[str, int]], key: bytes,
                      r: redis.Redis) -> tuple[list[float], list[float], list[float]]:
    """One click at a time: (ack ms, click → reply ms, empty-route ms)."""
    ack, total, empty = [], [], []
    async with aiohttp.ClientSession() as http:
        for n, (rid, version) in enumerate(items):
            body = click_body(rid, version, key, "U0BOB", 900_000 + n)
            t0 = time.perf_counter()
            async with http.post(empty_url, data=body.encode(), headers=signed(body)) as resp:
                await resp.read()
            empty.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            async with http.post(url, data=body.encode(), headers=signed(body)) as resp:
                await resp.read()
                assert resp.status == 200, resp.status
            ack.append((time.perf_counter() - t0) * 1000)
            got = await asyncio.to_thread(r.blpop, [f"signoff:reply:{rid}"], 30)
            if got is None:
                raise SystemExit(f"no reply for {rid} within 30 s")
            decision = json.loads(got[1])
            assert decision["status"] == "approved" and decision.get("grant"), decision
            total.append((time.perf_counter() - t0) * 1000)
    return ack, total, empty


def queue_idle(r: redis.Redis) -> bool:
    from rq import Queue
    from rq.registry import StartedJobRegistry

    q = Queue("signoff", connection=r)
    return q.count == 0 and StartedJobRegistry(queue=q).count == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clicks", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--latency", type=int, default=100, help="sequential click → reply runs")
    args = parser.parse_args()

    from tests.fakes.slack_api import BOT_TOKEN, FakeSlack

    fake = FakeSlack().start()
    stack = BenchStack(POLICY, env={"SLACK_BOT_TOKEN": BOT_TOKEN,
                                    "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                                    "SIGNOFF_SLACK_API_URL": fake.url})
    try:
        redis_url = stack.start_redis()
        from signoff.runtime import Runtime
        from signoff.settings import Settings

        settings = Settings(_env_file=None, redis_url=redis_url,  # type: ignore[call-arg]
                            policy_path=stack.policy, data_dir=stack.dir / "data",
                            hmac_secret=SECRETS["SIGNOFF_HMAC_SECRET"],
                            data_keys=SECRETS["SIGNOFF_DATA_KEYS"],
                            masking_key=SECRETS["SIGNOFF_MASKING_KEY"])
        rt = Runtime(settings)
        key = rt.hmac_key
        print(f"opening {args.clicks + args.latency + 50} pending requests …", flush=True)
        warm = make_pending(rt, "warm", 50)
        load = make_pending(rt, "load", args.clicks)
        seq = make_pending(rt, "seq", args.latency)

        serve = stack.dir / "serve.py"
        serve.write_text(SERVE)
        stack.spawn("workers.cli", "worker")
        log = open(stack.dir / "web.log", "ab")
        import subprocess

        web_proc = subprocess.Popen([sys.executable, str(serve)], env=stack.env(),
                                    cwd=stack.dir, stdout=log, stderr=subprocess.STDOUT)
        stack.procs.append(web_proc)
        wait_until(stack._web_up, 60, "web")
        raw = redis.Redis.from_url(redis_url)
        wait_until(lambda: queue_idle(raw), 300, "the cards to be posted")
        url, empty_url = stack.url + "/slack/events", stack.url + "/bench/empty"

        warm_bodies = [click_body(rid, v, key, "U0ALICE", n) for n, (rid, v) in enumerate(warm)]
        asyncio.run(blast(empty_url, warm_bodies, args.concurrency))
        asyncio.run(blast(url, warm_bodies, args.concurrency))
        wait_until(lambda: queue_idle(raw), 300, "warm-up jobs")

        bodies = [click_body(rid, v, key, "U0ALICE", 1000 + n) for n, (rid, v) in enumerate(load)]
        base_s, base_lat, base_bad = asyncio.run(blast(empty_url, bodies, args.concurrency))
        click_s, click_lat, click_bad = asyncio.run(blast(url, bodies, args.concurrency))
        votes = sum(1 for rid, _ in load if rt.store.get(rid) and rt.store.get(rid).votes)
        if click_bad or base_bad or votes != len(load):
            raise SystemExit(f"errors: {click_bad} clicks, {base_bad} baseline not 200; "
                             f"{votes}/{len(load)} votes recorded")
        wait_until(lambda: queue_idle(raw), 600, "finalize jobs after the burst")
        approved = sum(1 for rid, _ in load if raw.llen(f"signoff:reply:{rid}") == 1)

        ack, total, empty = asyncio.run(latency_run(url, empty_url, seq, key, raw))
        cards = len(fake.calls("chat.postMessage"))
    finally:
        stack.stop()
        fake.stop()

    b, c = summary(base_lat), summary(click_lat)
    a, t, e = summary(ack), summary(total), summary(empty)
    rows = [
        (f"requests/s, concurrency {args.concurrency}", len(bodies) / click_s,
         len(bodies) / base_s),
        ("latency under load, p50 ms", c["p50"], b["p50"]),
        ("latency under load, p99 ms", c["p99"], b["p99"]),
        ("one at a time: ack, p50 ms", a["p50"], e["p50"]),
        ("one at a time: ack, p99 ms", a["p99"], e["p99"]),
        ("click → agent reply (BLPOP), p50 ms", t["p50"], e["p50"]),
        ("click → agent reply (BLPOP), p99 ms", t["p99"], e["p99"]),
    ]
    print(f"\nSlack clicks: {len(bodies)} signed Approve clicks (each a distinct request, quorum 1),"
          f" {args.latency} sequential click → reply runs; {approved}/{len(load)} replies "
          f"delivered; {cards} chat.postMessage calls to the fake\n")
    print("| measure | Slack click | empty route | ratio |")
    print("|---|---:|---:|---:|")
    for name, ours, base in rows:
        print(f"| {name} | {ours:.1f} | {base:.1f} | {ours / base:.2f} |")


if __name__ == "__main__":
    main()
