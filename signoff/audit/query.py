"""``signoff audit query``: filter entries by time, event, action, person, agent and status,
and render them as a table, JSON lines or CSV."""

from __future__ import annotations

import csv
import fnmatch
import io
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from policy.identity import canonical
from signoff.audit.entry import Entry
from signoff.audit.events import FINAL_EVENTS, Event
from signoff.audit.index import IndexRow

if TYPE_CHECKING:
    from signoff.audit.context import AuditContext


@dataclass(frozen=True)
class QueryFilter:
    """What ``signoff audit query`` selects; every given criterion must hold."""

    since: float | None = None
    until: float | None = None
    events: frozenset[str] = frozenset()
    action: str | None = None  # glob, e.g. db.export*
    person: str | None = None  # the actor, or the human a request was made for
    agent: str | None = None  # the requesting agent
    status: str | None = None  # the request's final (or current) status
    request_id: str | None = None
    step_up: bool = False  # only votes proven with a passkey (step-up)
    resource: str | None = None  # exact; answered from the index, not a scan


@dataclass(frozen=True)
class RequestFacts:
    """What the audit itself says about one request (joined onto each of its entries)."""

    action: str = ""
    agent: str = ""
    on_behalf_of: str = ""
    status: str = ""


@dataclass(frozen=True)
class Row:
    """One query result."""

    entry: Entry
    facts: RequestFacts

    def to_dict(self) -> dict[str, Any]:
        e = self.entry
        return {"id": e.stream_id, "seq": e.seq, "ts": e.ts,
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(e.ts)),
                "event": e.event, "request_id": e.request_id, "actor": e.actor,
                "action": self.facts.action, "agent": self.facts.agent,
                "on_behalf_of": self.facts.on_behalf_of, "status": self.facts.status,
                "details": e.details}


def facts_from(entries: Iterable[Entry]) -> RequestFacts:
    """A request's action, agent, person and status, from its own audit entries."""
    action = agent = obo = ""
    status = ""
    for e in entries:
        if e.event == Event.REQUESTED.value:
            action = str(e.details.get("action", action))
            agent = e.actor or agent
            obo = str(e.details.get("on_behalf_of", "") or obo)
            status = status or "received"
        elif e.event == Event.PREPARED.value and status in ("", "received"):
            status = str(e.details.get("outcome") or "pending")
        elif e.event == Event.DECIDED.value:
            status = str(e.details.get("status", status))
        elif e.event in FINAL_EVENTS:
            status = FINAL_EVENTS[e.event]
        if not action and e.details.get("action"):
            action = str(e.details["action"])
    return RequestFacts(action, agent, canonical(obo), status)


def _stream_bound(ts: float | None, default: str) -> str:
    return default if ts is None else str(int(ts * 1000))


def query(rt: AuditContext, flt: QueryFilter, limit: int = 1000) -> Iterator[Row]:
    """Entries matching ``flt``, oldest first, each joined with its request's facts."""
    log_ = rt.audit
    if flt.request_id:
        source: Iterable[Entry] = (e for e in log_.for_request(flt.request_id, limit=100_000)
                                   if _in_time(e, flt) and (
                                       not flt.resource or _on_resource(rt, e, flt.resource)))
    elif flt.resource:
        log_.index.update(log_.read_after)
        source = _indexed_entries(rt, log_.index.for_resource(flt.resource, flt.since,
                                                              flt.until))
    else:
        source = log_.iter_entries(_stream_bound(flt.since, "-"), _stream_bound(flt.until, "+"))
    facts: dict[str, RequestFacts] = {}
    needs_facts = bool(flt.action or flt.agent or flt.status or flt.person)
    produced = 0
    for e in source:
        if flt.events and e.event not in flt.events:
            continue
        if flt.step_up and not (e.event == Event.VOTE.value and e.details.get("step_up")):
            continue
        f = RequestFacts()
        if e.request_id:
            if e.request_id not in facts:
                facts[e.request_id] = facts_from(log_.for_request(e.request_id))
            f = facts[e.request_id]
        elif needs_facts and not flt.person:
            continue
        if flt.action and not fnmatch.fnmatchcase(f.action, flt.action):
            continue
        if flt.agent and flt.agent not in (f.agent, e.actor):
            continue
        if flt.status and f.status != flt.status:
            continue
        if flt.person and canonical(flt.person) not in (canonical(e.actor), f.on_behalf_of):
            continue
        yield Row(e, f)
        produced += 1
        if produced >= limit:
            return


def _on_resource(rt: AuditContext, e: Entry, resource: str) -> bool:
    return any(r.resource == resource for r in rt.audit.index.for_resource(resource)
               if r.request_id == e.request_id)


def _indexed_entries(rt: AuditContext, rows: list[IndexRow]) -> Iterator[Entry]:
    """The entries behind index rows (read from the stream in one pipeline per thousand; an
    archived entry is rebuilt from its row, without details)."""
    for i in range(0, len(rows), 1000):
        part = rows[i:i + 1000]
        pipe = rt.audit.r.pipeline(transaction=False)
        for row in part:
            pipe.xrange(rt.keys.audit, row.id, row.id)
        for row, got in zip(part, pipe.execute(), strict=True):
            if got:
                yield Entry.from_stream(got[0][0], got[0][1])
            else:
                yield Entry(row.id, row.seq, row.ts, row.event, row.request_id, row.actor,
                            {"archived": True}, "", "")


def _in_time(e: Entry, flt: QueryFilter) -> bool:
    return (flt.since is None or e.ts >= flt.since) and (flt.until is None or e.ts <= flt.until)


COLUMNS = ("time", "seq", "event", "request_id", "actor", "action", "agent", "status")


def render(rows: Iterable[Row], fmt: str) -> Iterator[str]:
    """Rows as ``table`` lines, ``jsonl`` or ``csv`` (details as JSON in one column)."""
    if fmt == "jsonl":
        for row in rows:
            yield json.dumps(row.to_dict(), sort_keys=True, ensure_ascii=False)
        return
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([*COLUMNS, "on_behalf_of", "details"])
        yield buf.getvalue().rstrip("\r\n")
        for row in rows:
            d = row.to_dict()
            buf.seek(0)
            buf.truncate()
            writer.writerow([d[c] for c in COLUMNS] + [
                d["on_behalf_of"], json.dumps(d["details"], sort_keys=True)])
            yield buf.getvalue().rstrip("\r\n")
        return
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}")
    materialized = [row.to_dict() for row in rows]
    widths = {c: len(c) for c in COLUMNS}
    for d in materialized:
        for c in COLUMNS:
            widths[c] = min(max(widths[c], len(str(d[c]))), 40)
    yield "  ".join(c.upper().ljust(widths[c]) for c in COLUMNS)
    for d in materialized:
        yield "  ".join(str(d[c])[:widths[c]].ljust(widths[c]) for c in COLUMNS).rstrip()
