"""The inbox's pages for deciding less often and better.

- ``POST /inbox/bulk``: the selected requests (``ids``), ``choice``, ``comment`` / ``preset``;
  each through :func:`signoff.lifecycle.submit_vote` (:func:`signoff.batch.submit_many`), the
  flash says which went through and why the others did not.
- ``POST /inbox/r/{id}/edit``: ``edit.<param>`` fields, ``seen`` (the payload hash shown),
  ``approve`` (:func:`signoff.edits.submit_edit`).
- ``POST /inbox/r/{id}/extend``: ``by`` (a duration), where the rule allows extending.
- ``POST /inbox/r/{id}/decide-for``: ``for`` (the person who delegated), ``choice``,
  ``comment``: the signed-in delegate decides in their own name for that person.
- ``GET /inbox/history``: decided requests with filters and search.
- ``GET /inbox/standing``, ``POST /inbox/standing/{sid}/revoke``.
- ``GET /inbox/delegations``, ``POST /inbox/delegations``,
  ``POST /inbox/delegations/{did}/revoke``.

Every POST is checked like the inbox's own decide form (same origin, session, CSRF).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from aiohttp import web

from bot.appkeys import METRICS
from bot.inbox.context import INBOX
from bot.web_channel import WebMessenger
from policy import Allowed, Refused
from policy.durations import format_duration, parse_duration
from policy.separation import RefusalCode
from signoff import batch, edits, history, lifecycle
from signoff.cardview.view import build_view
from signoff.delegation import Delegations, delegate_as, revoke_delegation_as
from signoff.lifecycle import check_decider
from signoff.models import RECORD_ID_PATTERN, Status
from signoff.standing import StandingApprovals, revoke_standing_as, window_choices, window_label
from signoff.store import Record

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

RID = "{rid:" + RECORD_ID_PATTERN.strip("^$") + "}"
EXTEND_CHOICES = (15 * 60, 30 * 60, 3600, 2 * 3600, 4 * 3600)
HISTORY_PAGE = 50


@dataclass(frozen=True)
class Extras:
    """What the request page offers beyond approve / deny for one person."""

    principals: list[str] = field(default_factory=list)  # may decide for them (delegation)
    extend_choices: list[int] = field(default_factory=list)  # seconds still allowed


def load_extras(rt: Runtime, person: Person, record: Record | None) -> Extras:
    """Delegations the person may decide this request under, and the extensions left."""
    if record is None or record.status is not Status.PENDING or not record.get("evaluation"):
        return Extras()
    directory = rt.policy.directory
    evaluation = record.evaluation
    own = check_decider(record, person, directory, evaluation)
    principals: list[str] = []
    if not (isinstance(own, Refused) and own.code is not RefusalCode.NOT_ELIGIBLE):
        for d in Delegations(rt.redis, rt.keys).to(person.id):
            principal = directory.person(d.from_person)
            if principal is not None and isinstance(
                    check_decider(record, principal, directory, evaluation), Allowed):
                principals.append(principal.id)
    left = evaluation.requirement.extend_max - int(record.number("extended"))
    may_extend = isinstance(own, Allowed) or own.code is RefusalCode.ALREADY_VOTED
    extend = [s for s in EXTEND_CHOICES if s <= left] if may_extend else []
    return Extras(principals=principals, extend_choices=extend)


def delegated(rt: Runtime, person: Person, limit: int = 50) -> list[tuple[str, Any]]:
    """(principal, view) of the pending requests ``person`` may decide for someone who
    delegated to them (the list page's "For people who delegated to you")."""
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for d in Delegations(rt.redis, rt.keys).to(person.id):
        principal = rt.policy.directory.person(d.from_person)
        if principal is None or not principal.groups:
            continue
        for rid in rt.store.pending_ids(groups=sorted(principal.groups), limit=limit):
            record = rt.store.get(rid)
            if rid in seen or record is None:
                continue
            if principal.id in load_extras(rt, person, record).principals:
                seen.add(rid)
                out.append((principal.id, build_view(record)))
    return out[:limit]


def _back(form: dict[str, str], rid: str = "") -> str:
    return "/inbox" if form.get("back") == "list" or not rid else f"/inbox/r/{rid}"


async def _announce(rt: Runtime, record: Record | None) -> None:
    if record is not None:
        await WebMessenger(rt.redis, rt.keys.events).update(build_view(record), "inbox", {})


async def bulk(request: web.Request) -> web.StreamResponse:
    """Approve or deny the selected requests, each on its own."""
    ctx = request.app[INBOX]
    session, form = await ctx.verified_post(request)
    ids = [i for i in (await request.post()).getall("ids", []) if isinstance(i, str)]
    choice = form.get("choice", "")
    comment = (form.get("comment") or "").strip() or (form.get("preset") or "").strip()
    if not ids:
        await ctx.flash(session, "error", "Select at least one request first.")
        raise web.HTTPSeeOther("/inbox")

    def _run() -> list[batch.BatchItem]:
        person = ctx.rt.policy.directory.person(session.person)
        return batch.submit_many(ctx.rt, ids, person, choice, comment=comment or None,
                                 channel="web", actor_label=session.person or "")

    items = await asyncio.to_thread(_run)
    for item in items:
        request.app[METRICS].votes.labels("web", item.code).inc()
    await ctx.flash(session, "ok" if all(i.ok for i in items) else "error",
                    batch.summary(items))
    raise web.HTTPSeeOther("/inbox")


async def edit(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, form = await ctx.verified_post(request)
    rid = request.match_info["rid"]
    changes = {k[len("edit."):]: v for k, v in form.items()
               if k.startswith("edit.") and len(k) > len("edit.")}

    def _run() -> lifecycle.VoteReply:
        person = ctx.rt.policy.directory.person(session.person)
        record = ctx.rt.store.get(rid, with_votes=False)
        shown = build_view(record).params if record is not None else {}
        # Only what the person changed: a field left as shown is not an edit.
        wanted = {k: v for k, v in changes.items()
                  if not isinstance(shown, dict) or str(shown.get(k)) != v.strip()}
        return edits.submit_edit(ctx.rt, rid, person, wanted or changes,
                                 seen_sha256=form.get("seen") or None, channel="web",
                                 approve=form.get("approve") == "1",
                                 for_person=form.get("for") or None,
                                 actor_label=session.person or "")

    reply = await asyncio.to_thread(_run)
    await ctx.flash(session, "ok" if reply.ok else "error", reply.message)
    await _announce(ctx.rt, reply.record if reply.ok else None)
    raise web.HTTPSeeOther(f"/inbox/r/{rid}")


async def extend(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, form = await ctx.verified_post(request)
    rid = request.match_info["rid"]
    try:
        seconds = parse_duration(form.get("by", ""))
    except (TypeError, ValueError):
        await ctx.flash(session, "error", "Choose how long to extend by.")
        raise web.HTTPSeeOther(_back(form, rid)) from None
    reply = await asyncio.to_thread(lifecycle.extend_deadline, ctx.rt, rid,
                                    ctx.rt.policy.directory.person(session.person), seconds,
                                    "web")
    await ctx.flash(session, "ok" if reply.ok else "error",
                    f"Deadline extended by {format_duration(seconds)}." if reply.ok
                    else reply.message)
    await _announce(ctx.rt, reply.record if reply.ok else None)
    raise web.HTTPSeeOther(_back(form, rid))


async def decide_for(request: web.Request) -> web.StreamResponse:
    """A delegate's vote for the person who delegated to them."""
    ctx = request.app[INBOX]
    session, form = await ctx.verified_post(request)
    rid = request.match_info["rid"]
    comment = (form.get("comment") or "").strip() or (form.get("preset") or "").strip()

    def _vote() -> lifecycle.VoteReply:
        person = ctx.rt.policy.directory.person(session.person)
        return lifecycle.submit_vote(ctx.rt, rid, person, form.get("choice", ""),
                                     comment or None, channel="web",
                                     actor_label=session.person or "",
                                     for_person=form.get("for") or None,
                                     seen_sha256=form.get("seen") or None)

    reply = await asyncio.to_thread(_vote)
    request.app[METRICS].votes.labels("web", reply.code).inc()
    await ctx.flash(session, "ok" if reply.ok else "error",
                    (f"For {form.get('for')}: " if reply.ok else "") + reply.message)
    await _announce(ctx.rt, reply.record if reply.ok else None)
    raise web.HTTPSeeOther(f"/inbox/r/{rid}")


def _date(value: str | None, end: bool = False) -> float:
    """A ``YYYY-MM-DD`` filter as Unix seconds (UTC; the end of the day for ``until``)."""
    if not value:
        return 0.0
    day = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    return day + 86400 - 0.001 if end else day


async def history_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    _session, person = await ctx.require_person(request)
    q = request.query
    try:
        query = history.HistoryQuery(
            status=q.get("status", "") if q.get("status", "") in history.STATUSES else "",
            agent=q.get("agent", "")[:200], action=q.get("action", "")[:200],
            person=q.get("person", "")[:200], since=_date(q.get("since")),
            until=_date(q.get("until"), end=True), q=q.get("q", "")[:200])
        page = max(int(q.get("page", "1")), 1)
        error = ""
    except ValueError:
        query, page, error = history.HistoryQuery(), 1, "Dates are YYYY-MM-DD."
    records, more = await asyncio.to_thread(history.decided, ctx.rt, query,
                                            (page - 1) * HISTORY_PAGE, HISTORY_PAGE)
    return await ctx.render(request, "history.html", person=person,
                            views=[build_view(r) for r in records], more=more, page=page,
                            filters=dict(q), statuses=history.STATUSES, error=error)


async def standing_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    _session, person = await ctx.require_person(request)
    items = await asyncio.to_thread(StandingApprovals(ctx.rt.redis, ctx.rt.keys).active)
    return await ctx.render(request, "standing.html", person=person, items=items)


async def standing_revoke(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, _form = await ctx.verified_post(request)
    status, message, _item = await asyncio.to_thread(
        revoke_standing_as, ctx.rt, request.match_info["sid"], session.person or "", "web")
    await ctx.flash(session, "ok" if status == 200 else "error",
                    "Standing approval revoked: the next request waits for people again."
                    if status == 200 else message[:1].upper() + message[1:] + ".")
    raise web.HTTPSeeOther("/inbox/standing")


async def delegations_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    _session, person = await ctx.require_person(request)

    def _load() -> dict[str, Any]:
        store = Delegations(ctx.rt.redis, ctx.rt.keys)
        return {"given": store.given_by(person.id), "received": store.received_by(person.id),
                "waiting": delegated(ctx.rt, person)}

    lists = await asyncio.to_thread(_load)
    return await ctx.render(request, "delegations.html", person=person, **lists)


async def delegations_create(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, form = await ctx.verified_post(request)
    try:
        seconds = parse_duration(form.get("for", ""))
    except (TypeError, ValueError):
        await ctx.flash(session, "error", "How long: a duration such as 8h or 3d.")
        raise web.HTTPSeeOther("/inbox/delegations") from None
    _status, message, item = await asyncio.to_thread(
        delegate_as, ctx.rt, session.person or "", form.get("to", ""), seconds, None,
        form.get("reason", ""), "web")
    await ctx.flash(session, "ok" if item else "error",
                    f"{item['to']} decides for you until the delegation ends or you revoke it."
                    if item else message[:1].upper() + message[1:] + ".")
    raise web.HTTPSeeOther("/inbox/delegations")


async def delegations_revoke(request: web.Request) -> web.StreamResponse:
    ctx = request.app[INBOX]
    session, _form = await ctx.verified_post(request)
    status, message, _item = await asyncio.to_thread(
        revoke_delegation_as, ctx.rt, request.match_info["did"], session.person or "", "web")
    await ctx.flash(session, "ok" if status == 200 else "error",
                    "Delegation revoked." if status == 200
                    else message[:1].upper() + message[1:] + ".")
    raise web.HTTPSeeOther("/inbox/delegations")


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "—"


def _page_query(filters: dict[str, str], page: int) -> str:
    return urlencode({**{k: v for k, v in filters.items() if k != "page"}, "page": page})


def setup_routes(app: web.Application) -> None:
    """Mount the pages and the template filters they use."""
    filters = app[INBOX].templates.filters
    filters["standing_choices"] = window_choices
    filters["window_label"] = window_label
    filters["utc"] = _utc
    filters["urlencode_page"] = _page_query
    app.router.add_post("/inbox/bulk", bulk)
    app.router.add_post(f"/inbox/r/{RID}/edit", edit)
    app.router.add_post(f"/inbox/r/{RID}/extend", extend)
    app.router.add_post(f"/inbox/r/{RID}/decide-for", decide_for)
    app.router.add_get("/inbox/history", history_page)
    app.router.add_get("/inbox/standing", standing_page)
    app.router.add_post("/inbox/standing/{sid:st-[0-9a-f]{1,40}}/revoke", standing_revoke)
    app.router.add_get("/inbox/delegations", delegations_page)
    app.router.add_post("/inbox/delegations", delegations_create)
    app.router.add_post("/inbox/delegations/{did:dl-[0-9a-f]{1,40}}/revoke",
                        delegations_revoke)
