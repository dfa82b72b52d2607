"""Card delivery: the platform I/O behind the notify and update jobs.

The jobs only write down what each destination needs (the ledger's outbox, in Redis) and hand
the destinations to this module; the calls to Slack and Teams run here, concurrently:

- In each worker's delivery process (``signoff delivery``, :mod:`workers.delivery_process`),
  :class:`DeliveryLoop` runs one asyncio loop. Every destination is drained by its own task,
  so card posts and updates for many requests and channels are in flight together while the
  rq worker goes on taking jobs (prepare, updates) in its own process: a worker's throughput
  is bound by the platforms' limits and its CPU, not by waiting on one call after another, and
  a decision (finalized where it is made) never waits behind a card call.
- Anywhere else (a job run in-process, tests), :func:`submit` drains the destinations at once
  on a temporary loop.

One channel's trouble stays its own. Work is per destination: a ``429`` puts that destination
on hold until its ``Retry-After`` (the ledger's due index; no call waits it out), a 5xx or a
timeout backs that one request's card off, and every other destination goes on. The loop
polls the due index, so held work resumes when the platform allows it, on whichever worker
gets there first (a lease keeps one worker per destination).

A destination is never sent more than its platform's documented rate
(:class:`~signoff.messenger.SendLimit`, a token bucket in Redis shared by every worker): when more
cards are waiting than the rate allows, they are coalesced into one digest message, which
later requests join and which is updated as they are decided, instead of queueing for minutes.

No card is posted twice: each post is recorded in the ledger; a post that may have reached the
platform (an ambiguous failure, or a worker that died mid-call) is marked ``attempted`` first,
and only then is the platform asked whether the card is already there (Slack's history), never
on a first post.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from signoff import tracing
from signoff.audit import Event
from signoff.cards import Card, CardLedger, Digest, Op, rate_scope, slot, split_slot
from signoff.cardview.view import CardView, build_view
from signoff.messenger import DeliveryError, DigestMessenger, Messenger, RateLimited, SendLimit
from signoff.models import Status
from signoff.runtime import Runtime
from signoff.store import Record

log = logging.getLogger(__name__)

# A destination's lease; renewed while its drain runs, so a dead worker's lapses in seconds.
LEASE_MS = 15_000
# A card that keeps failing for a reason that may pass (5xx, timeouts) is tried again after
# these pauses, then recorded as undeliverable (shown on the request's other cards).
BACKOFF = (1.0, 2.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
MAX_TRIES = len(BACKOFF) + 1
# A digest takes new requests for this long, up to this many.
DIGEST_OPEN_FOR = 30.0
DIGEST_MAX = 40  # every line shown (the renderers list up to 40)
POLL_INTERVAL = 0.1


@dataclass
class _Item:
    op: Op
    record: Record
    card: Card | None = None
    _view: CardView | None = None

    @property
    def view(self) -> CardView:
        if self._view is None:
            self._view = build_view(self.record)
        return self._view


class Drained(str, Enum):
    """How one drain of a destination ended."""

    DRAINED = "drained"  # nothing left to do
    HELD = "held"  # the platform or the rate asks to wait: resumed from the due index
    BUSY = "busy"  # another worker holds the destination's lease
    DISPATCHED = "dispatched"  # calls are in flight; their end drains the destination again


# Calls in flight at once for one destination (each round is one or more calls).
MAX_ROUNDS = 16


class Delivery:
    """Drains destinations' card work (one instance per process).

    Args:
        rt: the runtime (store, ledger, audit).
        messengers: messenger kind -> messenger.
    """

    def __init__(self, rt: Runtime, messengers: dict[str, Messenger]) -> None:
        self.rt = rt
        self.ledger: CardLedger = rt.cards
        self.messengers = messengers
        self._cache: dict[str, CardView] = {}
        self._leases: dict[str, str] = {}
        self._keepers: dict[str, asyncio.Future[None]] = {}
        self._rounds: dict[str, set[asyncio.Future[bool]]] = {}
        self._busy: dict[str, set[str]] = {}  # request ids a round in flight holds
        self._digest_busy: set[str] = set()  # destinations with a digest call in flight
        # Called when a round ends (the loop drains the destination again).
        self.on_round_end: Callable[[str], None] | None = None

    # --- one destination ----------------------------------------------------------------------
    # A destination's work goes out in rounds: each takes the ready work no other round holds
    # and makes its calls together. Rounds overlap (a card posted while earlier posts are in
    # flight), except where one message is shared: a digest takes one round at a time (its
    # members and its text are one message), so a destination with a digest call in flight
    # starts no other round until it ends. The destination's lease is held while any round is
    # in flight, and every round's end drains the destination again (``on_round_end``). Where
    # the rate is the destination's own (a Slack channel), one round at a time (_overlaps).
    async def drain(self, name: str) -> Drained:
        """Start the destination's due work (see :class:`Drained` for how it ends); the
        calls run as tasks of the running loop."""
        ledger = self.ledger
        kind, destination = split_slot(name)
        messenger = self.messengers.get(kind)
        if name not in self._leases:
            lease = ledger.lease(name, LEASE_MS)
            if lease is None:
                return Drained.BUSY
            self._leases[name] = lease
            self._keepers[name] = asyncio.ensure_future(self._keep(name, lease))
        rounds = self._rounds.setdefault(name, set())
        busy = self._busy.setdefault(name, set())
        while True:
            now = time.time()
            if ledger.holds(ledger.due_at(name), now):
                return self._idle(name, Drained.HELD)
            if rounds and (name in self._digest_busy or len(rounds) >= MAX_ROUNDS
                           or not _overlaps(messenger)):
                return Drained.DISPATCHED
            ops = [op for op in ledger.ops(name) if op.request_id not in busy]
            if not ops:
                if rounds:
                    return Drained.DISPATCHED
                if ledger.settle(name):
                    return self._idle(name, Drained.DRAINED)
                continue
            if messenger is None:
                for op in ops:
                    self._give_up(name, op, f"{kind} is not configured")
                continue
            ready = [op for op in ops if op.not_before <= now]
            if not ready:
                if rounds:
                    return Drained.DISPATCHED
                ledger.hold(name, min(op.not_before for op in ops))
                return self._idle(name, Drained.HELD)
            ids = {op.request_id for op in ready}
            busy |= ids
            task = asyncio.ensure_future(self._round(name, kind, destination, messenger, ready))
            rounds.add(task)
            task.add_done_callback(functools.partial(self._round_ended, name, ids))
            # One round per pass: the next pass sees what this one took (its planning runs
            # before any other task: the loop is single-threaded).
            return Drained.DISPATCHED

    async def drain_all(self, name: str) -> Drained:
        """Drain the destination and wait for every call (a job run outside a worker)."""
        while True:
            result = await self.drain(name)
            rounds = self._rounds.get(name)
            if result is not Drained.DISPATCHED or not rounds:
                return result
            await asyncio.wait(set(rounds))

    def _round_ended(self, name: str, ids: set[str], task: asyncio.Future[bool]) -> None:
        self._rounds.get(name, set()).discard(task)
        self._busy.get(name, set()).difference_update(ids)
        if not task.cancelled() and task.exception() is not None:
            log.error("card delivery to %s failed: %r", name, task.exception())
        if not task.cancelled() and self.on_round_end is not None:
            self.on_round_end(name)

    def _idle(self, name: str, how: Drained) -> Drained:
        """Nothing more to start: give the lease back once no round is in flight."""
        if not self._rounds.get(name):
            lease = self._leases.pop(name, None)
            keeper = self._keepers.pop(name, None)
            if keeper is not None:
                keeper.cancel()
            if lease is not None:
                self.ledger.release(name, lease)
        return how

    async def _keep(self, name: str, lease: str) -> None:
        """Renew the destination's lease while its rounds run (calls may take a while)."""
        while True:
            await asyncio.sleep(LEASE_MS / 3000)
            self.ledger.renew(name, lease, LEASE_MS)

    async def _round(self, name: str, kind: str, destination: str, messenger: Messenger,
                     ops: list[Op]) -> bool:
        """One pass over the ready work; True when the destination was put on hold."""
        ledger = self.ledger
        posts: list[_Item] = []
        updates: list[_Item] = []
        adopt: list[_Item] = []
        recover: list[_Item] = []  # an earlier post may be there: look before planning
        gone: list[str] = []
        finished: dict[str, int] = {}  # nothing to send: up to date at this version
        for op in ops:
            record = self.rt.store.get(op.request_id)
            if record is None:
                gone.append(op.request_id)
                continue
            version = int(record.get("version") or 0)
            card = ledger.card(op.request_id, name)
            if card is None:
                if record.status is Status.PENDING:
                    if op.attempted and messenger.repost_safe:
                        # A crash may have cut the earlier post short after it went out. Look
                        # before planning: the plan may put this request on a digest, and a
                        # digest does not look for a card of its own.
                        recover.append(_Item(op, record))
                    elif op.attempted and not op.ambiguous:
                        # A crash inside a post to a platform with no lookup: never risk a
                        # second card, on its own or on a digest.
                        self._unconfirmed(name, op, messenger.kind)
                    else:
                        posts.append(_Item(op, record))
                elif op.attempted:
                    adopt.append(_Item(op, record))
                else:
                    gone.append(op.request_id)  # decided before its card went out
            elif card.version >= version:
                finished[op.request_id] = card.version
            else:
                updates.append(_Item(op, record, card))
        ledger.done(name, gone)
        ledger.done_at(name, finished)
        limit = getattr(messenger, "limit", None)
        scope = self._scope(name, kind, limit)
        calls: list[Coroutine[Any, Any, None]] = []
        hold_until = 0.0
        shared = False  # a digest call: no other round for this destination meanwhile
        if posts:
            calls_posts, hold_until, shared = self._plan_posts(name, destination, messenger,
                                                               posts, limit, scope)
            calls += calls_posts
        digests: dict[str, list[_Item]] = {}
        for item in updates:
            assert item.card is not None
            if item.card.digest:
                digests.setdefault(item.card.digest, []).append(item)
            else:
                thread = limit is None or (not posts and ledger.take(
                    scope, 1, limit.per_second, limit.burst).granted > 0)
                calls.append(self._update(name, destination, messenger, item, thread))
        for digest_id, items in digests.items():
            calls.append(self._update_digest(name, destination, messenger, digest_id, items))
        calls += [self._adopt(name, destination, messenger, item) for item in adopt]
        calls += [self._recover(name, destination, messenger, item) for item in recover]
        if shared or digests:
            self._digest_busy.add(name)
        try:
            results = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            if shared or digests:
                self._digest_busy.discard(name)
        refused = 0
        for result in results:
            if isinstance(result, RateLimited):
                refused += 1
                hold_until = max(hold_until, time.time() + max(result.retry_after, 0.05))
            elif isinstance(result, BaseException):
                log.error("card delivery to %s failed: %r", name, result)
        if refused and limit is not None and limit.per != "app":
            # Refused calls did nothing: their tokens are the channel's again after the wait.
            ledger.give_back(scope, refused, limit.burst)
        if hold_until:
            if limit is not None and limit.per == "app":
                # The whole rate scope waits (a Teams 429 is for the app, not one chat).
                self.ledger.take(scope, int(limit.burst), limit.per_second, limit.burst)
            ledger.hold(name, hold_until)
            log.info("%s: rate limited; its cards resume in %.1fs", name,
                     hold_until - time.time())
            return True
        return False

    @staticmethod
    def _scope(name: str, kind: str, limit: SendLimit | None) -> str:
        return rate_scope(kind, name, limit is not None and limit.per == "app")

    def _plan_posts(self, name: str, destination: str, messenger: Messenger,
                    posts: list[_Item], limit: SendLimit | None, scope: str
                    ) -> tuple[list[Coroutine[Any, Any, None]], float, bool]:
        """Posts within the rate: a card each when there is room, else one digest. Returns
        the calls, when to try again (0: no hold) and whether a digest is among them."""
        if limit is None:
            return [self._post(name, destination, messenger, item) for item in posts], 0.0, False
        digest = self.ledger.open_digest(name) if isinstance(messenger, DigestMessenger) else None
        # While a digest is open (the destination is over its rate), one call of the rate is
        # kept back: when the digest fills, the next one is posted at once instead of waiting
        # up to a second for the rate (cards of their own take only what is left).
        reserve = 1 if digest is not None else 0
        grant = self.ledger.take(scope, len(posts) + reserve, limit.per_second, limit.burst)
        if grant.granted >= len(posts) + reserve:
            if reserve:
                self.ledger.give_back(scope, reserve, limit.burst)
            return [self._post(name, destination, messenger, item) for item in posts], 0.0, False
        if not isinstance(messenger, DigestMessenger):
            now_posts = posts[:grant.granted]
            wait = time.time() + max(grant.wait, 0.05) if len(now_posts) < len(posts) else 0.0
            return [self._post(name, destination, messenger, i) for i in now_posts], wait, False
        # As many cards of their own as the rate allows, the rest on one digest.
        if digest is not None and len(digest.ids) < DIGEST_MAX:
            # Joining an open digest is an update of one message: no new post.
            keep = min(reserve, grant.granted)
            if keep:
                self.ledger.give_back(scope, keep, limit.burst)
            alone, rest = posts[:grant.granted - keep], posts[grant.granted - keep:]
            room = DIGEST_MAX - len(digest.ids)
            return ([self._post(name, destination, messenger, i) for i in alone]
                    + [self._digest(name, destination, messenger, rest[:room], digest)]), 0.0, True
        if grant.granted >= 1:
            alone, rest = posts[:grant.granted - 1], posts[grant.granted - 1:]
            return ([self._post(name, destination, messenger, i) for i in alone]
                    + [self._digest(name, destination, messenger, rest[:DIGEST_MAX], None)]
                    ), 0.0, True
        return [], time.time() + max(grant.wait, 0.05), False

    # --- the calls ------------------------------------------------------------------------------
    async def _post(self, name: str, destination: str, messenger: Messenger,
                    item: _Item) -> None:
        op, view = item.op, item.view
        with tracing.span("card.post", op.request_id, parent=op.trace or None,
                          channel=messenger.kind, destination=destination):
            # An earlier try that may have posted was dealt with when the round was planned
            # (looked up where the platform can, given up where it cannot and no ambiguous
            # answer asks for a retry): what reaches here is posted.
            was = op.attempted
            try:
                if not op.attempted:
                    op.attempted = True
                    self.ledger.update_op(name, op)
                ref = await messenger.post(view, destination)
            except RateLimited:
                if not was:  # a 429 means nothing was posted
                    op.attempted = False
                    self.ledger.update_op(name, op)
                raise
            except DeliveryError as exc:
                if not exc.ambiguous and not was:
                    op.attempted = False
                # An ambiguous answer (5xx, timeout after sending) is retried even where the
                # platform has no lookup: the documented limit is a second, unrecorded card.
                op.ambiguous = exc.ambiguous
                self._failed(name, op, exc)
                return
            self._posted(name, op, Card(messenger.kind, destination, ref, view.version,
                                        time.time()))

    def _posted(self, name: str, op: Op, card: Card) -> None:
        self.ledger.record(op.request_id, card)
        self.ledger.done_at(name, {op.request_id: card.version})
        details: dict[str, Any] = {"channel": card.kind, "destination": card.destination}
        if card.digest:
            details["digest"] = card.digest
        self.rt.audit.append(Event.CARD_POSTED, op.request_id, "signoff", **details)

    async def _update(self, name: str, destination: str, messenger: Messenger, item: _Item,
                      thread: bool) -> None:
        op, view, card = item.op, item.view, item.card
        assert card is not None
        with tracing.span("card.update", op.request_id, parent=op.trace or None,
                          channel=messenger.kind, destination=destination):
            try:
                await messenger.update(view, destination, card.ref, thread_votes=thread)
            except RateLimited:
                raise
            except DeliveryError as exc:
                log.warning("could not update card %s for %s: %s", name, op.request_id, exc)
                if exc.retryable:
                    self._backoff(name, op, exc)
                else:
                    self.ledger.done(name, [op.request_id])
                return
        self.ledger.record(op.request_id, replace(card, version=view.version))
        self.ledger.done_at(name, {op.request_id: view.version})

    async def _digest(self, name: str, destination: str, messenger: Messenger,
                      items: list[_Item], digest: Digest | None) -> None:
        """Post a new digest for ``items``, or add them to the open one."""
        assert isinstance(messenger, DigestMessenger)
        now = time.time()
        members: list[CardView] = []
        if digest is None:
            digest = self.ledger.new_digest(name, now)
        else:
            members = self._views(digest.ids)
        views = members + [item.view for item in items]
        with tracing.span("card.digest", items[0].op.request_id, channel=messenger.kind,
                          destination=destination, requests=len(views)):
            try:
                if digest.ref:
                    await messenger.update_digest(views, destination, digest.ref, digest.id)
                else:
                    digest.ref = await messenger.post_digest(views, destination, digest.id)
            except RateLimited:
                raise
            except DeliveryError as exc:
                for item in items:
                    self._failed(name, item.op, exc)
                return
        digest.ids += [item.op.request_id for item in items]
        still_open = len(digest.ids) < DIGEST_MAX and now - digest.opened_at < DIGEST_OPEN_FOR
        self.ledger.save_digest(digest, still_open,
                                DIGEST_OPEN_FOR - (now - digest.opened_at))
        for item in items:
            with tracing.span("card.post", item.op.request_id, parent=item.op.trace or None,
                              channel=messenger.kind, destination=destination,
                              digest=digest.id):
                self._posted(name, item.op, Card(messenger.kind, destination, digest.ref,
                                                 item.view.version, now, digest=digest.id))

    async def _update_digest(self, name: str, destination: str, messenger: Messenger,
                             digest_id: str, items: list[_Item]) -> None:
        """One update of a digest brings every changed request in it up to date."""
        digest = self.ledger.digest(name, digest_id)
        if digest is None or not isinstance(messenger, DigestMessenger):
            self.ledger.done(name, [item.op.request_id for item in items])
            return
        views = self._views(digest.ids)
        with tracing.span("card.update", items[0].op.request_id, channel=messenger.kind,
                          destination=destination, digest=digest_id, requests=len(items)):
            try:
                await messenger.update_digest(views, destination, digest.ref, digest_id)
            except RateLimited:
                raise
            except DeliveryError as exc:
                for item in items:
                    if exc.retryable:
                        self._backoff(name, item.op, exc)
                    else:
                        self.ledger.done(name, [item.op.request_id])
                return
        sent: dict[str, int] = {}
        for item in items:
            assert item.card is not None
            self.ledger.record(item.op.request_id, replace(item.card, version=item.view.version))
            sent[item.op.request_id] = item.view.version
        self.ledger.done_at(name, sent)

    async def _look(self, name: str, destination: str, messenger: Messenger,
                    item: _Item) -> tuple[bool, dict[str, Any] | None]:
        """Look for the card a crash-cut post may have left: (whether the lookup answered,
        the card's reference). A lookup that failed backs the work off."""
        try:
            return True, await messenger.find_posted(item.view, destination)
        except RateLimited:
            raise
        except DeliveryError as exc:
            log.warning("could not look for an unrecorded card of %s: %s",
                        item.op.request_id, exc)
            self._backoff(name, item.op, exc)
            return False, None

    async def _adopt(self, name: str, destination: str, messenger: Messenger,
                     item: _Item) -> None:
        """A decided request whose card may have been posted without being recorded (a
        crash): find it, record it and bring it up to date, so it keeps no live buttons."""
        looked, ref = await self._look(name, destination, messenger, item)
        if not looked:
            return
        if ref is None:
            self.ledger.done(name, [item.op.request_id])
            return
        card = Card(messenger.kind, destination, ref, 0, time.time())
        self.ledger.record(item.op.request_id, card)
        item.card = card
        await self._update(name, destination, messenger, item, thread=True)

    async def _recover(self, name: str, destination: str, messenger: Messenger,
                       item: _Item) -> None:
        """A pending request whose earlier post may have gone out without being recorded
        (a crash): a card found is recorded (the next round brings it up to date); none
        found, the work is an ordinary post again (its own card or a digest, as the rate
        allows)."""
        op = item.op
        looked, ref = await self._look(name, destination, messenger, item)
        if not looked:
            return
        if ref is not None:
            # Recorded at version 0: what the found card shows is not known, so it is redrawn.
            self.ledger.record(op.request_id, Card(messenger.kind, destination, ref, 0,
                                                   time.time()))
            self.rt.audit.append(Event.CARD_POSTED, op.request_id, "signoff",
                                 channel=messenger.kind, destination=destination)
            return
        op.attempted = False
        op.ambiguous = False
        self.ledger.update_op(name, op)

    def _views(self, request_ids: Iterable[str]) -> list[CardView]:
        """Views of a digest's requests: one round trip for their versions, and a request
        read and rendered again only when it changed (a digest is redrawn on every change)."""
        ids = list(request_ids)
        pipe = self.rt.redis.pipeline(transaction=False)
        for rid in ids:
            pipe.hget(self.rt.keys.request(rid), "version")
        out = []
        for rid, version in zip(ids, pipe.execute(), strict=True):
            if version is None:
                continue
            cached = self._cache.get(rid)
            if cached is None or cached.version != int(version):
                record = self.rt.store.get(rid)
                if record is None:
                    continue
                cached = self._cache[rid] = build_view(record)
            out.append(cached)
        if len(self._cache) > 5000:
            self._cache.clear()
        return out

    # --- failures -------------------------------------------------------------------------------
    def _failed(self, name: str, op: Op, exc: DeliveryError) -> None:
        if exc.retryable and op.tries + 1 < MAX_TRIES:
            self._backoff(name, op, exc)
        else:
            self._give_up(name, op, str(exc))

    def _backoff(self, name: str, op: Op, exc: DeliveryError) -> None:
        op.tries += 1
        pause = BACKOFF[min(op.tries - 1, len(BACKOFF) - 1)]
        op.not_before = time.time() + pause
        self.ledger.update_op(name, op)
        log.warning("card for %s to %s failing (%s); trying again in %.0fs", op.request_id,
                    name, exc, pause)

    def _unconfirmed(self, name: str, op: Op, kind: str) -> None:
        log.warning("a post of %s's card to %s was cut short by a crash; %s offers no lookup, "
                    "so it is not posted again (at most one card, maybe unrecorded)",
                    op.request_id, name, kind)
        self.ledger.done(name, [op.request_id])

    def _give_up(self, name: str, op: Op, error: str) -> None:
        record_failure(self.rt, op.request_id, name, error)
        self.ledger.done(name, [op.request_id])


