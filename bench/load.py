"""Load benchmark: the whole running stack against Slack and Teams fakes that answer like the
real platforms (latency profile with jitter, their documented rate limits).

Run: ``.venv/bin/python bench/load.py`` (``--help`` for the options). Everything runs here: a
private redis-server, ``signoff intake``, ``signoff worker`` (×``--workers``) and ``signoff web``
as processes; the fake Slack Web API and the fake Bot Framework (``tests/fakes``, latency
profiles ``tests.fakes.latency.SLACK`` and ``TEAMS`` unless ``--no-latency``) and the load
generator in this process. Every request posts a card to Slack (one channel), Teams (one
channel) and the web inbox.

Phases, all in one run so the ratios hold on a noisy machine:

1. **baseline**: rq no-op jobs on the same Redis (same worker class and serializer): jobs/s of
   one worker and enqueue → finished latency.
2. **normal**: ``--rate`` requests/s (open loop) for ``--seconds``; approvers take each request
   when its first card appears and approve it, in turn in Slack (signed ``block_actions`` on its
   card; over the API when the request is on a digest), Teams (refresh, then the
   ``adaptiveCard/action`` invoke) and the HTTP API. Reports XADD → first card per channel (the
   card ledger's record of each post), click → agent reply per channel (the reply's entry on the
   decisions stream, written with the reply), worker CPU per request (``/proc`` of the worker
   processes), and nothing lost or posted twice.
3. **clicks**: ``--click-rate`` clicks/s on requests already carded, rotating API, Slack and
   Teams (Slack's payload carries the button of the request's card as Signoff renders it).
4. **Slack 429**: the normal phase again with Slack answering 429 to every post and update for
   ``--slack-429`` seconds: Teams and inbox first-card latency against the normal phase, decision
   latency, nothing lost or posted twice.
5. **memory**: ``--memory-requests`` through the real path, nobody approving: Redis memory per
   pending request.
6. **scale-out**: a burst of ``--scale-requests`` with 1, 2 and 4 workers: requests/s to pending
   and to every card posted.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import queue
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import requests
from opentelemetry import propagate
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from rq import Queue, Worker
from rq.serializers import JSONSerializer

from bench._stack import SECRETS, BenchStack, freeze_heap, summary, wait_until
from bench.lifecycle import WORKER_CODE
from bot.slack import render as slack_render
from signoff.cards import Card
from signoff.cardview.view import build_view
from signoff.runtime import Runtime
from signoff.settings import Settings
from signoff.tokens import TokenKind
from tests.fakes.latency import SLACK, TEAMS
from tests.fakes.slack_api import BOT_TOKEN, FakeSlack
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import install_teams
from tests.slack.conftest import block_action, card_buttons, signed_headers
from tests.teams.conftest import APP_ID, APP_PASSWORD, TENANT, TeamsClient, button_data, card_of

SIGNING_SECRET = "bench-load-signing-secret"
APPROVERS = [("alice", "U0ALICE", "00000000-0000-0000-0000-00000000a11c"),
             ("bob", "U0BOB", "00000000-0000-0000-0000-000000000b0b"),
             ("carol", "U0CAROL", "00000000-0000-0000-0000-0000000ca401"),
             ("dave", "U0DAVE", "00000000-0000-0000-0000-00000000da7e")]
SLOTS = {"slack": "slack:#approvals", "teams": "teams:approvals", "web": "web:inbox"}
TICK = os.sysconf("SC_CLK_TCK")


def policy(agents: int) -> str:
    people = "\n".join(f"    - {{email: {n}@example.com, slack: {s}, teams: {a}, groups: [dba]}}"
                       for n, s, a in APPROVERS)
    bots = "\n".join(f'    - {{id: "agent:load-{i}", owner: erin@example.com}}'
                     for i in range(agents))
    return f"""
version: 1
directory:
  people:
{people}
    - {{email: erin@example.com, slack: U0ERIN, groups: [admins]}}
    - {{email: frank@example.com, slack: U0FRANK}}
  groups: {{dba: {{description: DBAs}}, admins: {{description: admins}}}}
  agents:
{bots}
masking:
  profiles:
    fast: {{strategy: redact, ner: false}}
rules:
  - id: load
    match: {{action: "db.export"}}
    require:
      approvers: 1 of dba
      timeout: 4h
      reminders: []
      channels: [{{slack: "#approvals"}}, {{teams: approvals}}, web]
      masking: {{profile: fast}}
