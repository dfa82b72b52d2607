"""Reversible pseudonymization for LLM prompts: ``sanitize(text) -> (safe_text, vault)``.

The LLM sees only placeholders like ``<EMAIL_3f9a2c>``; ``vault.restore(llm_output)`` puts the
originals back into what it wrote. The vault holds the originals: keep it where the payload's
plaintext may be kept (never in a log, a card or the audit).
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from signoff.masking.engine import Masker, _Leaf, _Ref
from signoff.masking.profile import MaskingProfile, Strategy

_PLACEHOLDER = re.compile(r"<?([A-Z][A-Z0-9_]*_[0-9a-f]{6})>?")
PSEUDONYM_PROFILE = MaskingProfile(name="sanitize", strategy=Strategy.PSEUDONYMIZE)


class Vault:
    """Placeholder -> original value. JSON-serialisable with :meth:`to_dict` / :meth:`from_dict`."""

    def __init__(self, mapping: dict[str, str] | None = None) -> None:
        self.mapping: dict[str, str] = dict(mapping or {})

    def __len__(self) -> int:
        return len(self.mapping)

    def __contains__(self, placeholder: object) -> bool:
        return placeholder in self.mapping

    def restore(self, text: str) -> str:
        """``text`` with every placeholder (``<EMAIL_3f9a2c>``, or ``EMAIL_3f9a2c`` if the model
        dropped the brackets) replaced by the original value."""
        if not self.mapping or not text:
            return text

        def sub(m: re.Match[str]) -> str:
            token = f"<{m.group(1)}>"
            original = self.mapping.get(token)
            return m.group(0) if original is None else original

        return _PLACEHOLDER.sub(sub, text)

    def update(self, other: Vault) -> None:
        self.mapping.update(other.mapping)

    def to_dict(self) -> dict[str, Any]:
        return {"version": 1, "mapping": dict(self.mapping)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Vault:
        mapping = data.get("mapping", data)
        if not isinstance(mapping, dict):
            raise ValueError("not a vault")
        return cls({str(k): str(v) for k, v in mapping.items() if k != "version"})


_shared: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _default_masker() -> Any:
    with _shared_lock:
        if "masker" not in _shared:
            _shared["masker"] = Masker()
        return _shared["masker"]


def sanitize(text: str, key: bytes | str | None = None, masker: Any = None, profile: MaskingProfile | None = None) -> tuple[str, Vault]:
    """Replace every detected value in ``text`` by a placeholder; return the text and a vault.

    With the same ``key`` the same value gets the same placeholder across calls (without one a
    fresh random key is used per call, so placeholders cannot be linked across calls).
    """
    m = masker or _default_masker()
    k = key.encode() if isinstance(key, str) else (key or os.urandom(32))
    prof = profile or PSEUDONYM_PROFILE
    job = m._job(prof, (), ())
    job.leaves.append(_Leaf(text, "$", None, None, False))
    job.skeleton = _Ref(0)
    mapping: dict[str, str] = {}
    result = m._finish([job], vault=mapping, key=k)[0]
    return result.masked, Vault(mapping)
