"""``@requires_approval`` on ``async def`` functions and methods, against the Signoff
processes, as a registered agent."""

from __future__ import annotations

import asyncio

import pytest

from signoff.sdk import ApprovalDenied, AsyncClient, Client, requires_approval
from tests.mcp.conftest import AGENT, Env

pytestmark = [pytest.mark.slow, pytest.mark.timeout(90)]


async def test_async_method_runs_after_approval_without_self_in_params(mcp_env: Env) -> None:
    client = AsyncClient(mcp_env.agent_url, requester=AGENT)

    class Exporter:
        def __init__(self) -> None:
            self.ran: list[int] = []

        @requires_approval("db.export", client=client, resource="warehouse.orders",
                           context={"environment": "prod"}, timeout=30)
        async def export(self, rows: int, *, fmt: str = "csv") -> str:
            self.ran.append(rows)
            return f"{rows} rows as {fmt}"

    exporter = Exporter()
    call = asyncio.create_task(exporter.export(120))
    rid = await mcp_env.pending_for("db.export")
    record = mcp_env.rt.store.get(rid, with_votes=False)
    assert record is not None and record.json("masked")["params"] == {"rows": 120, "fmt": "csv"}
    assert (await asyncio.to_thread(mcp_env.decide, rid, "alice@example.com", "approve")
            ).status_code == 200
    assert await asyncio.wait_for(call, 30) == "120 rows as csv"
    assert exporter.ran == [120]

    denied = asyncio.create_task(exporter.export(999))
    rid2 = await mcp_env.pending_for("db.export", exclude=(rid,))
    assert (await asyncio.to_thread(mcp_env.decide, rid2, "alice@example.com", "deny",
                                    "too many rows")).status_code == 200
    with pytest.raises(ApprovalDenied, match="too many rows"):
        await asyncio.wait_for(denied, 30)
    assert exporter.ran == [120]
    await client.aclose()


def test_the_wrong_kind_of_client_is_refused_at_decoration(mcp_env: Env) -> None:
    sync_client = Client(mcp_env.agent_url, requester=AGENT)
    with pytest.raises(TypeError, match="AsyncClient"):
        @requires_approval("db.export", client=sync_client)
        async def export(rows: int) -> None: ...

    async_client = AsyncClient(mcp_env.agent_url, requester=AGENT)
    with pytest.raises(TypeError, match="not async"):
        @requires_approval("db.export", client=async_client)
        def export_sync(rows: int) -> None: ...