"""


def request_body(rid: str, agent: str) -> str:
    return json.dumps({
        "id": rid, "action": "db.export", "resource": "warehouse.orders",
        "params": {"rows": 1000, "batch": rid, "notify": "jane.doe@example.org"},
        "requester": agent, "on_behalf_of": "frank@example.com",
        "reason": "nightly reconciliation for the finance team",
        "context": {"environment": "prod", "ticket": "OPS-1"}})


# --- the baseline -------------------------------------------------------------------------
def rq_baseline(stack: BenchStack, jobs: int, samples: int) -> dict[str, float]:
    """No-op rq jobs on the same Redis: one worker's jobs/s, then enqueue → finished."""
    import subprocess

    r = redis.Redis.from_url(stack.redis.url)
    q = Queue("bench", connection=r, serializer=JSONSerializer)
    for i in range(jobs):
        q.enqueue("bench._stack.noop", i)
    env = stack.env()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", WORKER_CODE, stack.redis.url, "burst"], env=env,
                   cwd=stack.dir, check=True, timeout=300)
    throughput = jobs / (time.perf_counter() - t0)
    worker = subprocess.Popen([sys.executable, "-c", WORKER_CODE, stack.redis.url, "forever"],
                              env=env, cwd=stack.dir)
    time.sleep(1.5)
    lat = []
    for i in range(samples):
        start = time.perf_counter()
        job = q.enqueue("bench._stack.noop", i)
        while job.get_status(refresh=True).value != "finished":
            if time.perf_counter() - start > 30:
                raise SystemExit("the baseline worker stopped answering")
            time.sleep(0.0005)
        lat.append((time.perf_counter() - start) * 1000)
        time.sleep(0.02)
    worker.terminate()
    worker.wait(10)
    r.flushall()
    return {"throughput": throughput, **summary(lat)}


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of these processes so far (Linux /proc)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


# --- what every phase shares ----------------------------------------------------------------
class Observer:
    """Watches the card ledger (first card per channel), the decisions stream (replies) and
    the fake Bot Framework (Teams cards, for clicks)."""

    def __init__(self, rt: Runtime, bf: FakeBotFramework) -> None:
        self.rt = rt
        self.bf = bf
        self.sent: dict[str, float] = {}
        self.first: dict[str, dict[str, float]] = {ch: {} for ch in SLOTS}
        self.digested: set[str] = set()
        self.replied: dict[str, float] = {}
        self.teams_post: dict[str, Any] = {}
        self.ready: queue.Queue[str] = queue.Queue()
        self.readied: set[str] = set()
        self.watch: set[str] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        newest = rt.redis.xrevrange(rt.keys.decisions, count=1)
        self._start = str(newest[0][0]) if newest else "0-0"
        self.threads = [threading.Thread(target=self._cards, daemon=True),
                        threading.Thread(target=self._replies, daemon=True)]
        for t in self.threads:
            t.start()

    def sending(self, rid: str, at: float) -> None:
        with self.lock:
            self.sent[rid] = at
            self.watch.add(rid)

    def _cards(self) -> None:
        r = self.rt.redis
        seen_teams = 0
        while not self.stop.is_set():
            with self.lock:
                watch = list(self.watch)
            if watch:
                pipe = r.pipeline(transaction=False)
                for rid in watch:
                    pipe.hgetall(self.rt.keys.cards(rid))
                for rid, raw in zip(watch, pipe.execute(), strict=True):
                    was_ready = rid in self.readied
                    for ch, slot in SLOTS.items():
                        if slot in raw and rid not in self.first[ch]:
                            card = Card.from_json(raw[slot])
                            self.first[ch][rid] = card.posted_at
                            if card.digest:
                                self.digested.add(rid)
                    if all(rid in self.first[ch] for ch in SLOTS) or (
                            rid in self.replied and time.time() - self.replied[rid] > 5):
                        with self.lock:  # every card, or decided (no card comes later)
                            self.watch.discard(rid)
                    if not was_ready and self._ready(rid):
                        self.ready.put(rid)
            # Only what the fake recorded since the last look (the whole list grows with
            # the run, and rescanning it every 10 ms took a tenth of this process's CPU).
            fresh = self.bf.activities_after(seen_teams)
            seen_teams += len(fresh)
            for post in fresh:
                if post.method != "POST":
                    continue
                rid = str(post.body.get("summary", "")).removeprefix("Approval request ")
                self.teams_post.setdefault(rid.split(":", 1)[0], post)
            time.sleep(0.01)

    def _ready(self, rid: str) -> bool:
        """Approvers act once the request is on every channel (Slack may be refusing: then
        after 2 s), so every channel's first card is measured, not only the fastest's."""
        if rid in self.readied:
            return True
        teams_web = rid in self.first["teams"] and rid in self.first["web"]
        slack = rid in self.first["slack"] or time.time() - self.sent.get(rid, 0) > 2.0
        if teams_web and slack:
            self.readied.add(rid)
            return True
        return False

    def _replies(self) -> None:
        r = redis.Redis.from_url(self.rt.settings.redis_url or "", decode_responses=True)
        # From the stream's newest entry now, not "$": a read that times out would leave "$",
        # and a reply written before the next read would never be seen.
        last = self._start
        while not self.stop.is_set():
            got = r.xread({self.rt.keys.decisions: last}, block=200, count=500)
            for _stream, entries in got or []:
                for entry_id, fields in entries:
                    last = entry_id
                    # When the reply was written: the entry id's Redis clock (ms), the moment
                    # a waiting agent's XREAD returns, not when this thread, sharing its GIL
                    # with the fakes and the clickers, got round to reading it.
                    written = (int(str(entry_id).split("-", 1)[0]) + 1) / 1000  # upper bound
                    self.replied.setdefault(str(fields.get("id")), written)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(5)


