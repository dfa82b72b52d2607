"""Signed activities whose shape no Teams client sends: a 400 that changes nothing (no state,
no reply through the connector), never a 500."""

from __future__ import annotations

from typing import Any

import pytest

from signoff.runtime import Runtime
from tests.teams.conftest import TeamsClient, open_request


def state(rt: Runtime) -> dict[bytes, bytes | None]:
    r = rt.redis_bytes
    return {key: r.dump(key) for key in r.scan_iter(match=f"{rt.keys.prefix}*".encode())}


def _without_conversation(activity: dict[str, Any], how: str) -> dict[str, Any]:
    if how == "missing":
        activity.pop("conversation")
    elif how == "empty":
        activity["conversation"] = {}
    elif how == "null":
        activity["conversation"] = None
    else:
        activity["conversation"] = {"id": "", "conversationType": "personal"}
    return activity


@pytest.mark.parametrize("how", ["empty", "missing", "null", "blank id"])
@pytest.mark.parametrize("kind", ["message", "invoke", "conversationUpdate"])
def test_signed_activity_without_a_conversation_is_400_and_changes_nothing(
        trt: Runtime, teams: TeamsClient, kind: str, how: str) -> None:
    open_request(trt, "r-noconv")
    teams.bf.reset()
    before = state(trt)
    activity = teams.base(kind, "alice", "a:personal-alice", "personal")
    if kind == "message":
        activity["text"] = "pending"
    elif kind == "invoke":
        activity["name"] = "adaptiveCard/action"
        activity["value"] = {"action": {"type": "Action.Execute", "verb": "approve",
                                        "data": {"rid": "r-noconv"}}}
    else:
        activity["membersAdded"] = [{"id": activity["recipient"]["id"]}]
    resp = teams.post(_without_conversation(activity, how))
    assert resp.status_code == 400, (resp.status_code, resp.text[:300])
    assert state(trt) == before
    assert teams.bf.activities == []
