"""Rule conditions in CEL (the Common Expression Language), through cel-python.

CEL is side-effect free and has no access to Python: no ``eval``, no attribute access on
Python objects, no imports. Expressions are parsed and checked once, when the policy loads.
We use cel-python's tree-walking ``InterpretedRunner``: its ``CompiledRunner`` turns the
expression into Python source run with ``exec`` and keeps evaluation state in module globals,
which is neither what we promise ("never eval") nor thread-safe.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import celpy
import lark
from celpy import celtypes

# Names a condition may use. `request` is the whole request; the others are shortcuts.
VARIABLES = {
    "request": "the whole request (id, action, resource, params, requester, on_behalf_of, reason, context)",
    "action": "request.action",
    "resource": "request.resource",
    "params": "request.params",
    "context": "request.context",
    "environment": 'request.context.environment, or "" when absent',
    "requester": "request.requester",
    "on_behalf_of": 'request.on_behalf_of, or ""',
    "reason": 'request.reason, or ""',
    "agent": 'the requesting agent from the directory: {id, owner, team}; all "" when unknown',
    "now": "the evaluation time, a timestamp (now.getHours(\"Europe/Berlin\"))",
}

# Macros that bind their first argument as a local name: list.exists(x, x > 1).
_BINDING_MACROS = {"exists", "all", "exists_one", "map", "filter"}

_ENV = celpy.Environment()


class ConditionSyntaxError(ValueError):
    """A condition that does not parse or names an unknown variable."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class ConditionEvalError(Exception):
    """A condition that could not be evaluated for one request (a missing field, a type error)."""


@dataclass(frozen=True)
class Condition:
    """One compiled CEL expression that must yield a boolean."""

    source: str
    _program: Any

    def evaluate(self, activation: dict[str, Any]) -> bool:
        """Evaluate against ``activation`` (built by :func:`activation_for`).

        Raises:
            ConditionEvalError: The expression failed or did not yield a boolean.
        """
        try:
            result = self._program.evaluate(activation)
        except (celpy.CELEvalError, TypeError, ValueError, KeyError, ZeroDivisionError) as exc:
            raise ConditionEvalError(_eval_message(exc)) from None
        if isinstance(result, celpy.CELEvalError):
            raise ConditionEvalError(_eval_message(result))
        if not isinstance(result, bool | celtypes.BoolType):
            raise ConditionEvalError(f"it gave {type(result).__name__}, not true or false")
        return bool(result)


def _eval_message(exc: BaseException) -> str:
    args = exc.args
    # CELEvalError(("no such member in mapping: 'x'", KeyError, ...)) -> the first text part.
    while args and isinstance(args[0], tuple | BaseException):
        inner = args[0]
        args = inner.args if isinstance(inner, BaseException) else inner
    if args and isinstance(args[0], str):
        return args[0]
    return type(exc).__name__


def compile_condition(source: str) -> Condition:
    """Parse and check ``source``.

    Raises:
        ConditionSyntaxError: With the 1-based line and column inside ``source``.
    """
    try:
        ast = _ENV.compile(source)
    except celpy.CELParseError as exc:
        line, column = exc.line or 1, exc.column or 1
        lines = source.splitlines() or [""]
        near = lines[min(line, len(lines)) - 1][column - 1 : column + 19].strip()
        where = f"near '{near}'" if near else "at the end"
        raise ConditionSyntaxError(
            f"condition is not valid CEL: unexpected text {where}", line, column
        ) from None
    unknown = _unknown_names(ast)
    if unknown:
        name, line, column = unknown[0]
        raise ConditionSyntaxError(
            f"condition uses unknown name '{name}'; known names: {', '.join(VARIABLES)}",
            line,
            column,
        )
    return Condition(source, _ENV.program(ast))


def _unknown_names(ast: lark.Tree) -> list[tuple[str, int, int]]:
    bound: set[str] = set()
    for tree in ast.iter_subtrees():
        if tree.data == "member_dot_arg" and len(tree.children) >= 3:
            method, args = tree.children[1], tree.children[2]
            if str(method) in _BINDING_MACROS and isinstance(args, lark.Tree) and args.children:
                tokens = [
                    t for t in args.children[0].scan_values(lambda v: isinstance(v, lark.Token))
                ]
                if len(tokens) == 1 and tokens[0].type == "IDENT":
                    bound.add(str(tokens[0]))
    out: list[tuple[str, int, int]] = []
    for tree in ast.iter_subtrees_topdown():
        if tree.data == "ident" and tree.children:
            token = tree.children[0]
            name = str(token)
            if name not in VARIABLES and name not in bound:
                line = getattr(token, "line", None) or 1
                column = getattr(token, "column", None) or 1
                out.append((name, line, column))
    return out


def activation_for(
    request: dict[str, Any], agent: dict[str, Any] | None, now: datetime.datetime
) -> dict[str, Any]:
    """CEL values for one request; built once per evaluation and shared by every rule."""
    cel_request: Any = celpy.json_to_cel(request)
    context = request.get("context") or {}
    env = context.get("environment") if isinstance(context, dict) else None
    return {
        "request": cel_request,
        "action": cel_request["action"],
        "resource": cel_request["resource"],
        "params": cel_request["params"],
        "context": cel_request["context"],
        "environment": celtypes.StringType(env if isinstance(env, str) else ""),
        "requester": cel_request["requester"],
        "on_behalf_of": celtypes.StringType(request.get("on_behalf_of") or ""),
        "reason": celtypes.StringType(request.get("reason") or ""),
        "agent": celpy.json_to_cel(agent or {"id": "", "owner": "", "team": ""}),
        "now": celtypes.TimestampType(now.astimezone(datetime.UTC)),
    }
