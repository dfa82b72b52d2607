"""The Teams connector timing out: posts and updates that get no answer are retried, each card
is posted once, and the request is decided once. In-process (real rq jobs, the real web app
in a thread, the fake Bot Framework behind a proxy that stops answering), with the
messenger's per-call timeout shortened so the test runs in seconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.teams import messenger as teams_messenger
from signoff.models import Status
from signoff.runtime import Runtime
from tests.conftest import run_intake, run_jobs
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import (
    StallingProxy,
    assert_exactly_once,
    body,
    install_teams,
    send,
    teams_posts,
)
from tests.teams.conftest import TeamsClient, WebServer, button_data, card_of

CALL_TIMEOUT = 1.0


@pytest.fixture
def proxy(bf: FakeBotFramework, monkeypatch: pytest.MonkeyPatch) -> Iterator[StallingProxy]:
    monkeypatch.setattr(teams_messenger, "CALL_TIMEOUT", CALL_TIMEOUT)
    p = StallingProxy(bf.service_url).start()
    yield p
    p.stop()


def approve_in_teams(rt: Runtime, bf: FakeBotFramework, rid: str, who: str) -> None:
    server = WebServer(rt).start()
    try:
        teams = TeamsClient(bf, server)
        post = teams_posts(bf, rid)[0]
        base = post.card
        assert base is not None
        mine = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], who))
        resp = teams.invoke("approve", button_data(mine, "approve"), who)
        assert resp.status_code == 200, resp.text
    finally:
        server.stop()


LOST_ANSWER = pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "known limit: when Teams carried out a post but its answer was lost, the retry posts a "
    "second card; the Bot Connector offers a bot no way to find its own earlier message "
    "(Slack's messenger looks it up by metadata). The extra card is never recorded or "
    "updated; its buttons go through the same checks (docs/reliability.md)"))


@pytest.mark.parametrize("deliver", [False, pytest.param(True, marks=LOST_ANSWER)],
                         ids=["dropped", "answer-lost"])
def test_connector_timeouts_post_each_card_once(rrt: Runtime, bf: FakeBotFramework,
                                                proxy: StallingProxy, deliver: bool) -> None:
    install_teams(rrt, proxy.url)
    # The first post and the first update get no answer within the messenger's timeout.
    proxy.hold("POST", times=1, seconds=CALL_TIMEOUT * 2.5, deliver=deliver)
    proxy.hold("PUT", times=1, seconds=CALL_TIMEOUT * 2.5, deliver=deliver)
    rid = "tt-drop" if not deliver else "tt-late"
    send(rrt, body(rid))
    run_intake(rrt)
    run_jobs(rrt)
    assert [h[0] for h in proxy.held] == ["POST"]
    assert rrt.store.status(rid) is Status.PENDING
    approve_in_teams(rrt, bf, rid, "alice")
    run_jobs(rrt)
    assert [h[0] for h in proxy.held] == ["POST", "PUT"]
    assert_exactly_once(rrt, [rid], fake=None, bf=bf, status=Status.APPROVED, settle=0)
    card = bf.message(*(lambda p: (p.conversation_id, p.activity_id))(teams_posts(bf, rid)[0]))
    assert card is not None and "Approved" in str(card)
