"""What a matched rule demands: outcome, approvers, deadlines, escalation and channels."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from policy.durations import format_duration

DEFAULT_TIMEOUT_SECONDS = 3600
DEFAULT_GROUP = "admins"
DEFAULT_STEP_UP_WITHIN = 300  # seconds a passkey proof stays fresh unless the rule says
MAX_STEP_UP_WITHIN = 3600
MIN_STEP_UP_WITHIN = 30
MAX_STANDING = 24 * 3600  # a standing approval never outlives a day


class Outcome(str, Enum):
    """What the policy decided for a request before any human looked at it."""

    REQUIRE_APPROVAL = "require_approval"
    AUTO_APPROVE = "auto_approve"
    AUTO_DENY = "auto_deny"


class ChannelKind(str, Enum):
    """Where a card is posted."""

    SLACK_CHANNEL = "slack_channel"  # target: channel name or id, e.g. "#approvals"
    SLACK_DM = "slack_dm"  # target: a group; each member with a Slack id gets a DM
    TEAMS = "teams"  # target: the name of a saved/configured Teams conversation
    WEB = "web"  # target: "" (the web inbox)


@dataclass(frozen=True)
class ChannelTarget:
    """One place a request's card goes."""

    kind: ChannelKind
    target: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-safe form."""
        return {"kind": self.kind.value, "target": self.target}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChannelTarget:
        """Inverse of :meth:`to_dict`."""
        return cls(ChannelKind(data["kind"]), str(data.get("target", "")))

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.target}" if self.target else self.kind.value


@dataclass(frozen=True)
class Escalation:
    """One step of the escalation ladder, counted from the request's creation.

    Attributes:
        after_seconds: When the step fires if no decision has been reached.
        add_groups: Groups that become eligible to decide. An approval from a member who is
            eligible only through an added group stands in for any one missing per-group
            approval (see :func:`policy.quorum.quorum_met`).
        page_groups: Groups whose members are paged (DM'd with the card) but not made eligible.
    """

    after_seconds: int
    add_groups: tuple[str, ...] = ()
    page_groups: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {
            "after_seconds": self.after_seconds,
            "add_groups": list(self.add_groups),
            "page_groups": list(self.page_groups),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Escalation:
        """Inverse of :meth:`to_dict`."""
        return cls(
            int(data["after_seconds"]),
            tuple(data.get("add_groups", ())),
            tuple(data.get("page_groups", ())),
        )


@dataclass(frozen=True)
class Requirement:
    """Who must approve, how many, by when, and where the card goes.

    Attributes:
        groups: Minimum approvals per group (``{"dba": 1, "secops": 1}``).
        quorum: Distinct approvers needed in total (at least the sum of ``groups``).
        eligible_groups: Every group whose members may vote (a superset of ``groups``).
        deny_quorum: Distinct eligible denials that deny the request (1: one veto).
        require_reason: The requester must give a ``reason``; the intake rejects otherwise.
        require_deny_comment: A deny vote must carry a comment.
        timeout_seconds: Seconds from creation until the request times out.
        on_timeout: Always ``"deny"``: an undecided request fails closed.
        reminders: Seconds after creation at which approvers are reminded.
        escalation: The escalation ladder, by ascending ``after_seconds``.
        channels: Where the card is posted.
        masking_profile: Name of the masking profile for this rule (``None``: the default).
        disable_detectors: Detectors of that profile switched off for this rule.
        partial_groups: Groups whose members see partial values (e.g. ``****1234``) instead
            of the profile's full masking; everyone else sees the masked view.
        step_up: ``"passkey"``: every vote needs a fresh WebAuthn assertion bound to the
            request, its payload, the choice and the person (``None``: a click is enough).
        step_up_within: seconds within which that proof must have been made.
        standing_max: the longest standing approval approvers may grant (0: none).
        standing_params: params a standing approval covers within bounds (JSON Schema
            fragments); every other param must be identical.
        editable: params an approver may change before approving, with their bounds.
        deny_reasons: preset reasons offered when denying.
        extend_max: how much the deadline may be extended in total (0: not at all).
    """

    groups: dict[str, int] = field(default_factory=lambda: {DEFAULT_GROUP: 1})
    quorum: int = 1
    eligible_groups: tuple[str, ...] = (DEFAULT_GROUP,)
    deny_quorum: int = 1
    require_reason: bool = False
    require_deny_comment: bool = False
    timeout_seconds: int = DEFAULT_TIMEOUT_SECONDS
    on_timeout: str = "deny"
    reminders: tuple[int, ...] = ()
    escalation: tuple[Escalation, ...] = ()
    channels: tuple[ChannelTarget, ...] = (ChannelTarget(ChannelKind.WEB),)
    masking_profile: str | None = None
    disable_detectors: tuple[str, ...] = ()
    partial_groups: tuple[str, ...] = ()
    step_up: str | None = None
    step_up_within: int = DEFAULT_STEP_UP_WITHIN
    standing_max: int = 0
    standing_params: dict[str, Any] = field(default_factory=dict)
    editable: dict[str, Any] = field(default_factory=dict)
    deny_reasons: tuple[str, ...] = ()
    extend_max: int = 0

    def __post_init__(self) -> None:
        if self.on_timeout != "deny":
            raise ValueError("on_timeout must be 'deny': an undecided request fails closed")
        if self.quorum < max(1, sum(self.groups.values())):
            raise ValueError("quorum must be at least 1 and at least the sum of group minimums")
        if not set(self.groups) <= set(self.eligible_groups):
            raise ValueError("eligible_groups must include every group in groups")
        if self.deny_quorum < 1:
            raise ValueError("deny_quorum must be at least 1")

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.groups.items()))) ^ hash(
            (self.quorum, self.eligible_groups, self.timeout_seconds, self.channels)
        )

    @property
    def escalation_groups(self) -> frozenset[str]:
        """Every group any escalation step adds."""
        return frozenset(g for step in self.escalation for g in step.add_groups)

    @property
    def stand_in_groups(self) -> tuple[str, ...]:
        """Escalation groups that are not required groups: an approval counted toward one of
        them may fill any per-group slot (what the store's quorum count needs to know)."""
        return tuple(sorted(self.escalation_groups - set(self.groups)))

    def added_groups_at(self, elapsed_seconds: float) -> tuple[str, ...]:
        """Groups added by the escalation steps that have fired after ``elapsed_seconds``."""
        out: list[str] = []
        for step in self.escalation:
            if step.after_seconds <= elapsed_seconds:
                out.extend(g for g in step.add_groups if g not in out)
        return tuple(out)

    def describe(self) -> str:
        """Short text for cards: ``2 of dba``, ``1 of dba and 1 of secops``, ``3 approvals: ...``."""
        parts = [f"{n} of {g}" for g, n in self.groups.items()]
        text = " and ".join(parts) if parts else "any eligible approver"
        extra = sorted(set(self.eligible_groups) - set(self.groups))
        if self.quorum > sum(self.groups.values()):
            scope = ", ".join(list(self.groups) + extra)
            text = f"{self.quorum} approvals from {scope}" + (f" ({text})" if parts else "")
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; :meth:`from_dict` restores an equal object."""
        return {
            "groups": dict(self.groups),
            "quorum": self.quorum,
            "eligible_groups": list(self.eligible_groups),
            "deny_quorum": self.deny_quorum,
            "require_reason": self.require_reason,
            "require_deny_comment": self.require_deny_comment,
            "timeout_seconds": self.timeout_seconds,
            "on_timeout": self.on_timeout,
            "reminders": list(self.reminders),
            "escalation": [e.to_dict() for e in self.escalation],
            "channels": [c.to_dict() for c in self.channels],
            "masking_profile": self.masking_profile,
            "disable_detectors": list(self.disable_detectors),
            "partial_groups": list(self.partial_groups),
            "step_up": self.step_up,
            "step_up_within": self.step_up_within,
            "standing_max": self.standing_max,
            "standing_params": dict(self.standing_params),
            "editable": dict(self.editable),
            "deny_reasons": list(self.deny_reasons),
            "extend_max": self.extend_max,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Requirement:
        """Inverse of :meth:`to_dict`."""
        return cls(
            groups={str(k): int(v) for k, v in data["groups"].items()},
            quorum=int(data["quorum"]),
            eligible_groups=tuple(data["eligible_groups"]),
            deny_quorum=int(data.get("deny_quorum", 1)),
            require_reason=bool(data.get("require_reason", False)),
            require_deny_comment=bool(data.get("require_deny_comment", False)),
            timeout_seconds=int(data.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)),
            on_timeout=str(data.get("on_timeout", "deny")),
            reminders=tuple(int(r) for r in data.get("reminders", ())),
            escalation=tuple(Escalation.from_dict(e) for e in data.get("escalation", ())),
            channels=tuple(ChannelTarget.from_dict(c) for c in data.get("channels", ())),
            masking_profile=data.get("masking_profile"),
            disable_detectors=tuple(data.get("disable_detectors", ())),
            partial_groups=tuple(data.get("partial_groups", ())),
            step_up=data.get("step_up") or None,
            step_up_within=int(data.get("step_up_within") or DEFAULT_STEP_UP_WITHIN),
            standing_max=int(data.get("standing_max") or 0),
            standing_params=dict(data.get("standing_params") or {}),
            editable=dict(data.get("editable") or {}),
            deny_reasons=tuple(data.get("deny_reasons") or ()),
            extend_max=int(data.get("extend_max") or 0),
        )

    def details(self) -> list[str]:
        """One line per setting, for ``policy explain``."""
        lines = [f"approvers: {self.describe()} (distinct people: {self.quorum})"]
        extra = [g for g in self.eligible_groups if g not in self.groups]
        if extra:
            lines.append(f"also eligible: {', '.join(extra)}")
        lines.append(f"denied by: {self.deny_quorum} eligible deny vote(s)")
        if self.require_reason:
            lines.append("the requester must give a reason")
        if self.require_deny_comment:
            lines.append("a deny vote needs a comment")
        lines.append(f"times out after {format_duration(self.timeout_seconds)}, then denied")
        if self.reminders:
            lines.append("reminders at " + ", ".join(format_duration(r) for r in self.reminders))
        for step in self.escalation:
            what = []
            if step.add_groups:
                what.append("add " + ", ".join(step.add_groups))
            if step.page_groups:
                what.append("page " + ", ".join(step.page_groups))
            lines.append(f"after {format_duration(step.after_seconds)}: {' and '.join(what)}")
        lines.append("cards: " + ", ".join(str(c) for c in self.channels))
        if self.step_up:
            lines.append(f"step-up: every vote needs a {self.step_up} proof made within "
                         f"{format_duration(self.step_up_within)} (chat buttons open the inbox)")
        if self.standing_max:
            lines.append(f"standing approvals for up to {format_duration(self.standing_max)}"
                         + (f" (params within bounds: {', '.join(self.standing_params)})"
                            if self.standing_params else ""))
        if self.editable:
            lines.append("approvers may edit: " + ", ".join(self.editable))
        if self.deny_reasons:
            lines.append("deny reasons: " + "; ".join(self.deny_reasons))
        if self.extend_max:
            lines.append(f"the deadline may be extended by up to {format_duration(self.extend_max)}")
        if self.masking_profile or self.disable_detectors or self.partial_groups:
            mask = f"masking: profile {self.masking_profile or 'default'}"
            if self.disable_detectors:
                mask += f", without {', '.join(self.disable_detectors)}"
            if self.partial_groups:
                mask += f"; partial values for {', '.join(self.partial_groups)}"
            lines.append(mask)
        return lines