def _overlaps(messenger: Messenger | None) -> bool:
    """Whether rounds for one destination of this platform may be in flight together: not
    where the rate is the destination's own (a Slack channel's ``Retry-After`` must hold for
    every call after it, which a round already on its way could not honour)."""
    limit = getattr(messenger, "limit", None)
    return limit is None or limit.per == "app"


def may_send(rt: Runtime, messenger: Messenger, destination: str) -> bool:
    """Whether a best-effort message (a reminder, "your request was decided") fits in the
    destination's rate now; over it, the message is skipped rather than queued (the card and
    the inbox show the same)."""
    limit = getattr(messenger, "limit", None)
    if limit is None:
        return True
    name = slot(messenger.kind, destination)
    scope = Delivery._scope(name, messenger.kind, limit)
    if rt.cards.take(scope, 1, limit.per_second, limit.burst).granted:
        return True
    log.info("skipped a message to %s: over its rate", name)
    return False


def record_failure(rt: Runtime, request_id: str, name: str, error: str) -> None:
    """A card that could not be delivered: noted on the request (its other cards show it)
    and audited."""
    kind, destination = split_slot(name)
    if rt.cards.note_failure(request_id, f"{name}: {error}"):
        rt.audit.append(Event.CARD_FAILED, request_id, "signoff", channel=kind,
                        destination=destination, error=error)
    log.warning("card for %s could not be delivered to %s: %s", request_id, name, error)


