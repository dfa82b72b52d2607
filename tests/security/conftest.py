"""Fixtures of the adversarial suites (registered agents with their own credentials)."""

from tests.security.agents_helpers import agents, redis7_server, srt  # noqa: F401 - fixtures
