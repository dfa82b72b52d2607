"""A local stand-in for Slack's Web API (and Socket Mode), over real HTTP on loopback.

It implements the methods Signoff calls, checks the bot token the way Slack does
(``not_authed`` / ``invalid_auth``), enforces Block Kit's documented limits the way Slack
rejects them (``invalid_blocks`` with json-pointer messages, ``msg_too_long``, ``no_text``),
records every call, keeps the messages it was sent (with metadata, threads and edits) so
``conversations.history`` and ``conversations.replies`` answer like Slack's, and can inject
faults: 429 with ``Retry-After``, 500, timeouts, and failures *after* a message was stored
(the ambiguous case a retry must not duplicate).

Like Slack, it answers ``429 ratelimited`` with ``Retry-After`` when a channel gets more than
about one message per second (``chat.postMessage``: a token bucket per channel, one a second,
short bursts allowed: :data:`POST_LIMIT`), and it can answer with a latency profile
(:class:`~tests.fakes.latency.Latency`; :data:`~tests.fakes.latency.SLACK` is what Slack's Web
API takes from a nearby region, 80-150 ms with jitter). Tests run with no latency unless they
ask for it; ``bench/load.py`` runs with the profile.

The server runs in its own thread and event loop, so synchronous code (rq jobs running
``asyncio.run``) and async tests can both use it. Everything the test reads goes through a
lock.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import WSMsgType, web

from tests.fakes.latency import Bucket, Latency

BOT_TOKEN = "xoxb-signoff-test-token"
# chat.postMessage: "1 message per second per channel, with short bursts" (Slack's rate
# limit documentation): (per second, burst).
POST_LIMIT = (1.0, 8.0)
APP_TOKEN = "xapp-1-signoff-test-app-token"

# --- Block Kit limits, as Slack's reference documents them -------------------------------
LIMITS = {
    "message_blocks": 50,
    "modal_blocks": 100,
    "section_text": 3000,
    "field_text": 2000,
    "fields": 10,
    "header_text": 150,
    "button_text": 75,
    "button_value": 2000,
    "url": 3000,
    "action_id": 255,
    "block_id": 255,
    "actions_elements": 25,
    "context_elements": 10,
    "context_text": 3000,
    "confirm_title": 100,
    "confirm_text": 300,
    "confirm_button": 30,
    "modal_title": 24,
    "modal_button": 24,
    "private_metadata": 3000,
    "callback_id": 255,
    "input_label": 2000,
    "input_max_length": 3000,
    "placeholder": 150,
    "message_text": 40000,
    "select_options": 100,
    "option_text": 75,
    "option_value": 150,
}

_KEYS = {
    "plain_text": {"type", "text", "emoji"},
    "mrkdwn": {"type", "text", "verbatim"},
    "section": {"type", "block_id", "text", "fields", "accessory", "expand"},
    "header": {"type", "block_id", "text"},
    "actions": {"type", "block_id", "elements"},
    "context": {"type", "block_id", "elements"},
    "divider": {"type", "block_id"},
    "input": {"type", "block_id", "label", "element", "hint", "optional", "dispatch_action"},
    "button": {"type", "text", "action_id", "value", "url", "style", "confirm",
               "accessibility_label"},
    "confirm": {"title", "text", "confirm", "deny", "style"},
    "plain_text_input": {"type", "action_id", "initial_value", "multiline", "min_length",
                         "max_length", "placeholder", "dispatch_action_config",
                         "focus_on_load"},
    "static_select": {"type", "action_id", "options", "option_groups", "initial_option",
                      "placeholder", "confirm", "focus_on_load"},
    "option": {"text", "value", "description", "url"},
    "modal": {"type", "title", "blocks", "close", "submit", "private_metadata", "callback_id",
              "clear_on_close", "notify_on_close", "external_id", "submit_disabled"},
}


class _Errors:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str, pointer: str) -> None:
        self.items.append(f"{message} [json-pointer:{pointer}]")


def _keys(obj: dict[str, Any], kind: str, ptr: str, err: _Errors) -> None:
    extra = set(obj) - _KEYS[kind]
    for key in sorted(extra):
        err.add("invalid additional property: " + key, f"{ptr}/{key}")


def _text(obj: Any, ptr: str, err: _Errors, limit: int, *, plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        err.add("must be a text object", ptr)
        return
    if plain_only and obj["type"] != "plain_text":
        err.add("must be a plain_text object", f"{ptr}/type")
    _keys(obj, obj["type"], ptr, err)
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        err.add("must be a non-empty string", f"{ptr}/text")
    elif len(text) > limit:
        err.add(f"must be less than {limit + 1} characters", f"{ptr}/text")


def _button(el: dict[str, Any], ptr: str, err: _Errors) -> None:
    _keys(el, "button", ptr, err)
    _text(el.get("text"), f"{ptr}/text", err, LIMITS["button_text"], plain_only=True)
    aid = el.get("action_id")
    if aid is not None and (not isinstance(aid, str) or len(aid) > LIMITS["action_id"]):
        err.add(f"must be less than {LIMITS['action_id'] + 1} characters", f"{ptr}/action_id")
    value = el.get("value")
    if value is not None and (not isinstance(value, str) or len(value) > LIMITS["button_value"]):
        err.add(f"must be less than {LIMITS['button_value'] + 1} characters", f"{ptr}/value")
    if "url" in el and len(str(el["url"])) > LIMITS["url"]:
        err.add(f"must be less than {LIMITS['url'] + 1} characters", f"{ptr}/url")
    if "style" in el and el["style"] not in ("primary", "danger"):
        err.add("must be one of primary, danger", f"{ptr}/style")
    confirm = el.get("confirm")
    if confirm is not None:
        cptr = f"{ptr}/confirm"
        if not isinstance(confirm, dict):
            err.add("must be an object", cptr)
            return
        _keys(confirm, "confirm", cptr, err)
        _text(confirm.get("title"), f"{cptr}/title", err, LIMITS["confirm_title"],
              plain_only=True)
        _text(confirm.get("text"), f"{cptr}/text", err, LIMITS["confirm_text"])
        _text(confirm.get("confirm"), f"{cptr}/confirm", err, LIMITS["confirm_button"],
              plain_only=True)
        _text(confirm.get("deny"), f"{cptr}/deny", err, LIMITS["confirm_button"],
              plain_only=True)


def _element(el: Any, ptr: str, err: _Errors, *, in_input: bool = False) -> str | None:
    if not isinstance(el, dict):
        err.add("must be an object", ptr)
        return None
    kind = el.get("type")
    if kind == "button" and not in_input:
        _button(el, ptr, err)
    elif kind == "plain_text_input" and in_input:
        _keys(el, "plain_text_input", ptr, err)
        mx = el.get("max_length")
        if mx is not None and (not isinstance(mx, int) or mx > LIMITS["input_max_length"]):
            err.add(f"must be at most {LIMITS['input_max_length']}", f"{ptr}/max_length")
        if "placeholder" in el:
            _text(el["placeholder"], f"{ptr}/placeholder", err, LIMITS["placeholder"],
                  plain_only=True)
    elif kind == "static_select" and in_input:
        # https://docs.slack.dev/reference/block-kit/block-elements/select-menu-element
        _keys(el, "static_select", ptr, err)
        options = el.get("options")
        if not isinstance(options, list) or not options:
            err.add("must provide at least 1 items", f"{ptr}/options")
            options = []
        if len(options) > LIMITS["select_options"]:
            err.add(f"must provide at most {LIMITS['select_options']} items", f"{ptr}/options")
        for j, option in enumerate(options):
            optr = f"{ptr}/options/{j}"
            if not isinstance(option, dict):
                err.add("must be an object", optr)
                continue
            _keys(option, "option", optr, err)
            _text(option.get("text"), f"{optr}/text", err, LIMITS["option_text"],
                  plain_only=True)
            value = option.get("value")
            if not isinstance(value, str) or not value or len(value) > LIMITS["option_value"]:
                err.add(f"must be 1 to {LIMITS['option_value']} characters", f"{optr}/value")
        if "placeholder" in el:
            _text(el["placeholder"], f"{ptr}/placeholder", err, LIMITS["placeholder"],
                  plain_only=True)
    else:
        err.add(f"unsupported element type {kind!r}", f"{ptr}/type")
        return None
    aid = el.get("action_id")
    if isinstance(aid, str) and len(aid) > LIMITS["action_id"]:
        err.add(f"must be less than {LIMITS['action_id'] + 1} characters", f"{ptr}/action_id")
    return aid if isinstance(aid, str) else None


def block_errors(blocks: Any, surface: str = "message") -> list[str]:
    """Slack's complaints about ``blocks`` (empty when Slack would accept them)."""
    err = _Errors()
    if not isinstance(blocks, list):
        err.add("must be an array", "/blocks")
        return err.items
    limit = LIMITS["message_blocks"] if surface == "message" else LIMITS["modal_blocks"]
    if len(blocks) > limit:
        err.add(f"must provide at most {limit} items", "/blocks")
    seen_ids: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(block, dict):
            err.add("must be an object", ptr)
            continue
        kind = block.get("type")
        if kind not in _KEYS or kind in ("plain_text", "mrkdwn", "button", "confirm",
                                         "plain_text_input", "modal"):
            err.add(f"unsupported type {kind!r}", f"{ptr}/type")
            continue
        if kind == "input" and surface == "message":
            err.add("input blocks are for modals", f"{ptr}/type")
            continue
        _keys(block, kind, ptr, err)
        bid = block.get("block_id")
        if bid is not None:
            if not isinstance(bid, str) or len(bid) > LIMITS["block_id"]:
                err.add(f"must be less than {LIMITS['block_id'] + 1} characters",
                        f"{ptr}/block_id")
            elif bid in seen_ids:
                err.add("duplicate block_id", f"{ptr}/block_id")
            else:
                seen_ids.add(bid)
        if kind == "header":
            _text(block.get("text"), f"{ptr}/text", err, LIMITS["header_text"],
                  plain_only=True)
        elif kind == "section":
            if "text" not in block and "fields" not in block:
                err.add("must provide text or fields", ptr)
            if "text" in block:
                _text(block["text"], f"{ptr}/text", err, LIMITS["section_text"])
            if "fields" in block:
                fields = block["fields"]
                if not isinstance(fields, list) or not fields:
                    err.add("must be a non-empty array", f"{ptr}/fields")
                else:
                    if len(fields) > LIMITS["fields"]:
                        err.add(f"must provide at most {LIMITS['fields']} items",
                                f"{ptr}/fields")
                    for j, f in enumerate(fields):
                        _text(f, f"{ptr}/fields/{j}", err, LIMITS["field_text"])
            if "accessory" in block:
                _element(block["accessory"], f"{ptr}/accessory", err)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                err.add("must be a non-empty array", f"{ptr}/elements")
                continue
            if len(elements) > LIMITS["actions_elements"]:
                err.add(f"must provide at most {LIMITS['actions_elements']} items",
                        f"{ptr}/elements")
            ids: set[str] = set()
            for j, el in enumerate(elements):
                aid = _element(el, f"{ptr}/elements/{j}", err)
                if aid is not None:
                    if aid in ids:
                        err.add("duplicate action_id", f"{ptr}/elements/{j}/action_id")
                    ids.add(aid)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements:
                err.add("must be a non-empty array", f"{ptr}/elements")
                continue
            if len(elements) > LIMITS["context_elements"]:
                err.add(f"must provide at most {LIMITS['context_elements']} items",
                        f"{ptr}/elements")
            for j, el in enumerate(elements):
                _text(el, f"{ptr}/elements/{j}", err, LIMITS["context_text"])
        elif kind == "input":
            _text(block.get("label"), f"{ptr}/label", err, LIMITS["input_label"],
                  plain_only=True)
            _element(block.get("element"), f"{ptr}/element", err, in_input=True)
    return err.items


