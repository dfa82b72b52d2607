"""The identity directory: people, groups, agents and who owns which resources.

A click in Slack or Teams, or an API call, is mapped to a person through this directory only;
a chat user who is not listed here is never an approver.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from policy.globs import GlobSet
from policy.identity import canonical_agent, canonical_email, canonical_person


@dataclass(frozen=True)
class Person:
    """A human who may appear as requester, principal or approver.

    Attributes:
        id: Canonical identity: the email address, lower-cased.
        name: Display name.
        slack_id: Slack user id (``U0...``), if they use Slack.
        teams_id: Microsoft Entra (AAD) object id, lower-cased, if they use Teams.
        groups: Every group they belong to.
        aliases: Other addresses of theirs (canonical form); each names this person.
    """

    id: str
    name: str
    slack_id: str | None = None
    teams_id: str | None = None
    groups: frozenset[str] = frozenset()
    aliases: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Agent:
    """A non-human identity that sends requests.

    Attributes:
        id: The agent id as it appears in ``AgentRequest.requester``.
        owner: Email of the person accountable for it (never an approver of its requests).
        team: The team it belongs to, if any.
    """

    id: str
    owner: str
    team: str | None = None


@dataclass(frozen=True)
class ResourceOwner:
    """Which group owns the resources that match ``patterns`` (first entry wins)."""

    patterns: GlobSet
    group: str


@dataclass(frozen=True)
class Directory:
    """Lookup tables built once per policy load. Every lookup canonicalises its key with the
    one identity rule (:mod:`policy.identity`): case, spaces and aliases never matter."""

    _people: Mapping[str, Person]
    _agents: Mapping[str, Agent]
    _groups: Mapping[str, frozenset[str]]
    resource_owners: tuple[ResourceOwner, ...] = ()
    group_descriptions: Mapping[str, str] = field(default_factory=dict)
    _by_slack: Mapping[str, Person] = field(default_factory=dict)
    _by_teams: Mapping[str, Person] = field(default_factory=dict)
    _aliases: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        people: Iterable[Person],
        agents: Iterable[Agent] = (),
        groups: Mapping[str, Iterable[str]] | None = None,
        *,
        resource_owners: Iterable[ResourceOwner] = (),
        group_descriptions: Mapping[str, str] | None = None,
    ) -> Directory:
        """Index ``people`` and ``agents``.

        Args:
            people: Everyone, each with the groups listed on their own entry.
            agents: Agent identities.
            groups: Extra members per group (``group -> emails``); also declares empty groups.
            resource_owners: Resource patterns and the group owning them, in priority order.
            group_descriptions: Optional human text per group.

        Returns:
            The directory; a person's ``groups`` is the union of both ways of joining.
        """
        extra: dict[str, set[str]] = {}
        for group, members in (groups or {}).items():
            extra.setdefault(group, set()).update(canonical_email(m) for m in members)
        members_of: dict[str, set[str]] = {g: set() for g in extra}
        listed = list(people)
        for person in listed:
            for group in person.groups:
                members_of.setdefault(group, set()).add(canonical_email(person.id))
        for group, emails in extra.items():
            members_of[group].update(emails)
        by_id: dict[str, Person] = {}
        for person in listed:
            pid = canonical_email(person.id)
            joined = frozenset(g for g, emails in members_of.items() if pid in emails)
            by_id[pid] = Person(
                id=pid,
                name=person.name,
                slack_id=person.slack_id,
                teams_id=person.teams_id.strip().lower() if person.teams_id else None,
                groups=joined,
                aliases=frozenset(a for a in (canonical_email(x) for x in person.aliases)
                                  if a and a != pid),
            )
        aliases: dict[str, str] = {}
        for p in by_id.values():
            for alias in p.aliases:
                # An alias that is someone's own address, or claimed twice, names nobody
                # else: the parser reports it; here the address keeps its own meaning.
                if alias not in by_id:
                    aliases.setdefault(alias, p.id)
        return cls(
            _people=MappingProxyType(by_id),
            _agents=MappingProxyType({canonical_agent(a.id): a for a in agents}),
            _groups=MappingProxyType({g: frozenset(e) for g, e in members_of.items()}),
            resource_owners=tuple(resource_owners),
            group_descriptions=MappingProxyType(dict(group_descriptions or {})),
            _by_slack=MappingProxyType({p.slack_id: p for p in by_id.values() if p.slack_id}),
            _by_teams=MappingProxyType({p.teams_id: p for p in by_id.values() if p.teams_id}),
            _aliases=MappingProxyType(aliases),
        )

    def resolve_alias(self, email: str) -> str | None:
        """The person id an address names: their own, or the one whose alias it is."""
        key = canonical_email(email)
        if key in self._people:
            return key
        return self._aliases.get(key)

    def canonical_person(self, value: str | None) -> str:
        """The canonical id of the person ``value`` names (an alias becomes their email);
        an address the directory does not know is returned in canonical form."""
        return canonical_person(value, self)

    def person(self, email: str | None) -> Person | None:
        """The person whose email (or alias) is ``email``, in any spelling."""
        if not email:
            return None
        pid = self.resolve_alias(email)
        return self._people.get(pid) if pid else None

    def by_slack(self, user_id: str | None) -> Person | None:
        """The person with this Slack user id (exact match; Slack ids are upper-case)."""
        return self._by_slack.get(user_id) if user_id else None

    def by_teams(self, aad_object_id: str | None) -> Person | None:
        """The person with this Entra (AAD) object id (GUIDs compare case-insensitively)."""
        return self._by_teams.get(aad_object_id.strip().lower()) if aad_object_id else None

    def agent(self, agent_id: str | None) -> Agent | None:
        """The agent with this id (any spelling)."""
        return self._agents.get(canonical_agent(agent_id)) if agent_id else None

    def is_agent(self, identity: str | None) -> bool:
        """Whether ``identity`` names an agent."""
        return self.agent(identity) is not None

    def members(self, group: str) -> frozenset[str]:
        """Emails of the members of ``group`` (empty for an unknown group)."""
        return self._groups.get(group, frozenset())

    def groups_of(self, email: str | None) -> frozenset[str]:
        """Groups ``email`` belongs to (empty for an unknown person)."""
        person = self.person(email)
        return person.groups if person else frozenset()

    def has_group(self, group: str) -> bool:
        """Whether ``group`` is defined (it may have no members)."""
        return group in self._groups

    @property
    def groups(self) -> tuple[str, ...]:
        """Every defined group name, sorted."""
        return tuple(sorted(self._groups))

    @property
    def people(self) -> Iterator[Person]:
        """Everyone, in file order."""
        return iter(self._people.values())

    @property
    def agents(self) -> Iterator[Agent]:
        """Every agent, in file order."""
        return iter(self._agents.values())

    def owner_group(self, resource: str) -> tuple[int, str] | None:
        """``(index, group)`` of the first resource-owner entry matching ``resource``."""
        for index, entry in enumerate(self.resource_owners):
            if entry.patterns.match(resource):
                return index, entry.group
        return None
