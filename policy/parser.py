"""From policy text to a :class:`~policy.engine.Policy`, collecting every error on the way.

Pure: text in, policy (or :class:`~policy.errors.PolicyError`) out. The JSON Schema catches
shape errors; the checks here catch what a schema cannot: unknown groups, duplicate people,
quorums that can never be met, unreachable rules, bad CEL, unknown time zones.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from policy.conditions import Condition, ConditionSyntaxError, compile_condition
from policy.directory import Agent, Directory, Person, ResourceOwner
from policy.durations import format_duration, parse_duration
from policy.engine import DEFAULT_RULE_ID, ContextMatch, OwnerRequirement, Policy, Rule
from policy.errors import PolicyError, PolicyIssue
from policy.globs import GlobSet
from policy.identity import canonical, canonical_agent, canonical_email, canonical_environment
from policy.limits import Limits
from policy.requirement import (
    DEFAULT_GROUP,
    DEFAULT_STEP_UP_WITHIN,
    DEFAULT_TIMEOUT_SECONDS,
    MAX_STANDING,
    MAX_STEP_UP_WITHIN,
    MIN_STEP_UP_WITHIN,
    ChannelKind,
    ChannelTarget,
    Escalation,
    Outcome,
    Requirement,
)
from policy.schema import schema_issues
from policy.window import DAYS, Window, parse_hours
from policy.yamlsource import Path, SourceMap, format_path, load_yaml

# Validates the whole `masking:` section; raises on errors (a pydantic ValidationError, whose
# locations are mapped to lines, or any exception with a message).
MaskingValidator = Callable[[dict[str, Any]], object]

_APPROVER_PART = re.compile(r"^\s*(\d+)\s+(?:of|from)\s+(\S+)\s*$")
_HOURS = re.compile(r"^\d\d:\d\d-\d\d:\d\d$")
_AND = re.compile(r"\s+(?:and|AND|&)\s+")
BUILTIN_PROFILES = frozenset({"default"})

# A condition's identity names compared with string literals (==, != or in [...]).
_IDENTITY_NAME = r"(?:request\.)?(?:context\.)?(environment|requester|on_behalf_of)"
_STRING = r"(?:\"((?:[^\"\\]|\\.)*)\"|'((?:[^'\\]|\\.)*)')"
_COMPARED = re.compile(rf"\b{_IDENTITY_NAME}\s*(?:==|!=)\s*{_STRING}"
                       rf"|{_STRING}\s*(?:==|!=)\s*{_IDENTITY_NAME}\b")
_IN_LIST = re.compile(rf"\b{_IDENTITY_NAME}\s+in\s*\[([^\]]*)\]")
_LITERAL = re.compile(_STRING)


def _identity_literals(source: str) -> list[tuple[str, str]]:
    """(name, literal) for each string literal a condition compares an identity name with."""
    out = []
    for m in _COMPARED.finditer(source):
        name = m.group(1) or m.group(6)
        literal = next(g for g in (m.group(2), m.group(3), m.group(4), m.group(5))
                       if g is not None)
        out.append((name, literal))
    for m in _IN_LIST.finditer(source):
        for lit in _LITERAL.finditer(m.group(2)):
            out.append((m.group(1), lit.group(1) if lit.group(1) is not None else lit.group(2)))
    return out


# Rule matchers compared with the one identity rule (policy.identity).
_IDENTITY_FIELDS = frozenset({"requester", "on_behalf_of", "environment"})
_WILDCARD = re.compile(r"[*?\[]")


def policy_version(text: str) -> str:
    """Short SHA-256 of the policy text: what evaluations and audit entries record."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def parse_policy(
    text: str,
    source: str = "policy.yaml",
    *,
    masking_validator: MaskingValidator | None = None,
) -> Policy:
    """Parse and check a policy file's text.

    Args:
        text: The YAML text.
        source: The file name, for messages.
        masking_validator: Optional check for each ``masking:`` profile (``policy check``
            passes the masking engine's).

    Returns:
        The compiled policy.

    Raises:
        PolicyError: Listing every problem found, each with line and column.
    """
    data, smap, issues = load_yaml(text)
    if data is None:
        raise PolicyError(issues, source)
    if not isinstance(data, dict):
        issues.append(PolicyIssue(1, 1, "the policy file must be a mapping with version, directory and rules"))
        raise PolicyError(issues, source)
    issues.extend(schema_issues(data, smap))
    builder = _Builder(data, smap, issues, masking_validator)
    policy = builder.build(policy_version(text), source)
    if issues:
        raise PolicyError(_dedupe(issues), source)
    return policy


