"""The history of decided requests, filtered and searched (the inbox's History page, the API).

Reads the ``decided`` index (finalize adds each request once its reply is out) newest first
and filters on the masked fields every surface shows (``shown``), never on the payload: a
search cannot find what masking hid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from signoff.models import Status
from signoff.store import Record

if TYPE_CHECKING:
    from signoff.runtime import Runtime

SCAN_LIMIT = 5000  # decided requests looked at per query, newest first


@dataclass(frozen=True)
class HistoryQuery:
    """Filters; empty ones match everything. Text filters compare case-insensitively."""

    status: str = ""
    agent: str = ""
    action: str = ""
    person: str = ""  # voted, or the request acts for them
    since: float = 0.0
    until: float = 0.0
    q: str = ""  # free text: id, action, resource, agent, person, votes, reasons

    def matches(self, record: Record) -> bool:
        if self.status and record.status.value != self.status:
            return False
        decided = record.number("decided_at")
        if self.since and decided < self.since:
            return False
        if self.until and decided > self.until:
            return False
        shown = record.json("shown", {}) or {}
        fold = str.casefold
        if self.agent and fold(self.agent) not in fold(str(shown.get("requester", ""))):
            return False
        if self.action and fold(self.action) not in fold(str(shown.get("action", ""))):
            return False
        people = [v.person for v in record.votes.values()] + [
            v.by for v in record.votes.values() if v.by] + [
            str(a.get("person", "")) for a in record.json("merged_approvers", []) or []]
        if self.person and not any(fold(self.person) in fold(p) for p in
                                   [*people, str(shown.get("on_behalf_of") or "")]):
            return False
        if self.q:
            text = " ".join([record.id, *(str(v) for v in shown.values()), *people,
                             record.get("decision_reason") or "", record.get("rule_id") or "",
                             *(v.comment or "" for v in record.votes.values())])
            if fold(self.q) not in fold(text):
                return False
        return True


def decided(rt: Runtime, query: HistoryQuery, offset: int = 0, limit: int = 50
            ) -> tuple[list[Record], bool]:
    """(records matching ``query``, newest first, and whether there are more)."""
    ids = rt.redis.zrevrangebyscore(rt.keys.decided, query.until or "+inf",
                                    query.since or "-inf", start=0, num=SCAN_LIMIT)
    out: list[Record] = []
    skipped = 0
    for i in range(0, len(ids), 100):
        for rid in ids[i:i + 100]:
            record = rt.store.get(rid)
            if record is None or not record.status.final or not query.matches(record):
                continue
            if skipped < offset:
                skipped += 1
                continue
            if len(out) == limit:
                return out, True
            out.append(record)
    return out, False


STATUSES = [s.value for s in Status if s.final]
