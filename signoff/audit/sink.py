"""SIEM delivery: every audit entry, at least once and in order, to each configured destination.

Each entry travels as a CloudEvent in structured mode (``cloudevents``' HTTP binding:
``application/cloudevents+json``), with ``id`` = the entry's chain hash, ``sequence`` = its
seq, ``subject`` = its request id and ``data`` = the entry as exported, so a receiver can
re-check the chain it is handed. Destinations:

- webhook: one POST per entry, signed per Standard Webhooks (``standardwebhooks``:
  ``webhook-id`` = the event id, ``webhook-timestamp``, ``webhook-signature: v1,...``);
- Splunk HTTP Event Collector: batches to ``/services/collector/event`` (HEC's own envelope,
  the CloudEvent as ``event``), answered ``{"code": 0}`` per batch;
- a JSON lines file, one CloudEvent per line, rotated at a size (``path.1`` .. ``path.N``).

A destination's cursor (the last stream id and seq it took) lives in Redis and only moves after
the destination acknowledged, through a Lua script that checks the mover still holds the
destination's lease, so two sink processes never interleave and a crash repeats at most one
batch (hence "at least once"; the event id lets a receiver drop the repeat). A failing
destination is retried with exponential back-off and jitter (tenacity), forever, without
skipping: the backlog (head seq minus cursor seq) is on ``/metrics``.

The sink is its own process (``signoff sink``), not an rq job in the worker: delivery to
someone else's SIEM can be down for hours, and that wait must neither hold workers that answer
people nor be split into jobs that could run out of order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp
import redis
from cloudevents.core.bindings.http import HTTPMessage, to_structured_event
from cloudevents.core.v1.event import CloudEvent
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from standardwebhooks import Webhook
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential_jitter

from signoff.audit.entry import Entry
from signoff.sink_config import FileSink, SinkConfig, SplunkSink, WebhookSink

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext

log = logging.getLogger(__name__)

EVENT_TYPE_PREFIX = "com.signoff.audit."


class DeliveryError(Exception):
    """A destination did not acknowledge a batch (it is retried, never skipped).

    ``delivered``: how many entries at the start of the batch it did acknowledge.
    """

    def __init__(self, message: str, delivered: int = 0) -> None:
        super().__init__(message)
        self.delivered = delivered


def cloud_event(entry: Entry, source: str) -> CloudEvent:
    """One audit entry as a CloudEvents 1.0 event."""
    attributes: dict[str, Any] = {
        "id": entry.hash, "source": source, "type": EVENT_TYPE_PREFIX + entry.event,
        "time": datetime.fromtimestamp(entry.ts, tz=UTC), "datacontenttype": "application/json",
        "sequence": str(entry.seq)}
    if entry.request_id:
        attributes["subject"] = entry.request_id
    return CloudEvent(attributes=attributes, data=entry.to_dict())


def structured(entry: Entry, source: str) -> HTTPMessage:
    """The entry as a structured-mode HTTP message (headers and JSON body)."""
    return to_structured_event(cloud_event(entry, source))


class Destination(Protocol):
    name: str

    async def deliver(self, entries: Sequence[Entry]) -> None: ...

    async def close(self) -> None: ...


class WebhookDestination:
    """POSTs each entry, signed per Standard Webhooks, and needs a 2xx for each."""

    def __init__(self, cfg: WebhookSink, source: str) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.source = source
        self.signer = Webhook(cfg.secret.get_secret_value())
        self._session: aiohttp.ClientSession | None = None

    async def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout))
        return self._session

    async def deliver(self, entries: Sequence[Entry]) -> None:
        http = await self._http()
        for i, e in enumerate(entries):
            msg = structured(e, self.source)
            body = msg.body.decode()
            now = datetime.now(tz=UTC)
            headers = {**msg.headers, "webhook-id": e.hash,
                       "webhook-timestamp": str(int(now.timestamp())),
                       "webhook-signature": self.signer.sign(e.hash, now, body)}
            try:
                async with http.post(self.cfg.url, data=msg.body, headers=headers) as resp:
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise DeliveryError(f"{self.name}: {type(exc).__name__} for seq {e.seq}",
                                    delivered=i) from exc
            if not 200 <= status < 300:
                raise DeliveryError(f"{self.name}: HTTP {status} for seq {e.seq}", delivered=i)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class SplunkDestination:
    """Sends a batch to Splunk HEC in one request (events concatenated, order kept)."""

    def __init__(self, cfg: SplunkSink, source: str) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.source = source
        self.url = cfg.url.rstrip("/") + "/services/collector/event"
        self._session: aiohttp.ClientSession | None = None

    async def deliver(self, entries: Sequence[Entry]) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.cfg.timeout))
        lines = []
        for e in entries:
            envelope: dict[str, Any] = {
                "time": e.ts, "source": self.source, "sourcetype": self.cfg.sourcetype,
                "event": json.loads(structured(e, self.source).body)}
            if self.cfg.index:
                envelope["index"] = self.cfg.index
            lines.append(json.dumps(envelope, separators=(",", ":")))
        headers = {"Authorization": "Splunk " + self.cfg.token.get_secret_value(),
                   "Content-Type": "application/json"}
        async with self._session.post(self.url, data="\n".join(lines).encode(),
                                      headers=headers) as resp:
            text = await resp.text()
            if resp.status != 200:
                raise DeliveryError(f"{self.name}: HTTP {resp.status}")
            try:
                code = json.loads(text).get("code")
            except (ValueError, AttributeError):
                code = None
            if code != 0:
                raise DeliveryError(f"{self.name}: HEC answered {text[:200]!r}")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class FileDestination:
    """Appends JSON lines (fsynced per batch) and rotates ``path`` -> ``path.1`` .. ``.keep``."""

    def __init__(self, cfg: FileSink, source: str) -> None:
        self.name = cfg.name
        self.cfg = cfg
        self.source = source

    def _rotate(self) -> None:
        path = self.cfg.path
        oldest = path.with_name(f"{path.name}.{self.cfg.keep}")
        if oldest.exists():
            oldest.unlink()
        for i in range(self.cfg.keep - 1, 0, -1):
            older = path.with_name(f"{path.name}.{i}")
            if older.exists():
                os.replace(older, path.with_name(f"{path.name}.{i + 1}"))
        os.replace(path, path.with_name(f"{path.name}.1"))

    def _write(self, entries: Sequence[Entry]) -> None:
        path = self.cfg.path
        path.parent.mkdir(parents=True, exist_ok=True)
        data = b"".join(structured(e, self.source).body + b"\n" for e in entries)
        if path.exists() and path.stat().st_size > 0 and (
                path.stat().st_size + len(data) > self.cfg.max_bytes):
            self._rotate()
        with path.open("ab") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    async def deliver(self, entries: Sequence[Entry]) -> None:
        await asyncio.to_thread(self._write, entries)

    async def close(self) -> None:
        return None


def destination(cfg: SinkConfig, source: str) -> Destination:
    if isinstance(cfg, WebhookSink):
        return WebhookDestination(cfg, source)
    if isinstance(cfg, SplunkSink):
        return SplunkDestination(cfg, source)
    return FileDestination(cfg, source)


def event_source(rt: AuditContext) -> str:
    return f"urn:signoff:{rt.keys.audit}"


@cache
def _advance_script() -> str:
    return resources.files("signoff.lua").joinpath("audit_sink_advance.lua").read_text()


class Sink:
    """Delivers the audit stream to destinations, each with its own cursor and lease.

    Args:
        rt: the runtime.
        destinations: where to deliver (default: built from ``SIGNOFF_AUDIT_SINKS``).
        batch: entries per delivery.
        poll: seconds between looks at the stream when a destination is caught up.
        backoff: (first, longest) wait in seconds between retries of a failing batch.
        lease_ttl: seconds a destination's lease lasts without renewal.
    """

    def __init__(self, rt: AuditContext, destinations: Sequence[Destination] | None = None, *,
                 batch: int = 100, poll: float = 0.5, backoff: tuple[float, float] = (1.0, 60.0),
                 lease_ttl: float = 30.0) -> None:
        self.rt = rt
        self.r: Any = rt.redis
        src = event_source(rt)
        self.destinations = list(destinations) if destinations is not None else [
            destination(c, src) for c in rt.settings.audit_sinks]
        self.batch = batch
        self.poll = poll
        self.backoff = backoff
        self.lease_ttl = lease_ttl
        self.token = uuid.uuid4().hex
        self._advance = rt.redis.register_script(_advance_script())
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """Deliver until :meth:`stop` (one task per destination)."""
        try:
            await asyncio.gather(*(self._loop(d) for d in self.destinations))
        finally:
            for d in self.destinations:
                await d.close()
                self.r.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                            "return redis.call('DEL', KEYS[1]) end return 0", 1,
                            self.rt.keys.audit_sink_lease(d.name), self.token)

    def _lease(self, name: str) -> bool:
        key = self.rt.keys.audit_sink_lease(name)
        ms = int(self.lease_ttl * 1000)
        if self.r.set(key, self.token, nx=True, px=ms):
            return True
        # Renew our own lease (a compare-and-expire: another holder's lease is left alone).
        return bool(self.r.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                "return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0",
                                1, key, self.token, ms))

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except TimeoutError:
            pass

    async def _loop(self, dest: Destination) -> None:
        while not self._stop.is_set():
            try:
                await self._round(dest)
            except redis.RedisError as exc:  # Redis away: nothing moved; try again shortly
                log.warning("sink %s: Redis unavailable (%s); retrying", dest.name, exc)
                await self._sleep(self.backoff[0])

    async def _round(self, dest: Destination) -> None:
        """One batch: lease, read after the cursor, deliver (retrying), move the cursor."""
        key = self.rt.keys.audit_sink(dest.name)
        if self._stop.is_set():
            return
        if not await asyncio.to_thread(self._lease, dest.name):
            await self._sleep(self.lease_ttl / 3)
            return
        cursor = await asyncio.to_thread(self.r.hget, key, "id")
        entries = await asyncio.to_thread(self.rt.audit.read_after, cursor or "",
                                          self.batch)
        if not entries:
            await self._sleep(self.poll)
            return
        await self._deliver(dest, entries)

    async def _move(self, dest: Destination, done: Sequence[Entry]) -> bool:
        """Record ``done`` as delivered (only while this process holds the lease)."""
        last = done[-1]
        moved = await asyncio.to_thread(
            self._advance, keys=[self.rt.keys.audit_sink(dest.name),
                                 self.rt.keys.audit_sink_lease(dest.name)],
            args=[self.token, last.stream_id, last.seq, len(done), repr(time.time())])
        if not moved:
            log.warning("sink %s: lease lost before seq %d was recorded; another process "
                        "delivers from here", dest.name, last.seq)
        return bool(moved)

    async def _deliver(self, dest: Destination, entries: Sequence[Entry]) -> None:
        """Deliver until acknowledged (or stopped). A destination that took the first part of
        a batch before failing (``DeliveryError.delivered``) has that part recorded, so a retry
        repeats only the rest."""
        key = self.rt.keys.audit_sink(dest.name)
        pending = list(entries)
        first, longest = self.backoff
        async for attempt in AsyncRetrying(
                wait=wait_exponential_jitter(initial=first, max=longest),
                retry=retry_if_exception_type((DeliveryError, aiohttp.ClientError,
                                               TimeoutError, OSError)),
                reraise=True):
            with attempt:
                if self._stop.is_set():
                    return  # the cursor stays where it is: the next run repeats the rest
                n = attempt.retry_state.attempt_number
                if n > 1 and not await asyncio.to_thread(self._lease, dest.name):
                    return  # another process took the destination over
                try:
                    await dest.deliver(pending)
                except (DeliveryError, aiohttp.ClientError, TimeoutError, OSError) as exc:
                    done = getattr(exc, "delivered", 0)
                    if done:
                        if not await self._move(dest, pending[:done]):
                            return
                        pending = pending[done:]
                    why = str(exc) or type(exc).__name__
                    log.warning("sink %s: seq %d..%d not delivered (attempt %d): %s",
                                dest.name, pending[0].seq, pending[-1].seq, n, why)
                    pipe = self.r.pipeline(transaction=False)
                    pipe.hset(key, "last_error", why[:300])
                    pipe.hsetnx(key, "failing_since", repr(time.time()))
                    pipe.hincrby(key, "failures", 1)
                    await asyncio.to_thread(pipe.execute)
                    raise
        await self._move(dest, pending)


class SinkCollector(Collector):
    """``/metrics``: each destination's backlog, delivered and failed counts, read from Redis
    at scrape time (so the web process reports what the sink process did)."""

    def __init__(self, rt: AuditContext) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        names = [c.name for c in self.rt.settings.audit_sinks]
        backlog = GaugeMetricFamily("signoff_audit_sink_backlog",
                                    "Audit entries not yet delivered to a SIEM destination",
                                    labels=["destination"])
        delivered = CounterMetricFamily("signoff_audit_sink_delivered",
                                        "Audit entries a SIEM destination acknowledged",
                                        labels=["destination"])
        failures = CounterMetricFamily("signoff_audit_sink_failures",
                                       "Failed delivery attempts to a SIEM destination",
                                       labels=["destination"])
        failing = GaugeMetricFamily("signoff_audit_sink_failing_seconds",
                                    "How long a SIEM destination has been failing (0: healthy)",
                                    labels=["destination"])
        if names:
            head = int(self.rt.redis.hget(self.rt.keys.audit_head, "seq") or 0)
            pipe = self.rt.redis.pipeline(transaction=False)
            for n in names:
                pipe.hgetall(self.rt.keys.audit_sink(n))
            now = time.time()
            for n, raw in zip(names, pipe.execute(), strict=True):
                raw = raw or {}
                backlog.add_metric([n], max(head - int(raw.get("seq", 0) or 0), 0))
                delivered.add_metric([n], int(raw.get("delivered", 0) or 0))
                failures.add_metric([n], int(raw.get("failures", 0) or 0))
                since = raw.get("failing_since") or ""
                failing.add_metric([n], now - float(since) if since else 0.0)
        yield backlog
        yield delivered
        yield failures
        yield failing


def status(rt: AuditContext) -> list[dict[str, Any]]:
    """Each destination's cursor, backlog and last error (``signoff sink --status``)."""
    head = int(rt.redis.hget(rt.keys.audit_head, "seq") or 0)
    out = []
    for c in rt.settings.audit_sinks:
        raw: dict[str, str] = rt.redis.hgetall(rt.keys.audit_sink(c.name)) or {}  # type: ignore[assignment]
        seq = int(raw.get("seq", 0) or 0)
        out.append({"destination": c.name, "kind": c.kind, "delivered_seq": seq,
                    "backlog": max(head - seq, 0), "last_error": raw.get("last_error", ""),
                    "failures": int(raw.get("failures", 0) or 0)})
    return out


def files_in_order(path: Path, keep: int) -> list[Path]:
    """A rotated file's parts, oldest first (``path.keep`` .. ``path.1``, ``path``)."""
    parts = [path.with_name(f"{path.name}.{i}") for i in range(keep, 0, -1)]
    return [p for p in [*parts, path] if p.exists()]
