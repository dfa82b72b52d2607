"""Task-augmented tool calls (MCP 2025-11-25 ``tasks``): the protocol's own way to run a
long call, for clients that offer it.

A client that sends ``tools/call`` with ``params.task`` gets a task id at once
(``CreateTaskResult``); the call (waiting for people in Signoff, then the upstream) runs in the
gateway in the background, independent of the client's connection; the client polls
``tasks/get``, fetches the tool's result with ``tasks/result`` (which waits until the task
ends) and may ``tasks/cancel`` it, which withdraws the Signoff request. Tasks live in the
gateway process for their ``ttl`` (bounded by ``wait.pending_ttl``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import mcp_types as types
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS

POLL_INTERVAL_MS = 2000
DEFAULT_TTL_MS = 3_600_000

Work = Callable[["TaskRecord"], Awaitable[types.CallToolResult]]


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


@dataclass
class TaskRecord:
    task_id: str
    ttl_ms: int
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    status: str = "working"
    message: str | None = None
    result: types.CallToolResult | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task[None] | None = None
    on_cancel: Callable[[], Awaitable[None]] | None = None

    def set(self, status: str, message: str | None) -> None:
        self.status, self.message, self.updated = status, message, time.time()

    def model(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "status": self.status, "status_message": self.message,
                "created_at": _iso(self.created), "last_updated_at": _iso(self.updated),
                "ttl": self.ttl_ms, "poll_interval": POLL_INTERVAL_MS}

    @property
    def terminal(self) -> bool:
        return self.status in ("completed", "failed", "cancelled")


class TaskStore:
    """The gateway's tasks, by id (an unguessable uuid4)."""

    def __init__(self, max_ttl_seconds: float) -> None:
        self.max_ttl_ms = int(max_ttl_seconds * 1000)
        self.tasks: dict[str, TaskRecord] = {}

    def _sweep(self) -> None:
        now = time.time()
        for task_id, record in list(self.tasks.items()):
            if record.terminal and now - record.created > record.ttl_ms / 1000:
                del self.tasks[task_id]

    def start(self, ttl_ms: int | None, work: Work) -> TaskRecord:
        """Run ``work`` in the background as a new task."""
        self._sweep()
        ttl = min(ttl_ms or DEFAULT_TTL_MS, self.max_ttl_ms)
        record = TaskRecord(task_id=f"task-{uuid.uuid4().hex}", ttl_ms=ttl)

        async def run() -> None:
            try:
                result = await work(record)
                record.result = result
                record.set("failed" if result.is_error else "completed",
                           _first_text(result) if result.is_error else None)
            except asyncio.CancelledError:
                record.set("cancelled", record.message or "cancelled")
            except Exception as exc:  # reported to the client as the task's failure
                record.result = types.CallToolResult(
                    content=[types.TextContent(text=f"The call failed: {exc}")], is_error=True)
                record.set("failed", str(exc))
            finally:
                record.done.set()

        self.tasks[record.task_id] = record
        record.runner = asyncio.create_task(run(), name=record.task_id)
        return record

    def get(self, task_id: str) -> TaskRecord:
        record = self.tasks.get(task_id)
        if record is None:
            raise MCPError(INVALID_PARAMS, f"no task {task_id}")
        return record

    async def result(self, task_id: str) -> types.CallToolResult:
        record = self.get(task_id)
        await record.done.wait()
        if record.result is None:
            return types.CallToolResult(content=[types.TextContent(
                text=f"Task {task_id} was cancelled; the tool did not run.")], is_error=True)
        return record.result

    async def cancel(self, task_id: str) -> TaskRecord:
        record = self.get(task_id)
        if record.terminal:
            raise MCPError(INVALID_PARAMS, f"task {task_id} is already {record.status}")
        record.set("cancelled", "cancelled by the client")
        if record.runner is not None:
            record.runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await record.runner
        return record

    async def aclose(self) -> None:
        for record in list(self.tasks.values()):
            if record.runner is not None and not record.runner.done():
                record.runner.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await record.runner


def _first_text(result: types.CallToolResult) -> str | None:
    for block in result.content:
        text = getattr(block, "text", None)
        if text:
            return str(text)[:500]
    return None
