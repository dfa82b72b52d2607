"""SIEM delivery against local receivers that fail, slow down and restart: every entry arrives,
in order, as a signed CloudEvent; nothing is lost or reordered; the backlog is on /metrics."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from pydantic import SecretStr
from standardwebhooks import Webhook

from signoff import audit
from signoff.audit.sink import (
    FileDestination,
    Sink,
    SinkCollector,
    SplunkDestination,
    WebhookDestination,
    event_source,
    files_in_order,
)
from signoff.runtime import Runtime
from signoff.sink_config import FileSink, SplunkSink, WebhookSink

SECRET = "whsec_" + base64.b64encode(b"a" * 32).decode()
HEC_TOKEN = "hec-token-123"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A local HTTP receiver that records what arrives and misbehaves on request."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.port = free_port()
        self.seqs: list[int] = []  # every arrival, repeats included
        self.fail_next = 0
        self.hec_error_next = 0
        self.slow_next = 0
        self.slow_for = 0.0
        self.rejected = 0
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.kind == "webhook":
            try:
                Webhook(SECRET).verify(body, dict(request.headers))
            except Exception:
                self.rejected += 1
                return web.Response(status=401)
            assert request.headers["content-type"] == "application/cloudevents+json"
            events = [json.loads(body)]
        else:
            if request.headers.get("Authorization") != f"Splunk {HEC_TOKEN}":
                self.rejected += 1
                return web.json_response({"text": "Invalid token", "code": 4}, status=403)
            events = [json.loads(line)["event"] for line in body.decode().splitlines()]
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.Response(status=503)
        if self.hec_error_next > 0:
            self.hec_error_next -= 1
            return web.json_response({"text": "Server is busy", "code": 9})
        for ev in events:
            assert ev["specversion"] == "1.0" and ev["type"].startswith("com.signoff.audit.")
            assert ev["id"] == ev["data"]["hash"] and int(ev["sequence"]) == ev["data"]["seq"]
            self.seqs.append(int(ev["sequence"]))
        if self.slow_next > 0:  # recorded, but the answer comes after the sender gave up
            self.slow_next -= 1
            await asyncio.sleep(self.slow_for)
        if self.kind == "webhook":
            return web.Response(status=204)
        return web.json_response({"text": "Success", "code": 0})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def in_order(seqs: list[int], n: int) -> bool:
    """At least once and in order: each arrival is a repeat or the next one, and all came."""
    top = 0
    for s in seqs:
        if s > top + 1:
            return False
        top = max(top, s)
    return top == n and set(seqs) == set(range(1, n + 1))


async def wait_delivered(rt: Runtime, names: list[str], timeout: float = 40.0) -> None:
    async def done() -> bool:
        head = int(rt.redis.hget(rt.keys.audit_head, "seq") or 0)
        return all(int(rt.redis.hget(rt.keys.audit_sink(n), "seq") or 0) >= head
                   for n in names)

    async with asyncio.timeout(timeout):
        while not await done():
            await asyncio.sleep(0.05)


def scrape(rt: Runtime) -> str:
    reg = CollectorRegistry()
    reg.register(SinkCollector(rt))
    return generate_latest(reg).decode()


def with_sinks(rt: Runtime, sinks: list[Any]) -> Runtime:
    return Runtime(rt.settings.model_copy(update={"audit_sinks": sinks}))


async def test_every_entry_arrives_in_order_through_failures_slowness_and_restarts(
        rt: Runtime, tmp_path: Path) -> None:
    hook, hec = Receiver("webhook"), Receiver("splunk")
    await hook.start()
    await hec.start()
    hook_cfg = WebhookSink(kind="webhook", name="hook", url=hook.url + "/in",
                           secret=SecretStr(SECRET), timeout=0.5)
    hec_cfg = SplunkSink(kind="splunk", name="splunk", url=hec.url, token=SecretStr(HEC_TOKEN),
                         index="security", timeout=0.5)
    file_cfg = FileSink(kind="file", name="file", path=tmp_path / "siem" / "audit.jsonl",
                        max_bytes=4096, keep=100)
    srt = with_sinks(rt, [hook_cfg, hec_cfg, file_cfg])
    for i in range(40):
        srt.audit.append(audit.Event.VOTE, f"r{i}", "alice@example.com", choice="approve")
    hook.fail_next, hook.slow_next, hook.slow_for = 4, 2, 1.0
    hec.fail_next, hec.hec_error_next = 2, 3
    src = event_source(srt)
    sink = Sink(srt, [WebhookDestination(hook_cfg, src), SplunkDestination(hec_cfg, src),
                      FileDestination(file_cfg, src)],
                batch=7, poll=0.05, backoff=(0.02, 0.3))
    task = asyncio.create_task(sink.run())

    # More entries arrive while delivery is under way (another process appending).
    def more() -> None:
        for i in range(40, 80):
            srt.audit.append(audit.Event.DECIDED, f"r{i}", "bob@example.com", status="denied")

    writer = threading.Thread(target=more)
    writer.start()
    await asyncio.sleep(0.3)
    # The webhook receiver goes away (a restart): the backlog shows on /metrics meanwhile.
    await hook.stop()
    await asyncio.sleep(0.6)
    text = scrape(srt)
    line = next(x for x in text.splitlines()
                if x.startswith('signoff_audit_sink_backlog{destination="hook"}'))
    assert float(line.split()[-1]) > 0
    assert 'signoff_audit_sink_failures_total{destination="hook"}' in text
    await hook.start()
    writer.join(10)
    await wait_delivered(srt, ["hook", "splunk", "file"])
    sink.stop()
    await asyncio.wait_for(task, 10)
    await hook.stop()
    await hec.stop()

    n = 80
    assert hook.rejected == 0 and hec.rejected == 0
    assert in_order(hook.seqs, n), hook.seqs
    assert in_order(hec.seqs, n), hec.seqs
    # The slow answers were retried (at least once, not exactly once), but only the entry that
    # was in flight: what the receiver acknowledged before a failure is not sent again.
    assert n < len(hook.seqs) <= n + 4  # two slow answers, and perhaps one cut by the restart
    files = files_in_order(file_cfg.path, file_cfg.keep)
    assert len(files) > 2  # rotated
    lines = [json.loads(x) for f in files for x in f.read_text().splitlines()]
    assert [int(e["sequence"]) for e in lines] == list(range(1, n + 1))
    # The delivered data is the log itself: a receiver can re-check the chain.
    entries = [audit.Entry.from_dict(e["data"]) for e in lines]
    assert audit.verify_chain(entries).ok
    assert "backlog" in scrape(srt) and 'backlog{destination="hook"} 0.0' in scrape(srt)
    srt.close()


async def test_two_sink_processes_never_interleave_and_a_dead_one_is_taken_over(
        rt: Runtime) -> None:
    hook = Receiver("webhook")
    await hook.start()
    cfg = WebhookSink(kind="webhook", name="hook", url=hook.url, secret=SecretStr(SECRET),
                      timeout=2)
    srt = with_sinks(rt, [cfg])
    for i in range(30):
        srt.audit.append(audit.Event.VOTE, f"r{i}", "alice@example.com", choice="approve")
    src = event_source(srt)
    a = Sink(srt, [WebhookDestination(cfg, src)], batch=5, poll=0.05, lease_ttl=1.0)
    b = Sink(srt, [WebhookDestination(cfg, src)], batch=5, poll=0.05, lease_ttl=1.0)
    ta, tb = asyncio.create_task(a.run()), asyncio.create_task(b.run())
    await asyncio.sleep(0.3)
    # One of them dies without a word (its lease is left to expire).
    ta.cancel()
    for i in range(30, 60):
        srt.audit.append(audit.Event.VOTE, f"r{i}", "alice@example.com", choice="approve")
    await wait_delivered(srt, ["hook"])
    b.stop()
    await asyncio.wait_for(tb, 10)
    await hook.stop()
    assert in_order(hook.seqs, 60), hook.seqs
    srt.close()


def test_sink_settings_are_validated(rt: Runtime) -> None:
    from pydantic import ValidationError

    from tests.conftest import make_settings

    with pytest.raises(ValidationError, match="audit_sinks"):
        make_settings(str(rt.settings.redis_url), Path("/tmp/x"),
                      audit_sinks=[{"kind": "webhook", "name": "Bad Name!", "url": "ftp://x",
                                    "secret": "s"}])
    s = make_settings(str(rt.settings.redis_url), Path("/tmp/x"),
                      audit_sinks=json.loads('[{"kind": "file", "name": "f", "path": "/tmp/a"}]'))
    assert s.audit_sinks[0].kind == "file"


async def test_the_web_metrics_show_each_destination_backlog(rt: Runtime, tmp_path: Path) -> None:
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from bot.app import create_app

    cfg = FileSink(kind="file", name="files", path=tmp_path / "a.jsonl")
    srt = with_sinks(rt, [cfg])
    for i in range(7):
        srt.audit.append(audit.Event.VOTE, f"m{i}", "alice@example.com", choice="approve")
    srv = TestServer(create_app(srt), host="127.0.0.1")
    await srv.start_server()
    try:
        async with ClientSession(str(srv.make_url(""))) as http:
            async with http.get("/metrics") as resp:
                text = await resp.text()
        head = srt.audit.head()[0]  # the seven votes, and whatever the app audited at start
        assert head >= 7
        assert f'signoff_audit_sink_backlog{{destination="files"}} {float(head)}' in text
        sink = Sink(srt, [FileDestination(cfg, event_source(srt))], poll=0.05)
        task = asyncio.create_task(sink.run())
        await wait_delivered(srt, ["files"], timeout=20)
        sink.stop()
        await asyncio.wait_for(task, 10)
        async with ClientSession(str(srv.make_url(""))) as http:
            async with http.get("/metrics") as resp:
                text = await resp.text()
        assert 'signoff_audit_sink_backlog{destination="files"} 0.0' in text
        assert f'signoff_audit_sink_delivered_total{{destination="files"}} {float(head)}' in text
    finally:
        await srv.close()
        srt.close()
