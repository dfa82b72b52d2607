"""policy/quorum.lua, run by a real redis-server, agrees with quorum_met on generated inputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policy import Escalation, Requirement, quorum_met
from signoff.redis_conn import connect

LUA = (Path(__file__).resolve().parents[2] / "policy" / "quorum.lua").read_text()
DRIVER = """
local r = cjson.decode(ARGV[1])
if quorum_met(r.groups, r.quorum, r.stand_in, cjson.decode(ARGV[2])) then return 1 end
return 0
"""
GROUPS = ["dba", "secops", "admins", "platform"]


@pytest.fixture(scope="module")
def script(redis_server: Any) -> Any:
    client = connect(redis_server.url)
    yield client.register_script(LUA + DRIVER)
    client.close()


def lua_met(script: Any, requirement: Requirement, approvals: dict[str, list[str]]) -> bool:
    doc = {"groups": requirement.groups, "quorum": requirement.quorum,
           "stand_in": list(requirement.stand_in_groups)}
    return bool(script(args=[json.dumps(doc), json.dumps(approvals)]))


def test_lua_table_cases(script: Any) -> None:
    from .test_quorum import DBA_AND_SECOPS, DBA_PLUS_ANYONE, TWO_DBA

    cases = [
        (DBA_AND_SECOPS, {"carol": ["dba", "secops"]}, False),
        (DBA_AND_SECOPS, {"carol": ["dba", "secops"], "erin": ["admins"]}, False),
        (DBA_AND_SECOPS, {"carol": ["dba", "secops"], "alice": ["dba"]}, True),
        (TWO_DBA, {"alice": ["dba"], "erin": ["admins"]}, True),
        (TWO_DBA, {"alice": ["dba"], "ALICE ": ["dba"]}, False),
        (DBA_PLUS_ANYONE, {"alice": ["dba"], "dave": ["secops"]}, True),
        (DBA_PLUS_ANYONE, {}, False),
    ]
    for requirement, approvals, met in cases:
        assert lua_met(script, requirement, approvals) is met, approvals


@settings(max_examples=150, deadline=None)
@given(
    required=st.dictionaries(st.sampled_from(GROUPS[:3]), st.integers(1, 2), min_size=1, max_size=3),
    slack=st.integers(0, 2),
    escalate=st.lists(st.sampled_from(GROUPS), unique=True, max_size=2),
    approvals=st.dictionaries(
        st.sampled_from(["p1", "p2", "P2", "p3", "p4", "p5"]),
        st.lists(st.sampled_from(GROUPS), unique=True, max_size=3),
        max_size=6,
    ),
)
def test_lua_and_python_agree(
    script: Any, required: dict[str, int], slack: int, escalate: list[str],
    approvals: dict[str, list[str]],
) -> None:
    requirement = Requirement(
        groups=required,
        quorum=sum(required.values()) + slack,
        eligible_groups=tuple(dict.fromkeys([*required, *escalate])),
        escalation=(Escalation(60, tuple(escalate)),) if escalate else (),
    )
    assert lua_met(script, requirement, approvals) == quorum_met(requirement, approvals)
