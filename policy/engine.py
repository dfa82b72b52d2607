"""Rules, the compiled policy, and evaluating a request against it (first match wins)."""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from policy.conditions import Condition, ConditionEvalError, activation_for
from policy.directory import Directory
from policy.globs import GlobSet
from policy.identity import canonical_agent, canonical_context, canonical_environment
from policy.limits import Limits
from policy.request import PolicyRequest, RequestT
from policy.requirement import DEFAULT_GROUP, Outcome, Requirement
from policy.window import Window

DEFAULT_RULE_ID = "default"
# Stored explanations list at most this many earlier rules (the CLI shows them all).
EXPLAIN_LIMIT = 100

_MISSING = object()


@dataclass(frozen=True)
class ContextMatch:
    """``context.<path>`` must equal one of ``values`` (text values are globs)."""

    path: tuple[str, ...]
    globs: GlobSet
    exact: tuple[int | float | bool, ...]

    @property
    def name(self) -> str:
        """``context.ticket.kind``."""
        return "context." + ".".join(self.path)

    def miss(self, context: Mapping[str, Any]) -> str | None:
        """``None`` when it matches, else why not."""
        value: Any = context
        for part in self.path:
            if not isinstance(value, Mapping) or part not in value:
                return f"{self.name} is absent"
            value = value[part]
        if isinstance(value, str) and self.globs.match(value):
            return None
        # Type-strict equality: true must not match 1.
        if any(type(value) is type(x) and value == x for x in self.exact):
            return None
        wanted = [f"'{p}'" for p in self.globs.patterns] + [_json(x) for x in self.exact]
        return f"{self.name} {_show(value)} does not match {' or '.join(wanted)}"


@dataclass(frozen=True)
class OwnerRequirement:
    """``require.resource_owner``: approvals from the group owning the resource."""

    approvals: int
    otherwise: str = DEFAULT_GROUP


@dataclass(frozen=True)
class Rule:
    """One compiled rule. ``None`` matchers match anything."""

    id: str
    line: int
    outcome: Outcome
    requirement: Requirement
    description: str = ""
    reason: str = ""
    action: GlobSet | None = None
    resource: GlobSet | None = None
    requester: GlobSet | None = None
    on_behalf_of: GlobSet | None = None
    team: GlobSet | None = None
    environment: GlobSet | None = None
    context: tuple[ContextMatch, ...] = ()
    condition: Condition | None = None
    window: Window | None = None
    resource_owner: OwnerRequirement | None = None
    _owner_cache: dict[str, Requirement] = field(default_factory=dict, compare=False, repr=False)
    # (field index in _State.fields, regex match) per glob matcher, in checking order.
    _fast: tuple[tuple[int, Any], ...] = field(default=(), compare=False, repr=False)
    # "✗ id (line n): action '" and "' does not match 'glob'": lines for skipped rules.
    _skip_text: tuple[str, str] = field(default=("", ""), compare=False, repr=False)
    _label: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        fast = tuple(
            (index, globs.matcher)
            for index, globs in enumerate(
                (self.action, self.resource, self.environment, self.requester,
                 self.on_behalf_of, self.team)
            )
            if globs is not None
        )
        object.__setattr__(self, "_fast", fast)
        label = f"{self.id} (line {self.line})" if self.line else self.id
        object.__setattr__(self, "_label", label)
        object.__setattr__(
            self, "_skip_text", (f"✗ {label}: action '", f"' does not match {self.action}")
        )

    @property
    def matches_everything(self) -> bool:
        """Whether no matcher, condition or window narrows this rule."""
        return not any(
            (self.action, self.resource, self.requester, self.on_behalf_of, self.team,
             self.environment, self.context, self.condition)
        )

    def label(self) -> str:
        """``prod-data-export (line 40)``."""
        return self._label

    def requirement_for(self, request: PolicyRequest, directory: Directory) -> tuple[Requirement, str]:
        """The requirement with the resource owner resolved, and a note saying how."""
        owner = self.resource_owner
        if owner is None:
            return self.requirement, ""
        found = directory.owner_group(request.resource)
        if found is None:
            group = owner.otherwise
            note = f"no owner is registered for {request.resource!r}, so {group} stands in"
        else:
            index, group = found
            note = f"{request.resource!r} is owned by {group} (directory.resources[{index}])"
        cached = self._owner_cache.get(group)
        if cached is None:
            base = self.requirement
            groups = dict(base.groups)
            groups[group] = groups.get(group, 0) + owner.approvals
            eligible = base.eligible_groups + ((group,) if group not in base.eligible_groups else ())
            cached = dataclasses.replace(
                base, groups=groups, quorum=base.quorum + owner.approvals, eligible_groups=eligible
            )
            self._owner_cache[group] = cached
        return cached, note


