"""Teams test fixtures: the fake Bot Framework, a Teams-configured runtime, the real web app.

The web app (``bot.app.create_app``) runs on a free loopback port in its own thread and event
loop, so tests stay synchronous and can run the real rq worker in the main thread (rq
installs signal handlers) while activities go over real HTTP.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from aiohttp import web

from signoff.runtime import Runtime, set_current
from tests.conftest import EXAMPLE_POLICY, make_settings, run_intake, run_jobs
from tests.fakes.teams_connector import FakeBotFramework

APP_ID = "11111111-2222-3333-4444-555555555555"
APP_PASSWORD = "fake-client-secret-0123456789"  # the fake token server's client secret
BOT_ID = f"28:{APP_ID}"
TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT = "0badc0de-0000-0000-0000-000000000000"
APPROVALS = "19:approvals0000@thread.tacv2"
OPS = "19:ops000000000@thread.tacv2"

AAD = {
    "alice": "00000000-0000-0000-0000-00000000a11c",
    "bob": "00000000-0000-0000-0000-000000000b0b",
    "carol": "00000000-0000-0000-0000-0000000ca401",
    "dave": "00000000-0000-0000-0000-00000000da7e",
    "erin": "00000000-0000-0000-0000-00000000e410",
    "frank": "00000000-0000-0000-0000-0000000f4a4c",
    "mallory": "00000000-0000-0000-0000-0000000bad00",  # not in the directory
}


@pytest.fixture(scope="session")
def bf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeBotFramework]:
    fake = FakeBotFramework(tmp_path_factory.mktemp("bf"), APP_ID, APP_PASSWORD).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def teams_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example policy, with the data-export rule posting to two Teams conversations."""
    doc = yaml.safe_load(EXAMPLE_POLICY.read_text())
    for rule in doc["rules"]:
        if rule["id"] == "prod-data-export":
            rule["require"]["channels"] = [{"teams": "approvals"}, {"teams": "ops"}, "web"]
            rule["require"].pop("reminders", None)
            rule["require"].pop("escalation", None)
    doc["defaults"]["reminders"] = []
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def teams_settings(redis_url: str, data_dir: Path, bf: FakeBotFramework, policy: Path,
                   **overrides: Any) -> Any:
    values: dict[str, Any] = {
        "policy_path": policy,
        "microsoft_app_id": APP_ID,
        "microsoft_app_password": APP_PASSWORD,
        "teams_openid_metadata_url": bf.metadata_url,
        "teams_login_url": bf.login_url,
        "teams_allowed_tenants": TENANT,
        **overrides,
    }
    return make_settings(redis_url, data_dir, **values)


