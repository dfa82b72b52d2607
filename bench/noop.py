"""The baseline job: does nothing (what an rq round trip costs by itself)."""

from __future__ import annotations


def noop(i: int) -> int:
    return i
