"""Settings: every field documented in .env.example; secrets generated only for embedded use."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from signoff.settings import Settings
from tests.conftest import ROOT


def env_names() -> set[str]:
    names = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.add(str(choices[0]))
    return names


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    text = (ROOT / ".env.example").read_text()
    lines = text.splitlines()
    for name in env_names():
        idx = next((i for i, line in enumerate(lines) if re.match(rf"^{name}=", line)), None)
        assert idx is not None, f"{name} is missing from .env.example"
        assert lines[idx - 1].startswith("#"), f"{name} has no comment above it"


def test_embedded_mode_generates_secrets_once(tmp_path: Path) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    a = s.with_generated_secrets()
    b = Settings(_env_file=None, data_dir=tmp_path).with_generated_secrets()  # type: ignore[call-arg]
    assert a.hmac_key() == b.hmac_key()
    assert len(next(iter(a.data_keyring().values()))) == 32
    assert (tmp_path / "secrets.json").stat().st_mode & 0o777 == 0o600


def test_external_redis_requires_secrets(tmp_path: Path) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path, redis_url="redis://x")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="SIGNOFF_HMAC_SECRET"):
        s.with_generated_secrets()


def test_settings_are_frozen(tmp_path: Path) -> None:
    s = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    with pytest.raises(Exception):
        s.port = 1  # type: ignore[misc]