class Clicker:
    """Approves requests over Slack, Teams or the API, as a person would."""

    def __init__(self, stack: BenchStack, rt: Runtime, fake: FakeSlack, bf: FakeBotFramework,
                 obs: Observer, tokens: dict[str, str]) -> None:
        self.stack, self.rt, self.fake, self.bf, self.obs = stack, rt, fake, bf, obs
        self.tokens = tokens
        self.local = threading.local()
        self.clicked: dict[str, tuple[float, str]] = {}
        self.errors: list[str] = []
        self.lock = threading.Lock()

    def _http(self) -> tuple[requests.Session, TeamsClient]:
        if not hasattr(self.local, "http"):
            self.local.http = requests.Session()
            self.local.http.trust_env = False
            self.local.teams = TeamsClient(self.bf, self.stack)  # type: ignore[arg-type]
        return self.local.http, self.local.teams

    def click(self, rid: str, channel: str, who: int, rendered_slack: bool = False) -> None:
        name, slack_id, aad = APPROVERS[who % len(APPROVERS)]
        http, teams = self._http()
        try:
            if channel == "slack":
                form, headers = self._slack_form(rid, slack_id, rendered_slack)
                t = time.time()
                resp = http.post(self.stack.url + "/slack/events", data=form, headers=headers,
                                 timeout=30)
            elif channel == "teams":
                post = self.obs.teams_post[rid]
                refresh = self._invoke(teams, "refresh", post.card["refresh"]["action"]["data"],
                                       name, aad)
                data = button_data(card_of(refresh), "approve")
                t = time.time()
                resp = self._invoke(teams, "approve", data, name, aad)
            else:
                t = time.time()
                resp = http.post(f"{self.stack.url}/api/v1/requests/{rid}/decision",
                                 json={"decision": "approve"}, timeout=30,
                                 headers={"Authorization": f"Bearer {self.tokens[name]}"})
            if resp.status_code != 200:
                raise RuntimeError(f"HTTP {resp.status_code}: {resp.text[:200]}")
            with self.lock:
                self.clicked[rid] = (t, channel)
        except Exception as exc:  # a failed click is counted, not fatal
            self.errors.append(f"{channel} click on {rid}: {type(exc).__name__}: {exc}")

    def _slack_form(self, rid: str, slack_id: str, rendered: bool) -> tuple[str, dict[str, str]]:
        cards = self.fake.cards(rid)
        if cards and not rendered:
            card = cards[0]
            button = card_buttons(card.blocks or [])["signoff_approve"]
            channel, ts = card.channel, card.ts
        else:  # the button Signoff renders for this request's card
            record = self.rt.store.get(rid)
            assert record is not None
            blocks = slack_render.render_card(build_view(record), self.rt.hmac_key,
                                              now=time.time())["blocks"]
            button = card_buttons(blocks)["signoff_approve"]
            channel, ts = "C0APPROVALS", f"{int(time.time())}.000001"
        payload = block_action(slack_id, button, channel=channel, message_ts=ts, fake=self.fake)
        form = urlencode({"payload": json.dumps(payload)})
        return form, signed_headers(form, secret=SIGNING_SECRET)

    @staticmethod
    def _invoke(teams: TeamsClient, verb: str, data: dict[str, Any], name: str,
                aad: str) -> requests.Response:
        activity = teams.base("invoke", "alice")
        activity["from"] = {"id": f"29:{name}", "name": name.title(), "aadObjectId": aad}
        activity["name"] = "adaptiveCard/action"
        activity["replyToId"] = "1:1"
        activity["value"] = {"action": {"type": "Action.Execute", "verb": verb, "data": data},
                             "trigger": "automatic" if verb == "refresh" else "manual"}
        return teams.post(activity)


AGENT_TRACER: Any = None  # set with --trace: the agents' own spans (their XADD)


def send_paced(rt: Runtime, obs: Observer, prefix: str, rate: float, seconds: float,
               agents: int) -> list[str]:
    """XADD ``rate`` requests per second for ``seconds`` (open loop). With ``--trace`` each
    XADD is an agent's span and carries its ``traceparent`` next to the body."""
    r = redis.Redis.from_url(rt.settings.redis_url or "", decode_responses=True)
    ids: list[str] = []
    freeze_heap()
    start = time.time()
    for i in itertools.count():
        due = start + i / rate
        if due > start + seconds:
            break
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        rid = f"{prefix}-{i}"
        obs.sending(rid, time.time())
        fields = {"body": request_body(rid, f"agent:load-{i % agents}")}
        if AGENT_TRACER is not None:
            with AGENT_TRACER.start_as_current_span("agent xadd",
                                                    attributes={"signoff.request_id": rid}):
                propagate.inject(fields)
                r.xadd(rt.keys.requests, fields)
        else:
            r.xadd(rt.keys.requests, fields)
        ids.append(rid)
    return ids