def _show(value: Any) -> str:
    return f"'{value}'" if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return repr(value) if not isinstance(value, dict | list) else type(value).__name__


@dataclass(frozen=True)
class Evaluation:
    """What the policy says about one request; stored with it and shown on its card.

    Attributes:
        rule_id: The matching rule, or ``"default"``.
        outcome: Require approval, auto-approve or auto-deny.
        requirement: Approvers, deadlines, channels and masking for the request.
        reason: Why an automatic decision was made ("" when approval is required).
        explanation: One line per earlier rule saying why it did not match, then the match.
        summary: For cards: ``prod-data-export — 2 of dba``.
        policy_version: Short SHA-256 of the policy file.
    """

    rule_id: str
    outcome: Outcome
    requirement: Requirement
    reason: str
    explanation: list[str]
    summary: str
    policy_version: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; :meth:`from_dict` restores an equal object."""
        return {
            "rule_id": self.rule_id,
            "outcome": self.outcome.value,
            "requirement": self.requirement.to_dict(),
            "reason": self.reason,
            "explanation": list(self.explanation),
            "summary": self.summary,
            "policy_version": self.policy_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`."""
        return cls(
            rule_id=str(data["rule_id"]),
            outcome=Outcome(data["outcome"]),
            requirement=Requirement.from_dict(data["requirement"]),
            reason=str(data.get("reason", "")),
            explanation=[str(x) for x in data.get("explanation", [])],
            summary=str(data.get("summary", "")),
            policy_version=str(data.get("policy_version", "")),
        )

    def explain_text(self) -> str:
        """Multi-line text for ``signoff policy explain``."""
        lines = [f"Policy {self.policy_version}: {self.summary}", ""]
        lines += [f"  {line}" for line in self.explanation]
        lines.append("")
        if self.outcome is Outcome.REQUIRE_APPROVAL:
            lines.append("Requires approval:")
            lines += [f"  {line}" for line in self.requirement.details()]
        elif self.outcome is Outcome.AUTO_APPROVE:
            lines.append(f"Auto-approved: {self.reason}")
        else:
            lines.append(f"Auto-denied: {self.reason}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Policy:
    """A loaded, validated policy. Immutable; reloading builds a new one.

    Attributes:
        rules: The rules in file order.
        default: What a request matching no rule gets (id ``"default"``; never auto-approves).
        directory: People, groups, agents and resource owners.
        masking_profiles: ``masking.profiles`` as plain dicts, each with its ``name``; the
            masking engine validates them (``MaskingProfile.model_validate``).
        version: The first 12 hex digits of the SHA-256 of the file text.
        source: The file name, for messages.
        custom_detectors: ``masking.detectors`` as plain dicts (the masking engine's
            ``CustomDetector`` shape), shared by every profile.
    """

    rules: tuple[Rule, ...]
    default: Rule
    directory: Directory
    masking_profiles: Mapping[str, dict[str, Any]]
    version: str
    source: str = "policy.yaml"
    custom_detectors: tuple[dict[str, Any], ...] = ()
    _buckets: Mapping[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _anywhere: tuple[int, ...] = field(default=(), repr=False)
    _bucket_sets: Mapping[str, frozenset[int]] = field(default_factory=dict, repr=False)
    _anywhere_set: frozenset[int] = field(default=frozenset(), repr=False)
    _skip_heads: tuple[str, ...] = field(default=(), repr=False)
    _skip_tails: tuple[str, ...] = field(default=(), repr=False)
    limits: Limits = field(default_factory=Limits)
    agent_limits: Mapping[str, Limits] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        rules: tuple[Rule, ...],
        default: Rule,
        directory: Directory,
        masking_profiles: Mapping[str, dict[str, Any]],
        version: str,
        source: str = "policy.yaml",
        *,
        custom_detectors: tuple[dict[str, Any], ...] = (),
        limits: Limits | None = None,
        agent_limits: Mapping[str, Limits] | None = None,
    ) -> Policy:
        """Assemble a policy and its action index.

        The index maps an action's first dotted segment (``db`` in ``db.export``) to the
        rules that can match it: rules whose every action glob starts with that literal
        segment, plus every rule that could match any action. Rules outside it provably
        fail on their action glob, so evaluation skips them.
        """
        by_segment: dict[str, list[int]] = {}
        anywhere: list[int] = []
        for index, rule in enumerate(rules):
            segments = _segments(rule.action)
            if segments is None:
                anywhere.append(index)
            else:
                for segment in segments:
                    by_segment.setdefault(segment, []).append(index)
        buckets = {
            segment: tuple(sorted(set(indices) | set(anywhere)))
            for segment, indices in by_segment.items()
        }
        return cls(rules, default, directory, dict(masking_profiles), version, source,
                   custom_detectors, buckets, tuple(anywhere),
                   {k: frozenset(v) for k, v in buckets.items()}, frozenset(anywhere),
                   tuple(r._skip_text[0] for r in rules), tuple(r._skip_text[1] for r in rules),
                   limits or Limits(),
                   {canonical_agent(k): v for k, v in (agent_limits or {}).items()})

    def limits_for(self, agent_id: str) -> Limits:
        """The flood limits for ``agent_id``, in any spelling (its own over ``limits:``)."""
        return self.agent_limits.get(canonical_agent(agent_id), self.limits)

    def rule(self, rule_id: str) -> Rule | None:
        """The rule called ``rule_id`` (``"default"`` gives the default)."""
        if rule_id == DEFAULT_RULE_ID:
            return self.default
        return next((r for r in self.rules if r.id == rule_id), None)

    def candidate_set(self, action: str) -> frozenset[int]:
        """:meth:`candidates` as a set."""
        segment = action.split(".", 1)[0] + "." if "." in action else None
        if segment is not None and segment in self._bucket_sets:
            return self._bucket_sets[segment]
        return self._anywhere_set

    def candidates(self, action: str) -> tuple[int, ...]:
        """Indices of the rules that may match ``action``, in file order."""
        segment = action.split(".", 1)[0] + "." if "." in action else None
        if segment is not None and segment in self._buckets:
            return self._buckets[segment]
        return self._anywhere

    def evaluate(
        self,
        request: PolicyRequest,
        now: datetime.datetime | None = None,
        *,
        explain_limit: int | None = EXPLAIN_LIMIT,
    ) -> Evaluation:
        """Find the first rule matching ``request`` and what it requires.

        Args:
            request: The agent's request.
            now: Evaluation time (windows and ``now`` in conditions); default: the clock.
            explain_limit: Most earlier rules to list in the explanation (``None``: all).

        Returns:
            The evaluation. A request matching no rule gets the file's default, which never
            auto-approves.
        """
        request = canonical_request(request, self.directory)
        when = now or datetime.datetime.now(datetime.UTC)
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.UTC)
        state = _State(request, self.directory, when)
        fields = state.fields
        rules = self.rules
        condition_misses: dict[int, str] = {}
        matched: Rule = self.default
        matched_index = len(rules)
        match_notes: list[str] = []
        for index in self.candidates(request.action):
            rule = rules[index]
            for position, match in rule._fast:
                value = fields[position]
                if value is None or match(value) is None:
                    break
            else:
                miss, notes = _check_rest(rule, state)
                if miss is None:
                    matched, matched_index, match_notes = rule, index, notes
                    break
                condition_misses[index] = miss
        # Explanations are built only for the rules shown: formatting every miss of a long
        # policy would cost more than finding the match.
        shown = matched_index if explain_limit is None else min(matched_index, explain_limit)
        action = request.action
        candidates = self.candidate_set(action)
        heads, tails = self._skip_heads, self._skip_tails
        explanation = [
            heads[i] + action + tails[i] if i not in candidates
            else f"✗ {rules[i].label()}: {condition_misses.get(i) or _glob_reason(rules[i], state)}"
            for i in range(shown)
        ]
        if shown < matched_index:
            rest = matched_index - shown
            explanation.append(
                f"… {rest} more earlier rule{'s' if rest != 1 else ''} did not match "
                "(`signoff policy explain` lists them all)"
            )
        return self._conclude(matched, match_notes, state, explanation)

    def _conclude(
        self, rule: Rule, notes: list[str], state: _State, explanation: list[str]
    ) -> Evaluation:
        requirement, owner_note = rule.requirement_for(state.request, self.directory)
        outcome, reason = rule.outcome, rule.reason
        if rule.window is not None and not rule.window.contains(state.now):
            outcome = Outcome.AUTO_DENY
            reason = rule.window.reason or (
                f"Allowed only {rule.window}; it is now {rule.window.local_text(state.now)}."
            )
            notes.append(f"it is {rule.window.local_text(state.now)}, outside {rule.window}")
        elif rule.window is not None:
            notes.append(f"it is {rule.window.local_text(state.now)}, inside {rule.window}")
        if owner_note:
            notes.append(owner_note)
        if rule is self.default:
            head = "✓ no rule matched, so the default applies"
        else:
            head = f"✓ {rule.label()} matched"
        explanation.append(head + (": " + "; ".join(notes) if notes else ""))
        if outcome is Outcome.AUTO_APPROVE:
            reason = reason or f"Auto-approved by policy rule {rule.id}."
            summary = f"{rule.id} — auto-approved"
        elif outcome is Outcome.AUTO_DENY:
            reason = reason or f"Denied by policy rule {rule.id}."
            summary = f"{rule.id} — auto-denied"
        else:
            reason = ""
            summary = f"{rule.id} — {requirement.describe()}"
        return Evaluation(
            rule_id=rule.id,
            outcome=outcome,
            requirement=requirement,
            reason=reason,
            explanation=explanation,
            summary=summary,
            policy_version=self.version,
        )


