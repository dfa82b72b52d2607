"""The intake consumer: reads ``signoff:requests`` with a consumer group and never drops a
message.

Each message is handled by :func:`signoff.lifecycle.ingest` (validate, store once, enqueue
``prepare``) and acknowledged only afterwards, so a crash redelivers it. Entries left pending
by a dead consumer are reclaimed with XAUTOCLAIM; one that keeps failing is moved to the
dead-letter stream with the reason after ``MAX_DELIVERIES`` attempts instead of looping.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

import redis

from signoff import lifecycle
from signoff.keys import INTAKE_GROUP
from signoff.runtime import Runtime
from workers.janitor import Janitor

log = logging.getLogger(__name__)

MAX_DELIVERIES = 5


class IntakeConsumer:
    """One member of the intake consumer group.

    Args:
        rt: the runtime.
        name: consumer name (default host-pid); must be unique among live consumers.
        block_ms: how long one XREADGROUP waits for new entries.
        batch: entries read per call.
    """

    def __init__(self, rt: Runtime, name: str | None = None, block_ms: int = 1000,
                 batch: int = 100, janitor: Janitor | None = None) -> None:
        self.rt = rt
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.batch = batch
        self.r = rt.redis_bytes  # bytes: a body that is not UTF-8 must still be read
        self.stream = rt.keys.requests
        self.janitor = janitor or Janitor(rt)
        self.reclaim_idle_ms = rt.settings.intake_reclaim_idle_ms
        self.handled = 0

    def ensure_group(self) -> None:
        """Create the group at the start of the stream (requests sent before any intake ran
        are read too)."""
        try:
            self.r.xgroup_create(self.stream, INTAKE_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def handle(self, msg_id: bytes, fields: dict[bytes, bytes]) -> str | None:
        """Ingest one message; return the id to prepare, if any. The caller acknowledges.

        A message with a ``cancel`` field (``{"id", "requester", "reason"}``) and no ``body``
        cancels that request instead.
        """
        cancel = fields.get(b"cancel")
        if cancel is not None and b"body" not in fields:
            lifecycle.cancel_message(self.rt, cancel, source=f"stream:{msg_id.decode()}")
            self.handled += 1
            return None
        body = fields.get(b"body")
        result = lifecycle.ingest(self.rt, body, source=f"stream:{msg_id.decode()}",
                                  enqueue=False)
        self.handled += 1
        return result.request_id if result.needs_prepare else None

    def _flush(self, to_prepare: list[str], acks: list[bytes]) -> None:
        """One prepare job for the batch, then acknowledge (a crash before the XACK only
        redelivers: ingest is idempotent)."""
        if to_prepare:
            self.rt.enqueue(lifecycle.JOB_PREPARE_BATCH, to_prepare)
        if acks:
            self.r.xack(self.stream, INTAKE_GROUP, *acks)

    def _handle_batch(self, messages: list[tuple[bytes, dict[bytes, bytes] | None]],
                      deliveries: dict[bytes, int] | None = None) -> int:
        to_prepare: list[str] = []
        acks: list[bytes] = []
        for msg_id, fields in messages:
            if fields is None:  # deleted from the stream meanwhile
                acks.append(msg_id)
                continue
            try:
                rid = self.handle(msg_id, fields)
            except (redis.ConnectionError, redis.TimeoutError):
                self._flush(to_prepare, acks)
                raise
            except Exception as exc:
                n = (deliveries or {}).get(msg_id, 1)
                log.exception("intake failed on %s (delivery %d)", msg_id.decode(), n)
                if n >= MAX_DELIVERIES:
                    self.rt.redis.xadd(self.rt.keys.dead, {
                        "reason": f"intake failed {n} times: {type(exc).__name__}",
                        "source": f"stream:{msg_id.decode()}"}, maxlen=100_000,
                        approximate=True)
                    acks.append(msg_id)
                continue
            if rid is not None and rid not in to_prepare:
                to_prepare.append(rid)
            acks.append(msg_id)
        self._flush(to_prepare, acks)
        return len(messages)

    def _deliveries(self, msg_id: bytes) -> int:
        rows = self.r.xpending_range(self.stream, INTAKE_GROUP, min=msg_id, max=msg_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    def reclaim(self) -> int:
        """Take over entries idle longer than the reclaim threshold (a crashed consumer's)."""
        claimed = 0
        start: Any = "0-0"
        while True:
            result = self.r.xautoclaim(self.stream, INTAKE_GROUP, self.name,
                                       min_idle_time=self.reclaim_idle_ms, start_id=start,
                                       count=self.batch)
            next_id, messages = result[0], result[1]
            self._handle_batch(messages, {m: self._deliveries(m) for m, _ in messages})
            claimed += len(messages)
            if next_id in (b"0-0", "0-0") or not messages:
                return claimed
            start = next_id

    def poll(self, block_ms: int | None = None) -> int:
        """Read and handle one batch of new entries; returns how many."""
        rows = self.r.xreadgroup(INTAKE_GROUP, self.name, {self.stream: ">"}, count=self.batch,
                                 block=self.block_ms if block_ms is None else block_ms)
        n = 0
        for _stream, messages in rows or []:
            n += self._handle_batch(messages)
        return n

    def own_pending(self) -> int:
        """Re-handle entries this consumer name read but never acknowledged (restart)."""
        rows = self.r.xreadgroup(INTAKE_GROUP, self.name, {self.stream: "0"}, count=self.batch)
        n = 0
        for _stream, messages in rows or []:
            n += self._handle_batch(messages, {m: self._deliveries(m) for m, _ in messages})
        return n

    def run(self, stop: threading.Event | None = None, reclaim_every: float = 5.0) -> None:
        """Consume until ``stop`` is set; survives Redis restarts by reconnecting."""
        stop = stop or threading.Event()
        last_reclaim = 0.0
        backoff = 0.2
        while not stop.is_set():
            try:
                if last_reclaim == 0.0:
                    self.ensure_group()
                    while self.own_pending():
                        pass
                now = time.monotonic()
                if now - last_reclaim >= reclaim_every:
                    self.reclaim()
                    self.janitor.tick()
                    last_reclaim = now
                self.poll()
                backoff = 0.2
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                last_reclaim = 0.0