def run_phase(stack: BenchStack, rt: Runtime, fake: FakeSlack, bf: FakeBotFramework,
              tokens: dict[str, str], prefix: str, rate: float, seconds: float, agents: int,
              approvers: int, worker_pids: list[int]) -> dict[str, Any]:
    """Requests at ``rate`` for ``seconds``, approved as their first card appears."""
    obs = Observer(rt, bf)
    clicker = Clicker(stack, rt, fake, bf, obs, tokens)
    stop = threading.Event()

    def approver(n: int) -> None:
        order = itertools.cycle(["slack", "teams", "api"][n % 3:] + ["slack", "teams",
                                                                     "api"][:n % 3])
        while not stop.is_set():
            try:
                rid = obs.ready.get(timeout=0.2)
            except queue.Empty:
                continue
            channel = next(order)
            if channel == "slack" and (rid not in obs.first["slack"] or rid in obs.digested):
                channel = "api"  # no card of its own in Slack (digest, or Slack refusing)
            if channel == "teams" and rid not in obs.teams_post:
                channel = "api"
            clicker.click(rid, channel, n)

    threads = [threading.Thread(target=approver, args=(i,), daemon=True)
               for i in range(approvers)]
    for t in threads:
        t.start()
    cpu0 = cpu_seconds(worker_pids)
    ids = send_paced(rt, obs, prefix, rate, seconds, agents)
    try:
        wait_until(lambda: all(rid in obs.replied for rid in ids), 180, f"{prefix} replies")
    except SystemExit:
        missing = [rid for rid in ids if rid not in obs.replied]
        for rid in missing[:5]:
            print(rid, rt.redis.hget(rt.keys.request(rid), "status"),
                  sorted(rt.cards.cards(rid)), rid in clicker.clicked,
                  {ch: rid in obs.first[ch] for ch in SLOTS})
        print("click errors:", clicker.errors[:5])
        raise
    cpu = cpu_seconds(worker_pids) - cpu0
    wait_until(lambda: not rt.redis.zcard(rt.keys.card_outbox_due), 180, "card work drained")
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(5)
    obs.close()
    return {"ids": ids, "obs": obs, "clicker": clicker, "cpu": cpu,
            "check": exactly_once(rt, fake, bf, ids)}


def exactly_once(rt: Runtime, fake: FakeSlack, bf: FakeBotFramework,
                 ids: list[str]) -> dict[str, int]:
    """Each request: one reply, decided once; each card once (a digest line or one card)."""
    pipe = rt.redis.pipeline(transaction=False)
    for rid in ids:
        pipe.llen(rt.keys.reply(rid))
    replies = pipe.execute()
    decided = Counter(f["id"] for _, f in rt.redis.xrange(rt.keys.decisions))
    slack_cards = Counter(str(((m.metadata or {}).get("event_payload") or {})
                              .get("request_id")) for m in fake.cards_all())
    teams_cards = Counter(str(p.body.get("summary", "")).removeprefix("Approval request ")
                          .split(":", 1)[0] for p in bf.posts())
    out = {"lost": 0, "replied_twice": 0, "decided_twice": 0, "slack_twice": 0,
           "teams_twice": 0, "no_slack": 0, "no_teams": 0}
    for rid, n in zip(ids, replies, strict=True):
        out["lost"] += n == 0
        out["replied_twice"] += n > 1
        out["decided_twice"] += decided[rid] > 1
        out["slack_twice"] += slack_cards[rid] > 1
        out["teams_twice"] += teams_cards[rid] > 1
        cards = rt.cards.cards(rid)
        out["no_slack"] += SLOTS["slack"] not in cards
        out["no_teams"] += SLOTS["teams"] not in cards
    return out


def first_card_ms(phase: dict[str, Any], channel: str) -> list[float]:
    obs: Observer = phase["obs"]
    return [(at - obs.sent[rid]) * 1000 for rid, at in obs.first[channel].items()
            if rid in obs.sent]


def click_ms(phase: dict[str, Any], channel: str | None = None) -> list[float]:
    obs: Observer = phase["obs"]
    out = []
    for rid, (t, ch) in phase["clicker"].clicked.items():
        if rid in obs.replied and (channel is None or ch == channel):
            out.append((obs.replied[rid] - t) * 1000)
    return out


def click_phase(stack: BenchStack, rt: Runtime, fake: FakeSlack, bf: FakeBotFramework,
                tokens: dict[str, str], rate: float, seconds: float,
                agents: int) -> dict[str, Any]:
    """Requests carded first (nobody clicking), then ``rate`` clicks/s on them."""
    obs = Observer(rt, bf)
    n = int(rate * seconds)
    ids = send_paced(rt, obs, "ck", 25.0, n / 25.0, agents)
    wait_until(lambda: all(rid in obs.first["teams"] and rid in obs.teams_post
                           and rid in obs.first["slack"] for rid in ids), 180, "carded")
    clicker = Clicker(stack, rt, fake, bf, obs, tokens)
    channels = itertools.cycle(["api", "slack", "teams"])
    print(f"   {n} requests carded; clicking ...", flush=True)
    freeze_heap()
    start = time.time()
    with ThreadPoolExecutor(max_workers=24) as pool:
        for i, rid in enumerate(ids):
            pause = start + i / rate - time.time()
            if pause > 0:
                time.sleep(pause)
            pool.submit(clicker.click, rid, next(channels), i, True)
    achieved = len(ids) / (time.time() - start)
    wait_until(lambda: all(rid in obs.replied for rid in clicker.clicked), 60, "click replies")
    obs.close()
    # Where a click's time goes: until its vote is recorded (the request reaching the web
    # process and waiting there), then until the reply (the decision: vote, grant, reply).
    split: dict[str, tuple[list[float], list[float]]] = {}
    for rid, (t, channel) in clicker.clicked.items():
        voted = [e.ts for e in rt.audit.for_request(rid) if e.event == "vote"]
        if voted and rid in obs.replied:
            before, after = split.setdefault(channel, ([], []))
            before.append((voted[0] - t) * 1000)
            after.append((obs.replied[rid] - voted[0]) * 1000)
    return {"ids": ids, "obs": obs, "clicker": clicker, "rate": achieved, "split": split}


