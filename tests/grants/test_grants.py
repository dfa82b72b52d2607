"""Grants: what was approved is what runs, once, before it expires, unless revoked."""

from __future__ import annotations

import base64
import json
import threading
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from signoff import grants
from signoff.grant_check import GrantError, check_grant, unverified_claims
from signoff.grants import GrantIssuer, KeyRing, Purpose, RevokeOutcome
from signoff.models import AgentRequest, payload_sha256
from signoff.runtime import Runtime
from tests.grants.helpers import PARAMS, auto_approved, events, human_approved


def claims_of(token: str) -> dict:
    return unverified_claims(token)


def test_grant_binds_request_action_resource_payload_and_approvers(rt: Runtime) -> None:
    decision = human_approved(rt, "h-1")
    c = claims_of(decision.grant)
    assert c["rid"] == "h-1" and c["act"] == "db.export" and c["res"] == "warehouse.customers"
    assert c["psh"] == payload_sha256("db.export", "warehouse.customers", PARAMS)
    assert c["psh"] == decision.payload_sha256
    assert c["apr"] == ["alice@example.com", "bob@example.com"]
    assert c["exp"] - c["iat"] == rt.settings.grant_ttl
    assert len(c["jti"]) == 32
    header = jwt.get_unverified_header(decision.grant)
    assert header["alg"] == "EdDSA"
    assert header["kid"] in {k["kid"] for k in KeyRing(rt).jwks()["keys"]}
    issued = events(rt, "grant_issued", "h-1")
    assert len(issued) == 1 and issued[0].details["jti"] == c["jti"]
    assert decision.grant not in json.dumps([e.to_dict() for e in rt.audit.entries()])
    assert grants.status(rt, c["jti"])["state"] == "issued"


def test_payload_changed_by_one_byte_is_refused(rt: Runtime) -> None:
    decision = auto_approved(rt, "g-1")
    changed = dict(PARAMS, rows=5001)
    with pytest.raises(GrantError) as err:
        grants.verify(rt, decision.grant, action="db.export", resource="warehouse.customers",
                      params=changed)
    assert err.value.code == "payload_mismatch"
    one_char = dict(PARAMS, notify="jane@example.orh")
    with pytest.raises(GrantError) as err:
        check_grant(rt.redis, rt.keys, decision.grant, action="db.export",
                    resource="warehouse.customers", params=one_char)
    assert err.value.code == "payload_mismatch"
    with pytest.raises(GrantError) as err:
        grants.verify(rt, decision.grant, action="db.export", resource="warehouse.customer",
                      params=PARAMS)
    assert err.value.code == "resource_mismatch"
    with pytest.raises(GrantError) as err:
        grants.verify(rt, decision.grant, action="db.delete", resource="warehouse.customers",
                      params=PARAMS)
    assert err.value.code == "action_mismatch"
    # Refusals consumed nothing: the exact payload still runs, once.
    claims = grants.verify(rt, decision.grant, action="db.export",
                           payload={"resource": "warehouse.customers", "params": PARAMS})
    assert claims["rid"] == "g-1"
    refused = events(rt, "grant_refused", "g-1")
    assert [e.details["code"] for e in refused] == ["payload_mismatch", "resource_mismatch",
                                                    "action_mismatch"]
    assert len(events(rt, "grant_used", "g-1")) == 1


def test_payload_convenience_accepts_the_request_itself(rt: Runtime) -> None:
    decision = auto_approved(rt, "g-2")
    req = AgentRequest(id="g-2", action="db.export", resource="warehouse.customers",
                       params=PARAMS, requester="agent:export-bot",
                       context={"environment": "dev", "ticket": "OPS-1"})
    # The request binds its id, requester and context too: another id is another request.
    with pytest.raises(GrantError) as err:
        grants.verify(rt, decision.grant, action="db.export",
                      payload=req.model_copy(update={"id": "other"}))
    assert err.value.code == "request_mismatch"
    assert grants.verify(rt, decision.grant, action="db.export", payload=req)["rid"] == "g-2"
    with pytest.raises(ValueError):
        grants.verify(rt, decision.grant, action="db.delete", payload=req)
    with pytest.raises(ValueError):
        grants.verify(rt, decision.grant, action="db.export", payload=req, resource="x")


def test_grant_used_twice_is_refused_even_when_racing(rt: Runtime) -> None:
    decision = auto_approved(rt, "g-3")
    results: list[str] = []

    def use() -> None:
        try:
            check_grant(rt.redis, rt.keys, decision.grant, action="db.export",
                        resource="warehouse.customers", params=PARAMS)
            results.append("ok")
        except GrantError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results) == ["already_used"] * 7 + ["ok"]
    with pytest.raises(GrantError) as err:
        grants.verify(rt, decision.grant, action="db.export", resource="warehouse.customers",
                      params=PARAMS)
    assert err.value.code == "already_used"
    assert grants.status(rt, claims_of(decision.grant)["jti"])["state"] == "used"


