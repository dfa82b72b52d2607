"""Load benchmark: N agents and M approvers against the whole running stack for a fixed time.

Run: ``.venv/bin/python bench/load.py`` (options: ``--agents``, ``--approvers``, ``--seconds``,
``--workers``, ``--memory-requests``, ``--fill``, ``--slack-429``). Everything runs here: a
private redis-server, ``signoff intake``, ``signoff worker`` (×``--workers``) and
``signoff web`` as processes, and the fake Slack Web API and fake Bot Framework
(``tests/fakes``) in this process. Every request posts a card to Slack, to Teams and to the
web inbox.

- **Agents** (threads) loop: XADD a request, BLPOP its reply, send the next.
- **Approvers** (threads) take each card as it is posted and approve it, in turn in Slack
  (a signed block_actions request), in Teams (refresh, then an adaptiveCard/action invoke) and
  over the HTTP API.

It prints requests per second to card posted, click → agent reply latency (p50/p99/max, and
per channel), Redis memory per pending request, the worker time each job costs, and the
``pending`` command's latency (Slack ``/signoff pending``, ``GET /api/v1/requests``, the inbox
page) with ``--memory-requests`` (1,000) and then ``--fill`` (100,000) more requests pending.
The baselines are measured in the same run: rq no-op jobs per second and no-op enqueue →
finished latency on the same Redis (same worker class and serializer), and the same
``pending`` commands with the 1,000 pending (a flat ratio means no command scans every
pending request). The 100,000 are written with the store's own Lua
scripts in pipelines (a copy of one real prepared request under new ids), not 100,000
prepare jobs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis
import requests
from rq import Queue
from rq.serializers import JSONSerializer

from bench._stack import SECRETS, BenchStack, summary, wait_until
from bench.lifecycle import WORKER_CODE
from signoff.runtime import Runtime
from signoff.settings import Settings
from signoff.tokens import TokenKind
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
        time.sleep(0.05)
    worker.terminate()
    worker.wait(10)
    r.flushall()
    return {"throughput": throughput, **summary(lat)}


# --- the run --------------------------------------------------------------------------------
class Load:
    """Agents, approvers and the card watcher for one timed run."""

    def __init__(self, stack: BenchStack, rt: Runtime, fake: FakeSlack, bf: FakeBotFramework,
                 tokens: dict[str, str], agents: int, approvers: int, run: str) -> None:
        self.run_name = run
        self.stack = stack
        self.rt = rt
        self.fake = fake
        self.bf = bf
        self.tokens = tokens
        self.agents = agents
        self.approvers = approvers
        self.sent: dict[str, float] = {}
        self.replied: dict[str, float] = {}
        self.carded: dict[str, float] = {}  # first card, any channel
        self.slack_carded: dict[str, float] = {}
        self.clicked: dict[str, tuple[float, str]] = {}
        self.errors: list[str] = []
        self.cards: queue.Queue[str] = queue.Queue()
        self.stop_sending = threading.Event()
        self.stop_all = threading.Event()
        self.lock = threading.Lock()
        self.seq = itertools.count()

    def agent(self, n: int) -> None:
        r = redis.Redis.from_url(self.rt.settings.redis_url or "", decode_responses=True)
        name = f"agent:load-{n}"
        while not self.stop_sending.is_set():
            rid = f"{self.run_name}-{n}-{next(self.seq)}"
            with self.lock:
                self.sent[rid] = time.time()
            r.xadd(self.rt.keys.requests, {"body": request_body(rid, name)})
            got = None
            while got is None and not self.stop_all.is_set():
                got = r.blpop([self.rt.keys.reply(rid)], timeout=1)
            if got is None:
                return
            with self.lock:
                self.replied[rid] = time.time()
            if json.loads(got[1])["status"] != "approved":
                self.errors.append(f"{rid}: {got[1][:200]}")

    def watcher(self) -> None:
        """Turns each request's first card (Slack or Teams) into work for the approvers, and
        records when its Slack card was posted."""
        seen = seen_teams = 0
        while not self.stop_all.is_set():
            now = time.time()
            calls = self.fake.calls("chat.postMessage")
            for call in calls[seen:]:
                meta = call.params.get("metadata") or {}
                if not isinstance(meta, dict) or meta.get("event_type") != "signoff_card":
                    continue  # vote replies in the card's thread carry metadata too
                rid = str((meta.get("event_payload") or {}).get("request_id") or "")
                if rid.startswith(self.run_name + "-") and call.status == 200 and \
                        not call.error and rid not in self.slack_carded:
                    self.slack_carded[rid] = call.at
                    self._ready(rid, call.at)
            seen = len(calls)
            posts = self.bf.posts()
            for post in posts[seen_teams:]:
                summary_text = str(post.body.get("summary", ""))
                rid = summary_text.removeprefix("Approval request ").split(":", 1)[0]
                if rid.startswith(self.run_name + "-"):
                    self._ready(rid, now)
            seen_teams = len(posts)
            time.sleep(0.01)

    def _ready(self, rid: str, at: float) -> None:
        if rid not in self.carded:
            self.carded[rid] = at
            self.cards.put(rid)

    def approver(self, n: int) -> None:
        name, slack_id, aad = APPROVERS[n % len(APPROVERS)]
        http = requests.Session()
        http.trust_env = False
        teams = TeamsClient(self.bf, self.stack)  # type: ignore[arg-type]
        channels = itertools.cycle(["slack", "teams", "api"][n % 3:] + ["slack", "teams",
                                                                        "api"][:n % 3])
        while not self.stop_all.is_set():
            try:
                rid = self.cards.get(timeout=0.2)
            except queue.Empty:
                continue
            channel = next(channels)
            if channel == "slack" and rid not in self.slack_carded:
                channel = "api"  # no Slack card (Slack refusing posts): decide elsewhere
            try:
                self.click(http, teams, channel, rid, name, slack_id, aad)
            except Exception as exc:  # a failed click is counted, not fatal
                self.errors.append(f"{channel} click on {rid}: {type(exc).__name__}: {exc}")

    def click(self, http: requests.Session, teams: TeamsClient, channel: str, rid: str,
              name: str, slack_id: str, aad: str) -> None:
        if channel == "slack":
            card = self.fake.cards(rid)[0]
            payload = block_action(slack_id, card_buttons(card.blocks or [])["signoff_approve"],
                                   channel=card.channel, message_ts=card.ts, fake=self.fake)
            form = urlencode({"payload": json.dumps(payload)})
            headers = signed_headers(form, secret=SIGNING_SECRET)
            t = time.time()
            resp = http.post(self.stack.url + "/slack/events", data=form, headers=headers,
                             timeout=30)
        elif channel == "teams":
            post = self._teams_post(rid)
            base = post.card
            assert base is not None
            refresh = self._invoke(teams, "refresh", base["refresh"]["action"]["data"], name,
                                   aad)
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

    def _teams_post(self, rid: str) -> Any:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for post in self.bf.posts():
                if str(post.body.get("summary", "")).startswith(f"Approval request {rid}:"):
                    return post
            time.sleep(0.02)
        raise RuntimeError(f"no Teams card for {rid}")

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

    def run(self, seconds: float) -> float:
        threads = [threading.Thread(target=self.watcher, daemon=True)]
        threads += [threading.Thread(target=self.approver, args=(i,), daemon=True)
                    for i in range(self.approvers)]
        agents = [threading.Thread(target=self.agent, args=(i,), daemon=True)
                  for i in range(self.agents)]
        for t in threads + agents:
            t.start()
        start = time.time()
        time.sleep(seconds)
        self.stop_sending.set()
        end = time.time()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with self.lock:
                if set(self.sent) <= set(self.replied):
                    break
            time.sleep(0.1)
        self.stop_all.set()
        for t in threads + agents:
            t.join(10)
        return end - start


def stage_times(rt: Runtime, ids: list[str]) -> dict[str, list[float]]:
    """Where the time from XADD to the cards goes: the audit's timestamps per request."""
    out: dict[str, list[float]] = {"created -> pending": [], "pending -> slack card": [],
                                   "pending -> teams card": [], "pending -> web card": []}
    for rid in ids[:300]:
        events = {e.event + (":" + str(e.details.get("channel")) if e.event == "card_posted"
                             else ""): e.ts for e in rt.audit.for_request(rid)}
        if "requested" in events and "prepared" in events:
            out["created -> pending"].append((events["prepared"] - events["requested"]) * 1000)
        for ch in ("slack", "teams", "web"):
            if f"card_posted:{ch}" in events and "prepared" in events:
                out[f"pending -> {ch} card"].append(
                    (events[f"card_posted:{ch}"] - events["prepared"]) * 1000)
    return out


