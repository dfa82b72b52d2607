"""Fixtures for the Slack tests: the fake Web API, a Slack-configured runtime, the real web
app on a loopback port, and helpers that sign requests exactly as Slack does."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web as web_

from bot.app import create_app
from signoff.runtime import Runtime, set_current
from signoff.settings import Settings
from tests.conftest import make_settings, run_intake, run_jobs, wait_for
from tests.fakes.slack_api import APP_TOKEN, BOT_TOKEN, FakeSlack

SIGNING_SECRET = "slack-signing-secret-for-tests-0123"
_ts = count(1)


@pytest.fixture(scope="session")
def shared_masker(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One masking engine for the whole Slack suite (its model loads once, ~2 s)."""
    from policy import load_policy
    from signoff.masking import Masker
    from tests.conftest import EXAMPLE_POLICY, TEST_SECRETS

    policy = load_policy(EXAMPLE_POLICY)
    masker = Masker(key=TEST_SECRETS["masking_key"].encode(),
                    custom_detectors=policy.custom_detectors)
    masker.mask({"reason": "warm up the model for Alice Anders"})
    return masker


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


def slack_settings(redis_url: str, data_dir: Path, fake: FakeSlack, **extra: Any) -> Settings:
    values: dict[str, Any] = {"slack_bot_token": BOT_TOKEN,
                              "slack_signing_secret": SIGNING_SECRET,
                              "slack_api_url": fake.url}
    values.update(extra)
    return make_settings(redis_url, data_dir, **values)


@pytest.fixture
def srt(redis_url: str, tmp_path: Path, fake_slack: FakeSlack, shared_masker: Any
        ) -> Iterator[Runtime]:
    """A runtime with Slack configured against the fake."""
    from workers import jobs

    runtime = Runtime(slack_settings(redis_url, tmp_path / "data", fake_slack))
    runtime.__dict__["masker"] = shared_masker
    set_current(runtime)
    jobs.reset_messengers()
    yield runtime
    jobs.reset_messengers()
    runtime.close()


class WebThread:
    """The real aiohttp app from ``bot.app.create_app`` served on a free loopback port from
    its own thread and event loop, so tests stay synchronous and rq jobs (which must run on
    the main thread and call ``asyncio.run``) can run between requests."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.app: Any = None
        self._runner: web_.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._baseline: set[asyncio.Task[Any]] = set()
        self._thread = threading.Thread(target=self._run, name="signoff-web", daemon=True)

    def start(self) -> WebThread:
        self._thread.start()
        if not self._ready.wait(15):
            raise RuntimeError("web server did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self.loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self._cleanup())
        loop.close()

    async def _startup(self) -> None:
        self.app = create_app(self.rt)
        self._runner = web_.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web_.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        await asyncio.sleep(0)
        # Long-lived tasks other channels start with the app (e.g. the inbox's event hub).
        self._baseline = set(asyncio.all_tasks())

    async def _cleanup(self) -> None:
        # Close the app first (this also closes a Socket Mode connection), then let lazy
        # listeners that are still talking to the fake finish.
        if self._runner is not None:
            await self._runner.cleanup()
        pending = [t for t in asyncio.all_tasks()
                   if t is not asyncio.current_task() and t not in self._baseline]
        if pending:
            await asyncio.wait(pending, timeout=5)

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def server(srt: Runtime) -> Iterator[WebThread]:
    thread = WebThread(srt).start()
    yield thread
    thread.stop()


@pytest.fixture
def web(server: WebThread) -> SlackClient:
    return SlackClient(server.url + "/slack/events")


# --- signing exactly as Slack does --------------------------------------------------------
def slack_signature(secret: str, timestamp: str, body: str) -> str:
    """``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}`` (Slack's documented scheme)."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(body: str, *, secret: str = SIGNING_SECRET, timestamp: float | None = None,
                   content_type: str = "application/x-www-form-urlencoded") -> dict[str, str]:
    ts = str(int(time.time() if timestamp is None else timestamp))
    return {"X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": slack_signature(secret, ts, body),
            "Content-Type": content_type}


Sent = tuple[int, str]


class SlackClient:
    """Sends signed interaction requests to the running web server over real HTTP."""

    def __init__(self, url: str) -> None:
        self.url = url

    async def _post(self, http: aiohttp.ClientSession, body: bytes,
                    headers: dict[str, str]) -> Sent:
        async with http.post(self.url, data=body, headers=headers) as resp:
            return resp.status, await resp.text()

    def send(self, body: str | bytes, headers: dict[str, str] | None = None) -> Sent:
        raw = body.encode() if isinstance(body, str) else body
        hdrs = headers if headers is not None else signed_headers(raw.decode())
        return self.send_many([(raw, hdrs)])[0]

    def send_many(self, items: list[tuple[bytes, dict[str, str]]]) -> list[Sent]:
        """Send several requests at once (concurrently) and return their answers."""

        async def go() -> list[Sent]:
            timeout = aiohttp.ClientTimeout(total=20)
            async with aiohttp.ClientSession(timeout=timeout) as http:
                return list(await asyncio.gather(*(self._post(http, b, h) for b, h in items)))

        return asyncio.run(go())

    @staticmethod
    def form(payload: dict[str, Any]) -> str:
        return urlencode({"payload": json.dumps(payload)})

    def interact(self, payload: dict[str, Any], **kw: Any) -> Sent:
        body = self.form(payload)
        return self.send(body, signed_headers(body, **kw))

    def interact_many(self, payloads: list[dict[str, Any]]) -> list[Sent]:
        items = []
        for p in payloads:
            body = self.form(p)
            items.append((body.encode(), signed_headers(body)))
        return self.send_many(items)

    def command(self, user: str, text: str, fake: FakeSlack,
                channel: str = "C0GENERAL") -> tuple[int, dict[str, Any]]:
        body = command_body(user, text, fake, channel)
        status, text_body = self.send(body)
        return status, (json.loads(text_body) if text_body.startswith("{") else {})


