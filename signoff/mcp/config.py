"""The gateway's configuration file (YAML), validated into frozen models.

Example::

    agent: agent:claude-desktop
    redis_url: ${SIGNOFF_AGENT_REDIS_URL}     # the agent's own credentials
    context: {environment: prod}
    servers:
      - name: warehouse
        command: ["python", "warehouse_server.py"]
        resource_argument: table
      - name: tickets
        url: http://127.0.0.1:9000/mcp
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The configuration cannot be used; the message says what is wrong in one line."""


class ServerConfig(BaseModel):
    """One upstream MCP server: a command (stdio) or a URL (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME, description="Used in action names: mcp.<name>.<tool>.")
    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: Path | None = None
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    resource_argument: str | dict[str, str] | None = Field(
        default=None,
        description="The argument naming what a call acts on (one name, or tool -> name); "
                    "the request's resource. Without it the resource is the server's name.")
    annotations: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-tool annotation overrides (readOnlyHint, destructiveHint, ...). "
                    "The policy sees these instead of what the server claims.")

    @model_validator(mode="after")
    def _one_transport(self) -> ServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"server '{self.name}' needs exactly one of command (stdio) or url "
                             "(streamable HTTP)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"server '{self.name}': url must start with http:// or https://")
        return self

    def resource_for(self, tool: str, arguments: dict[str, Any]) -> str:
        """The request's resource: the configured argument's value, else the server's name."""
        arg = self.resource_argument
        if isinstance(arg, dict):
            arg = arg.get(tool)
        if arg is not None:
            value = arguments.get(arg)
            if isinstance(value, str | int | float) and str(value).strip():
                return str(value)[:500]
        return self.name


class WaitConfig(BaseModel):
    """How long a tool call is held open while a person decides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision_timeout: float = Field(
        default=3600, gt=0,
        description="Seconds the gateway keeps waiting for a decision in total (Signoff's own "
                    "policy timeout usually ends the request first).")
    hold: float = Field(
        default=45, ge=0,
        description="Seconds one call is held open when the client asked for no progress "
                    "(clients drop calls after 60-120 s); then a 'pending' result is returned.")
    hold_with_progress: float = Field(
        default=600, ge=0,
        description="Seconds one call is held open when the client takes progress "
                    "notifications (sent every progress_interval).")
    progress_interval: float = Field(default=10, gt=0)
    pending_ttl: float = Field(
        default=86400, gt=0,
        description="How long a pending request is remembered so a retried call picks it up.")


class GatewayConfig(BaseModel):
    """The whole file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: str = Field(min_length=1, max_length=200,
                       description="The agent identity the gateway's requests carry.")
    redis_url: str | None = Field(default=None, description="The agent's own Redis URL "
                                  "(credentials included); or --redis-url / SIGNOFF_AGENT_REDIS_URL.")
    prefix: str = "signoff"
    on_behalf_of: str | None = None
    context: dict[str, Any] = Field(default_factory=dict,
                                    description="Added to every request's context (environment, ...).")
    policy: Path | None = Field(default=None, description="The deployment's policy file: calls "
                                "its auto_approve rules allow are forwarded without a round trip.")
    http_token: str | None = Field(
        default=None, min_length=16,
        description="With --http: clients must send 'Authorization: Bearer <token>'. Required "
                    "when the gateway listens on anything but loopback.")
    servers: list[ServerConfig] = Field(min_length=1)
    wait: WaitConfig = Field(default_factory=WaitConfig)

    @field_validator("servers")
    @classmethod
    def _unique(cls, servers: list[ServerConfig]) -> list[ServerConfig]:
        names = [s.name for s in servers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"server names must be unique; repeated: {', '.join(dup)}")
        return servers

    def server(self, name: str) -> ServerConfig:
        return next(s for s in self.servers if s.name == name)


def _expand(value: Any, env: dict[str, str]) -> Any:
    """Replace ``${NAME}`` in strings with the environment's value (secrets stay out of files)."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in env:
                raise ConfigError(f"the config refers to ${{{m.group(1)}}}, which is not set")
            return env[m.group(1)]
        return _ENV_REF.sub(sub, value)
    if isinstance(value, list):
        return [_expand(v, env) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, env) for k, v in value.items()}
    return value


def load_config(path: Path, env: dict[str, str]) -> GatewayConfig:
    """Read and validate the file; :class:`ConfigError` says what is wrong in one line."""
    # PyYAML is the mcp extra's: 'signoff mcp --help' works without it.
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{where}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with agent: and servers:")
    data = _expand(data, env)
    base = path.resolve().parent
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}"
                    for err in exc.errors()]
        raise ConfigError(f"{path}: {'; '.join(problems)}") from None
    # Relative paths in the file are relative to the file, not to where the gateway started.
    servers = [s.model_copy(update={"cwd": base / s.cwd if s.cwd and not s.cwd.is_absolute()
                                    else (s.cwd or base)}) for s in config.servers]
    policy = config.policy
    if policy is not None and not policy.is_absolute():
        policy = base / policy
    return config.model_copy(update={"servers": servers, "policy": policy})
