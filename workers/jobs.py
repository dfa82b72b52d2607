"""rq jobs. Thin: each one calls the lifecycle, or writes down card work for the delivery
(:mod:`workers.delivery`), which does the platform calls. JSON arguments only.

Every job is idempotent: it may run twice (retries, the janitor's safety net, a redelivered
job after a killed worker) and the second run changes nothing.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from signoff import lifecycle, tracing
from signoff.cards import Card, slot
from signoff.cardview.view import build_view
from signoff.job_names import JobName
from signoff.messenger import Messenger
from signoff.models import Status
from signoff.runtime import Runtime, current
from signoff.store import Change
from workers import delivery
from workers.messengers import CHANNEL_MESSENGER, build_messengers, destinations


class CardJob(str, Enum):
    """What a notify or update_cards job found."""

    QUEUED = "queued"  # card work written down for the delivery
    CLOSED = "closed"  # the request was decided first: only a repair's look-ups were queued
    NOT_FOUND = "not_found"  # no such request (expired from Redis)


@dataclass(frozen=True)
class CardWork:
    """A notify or update_cards job's outcome: what it found and how many destinations'
    card work it queued (the delivery loop does the platform calls)."""

    outcome: CardJob
    queued: int = 0

log = logging.getLogger(__name__)


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


def prepare(request_id: str) -> lifecycle.Prepared:
    """Policy, masking, encryption done at intake; open the request or decide it."""
    return lifecycle.prepare(current(), request_id)


# A batch job prepares at most this many requests, and none once a finalize is waiting on
# the urgent queue; it re-enqueues the rest, so a decision never waits behind a long batch.
BATCH_CHUNK = 8


def prepare_batch(request_ids: list[str]) -> dict[str, lifecycle.Prepared]:
    """Prepare many requests in one job (the intake enqueues one per stream read), and queue
    their cards at once: one rq round trip instead of three per request is what keeps intake
    throughput near rq's own. A request's notify claim covers it until its cards are queued
    (a worker dying mid-batch is repaired by the janitor)."""
    rt = current()
    now, later = request_ids[:BATCH_CHUNK], request_ids[BATCH_CHUNK:]
    out = {}
    for i, rid in enumerate(now):
        if i and rt.urgent_queue.count:
            later = now[i:] + later  # a decision is waiting: let the worker take it first
            break
        with tracing.span("prepare", rid, parent=tracing.recall(rt, rid)):
            out[rid] = lifecycle.prepare(rt, rid, notify=False)
            if out[rid] == "pending":
                notify(rid)
    if later:
        rt.enqueue(JobName.PREPARE_BATCH, later)
    return out


def finalize(request_id: str) -> lifecycle.Finalized:
    """Grant, reply to the agent exactly once, refresh the cards."""
    return lifecycle.finalize(current(), request_id)


def expire(request_id: str, now: float | None = None) -> Change:
    """At the deadline: time the request out (no-op when decided or not yet due).

    ``now`` is for a controllable clock (tests drive the scheduled jobs with it). Run early
    (another host's clock is behind), it schedules itself again at the deadline."""
    rt = current()
    result = lifecycle.expire(rt, request_id, now=now)
    if result is Change.NOT_DUE:
        deadline = rt.store.get(request_id, with_votes=False)
        if deadline is not None and deadline.deadline:
            rt.enqueue(JobName.EXPIRE, request_id, at=math.ceil(deadline.deadline) + 1)
    return result


def notify(request_id: str, kind: str | None = None, target: str | None = None) -> CardWork:
    """Queue the cards for one policy channel target, or for every target of the request's
    policy when none is given, and have them delivered (each destination once, ever).

    The job does no platform I/O itself: each destination's card work goes to the ledger's
    outbox and the delivery posts it (concurrently, within the platform's rate; see
    :mod:`workers.delivery`). The web inbox's "card" is an event on Redis, announced here."""
    rt = current()
    record = rt.store.get(request_id)
    ms = messengers(rt)
    if record is None or record.status is not Status.PENDING:
        claimed = rt.cards.release_request(request_id)
        if record is not None and kind is not None and target is not None:
            # The janitor's repair of a slot: a card the platform holds but Signoff never
            # recorded is looked for, recorded and updated (no live buttons on a decision).
            names = _queue(rt, record, ms, [(kind, target)], attempted=True)
            delivery.submit(rt, ms, names)
            return CardWork(CardJob.CLOSED, len(names))
        elif record is not None and claimed and record.status.final:
            # The request's notify job was cut short (its claim was still there): a card it
            # posted without recording may exist on any channel.
            names = _queue(rt, record, ms, _targets(record), attempted=True)
            delivery.submit(rt, ms, names)
            return CardWork(CardJob.CLOSED, len(names))
        return CardWork(CardJob.CLOSED)
    targets = [(kind, target)] if kind is not None and target is not None else _targets(record)
    names = _queue(rt, record, ms, targets)
    # Every card is in the outbox (durable): the request's notify claim is done.
    if kind is None or target is None:
        rt.cards.release_request(request_id)
    delivery.submit(rt, ms, names)
    return CardWork(CardJob.QUEUED, len(names))


def _targets(record: Any) -> list[tuple[str, str]]:
    channels = record.evaluation.requirement.channels
    return [(c.kind.value, c.target) for c in channels]


def _queue(rt: Runtime, record: Any, ms: dict[str, Messenger],
           targets: list[tuple[str, str]], attempted: bool = False) -> list[str]:
    """Write down the card work for each destination of ``targets``; the inbox's card is
    announced at once. Returns the destinations to drain."""
    names: list[str] = []
    trace = tracing.traceparent() or ""
    for kind, target in targets:
        mkind = CHANNEL_MESSENGER.get(kind) or kind
        if mkind not in ms:
            # A platform this deployment has no credentials for is not part of routing (the
            # processes say once at start which are off: Settings.channels_off), rather than
            # a failed card on every request.
            log.debug("%s: no %s card (%s is off)", record.id, target, mkind)
            continue
        for dest in destinations(rt, kind, target):
            if mkind == "web":
                _web_card(rt, record, ms["web"], dest)
                continue
            names.append(rt.cards.queue(record.id, mkind, dest, target=kind,
                                        attempted=attempted, trace=trace))
    return names


def _web_card(rt: Runtime, record: Any, web: Messenger, dest: str) -> None:
    """The inbox renders from the store: "posting" is an event for open pages, and a record
    so the request page shows the channel."""
    name = slot("web", dest)
    if rt.cards.has_card(record.id, name) or record.status is not Status.PENDING:
        return
    version = int(record.get("version") or 0)
    _announce(web, build_view(record), "posted")
    # Not audited: nothing leaves Signoff (the inbox lists every request it may show anyway);
    # the audit records what reaches Slack and Teams.
    rt.cards.record(record.id, Card("web", dest, {"inbox": dest}, version, time.time()))


def _announce(web: Messenger, view: Any, event: str) -> None:
    announce = getattr(web, "announce", None)
    if callable(announce):
        announce(view, event)
    else:
        delivery.run_now(web.update(view, "inbox", {}))


def deliver_due() -> int:
    """Drain every destination whose card work is due (an operator's nudge; workers' delivery
    loops do this on their own)."""
    rt = current()
    return delivery.drain_due(rt, messengers(rt))


def update_cards(request_id: str) -> CardWork:
    """Bring every posted card of a request up to the current version (the delivery does the
    calls; each destination's updates coalesce), announce the change to open inbox pages, and
    tell the person the agent acts for once it is decided."""
    rt = current()
    record = rt.store.get(request_id)
    if record is None:
        return CardWork(CardJob.NOT_FOUND)
    ms = messengers(rt)
    cards = rt.cards.cards(request_id)
    trace = tracing.traceparent() or ""
    names = []
    view: Any = None
    for card in cards.values():
        if card.kind == "web":
            continue
        names.append(rt.cards.queue(request_id, card.kind, card.destination, trace=trace))
    if "web" in ms:
        # Open inbox pages show every request someone may look at, not only those the
        # policy routes to the web channel: announce the change to them too.
        view = build_view(record)
        _announce(ms["web"], view, "updated")
        for card in cards.values():
            if card.kind == "web" and card.version < view.version:
                rt.cards.record(request_id, replace(card, version=view.version))
    delivery.submit(rt, ms, names)
    if record.status.final:
        _tell_requester(rt, record, view or build_view(record), ms)
    return CardWork(CardJob.QUEUED, len(names))


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
    text = f"Your request `{view.action}` ({record.id}) was {view.final_line()}."
    if delivery.may_send(rt, ms["slack"], person.slack_id):
        delivery.run_task(ms["slack"].tell(person.slack_id, text))


def remind(request_id: str, index: int, now: float | None = None) -> lifecycle.FollowUp:
    """Re-announce a still-pending request (reminder ``index`` of the policy).

    The lifecycle decides and audits (a reminder due after the deadline times the request
    out instead); this job only re-announces."""
    rt = current()
    outcome = lifecycle.remind(rt, request_id, index, now=now)
    record = rt.store.get(request_id, with_votes=False)
    if outcome is not lifecycle.FollowUp.REMINDED or record is None:
        return outcome
    ms = messengers(rt)
    text = (f"Reminder: request {request_id} ({build_view(record).action}) is still waiting "
            "for approval.")
    for card in rt.cards.cards(request_id).values():
        m = ms.get(card.kind)
        if m is None or card.kind == "web" or not delivery.may_send(rt, m, card.destination):
            continue
        delivery.run_task(m.tell(card.destination, text))
    return outcome


def escalate(request_id: str, index: int, now: float | None = None) -> lifecycle.FollowUp:
    """Apply escalation step ``index``: add approver groups and page others (the lifecycle
    decides and audits; a step due after the deadline times the request out instead)."""
    rt = current()
    outcome, step = lifecycle.escalate(rt, request_id, index, now=now)
    if step is None:
        return outcome
    for group in list(step.add_groups) + list(step.page_groups):
        rt.enqueue(JobName.NOTIFY, request_id, "slack_dm", group)
    rt.enqueue(JobName.UPDATE, request_id)
    return outcome
