"""The agent SDK: ask for approval over Redis, wait for the decision, run only if approved.

It speaks only the wire contract (``schemas/request.v1.json``): ``XADD {prefix}:requests *
body <json>``, then ``BLPOP {prefix}:reply:{id}``. Any language with a Redis client can do
the same.

Example:
    >>> client = Client("redis://localhost:6379/0", requester="agent:export-bot")
    >>> handle = client.request("db.export", "warehouse.customers", params={"rows": 5000},
    ...                         on_behalf_of="frank@example.com", reason="quarterly report",
    ...                         context={"environment": "prod"})
    >>> decision = handle.wait(timeout=600)
    >>> decision.approved
"""

from __future__ import annotations

import functools
import inspect
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from signoff.keys import DEFAULT_PREFIX, Keys
from signoff.models import Decision as _DecisionModel
from signoff.models import Status
from signoff.redis_conn import client_for_url, connect_async

F = TypeVar("F", bound=Callable[..., Any])


class ApprovalError(Exception):
    """Base class: the action must not run."""

    def __init__(self, message: str, decision: Decision | None = None) -> None:
        super().__init__(message)
        self.decision = decision


class ApprovalDenied(ApprovalError):
    """A human denied it, it was cancelled, or the request was rejected as invalid."""


class ApprovalTimeout(ApprovalError):
    """No decision arrived in time (or Signoff timed the request out)."""


@dataclass(frozen=True)
class Decision:
    """The decision an agent receives."""

    id: str
    status: Status
    approvers: list[dict[str, Any]]
    reason: str | None
    grant: str | None
    error: list[dict[str, str]] | None
    raw: dict[str, Any]

    @property
    def approved(self) -> bool:
        return self.status is Status.APPROVED

    @classmethod
    def from_json(cls, text: str | bytes) -> Decision:
        model = _DecisionModel.model_validate_json(text)
        data = json.loads(text)
        return cls(id=model.id, status=model.status, approvers=model.approvers,
                   reason=model.reason, grant=model.grant,
                   error=[e.model_dump() for e in model.error] if model.error else None, raw=data)

    def raise_for_status(self) -> Decision:
        """Return self when approved; raise the matching :class:`ApprovalError` otherwise."""
        if self.approved:
            return self
        if self.status is Status.TIMED_OUT:
            raise ApprovalTimeout(f"request {self.id} timed out without a decision", self)
        detail = self.reason or ""
        if self.error:
            detail = "; ".join(f"{e['field']}: {e['message']}" for e in self.error)
        raise ApprovalDenied(f"request {self.id} was {self.status.value}: {detail}".rstrip(": "),
                             self)


def _body(request_id: str | None, action: str, resource: str, params: Any, requester: str,
          on_behalf_of: str | None, reason: str | None, context: dict[str, Any] | None,
          reply_to: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": request_id or f"req-{uuid.uuid4().hex}",
        "action": action, "resource": resource, "params": params if params is not None else {},
        "requester": requester, "context": context or {},
    }
    if on_behalf_of:
        body["on_behalf_of"] = on_behalf_of
    if reason:
        body["reason"] = reason
    if reply_to:
        body["reply_to"] = reply_to
    return body


def _slice(left: float) -> float:
    """One BLPOP wait: short enough to stay under common client socket timeouts."""
    return min(max(left, 0.01), 2.0)


class _BaseHandle:
    """What sync and asyncio handles share: the request body, its reply key, the cancel
    message and the wait budget (the blocking calls themselves differ)."""

    def __init__(self, keys: Keys, body: dict[str, Any]) -> None:
        self.keys = keys
        self.body = body
        self.id: str = body["id"]
        self._decision: Decision | None = None

    @property
    def reply_key(self) -> str:
        return self.body.get("reply_to") or self.keys.reply(self.id)

    def _cancel_fields(self, reason: str) -> dict[str, str]:
        return {"cancel": json.dumps({"id": self.id, "requester": self.body["requester"],
                                      "reason": reason})}

    def _left(self, deadline: float, timeout: float) -> float:
        """Seconds left to wait, or raise :class:`ApprovalTimeout`."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApprovalTimeout(f"no decision for {self.id} within {timeout}s")
        return _slice(left)

    def _got(self, raw: bytes | str) -> Decision:
        self._decision = Decision.from_json(raw)
        return self._decision


class Handle(_BaseHandle):
    """A sent request; :meth:`wait` blocks for its decision."""

    def __init__(self, client: Client, body: dict[str, Any]) -> None:
        super().__init__(client.keys, body)
        self.client = client

    def wait(self, timeout: float = 300) -> Decision:
        """Block until the decision arrives; raise :class:`ApprovalTimeout` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._decision is None:
            try:
                got = self.client.redis.blpop([self.reply_key],
                                              timeout=self._left(deadline, timeout))
            except redis.TimeoutError:
                continue  # the client's socket timeout fired first; keep waiting
            if got:
                return self._got(got[1])
        return self._decision

    def cancel(self, reason: str = "") -> None:
        """Ask Signoff to cancel this request (the decision then says ``cancelled``)."""
        self.client.redis.xadd(self.keys.requests, self._cancel_fields(reason))


