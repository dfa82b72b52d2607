"""A registered agent's grant, checked by its SDK under its own ACL and by Signoff's server
check: used once whichever side checks first, and a revocation wins or loses atomically
against either."""

from __future__ import annotations

import jwt
import pytest

from signoff import grants
from signoff.grant_check import GrantError
from signoff.models import Decision
from signoff.runtime import Runtime
from tests.security.agents_helpers import PARAMS, Agent, body, wait_reply

ACTION, RESOURCE = "db.export", "warehouse.customers"


def approved(srt: Runtime, agent: Agent, rid: str) -> tuple[Decision, str]:
    agent.send(body(rid))
    decision = wait_reply(agent, rid, srt)
    assert decision.status.value == "approved" and decision.grant
    return decision, jwt.decode(decision.grant, options={"verify_signature": False})["jti"]


def sdk_use(agent: Agent, decision: Decision) -> None:
    from signoff.grant_check import check_grant

    check_grant(agent.r, agent.keys, decision.grant,  # type: ignore[arg-type]
                action=ACTION, resource=RESOURCE, params=PARAMS)


def server_use(srt: Runtime, decision: Decision) -> None:
    grants.verify(srt, decision.grant or "", action=ACTION, resource=RESOURCE, params=PARAMS)


def code(call: object) -> str:
    with pytest.raises(GrantError) as info:
        call()  # type: ignore[operator]
    return str(getattr(info.value.code, "value", info.value.code))


def test_used_once_whichever_side_checks(srt: Runtime, agents: dict[str, Agent]) -> None:
    bot = agents["export-bot"]
    d1, _ = approved(srt, bot, "u-1")
    sdk_use(bot, d1)
    assert code(lambda: server_use(srt, d1)) == "already_used"
    d2, _ = approved(srt, bot, "u-2")
    server_use(srt, d2)
    assert code(lambda: sdk_use(bot, d2)) == "already_used"


def test_revocation_reaches_the_agents_own_check(srt: Runtime,
                                                 agents: dict[str, Agent]) -> None:
    bot = agents["export-bot"]
    d1, jti1 = approved(srt, bot, "v-1")
    result = grants.revoke(srt, by="alice@example.com", jti=jti1, check_groups=False)
    assert result.ok, result
    assert code(lambda: sdk_use(bot, d1)) == "revoked"
    assert code(lambda: server_use(srt, d1)) == "revoked"
    d2, jti2 = approved(srt, bot, "v-2")
    sdk_use(bot, d2)
    result = grants.revoke(srt, by="alice@example.com", jti=jti2, check_groups=False)
    assert result.outcome.value == "already_used"


def test_another_agent_cannot_use_or_block_a_grant(srt: Runtime,
                                                   agents: dict[str, Agent]) -> None:
    """Mallory holding export-bot's token still cannot touch its markers: its own check uses
    its own namespace (the grant names export-bot: refused), and it cannot reach the
    victim's marker to pre-spend it."""
    bot, mallory = agents["export-bot"], agents["mallory"]
    d, jti = approved(srt, bot, "w-1")
    from workers.janitor import Janitor

    Janitor(srt).tick()  # every agent's copy of the public keys is current
    assert code(lambda: mallory.client.verify_grant(d, ACTION, RESOURCE, PARAMS)) == (
        "requester_mismatch")
    assert code(lambda: grants.verify(srt, d.grant or "", action=ACTION, resource=RESOURCE,
                                      params=PARAMS, requester="agent:mallory")) == (
        "requester_mismatch")
    import redis

    with pytest.raises(redis.exceptions.ResponseError):
        mallory.r.set(bot.keys.grant_used(jti), "x")
    sdk_use(bot, d)  # the owner's use is unaffected


def test_async_client_with_its_own_credentials(srt: Runtime, agents: dict[str, Agent]) -> None:
    """The asyncio client works out its agent from the URL and does the whole round trip
    (send, wait, grant check and report) under its ACL."""
    import asyncio
    import threading
    import time

    from signoff.sdk import AsyncClient
    from tests.security.agents_helpers import drive

    bot = agents["deploy-bot"]
    result: dict[str, str] = {}

    async def agent() -> str:
        client = AsyncClient(bot.creds.redis_url)
        assert client.requester == "agent:deploy-bot"
        try:
            handle = await client.request(ACTION, RESOURCE, PARAMS,
                                          on_behalf_of="frank@example.com",
                                          context={"environment": "dev"})
            decision = await handle.wait(timeout=20)
            await handle.verify_grant(decision)
            return decision.status.value
        finally:
            await client.aclose()

    def run_agent() -> None:
        try:
            result["status"] = asyncio.run(agent())
        except Exception as exc:  # reported below
            result["error"] = repr(exc)

    # The agent runs in a thread; Signoff's intake and (rq) workers in this one.
    thread = threading.Thread(target=run_agent, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while thread.is_alive() and time.monotonic() < deadline:
        drive(srt)
        thread.join(0.1)
    assert result == {"status": "approved"}
    from workers.janitor import Janitor

    Janitor(srt).tick()
    used = [e for e in srt.audit.entries() if e.event == "grant_used"]
    assert used and used[-1].details["reported_by"] == "agent:deploy-bot"
