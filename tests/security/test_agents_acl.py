"""The Redis ACL Signoff generates, tested with real ACL users on the suite's redis-server.

Each agent logs in with the URL ``signoff agent add`` printed. It can do everything the SDK
needs (send, wait, read its decisions, check and use a grant, report it) and nothing else:
every other command, and every key outside its own namespace, is refused by Redis itself.
"""

from __future__ import annotations

import pytest
import redis

from signoff import lifecycle
from signoff.agents import AgentRegistry, acl_command, redis_major
from signoff.runtime import Runtime
from tests.security.agents_helpers import (
    Agent,
    wait_reply,
)

DENIED = (redis.exceptions.NoPermissionError, redis.exceptions.ResponseError)


def _refused(call: object) -> None:
    with pytest.raises(DENIED) as info:
        call()  # type: ignore[operator]
    assert "NOPERM" in str(info.value) or "permission" in str(info.value).lower()


def test_the_sdk_works_end_to_end_with_its_own_credentials(srt: Runtime,
                                                           agents: dict[str, Agent]) -> None:
    """Request, wait, grant check (public key, revocation, use marker, report): all allowed."""
    bot = agents["export-bot"]
    handle = bot.client.request("db.export", "warehouse.customers", {"rows": 1},
                                on_behalf_of="frank@example.com", context={"environment": "dev"})
    decision = wait_reply(bot, handle.id, srt)
    assert decision.status.value == "approved" and decision.grant
    assert decision.id == handle.id  # the agent's own id, not Signoff's scoped one
    handle._got(decision.model_dump_json())
    bot.client.verify_grant(handle._decision, "db.export", "warehouse.customers",  # type: ignore[arg-type]
                            {"rows": 1})
    assert srt.redis.exists(bot.keys.grant_used(decision.grant and
                                                handle._decision.raw.get("grant") and
                                                __import__("jwt").decode(
                                                    decision.grant,
                                                    options={"verify_signature": False})["jti"]))
    # The agent's own decisions stream is readable by it.
    assert [f["id"] for _, f in bot.r.xrange(bot.keys.decisions)] == [handle.id]


@pytest.mark.parametrize("name,call", [
    ("KEYS", lambda r, k: r.keys("*")),
    ("SCAN", lambda r, k: r.scan(0)),
    ("FLUSHALL", lambda r, k: r.flushall()),
    ("FLUSHDB", lambda r, k: r.flushdb()),
    ("CONFIG", lambda r, k: r.config_get("*")),
    ("ACL", lambda r, k: r.acl_list()),
    ("EVAL", lambda r, k: r.eval("return 1", 0)),
    ("SCRIPT LOAD", lambda r, k: r.script_load("return 1")),
    ("DEL own reply", lambda r, k: r.delete(k.reply("x"))),
    ("LPUSH own reply", lambda r, k: r.lpush(k.reply("x"), "{}")),
    ("HSET revocation", lambda r, k: r.hset(k.grant("j"), "state", "issued")),
    ("SUBSCRIBE", lambda r, k: r.publish("signoff:events", "x")),
    ("SHUTDOWN", lambda r, k: r.shutdown()),
    ("BGSAVE", lambda r, k: r.bgsave()),
    ("XGROUP DESTROY own stream", lambda r, k: r.xgroup_destroy(k.requests, "signoff-intake")),
    ("XDEL own stream", lambda r, k: r.xdel(k.requests, "0-1")),
    ("XTRIM own stream", lambda r, k: r.xtrim(k.requests, 0)),
    ("RENAME own keys", lambda r, k: r.rename(k.requests, k.reply("x"))),
    ("EXPIRE own stream", lambda r, k: r.expire(k.requests, 1)),
    ("MONITOR", lambda r, k: r.execute_command("MONITOR")),
    ("CLIENT LIST", lambda r, k: r.client_list()),
])
def test_commands_outside_the_sdk_are_refused(agents: dict[str, Agent], name: str,
                                              call: object) -> None:
    bot = agents["mallory"]
    _refused(lambda: call(bot.r, bot.keys))  # type: ignore[operator]


def test_no_key_outside_its_namespace(srt: Runtime, agents: dict[str, Agent]) -> None:
    """Another agent's stream, reply list, decisions, grant markers; Signoff's own keys; rq."""
    mallory, victim = agents["mallory"], agents["export-bot"]
    k = srt.keys
    vk = victim.keys
    attempts = [
        lambda: mallory.r.xadd(vk.requests, {"body": "{}"}),
        lambda: mallory.r.xadd(k.requests, {"body": "{}"}),       # the shared stream
        lambda: mallory.r.xadd(k.grant_reports, {"result": "used"}),
        lambda: mallory.r.xadd(vk.grant_reports, {"result": "used"}),
        lambda: mallory.r.blpop([vk.reply("r-1")], timeout=0.01),
        lambda: mallory.r.xrange(vk.decisions),
        lambda: mallory.r.xrange(k.decisions),
        lambda: mallory.r.xrange(k.audit),
        lambda: mallory.r.hget(k.request("export-bot~r-1"), "status"),
        lambda: mallory.r.hget(k.public_keys, "x"),               # Signoff's own copy
        lambda: mallory.r.hget(vk.public_keys, "x"),
        lambda: mallory.r.set(vk.grant_used("j"), "x"),
        lambda: mallory.r.set(k.grant_used("j"), "x"),
        lambda: mallory.r.set(k.cancel_early("export-bot~r-1"), "x"),
        lambda: mallory.r.get(k.api_tokens),
        lambda: mallory.r.hget(k.agents, "export-bot"),
        lambda: mallory.r.xadd("rq:queue:signoff", {"x": "1"}),
        lambda: mallory.r.set("rq:queue:signoff", "x"),
        lambda: mallory.r.get("anything-else"),
    ]
    before = srt.redis.dbsize()
    for attempt in attempts:
        _refused(attempt)
    assert srt.redis.dbsize() == before


