"""rq jobs. Thin: each one calls the lifecycle or a messenger. JSON arguments only.

Every job is idempotent: it may run twice (retries, the janitor's safety net, a redelivered
job after a killed worker) and the second run changes nothing.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import math
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

from rq import get_current_job

from bot.cards.view import build_view
from bot.messenger import DeliveryError, Messenger
from signoff import lifecycle
from signoff.audit import Event
from signoff.models import Status
from signoff.runtime import Runtime, current
from workers.janitor import CLAIM_FACTOR
from workers.messengers import CHANNEL_MESSENGER, build_messengers, destinations

log = logging.getLogger(__name__)
T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a messenger coroutine from a sync job. Jobs normally run in a worker with no event
    loop; when one is running in this thread (a job executed inline from async code), the
    coroutine runs on its own loop in a helper thread instead of failing."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


_messengers: dict[str, Messenger] | None = None


def messengers(rt: Runtime) -> dict[str, Messenger]:
    """The process's messengers, built once."""
    global _messengers
    if _messengers is None:
        _messengers = build_messengers(rt)
    return _messengers


def reset_messengers() -> None:
    """Forget the built messengers (tests that change settings)."""
    global _messengers
    _messengers = None


def prepare(request_id: str) -> str:
    """Policy, masking, encryption done at intake; open the request or decide it."""
    return lifecycle.prepare(current(), request_id)


def prepare_batch(request_ids: list[str]) -> dict[str, str]:
    """Prepare many requests in one job (the intake enqueues one per stream read): one rq
    round trip instead of one per request is what keeps intake throughput near rq's own."""
    rt = current()
    return {rid: lifecycle.prepare(rt, rid) for rid in request_ids}


def finalize(request_id: str) -> str:
    """Grant, reply to the agent exactly once, refresh the cards."""
    return lifecycle.finalize(current(), request_id)


def expire(request_id: str, now: float | None = None) -> str:
    """At the deadline: time the request out (no-op when decided or not yet due).

    ``now`` is for a controllable clock (tests drive the scheduled jobs with it). Run early
    (another host's clock is behind), it schedules itself again at the deadline."""
    rt = current()
    result = lifecycle.expire(rt, request_id, now=now)
    if result == "not_due":
        deadline = rt.store.get(request_id, with_votes=False)
        if deadline is not None and deadline.deadline:
            rt.enqueue(lifecycle.JOB_EXPIRE, request_id, at=math.ceil(deadline.deadline) + 1)
    return result


def _slot(kind: str, destination: str) -> str:
    return f"{kind}:{destination}"


def notify(request_id: str, kind: str | None = None, target: str | None = None,
           later: int = 0) -> str:
    """Post the cards for one policy channel target, or for every target of the request's
    policy when none is given (each destination once, ever).

    ``later`` counts the slow rounds (:data:`LATER_ROUNDS`) a card post still failing after
    rq's own retries has had."""
    rt = current()
    record = rt.store.get(request_id)
    if record is None or record.status is not Status.PENDING:
        claimed = rt.redis.zrem(rt.keys.notifying, lifecycle.notify_claim(request_id))
        if record is not None and kind is not None and target is not None:
            _adopt(rt, record, kind, target)
        elif record is not None and claimed and record.status.final:
            # The request's notify job was cut short (its claim was still there): a card it
            # posted without recording may exist on any channel.
            from policy import Evaluation

            for c in Evaluation.from_dict(record.json("evaluation")).requirement.channels:
                _adopt(rt, record, c.kind.value, c.target)
        return "closed"
    if kind is None or target is None:
        from policy import Evaluation

        channels = Evaluation.from_dict(record.json("evaluation")).requirement.channels
        # One channel failing (Slack rate-limiting) must not hold the others' cards back:
        # every channel is tried, then the job fails for rq to retry (posted ones are kept).
        done: list[str] = []
        failed: DeliveryError | None = None
        for c in channels:
            try:
                done.append(notify(request_id, c.kind.value, c.target))
            except DeliveryError as exc:
                failed = failed or exc
        if failed is not None:
            raise failed
        rt.redis.zrem(rt.keys.notifying, lifecycle.notify_claim(request_id))
        return "; ".join(done)
    mkind = CHANNEL_MESSENGER.get(kind)
    messenger = messengers(rt).get(mkind or "")
    if messenger is None:
        _record_failure(rt, request_id, kind, target, f"{mkind or kind} is not configured",
                        final=True)
        return "not_configured"
    view = build_view(record)
    posted = 0
    for dest in destinations(rt, kind, target):
        if _post_one(rt, messenger, request_id, kind, target, dest, view, later):
            posted += 1
    return f"posted {posted}"


