"""Attacks on grants: an approval verifies only for the request that was approved.

A grant binds the request id, the requesting agent, the action, the resource, the payload
hash, the context's hash and its environment. Each replay below (another request id,
requester, environment, context, resource or payload) is refused with its own code, by the
sync and the asyncio check alike (one logic, two shells), by the server's ``grants.verify``
and by the SDK's handle, and leaves the grant unused.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from signoff import grants
from signoff.grant_check import (
    GrantError,
    Refusal,
    acheck_grant,
    check_grant,
    context_sha256,
    unverified_claims,
)
from signoff.models import Decision
from signoff.runtime import Runtime
from tests.grants.helpers import PARAMS, auto_approved, body, events, human_approved

EXPORT = {"action": "db.export", "resource": "warehouse.customers"}
DEV_CONTEXT = {"environment": "dev", "ticket": "OPS-1"}


def sync_check(rt: Runtime, token: Any, **kw: Any) -> dict[str, Any]:
    return check_grant(rt.redis, rt.keys, token, **kw)


def async_check(rt: Runtime, token: Any, **kw: Any) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        r = aioredis.Redis.from_url(rt.settings.redis_url)
        try:
            return await acheck_grant(r, rt.keys, token, **kw)
        finally:
            await r.aclose()

    return asyncio.run(go())


def server_verify(rt: Runtime, token: Any, **kw: Any) -> dict[str, Any]:
    return grants.verify(rt, token, **kw)


CHECKS = pytest.mark.parametrize("check", [sync_check, async_check, server_verify],
                                 ids=["sync", "async", "server"])
Check = Callable[..., dict[str, Any]]


def refused(check: Check, rt: Runtime, token: Any, **kw: Any) -> Refusal:
    with pytest.raises(GrantError) as err:
        check(rt, token, **kw)
    assert isinstance(err.value.code, Refusal)
    assert str(err.value), "every refusal says what differs"
    return err.value.code


def unused(rt: Runtime, token: str) -> bool:
    return not rt.redis.exists(rt.keys.grant_used(unverified_claims(token)["jti"]))


def test_a_grant_names_everything_it_binds(rt: Runtime) -> None:
    decision = auto_approved(rt, "b-1")
    c = unverified_claims(decision.grant)
    assert (c["rid"], c["sub"], c["act"], c["res"]) == (
        "b-1", "agent:export-bot", "db.export", "warehouse.customers")
    assert c["env"] == "dev" and c["ctx"] == context_sha256(DEV_CONTEXT)
    assert c["obo"] == "frank@example.com"


@CHECKS
def test_replayed_for_another_request_id(rt: Runtime, check: Check) -> None:
    mine = auto_approved(rt, "b-1")
    auto_approved(rt, "b-2")  # the same payload, approved on its own: still not b-1's grant
    assert refused(check, rt, mine.grant, params=PARAMS, request_id="b-2",
                   **EXPORT) is Refusal.REQUEST_MISMATCH
    # The whole request body as payload binds its id too.
    other_body = body("b-2")
    assert refused(check, rt, mine.grant, action="db.export",
                   payload=other_body) is Refusal.REQUEST_MISMATCH
    assert unused(rt, mine.grant)
    assert check(rt, mine.grant, action="db.export", payload=body("b-1"))["rid"] == "b-1"


@CHECKS
def test_replayed_by_another_requester(rt: Runtime, check: Check) -> None:
    mine = auto_approved(rt, "b-1")
    for other in ("agent:deploy-bot", "agent:export-bot-2", ""):
        assert refused(check, rt, mine.grant, params=PARAMS, requester=other,
                       **EXPORT) is Refusal.REQUESTER_MISMATCH
    assert unused(rt, mine.grant)
    # The same agent in another spelling is the same agent (one identity rule).
    assert check(rt, mine.grant, params=PARAMS, requester=" Agent:Export-Bot ", consume=False,
                 **EXPORT)


@CHECKS
def test_replayed_in_another_environment(rt: Runtime, check: Check) -> None:
    mine = auto_approved(rt, "b-1")  # approved automatically because it said dev
    for env in ("prod", "PROD", "staging", ""):
        assert refused(check, rt, mine.grant, params=PARAMS, environment=env,
                       **EXPORT) is Refusal.ENVIRONMENT_MISMATCH
        assert refused(check, rt, mine.grant, params=PARAMS,
                       context={**DEV_CONTEXT, "environment": env},
                       **EXPORT) is Refusal.ENVIRONMENT_MISMATCH
    assert refused(check, rt, mine.grant, params=PARAMS, context={"ticket": "OPS-1"},
                   **EXPORT) is Refusal.ENVIRONMENT_MISMATCH
    assert unused(rt, mine.grant)
    assert check(rt, mine.grant, params=PARAMS, environment=" DEV ", consume=False, **EXPORT)


@CHECKS
def test_replayed_with_another_context(rt: Runtime, check: Check) -> None:
    mine = auto_approved(rt, "b-1")
    for ctx in ({"environment": "dev", "ticket": "OPS-2"}, {"environment": "dev"},
                {**DEV_CONTEXT, "extra": True}):
        assert refused(check, rt, mine.grant, params=PARAMS, context=ctx,
                       **EXPORT) is Refusal.CONTEXT_MISMATCH
    assert unused(rt, mine.grant)
    # Key order and the environment's spelling do not change the context.
    same = {"ticket": "OPS-1", "environment": "Dev"}
    assert check(rt, mine.grant, params=PARAMS, context=same, consume=False, **EXPORT)


@CHECKS
def test_replayed_for_another_resource_action_or_payload(rt: Runtime, check: Check) -> None:
    mine = human_approved(rt, "b-p")
    ctx = {"environment": "prod", "ticket": "OPS-1"}
    assert refused(check, rt, mine.grant, action="db.export", resource="warehouse.orders",
                   params=PARAMS, context=ctx) is Refusal.RESOURCE_MISMATCH
    assert refused(check, rt, mine.grant, action="db.export_all",
                   resource="warehouse.customers", params=PARAMS,
                   context=ctx) is Refusal.ACTION_MISMATCH
    assert refused(check, rt, mine.grant, params={**PARAMS, "rows": 5001}, context=ctx,
                   **EXPORT) is Refusal.PAYLOAD_MISMATCH
    assert unused(rt, mine.grant)


def test_a_decision_carrying_another_requests_grant_is_refused(rt: Runtime) -> None:
    first = auto_approved(rt, "b-1")
    second = auto_approved(rt, "b-2")
    # b-2's decision with b-1's grant swapped in: the grant must agree with its decision.
    swapped = Decision.model_validate({**json.loads(second.to_json()), "grant": first.grant})
    assert refused(sync_check, rt, swapped, params=PARAMS, **EXPORT) is \
        Refusal.REQUEST_MISMATCH
    wrong_hash = Decision.model_validate({**json.loads(first.to_json()),
                                          "payload_sha256": "0" * 64})
    assert refused(sync_check, rt, wrong_hash, params=PARAMS, **EXPORT) is \
        Refusal.PAYLOAD_MISMATCH
    assert unused(rt, first.grant)


def test_every_refusal_is_reported_with_its_code(rt: Runtime) -> None:
    mine = auto_approved(rt, "b-1")
    refused(sync_check, rt, mine.grant, params=PARAMS, request_id="b-9", **EXPORT)
    refused(sync_check, rt, mine.grant, params=PARAMS, environment="prod", **EXPORT)
    grants.fold_reports(rt)
    codes = [e.details.get("code") for e in events(rt, "grant_refused")]
    assert codes == ["request_mismatch", "environment_mismatch"]


def test_a_grant_without_the_binding_claims_is_refused(rt: Runtime) -> None:
    """A grant minted before grants bound the context (no ``ctx``/``env``) fails closed."""
    import jwt

    from signoff.signing_keys import KeyRing

    mine = auto_approved(rt, "b-1")
    claims = unverified_claims(mine.grant)
    key = KeyRing(rt).active()
    for missing in ("ctx", "env", "sub", "rid"):
        token = jwt.encode({k: v for k, v in claims.items() if k != missing}, key.private,
                           algorithm="EdDSA", headers={"kid": key.kid})
        assert refused(sync_check, rt, token, params=PARAMS, **EXPORT) is Refusal.MALFORMED


def test_the_cli_binds_what_it_is_told(rt: Runtime) -> None:
    from click.testing import CliRunner

    from tests.conftest import EXAMPLE_POLICY, TEST_SECRETS
    from workers.cli.keys import grant as grant_cli

    mine = auto_approved(rt, "b-1")
    env = {"REDIS_URL": rt.settings.redis_url, "SIGNOFF_DATA_KEYS": TEST_SECRETS["data_keys"],
           "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
           "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
           "SIGNOFF_POLICY": str(EXAMPLE_POLICY)}
    base = ["verify", mine.grant, "--action", "db.export", "--resource",
            "warehouse.customers", "--params", json.dumps(PARAMS)]
    for extra, code in ((["--request-id", "b-2"], "request_mismatch"),
                        (["--env", "prod"], "environment_mismatch"),
                        (["--requester", "agent:deploy-bot"], "requester_mismatch"),
                        (["--context", json.dumps({"environment": "dev"})], "context_mismatch")):
        result = CliRunner().invoke(grant_cli, base + extra, env=env)
        assert result.exit_code == 1 and f"REFUSED ({code})" in result.output, result.output
    ok = CliRunner().invoke(grant_cli, [*base, "--request-id", "b-1", "--context",
                                        json.dumps(DEV_CONTEXT)], env=env)
    assert ok.exit_code == 0 and "OK: grant" in ok.output, ok.output
