"""The JSON Schema of policy files (``schemas/policy.v1.json`` is this dict, written out).

Validation errors are rewritten into plain English and pinned to the file's line and column.
``x-message`` is our own annotation keyword (validators ignore unknown keywords): the text to
show when a value fails its subschema.
"""

from __future__ import annotations

import difflib
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from policy.durations import DURATION_PATTERN
from policy.errors import PolicyIssue
from policy.limits import SCHEMA as LIMITS_SCHEMA
from policy.yamlsource import Path, SourceMap

SCHEMA_ID = "https://signoff.dev/schemas/policy.v1.json"

GROUP_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"
APPROVERS_PATTERN = (
    r"^\s*[1-9][0-9]*\s+(of|from)\s+[A-Za-z0-9][A-Za-z0-9._-]*"
    r"(\s+(and|AND|&)\s+[1-9][0-9]*\s+(of|from)\s+[A-Za-z0-9][A-Za-z0-9._-]*)*\s*$"
)


_DURATION = {
    "description": "Seconds, or a duration such as 90s, 15m, 1h30m, 2d.",
    "oneOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
    "x-message": "must be a duration such as 90s, 15m, 1h30m or 2d (or a number of seconds)",
}
_POSITIVE_DURATION = {
    **_DURATION,
    "oneOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": DURATION_PATTERN},
    ],
}
_GROUP = {
    "type": "string",
    "pattern": GROUP_PATTERN,
    "x-message": "must be a group name (letters, digits, '.', '_' or '-')",
}
_GROUPS = {"type": "array", "items": {"$ref": "#/$defs/group"}, "uniqueItems": True}
_GLOBS = {
    "description": "A shell-style glob (* ? [abc]) or a list of them; any may match.",
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
    ],
    "x-message": "must be a glob such as 'db.export*' or a list of globs",
}
_CONTEXT_VALUE = {
    "description": "A glob for text values, an exact number or boolean, or a list (any may match).",
    "oneOf": [
        {"type": ["string", "number", "boolean"]},
        {"type": "array", "items": {"type": ["string", "number", "boolean"]}, "minItems": 1},
    ],
    "x-message": "must be a glob, a number, true/false, or a list of those",
}

_CHANNEL = {
    "description": "Where the card goes: web, {slack: '#channel'}, {slack_dm: group}, {teams: name}.",
    "oneOf": [
        {"const": "web"},
        {
            "type": "object",
            "properties": {"slack": {"type": "string", "minLength": 1}},
            "required": ["slack"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"slack_dm": {"$ref": "#/$defs/group"}},
            "required": ["slack_dm"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"teams": {"type": "string", "minLength": 1}},
            "required": ["teams"],
            "additionalProperties": False,
        },
        {
            "type": "object",
            "properties": {"web": {"const": True}},
            "required": ["web"],
            "additionalProperties": False,
        },
    ],
    "x-message": (
        "must be 'web', {slack: '#channel'}, {slack_dm: group}, or {teams: conversation name}"
    ),
}

