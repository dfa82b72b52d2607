"""Encryption at rest: AES-GCM under rotating data keys; the original never leaks."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from signoff import crypto, lifecycle
from signoff.runtime import Runtime
from tests.conftest import TEST_SECRETS, make_settings
from tests.grants.helpers import auto_approved, body, human_approved
from workers.cli.keys import keys as keys_cli

SECRET = "sk_live_51HcQ9dK2eZvKYlo2C0123456789abcdefXYZ"


def key(n: int) -> bytes:
    return bytes([n]) * 32


def b64(k: bytes) -> str:
    return base64.urlsafe_b64encode(k).decode().rstrip("=")


def test_roundtrip_binds_the_request_id_and_detects_tampering() -> None:
    ring = {"k1": key(1)}
    token = crypto.encrypt(ring, b"payload", b"req-1")
    assert crypto.decrypt(ring, token, b"req-1") == b"payload"
    assert crypto.key_id(token) == "k1"
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(ring, token, b"req-2")  # moved to another request
    v, kid, nonce, ct = token.split(".")
    flipped = ct[:-2] + ("A" if ct[-2] != "A" else "B") + ct[-1]
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(ring, f"{v}.{kid}.{nonce}.{flipped}", b"req-1")
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt({"k2": key(2)}, token, b"req-1")  # its key was dropped
    with pytest.raises(crypto.DecryptError):
        crypto.decrypt(ring, "garbage", b"req-1")
    assert crypto.encrypt(ring, b"payload", b"req-1") != token  # fresh nonce each time


def test_rotation_decrypts_old_tokens_and_rewraps_them() -> None:
    old = {"k1": key(1)}
    token = crypto.encrypt(old, b"x", b"id")
    ring = {"k2": key(2), "k1": key(1)}
    assert crypto.active_kid(ring) == "k2"
    assert crypto.decrypt(ring, token, b"id") == b"x"
    new = crypto.rewrap(ring, token, b"id")
    assert new is not None and crypto.key_id(new) == "k2"
    assert crypto.rewrap(ring, new, b"id") is None
    assert crypto.decrypt({"k2": key(2)}, new, b"id") == b"x"


def test_original_payload_is_stored_only_encrypted(rt: Runtime) -> None:
    lifecycle.ingest(rt, json.dumps(body("enc-1", env="prod",
                                         params={"api_key": SECRET, "rows": 1})))
    from tests.conftest import run_jobs

    run_jobs(rt)
    dump = []
    for k in rt.redis_bytes.scan_iter(count=1000):
        kind = rt.redis_bytes.type(k)
        if kind == b"hash":
            dump.append(repr(rt.redis_bytes.hgetall(k)))
        elif kind == b"stream":
            dump.append(repr(rt.redis_bytes.xrange(k)))
        elif kind == b"string":
            dump.append(repr(rt.redis_bytes.get(k)))
        elif kind == b"list":
            dump.append(repr(rt.redis_bytes.lrange(k, 0, -1)))
    text = "\n".join(dump)
    # The agent's own stream message still holds what it sent; nothing Signoff wrote does.
    stream_msgs = repr(rt.redis_bytes.xrange(rt.keys.requests))
    assert text.count(SECRET) == stream_msgs.count(SECRET)
    record = rt.store.get("enc-1")
    assert SECRET.encode() in crypto.decrypt(rt.data_keyring, record.get("ciphertext"),
                                             b"enc-1")
    assert SECRET not in json.dumps([e.to_dict() for e in rt.audit.entries()])


def test_keys_rewrap_moves_everything_to_the_new_data_key(rt: Runtime, tmp_path: Path
                                                          ) -> None:
    human_approved(rt, "rw-1")
    auto_approved(rt, "rw-2")
    old_token = rt.store.get("rw-1").get("ciphertext")
    assert crypto.key_id(old_token) == "k1"
    rotated = f"k2:{b64(key(7))},{TEST_SECRETS['data_keys']}"
    env = {"REDIS_URL": rt.settings.redis_url, "SIGNOFF_DATA_KEYS": rotated,
           "SIGNOFF_HMAC_SECRET": TEST_SECRETS["hmac_secret"],
           "SIGNOFF_MASKING_KEY": TEST_SECRETS["masking_key"],
           "SIGNOFF_POLICY": str(rt.settings.policy_path),
           "SIGNOFF_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(keys_cli, ["rewrap"], env=env)
    assert result.exit_code == 0, result.output
    assert "payloads: 2 re-encrypted" in result.output
    # The grant key and the audit key (made by the checkpoint signed after the first decision).
    assert "signing keys resealed: 2" in result.output
    # The old key can go: everything opens with the new key alone, grants still sign.
    only_new = make_settings(rt.settings.redis_url, tmp_path / "d2",
                             data_keys=f"k2:{b64(key(7))}")
    rt2 = Runtime(only_new)
    try:
        rec = rt2.store.get("rw-1")
        assert crypto.key_id(rec.get("ciphertext")) == "k2"
        assert lifecycle.original(rt2, rec).id == "rw-1"
        from signoff.grants import KeyRing

        assert KeyRing(rt2).active().kid
        again = CliRunner().invoke(keys_cli, ["rewrap"], env={
            **env, "SIGNOFF_DATA_KEYS": f"k2:{b64(key(7))}"})
        assert "payloads: 0 re-encrypted" in again.output
    finally:
        rt2.close()