def view_errors(view: Any) -> list[str]:
    """Slack's complaints about a modal view object."""
    err = _Errors()
    if not isinstance(view, dict) or view.get("type") != "modal":
        err.add("must be a modal view", "/view/type")
        return err.items
    _keys(view, "modal", "/view", err)
    _text(view.get("title"), "/view/title", err, LIMITS["modal_title"], plain_only=True)
    for key in ("submit", "close"):
        if key in view:
            _text(view[key], f"/view/{key}", err, LIMITS["modal_button"], plain_only=True)
    if len(str(view.get("private_metadata", ""))) > LIMITS["private_metadata"]:
        err.add(f"must be less than {LIMITS['private_metadata'] + 1} characters",
                "/view/private_metadata")
    if len(str(view.get("callback_id", ""))) > LIMITS["callback_id"]:
        err.add(f"must be less than {LIMITS['callback_id'] + 1} characters",
                "/view/callback_id")
    blocks = view.get("blocks")
    has_input = isinstance(blocks, list) and any(
        isinstance(b, dict) and b.get("type") == "input" for b in blocks)
    if has_input and "submit" not in view:
        err.add("a view with input blocks needs submit", "/view/submit")
    err.items += [e.replace("[json-pointer:/blocks", "[json-pointer:/view/blocks")
                  for e in block_errors(blocks, surface="modal")]
    return err.items


