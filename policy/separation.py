"""Separation of duties: may this person decide this request?

One pure function, :func:`can_decide`, that the Slack and Teams handlers and the HTTP API all
call before recording a vote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from policy.directory import Directory, Person
from policy.identity import canonical_agent
from policy.request import PolicyRequest
from policy.requirement import Outcome

if TYPE_CHECKING:
    from policy.engine import Evaluation


class RefusalCode(str, Enum):
    """Why someone may not decide."""

    UNKNOWN_PERSON = "unknown_person"
    AGENT_IDENTITY = "agent_identity"
    REQUESTER = "requester"
    ON_BEHALF_OF = "on_behalf_of"
    AGENT_OWNER = "agent_owner"
    ALREADY_VOTED = "already_voted"
    NOT_ELIGIBLE = "not_eligible"
    NOT_AWAITING_APPROVAL = "not_awaiting_approval"


@dataclass(frozen=True)
class Allowed:
    """The person may vote; ``groups`` are the eligible groups their vote counts toward."""

    groups: tuple[str, ...]

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True)
class Refused:
    """The person may not vote; ``reason`` is shown to them as is."""

    code: RefusalCode
    reason: str

    def __bool__(self) -> bool:
        return False


_REASONS = {
    RefusalCode.UNKNOWN_PERSON: (
        "Signoff does not know your account, so it cannot count your vote. "
        "Ask an administrator to add you to the policy directory."
    ),
    RefusalCode.AGENT_IDENTITY: "Agent identities can never approve or deny requests.",
    RefusalCode.REQUESTER: "You requested this action; someone else must decide it.",
    RefusalCode.ON_BEHALF_OF: (
        "This action is being done on your behalf; someone else must decide it."
    ),
    RefusalCode.AGENT_OWNER: (
        "You own the agent that made this request; someone else must decide it."
    ),
    RefusalCode.ALREADY_VOTED: "You have already voted on this request.",
    RefusalCode.NOT_AWAITING_APPROVAL: (
        "This request was decided automatically by policy; there is nothing to vote on."
    ),
}


def can_decide(
    request: PolicyRequest,
    evaluation: Evaluation,
    person: Person | None,
    votes: Mapping[str, str],
    directory: Directory,
    *,
    extra_groups: Iterable[str] = (),
) -> Allowed | Refused:
    """Whether ``person`` may approve or deny ``request``.

    Refused, in this order: an unknown person (not in ``directory``), an agent identity, the
    requester, the person the request is on behalf of, the owner of the requesting agent,
    anyone who already voted, anyone in no eligible group.

    Args:
        request: The request being decided.
        evaluation: The policy evaluation stored with it.
        person: Who clicked, already resolved through ``directory`` (``None``: unknown).
        votes: Votes already recorded, email -> ``"approve"``/``"deny"``.
        directory: The directory of the policy in force.
        extra_groups: Groups made eligible by escalation steps that have fired.

    Returns:
        :class:`Allowed` with the groups the vote counts toward, or :class:`Refused`.
    """
    if person is None or directory.person(person.id) is None:
        return _refuse(RefusalCode.UNKNOWN_PERSON)
    # Every comparison below uses the one identity rule (policy.identity): case, spaces and
    # directory aliases never make two spellings of one person or agent differ.
    pid = directory.canonical_person(person.id)
    if directory.is_agent(pid):
        return _refuse(RefusalCode.AGENT_IDENTITY)
    if pid == canonical_agent(request.requester):
        return _refuse(RefusalCode.REQUESTER)
    if request.on_behalf_of and pid == directory.canonical_person(request.on_behalf_of):
        return _refuse(RefusalCode.ON_BEHALF_OF)
    agent = directory.agent(request.requester)
    if agent is not None and pid == directory.canonical_person(agent.owner):
        return _refuse(RefusalCode.AGENT_OWNER)
    if evaluation.outcome is not Outcome.REQUIRE_APPROVAL:
        return _refuse(RefusalCode.NOT_AWAITING_APPROVAL)
    if any(directory.canonical_person(voter) == pid for voter in votes):
        return _refuse(RefusalCode.ALREADY_VOTED)
    eligible = list(evaluation.requirement.eligible_groups)
    eligible += [g for g in extra_groups if g not in eligible]
    mine = directory.groups_of(pid)
    counted = tuple(g for g in eligible if g in mine)
    if not counted:
        return Refused(
            RefusalCode.NOT_ELIGIBLE,
            "Only members of " + _join(eligible) + " can decide this request.",
        )
    return Allowed(counted)


def _refuse(code: RefusalCode) -> Refused:
    return Refused(code, _REASONS[code])


def _join(groups: list[str]) -> str:
    if len(groups) <= 1:
        return "".join(groups) or "the approver groups"
    return ", ".join(groups[:-1]) + " or " + groups[-1]
