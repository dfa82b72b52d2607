"""The agent SDK: ask for approval over Redis, wait for the decision, run only if approved.

It speaks only the wire contract (``schemas/request.v2.json``): with the Redis URL
``signoff agent add NAME`` printed (its user is the agent's own ACL user),
``XADD {prefix}:agent:{name}:requests * body <json>``, then
``BLPOP {prefix}:agent:{name}:reply:{id}``. Any language with a Redis client can do the same.
The requester is the agent the credentials belong to; Signoff derives it, never reads it.

The trusted single-agent mode (embedded Redis, the demo) keeps request v1: the shared
``{prefix}:requests`` stream with ``requester=`` in the body.

Example:
    >>> client = Client("redis://signoff-agent-export-bot:…@localhost:6379/0")
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

from policy.identity import canonical_agent
from signoff.agents import canonical_name, url_user
from signoff.grant_check import acheck_grant, check_grant, unverified_claims
from signoff.keys import DEFAULT_PREFIX, AgentKeys, Keys, agent_requester
from signoff.models import Decision as _DecisionModel
from signoff.models import Status, payload_sha256
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


class DecisionMismatch(ApprovalError):
    """The decision popped from the reply list is not for the request that was sent (another
    id, another payload, or a grant bound to something else): it is never treated as an
    answer, whatever its status."""


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

    @property
    def payload_sha256(self) -> str | None:
        """The payload hash the decision names (None when it names none)."""
        value = self.raw.get("payload_sha256")
        return value if isinstance(value, str) else None

    @property
    def edited(self) -> bool:
        """An approver changed editable params before approving (run with :attr:`params`)."""
        return isinstance(self.raw.get("original_payload_sha256"), str) and isinstance(
            self.raw.get("params"), dict)

    @property
    def params(self) -> dict[str, Any] | None:
        """The params to run with when the approver edited them (None: as sent)."""
        value = self.raw.get("params")
        return value if self.edited and isinstance(value, dict) else None

    @property
    def original_payload_sha256(self) -> str | None:
        """The hash of the payload as sent, when an approver edited it."""
        value = self.raw.get("original_payload_sha256")
        return value if isinstance(value, str) else None

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

    def __init__(self, keys: Keys | AgentKeys, body: dict[str, Any]) -> None:
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

    @property
    def payload_sha256(self) -> str:
        """SHA-256 of the payload this handle sent (what its grant must bind)."""
        return payload_sha256(self.body["action"], self.body["resource"],
                              self.body.get("params", {}))

    def _got(self, raw: bytes | str) -> Decision:
        decision = Decision.from_json(raw)
        check_decision(decision, self.id, self.payload_sha256, self.body)
        self._decision = decision
        return decision

    def _grant_binding(self, decision: Decision | None = None) -> dict[str, Any]:
        """Everything this handle sent, as the grant check binds it (with the params an
        approver edited, when the decision carries them)."""
        payload = {k: self.body.get(k) for k in
                   ("id", "action", "resource", "params", "requester", "context")
                   if k in self.body}
        if decision is not None and decision.params is not None:
            payload["params"] = decision.params
        return {"payload": payload}


def check_decision(decision: Decision, request_id: str, sent_payload_sha256: str,
                   body: dict[str, Any] | None = None) -> None:
    """Refuse a decision that is not for the request sent (before anyone reads its status).

    The decision must name the same request id; when it names a payload hash, it must be the
    hash of the payload sent, and an approval must name one. An approval's grant must be
    bound to the same id and payload (its signature and the rest of its binding are checked
    by the grant check before the action runs).

    Raises:
        DecisionMismatch: with what differs.
    """
    if decision.id != request_id:
        raise DecisionMismatch(f"the reply is for request {decision.id!r}, not {request_id!r}; "
                               "it was ignored", decision)
    if decision.edited and decision.approved:
        # Approved with edited params: the decision names the payload as sent (original) and
        # the edited one, which must be exactly the sent action and resource with its params.
        if decision.original_payload_sha256 != sent_payload_sha256 or body is None:
            raise DecisionMismatch(f"the edited approval of {request_id} is not for the "
                                   "payload sent; it was ignored", decision)
        sent_payload_sha256 = payload_sha256(body["action"], body["resource"], decision.params)
        if decision.payload_sha256 != sent_payload_sha256:
            raise DecisionMismatch(f"the edited approval of {request_id} names another "
                                   "payload than its edited params; it was ignored", decision)
    named = decision.payload_sha256
    if named is not None and named != sent_payload_sha256:
        raise DecisionMismatch(f"the reply for {request_id} names another payload than the "
                               "one sent; it was ignored", decision)
    if not decision.approved:
        return
    if named is None:
        raise DecisionMismatch(f"the approval of {request_id} names no payload hash; it "
                               "was ignored", decision)
    if decision.grant:
        claims = unverified_claims(decision.grant)
        if claims.get("rid") != request_id or claims.get("psh") != sent_payload_sha256:
            raise DecisionMismatch(f"the grant in the approval of {request_id} is for "
                                   "another request or payload; it was ignored", decision)


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

    def verify_grant(self, decision: Decision | None = None, *, consume: bool = True
                     ) -> dict[str, Any]:
        """Verify (and consume) the decision's grant against everything this handle sent:
        request id, requester, action, resource, payload and context.

        Raises:
            GrantError: why the grant was refused.
        """
        decision = decision if decision is not None else self._decision
        return check_grant(self.client.redis, self.keys, decision,  # type: ignore[arg-type]
                           action=self.body["action"], consume=consume,
                           **self._grant_binding(decision))


def agent_identity(url: str | None, agent: str | None, requester: str | None,
                   prefix: str) -> tuple[Keys | AgentKeys, str]:
    """(the keys a client uses, its requester) from its credentials.

    A registered agent's Redis URL names its ACL user (``{prefix}-agent-{name}``): the agent
    is that one (``agent=`` may confirm it; Redis refuses any key outside its namespace
    anyway). Without a registered agent, ``requester=`` selects the trusted single-agent mode
    (the shared stream; only a deployment that enables it reads it).

    Raises:
        ValueError: the credentials and the names given disagree, or nothing names an agent.
    """
    keys = Keys(prefix)
    user = url_user(url) if url else None
    from_url = keys.agent_of_acl_user(user) if user else None
    name = canonical_name(agent) if agent else from_url
    if from_url and name != from_url:
        raise ValueError(f"the Redis URL is agent {from_url}'s, not {name}'s")
    if name is not None:
        if requester is not None and canonical_agent(requester) != agent_requester(name):
            raise ValueError(f"these credentials are {agent_requester(name)!r}; an agent "
                             f"cannot ask as {requester!r}")
        return keys.agent(name), agent_requester(name)
    if requester is None:
        raise ValueError("give the Redis URL 'signoff agent add' printed (or agent=NAME), or "
                         "requester= for the trusted single-agent mode")
    return keys, requester


def _no_reply_to(keys: Keys | AgentKeys, reply_to: str | None) -> None:
    if reply_to and isinstance(keys, AgentKeys):
        raise ValueError("a registered agent's decisions go to its own reply list; reply_to "
                         "is only for the trusted single-agent mode")


class Client:
    """Synchronous agent client.

    Args:
        url: the agent's Redis URL from ``signoff agent add`` (or pass ``connection``).
        agent: the agent's name; worked out from the URL's user when not given.
        requester: only for the trusted single-agent mode (no registered agent): the agent
            identity the request body names.
        prefix: the deployment's key prefix.
    """

    def __init__(self, url: str | None = None, *, agent: str | None = None,
                 requester: str | None = None, connection: redis.Redis | None = None,
                 prefix: str = DEFAULT_PREFIX) -> None:
        if connection is None:
            if url is None:
                raise ValueError("give a Redis url or a connection")
            connection = client_for_url(url)  # redis:// or redis+sentinel://
        self.redis = connection
        self.keys, self.requester = agent_identity(url, agent, requester, prefix)

    def request(self, action: str, resource: str, params: Any = None, *,
                on_behalf_of: str | None = None, reason: str | None = None,
                context: dict[str, Any] | None = None, id: str | None = None,
                reply_to: str | None = None) -> Handle:
        """Send a request and return its handle (the id is generated unless given)."""
        _no_reply_to(self.keys, reply_to)
        body = _body(id, action, resource, params, self.requester, on_behalf_of, reason,
                     context, reply_to)
        self.redis.xadd(self.keys.requests, {"body": json.dumps(body)})
        return Handle(self, body)

    def verify_grant(self, decision: Decision, action: str, resource: str, params: Any, *,
                     context: dict[str, Any] | None = None) -> None:
        """Verify and consume the decision's grant against what is about to run: the
        decision's request id, this client's requester, the action, resource and params, and
        (when given) the context the request was sent with. Prefer
        :meth:`Handle.verify_grant`, which binds everything the handle sent."""
        # AgentKeys has the grant check's key names, in the agent's own namespace.
        check_grant(self.redis, self.keys, decision,  # type: ignore[arg-type]
                    action=action, resource=resource,
                    params=params, requester=self.requester, context=context)


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

    async def verify_grant(self, decision: Decision | None = None, *, consume: bool = True
                           ) -> dict[str, Any]:
        """The asyncio twin of :meth:`Handle.verify_grant`."""
        decision = decision if decision is not None else self._decision
        return await acheck_grant(self.client.redis, self.keys, decision,  # type: ignore[arg-type]
                                  action=self.body["action"], consume=consume,
                                  **self._grant_binding(decision))


class AsyncClient:
    """asyncio agent client (redis.asyncio)."""

    def __init__(self, url: str | None = None, *, agent: str | None = None,
                 requester: str | None = None, connection: aioredis.Redis | None = None,
                 prefix: str = DEFAULT_PREFIX) -> None:
        if connection is None:
            if url is None:
                raise ValueError("give a Redis url or a connection")
            connection = connect_async(url, decode=False)  # redis:// or redis+sentinel://
        self.redis = connection
        self.keys, self.requester = agent_identity(url, agent, requester, prefix)

    async def request(self, action: str, resource: str, params: Any = None, *,
                      on_behalf_of: str | None = None, reason: str | None = None,
                      context: dict[str, Any] | None = None, id: str | None = None,
                      reply_to: str | None = None) -> AsyncHandle:
        _no_reply_to(self.keys, reply_to)
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
    ``on_behalf_of`` and ``reason`` may be callables taking the same arguments. ``async def``
    functions and methods are guarded too (with an :class:`AsyncClient`); a method's ``self``
    or ``cls`` is not part of the params. With
    ``verify_grant`` the decision's grant is verified against the exact payload and consumed
    before the call, so a payload changed after approval cannot run. When an approver edited
    params before approving, the function runs with the edited arguments (the grant binds
    them); a function that cannot take them by name is not run (:class:`DecisionMismatch`).

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
        # A method's receiver is not part of what is approved (nor shown on the card).
        first = next(iter(sig.parameters), None)
        receiver = first if first in ("self", "cls") else None
        is_async = inspect.iscoroutinefunction(fn)
        if is_async and not isinstance(client, AsyncClient):
            raise TypeError(f"{fn.__qualname__} is async def: guard it with an AsyncClient")
        if not is_async and not isinstance(client, Client):
            raise TypeError(f"{fn.__qualname__} is not async: guard it with a Client")

        def _prepare(args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> tuple[dict[str, Any], str, Any, Any]:
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = {k: v for k, v in bound.arguments.items() if k != receiver}
            params = json.loads(json.dumps(arguments, default=str))
            res = _resolve(resource, arguments, fn.__qualname__)
            return params, res, _resolve(on_behalf_of, arguments), _resolve(reason, arguments)

        def _edited_call(decision: Decision, args: tuple[Any, ...], kwargs: dict[str, Any]
                         ) -> tuple[tuple[Any, ...], dict[str, Any]]:
            """The call with the params an approver edited (as approved, or refused when the
            function cannot take them: no such parameter, or only through *args/**kwargs)."""
            if decision.params is None:
                return args, kwargs
            bound = sig.bind(*args, **kwargs)
            bound.apply_defaults()
            current = {k: v for k, v in bound.arguments.items() if k != receiver}
            for name, value in decision.params.items():
                param = sig.parameters.get(name)
                if name == receiver or param is None or param.kind in (
                        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
                    raise DecisionMismatch(
                        f"the approval of {decision.id} changed {name!r}, which "
                        f"{fn.__qualname__} cannot take as a named parameter; not run",
                        decision)
                if name not in current or json.loads(json.dumps(current[name], default=str)
                                                     ) != value:
                    bound.arguments[name] = value
            missing = set(current) - set(decision.params)
            if missing:
                raise DecisionMismatch(f"the approval of {decision.id} left out "
                                       f"{', '.join(sorted(missing))}; not run", decision)
            try:
                rebound = sig.bind(*bound.args, **bound.kwargs)
            except TypeError as exc:
                raise DecisionMismatch(f"{fn.__qualname__} cannot take the edited params of "
                                       f"{decision.id}: {exc}; not run", decision) from exc
            return rebound.args, rebound.kwargs

        if is_async:
            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                assert isinstance(client, AsyncClient)
                params, res, obo, why = _prepare(args, kwargs)
                handle = await client.request(action, res, params, on_behalf_of=obo,
                                              reason=why, context=context)
                decision = (await handle.wait(timeout)).raise_for_status()
                call_args, call_kwargs = _edited_call(decision, args, kwargs)
                if verify_grant:
                    await handle.verify_grant(decision)
                return await fn(*call_args, **call_kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            assert isinstance(client, Client)
            params, res, obo, why = _prepare(args, kwargs)
            handle = client.request(action, res, params, on_behalf_of=obo, reason=why,
                                    context=context)
            decision = handle.wait(timeout).raise_for_status()
            call_args, call_kwargs = _edited_call(decision, args, kwargs)
            if verify_grant:
                handle.verify_grant(decision)
            return fn(*call_args, **call_kwargs)

        return wrapper  # type: ignore[return-value]

    return deco
