"""Errors a policy file can have, each pinned to a line and column of the file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class PolicyIssue:
    """One thing wrong with a policy file.

    Attributes:
        line: 1-based line in the file (0 when the problem is not tied to a place).
        column: 1-based column in the file (0 when unknown).
        message: Plain-English description, prefixed with the YAML path where useful.
    """

    line: int
    column: int
    message: str

    def format(self, source: str = "policy.yaml") -> str:
        """``source:line:column: message``, the form editors and compilers use."""
        return f"{source}:{self.line}:{self.column}: {self.message}"


class PolicyError(ValueError):
    """A policy file that cannot be used; ``errors`` lists every problem found, in file order."""

    def __init__(self, errors: list[PolicyIssue], source: str = "policy.yaml") -> None:
        self.errors = sorted(errors)
        self.source = source
        count = len(self.errors)
        head = f"{source}: {count} error{'s' if count != 1 else ''}"
        super().__init__(head + "".join("\n  " + e.format(source) for e in self.errors))