def test_a_glob_in_a_name_cannot_widen_a_pattern(srt: Runtime) -> None:
    """Names are checked before they become ACL patterns (no ':' or glob characters)."""
    registry = AgentRegistry(srt.redis, srt.keys)
    for bad in ("*", "a*", "a:b", "a?", "[a]", "a b", "A\\b", "", "x" * 64):
        with pytest.raises(ValueError):
            registry.add(bad, srt.settings.redis_url or "")
    assert registry.names() == []


def test_the_acl_is_the_documented_one(srt: Runtime, agents: dict[str, Agent]) -> None:
    """What Redis holds is exactly what acl_command builds (and the docs print)."""
    version = redis_major(srt.redis)
    rules = acl_command(srt.keys, "export-bot", "0" * 64, version)
    got = srt.redis.acl_getuser(srt.keys.acl_user("export-bot"))
    keys = got["keys"]
    held = {h.lstrip("%RW~") for h in (keys if isinstance(keys, list) else str(keys).split())}
    wanted = {r.lstrip("%RW~") for r in rules if "~" in r and not r.startswith("(")}
    assert wanted and wanted <= held
    for pattern in held:
        assert pattern.lstrip("%RW~").startswith("signoff:agent:export-bot:")
    assert got["enabled"] if "enabled" in got else "on" in got["flags"]


def test_rotate_and_remove_cut_access_at_once(srt: Runtime, agents: dict[str, Agent]) -> None:
    registry = AgentRegistry(srt.redis, srt.keys)
    bot = agents["deploy-bot"]
    old = redis.Redis.from_url(bot.creds.redis_url, decode_responses=True)
    old.ping()
    creds = registry.rotate("deploy-bot", srt.settings.redis_url or "")
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ConnectionError,
                        redis.exceptions.ResponseError)):
        redis.Redis.from_url(bot.creds.redis_url, decode_responses=True).ping()
    assert srt.tokens.lookup(bot.creds.api_token) is None
    fresh = redis.Redis.from_url(creds.redis_url, decode_responses=True)
    assert fresh.ping()
    assert srt.tokens.lookup(creds.api_token) is not None
    assert registry.remove("deploy-bot")
    with pytest.raises((redis.exceptions.AuthenticationError, redis.exceptions.ConnectionError,
                        redis.exceptions.ResponseError)):
        redis.Redis.from_url(creds.redis_url, decode_responses=True).ping()
    assert srt.tokens.lookup(creds.api_token) is None


def test_acl_users_lost_with_a_restart_are_recreated(srt: Runtime,
                                                     agents: dict[str, Agent]) -> None:
    """Signoff keeps only the password's hash; the sweep re-creates a lost user from it."""
    bot = agents["export-bot"]
    srt.redis.execute_command("ACL", "DELUSER", srt.keys.acl_user("export-bot"))
    from workers.janitor import Janitor

    Janitor(srt).tick()
    assert redis.Redis.from_url(bot.creds.redis_url, decode_responses=True).ping()


def test_legacy_requester_field_and_sdk_identity(srt: Runtime, agents: dict[str, Agent]) -> None:
    """The SDK takes its name from the URL; naming another agent is refused before sending."""
    from signoff.sdk import Client

    url = agents["export-bot"].creds.redis_url
    assert Client(url).requester == "agent:export-bot"
    assert Client(url, agent="export-bot").requester == "agent:export-bot"
    with pytest.raises(ValueError):
        Client(url, agent="deploy-bot")
    with pytest.raises(ValueError):
        Client(url, requester="agent:deploy-bot")
    with pytest.raises(ValueError):
        Client(url).request("db.export", "t", {}, reply_to="signoff:reply:x")
    # And a client pointed at another agent's namespace is refused by Redis itself.
    spoof = Client(url.replace("signoff-agent-export-bot", "signoff-agent-export-bot"),
                   agent="export-bot")
    spoof.keys = srt.keys.agent("deploy-bot")
    _refused(lambda: spoof.request("db.export", "t", {}))
    assert lifecycle is not None


def test_the_docs_show_the_acl_signoff_generates() -> None:
    """docs/security.md prints, for Redis 7 and Redis 6, exactly what acl_command builds."""
    import re

    from signoff.keys import Keys
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "security.md").read_text()
    blocks = [" ".join(b.split()) for b in re.findall(r"```\n(ACL SETUSER .*?)```", text, re.S)]
    for version in (7, 6):
        assert " ".join(acl_command(Keys(), "export-bot", "<sha256>", version)) in blocks
