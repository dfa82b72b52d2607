"""Shared helpers for the policy tests: a small directory and request builders."""

from __future__ import annotations

import datetime
import textwrap
from pathlib import Path
from typing import Any

import pytest

from policy import Policy, load_policy, parse_policy
from signoff.models import AgentRequest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "policy.yaml"

# Monday 2024-06-03 10:00 UTC = 12:00 in Berlin; Saturday 2024-06-08 likewise.
MONDAY = datetime.datetime(2024, 6, 3, 10, 0, tzinfo=datetime.UTC)
SATURDAY = datetime.datetime(2024, 6, 8, 10, 0, tzinfo=datetime.UTC)

DIRECTORY = """\
version: 1
directory:
  people:
    - {email: alice@example.com, slack: U0ALICE, groups: [dba]}
    - {email: bob@example.com, slack: U0BOB, groups: [dba]}
    - {email: carol@example.com, slack: U0CAROL, groups: [secops, dba]}
    - {email: dave@example.com, slack: U0DAVE, groups: [secops]}
    - {email: erin@example.com, slack: U0ERIN, groups: [admins, platform]}
    - {email: frank@example.com, slack: U0FRANK}
  agents:
    - {id: "agent:export-bot", owner: erin@example.com, team: platform}
    - {id: "agent:deploy-bot", owner: frank@example.com}
"""


def policy_text(body: str = "", directory: str = DIRECTORY) -> str:
    """A policy file: the standard directory followed by ``body`` (dedented)."""
    return directory + textwrap.dedent(body)


def make_policy(body: str = "", directory: str = DIRECTORY) -> Policy:
    """Parse the standard directory plus ``body``."""
    return parse_policy(policy_text(body, directory), "test.yaml")


def request(**overrides: Any) -> AgentRequest:
    """A prod db.export request from the export bot on Frank's behalf, with overrides."""
    fields: dict[str, Any] = {
        "id": "req-1",
        "action": "db.export",
        "resource": "customers",
        "requester": "agent:export-bot",
        "on_behalf_of": "frank@example.com",
        "context": {"environment": "prod"},
    }
    fields.update(overrides)
    return AgentRequest(**fields)


@pytest.fixture(scope="session")
def example() -> Policy:
    """examples/policy.yaml, loaded once."""
    return load_policy(EXAMPLE)
