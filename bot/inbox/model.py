"""What the inbox shows one person: which requests, what they may do with each, and why.

Built from stored records only, through :func:`signoff.cardview.view.build_view` (masked data; the
partial view only for members of the partial groups), and the same
:func:`policy.can_decide` that :func:`signoff.lifecycle.submit_vote` enforces, so a page never
offers a button the vote would refuse. Synchronous: callers run it in a thread.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from policy import Refused
from signoff.audit import Entry
from signoff.cardview.view import CardView, build_view
from signoff.lifecycle import check_decider
from signoff.models import Status
from signoff.store import Record

if TYPE_CHECKING:
    from policy import Directory, Person
    from signoff.runtime import Runtime

LIST_LIMIT = 50
MINE_LIMIT = 10


@dataclass(frozen=True)
class Item:
    """One request as one person sees it.

    Attributes:
        view: the masked view model (partial when the person's groups allow it).
        can_vote: whether the person may approve or deny it now.
        refusal: why not, in words (None when they may, or the request is closed).
        my_vote: ``approve`` / ``deny`` if they already voted.
        auto: decided automatically by policy.
        partial: the view shows partial values for the person's group.
    """

    view: CardView
    can_vote: bool
    refusal: str | None
    my_vote: str | None
    auto: bool
    partial: bool

    @property
    def id(self) -> str:
        return self.view.request_id


@dataclass(frozen=True)
class Inbox:
    """The list page: what needs this person, what waits on others, what they asked for."""

    to_decide: list[Item] = field(default_factory=list)
    waiting: list[Item] = field(default_factory=list)
    mine: list[Item] = field(default_factory=list)


@dataclass(frozen=True)
class Detail:
    """The request page."""

    item: Item
    audit: list[Entry]
    channels: list[str]


def partial_for(record: Record, person: Person) -> bool:
    """Whether ``person`` gets the partial view (member of one of the partial groups)."""
    groups = record.json("partial_groups", []) or []
    return bool(record.get("masked_partial")) and bool(set(groups) & set(person.groups))


def item_for(record: Record, person: Person, directory: Directory) -> Item:
    """How ``person`` sees ``record`` and whether they may vote on it."""
    partial = partial_for(record, person)
    view = build_view(record, partial=partial)
    mine = next((v.choice for p, v in record.votes.items() if directory.canonical_person(p) == person.id), None)
    can_vote, refusal = False, None
    if record.status is Status.PENDING and record.get("evaluation"):
        verdict = check_decider(record, person, directory)
        if isinstance(verdict, Refused):
            refusal = verdict.reason
        else:
            can_vote = True
    return Item(view=view, can_vote=can_vote, refusal=refusal, my_vote=mine,
                auto=record.get("auto") == "1", partial=partial)


def load_inbox(rt: Runtime, person: Person) -> Inbox:
    """The list page for ``person`` (pending requests of their groups, newest first)."""
    directory = rt.policy.directory
    ids = rt.store.pending_ids(groups=sorted(person.groups), limit=LIST_LIMIT) \
        if person.groups else []
    out = Inbox()
    to_decide: set[str] = set()
    for rid in ids:
        record = rt.store.get(rid)
        if record is None or record.status is not Status.PENDING:
            continue
        item = item_for(record, person, directory)
        if item.can_vote:
            to_decide.add(rid)
            out.to_decide.append(item)
        else:
            out.waiting.append(item)
    mine: set[str] = set()
    for rid in rt.store.mine(person.id, limit=MINE_LIMIT):
        record = rt.store.get(rid)
        if record is not None and rid not in to_decide and rid not in mine:
            mine.add(rid)
            out.mine.append(item_for(record, person, directory))
    # Each request is listed once: one asked on this person's behalf that waits on others
    # shows under "Asked on your behalf" only (it says why they cannot decide it there too).
    out.waiting[:] = [item for item in out.waiting if item.view.request_id not in mine]
    return out


def load_detail(rt: Runtime, person: Person, request_id: str) -> Detail | None:
    """The request page for ``person``, or None when there is no such request."""
    record = rt.store.get(request_id)
    if record is None:
        return None
    item = item_for(record, person, rt.policy.directory)
    channels = []
    for raw in rt.redis.hgetall(rt.keys.cards(request_id)).values():
        card: dict[str, Any] = json.loads(raw)
        channels.append(f"{card.get('kind')}: {card.get('destination')}")
    # The policy's explanation is not shown: it may quote unmasked request values.
    return Detail(item=item, audit=rt.audit.for_request(request_id), channels=sorted(channels))
