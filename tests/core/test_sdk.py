"""The SDK's handles: wait returns the decision once, cancel goes over the wire, timeouts raise."""

from __future__ import annotations

import pytest

from signoff.models import Status
from signoff.runtime import Runtime
from signoff.sdk import ApprovalDenied, ApprovalTimeout, AsyncClient, Client
from tests.conftest import run_intake, run_jobs


def test_sync_cancel_and_timeout(rt: Runtime) -> None:
    client = Client(rt.settings.redis_url, requester="agent:export-bot")
    handle = client.request("db.export", "t", {"rows": 1}, on_behalf_of="frank@example.com",
                            reason="r", context={"environment": "prod"})
    with pytest.raises(ApprovalTimeout):
        handle.wait(timeout=0.2)
    run_intake(rt)
    run_jobs(rt)
    handle.cancel("not needed any more")
    run_intake(rt)
    run_jobs(rt)
    decision = handle.wait(timeout=5)
    assert decision.status is Status.CANCELLED
    assert handle.wait(timeout=0) is decision  # the decision is kept, not popped twice
    with pytest.raises(ApprovalDenied):
        decision.raise_for_status()


async def test_async_client_gets_the_decision(rt: Runtime) -> None:
    client = AsyncClient(rt.settings.redis_url, requester="agent:deploy-bot")
    handle = await client.request("deploy.service", "checkout", {"v": 2},
                                  context={"environment": "dev"})
    run_intake(rt)  # rq and the intake run in the main thread
    run_jobs(rt)
    decision = await handle.wait(timeout=5)
    assert decision.approved and decision.grant
    await client.aclose()