def _adopt(rt: Runtime, record: Any, kind: str, target: str) -> None:
    """A closed request's interrupted card post (the janitor's repair of a claim): a card the
    platform holds but Signoff never recorded (the worker or Redis died right after the post)
    is found, recorded and updated, so it does not keep live buttons on a decided request."""
    messenger = messengers(rt).get(CHANNEL_MESSENGER.get(kind) or "")
    if messenger is None:
        return
    view = build_view(record)
    found = 0
    for dest in destinations(rt, kind, target):
        slot = _slot(messenger.kind, dest)
        if rt.redis.hexists(rt.keys.cards(record.id), slot):
            continue
        try:
            ref = _run(messenger.find_posted(view, dest))
        except DeliveryError as exc:
            log.warning("could not look for an unrecorded card of %s: %s", record.id, exc)
            continue
        if ref is not None:
            card = {"kind": messenger.kind, "destination": dest, "ref": ref, "version": 0,
                    "posted_at": time.time()}
            rt.redis.hset(rt.keys.cards(record.id), slot, json.dumps(card))
            found += 1
    if found:
        rt.enqueue("workers.jobs.update_cards", record.id)


# After rq's three retries (about a minute with Slack's in-call 429 waits), a post that is
# still failing for a reason that may pass (429, 5xx, timeouts) is tried again this often,
# this many times, while the request is open; only then is it recorded as undeliverable.
LATER_DELAY = 60.0
LATER_ROUNDS = 10


def _post_one(rt: Runtime, messenger: Messenger, request_id: str, kind: str, target: str,
              dest: str, view: Any, later: int = 0) -> bool:
    slot = _slot(messenger.kind, dest)
    cards_key = rt.keys.cards(request_id)
    if rt.redis.hexists(cards_key, slot):
        return False  # posted before: a retried job never posts a second card
    lock = f"{cards_key}:lock:{slot}"
    # The claim lasts exactly as long as the janitor waits before taking a claim over
    # (CLAIM_FACTOR x SIGNOFF_REPAIR_AFTER: 120 s by default): a longer one would make the
    # janitor's retry of a SIGKILLed worker's post find the dead claim and drop the card.
    claim_ms = max(int(rt.settings.repair_after * CLAIM_FACTOR * 1000), 1000)
    if not rt.redis.set(lock, str(time.time()), nx=True, px=claim_ms):
        return False  # another worker is posting it right now
    member = f"{request_id}|{kind}|{target}"
    rt.redis.zadd(rt.keys.notifying, {member: time.time()})
    try:
        if rt.redis.hexists(cards_key, slot):
            return False
        ref = _run(messenger.find_posted(view, dest))
        if ref is None:
            ref = _run(messenger.post(view, dest))
        card = {"kind": messenger.kind, "destination": dest, "ref": ref,
                "version": view.version, "posted_at": time.time()}
        rt.redis.hset(cards_key, slot, json.dumps(card))
        rt.redis.expire(cards_key, rt.settings.record_ttl)
        rt.redis.zrem(rt.keys.notifying, member)
        rt.audit.append(Event.CARD_POSTED, request_id, "signoff", channel=messenger.kind,
                        destination=dest)
        return True
    except DeliveryError as exc:
        job = get_current_job()
        last_try = job is None or not job.retries_left or not exc.retryable
        if last_try:
            rt.redis.zrem(rt.keys.notifying, member)
            if exc.retryable and job is not None and later < LATER_ROUNDS:
                log.warning("card for %s to %s:%s still failing (%s); trying again in %.0fs",
                            request_id, messenger.kind, dest, exc, LATER_DELAY)
                rt.enqueue(lifecycle.JOB_NOTIFY, request_id, kind, target, later + 1,
                           at=time.time() + LATER_DELAY)
                return False
            _record_failure(rt, request_id, messenger.kind, dest, str(exc), final=True)
            return False
        raise
    finally:
        rt.redis.delete(lock)


def _record_failure(rt: Runtime, request_id: str, kind: str, dest: str, error: str,
                    final: bool) -> None:
    key = rt.keys.request(request_id)
    raw = rt.redis.hget(key, "notify_failures")
    failures = json.loads(raw) if raw else []
    line = f"{kind}:{dest}: {error}"
    if line not in failures:
        failures.append(line)
        rt.redis.hset(key, "notify_failures", json.dumps(failures))
    rt.audit.append(Event.CARD_FAILED, request_id, "signoff", channel=kind, destination=dest,
                    error=error)
    log.warning("card for %s could not be delivered to %s:%s: %s", request_id, kind, dest, error)