# --- running it -------------------------------------------------------------------------------
class DeliveryLoop:
    """A worker process's delivery: one asyncio loop in a thread, one task per destination,
    and a poll of the ledger's due index (held work resumes when the platform allows)."""

    def __init__(self, delivery: Delivery, poll: float = POLL_INTERVAL,
                 drains: bool = True) -> None:
        self.delivery = delivery
        self.poll = poll
        # False: this loop runs best-effort messages only (a worker whose delivery process
        # drains the destinations).
        self.drains = drains
        self.loop = asyncio.new_event_loop()
        # botbuilder's connector and Redis lookups use the loop's thread pool.
        self.loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(
            max_workers=32, thread_name_prefix="delivery"))
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="delivery", daemon=True)
        self._stopping = False
        # (called in the loop's thread)
        delivery.on_round_end = self._kick

    def start(self) -> DeliveryLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking work (what is queued stays in the ledger for the next worker)."""
        self._stopping = True
        if self._thread.is_alive():
            done = asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
            try:
                done.result(timeout)
            except Exception as exc:  # stopping anyway
                log.warning("delivery loop shutdown: %r", exc)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)

    async def _shutdown(self) -> None:
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for messenger in self.delivery.messengers.values():
            unbind = getattr(messenger, "unbind_loop", None)
            if unbind is not None:
                await unbind()

    def kick(self, names: Iterable[str]) -> None:
        """Drain these destinations now (from any thread)."""
        for name in names:
            self.loop.call_soon_threadsafe(self._kick, name)

    def run(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run a best-effort coroutine (a reminder, a "your request was decided" message)."""
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        future.add_done_callback(_log_failure)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._bind())
        if self.drains:
            self.loop.create_task(self._poll())
        self.loop.run_forever()

    async def _bind(self) -> None:
        """Messengers keep their HTTP sessions for this loop's life (pooled connections)."""
        for messenger in self.delivery.messengers.values():
            bind = getattr(messenger, "bind_loop", None)
            if bind is not None:
                await bind()

    def _kick(self, name: str) -> None:
        if name in self._tasks:
            self._again.add(name)
            return
        self._tasks[name] = self.loop.create_task(self._drain(name))

    async def _drain(self, name: str) -> None:
        try:
            while True:
                self._again.discard(name)
                try:
                    await self.delivery.drain(name)
                except Exception:
                    log.exception("delivery to %s failed; it stays queued", name)
                if name not in self._again:
                    return
        finally:
            self._tasks.pop(name, None)

    async def _poll(self) -> None:
        while not self._stopping:
            try:
                for name in self.delivery.ledger.due():
                    self._kick(name)
            except Exception as exc:  # Redis away: try again on the next tick
                log.warning("delivery poll failed: %s", exc)
            await asyncio.sleep(self.poll)


