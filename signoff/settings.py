"""Settings, read once from the environment (and ``.env``) into a frozen object.

Components never read ``os.environ``; they get a :class:`Settings`. Every field is listed in
``.env.example`` with a comment (``tests/test_settings.py`` checks that the two agree).

Every value is checked when the object is built, so a process refuses a bad configuration
before it does anything: :class:`Settings` checks formats (URLs, the data keys, secrets long
enough to be secrets); :class:`ServiceSettings`, which the service's processes and the operator
commands load, also checks that what serving needs is there (the secrets with an external
Redis, a readable policy). Each problem is one pydantic error naming its environment variable;
:func:`describe_errors` turns them into the one line per problem the CLI prints.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from functools import cached_property
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    HttpUrl,
    SecretStr,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from signoff.keys import DEFAULT_PREFIX, Keys
from signoff.redis_conn import parse_sentinel_url
from signoff.sink_config import SinkConfig

BOT_FRAMEWORK_OPENID_METADATA = (
    "https://login.botframework.com/v1/.well-known/openidconfiguration"
)

# Secrets a deployment must provide when it talks to an external Redis; in embedded mode
# (no REDIS_URL) they are generated once into .signoff/secrets.json so `signoff demo` needs
# no configuration.
GENERATED_SECRETS = ("hmac_secret", "data_keys", "masking_key")
SECRET_ENV = {"hmac_secret": "SIGNOFF_HMAC_SECRET", "data_keys": "SIGNOFF_DATA_KEYS",
              "masking_key": "SIGNOFF_MASKING_KEY"}
# A key shorter than this is guessable, whatever it looks like (HMAC-SHA256 keys are 32 bytes).
SECRET_MIN_BYTES = 32
SECRETS_HINT = "`signoff secrets` prints a fresh set"
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+sentinel")
REDIS_URL_SHAPE = ("a redis://host:port/db, rediss://host:port/db, unix:///path/redis.sock or "
                   "redis+sentinel://host:port[,host:port]/service URL")
DATA_KEYS_SHAPE = ("kid:key[,kid:key...], each key the URL-safe base64 of 32 random bytes "
                   "and each kid unique")
LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
APP_TYPES = ("MultiTenant", "SingleTenant", "UserAssignedMSI")
_HTTP_URL: TypeAdapter[HttpUrl] = TypeAdapter(HttpUrl)


def _problem(message: str) -> PydanticCustomError:
    """A validation error whose text is exactly ``message`` (no "Value error," prefix)."""
    # The message is a format template for pydantic: braces would be placeholders.
    return PydanticCustomError("signoff_setting", message.replace("{", "(").replace("}", ")"))


def parse_data_keys(raw: str) -> dict[str, bytes]:
    """``kid:base64key[,kid:base64key...]`` -> ``{kid: 32-byte key}`` (first one encrypts).

    Raises:
        ValueError: what is wrong, without any key material.
    """
    ring: dict[str, bytes] = {}
    for number, part in enumerate(raw.split(","), start=1):
        part = part.strip()
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        kid, b64 = kid.strip(), b64.strip()
        if not sep or not kid or not b64:
            raise ValueError(f"entry {number} is not kid:key")
        if kid in ring:
            raise ValueError(f"the kid {kid!r} appears twice")
        try:
            key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
        except (binascii.Error, ValueError):
            raise ValueError(f"the key of {kid!r} is not URL-safe base64") from None
        if len(key) != 32:
            raise ValueError(f"the key of {kid!r} is {len(key)} bytes, not 32")
        ring[kid] = key
    if not ring:
        raise ValueError("it has no key")
    return ring


def check_redis_url(url: str) -> None:
    """Raise ValueError unless ``url`` is a Redis URL Signoff can connect with."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in REDIS_SCHEMES:
        raise ValueError("unknown scheme")
    if scheme == "redis+sentinel":
        parse_sentinel_url(url)
        return
    parts = urlsplit(url)
    if scheme == "unix":
        if not parts.path:
            raise ValueError("no socket path")
        return
    if not parts.hostname:
        raise ValueError("no host")
    _ = parts.port  # ValueError for a port that is not a number in 0-65535
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError("the database is not a number")


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

    trusted_stream: bool | None = Field(
        default=None,
        validation_alias=_alias("SIGNOFF_TRUSTED_STREAM", "trusted_stream"),
        description="Also read the single shared request stream ({prefix}:requests), whose "
        "bodies name their own requester (request v1, trusted single-agent mode). Default: on "
        "only with the embedded Redis (local use and the demo); agents registered with "
        "'signoff agent add' always use their own authenticated stream.",
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
    audit_checkpoint_per_decision: bool = Field(
        default=True, validation_alias=_alias("SIGNOFF_AUDIT_CHECKPOINT_PER_DECISION",
                                              "audit_checkpoint_per_decision"),
    )
    audit_archive_after_days: float = Field(
        default=0.0, ge=0, validation_alias=_alias("SIGNOFF_AUDIT_ARCHIVE_AFTER_DAYS",
                                                   "audit_archive_after_days"),
    )
    audit_archive_dir: Path | None = Field(
        default=None, validation_alias=_alias("SIGNOFF_AUDIT_ARCHIVE_DIR", "audit_archive_dir"),
    )
    audit_sinks: list[SinkConfig] = Field(
        default_factory=list, validation_alias=_alias("SIGNOFF_AUDIT_SINKS", "audit_sinks"),
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
    worker_nice: int = Field(
        default=10, ge=0, le=19,
        validation_alias=_alias("SIGNOFF_WORKER_NICE", "worker_nice"),
        description="The Unix nice value the worker and delivery processes run at (0: the "
        "same priority as the web): on a shared machine, decisions go first and card traffic "
        "takes the rest of the CPU.",
    )
    log_level: str = Field(default="INFO", validation_alias=_alias("LOG_LEVEL", "log_level"))
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=_alias("SIGNOFF_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT",
                                "otlp_endpoint"),
    )

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
    # Sign-in needs ``email_verified: true`` in the ID token. False accepts a token that has
    # no ``email_verified`` claim at all (providers that never send it and only issue
    # addresses they own); an explicit ``false`` is refused either way.
    oidc_require_email_verified: bool = Field(
        default=True,
        validation_alias=_alias("SIGNOFF_OIDC_REQUIRE_EMAIL_VERIFIED",
                                "oidc_require_email_verified"),
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

    @field_validator("redis_url", "public_url", "oidc_issuer", "oidc_redirect_url",
                     "oidc_client_id", "microsoft_app_id", "microsoft_app_tenant_id",
                     mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # `.env.example` lists every variable with an empty value: empty means "not set".
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("hmac_secret", "data_keys", "masking_key", mode="before")
    @classmethod
    def _blank_secret_is_unset(cls, value: Any) -> Any:
        raw = value.get_secret_value() if isinstance(value, SecretStr) else value
        if isinstance(raw, str) and not raw.strip():
            return None
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_ok(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            check_redis_url(value)
        except ValueError as exc:
            # The URL may carry a password: say what is wrong, never echo it.
            raise _problem(f"must be {REDIS_URL_SHAPE} ({exc}); unset, Signoff starts its "
                           "own embedded Redis") from None
        return value

    @field_validator("public_url", "slack_api_url", "otlp_endpoint", "teams_openid_metadata_url",
                     "teams_login_url", "oidc_issuer", "oidc_redirect_url")
    @classmethod
    def _http_url_ok(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            _HTTP_URL.validate_python(value)
        except ValidationError:
            raise _problem(f"must be an http:// or https:// URL such as "
                           f"https://signoff.example.com (got {value[:80]!r})") from None
        return value

    @field_validator("hmac_secret", "masking_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < SECRET_MIN_BYTES:
            raise _problem(f"must be at least {SECRET_MIN_BYTES} bytes of random text (this one "
                           f"is shorter, so it can be guessed); {SECRETS_HINT}")
        return value

    @field_validator("data_keys")
    @classmethod
    def _data_keys_ok(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                parse_data_keys(value.get_secret_value())
            except ValueError as exc:
                raise _problem(f"must be {DATA_KEYS_SHAPE} ({exc}); {SECRETS_HINT}") from None
        return value

    @field_validator("port")
    @classmethod
    def _port_ok(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise _problem(f"must be a TCP port, 0-65535 (0 picks a free one; got {value})")
        return value

    @field_validator("reply_ttl", "record_ttl", "max_request_bytes", "grant_ttl",
                     "audit_checkpoint_interval", "intake_reclaim_idle_ms", "repair_after",
                     "worker_maintenance_interval", "inbox_session_ttl")
    @classmethod
    def _positive(cls, value: float) -> float:
        if value <= 0:
            raise _problem(f"must be a number greater than 0 (got {value})")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level_ok(cls, value: str) -> str:
        if value.upper() not in LOG_LEVELS:
            raise _problem(f"must be one of {', '.join(LOG_LEVELS)} (got {value[:40]!r})")
        return value.upper()

    @field_validator("microsoft_app_type")
    @classmethod
    def _app_type_ok(cls, value: str) -> str:
        if value not in APP_TYPES:
            raise _problem(f"must be one of {', '.join(APP_TYPES)} (got {value[:40]!r})")
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

    @property
    def trusted_stream_enabled(self) -> bool:
        """Whether the shared, unauthenticated request stream is read (see ``trusted_stream``)."""
        return self.embedded_redis if self.trusted_stream is None else self.trusted_stream

    def channels_off(self) -> dict[str, str]:
        """Chat platforms this deployment has no credentials for -> what is missing.

        Cards for them are not routed at all (the web inbox is always on); the processes
        say so once at start, e.g. ``Slack: off (no SLACK_BOT_TOKEN)``.
        """
        off: dict[str, str] = {}
        if self.slack_bot_token is None:
            off["Slack"] = "no SLACK_BOT_TOKEN"
        if not self.microsoft_app_id:
            off["Microsoft Teams"] = "no MICROSOFT_APP_ID"
        return off

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
        try:
            return parse_data_keys(_require(self.data_keys, "SIGNOFF_DATA_KEYS"))
        except ValueError as exc:
            raise ValueError(f"SIGNOFF_DATA_KEYS must be {DATA_KEYS_SHAPE} ({exc})") from None

    def with_generated_secrets(self) -> Settings:
        """Fill missing secrets from ``{data_dir}/secrets.json``, creating it (mode 0600).

        Only for the embedded Redis (local use and the demo): with an external Redis every
        process must share the same secrets, so they must come from the environment.
        """
        missing = [name for name in GENERATED_SECRETS if getattr(self, name) is None]
        if not missing:
            return self
        if not self.embedded_redis:
            raise ValueError("missing secrets with an external Redis: "
                             + ", ".join(SECRET_ENV[m] for m in missing) + f"; {SECRETS_HINT}")
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


class ServiceSettings(Settings):
    """The settings of a process that serves or operates Signoff (web, worker, intake, run,
    demo and the operator commands): on top of :class:`Settings`' formats, what serving
    needs must be there. An agent's commands load plain :class:`Settings` (they need none of
    the service's secrets or its policy)."""

    @field_validator("policy_path")
    @classmethod
    def _policy_readable(cls, value: Path) -> Path:
        where = value if value.is_absolute() else Path.cwd() / value
        if not value.is_file() or not os.access(value, os.R_OK):
            why = "does not exist" if not value.exists() else "is not a readable file"
            raise _problem(f"must name a readable policy YAML file; {where} {why} (set "
                           "SIGNOFF_POLICY; examples/policy.yaml is a starting point)")
        return value

    @field_validator("hmac_secret", "data_keys", "masking_key")
    @classmethod
    def _secret_present(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        # Only the embedded Redis generates local secrets; with an external one every process
        # must share the same values, so they must be given.
        if value is None and info.data.get("redis_url"):
            shape = DATA_KEYS_SHAPE if info.field_name == "data_keys" else (
                f"at least {SECRET_MIN_BYTES} bytes of random text")
            raise _problem(f"is required with an external REDIS_URL (every process must share "
                           f"it): {shape}; {SECRETS_HINT}")
        return value


def generate_secret(name: str) -> str:
    """A fresh value for one of :data:`GENERATED_SECRETS`, in the format its setting accepts."""
    if name == "data_keys":
        return "k1:" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    return secrets.token_urlsafe(32)


_generate = generate_secret


def env_name(field: str) -> str:
    """The environment variable of a settings field (its first alias)."""
    info = Settings.model_fields.get(field)
    choices = getattr(info.validation_alias, "choices", None) if info else None
    return str(choices[0]) if choices else field.upper()


# Fields whose input must never be echoed in an error (they are or may contain secrets).
_QUIET_INPUT = frozenset({*SECRET_ENV.values(), "REDIS_URL", "SLACK_BOT_TOKEN",
                          "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN", "MICROSOFT_APP_PASSWORD",
                          "SIGNOFF_OIDC_CLIENT_SECRET"})
_ENV_BY_FIELD: dict[str, str] = {}


def describe_settings_error(exc: Exception) -> list[str]:
    """The line for a value pydantic-settings could not even parse (a structured setting,
    such as ``SIGNOFF_AUDIT_SINKS``, that is not JSON)."""
    match = re.search(r'field "(\w+)"', str(exc))
    env = env_name(match.group(1)) if match else "a setting"
    return [f"{env}: must be JSON (a list or object as documented in .env.example); this "
            "value could not be parsed"]


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per problem, ``VARIABLE: what it must look like``, with no secret echoed."""
    if not _ENV_BY_FIELD:
        _ENV_BY_FIELD.update({name: env_name(name) for name in Settings.model_fields})
    lines = []
    for error in exc.errors(include_url=False):
        loc = str(error["loc"][0]) if error["loc"] else ""
        env = _ENV_BY_FIELD.get(loc, loc)
        message = error["msg"]
        if error["type"] != "signoff_setting" and env not in _QUIET_INPUT:
            given = error.get("input")
            if isinstance(given, str | int | float):
                message += f" (got {str(given)[:80]!r})"
        lines.append(f"{env}: {message}")
    return lines


def _require(value: SecretStr | None, env: str) -> str:
    if value is None or not value.get_secret_value():
        raise ValueError(f"{env} is not set")
    return value.get_secret_value()


def load_settings(**overrides: Any) -> Settings:
    """Read the environment once; ``overrides`` win (tests pass their own values)."""
    return Settings(**overrides)


def load_service_settings(**overrides: Any) -> ServiceSettings:
    """Like :func:`load_settings`, checked for serving (:class:`ServiceSettings`)."""
    return ServiceSettings(**overrides)


class ConfigurationError(Exception):
    """A configuration the settings' formats allow but that cannot be used (a policy file
    with errors); ``problems`` is one line per problem, as :func:`describe_errors` gives."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
