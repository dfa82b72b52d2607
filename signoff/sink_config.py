"""Where the audit sink delivers entries (``SIGNOFF_AUDIT_SINKS``, a JSON list).

Kept apart from :mod:`signoff.audit` so the settings can validate destinations at start
without importing the audit log. Example::

    SIGNOFF_AUDIT_SINKS='[
      {"kind": "webhook", "name": "siem", "url": "https://siem.example.com/hook",
       "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"},
      {"kind": "splunk", "name": "splunk", "url": "https://splunk.example.com:8088",
       "token": "…", "index": "security"},
      {"kind": "file", "name": "archive", "path": "/var/log/signoff/audit.jsonl"}]'
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr


class _Sink(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # The destination's name: its cursor, lease and metrics labels use it.
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    timeout: float = Field(default=10.0, gt=0, le=300)


class WebhookSink(_Sink):
    """An HTTP endpoint; each delivery is signed per Standard Webhooks (webhook-id,
    webhook-timestamp, webhook-signature: v1,HMAC-SHA256)."""

    kind: Literal["webhook"]
    url: str = Field(pattern=r"^https?://")
    secret: SecretStr  # whsec_<base64>, as Standard Webhooks prescribes


class SplunkSink(_Sink):
    """Splunk HTTP Event Collector (``/services/collector/event``)."""

    kind: Literal["splunk"]
    url: str = Field(pattern=r"^https?://")
    token: SecretStr
    index: str | None = None
    sourcetype: str = "signoff:audit"


class FileSink(_Sink):
    """JSON lines, one CloudEvent per line, rotated at ``max_bytes`` (``keep`` old files)."""

    kind: Literal["file"]
    path: Path
    max_bytes: int = Field(default=100_000_000, ge=1024)
    keep: int = Field(default=10, ge=1)


SinkConfig = Annotated[WebhookSink | SplunkSink | FileSink, Field(discriminator="kind")]
