"""Settings, read once from the environment (and ``.env``) into a frozen object.

Components never read ``os.environ``; they get a :class:`Settings`. Every field is listed in
``.env.example`` with a comment (``tests/test_settings.py`` checks that the two agree).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from signoff.keys import DEFAULT_PREFIX, Keys

BOT_FRAMEWORK_OPENID_METADATA = (
    "https://login.botframework.com/v1/.well-known/openidconfiguration"
)

# Secrets a deployment must provide when it talks to an external Redis; in embedded mode
# (no REDIS_URL) they are generated once into .signoff/secrets.json so `signoff demo` needs
# no configuration.
GENERATED_SECRETS = ("hmac_secret", "data_keys", "masking_key")


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


class Settings(BaseSettings):
    """Signoff's configuration. Environment names are given by each field's alias."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", frozen=True, extra="ignore",
        populate_by_name=True,
    )

    # --- Redis --------------------------------------------------------------------------
    redis_url: str | None = Field(default=None, validation_alias=_alias("REDIS_URL", "redis_url"))
    key_prefix: str = Field(
        default=DEFAULT_PREFIX, validation_alias=_alias("SIGNOFF_KEY_PREFIX", "key_prefix")
    )
    data_dir: Path = Field(
        default=Path(".signoff"), validation_alias=_alias("SIGNOFF_DATA_DIR", "data_dir")
    )
    redis_wait_replicas: int = Field(
        default=0, ge=0,
        validation_alias=_alias("SIGNOFF_REDIS_WAIT_REPLICAS", "redis_wait_replicas"),
    )
    redis_wait_timeout_ms: int = Field(
        default=1000, ge=0,
        validation_alias=_alias("SIGNOFF_REDIS_WAIT_TIMEOUT_MS", "redis_wait_timeout_ms"),
    )

    # --- web ----------------------------------------------------------------------------
    host: str = Field(default="127.0.0.1", validation_alias=_alias("HOST", "host"))
    port: int = Field(default=8000, validation_alias=_alias("PORT", "port"))
    public_url: str | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_PUBLIC_URL", "public_url")
    )

    # --- policy -------------------------------------------------------------------------
    policy_path: Path = Field(
        default=Path("examples/policy.yaml"), validation_alias=_alias("SIGNOFF_POLICY", "policy_path")
    )

    # --- secrets ------------------------------------------------------------------------
    hmac_secret: SecretStr | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_HMAC_SECRET", "hmac_secret")
    )
    data_keys: SecretStr | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_DATA_KEYS", "data_keys")
    )
    masking_key: SecretStr | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_MASKING_KEY", "masking_key")
    )

    # --- lifecycle ----------------------------------------------------------------------
    reply_ttl: int = Field(default=86400, validation_alias=_alias("SIGNOFF_REPLY_TTL", "reply_ttl"))
    record_ttl: int = Field(
        default=30 * 86400, validation_alias=_alias("SIGNOFF_RECORD_TTL", "record_ttl")
    )
    max_request_bytes: int = Field(
        default=1_000_000, validation_alias=_alias("SIGNOFF_MAX_REQUEST_BYTES", "max_request_bytes")
    )
    grant_ttl: int = Field(default=900, validation_alias=_alias("SIGNOFF_GRANT_TTL", "grant_ttl"))
    audit_checkpoint_interval: float = Field(
        default=300.0,
        validation_alias=_alias("SIGNOFF_AUDIT_CHECKPOINT_INTERVAL", "audit_checkpoint_interval"),
    )
    intake_reclaim_idle_ms: int = Field(
        default=30_000,
        validation_alias=_alias("SIGNOFF_INTAKE_RECLAIM_IDLE_MS", "intake_reclaim_idle_ms"),
    )
    repair_after: float = Field(
        default=30.0, validation_alias=_alias("SIGNOFF_REPAIR_AFTER", "repair_after")
    )
    worker_maintenance_interval: int = Field(
        default=60,
        validation_alias=_alias("SIGNOFF_WORKER_MAINTENANCE_INTERVAL", "worker_maintenance_interval"),
    )
    log_level: str = Field(default="INFO", validation_alias=_alias("LOG_LEVEL", "log_level"))

    # --- Slack --------------------------------------------------------------------------
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=_alias("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None, validation_alias=_alias("SLACK_SIGNING_SECRET", "slack_signing_secret")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=_alias("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        validation_alias=_alias("SIGNOFF_SLACK_API_URL", "slack_api_url"),
    )

    # --- Microsoft Teams ----------------------------------------------------------------
    microsoft_app_id: str | None = Field(
        default=None, validation_alias=_alias("MICROSOFT_APP_ID", "microsoft_app_id")
    )
    microsoft_app_password: SecretStr | None = Field(
        default=None, validation_alias=_alias("MICROSOFT_APP_PASSWORD", "microsoft_app_password")
    )
    microsoft_app_tenant_id: str | None = Field(
        default=None, validation_alias=_alias("MICROSOFT_APP_TENANT_ID", "microsoft_app_tenant_id")
    )
    microsoft_app_type: str = Field(
        default="MultiTenant", validation_alias=_alias("MICROSOFT_APP_TYPE", "microsoft_app_type")
    )
    teams_openid_metadata_url: str = Field(
        default=BOT_FRAMEWORK_OPENID_METADATA,
        validation_alias=_alias("SIGNOFF_TEAMS_OPENID_METADATA_URL", "teams_openid_metadata_url"),
    )
    teams_allowed_tenants: str = Field(
        default="", validation_alias=_alias("SIGNOFF_TEAMS_ALLOWED_TENANTS", "teams_allowed_tenants")
    )
    teams_login_url: str = Field(
        default="https://login.microsoftonline.com",
        validation_alias=_alias("SIGNOFF_TEAMS_LOGIN_URL", "teams_login_url"),
    )
    teams_conversations: str = Field(
        default="", validation_alias=_alias("SIGNOFF_TEAMS_CONVERSATIONS", "teams_conversations")
    )

    # --- web inbox: OpenID Connect sign-in (authorization code + PKCE) --------------------
    oidc_issuer: str | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_OIDC_ISSUER", "oidc_issuer")
    )
    oidc_client_id: str | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_OIDC_CLIENT_ID", "oidc_client_id")
    )
    oidc_client_secret: SecretStr | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_OIDC_CLIENT_SECRET", "oidc_client_secret")
    )
    oidc_redirect_url: str | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_OIDC_REDIRECT_URL", "oidc_redirect_url")
    )
    oidc_scopes: str = Field(
        default="openid email profile",
        validation_alias=_alias("SIGNOFF_OIDC_SCOPES", "oidc_scopes"),
    )
    oidc_email_claim: str = Field(
        default="email", validation_alias=_alias("SIGNOFF_OIDC_EMAIL_CLAIM", "oidc_email_claim")
    )
    inbox_session_ttl: int = Field(
        default=8 * 3600,
        validation_alias=_alias("SIGNOFF_INBOX_SESSION_TTL", "inbox_session_ttl"),
    )
    demo_sign_in: bool = Field(
        default=False, validation_alias=_alias("SIGNOFF_DEMO_SIGN_IN", "demo_sign_in")
    )

    @field_validator("key_prefix")
    @classmethod
    def _prefix_ok(cls, value: str) -> str:
        if not value or any(c.isspace() for c in value):
            raise ValueError("SIGNOFF_KEY_PREFIX must be non-empty without spaces")
        return value

    # --- derived ------------------------------------------------------------------------
    @cached_property
    def keys(self) -> Keys:
        """The key builder for this deployment's prefix."""
        return Keys(self.key_prefix)

    @property
    def embedded_redis(self) -> bool:
        """True when Signoff starts its own redis-server (no ``REDIS_URL``)."""
        return not self.redis_url

    def hmac_key(self) -> bytes:
        """Key for Signoff's own HMAC in button payloads."""
        return _require(self.hmac_secret, "SIGNOFF_HMAC_SECRET").encode()

    def pseudonym_key(self) -> bytes:
        """Key for keyed pseudonyms in masked views."""
        return _require(self.masking_key, "SIGNOFF_MASKING_KEY").encode()

    def data_keyring(self) -> dict[str, bytes]:
        """AES-256-GCM data keys, ``kid -> key``; the first one encrypts, all decrypt.

        ``SIGNOFF_DATA_KEYS`` is ``kid:base64key[,kid:base64key...]``.
        """
        raw = _require(self.data_keys, "SIGNOFF_DATA_KEYS")
        ring: dict[str, bytes] = {}
        for part in raw.split(","):
            part = part.strip()
            if not part:
                continue
            kid, _, b64 = part.partition(":")
            key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
            if not kid or len(key) != 32:
                raise ValueError("SIGNOFF_DATA_KEYS: each entry is kid:base64 of 32 bytes")
            ring[kid] = key
        if not ring:
            raise ValueError("SIGNOFF_DATA_KEYS is empty")
        return ring

    def with_generated_secrets(self) -> Settings:
        """Fill missing secrets from ``{data_dir}/secrets.json``, creating it (mode 0600).

        Only for the embedded Redis (local use and the demo): with an external Redis every
        process must share the same secrets, so they must come from the environment.
        """
        missing = [name for name in GENERATED_SECRETS if getattr(self, name) is None]
        if not missing:
            return self
        if not self.embedded_redis:
            env = {"hmac_secret": "SIGNOFF_HMAC_SECRET", "data_keys": "SIGNOFF_DATA_KEYS",
                   "masking_key": "SIGNOFF_MASKING_KEY"}
            raise ValueError(
                "missing secrets with an external Redis: " + ", ".join(env[m] for m in missing)
            )
        path = self.data_dir / "secrets.json"
        stored: dict[str, str] = {}
        if path.exists():
            stored = json.loads(path.read_text())
        changed = False
        for name in GENERATED_SECRETS:
            if name not in stored:
                stored[name] = _generate(name)
                changed = True
        if changed:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump(stored, fh)
        update: dict[str, Any] = {m: SecretStr(stored[m]) for m in missing}
        return self.model_copy(update=update)


def _generate(name: str) -> str:
    if name == "data_keys":
        return "k1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return secrets.token_urlsafe(32)


def _require(value: SecretStr | None, env: str) -> str:
    if value is None or not value.get_secret_value():
        raise ValueError(f"{env} is not set")
    return value.get_secret_value()


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; ``overrides`` win (tests pass their own values)."""
    return Settings(**overrides)
