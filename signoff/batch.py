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
    out: list[BatchItem] = []
    seen: set[str] = set()
    for rid in request_ids[:MAX_BATCH]:
        if rid in seen:
            continue
        seen.add(rid)
        record = rt.store.get(rid, with_votes=False)
        if choice == "approve" and record is not None and record.get("evaluation"):
            if record.evaluation.requirement.step_up:
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


# --- a chat digest's buttons ------------------------------------------------------------------
DIGEST_PREFIX = "digest:"


def digest_target(slot: str, digest_id: str) -> str:
    """The signed button target of a digest (``clicks.sign`` ``request_id``): the card
    ledger's destination slot and the digest's id."""
    return f"{DIGEST_PREFIX}{slot}|{digest_id}"


def parse_digest_target(value: str) -> tuple[str, str] | None:
    """(slot, digest id) of a digest button's target, or None when it is not one."""
    if not value.startswith(DIGEST_PREFIX) or "|" not in value:
        return None
    slot, _, digest_id = value[len(DIGEST_PREFIX):].rpartition("|")
    return (slot, digest_id) if slot and digest_id else None


def decide_digest(rt: Runtime, target: str, shown: int, person: Person | None, choice: str,
                  *, channel: str, nonce: str = "", actor_label: str = ""
                  ) -> list[BatchItem] | None:
    """"Approve all I may decide" / "Deny all" on a digest card: the first ``shown`` members
    (the ones the clicked rendering listed; a digest only grows, so later ones are never
    decided by an older button), each through ``submit_vote``. A request an approver edited
    is left for its own review; step-up requests are never approved in bulk. None: no such
    digest."""
    found = parse_digest_target(target)
    if found is None:
        return None
    digest = rt.cards.digest(*found)
    if digest is None:
        return None
    ids = digest.ids[:max(shown, 0)]
    edited = [rid for rid in ids
              if rt.redis.hexists(rt.keys.request(rid), "original_payload_sha256")]
    items = submit_many(rt, [rid for rid in ids if rid not in edited], person, choice,
                        channel=channel, nonce=nonce, actor_label=actor_label)
    return items + [BatchItem(rid, False, "edited",
                              "Edited since it was listed: review it on its own.")
                    for rid in edited]


def group_lines(titles: list[tuple[str, str]]) -> list[str]:
    """"14 × db.export from agent:etl-bot" per (action, requester), largest first."""
    counts: dict[tuple[str, str], int] = {}
    for key in titles:
        counts[key] = counts.get(key, 0) + 1
    return [f"{n} × {action} from {requester}"
            for (action, requester), n in sorted(counts.items(), key=lambda kv: -kv[1])]