def update_cards(request_id: str, later: int = 0) -> str:
    """Bring every posted card for a request up to the current version.

    A card whose update keeps failing for a reason that may pass does not hold the others
    back; after rq's retries it is tried again every :data:`LATER_DELAY` seconds
    (:data:`LATER_ROUNDS` times), so a decided request's cards do not keep live buttons."""
    rt = current()
    lock = f"{rt.keys.cards(request_id)}:updating"
    if not rt.redis.set(lock, "1", nx=True, ex=30):
        # Someone is updating; make sure the newest version lands after them.
        rt.enqueue("workers.jobs.update_cards", request_id, at=time.time() + 1)
        return "deferred"
    try:
        record = rt.store.get(request_id)
        if record is None:
            return "not_found"
        view = build_view(record)
        cards = rt.redis.hgetall(rt.keys.cards(request_id))
        ms = messengers(rt)
        updated = 0
        failed: DeliveryError | None = None
        for slot, raw in cards.items():
            card = json.loads(raw)
            if int(card.get("version", 0)) >= view.version:
                continue
            messenger = ms.get(card["kind"])
            if messenger is None:
                continue
            try:
                _run(messenger.update(view, card["destination"], card["ref"]))
            except DeliveryError as exc:
                log.warning("could not update card %s for %s: %s", slot, request_id, exc)
                if exc.retryable:
                    failed = failed or exc
                continue
            card["version"] = view.version
            rt.redis.hset(rt.keys.cards(request_id), slot, json.dumps(card))
            updated += 1
        if "web" in ms and not any(str(slot).startswith("web:") for slot in cards):
            # Open inbox pages show every request someone may look at, not only those the
            # policy routes to the web channel: announce the change to them too.
            _run(ms["web"].update(view, "inbox", {}))
        if record.status.final:
            _tell_requester(rt, record, view, ms)
        if failed is not None:
            job = get_current_job()
            if job is None or job.retries_left:
                raise failed
            if later < LATER_ROUNDS:
                rt.enqueue("workers.jobs.update_cards", request_id, later + 1,
                           at=time.time() + LATER_DELAY)
        return f"updated {updated}"
    finally:
        rt.redis.delete(lock)


def _tell_requester(rt: Runtime, record: Any, view: Any, ms: dict[str, Messenger]) -> None:
    """DM the person the agent acts for once, when their request is decided."""
    if not record.on_behalf_of or "slack" not in ms:
        return
    person = rt.policy.directory.person(record.on_behalf_of)
    if person is None or not person.slack_id:
        return
    stamp = f"slack:{time.time()!r}"
    if rt.store.set_once(record.id, "told_requester", stamp) != stamp:
        return  # told already, or another job won the race to tell
    text = f"Your request `{record.action}` ({record.id}) was {view.final_line()}."
    try:
        _run(ms["slack"].tell(person.slack_id, text))
    except DeliveryError as exc:
        log.warning("could not tell %s about %s: %s", person.id, record.id, exc)


def remind(request_id: str, index: int, now: float | None = None) -> str:
    """Re-announce a still-pending request (reminder ``index`` of the policy).

    The lifecycle decides and audits (a reminder due after the deadline times the request
    out instead); this job only re-announces."""
    rt = current()
    outcome = lifecycle.remind(rt, request_id, index, now=now)
    record = rt.store.get(request_id, with_votes=False)
    if outcome != "reminded" or record is None:
        return outcome
    cards = rt.redis.hgetall(rt.keys.cards(request_id))
    ms = messengers(rt)
    for raw in cards.values():
        card = json.loads(raw)
        m = ms.get(card["kind"])
        if m is None or card["kind"] == "web":
            continue
        try:
            _run(m.tell(card["destination"],
                               f"Reminder: request {request_id} ({record.action}) is still "
                               "waiting for approval."))
        except DeliveryError as exc:
            log.warning("reminder for %s not delivered: %s", request_id, exc)
    return "reminded"


def escalate(request_id: str, index: int, now: float | None = None) -> str:
    """Apply escalation step ``index``: add approver groups and page others (the lifecycle
    decides and audits; a step due after the deadline times the request out instead)."""
    rt = current()
    outcome, step = lifecycle.escalate(rt, request_id, index, now=now)
    if step is None:
        return str(outcome)
    for group in list(step.add_groups) + list(step.page_groups):
        rt.enqueue("workers.jobs.notify", request_id, "slack_dm", group)
    rt.enqueue("workers.jobs.update_cards", request_id)
    return "escalated"
