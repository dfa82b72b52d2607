"""The intake consumer: reads every registered agent's own request stream (and, in the trusted
single-agent mode, the shared ``{prefix}:requests``) with a consumer group and never drops a
message.

The requester of a message is the owner of the stream it was read from (an agent's ACL user
can XADD to its own stream only), never what the body says: :func:`signoff.lifecycle.ingest`
gets the owner. The set of streams is the agent registry, re-read every few seconds.

Each message is handled by :func:`signoff.lifecycle.ingest` (validate, store once, enqueue
``prepare``) and acknowledged only afterwards, so a crash redelivers it. Entries left pending
by a dead consumer are reclaimed with XAUTOCLAIM; one that keeps failing is moved to the
dead-letter stream with the reason (and the entry, encrypted) after ``MAX_DELIVERIES``
attempts instead of looping.

Once acknowledged an entry has served its purpose (the request is stored, with its body
encrypted): after each acknowledgement the stream is trimmed (``XTRIM MINID``) below the
oldest entry any consumer group still needs, i.e. its oldest unacknowledged entry or the first
one it has not read, so a stream holds only what is in flight and a crashed consumer's
entries stay until they are reclaimed.

Nothing an agent writes can stop the loop: an entry that fails is retried then dead-lettered,
an agent stream turned into another type (Redis 6 lets an agent SET its own keys) is
recorded, replaced and skipped, and any other error is logged and retried with a back-off
that resets once a round runs clean.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
from typing import Any

import redis

from signoff import crypto, lifecycle, tracing
from signoff.agents import AgentRegistry
from signoff.keys import INTAKE_GROUP
from signoff.runtime import Runtime
from workers.janitor import Janitor

log = logging.getLogger(__name__)

MAX_DELIVERIES = 5
DEAD_MAXLEN = 100_000

# Trim a request stream below the oldest entry any of its consumer groups still needs: the
# group's oldest pending (read, unacknowledged) entry, or the one after the last it was given.
# Atomic, so a group's reads and acknowledgements cannot interleave with the computation. A
# stream with no group is left alone. Returns how many entries were trimmed.
TRIM_ACKNOWLEDGED = """
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then return 0 end
local min_ms, min_seq = nil, nil
for _, row in ipairs(groups) do
  local g = {}
  for i = 1, #row, 2 do g[row[i]] = row[i + 1] end
  local ms, seq
  if tonumber(g['pending']) > 0 then
    ms, seq = parse(redis.call('XPENDING', KEYS[1], g['name'])[2])
  else
    ms, seq = parse(g['last-delivered-id'])
    seq = seq + 1
  end
  if min_ms == nil or ms < min_ms or (ms == min_ms and seq < min_seq) then
    min_ms, min_seq = ms, seq
  end
