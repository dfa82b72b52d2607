"""API credentials: approver tokens (a human identity) and agent tokens (may only ask).

Tokens are random (``so_p_…`` for people, ``so_a_…`` for agents) and stored only as their
SHA-256; a lookup hashes what was presented and reads that one hash field, so the token's
value is never compared byte by byte and never stored.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from enum import Enum

import redis

from signoff.keys import Keys


class TokenKind(str, Enum):
    """Who a token speaks for."""

    PERSON = "person"
    AGENT = "agent"


@dataclass(frozen=True)
class TokenInfo:
    """What a token maps to."""

    kind: TokenKind
    subject: str
    created_at: float
    label: str = ""
    token_hash: str = ""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Create, look up and revoke API tokens."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.r = client
        self.keys = keys

    def create(self, kind: TokenKind, subject: str, label: str = "") -> str:
        """Issue a token; the plaintext is returned once and never stored."""
        prefix = "so_p_" if kind is TokenKind.PERSON else "so_a_"
        token = prefix + secrets.token_urlsafe(32)
        subject = subject.strip().lower() if kind is TokenKind.PERSON else subject.strip()
        record = {"kind": kind.value, "subject": subject, "created_at": time.time(),
                  "label": label}
        self.r.hset(self.keys.api_tokens, _digest(token), json.dumps(record))
        return token

    def lookup(self, token: str | None) -> TokenInfo | None:
        """The identity behind a presented token, or None."""
        if not token:
            return None
        digest = _digest(token)
        raw = self.r.hget(self.keys.api_tokens, digest)
        if not raw:
            return None
        data = json.loads(raw)
        return TokenInfo(TokenKind(data["kind"]), data["subject"], data["created_at"],
                         data.get("label", ""), digest)

    def list(self) -> list[TokenInfo]:
        out = []
        for digest, raw in self.r.hgetall(self.keys.api_tokens).items():
            data = json.loads(raw)
            out.append(TokenInfo(TokenKind(data["kind"]), data["subject"], data["created_at"],
                                 data.get("label", ""), digest))
        return sorted(out, key=lambda t: t.created_at)

    def revoke(self, token_hash_prefix: str) -> int:
        """Revoke tokens whose stored hash starts with the given prefix (min 8 chars)."""
        if len(token_hash_prefix) < 8:
            raise ValueError("give at least 8 characters of the token hash")
        gone = [d for d in self.r.hkeys(self.keys.api_tokens) if d.startswith(token_hash_prefix)]
        if gone:
            self.r.hdel(self.keys.api_tokens, *gone)
        return len(gone)
