"""Prometheus metrics. Counters live in the process that counts; gauges about shared state
(pending requests, queue depth, dead letters) are read from Redis at scrape time, so every
web process reports the same truth without a push gateway."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from signoff.audit.sink import SinkCollector

if TYPE_CHECKING:
    from signoff.runtime import Runtime


class Metrics:
    """The web process's metrics on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "signoff_http_requests_total", "HTTP requests by route and status",
            ["route", "status"], registry=self.registry)
        self.votes = Counter(
            "signoff_votes_total", "Decision attempts by channel and result",
            ["channel", "result"], registry=self.registry)
        self.latency = Histogram(
            "signoff_http_request_seconds", "HTTP handling time by route", ["route"],
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))

    def watch(self, rt: Runtime) -> None:
        """Add the Redis-backed gauges."""
        self.registry.register(_StateCollector(rt))
        self.registry.register(SinkCollector(rt))


class _StateCollector(Collector):
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        r = self.rt.redis
        keys = self.rt.keys
        pipe = r.pipeline(transaction=False)
        pipe.zcard(keys.pending)
        pipe.zcard(keys.outbox)
        pipe.xlen(keys.dead)
        # rq owns its queues' key names (Queue.key); Signoff names only the queues.
        pipe.llen(self.rt.queue.key)
        pipe.llen(self.rt.urgent_queue.key)
        pending, outbox, dead, queued, urgent = pipe.execute()
        queued += urgent
        yield GaugeMetricFamily("signoff_pending_requests", "Requests waiting for a decision",
                                value=pending)
        yield GaugeMetricFamily("signoff_undelivered_decisions",
                                "Decided requests whose reply is not yet delivered", value=outbox)
        yield GaugeMetricFamily("signoff_dead_letters", "Messages in the dead-letter stream",
                                value=dead)
        yield GaugeMetricFamily("signoff_queued_jobs", "Jobs waiting in the rq queue",
                                value=queued)