def canonical_request(request: RequestT, directory: Directory) -> RequestT:
    """``request`` with its requester, on-behalf-of person and environment in the one
    identity form (:mod:`policy.identity`), as every rule sees it; the rest as sent."""
    update: dict[str, Any] = {}
    requester = canonical_agent(request.requester)
    if requester != request.requester:
        update["requester"] = requester
    if request.on_behalf_of:
        person = directory.canonical_person(request.on_behalf_of)
        if person != request.on_behalf_of:
            update["on_behalf_of"] = person
    env = request.context.get("environment")
    if isinstance(env, str) and canonical_environment(env) != env:
        update["context"] = canonical_context(request.context)
    return request.model_copy(update=update) if update else request


def _segments(globs: GlobSet | None) -> set[str] | None:
    """Literal first segments (``"db."``) every glob requires, or ``None`` if any is open."""
    if globs is None:
        return None
    out: set[str] = set()
    for prefix in globs.literal_prefixes:
        if "." not in prefix:
            return None
        out.add(prefix.split(".", 1)[0] + ".")
    return out


class _State:
    """Per-request values, computed at most once however many rules look at them."""

    def __init__(self, request: PolicyRequest, directory: Directory, now: datetime.datetime):
        self.request = request
        self.directory = directory
        self.now = now
        self.agent = directory.agent(request.requester)
        team = self.agent.team if self.agent is not None else None
        # The order of Rule._fast's field indices.
        self.fields: tuple[str | None, ...] = (
            request.action, request.resource, request.environment, request.requester,
            request.on_behalf_of, team,
        )
        self._activation: dict[str, Any] | None = None

    @property
    def activation(self) -> dict[str, Any]:
        if self._activation is None:
            agent = None
            if self.agent is not None:
                agent = {"id": self.agent.id, "owner": self.agent.owner,
                         "team": self.agent.team or ""}
            self._activation = activation_for(
                self.request.model_dump(mode="json"), agent, self.now
            )
        return self._activation