def _key_family(key: str, ids: re.Pattern[str]) -> str:
    """A key's family: the memory phase's request ids, rq job UUIDs, hex digests and numbers
    generalised."""
    key = ids.sub("{id}", key)
    key = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "{uuid}", key)
    key = re.sub(r"[0-9a-f]{12,}", "{hex}", key)
    return re.sub(r"(?<=[:-])\d+(?=[:-]|$)", "{n}", key)


def _key_sizes(r: redis.Redis) -> dict[str, int]:
    """Every key's ``MEMORY USAGE`` (all elements counted: SAMPLES 0)."""
    keys = [k for k in r.scan_iter(count=1000)]
    sizes: dict[str, int] = {}
    for i in range(0, len(keys), 500):
        pipe = r.pipeline(transaction=False)
        chunk = keys[i:i + 500]
        for k in chunk:
            pipe.memory_usage(k, samples=0)
        for k, n in zip(chunk, pipe.execute(), strict=True):
            sizes[str(k)] = int(n or 0)
    return sizes


def _overheads(r: redis.Redis) -> dict[str, int]:
    """Redis's own accounting beside the keys: the keyspace tables, clients, scripts."""
    stats = r.memory_stats()
    db = stats.get("db.0") or {}
    return {"keyspace table": int(db.get("overhead.hashtable.main", 0)),
            "expires table": int(db.get("overhead.hashtable.expires", 0)),
            "clients": int(stats.get("clients.normal", 0)) + int(stats.get("clients.slaves", 0)),
            "scripts, AOF, replication": int(stats.get("lua.caches", 0))
            + int(stats.get("aof.buffer", 0)) + int(stats.get("replication.backlog", 0))}


