"""Deciding one MCP tool call: ask Signoff, wait (with progress), verify the grant.

The gateway's only route to "forward this call" is :meth:`Approvals.decide` returning
:attr:`Verdict.ALLOWED`, which happens when

* the deployment's policy (``policy:`` in the gateway's config, evaluated locally) auto-approves
  the call: no round trip, so a read-only call costs microseconds, and the request is still
  sent to Signoff in the background so the audit log records it; or
* Signoff's decision is ``approved`` and its grant verifies against the exact action,
  resource and arguments of this call and is consumed (single use).

Long waits: a call is held open while people decide, with a progress notification every
``progress_interval`` when the client asked for progress. When the client cannot wait any
longer the call returns :attr:`Verdict.PENDING` with the request id; the pending request is
remembered by the call's fingerprint (action, resource, canonical arguments) so the same call
retried later picks up the decision instead of asking twice. A call whose client goes away
(cancelled, disconnected) while nobody else waits on the same request cancels the request in
Signoff, so nothing runs later.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import anyio

from signoff.grant_check import GrantError
from signoff.mcp.config import WaitConfig
from signoff.models import AgentRequest, Status
from signoff.sdk import ApprovalTimeout, AsyncClient, AsyncHandle, Decision, DecisionMismatch, _body

log = logging.getLogger("signoff.mcp")

Progress = Callable[[float, str], Awaitable[None]]


GONE_CHECK = 0.5  # seconds between checks that the caller's connection is still there


class _ClientGone(Exception):
    """The caller's transport reported that the client disconnected."""