_REQUIRE = {
    "type": "object",
    "description": "What a matching request needs before it is approved.",
    "additionalProperties": False,
    "properties": {
        "approvers": {
            "description": "'2 of dba', '1 of dba and 1 of secops', or {dba: 2}.",
            "oneOf": [
                {"type": "string", "pattern": APPROVERS_PATTERN},
                {
                    "type": "object",
                    "minProperties": 1,
                    "maxProperties": 8,
                    "propertyNames": {"pattern": GROUP_PATTERN},
                    "additionalProperties": {"type": "integer", "minimum": 1},
                },
            ],
            "x-message": (
                "must be like '2 of dba' or '1 of dba and 1 of secops', or a mapping "
                "{group: count} with counts of at least 1 (at most 8 groups)"
            ),
        },
        "quorum": {
            "type": "integer",
            "minimum": 1,
            "description": "Distinct approvers in total (default: the sum of the group counts).",
        },
        "also_eligible": {
            **_GROUPS,
            "description": "More groups whose members may vote; they count toward the quorum.",
        },
        "deny_quorum": {
            "type": "integer",
            "minimum": 1,
            "description": "Distinct eligible deny votes that deny the request (default 1).",
        },
        "reason": {"type": "boolean", "description": "The requester must give a reason."},
        "deny_comment": {"type": "boolean", "description": "A deny vote needs a comment."},
        "timeout": {**_POSITIVE_DURATION, "description": "Time until the request times out."},
        "on_timeout": {
            "const": "deny",
            "description": "What a timeout means; only 'deny' (fail closed).",
            "x-message": "must be 'deny': an undecided request is never approved",
        },
        "reminders": {
            "type": "array",
            "items": _POSITIVE_DURATION,
            "description": "Remind approvers this long after the request was made.",
        },
        "escalation": {
            "type": "array",
            "description": "The escalation ladder: after a delay, add or page groups.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["after"],
                "minProperties": 2,
                "properties": {
                    "after": _POSITIVE_DURATION,
                    "add": {**_GROUPS, "description": "Groups that may now decide."},
                    "page": {**_GROUPS, "description": "Groups whose members get the card."},
                },
                "x-message": "each escalation step needs 'after' and at least one of 'add' or 'page'",
            },
        },
        "channels": {"type": "array", "items": _CHANNEL, "minItems": 1},
        "resource_owner": {
            "description": (
                "Also require approvals from the group owning the resource "
                "(directory.resources): a count, or {approvals: n, otherwise: group}."
            ),
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["approvals"],
                    "properties": {
                        "approvals": {"type": "integer", "minimum": 1},
                        "otherwise": _GROUP,
                    },
                },
            ],
            "x-message": "must be a count, or {approvals: count, otherwise: group}",
        },
        "step_up": {
            "description": (
                "Every vote needs a fresh passkey (WebAuthn) proof from the person voting: "
                "'passkey', or {method: passkey, within: 5m} (how recent the proof must be)."
            ),
            "oneOf": [
                {"const": "passkey"},
                {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["method"],
                    "properties": {"method": {"const": "passkey"}, "within": _POSITIVE_DURATION},
                },
            ],
            "x-message": "must be 'passkey' or {method: passkey, within: a duration such as 5m}",
        },
        "standing": {
            "type": "object",
            "additionalProperties": False,
            "required": ["max"],
            "description": (
                "Approvers may approve this request and the same request again for a window "
                "they choose (up to max): later requests from the same agent with the same "
                "action, resource, on-behalf-of person and context, and params identical or "
                "within params' bounds, are approved at once."
            ),
            "properties": {
                "max": {**_POSITIVE_DURATION, "description": "The longest window (e.g. 4h)."},
                "params": {
                    "type": "object",
                    "description": "Params that may differ from the approved request, each "
                    "within a JSON Schema fragment ({rows: {maximum: 10000}}).",
                    "additionalProperties": {"type": "object"},
                },
            },
            "x-message": "must be {max: a duration such as 4h, params: {name: JSON Schema}}",
        },
        "editable": {
            "type": "object",
            "minProperties": 1,
            "description": (
                "Params an approver may change before approving, each with its bounds as a "
                "JSON Schema fragment ({rows: {maximum: 10000}})."
            ),
            "additionalProperties": {"type": "object"},
            "x-message": "must map param names to JSON Schema fragments, e.g. {rows: {maximum: 10000}}",
        },
        "deny_reasons": {
            "type": "array",
            "description": "Preset reasons an approver picks from when denying.",
            "items": {"type": "string", "minLength": 1, "maxLength": 200},
            "uniqueItems": True,
            "maxItems": 20,
        },
        "extend": {
            "type": "object",
            "additionalProperties": False,
            "required": ["max"],
            "description": "Approvers may extend the deadline, by at most max in total.",
            "properties": {"max": _POSITIVE_DURATION},
            "x-message": "must be {max: a duration such as 2h}",
        },
        "masking": {
            "type": "object",
            "additionalProperties": False,
            "description": "How the payload is masked on cards for this rule.",
            "properties": {
                "profile": {
                    "type": "string",
                    "minLength": 1,
                    "description": "A profile from the top-level masking.profiles, or 'default'.",
                },
                "disable_detectors": {
                    "type": "array",
                    "items": {"type": "string", "minLength": 1},
                    "description": "Detectors of the profile to switch off for this rule.",
                },
                "partial_groups": {
                    **_GROUPS,
                    "description": "Groups whose members see partial values (****1234).",
                },
            },
        },
    },
}

