"""Deciding many requests in one action (the inbox's selection, a chat digest's buttons).

Every request still goes through :func:`signoff.lifecycle.submit_vote` on its own (policy,
separation of duties, step-up, quorum); the result says, per request, whether the vote went
through and why not. A request whose rule needs a passkey step-up is never approved in bulk
(each proof is bound to one request); it is reported as needing its own page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from signoff import lifecycle

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

MAX_BATCH = 100


@dataclass(frozen=True)
class BatchItem:
    """What happened to one request of a batch."""

    request_id: str
    ok: bool
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.request_id, "ok": self.ok, "code": self.code,
                "message": self.message}


def submit_many(rt: Runtime, request_ids: list[str], person: Person | None, choice: str, *,
                comment: str | None = None, channel: str = "inbox",
                for_person: str | None = None, nonce: str = "",
                actor_label: str = "") -> list[BatchItem]:
    """Vote ``choice`` on each of ``request_ids`` (at most :data:`MAX_BATCH`, duplicates
    once), each through ``submit_vote``. ``nonce`` (when given) makes a replayed batch
    change nothing: each request's vote carries ``{nonce}:{id}``."""
    from policy import Evaluation

    out: list[BatchItem] = []
    seen: set[str] = set()
    for rid in request_ids[:MAX_BATCH]:
        if rid in seen:
            continue
        seen.add(rid)
        record = rt.store.get(rid, with_votes=False)
        if choice == "approve" and record is not None and record.get("evaluation"):
            if Evaluation.from_dict(record.json("evaluation")).requirement.step_up:
                out.append(BatchItem(rid, False, "step_up_required",
                                     "Needs a passkey check: decide it on its own page."))
                continue
        reply = lifecycle.submit_vote(rt, rid, person, choice, comment, channel=channel,
                                      nonce=f"{nonce}:{rid}" if nonce else "",
                                      actor_label=actor_label, for_person=for_person)
        out.append(BatchItem(rid, reply.ok, reply.code, reply.message))
    for rid in request_ids[MAX_BATCH:]:
        out.append(BatchItem(rid, False, "too_many",
                             f"At most {MAX_BATCH} requests are decided in one action."))
    return out


def summary(items: list[BatchItem]) -> str:
    """"3 decided, 2 not: …"."""
    done = sum(1 for i in items if i.ok)
    text = f"{done} of {len(items)} went through"
    refused = [i for i in items if not i.ok]
    if refused:
        text += "; not: " + "; ".join(f"{i.request_id}: {i.message}" for i in refused[:10])
        if len(refused) > 10:
            text += f" (and {len(refused) - 10} more)"
    return text