def test_expired_grant_is_refused(rt: Runtime) -> None:
    decision = auto_approved(rt, "g-4")
    exp = claims_of(decision.grant)["exp"]
    with pytest.raises(GrantError) as err:
        grants.verify(rt, decision.grant, action="db.export", resource="warehouse.customers",
                      params=PARAMS, now=exp)
    assert err.value.code == "expired"
    # A grant minted long ago (the clock moved) is refused on the wall clock too.
    record = rt.store.get("g-4")
    req = AgentRequest.model_validate(
        {"id": "g-4", "action": "db.export", "resource": "warehouse.customers",
         "params": PARAMS, "requester": "agent:export-bot"})
    old = GrantIssuer(rt).issue(record, req, now=time.time() - rt.settings.grant_ttl - 1)
    with pytest.raises(GrantError) as err:
        check_grant(rt.redis, rt.keys, old, action="db.export", resource="warehouse.customers",
                    params=PARAMS)
    assert err.value.code == "expired"
    future = GrantIssuer(rt).issue(record, req, now=time.time() + 3600)
    with pytest.raises(GrantError) as err:
        check_grant(rt.redis, rt.keys, future, action="db.export",
                    resource="warehouse.customers", params=PARAMS)
    assert err.value.code == "not_yet_valid"


def test_forged_and_tampered_tokens_are_refused(rt: Runtime) -> None:
    decision = auto_approved(rt, "g-5")
    token = decision.grant
    head, body, sig = token.split(".")
    raw_sig = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw_sig[0] ^= 1
    bad_sig = f"{head}.{body}." + base64.urlsafe_b64encode(bytes(raw_sig)).decode().rstrip("=")
    claims = claims_of(token)
    more = dict(claims, psh=payload_sha256("db.export", "warehouse.customers", {"rows": 1}))
    swapped = f"{head}." + base64.urlsafe_b64encode(json.dumps(more).encode()).decode(
        ).rstrip("=") + f".{sig}"
    kid = jwt.get_unverified_header(token)["kid"]
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA",
                        headers={"kid": kid})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})
    for t, code in ((bad_sig, "bad_signature"), (swapped, "bad_signature"),
                    (forged, "bad_signature"), (unsigned, "bad_signature"),
                    ("not-a-token", "malformed")):
        with pytest.raises(GrantError) as err:
            check_grant(rt.redis, rt.keys, t, action="db.export",
                        resource="warehouse.customers", params=PARAMS)
        assert err.value.code == code, t
    # None of those consumed the real grant.
    check_grant(rt.redis, rt.keys, token, action="db.export", resource="warehouse.customers",
                params=PARAMS)


def test_rotation_keeps_old_grants_verifying_until_they_expire(rt: Runtime) -> None:
    first = auto_approved(rt, "g-6").grant
    ring = KeyRing(rt)
    old_kid = jwt.get_unverified_header(first)["kid"]
    new_key = ring.rotate()
    second = auto_approved(rt, "g-7").grant
    assert jwt.get_unverified_header(second)["kid"] == new_key.kid != old_kid
    assert {old_kid, new_key.kid} <= {k["kid"] for k in ring.jwks()["keys"]}
    assert ring.prune() == []  # the old key's grants may still be alive
    check_grant(rt.redis, rt.keys, first, action="db.export", resource="warehouse.customers",
                params=PARAMS, consume=False)
    infos = {i.kid: i for i in ring.infos()}
    assert infos[old_kid].retired_at is not None and not infos[old_kid].active
    assert infos[new_key.kid].active
    later = time.time() + rt.settings.grant_ttl + grants.PRUNE_MARGIN_SECONDS + 1
    assert ring.prune(now=later) == [old_kid]
    with pytest.raises(GrantError) as err:
        check_grant(rt.redis, rt.keys, first, action="db.export",
                    resource="warehouse.customers", params=PARAMS)
    assert err.value.code == "unknown_key"
    check_grant(rt.redis, rt.keys, second, action="db.export", resource="warehouse.customers",
                params=PARAMS)
    rotated = [e for e in events(rt, "key_rotated") if e.details["purpose"] == "grant"]
    assert [e.details["kid"] for e in rotated] == [old_kid, new_key.kid]