def job_times(rt: Runtime) -> dict[str, tuple[int, float]]:
    """rq's own record of each finished job (kept for its result TTL): count and total ms of
    worker time per job function."""
    from rq.job import Job

    r = rt.redis_bytes
    out: dict[str, tuple[int, float]] = {}
    for key in r.scan_iter(match=b"rq:job:*", count=1000):
        job_id = key.decode().split(":", 2)[2]
        try:
            job = Job.fetch(job_id, connection=r, serializer=JSONSerializer)
        except Exception:  # expired meanwhile, or not a job hash
            continue
        if job.started_at is None or job.ended_at is None:
            continue
        name = job.func_name or "?"
        n, total = out.get(name, (0, 0.0))
        out[name] = (n + 1, total + (job.ended_at - job.started_at).total_seconds() * 1000)
    return out


# --- pending with many requests -------------------------------------------------------------
def fill_pending(rt: Runtime, template_id: str, count: int, batch: int = 2000) -> float:
    """``count`` more pending requests, each a copy of one prepared request under a new id,
    written with the store's create and open scripts (the same transitions prepare uses)."""
    template = rt.redis.hgetall(rt.keys.request(template_id))
    skip = {"status", "version", "created_at", "updated_at", "deadline", "index_keys",
            "replied_at", "decided_at"}
    fields = {k: v for k, v in template.items() if k not in skip}
    groups = [rt.keys.pending_for_group("dba")]
    t0 = time.perf_counter()
    now = time.time()
    deadline = now + 4 * 3600
    for start in range(0, count, batch):
        pipe = rt.redis.pipeline(transaction=False)
        for i in range(start, min(start + batch, count)):
            rid = f"fill-{i}"
            f = {**fields, "id": rid}
            rt.store._create(keys=[rt.keys.request(rid), rt.keys.all_requests,
                                   rt.keys.received],
                             args=[rid, repr(now + i * 1e-6), json.dumps(f)], client=pipe)
            rt.store._open(keys=[rt.keys.request(rid), rt.keys.pending,
                                 rt.keys.deadlines, rt.keys.received],
                           args=[rid, repr(now), repr(deadline),
                                 json.dumps({"index_keys": json.dumps(groups)}),
                                 json.dumps(groups)], client=pipe)
        pipe.execute()
    return time.perf_counter() - t0


