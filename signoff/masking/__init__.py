"""Signoff's masking engine: approvers, cards, logs and the audit see what they need, never
the secret.

    from signoff.masking import Masker
    masker = Masker(key=b"pseudonym hmac key").warm()
    result = masker.mask(payload, profile=None, viewer_groups=())
    result.masked, result.findings, result.summary()

See docs/masking.md.
"""

from __future__ import annotations

from signoff.masking.engine import Masker
from signoff.masking.model import Finding, MaskResult
from signoff.masking.profile import (
    DEFAULT_PROFILE,
    CustomDetector,
    MaskingConfig,
    MaskingProfile,
    Strategy,
)
from signoff.masking.vault import Vault, sanitize

__all__ = [
    "DEFAULT_PROFILE",
    "CustomDetector",
    "Finding",
    "MaskResult",
    "Masker",
    "MaskingConfig",
    "MaskingProfile",
    "Strategy",
    "Vault",
    "sanitize",
]
