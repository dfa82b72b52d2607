"""Signed activities whose shape no Teams client sends: a 400 that changes nothing (no state,
no reply through the connector), never a 500."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signoff.runtime import Runtime
from tests.conftest import DATA
from tests.teams.conftest import TeamsClient, open_request


def state(rt: Runtime, *skip: str) -> dict[bytes, bytes | None]:
    """Every Signoff key and its value, but for keys starting with one of ``skip``."""
    r = rt.redis_bytes
    prefixes = tuple(k.encode() for k in skip)
    return {key: r.dump(key) for key in r.scan_iter(match=f"{rt.keys.prefix}*".encode())
            if not (prefixes and key.startswith(prefixes))}


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


RECORDINGS = sorted((DATA / "teams" / "botbuilder-js-recordings").glob("*.json"))


@pytest.mark.parametrize("path", RECORDINGS, ids=lambda p: p.name.split("-request-")[1][:-5])
def test_recorded_teams_requests_change_nothing(trt: Runtime, teams: TeamsClient,
                                                path: Path) -> None:
    """Real Teams-to-bot requests (botbuilder-js recordings). With their own (expired) tokens
    they are 401 and change nothing at all. Re-signed by the Bot Framework fake (and
    addressed to it), from the tenant the tests allow, they are served: never a 5xx, and no
    request or vote comes of them (a message may refresh its conversation's saved reference,
    and the bot answers it)."""
    recorded = json.loads(path.read_text())
    body = recorded["body"]
    open_request(trt, "r-recorded")
    before = state(trt)
    token = recorded["headers"]["authorization"].split(" ", 1)[1]
    assert teams.post(body, token=token).status_code == 401
    assert state(trt) == before
    resp = teams.post({**body, "serviceUrl": teams.bf.service_url})
    # 501: the Bot Framework's answer to an invoke a bot does not implement (task/fetch...).
    assert resp.status_code < 500 or (resp.status_code == 501 and body["type"] == "invoke"), (
        resp.status_code, resp.text[:300])
    served = (trt.keys.audit, trt.keys.teams_conversations)
    assert state(trt, *served) == {k: v for k, v in before.items()
                                   if not k.startswith(tuple(s.encode() for s in served))}