def pending_latency(stack: BenchStack, token: str, inbox: requests.Session,
                    samples: int) -> dict[str, dict[str, float]]:
    http = requests.Session()
    http.trust_env = False
    form = urlencode({"command": "/signoff", "text": "pending", "user_id": "U0ALICE",
                      "channel_id": "C0GENERAL", "team_id": "T0SIGNOFF",
                      "response_url": "http://127.0.0.1:9/x", "trigger_id": "1.1.t"})
    out: dict[str, list[float]] = {"slack /signoff pending": [], "GET /api/v1/requests": [],
                                   "inbox page": []}
    for _ in range(samples):
        t = time.perf_counter()
        resp = http.post(stack.url + "/slack/events", data=form,
                         headers=signed_headers(form, secret=SIGNING_SECRET), timeout=30)
        out["slack /signoff pending"].append((time.perf_counter() - t) * 1000)
        assert (resp.status_code == 200 and "fill-" in resp.text) or "ld-" in resp.text \
            or "mem-" in resp.text, resp.text[:300]
        t = time.perf_counter()
        resp = http.get(stack.url + "/api/v1/requests?status=pending&limit=20",
                        headers={"Authorization": f"Bearer {token}"}, timeout=30)
        out["GET /api/v1/requests"].append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200 and len(resp.json()["items"]) == 20, resp.text[:300]
        t = time.perf_counter()
        resp = inbox.get(stack.url + "/inbox", timeout=30)
        out["inbox page"].append((time.perf_counter() - t) * 1000)
        assert resp.status_code == 200, resp.status_code
    return {k: summary(v) for k, v in out.items()}


def inbox_session(stack: BenchStack) -> requests.Session:
    http = requests.Session()
    http.trust_env = False
    page = http.get(stack.url + "/inbox/login", timeout=10)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    if csrf is None:
        raise SystemExit("no inbox sign-in form")
    resp = http.post(stack.url + "/inbox/auth/demo", timeout=10,
                     data={"csrf": csrf.group(1), "email": "alice@example.com", "next": "/inbox"})
    if resp.status_code != 200:
        raise SystemExit(f"inbox sign-in failed: {resp.status_code}")
    return http


