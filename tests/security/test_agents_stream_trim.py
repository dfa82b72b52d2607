"""Each registered agent's own request stream is trimmed once its entries are acknowledged
(the agent's ACL user still only XADDs to it), poison entries included."""

from __future__ import annotations

from signoff.keys import INTAKE_GROUP
from signoff.models import Status
from signoff.runtime import Runtime
from tests.security.agents_helpers import Agent, body, drive, wait_reply


def test_agent_streams_keep_only_unacknowledged_entries(srt: Runtime,
                                                        agents: dict[str, Agent]) -> None:
    bot, mallory = agents["export-bot"], agents["mallory"]
    for i in range(3):
        bot.send(body(f"ts-{i}", params={"rows": i}))
    mallory.r.xadd(mallory.keys.requests, {"body": "not json"})
    drive(srt)
    for agent in (bot, mallory):
        assert srt.redis.xlen(agent.keys.requests) == 0
        assert srt.redis.xpending(agent.keys.requests, INTAKE_GROUP)["pending"] == 0
    bot.send(body("ts-3"))
    assert wait_reply(bot, "ts-3", srt).status is Status.APPROVED
    assert srt.redis.xlen(bot.keys.requests) == 0
