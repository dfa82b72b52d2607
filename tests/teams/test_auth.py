"""Inbound authentication: botframework's JWT validation, every failure a 401 changing nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jwt
import pytest

from signoff.runtime import Runtime
from tests.conftest import free_port
from tests.fakes.teams_connector import FakeBotFramework
from tests.teams.conftest import (
    APPROVALS,
    TeamsClient,
    WebServer,
    button_data,
    card_of,
    open_request,
    teams_settings,
    texts,
)


def _bad_tokens(bf: FakeBotFramework) -> dict[str, str | None]:
    now_claims = {"serviceurl": bf.service_url, "iss": "https://api.botframework.com",
                  "aud": bf.app_id}
    return {
        "no Authorization header": None,
        "empty bearer": "",
        "not a JWT": "not.a.jwt",
        "expired": bf.mint(expires_in=-900),  # beyond botframework's 5-minute leeway
        "not yet valid": bf.mint(not_before=10**10),
        "wrong audience": bf.mint(audience="someone-elses-bot"),
        "wrong issuer": bf.mint(issuer="https://evil.example"),
        "emulator issuer": bf.mint(
            issuer="https://sts.windows.net/d6d49420-f39b-4df7-a1dc-d59a935871db/",
            extra={"ver": "1.0", "appid": bf.app_id}),
        "signed by another key": bf.mint(key=bf.rogue_key),
        "unknown key id": bf.mint(kid="not-a-published-key"),
        "service URL of another connector": bf.mint("https://smba.trafficmanager.net/amer/"),
        "HMAC with the public key": jwt.encode(
            {**now_claims, "exp": 10**10}, "public-key-used-as-an-hmac-secret!", algorithm="HS256",
            headers={"kid": "fake-bf-key-1"}),
        "unsigned": jwt.encode({**now_claims, "exp": 10**10}, key="", algorithm="none"),
    }


def test_bad_tokens_are_401_and_change_nothing(trt: Runtime, bf: FakeBotFramework,
                                               teams: TeamsClient) -> None:
    assert teams.install(APPROVALS, "Approvals").status_code == 201
    open_request(trt, "a1")
    base = bf.wait_posts(1)[0].card
    assert base is not None
    card = card_of(teams.invoke("refresh", base["refresh"]["action"]["data"], "alice"))
    approve = button_data(card, "approve")
    before = trt.store.get("a1")
    assert before is not None
    saved_before = trt.redis.hgetall(trt.keys.teams_conversations)
    posts_before = len(bf.posts())

    def invoke_activity() -> dict[str, Any]:
        activity = teams.base("invoke", "alice")
        activity["name"] = "adaptiveCard/action"
        activity["value"] = {"action": {"type": "Action.Execute", "verb": "approve",
                                        "data": approve}}
        return activity

    for label, token in _bad_tokens(bf).items():
        response = teams.post(invoke_activity(), token=token if token is not None else "")
        assert response.status_code == 401, (label, response.status_code, response.text)
    # Malformed Authorization headers are refused before any parsing.
    for header in ("Basic YWxpY2U6c2VjcmV0", "Bearer", "Bearer a b", "bearer " + bf.mint()):
        response = teams.post(invoke_activity(), token="", headers={"Authorization": header})
        assert response.status_code == 401, header
    # An install with a bad token saves nothing either.
    install = teams.base("conversationUpdate", "erin", "19:sneaky@thread.tacv2")
    install["membersAdded"] = [{"id": install["recipient"]["id"]}]
    assert teams.post(install, token=bf.mint(audience="other")).status_code == 401

    # A valid token for another channel of the same bot (Web Chat, Direct Line), whose
    # clients choose their own "from": refused before the bot sees it.
    webchat = invoke_activity()
    webchat["channelId"] = "webchat"
    assert teams.post(webchat).status_code == 403

    after = trt.store.get("a1")
    assert after is not None and after.votes == {} and after.version == before.version
    assert trt.redis.hgetall(trt.keys.teams_conversations) == saved_before
    assert len(bf.posts()) == posts_before
    # The same click with a valid token goes through: the refusals were the tokens'.
    assert "Vote recorded" in texts(card_of(teams.post(invoke_activity())))


def test_not_json_or_not_an_activity_is_refused(trt: Runtime, teams: TeamsClient) -> None:
    token = teams.bf.mint()
    url = f"{teams.server.url}/api/messages"
    auth = {"Authorization": f"Bearer {token}"}
    assert teams.http.post(url, data=b"hello", headers={**auth, "Content-Type": "text/plain"},
                           timeout=10).status_code == 415
    assert teams.http.post(url, data=b"{nope", headers={**auth, "Content-Type":
                                                        "application/json"},
                           timeout=10).status_code == 400
    assert teams.http.post(url, json={"no": "type"}, headers=auth, timeout=10).status_code == 400


@pytest.mark.timeout(60)
def test_unreachable_signing_keys_fail_closed(redis_url: str, tmp_path: Path,
                                              bf: FakeBotFramework, teams_policy: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1/.well-known/openidconfiguration"
    rt = Runtime(teams_settings(redis_url, tmp_path / "data", bf, teams_policy,
                                teams_openid_metadata_url=dead))
    server = WebServer(rt).start()
    try:
        client = TeamsClient(bf, server)
        response = client.install(APPROVALS, "Approvals")
        assert response.status_code == 503
        assert rt.redis.hgetall(rt.keys.teams_conversations) == {}
    finally:
        server.stop()
        rt.close()


def test_no_teams_settings_no_route(rt: Runtime) -> None:
    from bot.app import create_app

    app = create_app(rt)
    assert "/api/messages" not in {r.resource.canonical for r in app.router.routes()
                                   if r.resource is not None}


def test_clients_are_reused_across_activities_and_every_token_is_still_checked(
        trt: Runtime, bf: FakeBotFramework, teams: TeamsClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """botbuilder builds a connector client and a user-token client per activity; Signoff's
    authentication keeps one of each per app identity and service URL. Reuse never skips the
    check of the activity's own token."""
    from botframework.connector.auth import (
        _connector_factory_impl,
        _parameterized_bot_framework_authentication,
    )

    built: dict[str, int] = {"connector": 0, "user_token": 0}

    def counting(cls: Any, name: str) -> Any:
        class Counted(cls):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                built[name] += 1
                super().__init__(*args, **kwargs)
        return Counted

    monkeypatch.setattr(_connector_factory_impl, "ConnectorClient",
                        counting(_connector_factory_impl.ConnectorClient, "connector"))
    monkeypatch.setattr(_parameterized_bot_framework_authentication, "_UserTokenClientImpl",
                        counting(_parameterized_bot_framework_authentication
                                 ._UserTokenClientImpl, "user_token"))
    for i in range(4):
        response = teams.message("help", who="alice")
        assert response.status_code in (200, 201), response.text
    assert built == {"connector": 1, "user_token": 1}
    bad = teams.base("message", "alice", "a:personal-alice", "personal")
    bad["text"] = "help"
    assert teams.post(bad, token=bf.mint(key=bf.rogue_key)).status_code == 401
    assert teams.post(bad, token=bf.mint(audience="someone-elses-bot")).status_code == 401
    assert built == {"connector": 1, "user_token": 1}
