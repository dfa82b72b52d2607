"""Separation of duties: table tests for can_decide and properties over generated requests."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policy import (
    Agent,
    Allowed,
    Directory,
    Evaluation,
    Outcome,
    Person,
    Policy,
    RefusalCode,
    Refused,
    Requirement,
    can_decide,
    quorum_met,
)
from signoff.models import AgentRequest

from .conftest import MONDAY, request

CASES: list[tuple[str, dict[str, Any], dict[str, str], list[str], RefusalCode | None]] = [
    ("alice@example.com", {}, {}, [], None),
    ("ALICE@Example.com", {}, {}, [], None),  # emails compare case-insensitively
    ("erin@example.com", {}, {}, [], RefusalCode.AGENT_OWNER),
    ("frank@example.com", {}, {}, [], RefusalCode.ON_BEHALF_OF),
    ("bob@example.com", {"requester": "bob@example.com", "on_behalf_of": None}, {}, [], RefusalCode.REQUESTER),
    ("bob@example.com", {"requester": "BOB@example.com", "on_behalf_of": None}, {}, [], RefusalCode.REQUESTER),
    ("alice@example.com", {}, {"Alice@Example.com": "approve"}, [], RefusalCode.ALREADY_VOTED),
    ("alice@example.com", {}, {"alice@example.com": "deny"}, [], RefusalCode.ALREADY_VOTED),
    ("dave@example.com", {}, {}, [], RefusalCode.NOT_ELIGIBLE),
    ("dave@example.com", {}, {}, ["secops"], None),  # escalation added secops
    ("mallory@example.com", {}, {}, [], RefusalCode.UNKNOWN_PERSON),
    ("erin@example.com", {"requester": "agent:deploy-bot"}, {}, ["admins"], None),
    ("frank@example.com", {"requester": "agent:deploy-bot", "on_behalf_of": None}, {}, [], RefusalCode.AGENT_OWNER),
]


@pytest.mark.parametrize(("who", "overrides", "votes", "extra", "code"), CASES)
def test_can_decide_table(
    example: Policy, who: str, overrides: dict[str, Any], votes: dict[str, str],
    extra: list[str], code: RefusalCode | None,
) -> None:
    req = request(**overrides)
    ev = example.evaluate(req, MONDAY)
    assert ev.rule_id == "prod-data-export"
    person = example.directory.person(who)
    verdict = can_decide(req, ev, person, votes, example.directory, extra_groups=extra)
    if code is None:
        assert isinstance(verdict, Allowed) and verdict
    else:
        assert isinstance(verdict, Refused) and not verdict
        assert verdict.code is code
        assert verdict.reason and verdict.reason[0].isupper() and verdict.reason.endswith(".")


def test_allowed_lists_every_group_the_vote_counts_for(example: Policy) -> None:
    req = request(action="iam.grant", resource="role/db-reader")
    ev = example.evaluate(req, MONDAY)
    carol = example.directory.person("carol@example.com")
    verdict = can_decide(req, ev, carol, {}, example.directory)
    assert isinstance(verdict, Allowed) and set(verdict.groups) == {"secops", "dba"}


def test_a_person_listed_as_an_agent_is_refused() -> None:
    people = [Person("svc@example.com", "svc", groups=frozenset({"dba"})), Person("a@example.com", "a")]
    d = Directory.build(people, [Agent("SVC@example.com", "a@example.com")])
    req = AgentRequest(id="x", action="a", resource="r", requester="other-agent")
    ev = _evaluation(Requirement(groups={"dba": 1}, quorum=1, eligible_groups=("dba",)))
    verdict = can_decide(req, ev, d.person("svc@example.com"), {}, d)
    assert isinstance(verdict, Refused) and verdict.code is RefusalCode.AGENT_IDENTITY


def test_a_person_not_from_this_directory_is_unknown(example: Policy) -> None:
    outsider = Person("zed@example.com", "Zed", groups=frozenset({"dba"}))
    req = request()
    verdict = can_decide(req, example.evaluate(req, MONDAY), outsider, {}, example.directory)
    assert isinstance(verdict, Refused) and verdict.code is RefusalCode.UNKNOWN_PERSON


def test_auto_decided_requests_take_no_votes(example: Policy) -> None:
    req = request(context={"environment": "dev"})
    ev = example.evaluate(req, MONDAY)
    verdict = can_decide(req, ev, example.directory.person("alice@example.com"), {}, example.directory)
    assert isinstance(verdict, Refused) and verdict.code is RefusalCode.NOT_AWAITING_APPROVAL


def _evaluation(requirement: Requirement) -> Evaluation:
    return Evaluation("r", Outcome.REQUIRE_APPROVAL, requirement, "", [], "r", "v")


# --- properties -------------------------------------------------------------------------------

GROUPS = ["dba", "secops", "admins", "platform"]
EMAILS = [f"p{i}@example.com" for i in range(8)]
AGENTS = ["agent:a", "agent:b", "agent:c"]


def _case(email: str, flip: bool) -> str:
    return email.upper() if flip else email


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Directory, AgentRequest, Requirement, list[str]]:
    people = [
        Person(e, e, slack_id=f"U{i}", groups=frozenset(draw(st.sets(st.sampled_from(GROUPS)))))
        for i, e in enumerate(EMAILS)
    ]
    agents = [Agent(a, draw(st.sampled_from(EMAILS)), None) for a in AGENTS]
    if draw(st.booleans()):  # sometimes a person's email is also registered as an agent
        agents.append(Agent(draw(st.sampled_from(EMAILS)), draw(st.sampled_from(EMAILS))))
    directory = Directory.build(people, agents)
    requester = draw(st.sampled_from([*AGENTS, *EMAILS, "agent:unregistered"]))
    requester = _case(requester, draw(st.booleans()))
    obo = draw(st.one_of(st.none(), st.sampled_from(EMAILS).map(lambda e: _case(e, True))))
    req = AgentRequest(id="x", action="a.b", resource="r", requester=requester, on_behalf_of=obo)
    required = draw(st.dictionaries(st.sampled_from(GROUPS), st.integers(1, 2), min_size=1, max_size=3))
    extra = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=2))
    eligible = tuple(dict.fromkeys([*required, *extra]))
    quorum = sum(required.values()) + draw(st.integers(0, 2))
    escalate = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=1))
    from policy import Escalation

    requirement = Requirement(
        groups=required, quorum=quorum, eligible_groups=eligible,
        escalation=(Escalation(60, tuple(escalate)),) if escalate else (),
    )
    clicks = draw(st.lists(st.sampled_from(EMAILS).map(lambda e: _case(e, draw(st.booleans()))), max_size=16))
    return directory, req, requirement, clicks


def _conflicted(directory: Directory, req: AgentRequest) -> set[str]:
    out = {req.requester.lower()}
    if req.on_behalf_of:
        out.add(req.on_behalf_of.lower())
    agent = directory.agent(req.requester)
    if agent is not None:
        out.add(agent.owner.lower())
    out |= {a.id.lower() for a in directory.agents}
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.booleans())
def test_no_conflicted_person_ever_decides(world: Any, escalated: bool) -> None:
    """Requester, principal, agent owner and agent identities are always refused; quorum
    counts distinct eligible people only."""
    directory, req, requirement, clicks = world
    ev = _evaluation(requirement)
    extra = requirement.added_groups_at(3600) if escalated else ()
    conflicted = _conflicted(directory, req)
    votes: dict[str, str] = {}
    approvals: dict[str, tuple[str, ...]] = {}
    for who in clicks:
        person = directory.person(who)
        verdict = can_decide(req, ev, person, votes, directory, extra_groups=extra)
        if isinstance(verdict, Allowed):
            assert person is not None
            assert person.id not in conflicted
            assert person.id not in {v.lower() for v in votes}
            assert set(verdict.groups) <= set(requirement.eligible_groups) | set(extra)
            assert set(verdict.groups) <= directory.groups_of(person.id)
            votes[who] = "approve"
            approvals[who] = verdict.groups
        else:
            assert person is None or person.id in conflicted or person.id in {
                v.lower() for v in votes
            } or not (directory.groups_of(person.id) & (set(requirement.eligible_groups) | set(extra)))
    distinct = {p.lower() for p in approvals}
    assert not distinct & conflicted
    if quorum_met(requirement, approvals):
        assert len(distinct) >= requirement.quorum


@settings(max_examples=60, deadline=None)
@given(worlds())
def test_case_variants_of_one_person_count_once(world: Any) -> None:
    _, _, requirement, _ = world
    groups = tuple(requirement.groups)
    one = {"p1@example.com": groups}
    twice = {"p1@example.com": groups, "P1@EXAMPLE.COM": groups, " p1@example.com ": groups}
    assert quorum_met(requirement, one) == quorum_met(requirement, twice)
    if requirement.quorum > 1:
        assert not quorum_met(requirement, twice)
