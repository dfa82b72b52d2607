"""The bridge to the masking engine, which owns the meaning of the ``masking:`` section.

The policy package stays importable without it: when ``signoff.masking`` is not installed (or
not built yet) the section is kept as plain dicts and checked only for shape.
"""

from __future__ import annotations

import importlib
from typing import Any

from policy.parser import MaskingValidator


def engine_validator() -> MaskingValidator | None:
    """``MaskingConfig.model_validate`` of the masking engine, or ``None`` if unavailable."""
    try:
        module = importlib.import_module("signoff.masking.profile")
    except ImportError:
        return None
    config = getattr(module, "MaskingConfig", None)
    validate = getattr(config, "model_validate", None)
    if validate is None:
        return None

    def _validate(section: dict[str, Any]) -> object:
        return validate(section)

    return _validate
