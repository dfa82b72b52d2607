"""The Microsoft Entra tenants whose Teams users may use this bot (fail closed).

``SIGNOFF_TEAMS_ALLOWED_TENANTS`` lists tenant ids (comma-separated), or ``*`` for any
tenant. When it is empty, only ``MICROSOFT_APP_TENANT_ID`` is allowed; when that is empty
too, no tenant is: a multi-tenant bot registration must say whom it serves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from signoff.settings import Settings


@dataclass(frozen=True)
class TenantPolicy:
    """Which tenants are allowed.

    Attributes:
        allowed: lower-cased tenant ids.
        any_tenant: ``*`` was configured.
    """

    allowed: frozenset[str]
    any_tenant: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> TenantPolicy:
        """Read the allow-list from the settings."""
        parts = {p.strip().lower() for p in settings.teams_allowed_tenants.split(",")}
        parts.discard("")
        if "*" in parts:
            return cls(frozenset(parts - {"*"}), any_tenant=True)
        if not parts and settings.microsoft_app_tenant_id:
            parts = {settings.microsoft_app_tenant_id.strip().lower()}
        return cls(frozenset(parts))

    @property
    def closed(self) -> bool:
        """True when no tenant at all is allowed (a configuration mistake worth logging)."""
        return not self.any_tenant and not self.allowed

    def allows(self, tenant_id: str | None) -> bool:
        """Whether activities from ``tenant_id`` are served (an unknown tenant never is)."""
        if not tenant_id:
            return False
        return self.any_tenant or tenant_id.strip().lower() in self.allowed


def activity_tenant(activity: Any) -> str | None:
    """The tenant an activity comes from, or ``None`` when it is missing or inconsistent.

    Teams states it twice (``conversation.tenantId`` and ``channelData.tenant.id``); when
    both are present they must agree.
    """
    conversation = getattr(activity, "conversation", None)
    from_conversation = getattr(conversation, "tenant_id", None) if conversation else None
    channel_data = getattr(activity, "channel_data", None)
    from_channel = None
    if isinstance(channel_data, dict):
        tenant = channel_data.get("tenant")
        if isinstance(tenant, dict) and isinstance(tenant.get("id"), str):
            from_channel = tenant["id"]
    if from_conversation and from_channel and (
            from_conversation.strip().lower() != from_channel.strip().lower()):
        return None
    value = from_conversation or from_channel
    return str(value) if value else None
