"""A software WebAuthn authenticator (ES256, ``none`` attestation) for API-level tests.

It makes what a browser hands the server: ``navigator.credentials.create`` and ``.get``
results as JSON, signed with a P-256 key from ``cryptography``. ``clone()`` copies the key
and counter (a cloned authenticator), and the counter can be set to test regressions.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40


def b64u(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftAuthenticator:
    """One credential on a software authenticator."""

    origin: str
    rp_id: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: os.urandom(32))
    sign_count: int = 0
    user_handle: bytes = b""
    user_verified: bool = True

    def _cose_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                            -3: numbers.y.to_bytes(32, "big")})

    def _auth_data(self, attested: bool) -> bytes:
        flags = FLAG_UP | (FLAG_UV if self.user_verified else 0) | (FLAG_AT if attested else 0)
        data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([flags]) + struct.pack(
            ">I", self.sign_count)
        if attested:
            data += bytes(16) + struct.pack(">H", len(self.credential_id)) + \
                self.credential_id + self._cose_key()
        return data

    def _client_data(self, kind: str, challenge_b64: str, origin: str | None = None,
                     cross_origin: bool = False) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge_b64,
                           "origin": origin or self.origin,
                           "crossOrigin": cross_origin}).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """What ``navigator.credentials.create`` returns, as JSON."""
        self.user_handle = unb64u(options["user"]["id"])
        client_data = self._client_data("webauthn.create", options["challenge"])
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {},
                                   "authData": self._auth_data(attested=True)})
        return {"id": b64u(self.credential_id), "rawId": b64u(self.credential_id),
                "type": "public-key",
                "response": {"clientDataJSON": b64u(client_data),
                             "attestationObject": b64u(attestation),
                             "transports": ["internal"]},
                "clientExtensionResults": {}}

    def get(self, options: dict[str, Any], *, origin: str | None = None,
            bump: int = 1, cross_origin: bool = False) -> dict[str, Any]:
        """What ``navigator.credentials.get`` returns, as JSON (the counter grows by ``bump``)."""
        self.sign_count += bump
        client_data = self._client_data("webauthn.get", options["challenge"], origin,
                                        cross_origin)
        auth_data = self._auth_data(attested=False)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return {"id": b64u(self.credential_id), "rawId": b64u(self.credential_id),
                "type": "public-key",
                "response": {"clientDataJSON": b64u(client_data),
                             "authenticatorData": b64u(auth_data),
                             "signature": b64u(signature),
                             "userHandle": b64u(self.user_handle) if self.user_handle else None},
                "clientExtensionResults": {}}

    def clone(self) -> SoftAuthenticator:
        """The same key and counter on a second device (what a cloned authenticator is)."""
        return SoftAuthenticator(self.origin, self.rp_id, self.key, self.credential_id,
                                 self.sign_count, self.user_handle, self.user_verified)