class Verdict(str, Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    PENDING = "pending"


@dataclass(frozen=True)
class ToolCall:
    """One call as Signoff sees it."""

    action: str
    resource: str
    arguments: dict[str, Any]
    context: dict[str, Any]
    reason: str | None = None
    on_behalf_of: str | None = None

    @property
    def fingerprint(self) -> str:
        """Identifies "the same call": everything the request carries (so a retry picks up the
        request, and another client's identical-looking call does not ride on it)."""
        canon = json.dumps([self.action, self.resource, self.arguments, self.context,
                            self.reason, self.on_behalf_of], sort_keys=True,
                           separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(canon.encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    message: str
    request_id: str | None = None
    decision: Decision | None = None
    rule: str | None = None

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


@dataclass
class _Pending:
    """A request in Signoff that one or more calls wait on."""

    handle: AsyncHandle
    decision: asyncio.Task[Decision]
    created: float
    waiters: int = 0
    told_pending: bool = False
    claimed: bool = False


class LocalPolicy:
    """The deployment's policy file, evaluated in the gateway for its automatic rules only.

    Reloaded when the file changes (checked at most once a second). Only ``auto_approve`` is
    acted on locally; anything else goes to Signoff, which stays the authority for every
    decision a person makes and for denials.
    """

    def __init__(self, path: Path) -> None:
        # The policy package only for a gateway with local auto rules (config 'policy:').
        from policy import load_policy

        self.path = path
        self._load = load_policy
        self._policy = load_policy(path, masking_validator=None)
        self._mtime = path.stat().st_mtime_ns
        self._checked = time.monotonic()

    def _fresh(self) -> Any:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            self._checked = now
            try:
                mtime = self.path.stat().st_mtime_ns
                if mtime != self._mtime:
                    self._policy = self._load(self.path, masking_validator=None)
                    self._mtime = mtime
                    log.info("reloaded policy %s", self.path)
            except Exception as exc:  # a broken edit keeps the last good policy
                log.warning("policy %s not reloaded: %s", self.path, exc)
        return self._policy

    def auto_approves(self, body: dict[str, Any]) -> str | None:
        """The id of the auto_approve rule matching this request body, else None."""
        # The policy package only for a gateway with local auto rules (config 'policy:').
        from policy import Outcome as PolicyOutcome

        try:
            request = AgentRequest.model_validate(body)
        except ValueError:
            return None  # Signoff will reject it with the details
        evaluation = self._fresh().evaluate(request, explain_limit=0)
        if evaluation.outcome is PolicyOutcome.AUTO_APPROVE:
            return str(evaluation.rule_id)
        return None


def _refusal(decision: Decision) -> str:
    """What the model is told when a request was not approved."""
    status = decision.status
    if status is Status.TIMED_OUT:
        return f"Signoff request {decision.id} timed out: nobody decided in time. The tool did not run."
    if status is Status.DENIED:
        why = f": {decision.reason}" if decision.reason else ""
        who = ", ".join(str(a.get("name") or a.get("id") or "") for a in decision.approvers
                        if a.get("vote") == "deny" or a.get("decision") == "deny")
        by = f" by {who}" if who else ""
        return f"Denied{by} (Signoff request {decision.id}){why}. The tool did not run."
    if status is Status.CANCELLED:
        return f"Signoff request {decision.id} was cancelled. The tool did not run."
    detail = decision.reason or ""
    if decision.error:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in decision.error)
    return (f"Signoff rejected request {decision.id}"
            + (f": {detail}" if detail else "") + ". The tool did not run.")


class Approvals:
    """Asks Signoff for tool calls and keeps the requests a retried call may pick up."""

    def __init__(self, client: AsyncClient, wait: WaitConfig,
                 local_policy: LocalPolicy | None = None) -> None:
        self.client = client
        self.wait = wait
        self.local_policy = local_policy
        self._pending: dict[str, _Pending] = {}
        self._background: set[asyncio.Task[Any]] = set()

    def _body(self, call: ToolCall, request_id: str) -> dict[str, Any]:
        return _body(request_id, call.action, call.resource, call.arguments,
                     self.client.requester, call.on_behalf_of, call.reason, call.context, None)

    async def decide(self, call: ToolCall, progress: Progress | None,
                     client_gone: asyncio.Event | None = None, *,
                     hold: float | None = None) -> Outcome:
        """Decide ``call``; ``progress`` is given when the client takes progress notifications;
        ``client_gone`` is set by the transport when the caller's connection dropped."""
        if self.local_policy is not None and call.fingerprint not in self._pending:
            request_id = f"mcp-{uuid.uuid4().hex}"
            rule = self.local_policy.auto_approves(self._body(call, request_id))
            if rule is not None:
                self._record_in_background(call, request_id)
                return Outcome(Verdict.ALLOWED, f"auto-approved by rule {rule}", request_id,
                               rule=rule)
        entry = await self._entry(call)
        entry.waiters += 1
        try:
            outcome = await self._await(call, entry, progress, client_gone, hold)
        except _ClientGone:
            await self._left(call, entry)
            return Outcome(Verdict.REFUSED, "The MCP client disconnected; the request was "
                           "withdrawn.", entry.handle.id)
        except asyncio.CancelledError:
            await self._left(call, entry)
            raise
        entry.waiters -= 1
        return outcome

    async def _left(self, call: ToolCall, entry: _Pending) -> None:
        """A waiting caller went away: withdraw the request unless someone else waits on it."""
        entry.waiters -= 1
        if entry.waiters == 0 and not entry.claimed:
            await self._drop(call.fingerprint, entry, "the MCP client went away while waiting")

    def _record_in_background(self, call: ToolCall, request_id: str) -> None:
        """Send an auto-approved call to Signoff without waiting: it lands in the audit log."""

        async def send() -> None:
            try:
                await self.client.request(call.action, call.resource, call.arguments,
                                          on_behalf_of=call.on_behalf_of, reason=call.reason,
                                          context=call.context, id=request_id)
            except Exception as exc:
                log.warning("could not record auto-approved call %s: %s", request_id, exc)

        task = asyncio.create_task(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _sweep(self) -> None:
        """Forget requests no call waits on that are older than ``pending_ttl`` (withdrawn in
        Signoff if still open), so calls never retried do not accumulate."""
        now = time.monotonic()
        for key, entry in list(self._pending.items()):
            if entry.waiters == 0 and now - entry.created > self.wait.pending_ttl:
                await self._drop(key, entry, "no call picked it up within pending_ttl")

    async def _entry(self, call: ToolCall) -> _Pending:
        await self._sweep()
        key = call.fingerprint
        entry = self._pending.get(key)
        if entry is not None and (entry.claimed or time.monotonic() - entry.created
                                  > self.wait.pending_ttl):
            self._pending.pop(key, None)
            if not entry.claimed:
                await self._cancel(entry, "superseded: remembered longer than pending_ttl")
            entry = None
        if entry is None:
            handle = await self.client.request(
                call.action, call.resource, call.arguments, on_behalf_of=call.on_behalf_of,
                reason=call.reason, context=call.context, id=f"mcp-{uuid.uuid4().hex}")
            task = asyncio.create_task(handle.wait(self.wait.decision_timeout))
            entry = _Pending(handle, task, time.monotonic())
            self._pending[key] = entry
        return entry

    async def _await(self, call: ToolCall, entry: _Pending, progress: Progress | None,
                     client_gone: asyncio.Event | None = None,
                     hold: float | None = None) -> Outcome:
        rid = entry.handle.id
        if hold is None:
            hold = self.wait.hold_with_progress if progress is not None else self.wait.hold
        started = time.monotonic()
        while not entry.decision.done():
            if client_gone is not None and client_gone.is_set():
                raise _ClientGone
            left = hold - (time.monotonic() - started)
            if left <= 0:
                entry.told_pending = True
                return Outcome(
                    Verdict.PENDING,
                    f"Approval pending: Signoff request {rid} is waiting for a person to decide. "
                    "The tool has NOT run. Call this tool again later with exactly the same "
                    "arguments to pick up the decision (it will not ask twice).", rid)
            step = min(self.wait.progress_interval, left) if progress is not None else left
            if client_gone is not None:
                step = min(step, GONE_CHECK)
            await asyncio.wait({entry.decision}, timeout=step)
            if progress is not None and not entry.decision.done():
                waited = time.monotonic() - started
                await progress(waited, f"waiting for approval in Signoff (request {rid}, "
                                       f"{int(waited)}s)")
        if entry.claimed:
            return Outcome(Verdict.REFUSED, f"Signoff request {rid} was already used by an "
                           "identical call made at the same time; this one did not run.", rid)
        entry.claimed = True
        self._pending.pop(call.fingerprint, None)
        try:
            decision = entry.decision.result()
        except ApprovalTimeout:
            await self._cancel(entry, "no decision within the gateway's decision_timeout")
            return Outcome(Verdict.REFUSED, f"Signoff request {rid} got no decision within "
                           f"{int(self.wait.decision_timeout)}s. The tool did not run.", rid)
        except DecisionMismatch as exc:
            # A reply that is not for this request (another id, payload or grant): ignored,
            # and the request is withdrawn rather than left waiting for a reply nobody reads.
            await self._cancel(entry, "a reply that did not match the request was received")
            return Outcome(Verdict.REFUSED, f"Signoff request {rid}: the decision received "
                           f"does not match this call ({exc}). The tool did not run.", rid)
        except Exception as exc:
            await self._cancel(entry, "the gateway could not read the decision")
            return Outcome(Verdict.REFUSED, f"Signoff request {rid} failed: {exc}. "
                           "The tool did not run.", rid)
        if not decision.approved:
            return Outcome(Verdict.REFUSED, _refusal(decision), rid, decision)
        try:
            # Binds everything the request carried: id, requester, action, resource,
            # arguments and context; consumes the grant (single use).
            await entry.handle.verify_grant(decision)
        except (GrantError, ValueError) as exc:
            code = getattr(exc, "code", "invalid")
            return Outcome(Verdict.REFUSED, f"Signoff request {rid} was approved but its grant "
                           f"does not match this call ({code}: {exc}). The tool did not run.",
                           rid, decision)
        return Outcome(Verdict.ALLOWED, f"approved (Signoff request {rid})", rid, decision)

    async def _drop(self, key: str, entry: _Pending, reason: str) -> None:
        if self._pending.get(key) is entry:
            self._pending.pop(key, None)
        await self._cancel(entry, reason)

    async def _cancel(self, entry: _Pending, reason: str) -> None:
        """Cancel the request in Signoff. Shielded: this runs while the calling task is being
        cancelled (anyio re-raises cancellation at every await inside a cancelled scope)."""
        entry.decision.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(5):
            try:
                await entry.handle.cancel(reason)
            except Exception as exc:
                log.warning("could not cancel request %s: %s", entry.handle.id, exc)

    async def aclose(self) -> None:
        """Cancel every request still waited on (the gateway is stopping)."""
        for key, entry in list(self._pending.items()):
            await self._drop(key, entry, "the Signoff MCP gateway stopped")
        for task in list(self._background):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 2)