def _log_failure(future: concurrent.futures.Future[Any]) -> None:
    exc = future.exception()
    if exc is not None:
        log.warning("delivery task failed: %r", exc)


_loop: DeliveryLoop | None = None
# In a worker whose delivery process drains the destinations: how to tell it of new work.
_external: Callable[[list[str]], None] | None = None


def start_loop(rt: Runtime, messengers: dict[str, Messenger], drains: bool = True
               ) -> DeliveryLoop:
    """Start this process's delivery loop (the delivery process does; a worker whose delivery
    process drains its card work starts one with ``drains=False`` for best-effort messages)."""
    global _loop
    if _loop is None:
        _loop = DeliveryLoop(Delivery(rt, messengers), drains=drains).start()
    return _loop


def use_external(kick: Callable[[list[str]], None] | None) -> None:
    """Card work queued in this process is drained by another process (the worker's delivery
    process): :func:`submit` only calls ``kick`` with the destinations (None: undo)."""
    global _external
    _external = kick


def stop_loop() -> None:
    global _loop
    if _loop is not None:
        _loop.stop()
        _loop = None


def running_loop() -> DeliveryLoop | None:
    return _loop


def run_now(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion from synchronous code (a job run outside a worker, or
    from inside a running event loop: then on a helper thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def submit(rt: Runtime, messengers: dict[str, Messenger], names: Iterable[str]) -> None:
    """Have these destinations drained: by the process's loop when it runs one (at once, in
    the background), else here and now."""
    names = list(dict.fromkeys(names))
    if not names:
        return
    if _external is not None:
        _external(names)
        return
    loop = running_loop()
    if loop is not None and loop.drains:
        loop.kick(names)
        return
    delivery = Delivery(rt, messengers)

    async def drain_all() -> None:
        await asyncio.gather(*(delivery.drain_all(n) for n in names))

    run_now(drain_all())


def run_task(coro: Coroutine[Any, Any, Any]) -> None:
    """A best-effort platform call: on the process's loop, or here and now."""
    loop = running_loop()
    if loop is not None:
        loop.run(coro)
        return
    try:
        run_now(coro)
    except DeliveryError as exc:
        log.warning("not delivered: %s", exc)


def drain_due(rt: Runtime, messengers: dict[str, Messenger]) -> int:
    """Drain every destination whose work is due now, here (tests; an operator's nudge).
    Returns how many destinations were due."""
    names = rt.cards.due()
    submit(rt, messengers, names)
    return len(names)
