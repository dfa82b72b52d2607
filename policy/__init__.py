"""Signoff's policy engine: who must approve what, and who never may.

Pure Python: :func:`parse_policy` turns YAML text into a :class:`Policy`; only
:func:`load_policy` and :class:`PolicyHolder` read files. See docs/policy.md.
"""

from __future__ import annotations

from policy.directory import Agent, Directory, Person
from policy.engine import DEFAULT_RULE_ID, Evaluation, Policy, Rule
from policy.errors import PolicyError, PolicyIssue
from policy.limits import Limits
from policy.loader import PolicyHolder, load_policy
from policy.parser import parse_policy, policy_version
from policy.quorum import denial_met, quorum_met, slots_missing
from policy.requirement import ChannelKind, ChannelTarget, Escalation, Outcome, Requirement
from policy.separation import Allowed, RefusalCode, Refused, can_decide

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