def memory_phase(rt: Runtime, count: int, agents: int) -> tuple[float, float]:
    """Redis memory per pending request through the real path (and the record hash).

    The ``used_memory`` delta is divided by ``count``; the breakdown is every key family's
    ``MEMORY USAGE`` delta (a SCAN of every key before and after, ids generalised) plus
    Redis's own tables, so it accounts for the whole delta."""
    r = rt.redis
    time.sleep(1)
    # The audit index follows the log with a cursor: let it catch up with the earlier phases
    # first, or their entries' index rows would be counted against these requests.
    wait_until(lambda: rt.audit.index.cursor()[1] >= rt.audit.head()[0], 120,
               "the audit index catching up")
    sizes0 = _key_sizes(r)
    over0 = _overheads(r)
    before = int(r.info("memory")["used_memory"])
    ids = [f"mem-{i}" for i in range(count)]
    pipe = r.pipeline(transaction=False)
    for i, rid in enumerate(ids):
        pipe.xadd(rt.keys.requests, {"body": request_body(rid, f"agent:load-{i % agents}")})
    pipe.execute()
    pending = r.zcard(rt.keys.pending)
    wait_until(lambda: all(len(r.hkeys(rt.keys.cards(rid))) >= 3 for rid in ids[-20:])
               and r.zcard(rt.keys.pending) >= pending, 300, "memory requests carded")
    wait_until(lambda: not r.zcard(rt.keys.card_outbox_due), 300, "their card work")
    time.sleep(2)
    after = int(r.info("memory")["used_memory"])
    per = (after - before) / count
    sizes1 = _key_sizes(r)
    over1 = _overheads(r)
    family = re.compile(r"mem-\d+")
    parts: Counter[str] = Counter()
    keys_of: Counter[str] = Counter()
    for key in set(sizes0) | set(sizes1):
        name = _key_family(key, family)
        delta = sizes1.get(key, 0) - sizes0.get(key, 0)
        if delta:
            parts[name] += delta
        keys_of[name] += (key in sizes1) - (key in sizes0)
    for name in over0:
        parts[f"({name})"] += over1[name] - over0[name]
    explained = sum(parts.values())
    print(f"   memory per pending request: {per:.0f} bytes (used_memory delta "
          f"{after - before} over {count}); by key family (MEMORY USAGE delta / request, "
          f"keys added / request):", flush=True)
    for name, delta in sorted(parts.items(), key=lambda kv: -abs(kv[1])):
        if abs(delta) / count >= 1:
            print(f"     {delta / count:8.0f}  {keys_of[name] / count:+5.2f}  {name}")
    print(f"     {explained / count:8.0f}  explained ({explained / max(after - before, 1):.0%});"
          f" rest {(after - before - explained) / count:.0f} (allocator, buffers)", flush=True)
    record = parts[_key_family(rt.keys.request("mem-0"), family)] / count
    return per, record


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of the whole machine (``/proc/stat``)."""
    with open("/proc/stat") as f:
        fields = [float(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _quiet(window: float = 0.5, below: float = 25.0) -> bool:
    """Whether the machine's cores were less than ``below`` % busy over the next ``window``
    seconds."""
    busy0, total0 = _cpu_times()
    time.sleep(window)
    busy1, total1 = _cpu_times()
    return (busy1 - busy0) / max(total1 - total0, 1.0) * 100 < below


def _all_there(r: redis.Redis, ids: list[str], ask: Callable[[Any, str], Any],
               there: Callable[[Any], bool]) -> Callable[[], bool]:
    """A check that ``there`` holds for every request, ``ask`` queuing the command that tells
    on a pipeline. Each call asks only about the requests not yet there: asking about the
    whole burst every few ms cost the load generator and Redis more CPU than a worker uses,
    taken from the workers being measured (at a lower priority)."""
    waiting = set(ids)

    def check() -> bool:
        left = sorted(waiting)
        pipe = r.pipeline(transaction=False)
        for rid in left:
            ask(pipe, rid)
        waiting.difference_update(
            rid for rid, got in zip(left, pipe.execute(), strict=True) if there(got))
        return not waiting

    return check


def scale_phase(stack: BenchStack, rt: Runtime, counts: list[int], burst: int,
                agents: int) -> list[tuple[int, float, float, float]]:
    """A burst of requests with N workers: requests/s to pending, and to every card, and how
    busy the machine's cores were until pending (100 %: every core)."""
    out = []
    r = rt.redis
    for n in counts:
        stack.set_workers(n)
        # Ready once each has registered with rq (after loading the policy and the masker).
        wait_until(lambda: len(Worker.all(connection=rt.redis_bytes)) == n, 120,
                   f"{n} workers registered")
        # A worker registers before its delivery process has loaded its stack (about a
        # second of CPU each): the burst starts once the machine is quiet again.
        wait_until(_quiet, 60, f"{n} workers: machine quiet", every=0)
        ids = [f"sc{n}-{i}" for i in range(burst)]
        pipe = r.pipeline(transaction=False)
        for i, rid in enumerate(ids):
            pipe.xadd(rt.keys.requests, {"body": request_body(rid, f"agent:load-{i % agents}")})
        busy0, total0 = _cpu_times()
        t0 = time.time()
        pipe.execute()

        pending = _all_there(r, ids, lambda p, rid: p.hget(rt.keys.request(rid), "status"),
                             lambda status: status == "pending")
        wait_until(pending, 300, f"{n} workers: pending", every=0.02)
        t_pending = time.time() - t0
        busy1, total1 = _cpu_times()
        busy = (busy1 - busy0) / max(total1 - total0, 1.0) * 100
        carded = _all_there(r, ids, lambda p, rid: p.hlen(rt.keys.cards(rid)),
                            lambda cards: int(cards) >= 3)
        wait_until(carded, 300, f"{n} workers: cards", every=0.02)
        t_cards = time.time() - t0
        out.append((n, burst / t_pending, burst / t_cards, busy))
    return out


# --- traces ---------------------------------------------------------------------------------
class SpanSink:
    """A minimal OTLP/HTTP receiver on loopback: the processes export their spans here
    (``SIGNOFF_OTLP_ENDPOINT``), and the stage figures are read from them."""

    def __init__(self) -> None:
        from bench._stack import free_port

        self.port = free_port()
        self.spans: list[tuple[str, str, float]] = []  # name, channel, duration ms
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SpanSink:
        self.thread.start()
        wait_until(lambda: self._up(), 10, "the span receiver")
        return self

    def _up(self) -> bool:
        try:
            requests.get(self.url + "/up", timeout=0.5)
            return True
        except requests.RequestException:
            return False

    def _serve(self) -> None:
        import asyncio

        from aiohttp import web
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        async def traces(request: web.Request) -> web.Response:
            msg = ExportTraceServiceRequest()
            msg.ParseFromString(await request.read())
            got = []
            for rs in msg.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        attrs = {a.key: a.value.string_value for a in span.attributes}
                        got.append((span.name, attrs.get("channel", ""),
                                    (span.end_time_unix_nano - span.start_time_unix_nano) / 1e6))
            with self.lock:
                self.spans += got
            return web.Response(body=ExportTraceServiceResponse().SerializeToString(),
                                content_type="application/x-protobuf")

        async def up(request: web.Request) -> web.Response:
            return web.Response(text="up")

        async def run() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_post("/v1/traces", traces)
            app.router.add_get("/up", up)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            await asyncio.Event().wait()

        asyncio.run(run())

    def stages(self) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        with self.lock:
            for name, channel, ms in self.spans:
                out.setdefault(f"{name} {channel}".strip(), []).append(ms)
        return out


