"""Encryption at rest for original payloads: AES-256-GCM with a keyring.

Tokens are ``v1.{kid}.{nonce}.{ciphertext}`` (base64url). The first key of the ring
encrypts; every key decrypts, so keys rotate without losing old requests. The request id is
bound as associated data: a ciphertext moved to another request does not decrypt.

Rotation: put the new key first in ``SIGNOFF_DATA_KEYS`` (``k2:…,k1:…``), run
``signoff keys rewrap`` to re-encrypt what ``k1`` sealed, then drop ``k1``. Each encryption
uses a fresh random 96-bit nonce; at 2**32 encryptions under one key the nonce collision
bound NIST SP 800-38D asks for is reached, which is far beyond one key's life here.
"""

from __future__ import annotations

import base64
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class DecryptError(ValueError):
    """The token is malformed, its key is unknown, or it was tampered with."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encrypt(ring: dict[str, bytes], plaintext: bytes, aad: bytes) -> str:
    """Encrypt with the ring's first (active) key."""
    kid, key = next(iter(ring.items()))
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, plaintext, aad)
    return f"v1.{kid}.{_b64e(nonce)}.{_b64e(ct)}"


def decrypt(ring: dict[str, bytes], token: str, aad: bytes) -> bytes:
    """Decrypt a token made by :func:`encrypt` with any key still in the ring."""
    try:
        version, kid, nonce, ct = token.split(".")
    except ValueError as exc:
        raise DecryptError("malformed ciphertext") from exc
    if version != "v1":
        raise DecryptError(f"unknown ciphertext version {version!r}")
    key = ring.get(kid)
    if key is None:
        raise DecryptError(f"data key {kid!r} is not configured")
    try:
        return AESGCM(key).decrypt(_b64d(nonce), _b64d(ct), aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptError("ciphertext failed authentication") from exc


def key_id(token: str) -> str:
    """The kid a token was encrypted with (for re-encryption after rotation)."""
    parts = token.split(".")
    if len(parts) != 4:
        raise DecryptError("malformed ciphertext")
    return parts[1]


def active_kid(ring: dict[str, bytes]) -> str:
    """The id of the key that encrypts (the ring's first)."""
    return next(iter(ring))


def rewrap(ring: dict[str, bytes], token: str, aad: bytes) -> str | None:
    """Re-encrypt ``token`` under the active key when another key sealed it.

    Returns:
        The new token, or None when it is already under the active key.

    Raises:
        DecryptError: the token does not decrypt with the ring (its key was dropped too early,
            or it was tampered with).
    """
    if key_id(token) == active_kid(ring):
        return None
    return encrypt(ring, decrypt(ring, token, aad), aad)