class Client:
    """Synchronous agent client.

    Args:
        url: Redis URL (or pass ``connection``).
        requester: this agent's identity, as the policy directory names it.
        prefix: the deployment's key prefix.
    """

    def __init__(self, url: str | None = None, *, requester: str,
                 connection: redis.Redis | None = None, prefix: str = DEFAULT_PREFIX) -> None:
        if connection is None:
            if url is None:
                raise ValueError("give a Redis url or a connection")
            connection = client_for_url(url)  # redis:// or redis+sentinel://
        self.redis = connection
        self.requester = requester
        self.keys = Keys(prefix)

    def request(self, action: str, resource: str, params: Any = None, *,
                on_behalf_of: str | None = None, reason: str | None = None,
                context: dict[str, Any] | None = None, id: str | None = None,
                reply_to: str | None = None) -> Handle:
        """Send a request and return its handle (the id is generated unless given)."""
        body = _body(id, action, resource, params, self.requester, on_behalf_of, reason,
                     context, reply_to)
        self.redis.xadd(self.keys.requests, {"body": json.dumps(body)})
        return Handle(self, body)

    def verify_grant(self, decision: Decision, action: str, resource: str, params: Any) -> None:
        """Verify and consume the decision's grant against what is about to run."""
        from signoff.grant_check import check_grant

        check_grant(self.redis, self.keys, decision, action=action, resource=resource,
                    params=params)


class AsyncHandle(_BaseHandle):
    """A sent request (asyncio)."""

    def __init__(self, client: AsyncClient, body: dict[str, Any]) -> None:
        super().__init__(client.keys, body)
        self.client = client

    async def wait(self, timeout: float = 300) -> Decision:
        """Wait for the decision; raise :class:`ApprovalTimeout` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while self._decision is None:
            try:
                got = await self.client.redis.blpop([self.reply_key],
                                                    timeout=self._left(deadline, timeout))
            except redis.TimeoutError:
                continue
            if got:
                return self._got(got[1])
        return self._decision

    async def cancel(self, reason: str = "") -> None:
        """Ask Signoff to cancel this request."""
        await self.client.redis.xadd(self.keys.requests, self._cancel_fields(reason))


class AsyncClient:
    """asyncio agent client (redis.asyncio)."""

    def __init__(self, url: str | None = None, *, requester: str,
                 connection: aioredis.Redis | None = None, prefix: str = DEFAULT_PREFIX) -> None:
        if connection is None:
            if url is None:
                raise ValueError("give a Redis url or a connection")
            connection = connect_async(url, decode=False)  # redis:// or redis+sentinel://
        self.redis = connection
        self.requester = requester
        self.keys = Keys(prefix)

    async def request(self, action: str, resource: str, params: Any = None, *,
                      on_behalf_of: str | None = None, reason: str | None = None,
                      context: dict[str, Any] | None = None, id: str | None = None,
                      reply_to: str | None = None) -> AsyncHandle:
        body = _body(id, action, resource, params, self.requester, on_behalf_of, reason,
                     context, reply_to)
        await self.redis.xadd(self.keys.requests, {"body": json.dumps(body)})
        return AsyncHandle(self, body)

    async def aclose(self) -> None:
        await self.redis.aclose()


def requires_approval(action: str, *, client: Client | AsyncClient,
                      resource: str | Callable[..., str] | None = None,
                      on_behalf_of: str | Callable[..., str | None] | None = None,
                      reason: str | Callable[..., str | None] | None = None,
                      context: dict[str, Any] | None = None, timeout: float = 600,
                      verify_grant: bool = True) -> Callable[[F], F]:
    """Run the decorated function only after approval of exactly these arguments.

    The function's bound arguments are the request's ``params``; ``resource``,
    ``on_behalf_of`` and ``reason`` may be callables taking the same arguments. With
    ``verify_grant`` the decision's grant is verified against the exact payload and consumed
    before the call, so a payload changed after approval cannot run.

    Raises:
        ApprovalDenied: denied, cancelled or rejected.
        ApprovalTimeout: no decision in time.
    """

    def _resolve(value: Any, bound: dict[str, Any], default: Any = None) -> Any:
        if callable(value):
            return value(**bound)
        return default if value is None else value

    def deco(fn: F) -> F:
        sig = inspect.signature(fn)

        def _prepare(args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> tuple[dict[str, Any], str, Any, Any]:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            params = json.loads(json.dumps(dict(bound.arguments), default=str))
            res = _resolve(resource, bound.arguments, fn.__qualname__)
            return params, res, _resolve(on_behalf_of, bound.arguments), _resolve(
                reason, bound.arguments)

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                assert isinstance(client, AsyncClient)
                params, res, obo, why = _prepare(args, kwargs)
                handle = await client.request(action, res, params, on_behalf_of=obo,
                                              reason=why, context=context)
                decision = (await handle.wait(timeout)).raise_for_status()
                if verify_grant:
                    from signoff.grant_check import acheck_grant

                    await acheck_grant(client.redis, client.keys, decision, action=action,
                                       resource=res, params=params)
                return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            assert isinstance(client, Client)
            params, res, obo, why = _prepare(args, kwargs)
            handle = client.request(action, res, params, on_behalf_of=obo, reason=why,
                                    context=context)
            decision = handle.wait(timeout).raise_for_status()
            if verify_grant:
                client.verify_grant(decision, action, res, params)
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
