"""What a component needs of the process's runtime, as protocols.

:class:`signoff.runtime.Runtime` builds the store, audit log, key rings and the rest and is
handed to every component; the modules it builds take these protocols instead of naming
``Runtime``, so nothing it composes depends on it (no import cycle, not even for types).
"""

from __future__ import annotations

from typing import Any, Protocol

from signoff.keys import Keys
from signoff.settings import Settings


class StoreContext(Protocol):
    """Redis, the key builder and the settings: what every Redis-backed component reads."""

    @property
    def redis(self) -> Any:
        """redis-py client with ``decode_responses=True``."""
        ...

    @property
    def keys(self) -> Keys: ...

    @property
    def settings(self) -> Settings: ...
