"""YAML text to plain JSON-like data, remembering where in the file every value came from.

PyYAML's composer gives nodes that carry start marks; we build the data ourselves from those
nodes (with the safe loader's scalar constructors) so that every error found later, by the
JSON Schema or by the semantic checks, can be reported with its line and column.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import yaml

from policy.errors import PolicyIssue

Path = tuple[str | int, ...]

# Aliases let a small file expand into a huge document ("billion laughs"); a policy file has
# a few thousand nodes at most.
MAX_NODES = 100_000


@dataclass
class SourceMap:
    """Where each value (and each mapping key) starts in the file, 1-based."""

    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    styles: dict[Path, str | None] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    def at(self, path: Path, *, key: bool = False) -> tuple[int, int]:
        """Line and column of ``path`` (its key when ``key``), else of its nearest ancestor."""
        if key and path in self.keys:
            return self.keys[path]
        probe = tuple(path)
        while probe:
            if probe in self.values:
                return self.values[probe]
            probe = probe[:-1]
        return self.values.get((), (1, 1))

    def issue(self, path: Path, message: str, *, key: bool = False) -> PolicyIssue:
        """A :class:`PolicyIssue` at ``path`` whose message starts with the path itself."""
        line, column = self.at(path, key=key)
        where = format_path(path)
        return PolicyIssue(line, column, f"{where}: {message}" if where else message)


def format_path(path: Path) -> str:
    """``rules[2].require.timeout`` for ``("rules", 2, "require", "timeout")``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.source = SourceMap()
        self.issues: list[PolicyIssue] = []
        self.count = 0
        self.open: set[int] = set()

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooLarge
        self.source.values.setdefault(path, _mark(node))
        if id(node) in self.open:
            line, column = _mark(node)
            self.issues.append(PolicyIssue(line, column, "a YAML alias refers back to the anchor it is inside (a loop)"))
            return None
        if isinstance(node, yaml.MappingNode):
            self.open.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self.open.discard(id(node))
        if isinstance(node, yaml.SequenceNode):
            self.open.add(id(node))
            try:
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self.open.discard(id(node))
        self.source.styles.setdefault(path, getattr(node, "style", None))
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[str, Any]:
        try:
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.MarkedYAMLError as exc:
            self.issues.append(_yaml_issue(exc))
            return {}
        out: dict[str, Any] = {}
        seen: dict[str, tuple[int, int]] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                line, column = _mark(key_node)
                self.issues.append(PolicyIssue(line, column, "a mapping key must be a plain value"))
                continue
            # The key's text as written: a group called `no` or `on` stays a string.
            key = str(key_node.value)
            where = _mark(key_node)
            if key in seen:
                self.issues.append(
                    PolicyIssue(*where, f"duplicate key '{key}' (first defined on line {seen[key][0]})")
                )
                continue
            seen[key] = where
            self.source.keys[(*path, key)] = where
            out[key] = self.build(value_node, (*path, key))
        return out

    def _scalar(self, node: yaml.Node) -> Any:
        value = self.loader.construct_object(node, deep=True)
        if value is None or isinstance(value, str | int | float | bool):
            return value
        if isinstance(value, datetime.date):
            return str(node.value)  # dates stay text: the policy has no date fields
        return str(node.value)


class _TooLarge(Exception):
    pass


def _yaml_issue(exc: yaml.MarkedYAMLError) -> PolicyIssue:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
    problem = exc.problem or "invalid YAML"
    if exc.context:
        problem = f"{exc.context}: {problem}"
    return PolicyIssue(line, column, f"YAML syntax error: {problem}")


def load_yaml(text: str) -> tuple[Any, SourceMap, list[PolicyIssue]]:
    """Parse ``text`` as one YAML document.

    Args:
        text: The file's contents.

    Returns:
        ``(data, source_map, issues)``; ``data`` is ``None`` when the text is not YAML.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            return None, SourceMap(), [_yaml_issue(exc)]
        except yaml.YAMLError as exc:
            return None, SourceMap(), [PolicyIssue(1, 1, f"YAML error: {exc}")]
        if node is None:
            return None, SourceMap(), [PolicyIssue(1, 1, "the policy file is empty")]
        builder = _Builder(loader)
        builder.source.lines = text.splitlines()
        try:
            data = builder.build(node, ())
        except _TooLarge:
            return None, SourceMap(), [
                PolicyIssue(1, 1, f"the document expands to more than {MAX_NODES} values")
            ]
        except yaml.YAMLError as exc:
            issue = _yaml_issue(exc) if isinstance(exc, yaml.MarkedYAMLError) else PolicyIssue(
                1, 1, f"YAML error: {exc}"
            )
            return None, builder.source, [*builder.issues, issue]
        return data, builder.source, builder.issues
    finally:
        loader.dispose()
