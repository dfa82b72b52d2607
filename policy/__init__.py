"""Signoff's policy engine: who must approve what, and who never may.

Pure Python: :func:`parse_policy` turns YAML text into a :class:`Policy`; only
:func:`load_policy` and :class:`PolicyHolder` read files. See docs/policy.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policy.directory import Agent, Directory, Person
    from policy.engine import DEFAULT_RULE_ID, Evaluation, Policy, Rule
    from policy.errors import PolicyError, PolicyIssue
    from policy.limits import Limits
    from policy.loader import PolicyHolder, load_policy
    from policy.parser import parse_policy, policy_version
    from policy.quorum import denial_met, quorum_met, slots_missing
    from policy.requirement import ChannelKind, ChannelTarget, Escalation, Outcome, Requirement
    from policy.separation import Allowed, RefusalCode, Refused, can_decide

# Names are imported on first use (PEP 562), so that the agent SDK can import
# ``policy.identity`` (standard library only) without the engine's server dependencies.
_HOME = {
    "Agent": "directory", "Directory": "directory", "Person": "directory",
    "DEFAULT_RULE_ID": "engine", "Evaluation": "engine", "Policy": "engine", "Rule": "engine",
    "PolicyError": "errors", "PolicyIssue": "errors", "Limits": "limits",
    "PolicyHolder": "loader", "load_policy": "loader",
    "parse_policy": "parser", "policy_version": "parser",
    "denial_met": "quorum", "quorum_met": "quorum", "slots_missing": "quorum",
    "ChannelKind": "requirement", "ChannelTarget": "requirement", "Escalation": "requirement",
    "Outcome": "requirement", "Requirement": "requirement",
    "Allowed": "separation", "RefusalCode": "separation", "Refused": "separation",
    "can_decide": "separation",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module 'policy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"policy.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_RULE_ID",
    "Agent",
    "Allowed",
    "ChannelKind",
    "ChannelTarget",
    "Directory",
    "Escalation",
    "Evaluation",
    "Limits",
    "Outcome",
    "Person",
    "Policy",
    "PolicyError",
    "PolicyHolder",
    "PolicyIssue",
    "RefusalCode",
    "Refused",
    "Requirement",
    "Rule",
    "can_decide",
    "denial_met",
    "load_policy",
    "parse_policy",
    "policy_version",
    "quorum_met",
    "slots_missing",
]
