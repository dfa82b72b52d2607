"""What every adapter does with one tool call: ask Signoff, wait, verify the grant.

One logic for all frameworks: a typed :class:`Verdict` the adapter maps onto its framework's
approve / reject (with the reason the model is shown).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from signoff.grant_check import GrantError
from signoff.sdk import ApprovalTimeout, AsyncHandle, Decision, DecisionMismatch, check_decision

_UNSAFE = re.compile(r"[^A-Za-z0-9._:/-]")


def action_name(prefix: str, tool: str) -> str:
    """``<prefix>.<tool>``, with characters the request schema refuses replaced by ``-``."""
    return f"{prefix}.{_UNSAFE.sub('-', tool)}"[:200]


@dataclass(frozen=True)
class Verdict:
    approved: bool
    message: str
    request_id: str
    decision: Decision | None = None

    @property
    def edited_params(self) -> dict[str, Any] | None:
        """The arguments an approver edited before approving (None: approved as asked)."""
        return self.decision.params if self.approved and self.decision is not None else None


def refusal_text(decision: Decision) -> str:
    """The text a model is given when its tool call was not approved."""
    status = decision.status.value.replace("_", " ")
    why = decision.reason
    if decision.error:
        why = "; ".join(f"{e['field']}: {e['message']}" for e in decision.error)
    return (f"Signoff request {decision.id} was {status}" + (f": {why}" if why else "")
            + ". The tool did not run.")


HISTORY_PAGE = 500
HISTORY_LIMIT = 20_000


async def delivered_before(handle: AsyncHandle) -> Decision | None:
    """The decision Signoff already delivered for ``handle``'s request, from the agent's own
    decisions stream (newest first, at most ``HISTORY_LIMIT`` entries), or None.

    For a process that restarts: the reply list is popped once, so a process that died after
    popping its decision and before acting on it would otherwise wait for a reply that never
    comes again. The decision found is checked exactly like a popped one (request id, payload
    hash, grant binding) before anything uses it.
    """
    r = handle.client.redis
    stream = handle.keys.decisions
    last = "+"
    seen = 0
    while seen < HISTORY_LIMIT:
        entries = await r.xrevrange(stream, max=last, min="-", count=HISTORY_PAGE)
        if not entries:
            return None
        for _entry_id, fields in entries:
            got = {(k.decode() if isinstance(k, bytes) else k): v for k, v in fields.items()}
            rid = got.get("id")
            rid = rid.decode() if isinstance(rid, bytes) else rid
            if rid == handle.id and got.get("body"):
                decision = Decision.from_json(got["body"])
                check_decision(decision, handle.id, handle.payload_sha256, handle.body)
                return decision
        seen += len(entries)
        oldest = entries[-1][0]
        oldest = oldest.decode() if isinstance(oldest, bytes) else oldest
        last = f"({oldest}"
    return None


async def verdict_for(handle: AsyncHandle, timeout: float, *, resumed: bool = False,
                      accept_edits: bool = True) -> Verdict:
    """Wait for ``handle``'s decision and, when approved, verify and consume its grant (bound
    to the edited arguments when an approver edited them).

    ``resumed``: the request may have been decided (and its reply popped) by an earlier
    process; look in the agent's decisions stream before waiting. ``accept_edits=False``: the
    framework cannot run a call with other arguments, so an edited approval is declined (its
    grant left unused) and the model is told the arguments the approver would allow.
    """
    try:
        decision = None
        if resumed:
            try:
                decision = await handle.wait(0.5)  # still in the reply list
            except ApprovalTimeout:
                decision = await delivered_before(handle)
        if decision is None:
            decision = await handle.wait(timeout)
    except ApprovalTimeout:
        await handle.cancel("no decision within the agent's timeout")
        return Verdict(False, f"Signoff request {handle.id} got no decision in time. "
                       "The tool did not run.", handle.id)
    except DecisionMismatch as exc:
        await handle.cancel("a reply that did not match the request was received")
        return Verdict(False, f"Signoff request {handle.id}: {exc}. The tool did not run.",
                       handle.id)
    if not decision.approved:
        return Verdict(False, refusal_text(decision), handle.id, decision)
    if decision.params is not None and not accept_edits:
        return Verdict(False, f"Signoff request {handle.id} was approved only with edited "
                       f"arguments {json.dumps(decision.params, sort_keys=True)}; the tool did "
                       "not run. Call it again with those arguments if they suit the task.",
                       handle.id)
    try:
        # Binds everything the request carried (id, requester, action, resource, params,
        # context) and consumes the grant.
        await handle.verify_grant(decision)
    except (GrantError, ValueError) as exc:
        return Verdict(False, f"Signoff request {handle.id}: the grant does not match this "
                       f"call ({getattr(exc, 'code', 'invalid')}). The tool did not run.",
                       handle.id, decision)
    return Verdict(True, f"approved (Signoff request {handle.id})", handle.id, decision)


def json_params(value: Any) -> Any:
    """Arguments as the JSON they are sent as (what the grant's payload hash covers)."""
    return json.loads(json.dumps(value, default=str))