_WINDOW = {
    "type": "object",
    "description": "When the rule's requirement applies; outside it the request is auto-denied.",
    "additionalProperties": False,
    "required": ["timezone", "days", "hours"],
    "properties": {
        "timezone": {"type": "string", "minLength": 1, "description": "IANA name: Europe/Berlin."},
        "days": {
            "type": "array",
            "minItems": 1,
            "uniqueItems": True,
            "items": {"enum": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
        },
        "hours": {
            "type": "string",
            "pattern": r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$|^([01][0-9]|2[0-3]):[0-5][0-9]-24:00$",
            "x-message": "must be a range like 09:00-18:00",
        },
        "reason": {"type": "string", "minLength": 1, "description": "Why it was denied (shown)."},
    },
}

_MATCH = {
    "type": "object",
    "description": "Every listed field must match. Absent fields match anything.",
    "additionalProperties": False,
    "properties": {
        "action": _GLOBS,
        "resource": _GLOBS,
        "requester": {**_GLOBS, "description": "The requesting agent (or person) id."},
        "on_behalf_of": _GLOBS,
        "team": {**_GLOBS, "description": "The requesting agent's team in the directory."},
        "environment": {**_GLOBS, "description": "context.environment"},
        "context": {
            "type": "object",
            "description": "context fields (dotted paths reach nested fields).",
            "additionalProperties": _CONTEXT_VALUE,
        },
    },
}

_DECISION = {
    "enum": ["require_approval", "auto_approve", "auto_deny"],
    "description": "require_approval (default), auto_approve or auto_deny.",
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "Signoff policy v1",
    "description": "Who must approve which agent actions, and who never may.",
    "type": "object",
    "additionalProperties": False,
    "required": ["version", "directory"],
    "properties": {
        "version": {"const": 1, "x-message": "must be 1 (this is the v1 policy format)"},
        "directory": {
            "type": "object",
            "additionalProperties": False,
            "required": ["people"],
            "properties": {
                "people": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["email"],
                        "properties": {
                            "email": {
                                "type": "string",
                                "pattern": EMAIL_PATTERN,
                                "x-message": "must be an email address",
                            },
                            "name": {"type": "string"},
                            "aliases": {
                                "type": "array",
                                "description": "Other addresses of this person; each names them "
                                "(on_behalf_of, tokens, sign-in).",
                                "items": {
                                    "type": "string",
                                    "pattern": EMAIL_PATTERN,
                                    "x-message": "must be an email address",
                                },
                            },
                            "slack": {
                                "type": "string",
                                "pattern": r"^[UW][A-Z0-9]{2,}$",
                                "x-message": "must be a Slack user id such as U0123ABCD",
                            },
                            "teams": {
                                "type": "string",
                                "pattern": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
                                "x-message": "must be a Microsoft Entra object id (a GUID)",
                            },
                            "groups": _GROUPS,
                        },
                    },
                },
                "groups": {
                    "type": "object",
                    "description": "Declare groups, optionally with more members.",
                    "propertyNames": {"pattern": GROUP_PATTERN},
                    "additionalProperties": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {
                            "description": {"type": "string"},
                            "members": {
                                "type": "array",
                                "items": {"type": "string", "pattern": EMAIL_PATTERN},
                            },
                        },
                    },
                },
                "agents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "owner"],
                        "properties": {
                            "id": {"type": "string", "minLength": 1},
                            "owner": {
                                "type": "string",
                                "pattern": EMAIL_PATTERN,
                                "x-message": "must be the owner's email address",
                            },
                            "team": {"type": "string", "minLength": 1},
                            "limits": LIMITS_SCHEMA,
                        },
                    },
                },
                "resources": {
                    "type": "array",
                    "description": "Resource owners, first match wins (for require.resource_owner).",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["match", "owner"],
                        "properties": {"match": _GLOBS, "owner": _GROUP},
                    },
                },
            },
        },
        "masking": {
            "type": "object",
            "description": (
                "Masking profiles and shared custom detectors; the masking engine validates "
                "their contents (docs/masking.md)."
            ),
            "additionalProperties": False,
            "properties": {
                "profiles": {
                    "type": "object",
                    "propertyNames": {"pattern": GROUP_PATTERN},
                    "additionalProperties": {"type": "object"},
                },
                "detectors": {"type": "array", "items": {"type": "object"}},
            },
        },
        "limits": LIMITS_SCHEMA,
        "defaults": {
            **_REQUIRE,
            "description": "Requirement settings every rule starts from (a rule's own win).",
        },
        "default": {
            "type": "object",
            "description": "What a request matching no rule gets (never auto-approve).",
            "additionalProperties": False,
            "properties": {
                "decision": {
                    "enum": ["require_approval", "auto_deny"],
                    "x-message": (
                        "must be require_approval or auto_deny: the fallback never auto-approves"
                    ),
                },
                "reason": {"type": "string", "minLength": 1},
                "require": _REQUIRE,
            },
        },
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id"],
                "properties": {
                    "id": {
                        "type": "string",
                        "pattern": RULE_ID_PATTERN,
                        "x-message": "must be a rule id (letters, digits, '.', '_' or '-')",
                    },
                    "description": {"type": "string"},
                    "match": _MATCH,
                    "when": {
                        "type": "string",
                        "minLength": 1,
                        "description": "A CEL condition that must be true.",
                    },
                    "window": _WINDOW,
                    "decision": _DECISION,
                    "reason": {"type": "string", "minLength": 1},
                    "require": _REQUIRE,
                },
            },
        },
    },
    "$defs": {"group": _GROUP},
}

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "text",
    "integer": "a whole number",
    "number": "a number",
    "boolean": "true or false",
    "null": "nothing",
}


