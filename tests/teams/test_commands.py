"""Messages to the bot: ``status``, ``pending``, ``mine``, ``help``, answered as cards."""

from __future__ import annotations

import json
from typing import Any

from bot.commands import UNKNOWN_PERSON
from signoff.runtime import Runtime
from tests.fakes.teams_connector import FakeBotFramework
from tests.teams.conftest import APPROVALS, TeamsClient, open_request, texts, verbs


def answer(bf: FakeBotFramework, teams: TeamsClient, text: str, who: str = "alice",
           personal: bool = True) -> dict[str, Any]:
    """Send a message and return the card the bot replied with."""
    before = len(bf.posts())
    response = teams.message(text, who, personal=personal)
    assert response.status_code == 201, response.text
    posts = bf.wait_posts(before + 1)
    reply = posts[-1]
    expected = f"a:personal-{who}" if personal else APPROVALS
    assert reply.conversation_id == expected
    assert reply.card is not None
    return reply.card


def test_help_and_unknown_commands(trt: Runtime, bf: FakeBotFramework,
                                   teams: TeamsClient) -> None:
    card = answer(bf, teams, "help")
    text = texts(card)
    for usage in ("status <request-id>", "pending [page]", "mine [page]", "help"):
        assert usage in text
    assert "Conversation id: a:personal-alice" in text
    assert "alice@example.com" in text  # the personal chat is saved under her email
    wrong = texts(answer(bf, teams, "approve everything"))
    assert "Unknown command 'approve'." in wrong and "status <request-id>" in wrong
    assert UNKNOWN_PERSON in texts(answer(bf, teams, "pending", who="mallory"))


def test_pending_status_and_mine(trt: Runtime, bf: FakeBotFramework,
                                 teams: TeamsClient) -> None:
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    open_request(trt, "c1")
    assert "c1" in texts(answer(bf, teams, "pending"))
    assert "Nothing is waiting for you." in texts(answer(bf, teams, "pending", who="dave"))
    # In her personal chat, status shows alice her own view, with the buttons.
    mine = answer(bf, teams, "status c1")
    assert verbs(mine) == ["approve", "deny"] and "2 of dba — 0 so far" in texts(mine)
    # In a channel everyone sees the answer: fully masked, buttons only through refresh.
    shared = answer(bf, teams, "status c1", personal=False)
    assert verbs(shared) == [] and "refresh" in shared
    assert "sk_live" not in json.dumps(shared) and "jane.doe@example.org" not in json.dumps(shared)
    assert "c1" in texts(answer(bf, teams, "mine", who="frank"))
    assert "There is no request nope." in texts(answer(bf, teams, "status nope"))
