"""quorum_met: distinct people, per-group minimums, one slot per person, escalation stand-ins."""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Escalation, Requirement, denial_met, quorum_met, slots_missing

DBA_AND_SECOPS = Requirement(groups={"dba": 1, "secops": 1}, quorum=2, eligible_groups=("dba", "secops"))
TWO_DBA = Requirement(
    groups={"dba": 2}, quorum=2, eligible_groups=("dba",),
    escalation=(Escalation(1800, ("admins",)),),
)
DBA_PLUS_ANYONE = Requirement(groups={"dba": 1}, quorum=2, eligible_groups=("dba", "secops"))


@pytest.mark.parametrize(
    ("requirement", "approvals", "met"),
    [
        (DBA_AND_SECOPS, {"alice": ["dba"], "dave": ["secops"]}, True),
        (DBA_AND_SECOPS, {"carol": ["dba", "secops"]}, False),  # one person, two slots
        (DBA_AND_SECOPS, {"carol": ["dba", "secops"], "alice": ["dba"]}, True),
        (DBA_AND_SECOPS, {"carol": ["dba", "secops"], "dave": ["secops"]}, True),
        (DBA_AND_SECOPS, {"alice": ["dba"], "bob": ["dba"]}, False),
        (DBA_AND_SECOPS, {"carol": ["dba", "secops"], "erin": ["admins"]}, False),  # a per-group count alone would say yes
        (TWO_DBA, {"alice": ["dba"]}, False),
        (TWO_DBA, {"alice": ["dba"], "ALICE": ["dba"]}, False),
        (TWO_DBA, {"alice": ["dba"], "bob": ["dba"]}, True),
        (TWO_DBA, {"alice": ["dba"], "erin": ["admins"]}, True),  # escalated admins stand in
        (TWO_DBA, {"erin": ["admins"], "zed": ["admins"]}, True),
        (TWO_DBA, {"erin": ["admins"], "x": ["platform"]}, False),  # platform is not a stand-in
        (DBA_PLUS_ANYONE, {"alice": ["dba"]}, False),
        (DBA_PLUS_ANYONE, {"alice": ["dba"], "dave": ["secops"]}, True),
        (DBA_PLUS_ANYONE, {"dave": ["secops"], "x": ["secops"]}, False),
        (Requirement(groups={}, quorum=1, eligible_groups=("dba",)), {"a": ["dba"]}, True),
        (Requirement(groups={}, quorum=1, eligible_groups=("dba",)), {}, False),
    ],
)
def test_quorum_table(requirement: Requirement, approvals: dict[str, list[str]], met: bool) -> None:
    assert quorum_met(requirement, approvals) is met


def test_denial_and_missing_slots() -> None:
    assert denial_met(DBA_AND_SECOPS, ["alice"])
    strict = Requirement(groups={"dba": 1}, quorum=1, eligible_groups=("dba",), deny_quorum=2)
    assert not denial_met(strict, ["alice", "ALICE "])
    assert denial_met(strict, ["alice", "bob"])
    assert slots_missing(DBA_AND_SECOPS, {"alice": ["dba"]}) == {"secops": 1}
    assert slots_missing(TWO_DBA, {"erin": ["admins"]}) == {"dba": 1}


def _brute_force(requirement: Requirement, approvals: dict[str, list[str]]) -> bool:
    """Try every assignment of approvers to the per-group slots (small inputs only)."""
    stand_in = requirement.escalation_groups - set(requirement.groups)
    people = list(approvals)
    if len(people) < max(1, requirement.quorum):
        return False
    slots = [g for g, n in requirement.groups.items() for _ in range(n)]
    if len(slots) > len(people):
        return False

    def fits(person: str, group: str) -> bool:
        mine = set(approvals[person])
        return group in mine or bool(mine & stand_in)

    return any(
        all(fits(p, g) for p, g in zip(chosen, slots, strict=True))
        for chosen in permutations(people, len(slots))
    )


GROUPS = ["dba", "secops", "admins", "platform"]


@settings(max_examples=250, deadline=None)
@given(
    required=st.dictionaries(st.sampled_from(GROUPS[:3]), st.integers(1, 2), min_size=1, max_size=3),
    slack=st.integers(0, 2),
    escalate=st.lists(st.sampled_from(GROUPS), unique=True, max_size=2),
    approvals=st.dictionaries(
        st.sampled_from([f"p{i}" for i in range(6)]),
        st.lists(st.sampled_from(GROUPS), unique=True, max_size=3),
        max_size=6,
    ),
)
def test_quorum_matches_an_exhaustive_assignment(
    required: dict[str, int], slack: int, escalate: list[str], approvals: dict[str, list[str]]
) -> None:
    requirement = Requirement(
        groups=required,
        quorum=sum(required.values()) + slack,
        eligible_groups=tuple(dict.fromkeys([*required, *escalate])),
        escalation=(Escalation(60, tuple(escalate)),) if escalate else (),
    )
    assert quorum_met(requirement, approvals) == _brute_force(requirement, approvals)