def command_body(user: str, text: str, fake: FakeSlack, channel: str = "C0GENERAL") -> str:
    """A slash-command form body shaped like Slack's (tests/data/slack)."""
    return urlencode({
        "token": "legacy-verification-token", "team_id": "T0SIGNOFF",
        "team_domain": "signoff-test", "channel_id": channel, "channel_name": "general",
        "user_id": user, "user_name": user.lower(), "command": "/signoff", "text": text,
        "api_app_id": "A0SIGNOFF", "response_url": fake.response_url,
        "trigger_id": f"{next(_ts)}.1.trigger"})


# --- payloads shaped like Slack's (see tests/data/slack) --------------------------------
def card_buttons(blocks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """action_id -> button element (with its block_id) of a posted card."""
    out = {}
    for block in blocks:
        for el in block.get("elements", []) if block.get("type") == "actions" else []:
            out[el["action_id"]] = {**el, "block_id": block["block_id"]}
        acc = block.get("accessory")
        if acc and acc.get("type") == "button":
            out.setdefault(acc["action_id"], {**acc, "block_id": block["block_id"]})
    return out


def block_action(user: str, button: dict[str, Any], *, channel: str, message_ts: str,
                 fake: FakeSlack, value: str | None = None,
                 action_ts: str | None = None) -> dict[str, Any]:
    """A block_actions payload for ``user`` clicking ``button`` on a message."""
    return {
        "type": "block_actions",
        "team": {"id": "T0SIGNOFF", "domain": "signoff-test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0SIGNOFF"},
        "api_app_id": "A0SIGNOFF",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": message_ts, "channel_id": channel,
                      "is_ephemeral": False},
        "trigger_id": f"{next(_ts)}.{int(time.time())}.trigger",
        "channel": {"id": channel, "name": "approvals"},
        "message": {"type": "message", "ts": message_ts, "bot_id": fake.bot_id,
                    "text": "card"},
        "response_url": fake.response_url,
        "actions": [{
            "action_id": button["action_id"], "block_id": button["block_id"],
            "text": button["text"], "value": value if value is not None else button["value"],
            "type": "button",
            "action_ts": action_ts or f"{time.time():.6f}{next(_ts)}",
        }],
    }


def view_submission(user: str, view: dict[str, Any], reason: str | None,
                    view_id: str = "V0DENY") -> dict[str, Any]:
    """A view_submission payload for the deny-reason modal with ``reason`` typed in."""
    from bot.slack import render

    return {
        "type": "view_submission",
        "team": {"id": "T0SIGNOFF", "domain": "signoff-test"},
        "user": {"id": user, "username": user.lower(), "team_id": "T0SIGNOFF"},
        "api_app_id": "A0SIGNOFF",
        "token": "legacy-verification-token",
        "trigger_id": f"{next(_ts)}.1.trigger",
        "view": {**view, "id": view_id, "team_id": "T0SIGNOFF", "hash": "1.abc",
                 "state": {"values": {render.REASON_BLOCK: {render.REASON_INPUT: {
                     "type": "plain_text_input", "value": reason}}}},
                 "app_id": "A0SIGNOFF", "bot_id": "B0SIGNBOT", "root_view_id": view_id},
        "response_urls": [],
    }


# --- requests -----------------------------------------------------------------------------
def export_body(rid: str, **over: Any) -> dict[str, Any]:
    """A prod data export (rule prod-data-export: 2 of dba, reason, deny comment)."""
    # "batch" makes each payload distinct: identical pending requests from one agent are
    # merged onto one card (tests of that pass the same params explicitly).
    body = {"id": rid, "action": "db.export", "resource": "warehouse.customers",
            "params": {"table": "customers", "columns": ["email", "country"], "batch": rid,
                       "contact": "jane.doe@example.org", "api_key": "sk_live_51Hx0000secret"},
            "requester": "agent:export-bot", "on_behalf_of": "frank@example.com",
            "reason": "Quarterly churn analysis <!channel> for Frank",
            "context": {"environment": "prod", "ticket": "OPS-1"}}
    body.update(over)
    return body


def submit(rt: Runtime, *bodies: dict[str, Any]) -> None:
    """XADD requests, then run intake and every job (prepare, notify)."""
    for body in bodies:
        rt.redis.xadd(rt.keys.requests, {"body": json.dumps(body)})
    run_intake(rt)
    run_jobs(rt)


def until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy; fail the test after ``timeout`` seconds."""
    return wait_for(predicate, timeout=timeout, interval=0.02, message=what)


__all__ = ["APP_TOKEN", "BOT_TOKEN", "SIGNING_SECRET"]
