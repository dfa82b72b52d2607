"""When enough distinct people have approved (or denied) a request.

This is the rule the store's Lua script implements inside its atomic vote step; it is exposed
here so tests can compare the two.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from itertools import combinations

from policy.identity import canonical_email
from policy.requirement import Requirement


def _normalise(votes: Mapping[str, Iterable[str]]) -> dict[str, frozenset[str]]:
    """Person (canonical, policy.identity) -> groups; ``Alice@x`` and ``alice@x`` are one."""
    out: dict[str, set[str]] = {}
    for person, groups in votes.items():
        out.setdefault(canonical_email(person), set()).update(groups)
    return {p: frozenset(g) for p, g in out.items()}


def quorum_met(requirement: Requirement, approvals: Mapping[str, Iterable[str]]) -> bool:
    """Whether ``approvals`` satisfy ``requirement``.

    Met when both hold:

    1. the number of distinct people who approved is at least ``requirement.quorum``;
    2. one person can fill at most one per-group slot: for every non-empty set ``S`` of the
       required groups, the number of approvers who count toward some group in ``S`` is at
       least the sum of the minimums of ``S`` (Hall's condition, which is exactly "the
       approvers can be assigned to the slots, each person at most once").

    An approver who counted toward a group that an escalation step added (and that is not
    itself a required group) counts toward every required group: escalation makes that
    group a stand-in. Checking single groups only is not enough: for "1 of dba and 1 of
    secops", Carol (in both) plus an unrelated approver must not pass.

    For the Lua port: with ``k`` required groups, loop ``mask`` over ``1 .. 2^k - 1``; for each
    mask sum the minimums of the groups in it and count the approvers whose groups intersect
    it (stand-ins always do); fail if the count is smaller. ``k`` is at most 8.

    Args:
        requirement: The matched rule's requirement.
        approvals: Approver (email) -> the groups they counted toward when they voted
            (:attr:`policy.separation.Allowed.groups`).

    Returns:
        True when the request is approved.
    """
    people = _normalise(approvals)
    if len(people) < max(1, requirement.quorum):
        return False
    required = [g for g, n in requirement.groups.items() if n > 0]
    if not required:
        return True
    stand_in = frozenset(requirement.stand_in_groups)
    reach: list[frozenset[str]] = []
    for groups in people.values():
        if groups & stand_in:
            reach.append(frozenset(required))
        else:
            reach.append(groups & frozenset(required))
    for size in range(1, len(required) + 1):
        for subset in combinations(required, size):
            need = sum(requirement.groups[g] for g in subset)
            chosen = frozenset(subset)
            have = sum(1 for r in reach if r & chosen)
            if have < need:
                return False
    return True


def denial_met(requirement: Requirement, denials: Iterable[str]) -> bool:
    """Whether the distinct people in ``denials`` (emails of eligible deny votes) deny it."""
    return len({canonical_email(d) for d in denials}) >= max(1, requirement.deny_quorum)


def slots_missing(requirement: Requirement, approvals: Mapping[str, Iterable[str]]) -> dict[str, int]:
    """Per required group, how many more approvals it still needs (for cards: "1 more dba").

    A plain per-group count; :func:`quorum_met` is the authority on whether it is met.
    """
    people = _normalise(approvals)
    stand_in = frozenset(requirement.stand_in_groups)
    out: dict[str, int] = {}
    for group, need in requirement.groups.items():
        have = sum(1 for g in people.values() if group in g or g & stand_in)
        if have < need:
            out[group] = need - have
    return out
