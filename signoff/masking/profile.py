"""Masking profiles: what the policy file's ``masking:`` section says.

A policy file has::

    masking:
      detectors: [...]            # custom detectors shared by every profile
      profiles:
        default: {...}            # a MaskingProfile each
        finance: {...}

and a rule refers to a profile by name and may list ``disable_detectors``. See docs/masking.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from signoff.masking.validators import VALIDATORS


class Strategy(str, Enum):
    """How a detected value is replaced."""

    REDACT = "redact"  # [EMAIL]
    PARTIAL = "partial"  # ****1234, j***@acme.com
    PSEUDONYMIZE = "pseudonymize"  # <EMAIL_3f9a2c>, keyed HMAC, stable within a key
    HASH = "hash"  # <EMAIL#9f86d081884c7d65>, longer keyed digest for joining with other systems


class CustomDetector(BaseModel):
    """A detector declared in the policy file: a regex (with an optional validator) or a deny-list.

    ``pattern`` is a Python regex; if it has a group named ``value`` (or exactly one group),
    only that part is masked. ``validator`` names a built-in check (``luhn``, ``iban``,
    ``us_ssn``, ``aba_routing``, ``ipv4``, ``ipv6``, ``mac``, ``nhs``, ``credit_card``).
    ``deny_list`` masks these terms wherever they occur as whole words. ``context`` words, if
    given, must occur within 48 characters before the match.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    entity: str = Field(default="CUSTOM", pattern=r"^[A-Z][A-Z0-9_]{0,47}$")
    pattern: str | None = None
    validator: str | None = None
    deny_list: list[str] = Field(default_factory=list)
    case_sensitive: bool = False
    context: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.9, ge=0.0, le=1.0)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regex: {exc}") from exc
        return value

    @field_validator("validator")
    @classmethod
    def _known_validator(cls, value: str | None) -> str | None:
        if value is not None and value not in VALIDATORS:
            raise ValueError(f"unknown validator {value!r}; known: {', '.join(sorted(VALIDATORS))}")
        return value

    @model_validator(mode="after")
    def _has_something(self) -> CustomDetector:
        if not self.pattern and not self.deny_list:
            raise ValueError("a custom detector needs a pattern or a deny_list")
        return self


class MaskingProfile(BaseModel):
    """One view of a payload: which strategy applies to what, and for whom.

    - ``strategy``: the default for every entity (``redact``).
    - ``entities``: per-entity overrides, e.g. ``{EMAIL: pseudonymize, CREDIT_CARD: partial}``.
    - ``partial_groups``: viewer groups that may see ``partial`` values; everyone else gets
      ``partial_fallback`` (``redact``) instead. ``"*"`` means every viewer.
    - ``mask_keys``: key names (matched case/separator-insensitively) or JSON paths
      (``$.params.*.note``) whose values are always masked whole.
    - ``keep_keys``: key names or paths never masked by personal-data detectors (credentials
      in well-known formats are still masked there).
    - ``disabled_detectors`` (alias ``disable_detectors``): detector ids or entity names
      switched off (``phone``, ``PERSON``, ``ner``).
    - ``detectors``: custom detectors for this profile only.
    - ``ner``: whether spaCy NER runs on prose fields.
    - ``min_confidence``: findings below this are ignored.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = "default"
    strategy: Strategy = Strategy.REDACT
    entities: dict[str, Strategy] = Field(default_factory=dict)
    partial_groups: list[str] = Field(default_factory=list)
    partial_fallback: Strategy = Strategy.REDACT
    mask_keys: list[str] = Field(default_factory=list)
    keep_keys: list[str] = Field(default_factory=list)
    disabled_detectors: list[str] = Field(default_factory=list, alias="disable_detectors")
    detectors: list[CustomDetector] = Field(default_factory=list)
    ner: bool = True
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)

    @field_validator("entities")
    @classmethod
    def _upper(cls, value: dict[str, Strategy]) -> dict[str, Strategy]:
        return {k.upper(): s for k, s in value.items()}

    @field_validator("partial_fallback")
    @classmethod
    def _fallback_not_partial(cls, value: Strategy) -> Strategy:
        if value is Strategy.PARTIAL:
            raise ValueError("partial_fallback must be redact, pseudonymize or hash")
        return value

    def strategy_for(self, entity: str, viewer_groups: Iterable[str] = ()) -> Strategy:
        """The strategy for ``entity`` as seen by a viewer in ``viewer_groups``."""
        chosen = self.entities.get(entity, self.strategy)
        if chosen is Strategy.PARTIAL:
            allowed = set(self.partial_groups)
            if "*" not in allowed and not allowed.intersection(viewer_groups):
                return self.partial_fallback
        return chosen


DEFAULT_PROFILE = MaskingProfile()


class MaskingConfig(BaseModel):
    """The policy file's top-level ``masking:`` section."""

    model_config = ConfigDict(extra="forbid")

    profiles: dict[str, MaskingProfile] = Field(default_factory=dict)
    detectors: list[CustomDetector] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("profiles"), dict):
            profiles = {}
            for name, body in data["profiles"].items():
                if isinstance(body, dict) and "name" not in body:
                    body = {**body, "name": name}
                profiles[name] = body
            data = {**data, "profiles": profiles}
        return data

    def profile(self, name: str = "default", disable_detectors: Iterable[str] = ()) -> MaskingProfile:
        """Profile ``name`` with the shared detectors added and a rule's ``disable_detectors``."""
        base = self.profiles.get(name)
        if base is None:
            if name != "default":
                raise KeyError(f"no masking profile {name!r}")
            base = MaskingProfile()
        own = {x.id for x in base.detectors}
        extra = [d for d in self.detectors if d.id not in own]
        return base.model_copy(
            update={
                "detectors": [*base.detectors, *extra],
                "disabled_detectors": [*base.disabled_detectors, *disable_detectors],
            }
        )