# --- main -----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=20.0, help="requests per second")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the normal phase")
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--approvers", type=int, default=4, choices=range(1, len(APPROVERS) + 1))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--click-rate", type=float, default=50.0)
    ap.add_argument("--click-seconds", type=float, default=10.0)
    ap.add_argument("--slack-429", type=float, default=60.0, metavar="SECONDS",
                    help="Slack answers 429 (Retry-After 1) to every post and update for this "
                         "long in the 429 phase (0: skip the phase)")
    ap.add_argument("--memory-requests", type=int, default=1000)
    ap.add_argument("--scale", default="1,2,4", help="worker counts for scale-out ('' skips)")
    ap.add_argument("--scale-requests", type=int, default=300)
    ap.add_argument("--no-latency", action="store_true",
                    help="fakes answer at once (default: the platforms' latency profiles)")
    ap.add_argument("--worker-nice", type=int, default=None, metavar="N",
                    help="SIGNOFF_WORKER_NICE for the worker and delivery processes (default: "
                         "Signoff's own, 10; 0 runs them at the web's priority)")
    ap.add_argument("--trace", action="store_true",
                    help="the processes export OpenTelemetry spans to a receiver here; the "
                         "stage figures are read from them (costs some CPU)")
    args = ap.parse_args()

    slack_latency = None if args.no_latency else SLACK
    teams_latency = None if args.no_latency else TEAMS
    fake = FakeSlack(latency=slack_latency).start()
    bf = FakeBotFramework(Path(tempfile.mkdtemp()), APP_ID, APP_PASSWORD,
                          latency=teams_latency).start()
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SIGNOFF_SLACK_API_URL": fake.url, "MICROSOFT_APP_ID": APP_ID,
           "MICROSOFT_APP_PASSWORD": APP_PASSWORD,
           "SIGNOFF_TEAMS_OPENID_METADATA_URL": bf.metadata_url,
           "SIGNOFF_TEAMS_LOGIN_URL": bf.login_url, "SIGNOFF_TEAMS_ALLOWED_TENANTS": TENANT,
           "REQUESTS_CA_BUNDLE": str(bf.ca_path), "SIGNOFF_DEMO_SIGN_IN": "1",
           "SIGNOFF_TRUSTED_STREAM": "true"}
    if args.worker_nice is not None:
        env["SIGNOFF_WORKER_NICE"] = str(args.worker_nice)
    sink = SpanSink().start() if args.trace else None
    if sink is not None:
        env["SIGNOFF_OTLP_ENDPOINT"] = sink.url
        global AGENT_TRACER
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=sink.url + "/v1/traces")))
        AGENT_TRACER = provider.get_tracer("bench-agent")
    stack = BenchStack(policy(args.agents), env=env)
    results: dict[str, Any] = {}
    try:
        url = stack.start_redis()
        print("baseline (rq no-op jobs) ...", flush=True)
        base = rq_baseline(stack, 300, 100)
        settings = Settings.model_validate({
            "redis_url": url, "policy_path": stack.policy, "trusted_stream": True,
            "hmac_secret": SECRETS["SIGNOFF_HMAC_SECRET"], "data_keys": SECRETS["SIGNOFF_DATA_KEYS"],
            "masking_key": SECRETS["SIGNOFF_MASKING_KEY"]})
        rt = Runtime(settings)
        install_teams(rt, bf.service_url)
        stack.start_signoff(workers=args.workers)
        tokens = {n: rt.tokens.create(TokenKind.PERSON, f"{n}@example.com")
                  for n, _s, _a in APPROVERS}
        print("warm-up ...", flush=True)
        run_phase(stack, rt, fake, bf, tokens, "warm", 2, 2, args.agents, 1,
                  stack.worker_pids())
        time.sleep(2)
        print(f"normal: {args.rate:.0f} requests/s for {args.seconds:.0f} s ...", flush=True)
        normal = run_phase(stack, rt, fake, bf, tokens, "ld", args.rate, args.seconds,
                           args.agents, args.approvers, stack.worker_pids())
        print(f"clicks: {args.click_rate:.0f}/s for {args.click_seconds:.0f} s ...", flush=True)
        clicks = click_phase(stack, rt, fake, bf, tokens, args.click_rate, args.click_seconds,
                             args.agents)
        storm = None
        if args.slack_429:
            print(f"Slack 429 for {args.slack_429:.0f} s ...", flush=True)
            for method in ("chat.postMessage", "chat.update"):
                fake.inject(method, "429", seconds=args.slack_429, retry_after=1)
            storm = run_phase(stack, rt, fake, bf, tokens, "st", args.rate,
                              max(args.slack_429, args.seconds), args.agents, args.approvers,
                              stack.worker_pids())
            fake.clear_faults()
        print("memory ...", flush=True)
        per_pending, record_bytes = memory_phase(rt, args.memory_requests, args.agents)
        scale = []
        if args.scale:
            print("scale-out ...", flush=True)
            scale = scale_phase(stack, rt, [int(x) for x in args.scale.split(",")],
                                args.scale_requests, args.agents)
        if sink is not None:
            time.sleep(6)  # the processes' batch exporters flush every 5 s
        results = {"base": base, "normal": normal, "clicks": clicks, "storm": storm,
                   "memory": (per_pending, record_bytes), "scale": scale,
                   "stages": sink.stages() if sink is not None else {}}
        report(args, results, fake, bf)
        rt.close()
    finally:
        stack.stop()
        fake.stop()
        bf.stop()