end
return redis.call('XTRIM', KEYS[1], 'MINID', string.format('%d-%d', min_ms, min_seq))
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class IntakeConsumer:
    """One member of the intake consumer group (on every stream it reads).

    Args:
        rt: the runtime.
        name: consumer name (default host-pid); must be unique among live consumers.
        block_ms: how long one XREADGROUP waits for new entries.
        batch: entries read per call.
        refresh_every: seconds between re-reads of the agent registry.
    """

    def __init__(self, rt: Runtime, name: str | None = None, block_ms: int = 1000,
                 batch: int = 100, janitor: Janitor | None = None,
                 refresh_every: float = 2.0) -> None:
        self.rt = rt
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.block_ms = block_ms
        self.batch = batch
        self.r = rt.redis_bytes  # bytes: a body that is not UTF-8 must still be read
        self.registry = AgentRegistry(rt.redis, rt.keys)
        self.janitor = janitor or Janitor(rt)
        self.reclaim_idle_ms = rt.settings.intake_reclaim_idle_ms
        self.refresh_every = refresh_every
        self.handled = 0
        self.errors = 0  # rounds that failed (for tests and metrics)
        # stream key -> owning agent name (None: the trusted shared stream)
        self.owners: dict[str, str | None] = {}
        self._grouped: set[str] = set()
        self._refreshed = 0.0
        self._trim = self.r.register_script(TRIM_ACKNOWLEDGED)
        self.trimmed = 0  # acknowledged entries removed from the streams (tests, metrics)

    @property
    def stream(self) -> str:
        """The shared trusted stream's key (kept for logs and older callers)."""
        return self.rt.keys.requests

    # --- streams ------------------------------------------------------------------------
    def refresh(self, force: bool = False) -> dict[str, str | None]:
        """Re-read the agent registry; create the group on any new stream."""
        now = time.monotonic()
        if not force and self.owners and now - self._refreshed < self.refresh_every:
            return self.owners
        owners: dict[str, str | None] = {}
        if self.rt.settings.trusted_stream_enabled:
            owners[self.rt.keys.requests] = None
        for name in self.registry.names():
            owners[self.rt.keys.agent(name).requests] = name
        self.owners = owners
        self._refreshed = now
        for stream in owners:
            if stream not in self._grouped:
                self._ensure_group(stream)
        self._grouped &= set(owners)
        return owners

    def ensure_group(self) -> None:
        """Create the group on every stream read (at the start: entries sent before any
        intake ran are read too)."""
        self._grouped.clear()
        self.refresh(force=True)

    def _ensure_group(self, stream: str) -> None:
        try:
            self.r.xgroup_create(stream, INTAKE_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" in str(exc):
                pass
            elif "WRONGTYPE" in str(exc) or "requires the key to exist" in str(exc):
                self._replace_broken(stream)
                return
            else:
                raise
        self._grouped.add(stream)

    def _replace_broken(self, stream: str) -> None:
        """An agent's stream key holds another type (only the agent itself can have done
        that): record it, replace it with an empty stream, and carry on."""
        kind = _text(self.r.type(stream))
        self.rt.redis.xadd(self.rt.keys.dead, {
            "reason": f"request stream was a {kind}, not a stream; replaced",
            "source": stream, "agent": self.owners.get(stream) or ""},
            maxlen=DEAD_MAXLEN, approximate=True)
        log.warning("agent request stream %s was a %s; replaced with an empty stream",
                    stream, kind)
        pipe = self.r.pipeline(transaction=True)
        pipe.delete(stream)
        pipe.xgroup_create(stream, INTAKE_GROUP, id="0", mkstream=True)
        pipe.execute()
        self._grouped.add(stream)

    def _check_streams(self) -> None:
        """After a failed read: find the stream that broke it (wrong type, lost group)."""
        for stream in list(self.owners):
            kind = _text(self.r.type(stream))
            if kind == "none":
                self._grouped.discard(stream)
                self._ensure_group(stream)
            elif kind != "stream":
                self._replace_broken(stream)
            else:
                try:
                    groups = {_text(g["name"]) for g in self.r.xinfo_groups(stream)}
                except redis.ResponseError:
                    groups = set()
                if INTAKE_GROUP not in groups:
                    self._grouped.discard(stream)
                    self._ensure_group(stream)

    # --- handling -----------------------------------------------------------------------
    def handle(self, msg_id: bytes, fields: dict[bytes, bytes],
               agent: str | None = None, stream: str | None = None) -> str | None:
        """Ingest one message; return the id to prepare, if any. The caller acknowledges.

        A message with a ``cancel`` field (``{"id", "requester", "reason"}``) and no ``body``
        cancels that request instead. ``agent`` is the owner of the stream it came from.
        """
        source = f"stream:{stream or self.stream}:{msg_id.decode()}"
        cancel = fields.get(b"cancel")
        if cancel is not None and b"body" not in fields:
            lifecycle.cancel_message(self.rt, cancel, source=source, agent=agent)
            self.handled += 1
            return None
        body = fields.get(b"body")
        # The agent's trace, if it sent one (a malformed traceparent is ignored).
        parent = (fields.get(tracing.TRACEPARENT.encode()) or b"").decode("ascii", "replace") or None
        with tracing.span("intake", parent=parent) as span:
            result = lifecycle.ingest(self.rt, body, source=source, enqueue=False, agent=agent)
            if result.request_id:
                span.set_attribute(tracing.REQUEST_ID, result.request_id)
                if result.needs_prepare:
                    tracing.remember(self.rt, result.request_id)
        self.handled += 1
        return result.request_id if result.needs_prepare else None

    def _flush(self, to_prepare: list[str], acks: dict[str, list[bytes]]) -> None:
        """One prepare job for the batch, then acknowledge (a crash before the XACK only
        redelivers: ingest is idempotent)."""
        if to_prepare:
            self.rt.enqueue(lifecycle.JOB_PREPARE_BATCH, to_prepare)
            to_prepare.clear()
        for stream, ids in acks.items():
            if ids:
                self.r.xack(stream, INTAKE_GROUP, *ids)
                self.trim(stream)
        acks.clear()

    def trim(self, stream: str) -> int:
        """Remove the stream's entries every consumer group is done with (acknowledged);
        returns how many. A stream that is not one (an agent spoiled its key) is left to
        :meth:`_check_streams`."""
        try:
            n = int(self._trim(keys=[stream]))
        except redis.ResponseError as exc:
            log.warning("could not trim %s: %s", stream, exc)
            return 0
        self.trimmed += n
        return n

    def _handle_batch(self, stream: str,
                      messages: list[tuple[bytes, dict[bytes, bytes] | None]],
                      deliveries: dict[bytes, int] | None = None,
                      pending: tuple[list[str], dict[str, list[bytes]]] | None = None) -> int:
        """Handle one stream's entries. With ``pending`` (to prepare, acks per stream) the
        caller flushes once for every stream of a read: one prepare job per read."""
        agent = self.owners.get(stream)
        to_prepare, acks = pending if pending is not None else ([], {})
        acks.setdefault(stream, [])
        for msg_id, fields in messages:
            if fields is None:  # deleted from the stream meanwhile
                acks[stream].append(msg_id)
                continue
            try:
                rid = self.handle(msg_id, fields, agent=agent, stream=stream)
            except (redis.ConnectionError, redis.TimeoutError):
                self._flush(to_prepare, acks)
                raise
            except Exception as exc:
                n = (deliveries or {}).get(msg_id, 1)
                log.exception("intake failed on %s %s (delivery %d)", stream, msg_id.decode(), n)
                if n >= MAX_DELIVERIES:
                    source = f"stream:{stream}:{msg_id.decode()}"
                    self.rt.redis.xadd(self.rt.keys.dead, {
                        "reason": f"intake failed {n} times: {type(exc).__name__}",
                        "source": source, "agent": agent or "",
                        "entry": self._sealed(fields, source)},
                        maxlen=DEAD_MAXLEN, approximate=True)
                    acks.setdefault(stream, []).append(msg_id)
                continue
            if rid is not None and rid not in to_prepare:
                to_prepare.append(rid)
            acks.setdefault(stream, []).append(msg_id)
        if pending is None:
            self._flush(to_prepare, acks)
        return len(messages)

    def _sealed(self, fields: dict[bytes, bytes], source: str) -> str:
        """The entry a dead letter stands for, encrypted like a stored request (the stream
        entry itself is trimmed once acknowledged): JSON of field -> base64 value, sealed with
        the data keys, the dead letter's ``source`` as associated data."""
        entry = {k.decode("utf-8", "replace"): base64.b64encode(v).decode()
                 for k, v in fields.items()}
        return crypto.encrypt(self.rt.data_keyring, json.dumps(entry).encode(), source.encode())

    def _deliveries(self, stream: str, msg_id: bytes) -> int:
        rows = self.r.xpending_range(stream, INTAKE_GROUP, min=msg_id, max=msg_id, count=1)
        return int(rows[0]["times_delivered"]) if rows else 1

    def reclaim(self) -> int:
        """Take over entries idle longer than the reclaim threshold (a crashed consumer's)."""
        claimed = 0
        self.refresh()
        for stream in list(self.owners):
            start: Any = "0-0"
            while True:
                try:
                    result = self.r.xautoclaim(stream, INTAKE_GROUP, self.name,
                                               min_idle_time=self.reclaim_idle_ms,
                                               start_id=start, count=self.batch)
                except redis.ResponseError:
                    self._check_streams()
                    break
                next_id, messages = result[0], result[1]
                self._handle_batch(stream, messages,
                                   {m: self._deliveries(stream, m) for m, _ in messages})
                claimed += len(messages)
                if next_id in (b"0-0", "0-0") or not messages:
                    break
                start = next_id
        return claimed

    def _read(self, start: str, block_ms: int | None) -> int:
        if not self.owners:
            if block_ms:
                time.sleep(min(block_ms, 1000) / 1000)
            return 0
        try:
            rows = self.r.xreadgroup(INTAKE_GROUP, self.name,
                                     {s: start for s in self.owners}, count=self.batch,
                                     block=block_ms)
        except redis.ResponseError as exc:
            # NOGROUP / WRONGTYPE: an agent's stream was replaced under us; find and repair
            # it, and read again next round.
            log.warning("intake read failed (%s); checking the agent streams", exc)
            self._check_streams()
            return 0
        n = 0
        pending: tuple[list[str], dict[str, list[bytes]]] = ([], {})
        try:
            for stream, messages in rows or []:
                key = _text(stream)
                deliveries = ({m: self._deliveries(key, m) for m, _ in messages}
                              if start == "0" else None)
                n += self._handle_batch(key, messages, deliveries, pending)
        finally:
            self._flush(*pending)
        return n

    def poll(self, block_ms: int | None = None) -> int:
        """Read and handle one batch of new entries; returns how many."""
        self.refresh()
        return self._read(">", self.block_ms if block_ms is None else block_ms)

    def own_pending(self) -> int:
        """Re-handle entries this consumer name read but never acknowledged (restart)."""
        self.refresh()
        return self._read("0", None)

    def run(self, stop: threading.Event | None = None, reclaim_every: float = 5.0,
            follow_every: float = 1.0) -> None:
        """Consume until ``stop`` is set; survives Redis restarts by reconnecting, and any
        other error by logging it and retrying (back-off reset once a round runs clean)."""
        stop = stop or threading.Event()
        tracing.configure(self.rt.settings, "intake")
        last_reclaim = 0.0
        last_follow = 0.0
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
                    last_reclaim = last_follow = now
                elif now - last_follow >= follow_every:
                    self.janitor.follow_log()
                    last_follow = now
                self.poll()
                backoff = 0.2
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError) as exc:
                log.warning("Redis unavailable (%s); retrying in %.1fs", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                last_reclaim = 0.0
            except Exception:
                self.errors += 1
                log.exception("intake round failed; retrying in %.1fs", backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
                last_reclaim = 0.0