@cache
def _validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def schema_issues(data: Any, source: SourceMap) -> list[PolicyIssue]:
    """Every JSON Schema violation in ``data``, in plain English with line and column."""
    issues: list[PolicyIssue] = []
    for error in _validator().iter_errors(data):
        issues.extend(_explain(error, source))
    return issues


def _explain(error: ValidationError, source: SourceMap) -> list[PolicyIssue]:
    path: Path = tuple(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    kind = error.validator
    if kind == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(schema.get("properties", {}))
        out = []
        for key in error.instance:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            if hint:
                tail = f"; did you mean '{hint[0]}'?"
            elif allowed:
                tail = "; expected one of: " + ", ".join(allowed)
            else:
                tail = ""
            out.append(source.issue((*path, key), f"unknown key '{key}'{tail}", key=True))
        if out:
            return out
    if kind == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        return [source.issue(path, f"missing required key '{k}'") for k in missing]
    if "propertyNames" in error.schema_path and isinstance(error.instance, str):
        # The failing name itself is the instance; the path points at the mapping holding it.
        return [
            source.issue(
                (*path, error.instance),
                f"'{error.instance}' is not a valid name (letters, digits, '.', '_' or '-', "
                "at most 64)",
                key=True,
            )
        ]
    if "x-message" in schema and kind not in ("required", "additionalProperties"):
        return [source.issue(path, str(schema["x-message"]) + f" (got {_show(error.instance)})")]
    if kind in ("oneOf", "anyOf") and error.context:
        inner = best_match(error.context)
        return _explain(inner, source)
    return [source.issue(path, _message(error))]


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    if isinstance(value, dict | list):
        return _kind(value)
    return repr(value).lower() if isinstance(value, bool) else repr(value)


def _message(error: ValidationError) -> str:
    kind, expected, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        wanted = [expected] if isinstance(expected, str) else list(expected)
        words = " or ".join(_TYPE_WORDS.get(w, w) for w in wanted)
        return f"expected {words}, got {_kind(value)}"
    if kind == "enum":
        return "must be one of: " + ", ".join(str(v) for v in expected) + f" (got {_show(value)})"
    if kind == "const":
        return f"must be {_show(expected)} (got {_show(value)})"
    if kind == "minimum":
        return f"must be at least {expected} (got {_show(value)})"
    if kind == "minItems":
        return f"must have at least {expected} entr{'y' if expected == 1 else 'ies'}"
    if kind == "minProperties":
        return f"must have at least {expected} entr{'y' if expected == 1 else 'ies'}"
    if kind == "maxProperties":
        return f"must have at most {expected} entries"
    if kind == "minLength":
        return "must not be empty"
    if kind == "uniqueItems":
        return "lists the same entry twice"
    if kind == "pattern":
        return f"{_show(value)} is not in the expected format"
    return error.message


def schema_document() -> dict[str, Any]:
    """The schema as written to ``schemas/policy.v1.json``."""
    return SCHEMA