def used_memory(r: redis.Redis) -> int:
    return int(r.info("memory")["used_memory"])


# --- main -----------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--agents", type=int, default=20)
    ap.add_argument("--approvers", type=int, default=4, choices=range(1, len(APPROVERS) + 1))
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--memory-requests", type=int, default=1000)
    ap.add_argument("--fill", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=30)
    ap.add_argument("--slack-429", type=float, default=0.0, metavar="SECONDS",
                    help="Slack answers 429 (Retry-After 1) to posts and updates for this long "
                         "from the start of the run")
    args = ap.parse_args()

    fake = FakeSlack().start()
    bf = FakeBotFramework(Path(__import__("tempfile").mkdtemp()), APP_ID, APP_PASSWORD).start()
    env = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SIGNING_SECRET,
           "SIGNOFF_SLACK_API_URL": fake.url, "MICROSOFT_APP_ID": APP_ID,
           "MICROSOFT_APP_PASSWORD": APP_PASSWORD,
           "SIGNOFF_TEAMS_OPENID_METADATA_URL": bf.metadata_url,
           "SIGNOFF_TEAMS_LOGIN_URL": bf.login_url, "SIGNOFF_TEAMS_ALLOWED_TENANTS": TENANT,
           "REQUESTS_CA_BUNDLE": str(bf.ca_path), "SIGNOFF_DEMO_SIGN_IN": "1"}
    stack = BenchStack(policy(args.agents), env=env)
    try:
        url = stack.start_redis()
        print("measuring the baseline (rq no-op jobs) ...", flush=True)
        base = rq_baseline(stack, 300, 100)
        settings = Settings.model_validate({
            "redis_url": url, "policy_path": stack.policy,
            "hmac_secret": SECRETS["SIGNOFF_HMAC_SECRET"], "data_keys": SECRETS["SIGNOFF_DATA_KEYS"],
            "masking_key": SECRETS["SIGNOFF_MASKING_KEY"]})
        rt = Runtime(settings)
        install_teams(rt, bf.service_url)
        stack.start_signoff(workers=args.workers)
        tokens = {n: rt.tokens.create(TokenKind.PERSON, f"{n}@example.com")
                  for n, _s, _a in APPROVERS}
        r = rt.redis

        # Warm-up: every process loads what it needs, one request end to end.
        warm = Load(stack, rt, fake, bf, tokens, agents=1, approvers=1, run="warm")
        warm.run(0.1)
        print("warm-up done; load for", args.seconds, "s", flush=True)
        if args.slack_429:
            for method in ("chat.postMessage", "chat.update"):
                fake.inject(method, "429", seconds=args.slack_429, retry_after=1)
        load = Load(stack, rt, fake, bf, tokens, args.agents, args.approvers, run="ld")
        elapsed = load.run(args.seconds)
        t_start = min(load.sent.values())
        carded = [rid for rid, at in load.slack_carded.items()
                  if rid in load.sent and at <= t_start + elapsed]
        card_rps = len(carded) / elapsed
        to_card = [(load.slack_carded[rid] - load.sent[rid]) * 1000 for rid in carded]
        first = [(load.carded[rid] - load.sent[rid]) * 1000 for rid in load.carded
                 if rid in load.sent]
        lat: dict[str, list[float]] = {"all": [], "slack": [], "teams": [], "api": []}
        for rid, (t, channel) in load.clicked.items():
            if rid in load.replied:
                ms = (load.replied[rid] - t) * 1000
                lat["all"].append(ms)
                lat[channel].append(ms)
        decided = sum(1 for _ in r.xrange(rt.keys.decisions, "-", "+"))
        stages = stage_times(rt, carded)
        job_ms = job_times(rt)
        unanswered = sorted(set(load.sent) - set(load.replied))

        # Memory per pending request: requests through the real path, no approver.
        time.sleep(2)
        mem_ids = [f"mem-{i}" for i in range(args.memory_requests)]
        before = used_memory(r)
        pipe = r.pipeline(transaction=False)
        for i, rid in enumerate(mem_ids):
            pipe.xadd(rt.keys.requests, {"body": request_body(rid, f"agent:load-{i % args.agents}")})
        pipe.execute()
        wait_until(lambda: r.zcard(rt.keys.pending) >= len(mem_ids), 600, "memory requests")
        wait_until(lambda: all(r.hlen(rt.keys.cards(rid)) >= 3 for rid in mem_ids[-20:]), 600,
                   "their cards")
        time.sleep(3)
        per_pending = (used_memory(r) - before) / len(mem_ids)
        record_bytes = sum(int(r.memory_usage(rt.keys.request(rid)) or 0)
                           for rid in mem_ids[:100]) / 100

        # The pending command with the memory requests pending (baseline), then --fill more.
        inbox = inbox_session(stack)
        small_n = r.zcard(rt.keys.pending)
        small = pending_latency(stack, tokens["alice"], inbox, args.samples)
        before_fill = used_memory(r)
        fill_s = fill_pending(rt, mem_ids[0], args.fill)
        big_n = r.zcard(rt.keys.pending)
        per_filled = (used_memory(r) - before_fill) / max(args.fill, 1)
        big = pending_latency(stack, tokens["alice"], inbox, args.samples)

        print()
        print(f"Signoff load benchmark: {args.agents} agents, {args.approvers} approvers, "
              f"{elapsed:.0f} s, {args.workers} worker process(es), cards to Slack + Teams + "
              f"web" + (f", Slack answering 429 for the first {args.slack_429:.0f} s"
                        if args.slack_429 else ""))
        print(f"{'measure':52} {'signoff':>10} {'baseline':>10} {'ratio':>7}")
        print(f"{'requests/s to card posted':52} {card_rps:10.1f} {base['throughput']:10.1f} "
              f"{card_rps / base['throughput']:7.2f}   (baseline: rq no-op jobs/s, 1 worker)")
        s = summary(to_card)
        print(f"{'XADD -> Slack card posted, p50 / p99 ms':52} {s['p50']:5.0f} /{s['p99']:5.0f}")
        s = summary(first)
        print(f"{'XADD -> first card (Slack or Teams), p50 / p99 ms':52} {s['p50']:5.0f} /"
              f"{s['p99']:5.0f}")
        for p in ("p50", "p99", "max"):
            v = summary(lat["all"])[p]
            print(f"{'click -> agent reply, ms ' + p:52} {v:10.1f} {base[p]:10.1f} "
                  f"{v / base[p]:7.2f}   (baseline: rq no-op enqueue -> finished)")
        for ch in ("slack", "teams", "api"):
            by = summary(lat[ch])
            print(f"{'  ' + ch + ': click -> reply p50 / p99 / max ms (n=' + str(len(lat[ch])) + ')':52}"
                  f" {by['p50']:5.0f} /{by['p99']:5.0f} /{by['max']:6.0f}")
        print(f"{'requests decided (one reply each)':52} {decided:10d}   "
              f"unanswered: {len(unanswered)}, failed clicks/replies: {len(load.errors)}")
        print(f"{'Redis memory per pending request, bytes':52} {per_pending:10.0f}   "
              f"(record hash {record_bytes:.0f}; the rest: indexes, audit entries, cards, "
              f"rq jobs; {args.memory_requests} through the real path)")
        print(f"{'  per pending request written by the fill, bytes':52} {per_filled:10.0f}   "
              f"({args.fill} in {fill_s:.1f} s)")
        for name in small:
            for p in ("p50", "p99"):
                v, b = big[name][p], small[name][p]
                print(f"{name + f' with {big_n} pending, ms ' + p:52} {v:10.1f} {b:10.1f} "
                      f"{v / b:7.2f}   (baseline: same, {small_n} pending)")
        for name, values in stages.items():
            st = summary(values)
            print(f"{'  stage ' + name + ', p50 / p99 ms':52} {st['p50']:5.0f} /{st['p99']:5.0f}")
        for func, (n, total) in sorted(job_ms.items(), key=lambda kv: -kv[1][1]):
            print(f"{'  worker time in ' + func.rsplit('.', 1)[-1] + ' (jobs)':52} "
                  f"{total / max(len(load.sent), 1):7.1f} ms per request ({n} jobs, "
                  f"{total / max(n, 1):.1f} ms each)")
        for line in load.errors[:5]:
            print("  error:", line)
        rt.close()
    finally:
        stack.stop()
        fake.stop()
        bf.stop()


if __name__ == "__main__":
    main()
