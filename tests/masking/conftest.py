from __future__ import annotations

import pytest

from signoff.masking import Masker


@pytest.fixture(scope="session")
def masker() -> Masker:
    """A masker without NER (fast); NER tests use ``ner_masker``."""
    return Masker(key=b"test key", ner=False)


@pytest.fixture(scope="session")
def ner_masker() -> Masker:
    return Masker(key=b"test key").warm()
