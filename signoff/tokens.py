"""API credentials: approver tokens (a human identity) and agent tokens (may only ask).

Tokens are random (``so_p_…`` for people, ``so_a_…`` for agents) and stored only as their
SHA-256; a lookup hashes what was presented and reads that one hash field, so the token's
value is never compared byte by byte and never stored.

A person token speaks for a person only while the directory lists them: every lookup asks
the live policy directory again (aliases resolved, :mod:`policy.identity`), so someone removed
from the directory can no longer read or decide with a token issued before, and no token
needs revoking by hand when people leave.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol

import redis

from policy.identity import canonical_agent, canonical_email
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


class PersonDirectory(Protocol):
    """What a token lookup needs from the policy directory."""

    def canonical_person(self, value: str | None) -> str: ...

    def person(self, email: str | None) -> object | None: ...


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Create, look up and revoke API tokens.

    Args:
        client: Redis.
        keys: the deployment's key builder.
        directory: returns the live policy directory; a person token resolves only while it
            lists the person (None: no check, for tools that only create or list tokens).
    """

    def __init__(self, client: redis.Redis, keys: Keys,
                 directory: Callable[[], PersonDirectory] | None = None) -> None:
        self.r = client
        self.keys = keys
        self.directory = directory

    def create(self, kind: TokenKind, subject: str, label: str = "") -> str:
        """Issue a token; the plaintext is returned once and never stored."""
        prefix = "so_p_" if kind is TokenKind.PERSON else "so_a_"
        token = prefix + secrets.token_urlsafe(32)
        if kind is TokenKind.PERSON:
            subject = (self.directory().canonical_person(subject) if self.directory
                       else canonical_email(subject))
        else:
            subject = canonical_agent(subject)
        record = {"kind": kind.value, "subject": subject, "created_at": time.time(),
                  "label": label}
        self.r.hset(self.keys.api_tokens, _digest(token), json.dumps(record))
        return token

    def lookup(self, token: str | None) -> TokenInfo | None:
        """The identity behind a presented token, or None (unknown token, or a person the
        directory no longer lists: checked on every call)."""
        if not token:
            return None
        digest = _digest(token)
        raw = self.r.hget(self.keys.api_tokens, digest)
        if not raw:
            return None
        data = json.loads(raw)
        info = TokenInfo(TokenKind(data["kind"]), data["subject"], data["created_at"],
                         data.get("label", ""), digest)
        if info.kind is TokenKind.PERSON:
            if self.directory is None:
                return None  # fail closed: a person token means nothing without a directory
            directory = self.directory()
            if directory.person(info.subject) is None:
                return None
            return replace(info, subject=directory.canonical_person(info.subject))
        return replace(info, subject=canonical_agent(info.subject))

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
