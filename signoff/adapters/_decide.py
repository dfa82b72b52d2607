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
from signoff.sdk import ApprovalTimeout, AsyncHandle, Decision, DecisionMismatch

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


def refusal_text(decision: Decision) -> str:
    """The text a model is given when its tool call was not approved."""
    status = decision.status.value.replace("_", " ")
    why = decision.reason
    if decision.error:
        why = "; ".join(f"{e['field']}: {e['message']}" for e in decision.error)
    return (f"Signoff request {decision.id} was {status}" + (f": {why}" if why else "")
            + ". The tool did not run.")


async def verdict_for(handle: AsyncHandle, timeout: float) -> Verdict:
    """Wait for ``handle``'s decision and, when approved, verify and consume its grant."""
    try:
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
