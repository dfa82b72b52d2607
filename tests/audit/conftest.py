"""The audit suites count entries exactly, so per-decision checkpoints (which add the audit
key's creation entry at the first decision) are off unless a test turns them on."""

from __future__ import annotations

from pathlib import Path

import pytest

from signoff.settings import Settings
from tests.conftest import make_settings


@pytest.fixture
def settings(redis_url: str, tmp_path: Path) -> Settings:
    return make_settings(redis_url, tmp_path / "data", audit_checkpoint_per_decision=False,
                         audit_archive_dir=tmp_path / "archive")