# --- recorded state -----------------------------------------------------------------------
@dataclass
class Call:
    """One Web API call as the fake saw it."""

    method: str
    params: dict[str, Any]
    at: float
    status: int = 200
    error: str | None = None


@dataclass
class Message:
    """A message the fake holds (top level or a thread reply)."""

    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]] | None
    metadata: dict[str, Any] | None
    thread_ts: str | None = None
    edits: int = 0
    user: str = ""
    bot_id: str = ""

    def as_api(self, with_metadata: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text,
                               "user": self.user, "bot_id": self.bot_id}
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.thread_ts:
            out["thread_ts"] = self.thread_ts
        if with_metadata and self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass
class Fault:
    """An injected failure for calls to ``method`` (optionally only for ``channel``).

    kinds: ``429`` (Retry-After ``retry_after``), ``500``, ``timeout`` (answer after
    ``delay`` seconds, doing nothing), ``500_after`` / ``timeout_after`` (do the work, then
    fail: the ambiguous case), ``error`` (``ok: false`` with ``error``).
    """

    method: str
    kind: str
    times: int = 1
    retry_after: int = 1
    channel: str | None = None
    delay: float = 3.0
    error: str = "internal_error"
    until: float | None = None

    def active(self, now: float) -> bool:
        if self.until is not None:
            return now < self.until
        return self.times > 0