def _unconditional(rule: dict[str, Any]) -> bool:
    """Whether a rule as written narrows nothing (judged on the text, so that a rule whose
    condition failed to compile is not also reported as matching everything)."""
    return not _dict(rule.get("match")) and not rule.get("when")


def _dedupe(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    return sorted(set(issues))


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _strs(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in _list(value) if isinstance(v, str)]


class _Builder:
    def __init__(
        self,
        data: dict[str, Any],
        smap: SourceMap,
        issues: list[PolicyIssue],
        masking_validator: MaskingValidator | None,
    ) -> None:
        self.data = data
        self.smap = smap
        self.issues = issues
        self.masking_validator = masking_validator
        self.directory = Directory.build([])
        self.profiles: dict[str, dict[str, Any]] = {}
        self.detectors: tuple[dict[str, Any], ...] = ()

    # --- helpers --------------------------------------------------------------------------
    def error(self, path: Path, message: str, *, key: bool = False) -> None:
        self.issues.append(self.smap.issue(path, message, key=key))

    def check_group(self, path: Path, name: Any) -> bool:
        if not isinstance(name, str):
            return False
        if self.directory.has_group(name):
            return True
        hint = difflib.get_close_matches(name, self.directory.groups, n=1)
        tail = f"; did you mean '{hint[0]}'?" if hint else ""
        self.error(path, f"group '{name}' is not defined in the directory{tail}")
        return False

    # --- whole file -----------------------------------------------------------------------
    def build(self, version: str, source: str) -> Policy:
        self.agent_limits: dict[str, dict[str, Any]] = {}
        self.directory = self._directory(_dict(self.data.get("directory")))
        self._masking(_dict(self.data.get("masking")))
        defaults = _dict(self.data.get("defaults"))
        default = self._default(_dict(self.data.get("default")), defaults)
        rules = self._rules(_list(self.data.get("rules")), defaults, default.requirement)
        limits = Limits.from_spec(_dict(self.data.get("limits")))
        return Policy.build(
            rules, default, self.directory, self.profiles, version, source,
            custom_detectors=self.detectors, limits=limits,
            agent_limits={a: Limits.from_spec(spec, limits) for a, spec in self.agent_limits.items()},
        )

    # --- directory ------------------------------------------------------------------------
    def _directory(self, spec: dict[str, Any]) -> Directory:
        base: Path = ("directory",)
        people: list[Person] = []
        seen: dict[str, dict[str, tuple[int, int]]] = {"email": {}, "slack": {}, "teams": {}}
        for i, entry in enumerate(_list(spec.get("people"))):
            if not isinstance(entry, dict) or not isinstance(entry.get("email"), str):
                continue
            path = (*base, "people", i)
            email = canonical_email(entry["email"])
            duplicate = False
            teams = entry.get("teams")
            for key, value in (
                ("email", email),
                ("slack", entry.get("slack")),
                ("teams", teams.lower() if isinstance(teams, str) else None),
            ):
                if not isinstance(value, str):
                    continue
                if value in seen[key]:
                    duplicate = duplicate or key == "email"
                    self.error(
                        (*path, key),
                        f"{key} '{value}' is already used on line {seen[key][value][0]}",
                    )
                else:
                    seen[key][value] = self.smap.at((*path, key))
            if duplicate:
                continue
            aliases = []
            for j, alias in enumerate(_strs(entry.get("aliases"))):
                key = canonical_email(alias)
                if key == email:
                    continue
                if key in seen["email"]:
                    self.error((*path, "aliases", j),
                               f"alias '{alias}' is already used on line {seen['email'][key][0]}")
                    continue
                seen["email"][key] = self.smap.at((*path, "aliases", j))
                aliases.append(key)
            people.append(
                Person(
                    id=email,
                    name=str(entry.get("name") or email),
                    slack_id=entry.get("slack") if isinstance(entry.get("slack"), str) else None,
                    teams_id=entry.get("teams") if isinstance(entry.get("teams"), str) else None,
                    groups=frozenset(_strs(entry.get("groups"))),
                    aliases=frozenset(aliases),
                )
            )
        emails = {p.id for p in people}
        groups: dict[str, list[str]] = {}
        descriptions: dict[str, str] = {}
        for name, group in _dict(spec.get("groups")).items():
            group = _dict(group)
            members = []
            for j, member in enumerate(_list(group.get("members"))):
                if not isinstance(member, str):
                    continue
                if canonical_email(member) not in emails:
                    self.error(
                        (*base, "groups", name, "members", j),
                        f"'{member}' is not a person in directory.people",
                    )
                    continue
                members.append(member)
            groups[name] = members
            if isinstance(group.get("description"), str):
                descriptions[name] = group["description"]
        agents: list[Agent] = []
        agent_ids: dict[str, int] = {}
        for i, entry in enumerate(_list(spec.get("agents"))):
            if not isinstance(entry, dict):
                continue
            path = (*base, "agents", i)
            agent_id, owner = entry.get("id"), entry.get("owner")
            if not isinstance(agent_id, str) or not isinstance(owner, str):
                continue
            key = canonical_agent(agent_id)
            if key in agent_ids:
                self.error((*path, "id"), f"agent '{agent_id}' is already listed on line {agent_ids[key]}")
                continue
            agent_ids[key] = self.smap.at((*path, "id"))[0]
            if canonical_email(owner) not in emails:
                self.error((*path, "owner"), f"owner '{owner}' is not a person in directory.people")
            team = entry.get("team")
            if isinstance(entry.get("limits"), dict):
                self.agent_limits[key] = entry["limits"]
            agents.append(Agent(agent_id, canonical_email(owner), team if isinstance(team, str) else None))
        directory = Directory.build(
            people, agents, groups, group_descriptions=descriptions
        )
        owners: list[ResourceOwner] = []
        self.directory = directory
        for i, entry in enumerate(_list(spec.get("resources"))):
            if not isinstance(entry, dict):
                continue
            patterns, owner = _strs(entry.get("match")), entry.get("owner")
            if not patterns or not isinstance(owner, str):
                continue
            if self.check_group((*base, "resources", i, "owner"), owner):
                owners.append(ResourceOwner(GlobSet.of(patterns), owner))
        return Directory.build(
            people, agents, groups, resource_owners=owners, group_descriptions=descriptions
        )

    # --- masking profiles -----------------------------------------------------------------
    def _masking(self, spec: dict[str, Any]) -> None:
        if spec and self.masking_validator is not None:
            try:
                self.masking_validator(spec)
            except Exception as exc:  # the validator's error type is the masking engine's
                for loc, message in _validation_messages(exc):
                    self.error(("masking", *loc), message)
        for name, profile in _dict(spec.get("profiles")).items():
            if isinstance(profile, dict):
                self.profiles[name] = {**profile, "name": profile.get("name", name)}
        self.detectors = tuple(d for d in _list(spec.get("detectors")) if isinstance(d, dict))

    # --- the default ----------------------------------------------------------------------
    def _default(self, spec: dict[str, Any], defaults: dict[str, Any]) -> Rule:
        path: Path = ("default",)
        decision = spec.get("decision", "require_approval")
        outcome = Outcome.AUTO_DENY if decision == "auto_deny" else Outcome.REQUIRE_APPROVAL
        require = _dict(spec.get("require"))
        if outcome is Outcome.AUTO_DENY and "require" in spec:
            self.error((*path, "require"), "an auto_deny default has no approvers; remove 'require'")
        builtin = "approvers" not in require and "approvers" not in defaults
        if builtin and not self.directory.has_group(DEFAULT_GROUP):
            where: Path = path if "default" in self.data else ()
            self.error(
                where,
                "no default approvers are set (default.require.approvers or "
                f"defaults.approvers), and the built-in default, 1 of {DEFAULT_GROUP}, needs a "
                f"group '{DEFAULT_GROUP}' in the directory",
            )
        requirement = self._requirement(
            (*path, "require"), require, defaults, fallback={DEFAULT_GROUP: 1}
        )
        reason = spec.get("reason") if isinstance(spec.get("reason"), str) else ""
        line = self.smap.at(path)[0] if "default" in self.data else 0
        return Rule(DEFAULT_RULE_ID, line, outcome, requirement, "the default", str(reason))

    # --- rules ----------------------------------------------------------------------------
    def _rules(
        self, specs: list[Any], defaults: dict[str, Any], fallback: Requirement
    ) -> tuple[Rule, ...]:
        rules: list[Rule] = []
        ids: dict[str, int] = {}
        catch_all: Rule | None = None
        for i, spec in enumerate(specs):
            if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                continue
            path: Path = ("rules", i)
            rule = self._rule(path, spec, defaults, fallback)
            if rule is None:
                continue
            if rule.id == DEFAULT_RULE_ID:
                self.error((*path, "id"), "'default' is reserved for the default block; pick another id")
            elif rule.id in ids:
                self.error((*path, "id"), f"rule id '{rule.id}' is already used on line {ids[rule.id]}")
            ids.setdefault(rule.id, rule.line)
            if catch_all is not None:
                self.error(
                    (*path, "id"),
                    f"rule '{rule.id}' is never reached: rule '{catch_all.id}' on line "
                    f"{catch_all.line} matches every request",
                )
            elif _unconditional(spec) and rule.window is None:
                catch_all = rule
            rules.append(rule)
        return tuple(rules)

    def _rule(
        self, path: Path, spec: dict[str, Any], defaults: dict[str, Any], fallback: Requirement
    ) -> Rule | None:
        rule_id = spec["id"]
        line = self.smap.at(path)[0]
        outcome = Outcome(spec["decision"]) if spec.get("decision") in {o.value for o in Outcome} else Outcome.REQUIRE_APPROVAL
        match = _dict(spec.get("match"))
        globs: dict[str, GlobSet | None] = {}
        for name in ("action", "resource", "requester", "on_behalf_of", "team", "environment"):
            patterns = _strs(match.get(name))
            if name in _IDENTITY_FIELDS:
                # Requests are matched in canonical form (policy.identity), so are the rules.
                patterns = [self._canonical_pattern(name, p) for p in patterns]
            globs[name] = GlobSet.of(patterns) if patterns else None
        context = tuple(self._context_matches((*path, "match", "context"), _dict(match.get("context"))))
        condition = self._condition((*path, "when"), spec.get("when"))
        window = self._window((*path, "window"), spec.get("window"))
        reason = spec.get("reason") if isinstance(spec.get("reason"), str) else ""
        if reason and outcome is Outcome.REQUIRE_APPROVAL:
            self.error(
                (*path, "reason"),
                "'reason' explains automatic decisions; this rule requires approval "
                "(use description, or window.reason for out-of-hours denials)",
                key=True,
            )
        owner: OwnerRequirement | None = None
        if outcome is Outcome.REQUIRE_APPROVAL:
            require = _dict(spec.get("require"))
            if "approvers" not in require and "approvers" not in defaults and "resource_owner" not in require:
                self.error(
                    path,
                    f"rule '{rule_id}' requires approval but names no approvers "
                    "(require.approvers, or defaults.approvers)",
                )
            requirement = self._requirement((*path, "require"), require, defaults, fallback={})
            owner = self._owner((*path, "require", "resource_owner"), require.get("resource_owner"), requirement)
        else:
            if "require" in spec:
                self.error(
                    (*path, "require"),
                    f"an {outcome.value} rule has no approvers; remove 'require'",
                    key=True,
                )
            requirement = fallback
        rule = Rule(
            id=rule_id,
            line=line,
            outcome=outcome,
            requirement=requirement,
            description=str(spec.get("description") or ""),
            reason=str(reason),
            action=globs["action"],
            resource=globs["resource"],
            requester=globs["requester"],
            on_behalf_of=globs["on_behalf_of"],
            team=globs["team"],
            environment=globs["environment"],
            context=context,
            condition=condition,
            window=window,
            resource_owner=owner,
        )
        if outcome is Outcome.AUTO_APPROVE and _unconditional(spec):
            self.error(
                path,
                f"rule '{rule_id}' auto-approves every request; auto-approval must be narrowed "
                "by match or when, and is never the fallback",
            )
        return rule

    def _canonical_pattern(self, name: str, pattern: str) -> str:
        """A requester, on-behalf-of or environment glob in the one identity form; a literal
        on-behalf-of address that is an alias becomes the person's own address."""
        if name == "on_behalf_of":
            if not _WILDCARD.search(pattern) and getattr(self, "directory", None) is not None:
                return self.directory.canonical_person(pattern)
            return canonical_email(pattern)
        if name == "environment":
            return canonical_environment(pattern) or ""
        return canonical_agent(pattern)

    def _context_matches(self, path: Path, spec: dict[str, Any]) -> list[ContextMatch]:
        out = []
        for key, value in spec.items():
            parts = tuple(p for p in key.split("."))
            if not all(parts):
                self.error((*path, key), f"'{key}' is not a field path like ticket or change.kind", key=True)
                continue
            values = value if isinstance(value, list) else [value]
            text = [v for v in values if isinstance(v, str)]
            if parts == ("environment",):
                text = [canonical_environment(v) or "" for v in text]
            exact = tuple(v for v in values if isinstance(v, int | float | bool) and not isinstance(v, str))
            out.append(ContextMatch(parts, GlobSet.of(text), exact))
        return out

    def _condition(self, path: Path, source: Any) -> Condition | None:
        if not isinstance(source, str) or not source.strip():
            return None
        for name, literal in _identity_literals(source):
            wanted = (self.directory.canonical_person(literal) if name == "on_behalf_of"
                      else canonical(literal))
            if wanted != literal:
                # The request a condition sees is in canonical form: this literal can never
                # equal it, so the rule would silently never match (an auto-deny dodged).
                self.error(path, f"compares {name} with '{literal}', but requests are matched "
                                 f"in canonical form: write '{wanted}'")
        try:
            return compile_condition(source)
        except ConditionSyntaxError as exc:
            line, column = self._position_in_scalar(path, exc.line, exc.column)
            self.issues.append(PolicyIssue(line, column, f"{format_path(path)}: {exc}"))
            return None

    def _position_in_scalar(self, path: Path, line: int, column: int) -> tuple[int, int]:
        """File position of ``line``/``column`` inside the text scalar at ``path``.

        Exact for one-line scalars (plain or quoted) and literal blocks (``|``); for folded or
        multi-line flow scalars YAML rejoins the lines, so the position is the best guess.
        """
        start_line, start_column = self.smap.at(path)
        style = self.smap.styles.get(path)
        if style in ("|", ">"):
            target = start_line + line  # block content starts on the line after the indicator
            lines = self.smap.lines
            first = next(
                (lines[i] for i in range(start_line, min(len(lines), target)) if lines[i].strip()),
                "",
            )
            indent = len(first) - len(first.lstrip(" "))
            return target, indent + column
        if line == 1:
            return start_line, start_column + column - 1 + (1 if style in ('"', "'") else 0)
        return start_line + line - 1, column

    def _window(self, path: Path, spec: Any) -> Window | None:
        if not isinstance(spec, dict):
            return None
        tz, days, hours = spec.get("timezone"), _strs(spec.get("days")), spec.get("hours")
        ok = True
        if isinstance(tz, str):
            try:
                ZoneInfo(tz)
            except (ZoneInfoNotFoundError, ValueError):
                self.error((*path, "timezone"), f"'{tz}' is not a known time zone (use an IANA name such as Europe/Berlin)")
                ok = False
        else:
            ok = False
        if not isinstance(hours, str) or not _HOURS.match(hours):
            return None  # the schema has reported it
        try:
            start, end = parse_hours(hours)
        except ValueError as exc:
            self.error((*path, "hours"), str(exc))
            return None
        if not ok or not days or not all(d in DAYS for d in days):
            return None
        reason = spec.get("reason") if isinstance(spec.get("reason"), str) else ""
        return Window(tz, frozenset(DAYS.index(d) for d in days), start, end, str(reason))  # type: ignore[arg-type]

    def _owner(self, path: Path, spec: Any, requirement: Requirement) -> OwnerRequirement | None:
        if spec is None:
            return None
        if isinstance(spec, bool):
            return None
        if isinstance(spec, int):
            owner = OwnerRequirement(spec)
        elif isinstance(spec, dict) and isinstance(spec.get("approvals"), int):
            otherwise = spec.get("otherwise", DEFAULT_GROUP)
            owner = OwnerRequirement(spec["approvals"], otherwise if isinstance(otherwise, str) else DEFAULT_GROUP)
        else:
            return None
        where = (*path, "otherwise") if isinstance(spec, dict) and "otherwise" in spec else path
        self.check_group(where, owner.otherwise)
        candidates = {owner.otherwise} | {o.group for o in self.directory.resource_owners}
        for group in sorted(candidates):
            need = requirement.groups.get(group, 0) + owner.approvals
            have = len(self.directory.members(group))
            if self.directory.has_group(group) and have < need:
                self.error(
                    path,
                    f"when '{group}' owns the resource this rule needs {need} approvals from it, "
                    f"but it has only {have} member{'s' if have != 1 else ''}",
                )
        return owner

    # --- requirements ---------------------------------------------------------------------
    def _requirement(
        self,
        path: Path,
        spec: dict[str, Any],
        defaults: dict[str, Any],
        *,
        fallback: dict[str, int],
    ) -> Requirement:
        merged: dict[str, tuple[Any, Path]] = {k: (v, ("defaults", k)) for k, v in defaults.items()}
        merged.update({k: (v, (*path, k)) for k, v in spec.items()})

        def get(key: str, default: Any = None) -> tuple[Any, Path]:
            return merged.get(key, (default, (*path, key)))

        approvers, where = get("approvers")
        if approvers is not None:
            groups = self._approvers(where, approvers)
            for group in list(groups):
                if not self.check_group(where, group):
                    del groups[group]
        else:  # the caller has checked its fallback
            groups = {g: n for g, n in fallback.items() if self.directory.has_group(g)}
        minimum = sum(groups.values())
        quorum, qwhere = get("quorum")
        if not isinstance(quorum, int) or isinstance(quorum, bool):
            quorum = max(1, minimum)
        elif quorum < minimum:
            self.error(
                qwhere,
                f"quorum {quorum} is less than the {minimum} approvals the groups need; one "
                "person can count only once, so the quorum must be at least their sum",
            )
            quorum = max(1, minimum)
        also, awhere = get("also_eligible", [])
        eligible = list(groups)
        for j, group in enumerate(_strs(also)):
            if self.check_group((*awhere, j), group) and group not in eligible:
                eligible.append(group)
        too_small = False
        for group, need in groups.items():
            have = len(self.directory.members(group))
            if have < need:
                too_small = True
                self.error(
                    where,
                    f"needs {need} approval{'s' if need != 1 else ''} from '{group}', which has "
                    f"only {have} member{'s' if have != 1 else ''}, so it could never be approved",
                )
        voters = set().union(*(self.directory.members(g) for g in eligible)) if eligible else set()
        if groups and not too_small and quorum > len(voters):
            self.error(
                qwhere,
                f"quorum {quorum} needs more distinct people than the {len(voters)} who are "
                "eligible, so it could never be approved",
            )
        deny_quorum, dwhere = get("deny_quorum", 1)
        if groups and isinstance(deny_quorum, int) and deny_quorum > max(1, len(voters)):
            self.error(
                dwhere,
                f"deny_quorum {deny_quorum} needs more distinct people than the {len(voters)} "
                "who are eligible, so votes could never deny it",
            )
        timeout_value, twhere = get("timeout", DEFAULT_TIMEOUT_SECONDS)
        timeout = self._duration(twhere, timeout_value, DEFAULT_TIMEOUT_SECONDS)
        reminders_spec, rwhere = get("reminders", [])
        reminders: list[int] = []
        for j, item in enumerate(_list(reminders_spec)):
            seconds = self._duration((*rwhere, j), item, None)
            if seconds is None:
                continue
            if seconds >= timeout:
                self.error(
                    (*rwhere, j),
                    f"reminder at {format_duration(seconds)} comes at or after the "
                    f"{format_duration(timeout)} timeout",
                )
                continue
            reminders.append(seconds)
        ladder, ewhere = get("escalation", [])
        steps: list[Escalation] = []
        for j, step in enumerate(_list(ladder)):
            if not isinstance(step, dict):
                continue
            spath = (*ewhere, j)
            after = self._duration((*spath, "after"), step.get("after"), None)
            if after is None:
                continue
            if after >= timeout:
                self.error(
                    (*spath, "after"),
                    f"escalation at {format_duration(after)} comes at or after the "
                    f"{format_duration(timeout)} timeout, so it would never fire",
                )
            if steps and after <= steps[-1].after_seconds:
                self.error((*spath, "after"), "escalation steps must be in increasing order of 'after'")
            add = tuple(
                g for k, g in enumerate(_strs(step.get("add"))) if self.check_group((*spath, "add", k), g)
            )
            page = tuple(
                g for k, g in enumerate(_strs(step.get("page"))) if self.check_group((*spath, "page", k), g)
            )
            steps.append(Escalation(after, add, page))
        channels_spec, cwhere = get("channels", ["web"])
        channels = self._channels(cwhere, channels_spec)
        masking, mwhere = get("masking", {})
        masking = _dict(masking)
        profile = masking.get("profile") if isinstance(masking.get("profile"), str) else None
        if profile is not None and profile not in self.profiles and profile not in BUILTIN_PROFILES:
            known = sorted(set(self.profiles) | BUILTIN_PROFILES)
            self.error((*mwhere, "profile"), f"masking profile '{profile}' is not defined; known: {', '.join(known)}")
        partial = tuple(
            g
            for k, g in enumerate(_strs(masking.get("partial_groups")))
            if self.check_group((*mwhere, "partial_groups", k), g)
        )
        deny_comment, _ = get("deny_comment", False)
        reason, _ = get("reason", False)
        step_up_spec, swhere = get("step_up")
        step_up, step_up_within = self._step_up(swhere, step_up_spec)
        standing_spec, stwhere = get("standing")
        standing = _dict(standing_spec)
        standing_max = self._duration((*stwhere, "max"), standing.get("max"), 0) or 0
        if standing_max > MAX_STANDING:
            self.error((*stwhere, "max"), f"a standing approval of {format_duration(standing_max)}"
                       f" is longer than the {format_duration(MAX_STANDING)} Signoff allows")
            standing_max = MAX_STANDING
        standing_params = self._fragments((*stwhere, "params"), standing.get("params"))
        editable_spec, ewhere2 = get("editable")
        editable = self._fragments(ewhere2, editable_spec)
        deny_reasons, _ = get("deny_reasons", [])
        extend_spec, xwhere = get("extend")
        extend_max = self._duration((*xwhere, "max"), _dict(extend_spec).get("max"), 0) or 0
        try:
            return Requirement(
                groups=groups,
                quorum=quorum,
                eligible_groups=tuple(eligible),
                deny_quorum=deny_quorum if isinstance(deny_quorum, int) and deny_quorum >= 1 else 1,
                require_reason=reason is True,
                require_deny_comment=deny_comment is True,
                timeout_seconds=timeout,
                reminders=tuple(sorted(set(reminders))),
                escalation=tuple(steps),
                channels=channels,
                masking_profile=profile,
                disable_detectors=tuple(_strs(masking.get("disable_detectors"))),
                partial_groups=partial,
                step_up=step_up,
                step_up_within=step_up_within,
                standing_max=standing_max,
                standing_params=standing_params,
                editable=editable,
                deny_reasons=tuple(_strs(deny_reasons)),
                extend_max=extend_max,
            )
        except ValueError as exc:  # guarded above; kept so a gap reports instead of crashing
            self.error(path, str(exc))
            return Requirement()

    def _step_up(self, path: Path, value: Any) -> tuple[str | None, int]:
        """``step_up: passkey`` or ``{method: passkey, within: 5m}`` (the schema checked the shape)."""
        if value == "passkey":
            return "passkey", DEFAULT_STEP_UP_WITHIN
        if not isinstance(value, dict) or value.get("method") != "passkey":
            return None, DEFAULT_STEP_UP_WITHIN
        within = self._duration((*path, "within"), value.get("within"), DEFAULT_STEP_UP_WITHIN)
        if not MIN_STEP_UP_WITHIN <= within <= MAX_STEP_UP_WITHIN:
            self.error(
                (*path, "within"),
                f"step-up proof window {format_duration(within)} must be between "
                f"{format_duration(MIN_STEP_UP_WITHIN)} and {format_duration(MAX_STEP_UP_WITHIN)}"
                " (an older proof says nothing about who is at the keyboard now)",
            )
            within = max(MIN_STEP_UP_WITHIN, min(within, MAX_STEP_UP_WITHIN))
        return "passkey", within

    def _fragments(self, path: Path, value: Any) -> dict[str, Any]:
        """``{param: JSON Schema fragment}`` (standing.params, editable): each fragment must be
        a valid JSON Schema (checked with jsonschema's metaschema)."""
        out: dict[str, Any] = {}
        for name, fragment in _dict(value).items():
            if not isinstance(fragment, dict):
                continue  # the schema has reported it
            try:
                Draft202012Validator.check_schema(fragment)
            except SchemaError as exc:
                self.error((*path, name), f"bounds for '{name}' are not a JSON Schema: "
                           f"{exc.message}")
                continue
            out[str(name)] = fragment
        return out

    def _approvers(self, path: Path, value: Any) -> dict[str, int]:
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if isinstance(v, int) and not isinstance(v, bool) and v >= 1}
        if not isinstance(value, str):
            return {}
        out: dict[str, int] = {}
        for part in _AND.split(value.strip()):
            found = _APPROVER_PART.match(part)
            if found is None:
                return {}  # the schema has reported the format
            count, group = int(found.group(1)), found.group(2)
            if group in out:
                self.error(path, f"group '{group}' is named twice; write '{out[group] + count} of {group}'")
            out[group] = out.get(group, 0) + count
        return out

    def _duration(self, path: Path, value: Any, default: int | None) -> Any:
        if value is None:
            return default
        try:
            seconds = parse_duration(value)
        except (ValueError, TypeError):
            return default  # the schema has reported it
        return seconds

    def _channels(self, path: Path, spec: Any) -> tuple[ChannelTarget, ...]:
        out: list[ChannelTarget] = []
        for j, item in enumerate(_list(spec)):
            target: ChannelTarget | None = None
            if item == "web" or (isinstance(item, dict) and item.get("web") is True):
                target = ChannelTarget(ChannelKind.WEB)
            elif isinstance(item, dict) and isinstance(item.get("slack"), str):
                target = ChannelTarget(ChannelKind.SLACK_CHANNEL, item["slack"])
            elif isinstance(item, dict) and isinstance(item.get("slack_dm"), str):
                if self.check_group((*path, j, "slack_dm"), item["slack_dm"]):
                    target = ChannelTarget(ChannelKind.SLACK_DM, item["slack_dm"])
            elif isinstance(item, dict) and isinstance(item.get("teams"), str):
                target = ChannelTarget(ChannelKind.TEAMS, item["teams"])
            if target is not None and target not in out:
                out.append(target)
        return tuple(out) or (ChannelTarget(ChannelKind.WEB),)


def _validation_messages(exc: Exception) -> list[tuple[tuple[str | int, ...], str]]:
    """``(location, message)`` pairs from a pydantic ValidationError, or one from anything else."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        try:
            items = errors()
        except TypeError:
            items = []
        out = []
        for item in items if isinstance(items, list) else []:
            if isinstance(item, Mapping):
                loc = tuple(item.get("loc", ()))
                out.append((loc, f"invalid masking profile: {item.get('msg', 'invalid value')}"))
        if out:
            return out
    return [((), f"invalid masking profile: {exc}")]