def test_grant_and_audit_keys_are_separate_rings(rt: Runtime) -> None:
    grant_key = KeyRing(rt, Purpose.GRANT).active()
    audit_key = KeyRing(rt, Purpose.AUDIT).active()
    assert grant_key.kid != audit_key.kid
    assert audit_key.kid not in {k["kid"] for k in KeyRing(rt).jwks()["keys"]}
    # A sealed grant key moved into the audit ring does not unseal there.
    raw = rt.redis.hget(rt.keys.signing_keys, grant_key.kid)
    rt.redis.hset(rt.keys.audit_signing_keys, "moved", raw)
    with pytest.raises(Exception):
        KeyRing(rt, Purpose.AUDIT).get("moved")


def test_revoked_grant_is_refused_and_used_grant_cannot_be_revoked(rt: Runtime) -> None:
    decision = human_approved(rt, "h-2")
    jti = claims_of(decision.grant)["jti"]
    frank = grants.revoke(rt, by="frank@example.com", request_id="h-2")
    assert frank.outcome is RevokeOutcome.FORBIDDEN
    version = rt.store.get("h-2").version
    done = grants.revoke(rt, by="carol@example.com", jti=jti, reason="wrong table")
    assert done.ok and done.request_id == "h-2"
    record = rt.store.get("h-2")
    assert record.get("grant_revoked_by") == "carol@example.com"
    assert record.version == version + 1  # the cards re-render
    assert grants.revoke(rt, by="carol@example.com", jti=jti).outcome is (
        RevokeOutcome.ALREADY_REVOKED)
    with pytest.raises(GrantError) as err:
        check_grant(rt.redis, rt.keys, decision.grant, action="db.export",
                    resource="warehouse.customers", params=PARAMS)
    assert err.value.code == "revoked"
    revoked = events(rt, "grant_revoked", "h-2")
    assert len(revoked) == 1 and revoked[0].actor == "carol@example.com"
    assert "wrong table" not in json.dumps(revoked[0].details)
    assert len(events(rt, "revoke_refused", "h-2")) == 1

    used = auto_approved(rt, "g-8")
    check_grant(rt.redis, rt.keys, used.grant, action="db.export",
                resource="warehouse.customers", params=PARAMS)
    late = grants.revoke(rt, by="admin:ops", request_id="g-8", check_groups=False)
    assert late.outcome is RevokeOutcome.ALREADY_USED


def test_use_and_revoke_racing_exactly_one_wins(rt: Runtime) -> None:
    for i in range(5):
        decision = auto_approved(rt, f"race-{i}")
        outcomes: list[str] = []
        barrier = threading.Barrier(2)

        def use(token: str = decision.grant) -> None:
            barrier.wait()
            try:
                check_grant(rt.redis, rt.keys, token, action="db.export",
                            resource="warehouse.customers", params=PARAMS)
                outcomes.append("used")
            except GrantError as exc:
                outcomes.append(exc.code)

        def revoke(rid: str = f"race-{i}") -> None:
            barrier.wait()
            outcomes.append(grants.revoke(rt, by="admin:ops", request_id=rid,
                                          check_groups=False).outcome.value)

        threads = [threading.Thread(target=use), threading.Thread(target=revoke)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert sorted(outcomes) in (["already_used", "used"], ["revoked", "revoked"]), outcomes


def test_agent_side_reports_are_folded_into_the_audit(rt: Runtime) -> None:
    decision = auto_approved(rt, "g-9")
    with pytest.raises(GrantError):
        check_grant(rt.redis, rt.keys, decision.grant, action="db.export",
                    resource="warehouse.customers", params={"rows": 1}, reporter="export-bot")
    check_grant(rt.redis, rt.keys, decision.grant, action="db.export",
                resource="warehouse.customers", params=PARAMS, reporter="export-bot")
    with pytest.raises(GrantError):
        check_grant(rt.redis, rt.keys, decision.grant, action="db.export",
                    resource="warehouse.customers", params=PARAMS, reporter="export-bot")
    assert rt.redis.xlen(rt.keys.grant_reports) == 3
    assert grants.fold_reports(rt) == 3
    assert rt.redis.xlen(rt.keys.grant_reports) == 0
    refused = events(rt, "grant_refused", "g-9")
    used = events(rt, "grant_used", "g-9")
    assert [e.details["code"] for e in refused] == ["payload_mismatch", "already_used"]
    assert refused[0].details["verified"] is False and refused[1].details["verified"] is True
    assert len(used) == 1 and used[0].actor == "agent:export-bot"
    assert used[0].details["reporter"] == "export-bot"
    assert decision.grant not in json.dumps([e.to_dict() for e in rt.audit.entries()])
