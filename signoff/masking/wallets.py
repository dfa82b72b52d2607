"""Cryptocurrency wallet addresses, each checked the way its network checks it.

- Bitcoin legacy (``1…``) and P2SH (``3…``): Base58Check, the version byte and the
  double-SHA-256 checksum.
- Bitcoin SegWit (``bc1q…``) and Taproot (``bc1p…``): bech32 / bech32m checksums (BIP 173,
  BIP 350), witness version and program length.
- Ethereum (``0x`` + 40 hex digits): the EIP-55 mixed-case checksum (Keccak-256 of the
  lower-case address) when the address is written in mixed case; an all-lower or all-upper
  address has no checksum to check and counts with a lower confidence.

Base58 and bech32 are a few lines each from their specifications; written here rather than
pulling in a coin library for two checksums. Keccak-256 comes from pycryptodome.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator

from Crypto.Hash import keccak

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}
BTC_BASE58_RE = re.compile(r"(?<![A-Za-z0-9])[13][1-9A-HJ-NP-Za-km-z]{25,34}(?![A-Za-z0-9])")
BECH32_RE = re.compile(r"(?<![A-Za-z0-9])(?:bc1|BC1|tb1|TB1)[02-9ac-hj-np-zAC-HJ-NP-Z]{8,87}(?![A-Za-z0-9])")
ETH_RE = re.compile(r"(?<![A-Za-z0-9])0x[0-9a-fA-F]{40}(?![0-9A-Za-z])")


def base58check(text: str) -> bool:
    """A Base58Check string for a Bitcoin P2PKH (version 0) or P2SH (version 5) address."""
    n = 0
    for c in text:
        i = _B58_INDEX.get(c)
        if i is None:
            return False
        n = n * 58 + i
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big") if n else b""
    raw = b"\x00" * (len(text) - len(text.lstrip("1"))) + raw
    if len(raw) != 25 or raw[0] not in (0x00, 0x05):
        return False
    return hashlib.sha256(hashlib.sha256(raw[:-4]).digest()).digest()[:4] == raw[-4:]


_BECH32_CHARS = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= _GEN[i] if (top >> i) & 1 else 0
    return chk


def bech32_address(text: str) -> bool:
    """A SegWit address (BIP 173 bech32 for version 0, BIP 350 bech32m for 1-16)."""
    if text.lower() != text and text.upper() != text:
        return False
    s = text.lower()
    pos = s.rfind("1")
    hrp, data_part = s[:pos], s[pos + 1 :]
    if hrp not in ("bc", "tb") or len(data_part) < 7:
        return False
    data = [_BECH32_CHARS.find(c) for c in data_part]
    if -1 in data:
        return False
    const = _polymod([ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp] + data)
    version = data[0]
    if version > 16 or const != (1 if version == 0 else 0x2BC830A3):
        return False
    # 5-bit groups to bytes: the witness program's length must be a valid one.
    bits = (len(data) - 7) * 5
    length = bits // 8
    if not 2 <= length <= 40 or (version == 0 and length not in (20, 32)):
        return False
    return True


def eth_address(text: str) -> tuple[bool, bool]:
    """``(valid, checksummed)`` for ``0x`` + 40 hex digits (EIP-55 when mixed case)."""
    body = text[2:]
    if body.lower() == body or body.upper() == body:
        return len(set(body.lower())) > 2, False  # 0x000…0 is a sentinel, not a wallet
    h = keccak.new(digest_bits=256)
    h.update(body.lower().encode())
    digest = h.hexdigest()
    for c, d in zip(body, digest[:40], strict=True):
        if c.isalpha() and (c.isupper() != (int(d, 16) >= 8)):
            return False, False
    return True, True


def find_wallets(text: str) -> Iterator[tuple[int, int, float]]:
    """Every valid wallet address in ``text``."""
    if "1" in text or "3" in text:
        for m in BTC_BASE58_RE.finditer(text):
            if base58check(m.group(0)):
                yield (m.start(), m.end(), 0.95)
    low = text.lower()
    if "bc1" in low or "tb1" in low:
        for m in BECH32_RE.finditer(text):
            if bech32_address(m.group(0)):
                yield (m.start(), m.end(), 0.95)
    if "0x" in low:
        for m in ETH_RE.finditer(text):
            ok, checked = eth_address(m.group(0))
            if ok:
                yield (m.start(), m.end(), 0.95 if checked else 0.8)