def report(args: argparse.Namespace, res: dict[str, Any], fake: FakeSlack,
           bf: FakeBotFramework) -> None:
    base, normal, clicks, storm = res["base"], res["normal"], res["clicks"], res["storm"]
    p = print
    p()
    p(f"Signoff load benchmark: {args.rate:.0f} requests/s for {args.seconds:.0f} s, "
      f"{args.workers} worker process(es), {os.cpu_count()} CPU(s); cards to Slack + Teams + web")
    nice = "Signoff's default" if args.worker_nice is None else args.worker_nice
    p(f"worker and delivery processes at nice {nice} (SIGNOFF_WORKER_NICE)")
    p(f"latency: Slack {fake.latency.describe()}; Teams {bf.latency.describe()}; "
      f"rate limits: Slack 1 post/s per channel (bursts), Teams 50 requests/s per app")
    p(f"{'measure':58} {'p50':>8} {'p99':>8} {'max':>8}")

    def row(label: str, values: list[float], extra: str = "") -> dict[str, float]:
        s = summary(values)
        p(f"{label:58} {s['p50']:8.1f} {s['p99']:8.1f} {s['max']:8.1f}  (n={len(values)}){extra}")
        return s

    p(f"-- normal phase ({len(normal['ids'])} requests)")
    for ch in ("slack", "teams", "web"):
        row(f"XADD -> first {ch} card, ms", first_card_ms(normal, ch))
    dig = len(normal["obs"].digested)
    p(f"   Slack: {dig} of {len(normal['ids'])} requests on a digest (channel rate)")
    for ch in ("api", "slack", "teams"):
        row(f"click -> agent reply at ~{args.rate:.0f}/s, {ch}, ms", click_ms(normal, ch))
    cpu_ms = normal["cpu"] * 1000 / max(len(normal["ids"]), 1)
    p(f"{'worker CPU per request (3 channels), ms':58} {cpu_ms:8.1f}")
    p(f"   exactly once: {normal['check']}; click errors: {len(normal['clicker'].errors)}")
    for line in normal["clicker"].errors[:3]:
        p("   error:", line)
    p(f"-- clicks at {clicks['rate']:.1f}/s ({len(clicks['ids'])} requests)")
    s_api = row("click -> agent reply, api, ms", click_ms(clicks, "api"))
    for ch in ("slack", "teams"):
        row(f"click -> agent reply, {ch}, ms", click_ms(clicks, ch))
    for ch, (before, after) in sorted(clicks["split"].items()):
        row(f"   {ch}: click -> vote recorded, ms", before)
        row(f"   {ch}: vote recorded -> agent reply, ms", after)
    p(f"{'rq no-op enqueue -> finished (baseline), ms':58} {base['p50']:8.1f} {base['p99']:8.1f}"
      f" {base['max']:8.1f}")
    p(f"   ratio click -> reply (api) / rq no-op: p50 {s_api['p50'] / base['p50']:.2f}, "
      f"p99 {s_api['p99'] / base['p99']:.2f}")
    p(f"   click errors: {len(clicks['clicker'].errors)}")
    for line in clicks["clicker"].errors[:3]:
        p("   error:", line)
    if storm is not None:
        p(f"-- Slack answering 429 for {args.slack_429:.0f} s ({len(storm['ids'])} requests)")
        for ch in ("teams", "web", "slack"):
            s = row(f"XADD -> first {ch} card, ms", first_card_ms(storm, ch))
            if ch != "slack":
                ref = summary(first_card_ms(normal, ch))
                p(f"   vs normal phase p99: {s['p99'] / ref['p99']:.2f}x")
        row("click -> agent reply (any channel), ms", click_ms(storm))
        p(f"   exactly once: {storm['check']}; click errors: {len(storm['clicker'].errors)}")
    per, record = res["memory"]
    p(f"{'Redis memory per pending request, bytes':58} {per:8.0f}  (record hash {record:.0f}; "
      f"{args.memory_requests} through the real path)")
    cards_per_s = len(normal["ids"]) / args.seconds
    p(f"{'requests/s carded in the normal phase (offered rate)':58} {cards_per_s:8.1f}  "
      f"rq no-op jobs/s (1 worker): {base['throughput']:.1f}, ratio "
      f"{cards_per_s / base['throughput']:.2f}")
    if res["stages"]:
        p("-- stages, from the processes' OpenTelemetry spans (every phase)")
        for name, values in sorted(res["stages"].items()):
            row(f"span {name}, ms", values)
    for n, pend, cards, busy in res["scale"]:
        p(f"{f'scale-out, {n} worker(s): requests/s to pending / to every card':58} "
          f"{pend:8.1f} {cards:8.1f}  (cores busy until pending: {busy:.0f} %)")
    if res["scale"]:
        p("   every card includes a Teams post per request: Teams allows 50 requests/s per "
          "app, so no number of workers carries more than about 50 requests/s to every card")


if __name__ == "__main__":
    main()
