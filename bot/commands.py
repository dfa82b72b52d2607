"""Channel-neutral answers to the approver commands: ``status <id>``, ``pending``, ``mine``, ``help``.

Slack's ``/signoff`` and the Teams bot's text commands parse nothing themselves: they pass the
person (already resolved through the policy directory, ``None`` when unknown) and the raw
text to :func:`answer`, and render the :class:`CommandResult` it returns in their own format.
Everything in a result is masked (it holds :class:`~signoff.cardview.view.CardView` objects, built
from stored records only), so a renderer cannot leak what masking removed.

:func:`answer` is synchronous (it reads Redis with the sync client); call it from async code
with ``asyncio.to_thread``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from policy import Allowed
from signoff.cardview.view import CardView, build_view
from signoff.lifecycle import check_decider
from signoff.models import RECORD_ID_PATTERN, Status
from signoff.store import Record

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

PAGE_SIZE = 10
# A pending listing checks separation of duties per request; this bounds the work one
# command may do (the group indexes are already restricted to the person's groups).
SCAN_LIMIT = 1000
MAX_PAGE = 100

_ID_RE = re.compile(RECORD_ID_PATTERN)


class CommandKind(str, Enum):
    """Which answer a result is."""

    STATUS = "status"
    PENDING = "pending"
    MINE = "mine"
    HELP = "help"


@dataclass(frozen=True)
class HelpLine:
    """One line of help: the usage and what it does."""

    usage: str
    text: str


HELP_LINES: tuple[HelpLine, ...] = (
    HelpLine("status <request-id>", "Show one request: what it is, who asked, where it stands."),
    HelpLine("pending [page]", "Requests you may decide, newest first."),
    HelpLine("mine [page]", "Requests agents made on your behalf, newest first."),
    HelpLine("help", "This list."),
)


@dataclass(frozen=True)
class CommandResult:
    """A channel-neutral answer. Channels render it; they never add data to it.

    Attributes:
        kind: which command answered (``help`` also for errors, with ``error`` set).
        title: a one-line heading ("Pending for you", "Request r-1").
        error: what was wrong with the command or who asked, shown above the help; ``None``
            when the command worked.
        view: the request for ``status``.
        items: the requests listed by ``pending`` and ``mine`` (this page only).
        decidable: for ``status``, whether the asker may vote on it now.
        page: the 1-based page shown.
        has_more: whether a next page exists.
        next_command: the text that shows the next page (``"pending 2"``), or ``None``.
        empty_text: what to say when ``items`` is empty.
        help: the help lines (always present, so any channel can append them).
    """

    kind: CommandKind
    title: str
    error: str | None = None
    view: CardView | None = None
    items: tuple[CardView, ...] = ()
    decidable: bool = False
    page: int = 1
    has_more: bool = False
    next_command: str | None = None
    empty_text: str = ""
    help: tuple[HelpLine, ...] = field(default=HELP_LINES)

    @property
    def ok(self) -> bool:
        """Whether the command worked (no error)."""
        return self.error is None


def help_result(error: str | None = None) -> CommandResult:
    """The help answer, optionally with what went wrong first."""
    return CommandResult(kind=CommandKind.HELP, title="Signoff commands", error=error)


UNKNOWN_PERSON = (
    "Signoff does not know your account, so it cannot show you requests. "
    "Ask an administrator to add you to the policy directory."
)


def answer(rt: Runtime, person: Person | None, text: str) -> CommandResult:
    """Answer one command.

    Args:
        rt: the runtime (store and policy).
        person: who asked, resolved through the policy directory; ``None`` when the chat
            user is not in it (they get help and an explanation, never request data).
        text: the command text after the command name, e.g. ``"status r-1"``; may be empty.

    Returns:
        The result to render. Bad input gives help with ``error`` set, never an exception.
    """
    words = (text or "").split()
    if not words:
        return help_result()
    verb, args = words[0].lower(), words[1:]
    if verb in ("help", "?", "-h", "--help"):
        return help_result()
    if verb not in ("status", "pending", "mine"):
        return help_result(f"Unknown command '{_clip(words[0])}'.")
    if person is None:
        return help_result(UNKNOWN_PERSON)
    if verb == "status":
        if len(args) != 1:
            return help_result("Usage: status <request-id>.")
        return _status(rt, person, args[0])
    page = _page(args)
    if page is None:
        return help_result(f"Usage: {verb} [page], where page is a number from 1 to {MAX_PAGE}.")
    if verb == "pending":
        return _pending(rt, person, page)
    return _mine(rt, person, page)


def _clip(value: str, limit: int = 40) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


def _page(args: list[str]) -> int | None:
    if not args:
        return 1
    if len(args) != 1 or not args[0].isdigit():
        return None
    page = int(args[0])
    return page if 1 <= page <= MAX_PAGE else None


def view_for(record: Record, person: Person | None) -> CardView:
    """The masked view this person may see (the partial view for the groups allowed it)."""
    partial_groups = set(record.json("partial_groups", []) or [])
    partial = person is not None and bool(partial_groups & set(person.groups))
    return build_view(record, partial=partial)


def may_decide(rt: Runtime, record: Record, person: Person) -> bool:
    """Whether ``person`` may vote on ``record`` now (the same check a click gets)."""
    if record.status is not Status.PENDING or not record.get("evaluation"):
        return False
    return isinstance(check_decider(record, person, rt.policy.directory), Allowed)


def _status(rt: Runtime, person: Person, request_id: str) -> CommandResult:
    if not _ID_RE.match(request_id):
        return help_result(f"'{_clip(request_id)}' is not a request id.")
    record = rt.store.get(request_id)
    if record is None:
        return help_result(f"There is no request {request_id}.")
    if not record.get("masked") and record.status is not Status.REJECTED:
        # Still being prepared: there is no masked view yet, so nothing may be shown.
        return CommandResult(kind=CommandKind.STATUS, title=f"Request {request_id}",
                             error="This request is still being prepared; try again in a "
                                   "moment.")
    return CommandResult(kind=CommandKind.STATUS, title=f"Request {request_id}",
                         view=view_for(record, person),
                         decidable=may_decide(rt, record, person))


def _pending(rt: Runtime, person: Person, page: int) -> CommandResult:
    groups = sorted(person.groups)
    want = page * PAGE_SIZE + 1  # one more than needed tells whether a next page exists
    found: list[Record] = []
    scanned = 0
    batch = 50
    while groups and len(found) < want and scanned < SCAN_LIMIT:
        ids = rt.store.pending_ids(groups=groups, offset=scanned, limit=batch)
        if not ids:
            break
        scanned += len(ids)
        for rid in ids:
            record = rt.store.get(rid)
            if record is not None and may_decide(rt, record, person):
                found.append(record)
        if len(ids) < batch:
            break
    start = (page - 1) * PAGE_SIZE
    shown = found[start:start + PAGE_SIZE]
    has_more = len(found) > start + PAGE_SIZE
    return CommandResult(
        kind=CommandKind.PENDING, title="Waiting for your decision",
        items=tuple(view_for(r, person) for r in shown), page=page, has_more=has_more,
        next_command=f"pending {page + 1}" if has_more else None,
        empty_text="Nothing is waiting for you." if page == 1 else "No more requests.",
    )


def _mine(rt: Runtime, person: Person, page: int) -> CommandResult:
    start = (page - 1) * PAGE_SIZE
    ids = rt.store.mine(person.id, offset=start, limit=PAGE_SIZE + 1)
    has_more = len(ids) > PAGE_SIZE
    views = []
    for rid in ids[:PAGE_SIZE]:
        record = rt.store.get(rid)
        if record is not None:
            views.append(view_for(record, person))
    return CommandResult(
        kind=CommandKind.MINE, title="Requests made for you", items=tuple(views), page=page,
        has_more=has_more, next_command=f"mine {page + 1}" if has_more else None,
        empty_text="No agent has asked for anything on your behalf." if page == 1
        else "No more requests.",
    )


def plain_text(result: CommandResult) -> str:
    """A plain-text rendering (for logs, the CLI, and channels without rich cards)."""
    lines: list[str] = []
    if result.error:
        lines.append(result.error)
    if result.kind is CommandKind.HELP:
        lines.append(result.title + ":")
        lines += [f"  {h.usage} — {h.text}" for h in result.help]
        return "\n".join(lines)
    lines.append(result.title)
    if result.view is not None:
        v = result.view
        lines += [f"{v.action} on {v.resource}", f"Status: {v.status_text}",
                  f"Asked by {v.requester}" + (f" for {v.on_behalf_of}" if v.on_behalf_of
                                                else ""),
                  f"Policy: {v.policy_rule} — {v.progress}",
                  f"Masking: {v.masking_summary}"]
        if not v.open:
            lines.append(v.final_line())
    for item in result.items:
        lines.append(f"• {item.request_id}: {item.action} on {item.resource} — "
                     f"{item.status_text if not item.open else item.progress}")
    if not result.items and result.kind in (CommandKind.PENDING, CommandKind.MINE):
        lines.append(result.empty_text)
    if result.next_command:
        lines.append(f"More: {result.next_command}")
    return "\n".join(lines)