def _glob_miss(name: str, value: str | None, globs: GlobSet | None) -> str | None:
    if globs is None:
        return None
    if value is None:
        return f"{name} is absent (wanted {globs})"
    if globs.match(value):
        return None
    return f"{name} '{value}' does not match {globs}"


_FIELD_NAMES = ("action", "resource", "environment", "requester", "on_behalf_of", "team")


def _glob_reason(rule: Rule, state: _State) -> str:
    """Why ``rule``'s glob or context matchers reject the request (it is known that one does)."""
    for name, value, globs in zip(
        _FIELD_NAMES,
        state.fields,
        (rule.action, rule.resource, rule.environment, rule.requester, rule.on_behalf_of,
         rule.team),
        strict=True,
    ):
        miss = _glob_miss(name, value, globs)
        if miss is not None:
            return miss
    for ctx in rule.context:
        miss = ctx.miss(state.request.context)
        if miss is not None:
            return miss
    return "did not match"


def _check_rest(rule: Rule, state: _State) -> tuple[str | None, list[str]]:
    """Context matchers and the condition of a rule whose globs all matched.

    Returns:
        ``(None, notes)`` when the rule matches, else ``(why not, [])``.
    """
    for ctx in rule.context:
        miss = ctx.miss(state.request.context)
        if miss is not None:
            return miss, []
    notes: list[str] = []
    if rule.condition is not None:
        try:
            if not rule.condition.evaluate(state.activation):
                return f"condition is false: {rule.condition.source}", []
            notes.append("condition is true")
        except ConditionEvalError as exc:
            if rule.outcome is Outcome.AUTO_APPROVE:
                return (
                    f"condition could not be evaluated ({exc}); an error never auto-approves, "
                    "so the rule is skipped"
                ), []
            notes.append(
                f"condition could not be evaluated ({exc}); treated as matching, because "
                "an error must not let a later, laxer rule apply"
            )
    return None, notes
