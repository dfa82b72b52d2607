"""How every command gets its settings: checked in full before the command does anything.

The service's processes (``web``, ``worker``, ``intake``, ``run``, ``demo``) and the operator
commands load :class:`~signoff.settings.ServiceSettings`; the agent's commands (``request``)
load plain :class:`~signoff.settings.Settings`, which needs neither the service's secrets nor
its policy, so the agent-only install (``pip install signoff``) can run them. Whatever is wrong
surfaces as a pydantic ``ValidationError`` or a :class:`~signoff.settings.ConfigurationError`,
which ``workers.cli`` prints one line per problem (exit status 2).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from signoff.redis_conn import EmbeddedRedis
from signoff.settings import (
    ConfigurationError,
    Settings,
    env_name,
    load_service_settings,
    load_settings,
)


def check_policy(settings: Settings) -> None:
    """Refuse to start on a policy file with errors (one line per error, its line and column).

    The settings only know the file is readable; its content is the policy package's to judge.
    """
    # The policy and masking packages are the server extra's (an agent's command never gets here).
    from policy import PolicyError, load_policy
    from signoff.masking.profile import MaskingConfig

    try:
        load_policy(settings.policy_path, masking_validator=MaskingConfig.model_validate)
    except PolicyError as exc:
        env = env_name("policy_path")
        raise ConfigurationError([f"{env}: {issue.format(exc.source)}"
                                  for issue in exc.errors]) from None


@contextmanager
def resolved_settings(settings: Settings | None = None, *, agent: bool = False,
                      policy: bool = False, redis_port: int = 0,
                      fresh: bool = False) -> Iterator[Settings]:
    """Settings with a Redis URL (and, for the service, its secrets).

    Args:
        settings: already loaded settings (the demo's); default: read the environment.
        agent: an agent's command: only the Redis URL and key prefix matter.
        policy: also parse the policy file now (the long-running processes).
        redis_port: the embedded Redis also listens on this loopback TCP port (the demo).
        fresh: the embedded Redis starts empty (the demo, unless ``--keep``).

    Starts the embedded Redis when ``REDIS_URL`` is unset, and stops it on exit.
    """
    if settings is None:
        settings = load_settings() if agent else load_service_settings()
    if not agent:
        if policy:
            check_policy(settings)
        settings = settings.with_generated_secrets()
    embedded: EmbeddedRedis | None = None
    if settings.embedded_redis:
        embedded = EmbeddedRedis(settings.data_dir, port=redis_port)
        if fresh:
            embedded.reset()
        url = embedded.start()
        # The embedded Redis is local use and the demo: the trusted shared stream stays on
        # unless set explicitly (its children see a REDIS_URL, so they are told).
        settings = settings.model_copy(update={
            "redis_url": url, "trusted_stream": True if settings.trusted_stream is None
            else settings.trusted_stream})
    try:
        yield settings
    finally:
        if embedded is not None:
            embedded.stop()
