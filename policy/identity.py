"""One identity rule: how people, agents and environment names are compared, everywhere.

Every place that compares who someone is or where an action runs (policy matching,
separation of duties, flood limits, routing, listings, votes, the directory, API tokens,
grants) goes through these functions, so ``Frank@Example.com ``, ``frank@example.com`` and
an alias of Frank's are one person, ``Agent:Export-Bot`` and ``agent:export-bot`` one agent,
and ``PROD`` and ``prod`` one environment. There is no second, looser spelling anywhere.

The rule, for every kind of identity:

1. Unicode NFKC (full-width and compatibility forms fold to plain letters: full-width PROD is
   ``prod``);
2. invisible format characters (zero-width spaces and joiners, bidi marks) are dropped;
3. surrounding white space is stripped;
4. the text is case-folded (``str.casefold``, which also folds ``ß`` and friends).

People are then resolved through the directory: an alias listed on a person's entry
(``aliases:``) maps to that person's email. Nothing here needs anything but the standard
library, so the agent SDK's grant check uses the same rule as the server.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = [
    "AliasResolver",
    "canonical",
    "canonical_agent",
    "canonical_context",
    "canonical_email",
    "canonical_environment",
    "canonical_person",
    "same_agent",
    "same_person",
]


def canonical(value: str | None) -> str:
    """The one normal form of an identity string (see the module's rule); ``""`` for None."""
    if not value:
        return ""
    if value.isascii():
        # ASCII is its own NFKC form, has no format characters, and folds like lower().
        return value.strip().lower()
    text = unicodedata.normalize("NFKC", value)
    # Format characters (category Cf: zero-width space/joiner, bidi marks, soft hyphen) are
    # invisible on every card yet make two spellings differ byte for byte.
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return text.strip().casefold()


def canonical_email(value: str | None) -> str:
    """An email address in its one comparable form (no directory lookup)."""
    return canonical(value)


def canonical_agent(value: str | None) -> str:
    """An agent identity in its one comparable form."""
    return canonical(value)


def canonical_environment(value: Any) -> str | None:
    """``context.environment`` in its one comparable form (None when absent or not text)."""
    if not isinstance(value, str):
        return None
    return canonical(value)


class AliasResolver(Protocol):
    """What :func:`canonical_person` needs from a directory."""

    def resolve_alias(self, email: str) -> str | None: ...


def canonical_person(value: str | None, directory: AliasResolver | None = None) -> str:
    """A person's canonical id: the canonical email, or the email an alias belongs to."""
    email = canonical_email(value)
    if email and directory is not None:
        return directory.resolve_alias(email) or email
    return email


def same_person(a: str | None, b: str | None, directory: AliasResolver | None = None) -> bool:
    """Whether two spellings name one person (an empty value is nobody)."""
    ca, cb = canonical_person(a, directory), canonical_person(b, directory)
    return bool(ca) and ca == cb


def same_agent(a: str | None, b: str | None) -> bool:
    """Whether two spellings name one agent (an empty value is no agent)."""
    ca, cb = canonical_agent(a), canonical_agent(b)
    return bool(ca) and ca == cb


def canonical_context(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """A request's context with its ``environment`` in canonical form (other keys as sent)."""
    out = dict(context or {})
    env = out.get("environment")
    if isinstance(env, str):
        out["environment"] = canonical(env)
    return out
