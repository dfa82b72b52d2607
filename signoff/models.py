"""The data Signoff moves around: the agent's request, votes, and the decision reply.

These are the wire shapes of the agent contract (``schemas/request.v1.json`` is generated
from :class:`AgentRequest`; ``tests/test_schema.py`` keeps the two identical) plus the
channel-neutral records the store keeps.
"""

from __future__ import annotations

import hashlib
import json
import time
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
# Signoff's internal request id: a registered agent's id scoped by its name
# (``export-bot~req-1``, signoff.keys.scoped_id), or a trusted-stream id as sent.
RECORD_ID_PATTERN = r"^(?:[a-z0-9][a-z0-9_-]{0,62}~)?[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
MAX_DEPTH = 32


class Status(str, Enum):
    """Request states. ``received`` and ``pending`` are open; the rest are final."""

    RECEIVED = "received"
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        """Whether no transition leaves this state."""
        return self not in (Status.RECEIVED, Status.PENDING)


FINAL_STATUSES = frozenset(s for s in Status if s.final)


def _depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of a JSON value, iteratively (a hostile payload must not blow the stack)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)
    return deepest


class AgentRequest(BaseModel):
    """One approval request as an agent sends it (``signoff:requests`` field ``body``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="Signoff approval request v1")

    id: str = Field(
        pattern=ID_PATTERN,
        description="Client-chosen id; the idempotency key. The same id sent twice is one request.",
    )
    action: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$",
        description="What the agent wants to do, dotted: db.export, iam.grant, infra.apply.",
    )
    resource: str = Field(
        min_length=1, max_length=500, description="What it acts on: a table, role, stack, URL."
    )
    params: Any = Field(
        default_factory=dict, description="The exact payload of the action (any JSON)."
    )
    requester: str = Field(
        min_length=1, max_length=200, description="The agent identity making the request."
    )
    on_behalf_of: str | None = Field(
        default=None, max_length=320, description="The human the agent acts for (email)."
    )
    reason: str | None = Field(default=None, max_length=4000, description="Why, in words.")
    context: dict[str, Any] = Field(
        default_factory=dict,
        description="Environment, ticket, model, conversation link, ... (environment is matched by policy).",
    )
    reply_to: str | None = Field(
        default=None,
        max_length=300,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:{}@-]*$",
        description="Redis list to LPUSH the decision to instead of signoff:reply:{id}.",
    )

    @field_validator("params", "context")
    @classmethod
    def _not_too_deep(cls, value: Any) -> Any:
        if _depth(value) > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        return value

    @property
    def environment(self) -> str | None:
        """``context.environment`` when it is a string."""
        env = self.context.get("environment")
        return env if isinstance(env, str) else None

    def payload_sha256(self) -> str:
        """SHA-256 of the canonical payload; what grants, cards and audit carry."""
        return payload_sha256(self.action, self.resource, self.params)


def canonical_json(value: Any) -> bytes:
    """Canonical JSON bytes (sorted keys, no spaces, UTF-8) used for every hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def payload_sha256(action: str, resource: str, params: Any) -> str:
    """Hash of exactly what will run: action, resource and params, canonically encoded."""
    doc = {"action": action, "resource": resource, "params": params}
    return hashlib.sha256(canonical_json(doc)).hexdigest()


class FieldError(BaseModel):
    """One thing wrong with a request, for the ``rejected`` reply."""

    field: str
    message: str


class Vote(BaseModel):
    """One human's vote as stored (distinct per person)."""

    person: str
    choice: str  # "approve" | "deny"
    at: float = Field(default_factory=time.time)
    comment: str | None = None
    channel: str = "api"
    groups: list[str] = Field(default_factory=list)
    step_up: str | None = None  # "passkey": proven with a fresh WebAuthn assertion
    by: str | None = None  # the delegate who cast it for ``person`` (signoff.delegation)
    psh: str | None = None  # the payload hash the voter saw (an edit makes older votes stale)
    standing: int | None = None  # approve for this many seconds more (signoff.standing)


class Decision(BaseModel):
    """The reply an agent receives on ``signoff:reply:{id}`` and ``signoff:decisions``."""

    model_config = ConfigDict(extra="ignore")

    id: str
    status: Status
    action: str | None = None
    resource: str | None = None
    approvers: list[dict[str, Any]] = Field(default_factory=list)
    reason: str | None = None
    grant: str | None = None
    error: list[FieldError] | None = None
    code: str | None = None  # why it was rejected: invalid | rate_limited | pending_cap
    payload_sha256: str | None = None
    decided_at: float = Field(default_factory=time.time)
    policy: str | None = None
    # An approver changed editable params before approving: the params to run with (the
    # grant binds them: ``payload_sha256``), the hash of the request as the agent sent it,
    # and who changed what (signoff.edits).
    params: dict[str, Any] | None = None
    original_payload_sha256: str | None = None
    edits: list[dict[str, Any]] | None = None
    standing: str | None = None  # approved under this standing approval (signoff.standing)

    def to_json(self) -> str:
        """Compact JSON for the wire."""
        return self.model_dump_json(exclude_none=True)


SCHEMA_ID = "https://signoff.dev/schemas/request.v1.json"


def request_json_schema() -> dict[str, Any]:
    """JSON Schema of :class:`AgentRequest` as published in ``schemas/request.v1.json``.

    Regenerate the file with ``python -m signoff.models``; ``tests/core/test_schema.py`` fails
    when the two differ.
    """
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID,
            **AgentRequest.model_json_schema()}


SCHEMA_V2_ID = "https://signoff.dev/schemas/request.v2.json"


def request_v2_json_schema() -> dict[str, Any]:
    """JSON Schema of request v2, what a registered agent XADDs to its own stream
    (``schemas/request.v2.json``): request v1 without ``reply_to`` (the decision goes to the
    agent's own reply list) and with ``requester`` optional (Signoff takes it from the
    agent's credentials; a body may only repeat it). Derived from :class:`AgentRequest`, so
    the two versions never drift apart."""
    schema = AgentRequest.model_json_schema()
    props = dict(schema["properties"])
    props.pop("reply_to", None)
    props["requester"] = {
        **props["requester"],
        "description": "Optional: the agent the credentials belong to (agent:NAME). Signoff "
                       "takes it from the stream the request was read from; any other value "
                       "is rejected.",
    }
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_V2_ID,
            **schema, "title": "Signoff approval request v2",
            "description": "One approval request as a registered agent sends it "
                           "({prefix}:agent:{name}:requests, field body).",
            "properties": props,
            "required": [r for r in schema.get("required", []) if r != "requester"]}


if __name__ == "__main__":  # pragma: no cover
    # python -m signoff.models [schemas/]: writes request.v1.json and request.v2.json
    import sys
    from pathlib import Path

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "schemas")
    for name, schema in (("request.v1.json", request_json_schema()),
                         ("request.v2.json", request_v2_json_schema())):
        (folder / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
