"""What the audit package needs of the runtime (see :mod:`signoff.context`)."""

from __future__ import annotations

from typing import Protocol

from signoff.audit.log import AuditLog
from signoff.context import StoreContext
from signoff.signing_keys import KeyRing


class AuditContext(StoreContext, Protocol):
    """Redis, keys and settings, the audit log, and the key ring that signs checkpoints."""

    @property
    def audit(self) -> AuditLog: ...

    @property
    def audit_keys(self) -> KeyRing: ...
