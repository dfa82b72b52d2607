"""Replacement strategies: redact, partial, pseudonymize, hash."""

from __future__ import annotations

import hashlib
import hmac
import re

from signoff.masking.profile import Strategy

_NON_DIGIT = re.compile(r"\D")
_NON_ALNUM = re.compile(r"[^0-9A-Za-z]")
_DIGIT_ENTITIES = frozenset({"CREDIT_CARD", "PHONE", "US_SSN", "BANK_ACCOUNT"})


def canonical(entity: str, value: str) -> str:
    """The form two spellings of one value share: ``+1 (415) 555-0132`` = ``4155550132``…"""
    if entity in _DIGIT_ENTITIES:
        ds = _NON_DIGIT.sub("", value)
        if entity == "PHONE" and len(ds) == 11 and ds.startswith("1"):
            ds = ds[1:]
        return ds or value
    if entity == "IBAN":
        return _NON_ALNUM.sub("", value).upper()
    if entity in ("EMAIL", "IP_ADDRESS", "MAC_ADDRESS"):
        return value.strip().lower()
    return value.strip()


def _digest(key: bytes, label: str, entity: str, value: str) -> str:
    msg = f"{label}\x00{entity}\x00{canonical(entity, value)}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def redact(entity: str) -> str:
    return f"[{entity}]"


def pseudonym(key: bytes, entity: str, value: str) -> str:
    """``<EMAIL_3f9a2c>``: HMAC-SHA256(key, entity + canonical value), first 6 hex digits."""
    return f"<{entity}_{_digest(key, 'pseudonym', entity, value)[:6]}>"


def hashed(key: bytes, entity: str, value: str) -> str:
    """``<EMAIL#9f86d081884c7d65>``: a longer keyed digest (not a bare SHA-256, which a
    dictionary of every SSN or phone number would reverse)."""
    return f"<{entity}#{_digest(key, 'hash', entity, value)[:16]}>"


def _stars(n: int) -> str:
    return "*" * max(4, n)


def partial(entity: str, value: str) -> str | None:
    """A partly visible form, or None where the entity has none (secrets never do)."""
    v = value.strip()
    if entity in ("CREDIT_CARD", "BANK_ACCOUNT", "PHONE", "US_SSN", "ID_NUMBER"):
        ds = _NON_DIGIT.sub("", v)
        if len(ds) < 8:
            return None
        if entity == "US_SSN":
            return f"***-**-{ds[-4:]}"
        return f"****{ds[-4:]}"
    if entity == "IBAN":
        compact = _NON_ALNUM.sub("", v).upper()
        if len(compact) < 12:
            return None
        return f"{compact[:2]}**{'*' * 4}{compact[-4:]}"
    if entity == "EMAIL" and "@" in v:
        local, _, domain = v.rpartition("@")
        if not local:
            return None
        return f"{local[0]}***@{domain}"
    if entity == "PERSON":
        words = [w for w in re.split(r"\s+", v) if w]
        if not words:
            return None
        return " ".join(f"{w[0]}." for w in words)
    if entity == "IP_ADDRESS" and v.count(".") == 3:
        a, b, _, _ = v.split(".")
        return f"{a}.{b}.*.*"
    if entity == "DATE_OF_BIRTH":
        year = re.search(r"(?:19|20)\d\d", v)
        return f"**/**/{year.group(0)}" if year else None
    return None


def apply(strategy: Strategy, entity: str, value: str, key: bytes, fallback: Strategy = Strategy.REDACT) -> tuple[str, Strategy]:
    """The replacement for ``value`` and the strategy that actually applied."""
    if strategy is Strategy.PARTIAL:
        shown = partial(entity, value)
        if shown is not None and shown != value and value.strip() not in shown:
            return shown, Strategy.PARTIAL
        strategy = fallback if fallback is not Strategy.PARTIAL else Strategy.REDACT
    if strategy is Strategy.PSEUDONYMIZE:
        return pseudonym(key, entity, value), strategy
    if strategy is Strategy.HASH:
        return hashed(key, entity, value), strategy
    return redact(entity), Strategy.REDACT