@pytest.fixture
def trt(redis_url: str, tmp_path: Path, bf: FakeBotFramework, teams_policy: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    """A runtime with Teams configured against the fake Bot Framework."""
    from workers import jobs

    bf.reset()
    # MSAL's HTTP client (requests) trusts the fake token server's test CA through this.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bf.ca_path))
    runtime = Runtime(teams_settings(redis_url, tmp_path / "data", bf, teams_policy))
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


class WebServer:
    """``bot.app.create_app(rt)`` served on a free port from its own thread."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebServer:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            from bot.app import create_app

            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            runner = web.AppRunner(create_app(self.rt), access_log=None, shutdown_timeout=2.0)
            try:
                loop.run_until_complete(runner.setup())
                site = web.TCPSite(runner, "127.0.0.1", 0)
                loop.run_until_complete(site.start())
                self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, name="signoff-web", daemon=True)
        self._thread.start()
        if not ready.wait(20) or errors:
            raise RuntimeError(f"web app did not start: {errors}")
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class TeamsClient:
    """Builds Teams activities as the Bot Framework sends them and POSTs them, signed."""

    def __init__(self, bf: FakeBotFramework, server: WebServer) -> None:
        self.bf = bf
        self.server = server
        self.http = requests.Session()
        self.http.trust_env = False

    def post(self, activity: dict[str, Any], token: str | None = None,
             headers: dict[str, str] | None = None) -> requests.Response:
        sent = {"Content-Type": "application/json"}
        if token is None:
            token = self.bf.mint(activity.get("serviceUrl"))
        if token:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        return self.http.post(f"{self.server.url}/api/messages", data=json.dumps(activity),
                              headers=sent, timeout=30)

    def base(self, kind: str, who: str = "alice", conversation: str = APPROVALS,
             conversation_type: str = "channel", tenant: str = TENANT) -> dict[str, Any]:
        aad = AAD[who]
        activity: dict[str, Any] = {
            "type": kind,
            "id": f"f:{uuid.uuid4()}",
            "timestamp": "2024-06-03T10:00:00.000Z",
            "channelId": "msteams",
            "serviceUrl": self.bf.service_url,
            "from": {"id": f"29:{who}", "name": who.title(), "aadObjectId": aad},
            "recipient": {"id": BOT_ID, "name": "Signoff"},
            "conversation": {"id": conversation, "conversationType": conversation_type,
                             "tenantId": tenant, "isGroup": conversation_type != "personal"},
            "channelData": {"tenant": {"id": tenant}},
            "locale": "en-US",
        }
        if conversation_type == "channel":
            activity["channelData"]["channel"] = {"id": conversation}
            activity["channelData"]["team"] = {"id": conversation}
        return activity

    def install(self, conversation: str, team_name: str, tenant: str = TENANT,
                who: str = "erin") -> requests.Response:
        """The bot added to a team (the team's General channel is ``conversation``)."""
        activity = self.base("conversationUpdate", who, conversation, tenant=tenant)
        activity["membersAdded"] = [{"id": BOT_ID}]
        activity["channelData"].update({"eventType": "teamMemberAdded",
                                        "team": {"id": conversation, "name": team_name}})
        return self.post(activity)

    def invoke(self, verb: str, data: dict[str, Any], who: str = "alice",
               activity_id: str | None = None, tenant: str = TENANT,
               comment: str | None = None, conversation: str = APPROVALS
               ) -> requests.Response:
        activity = self.base("invoke", who, conversation, tenant=tenant)
        activity["name"] = "adaptiveCard/action"
        if activity_id:
            activity["id"] = activity_id
        payload = dict(data)
        if comment is not None:
            payload["comment"] = comment
        activity["replyToId"] = "1:1"
        activity["value"] = {"action": {"type": "Action.Execute", "verb": verb,
                                        "data": payload},
                             "trigger": "manual" if verb != "refresh" else "automatic"}
        return self.post(activity)

    def message(self, text: str, who: str = "alice", personal: bool = True,
                conversation: str | None = None) -> requests.Response:
        conv_type = "personal" if personal else "channel"
        conv = conversation or (f"a:personal-{who}" if personal else APPROVALS)
        activity = self.base("message", who, conv, conv_type)
        activity["text"] = text if personal else f"<at>Signoff</at> {text}"
        return self.post(activity)


@pytest.fixture
def server(trt: Runtime) -> Iterator[WebServer]:
    srv = WebServer(trt).start()
    yield srv
    srv.stop()


@pytest.fixture
def teams(bf: FakeBotFramework, server: WebServer) -> TeamsClient:
    return TeamsClient(bf, server)


def export_request(rid: str, **over: Any) -> dict[str, Any]:
    """A production data export (two DBAs must approve; a deny needs a reason)."""
    body: dict[str, Any] = {
        "id": rid, "action": "db.export", "resource": "warehouse.customers",
        "params": {"rows": 5000, "notify": "jane.doe@example.org",
                   "api_key": "sk_live_abcdef0123456789abcdef"},
        "requester": "agent:export-bot", "on_behalf_of": "frank@example.com",
        "reason": "quarterly revenue report",
        "context": {"environment": "prod", "ticket": "OPS-1"},
    }
    body.update(over)
    return body


def open_request(rt: Runtime, rid: str, **over: Any) -> None:
    """Send a request through the real intake and run the jobs (prepare, notify)."""
    rt.redis_bytes.xadd(rt.keys.requests, {"body": json.dumps(export_request(rid, **over))})
    assert run_intake(rt) == 1
    run_jobs(rt)


def card_of(response: requests.Response) -> dict[str, Any]:
    """The card an adaptiveCard/action invoke answered with."""
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    return dict(body["value"])


def texts(card: dict[str, Any]) -> str:
    """Every piece of text on a card, joined (for assertions)."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "label", "fallbackText"):
                if isinstance(node.get(key), str):
                    out.append(node[key])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card)
    return "\n".join(out)


def verbs(card: dict[str, Any]) -> list[str]:
    """The Action.Execute verbs of a card's buttons (not its refresh)."""
    return [a["verb"] for a in card.get("actions", []) if a.get("type") == "Action.Execute"]


def button_data(card: dict[str, Any], verb: str) -> dict[str, Any]:
    for action in card.get("actions", []):
        if action.get("verb") == verb:
            return dict(action["data"])
    raise AssertionError(f"no {verb} button on the card")