@dataclass
class Ephemeral:
    channel: str
    user: str
    text: str
    blocks: list[dict[str, Any]] | None


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    messages: dict[str, list[Message]] = field(default_factory=dict)
    ephemerals: list[Ephemeral] = field(default_factory=list)
    views: list[dict[str, Any]] = field(default_factory=list)
    responses: list[dict[str, Any]] = field(default_factory=list)
    socket_acks: list[dict[str, Any]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    triggers: set[str] = field(default_factory=set)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


class FakeSlack:
    """The fake Web API server.

    Args:
        token: the bot token it accepts.
        channels: channel name -> id (ids start with C, private ones with G).
        not_member: channel ids the bot has not joined (posting answers ``not_in_channel``;
            public ones can be joined with conversations.join).
        users: user id -> fields for users.info.
        page_size: the most items conversations.list / history return per page.
    """

    def __init__(self, token: str = BOT_TOKEN, *, app_token: str = APP_TOKEN,
                 channels: dict[str, str] | None = None, not_member: set[str] | None = None,
                 users: dict[str, dict[str, Any]] | None = None, page_size: int = 100,
                 team_id: str = "T0SIGNOFF", bot_user_id: str = "U0SIGNBOT",
                 bot_id: str = "B0SIGNBOT", latency: Latency | None = None,
                 post_limit: tuple[float, float] | None = POST_LIMIT) -> None:
        self.token = token
        self.app_token = app_token
        self.channels = dict(channels or {"approvals": "C0APPROVALS",
                                          "infra-approvals": "C0INFRA",
                                          "general": "C0GENERAL",
                                          "secret-room": "G0SECRET"})
        self.not_member = set(not_member or set())
        self.users = dict(users or {})
        self.page_size = page_size
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self._state = _State()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._socket_queue: asyncio.Queue[dict[str, Any]] | None = None
        self.port = 0
        self.latency = latency or Latency()
        self.post_limit = post_limit
        self._buckets: dict[str, Bucket] = {}

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL to give slack_sdk (``SIGNOFF_SLACK_API_URL``)."""
        return f"http://127.0.0.1:{self.port}/api/"

    @property
    def response_url(self) -> str:
        """A response_url that lands here (for payloads built by tests)."""
        return f"http://127.0.0.1:{self.port}/response/{next(self._seq)}"

    def start(self) -> FakeSlack:
        self._thread = threading.Thread(target=self._run, name="fake-slack", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fake Slack did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)
        self._loop = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._startup())
        self._ready.set()
        loop.run_forever()
        loop.close()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/api/{method}", self._api)
        app.router.add_post("/response/{n}", self._response)
        app.router.add_get("/socket", self._socket)
        self._socket_queue = asyncio.Queue()
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # --- test controls --------------------------------------------------------------------
    def inject(self, method: str, kind: str, *, times: int = 1, retry_after: int = 1,
               channel: str | None = None, delay: float = 3.0, error: str = "internal_error",
               seconds: float | None = None) -> Fault:
        """Make the next ``times`` calls (or all calls for ``seconds``) to ``method`` fail."""
        fault = Fault(method, kind, times=times, retry_after=retry_after, channel=channel,
                      delay=delay, error=error,
                      until=time.time() + seconds if seconds is not None else None)
        with self._lock:
            self._state.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()

    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self._state.calls if method is None or c.method == method]

    def messages(self, channel: str, *, threads: bool = False) -> list[Message]:
        """Messages in a channel (top level; with ``threads`` also replies), oldest first."""
        with self._lock:
            items = list(self._state.messages.get(channel, []))
        return [m for m in items if threads or not m.thread_ts or m.thread_ts == m.ts]

    def replies(self, channel: str, ts: str) -> list[Message]:
        with self._lock:
            return [m for m in self._state.messages.get(channel, [])
                    if m.thread_ts == ts and m.ts != ts]

    def cards(self, request_id: str) -> list[Message]:
        """Every top-level message carrying Signoff's card metadata for ``request_id``."""
        with self._lock:
            out = []
            for items in self._state.messages.values():
                for m in items:
                    meta = m.metadata or {}
                    if meta.get("event_type") == "signoff_card" and \
                            (meta.get("event_payload") or {}).get("request_id") == request_id \
                            and not m.thread_ts:
                        out.append(m)
            return out

    def cards_all(self) -> list[Message]:
        """Every top-level message carrying Signoff's card metadata (any request)."""
        with self._lock:
            return [m for items in self._state.messages.values() for m in items
                    if (m.metadata or {}).get("event_type") == "signoff_card"
                    and not m.thread_ts]

    def digests(self, digest_id: str | None = None) -> list[Message]:
        """Signoff's digest messages (several requests in one), or the one with this id."""
        with self._lock:
            out = []
            for items in self._state.messages.values():
                for m in items:
                    meta = m.metadata or {}
                    if meta.get("event_type") == "signoff_digest" and not m.thread_ts and (
                            digest_id is None or
                            (meta.get("event_payload") or {}).get("digest") == digest_id):
                        out.append(m)
            return out

    def ephemerals(self) -> list[Ephemeral]:
        with self._lock:
            return list(self._state.ephemerals)

    def views(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.views)

    def responses(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.responses)

    def socket_acks(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._state.socket_acks)

    def send_socket(self, envelope: dict[str, Any]) -> None:
        """Queue a Socket Mode envelope for the connected client."""
        assert self._loop is not None and self._socket_queue is not None
        self._loop.call_soon_threadsafe(self._socket_queue.put_nowait, envelope)

    def dm_channel(self, user_id: str) -> str:
        """The DM conversation id the fake gives the app's DM with ``user_id``."""
        return "D" + user_id[1:]

    # --- HTTP -----------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            raw = await request.read()
            ctype = request.content_type
            if ctype == "application/json":
                body = json.loads(raw or b"{}")
                if isinstance(body, dict):
                    params.update(body)
            else:
                params.update(dict(parse_qsl(raw.decode())))
        for key in ("blocks", "metadata", "view"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except json.JSONDecodeError:
                    params[key] = {"__invalid__": params[key]}
        return params

    def _auth(self, request: web.Request, params: dict[str, Any], want: str) -> str | None:
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else str(params.get("token", ""))
        if not token:
            return "not_authed"
        if token != want:
            return "invalid_auth"
        return None

    def _fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        now = time.time()
        with self._lock:
            for fault in self._state.faults:
                if fault.method != method or not fault.active(now):
                    continue
                if fault.channel is not None and params.get("channel") != fault.channel:
                    continue
                if fault.until is None:
                    fault.times -= 1
                return fault
        return None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        params = await self._params(request)
        call = Call(method, params, time.time())
        with self._lock:
            self._state.calls.append(call)
        want = self.app_token if method == "apps.connections.open" else self.token
        problem = self._auth(request, params, want)
        if problem:
            call.error = problem
            return web.json_response({"ok": False, "error": problem})
        await self.latency.wait()
        fault = self._fault(method, params)
        if fault is None and method == "chat.postMessage" and self._over_limit(params):
            call.status, call.error = 429, "ratelimited"
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": "1"})
        if fault is not None and fault.kind == "429":
            call.status, call.error = 429, "ratelimited"
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(fault.retry_after)})
        if fault is not None and fault.kind == "500":
            call.status, call.error = 500, fault.error
            return web.json_response({"ok": False, "error": fault.error}, status=500)
        if fault is not None and fault.kind == "timeout":
            await asyncio.sleep(fault.delay)
            call.error = "timeout"
            return web.json_response({"ok": False, "error": "request_timeout"}, status=504)
        if fault is not None and fault.kind == "error":
            call.error = fault.error
            return web.json_response({"ok": False, "error": fault.error})
        handler = getattr(self, "_m_" + method.replace(".", "_"), None)
        if handler is None:
            call.error = "unknown_method"
            return web.json_response({"ok": False, "error": "unknown_method"}, status=404)
        body = handler(params)
        if not body.get("ok"):
            call.error = body.get("error")
        if fault is not None and fault.kind == "500_after":
            call.status, call.error = 500, "500_after"
            return web.json_response({"ok": False, "error": "internal_error"}, status=500)
        if fault is not None and fault.kind == "timeout_after":
            await asyncio.sleep(fault.delay)
        return web.json_response(body)

    def _over_limit(self, params: dict[str, Any]) -> bool:
        """Whether this post would exceed its channel's rate (it then takes no token)."""
        if self.post_limit is None:
            return False
        channel, _ = self._channel(params.get("channel"))
        if channel is None:
            return False
        with self._lock:
            bucket = self._buckets.setdefault(channel, Bucket(*self.post_limit))
            return not bucket.take()

    async def _response(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self._state.responses.append(body)
        return web.Response(text="ok")

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "connection_info": {"app_id": "A0SIGNOFF"},
                            "debug_info": {"host": "fake-slack"}})
        assert self._socket_queue is not None
        queue = self._socket_queue

        async def pump() -> None:
            while True:
                envelope = await queue.get()
                await ws.send_json(envelope)

        sender = asyncio.ensure_future(pump())
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    with self._lock:
                        self._state.socket_acks.append(json.loads(msg.data))
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            sender.cancel()
        return ws

    # --- methods --------------------------------------------------------------------------
    def _ts(self) -> str:
        return f"{int(time.time())}.{next(self._seq):06d}"

    def _channel(self, ref: Any) -> tuple[str | None, str | None]:
        """(channel id, error) for a channel argument: an id, a #name, or a user id (DM)."""
        ref = str(ref or "")
        if not ref:
            return None, "channel_not_found"
        if ref[0] in "UW":
            if ref not in self.users and not ref.startswith("U0"):
                return None, "channel_not_found"
            return self.dm_channel(ref), None
        if ref[0] == "D":
            return ref, None
        name = ref.lstrip("#")
        if name in self.channels:
            return self.channels[name], None
        if ref in self.channels.values():
            return ref, None
        return None, "channel_not_found"

    def _content_error(self, params: dict[str, Any]) -> dict[str, Any] | None:
        text = params.get("text")
        blocks = params.get("blocks")
        if not text and not blocks:
            return {"ok": False, "error": "no_text"}
        if text and len(str(text)) > LIMITS["message_text"]:
            return {"ok": False, "error": "msg_too_long"}
        if blocks is not None:
            errors = block_errors(blocks)
            if errors:
                return {"ok": False, "error": "invalid_blocks", "errors": errors,
                        "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]}}
        metadata = params.get("metadata")
        if metadata is not None and (not isinstance(metadata, dict) or
                                     not isinstance(metadata.get("event_type"), str) or
                                     not isinstance(metadata.get("event_payload"), dict)):
            return {"ok": False, "error": "invalid_metadata_format"}
        return None

    def _m_auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": "https://signoff-test.slack.com/", "team": "Signoff Test",
                "user": "signoff", "team_id": self.team_id, "user_id": self.bot_user_id,
                "bot_id": self.bot_id, "is_enterprise_install": False}

    def _m_chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, problem = self._channel(params.get("channel"))
        if problem or channel is None:
            return {"ok": False, "error": problem}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        bad = self._content_error(params)
        if bad:
            return bad
        thread_ts = params.get("thread_ts")
        with self._lock:
            items = self._state.messages.setdefault(channel, [])
            if thread_ts and not any(m.ts == thread_ts for m in items):
                return {"ok": False, "error": "thread_not_found"}
            msg = Message(channel, self._ts(), str(params.get("text") or ""),
                          params.get("blocks"), params.get("metadata"),
                          thread_ts=str(thread_ts) if thread_ts else None,
                          user=self.bot_user_id, bot_id=self.bot_id)
            items.append(msg)
        return {"ok": True, "channel": channel, "ts": msg.ts,
                "message": msg.as_api(with_metadata=True)}

    def _m_chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, problem = self._channel(params.get("channel"))
        if problem or channel is None:
            return {"ok": False, "error": problem}
        bad = self._content_error(params)
        if bad:
            return bad
        with self._lock:
            for msg in self._state.messages.get(channel, []):
                if msg.ts == params.get("ts"):
                    if msg.bot_id != self.bot_id:
                        return {"ok": False, "error": "cant_update_message"}
                    msg.text = str(params.get("text") or "")
                    msg.blocks = params.get("blocks")
                    if params.get("metadata") is not None:
                        msg.metadata = params["metadata"]
                    msg.edits += 1
                    return {"ok": True, "channel": channel, "ts": msg.ts, "text": msg.text}
        return {"ok": False, "error": "message_not_found"}

    def _m_chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        channel, problem = self._channel(params.get("channel"))
        if problem or channel is None:
            return {"ok": False, "error": problem}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        bad = self._content_error(params)
        if bad:
            return bad
        with self._lock:
            self._state.ephemerals.append(Ephemeral(channel, str(params["user"]),
                                                    str(params.get("text") or ""),
                                                    params.get("blocks")))
        return {"ok": True, "message_ts": self._ts()}

    def _m_views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = str(params.get("trigger_id") or "")
        if not trigger:
            return {"ok": False, "error": "invalid_trigger_id"}
        view = params.get("view")
        errors = view_errors(view)
        if errors:
            return {"ok": False, "error": "invalid_arguments", "errors": errors,
                    "response_metadata": {"messages": [f"[ERROR] {e}" for e in errors]}}
        with self._lock:
            if trigger in self._state.triggers:
                return {"ok": False, "error": "expired_trigger_id"}
            self._state.triggers.add(trigger)
            self._state.views.append(view)  # type: ignore[arg-type]
        return {"ok": True, "view": {**view, "id": f"V{next(self._seq):08d}"}}  # type: ignore[dict-item]

    def _m_users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = self.users.get(str(params.get("user")))
        if user is None:
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "user": {"id": params["user"], **user}}

    def _page(self, items: list[Any], params: dict[str, Any]) -> tuple[list[Any], str]:
        limit = min(int(params.get("limit") or self.page_size), self.page_size)
        start = int(params.get("cursor") or 0)
        chunk = items[start:start + limit]
        nxt = str(start + limit) if start + limit < len(items) else ""
        return chunk, nxt

    def _m_conversations_list(self, params: dict[str, Any]) -> dict[str, Any]:
        items = [{"id": cid, "name": name, "is_private": cid.startswith("G"),
                  "is_member": cid not in self.not_member}
                 for name, cid in sorted(self.channels.items())]
        chunk, nxt = self._page(items, params)
        return {"ok": True, "channels": chunk, "response_metadata": {"next_cursor": nxt}}

    def _m_conversations_open(self, params: dict[str, Any]) -> dict[str, Any]:
        users = str(params.get("users") or "")
        if not users or users[0] not in "UW":
            return {"ok": False, "error": "user_not_found"}
        return {"ok": True, "channel": {"id": self.dm_channel(users.split(",")[0])}}

    def _m_conversations_join(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if channel not in self.channels.values():
            return {"ok": False, "error": "channel_not_found"}
        if channel.startswith("G"):
            return {"ok": False, "error": "method_not_supported_for_channel_type"}
        self.not_member.discard(channel)
        return {"ok": True, "channel": {"id": channel}}

    def _m_conversations_history(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        if channel.startswith("#"):
            return {"ok": False, "error": "channel_not_found"}
        if channel in self.not_member:
            return {"ok": False, "error": "not_in_channel"}
        oldest = float(params.get("oldest") or 0)
        meta = _truthy(params.get("include_all_metadata"))
        with self._lock:
            items = [m.as_api(meta) for m in reversed(self._state.messages.get(channel, []))
                     if (not m.thread_ts) and float(m.ts) >= oldest]
        chunk, nxt = self._page(items, params)
        return {"ok": True, "messages": chunk, "has_more": bool(nxt),
                "response_metadata": {"next_cursor": nxt}}

    def _m_conversations_replies(self, params: dict[str, Any]) -> dict[str, Any]:
        channel = str(params.get("channel") or "")
        ts = str(params.get("ts") or "")
        meta = _truthy(params.get("include_all_metadata"))
        with self._lock:
            items = self._state.messages.get(channel, [])
            parent = next((m for m in items if m.ts == ts), None)
            if parent is None:
                return {"ok": False, "error": "thread_not_found"}
            thread = [parent] + [m for m in items if m.thread_ts == ts and m.ts != ts]
            out = [m.as_api(meta) for m in thread]
        chunk, nxt = self._page(out, params)
        return {"ok": True, "messages": chunk, "has_more": bool(nxt),
                "response_metadata": {"next_cursor": nxt}}

    def _m_apps_connections_open(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket"}


def iter_blocks_text(blocks: list[dict[str, Any]]) -> Iterator[str]:
    """Every text string in a list of blocks, in document order (for assertions about what
    a card shows)."""
    stack: list[Any] = list(reversed(blocks))
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("text"), str):
                yield item["text"]
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
