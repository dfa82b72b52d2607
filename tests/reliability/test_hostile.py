"""Hostile input, fuzzed with hypothesis: request bodies on the stream, the HTTP API, Slack
payloads and slash commands, Teams activities. Nothing crashes, nothing answers 500, and
nothing unsigned or unauthorised changes any state.

The web app is the real one (``bot.app.create_app``) on a loopback port in a thread, with
Slack and Teams configured against their fakes; the intake is the real consumer, in-process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff import clicks, lifecycle
from signoff.keys import INTAKE_GROUP
from signoff.models import Status
from signoff.runtime import Runtime
from signoff.tokens import TokenKind
from tests.conftest import run_intake
from tests.fakes.teams_connector import FakeBotFramework
from tests.reliability.support import body, send
from tests.slack.conftest import signed_headers
from tests.teams.conftest import APPROVALS, TENANT, TeamsClient, WebServer

FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# --- strategies ---------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
hostile_text = st.text(alphabet=st.characters(codec=None), max_size=60) | st.sampled_from(
    ["", " ", "\u202e", "\x00", "<!channel>", "'; DROP TABLE", "../../etc/passwd",
     "\ud800", "a" * 5000, "status", "pending 999999999999", "status \u202eabc", "mine -1"])
# What an HTTP request can carry (no lone surrogates: they have no UTF-8 form).
http_text = hostile_text.filter(lambda t: not any(0xD800 <= ord(c) <= 0xDFFF for c in t))
ids = st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}\Z") | hostile_text

valid_fields: dict[str, st.SearchStrategy[Any]] = {
    "id": ids, "action": st.sampled_from(["db.export", "db.read", "x", "db.*", "", "a b"]),
    "resource": hostile_text, "params": json_values, "requester": hostile_text,
    "on_behalf_of": hostile_text | st.none(), "reason": hostile_text | st.none(),
    "context": st.dictionaries(st.text(max_size=10), json_values, max_size=3) | json_values,
    "reply_to": hostile_text | st.none(), "unknown": json_values,
}
request_dicts = st.fixed_dictionaries({}, optional={
    k: v | json_values for k, v in valid_fields.items()})
raw_bodies = (request_dicts.map(json.dumps) | json_values.map(json.dumps)
              | st.binary(max_size=120) | hostile_text)


def nested(depth: int) -> str:
    return '{"id":"deep","params":' + "[" * depth + "]" * depth + "}"


# --- state snapshots ------------------------------------------------------------------------
KNOWN = ("hz-1", "hz-2")


def request_state(rt: Runtime) -> list[Any]:
    """What a decision would change: status, version and votes of the known requests, the
    replies and the decisions stream."""
    out: list[Any] = []
    for rid in KNOWN:
        record = rt.store.get(rid)
        assert record is not None
        out.append((record.status.value, record.version, sorted(record.votes)))
        out.append(rt.redis.llen(rt.keys.reply(rid)))
    out.append(rt.redis.xlen(rt.keys.decisions))
    return out


def quiet_state(rt: Runtime) -> list[Any]:
    """Everything: the request state, Signoff's keys, the audit and request streams.

    Keys are counted under Signoff's prefix only: rq's own bookkeeping (``rq:*``: worker and
    scheduler registrations, job registries) comes and goes on its own timers and says
    nothing about what a hostile request changed.
    """
    own = sum(1 for _ in rt.redis.scan_iter(match=f"{rt.keys.prefix}:*", count=1000))
    return [*request_state(rt), own, rt.redis.xlen(rt.keys.audit),
            rt.redis.xlen(rt.keys.requests)]


@pytest.fixture
def web(rrt: Runtime, bf: FakeBotFramework) -> Iterator[WebServer]:
    send(rrt, body("hz-1", action="db.drop"), body("hz-2", action="db.read"))
    run_intake(rrt)
    for rid in KNOWN:
        assert lifecycle.prepare(rrt, rid) == "pending"
    rrt.queue.empty()
    server = WebServer(rrt).start()
    # Warm-up: the first requests load the policy (audited once) and the signing keys.
    requests.get(f"{server.url}/healthz", timeout=10)
    requests.post(f"{server.url}/slack/events", data=b"x", timeout=10)
    TeamsClient(bf, server).post({"type": "message"}, token="x")
    yield server
    server.stop()


def http() -> requests.Session:
    s = requests.Session()
    s.trust_env = False
    return s


# --- the request stream ---------------------------------------------------------------------
@FUZZ
@given(st.lists(raw_bodies, min_size=1, max_size=6))
def test_intake_answers_every_message_and_never_crashes(rrt: Runtime,
                                                        batch: list[Any]) -> None:
    stream = rrt.keys.requests
    for raw in batch:
        rrt.redis_bytes.xadd(stream, {"body": raw if isinstance(raw, bytes) else raw.encode(
            "utf-8", "surrogatepass")})
    before_dead = rrt.redis.xlen(rrt.keys.dead)
    run_intake(rrt)
    # Every message was handled on its first delivery: none left for a retry loop.
    assert rrt.redis_bytes.xpending(stream, INTAKE_GROUP)["pending"] == 0
    dead = rrt.redis.xrange(rrt.keys.dead, "-", "+")[before_dead:]
    assert not [f for _, f in dead if f["reason"].startswith("intake failed")], dead
    for raw in batch:
        req, rid, errors, _reason = lifecycle.parse_body(raw, rrt.settings.max_request_bytes)
        if rid is None:
            continue
        record = rrt.store.get(rid, with_votes=False)
        assert record is not None, f"{rid!r} was dropped"
        if req is None and errors:
            assert record.status in (Status.REJECTED, Status.RECEIVED, Status.PENDING) or \
                record.status.final


def test_pathological_bodies_are_rejected_not_crashed(rrt: Runtime) -> None:
    bodies = [nested(5000), nested(40), '{"id":"big","params":"' + "x" * 2_000_000 + '"}',
              b'{"id":"bin\xff\xfe"}', '{"id": "sur", "action": "db.export", "resource": "r",'
              ' "requester": "a", "params": {"k": "\\ud800"}}', "[]", "null", '"id"']
    for raw in bodies:
        data = raw if isinstance(raw, bytes) else raw.encode()
        rrt.redis_bytes.xadd(rrt.keys.requests, {"body": data})
    rrt.redis_bytes.xadd(rrt.keys.requests, {"nobody": b"x"})
    run_intake(rrt)
    assert rrt.redis_bytes.xpending(rrt.keys.requests, INTAKE_GROUP)["pending"] == 0
    for rid in ("big", "sur"):
        assert rrt.store.status(rid) is Status.REJECTED, rid
    assert rrt.store.get("deep") is None or rrt.store.status("deep") is Status.REJECTED


# --- the HTTP API ---------------------------------------------------------------------------
@FUZZ
@given(raw=raw_bodies, path=st.sampled_from([
    "/api/v1/requests", "/api/v1/requests/hz-1/decision", "/api/v1/requests/hz-2/cancel",
    "/api/v1/requests/hz-1/decision?x=%00", "/api/v1/requests/%E2%80%AE/decision"]),
       who=st.sampled_from(["none", "bad", "agent", "frank", "erin"]))
def test_api_bodies(rrt: Runtime, web: WebServer, raw: Any, path: str, who: str) -> None:
    tokens = _tokens(rrt)
    headers = {"Content-Type": "application/json"}
    if who == "bad":
        headers["Authorization"] = "Bearer so_p_forged"
    elif who != "none":
        headers["Authorization"] = f"Bearer {tokens[who]}"
    before = quiet_state(rrt)
    data = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
    resp = http().post(web.url + path, data=data, headers=headers, timeout=10)
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    if who in ("none", "bad"):
        assert resp.status_code in (401, 404)  # 404: no such route, before any token check
        assert quiet_state(rrt) == before
    deciding = "/decision" in path and who in ("agent", "frank", "erin")
    cancelling = path.endswith("/cancel") and who in ("agent", "erin")
    if deciding or cancelling:
        # Agents never decide; neither does the human the agent acts for, nor someone outside
        # the rule's groups. Only agent:rel or Frank (whom it acts for) may cancel hz-2.
        assert resp.status_code in (400, 401, 403, 404, 409, 422), resp.status_code
        assert request_state(rrt) == before[:len(request_state(rrt))]


_TOKENS: dict[str, dict[str, str]] = {}


def _tokens(rt: Runtime) -> dict[str, str]:
    key = rt.settings.redis_url or ""
    if key not in _TOKENS or rt.tokens.lookup(_TOKENS[key]["frank"]) is None:
        _TOKENS[key] = {"agent": rt.tokens.create(TokenKind.AGENT, "agent:other"),
                        "frank": rt.tokens.create(TokenKind.PERSON, "frank@example.com"),
                        "erin": rt.tokens.create(TokenKind.PERSON, "erin@example.com")}
    return _TOKENS[key]


@FUZZ
@given(query=st.dictionaries(st.sampled_from(["status", "limit", "offset", "x"]),
                             http_text, max_size=3))
def test_api_listing_queries(rrt: Runtime, web: WebServer, query: dict[str, str]) -> None:
    token = _tokens(rrt)["erin"]
    resp = http().get(f"{web.url}/api/v1/requests", params=query, timeout=10,
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code in (200, 400), (resp.status_code, resp.text[:300])


# --- Slack ------------------------------------------------------------------------------------
slack_users = st.sampled_from(["U0ALICE", "U0FRANK", "U0NOBODY", "", "W0X", "U0ALICE\u202e"])


def _button_value(rid: str) -> st.SearchStrategy[str]:
    good = clicks.sign(b"not-the-key", rid, 1, "approve")
    return st.sampled_from([good, "", "{}", '{"r":"hz-1","v":1,"c":"approve","s":"00"}',
                            json.dumps({"r": rid, "v": "x", "c": "approve", "s": ""})]) \
        | hostile_text


block_actions = st.fixed_dictionaries({
    "type": st.sampled_from(["block_actions", "view_submission", "shortcut", "x"]),
    "user": st.fixed_dictionaries({"id": slack_users}) | json_values,
    "actions": st.lists(st.fixed_dictionaries({
        "action_id": st.sampled_from(["signoff_approve", "signoff_deny", "signoff_details",
                                      "signoff_page", "other"]),
        "value": _button_value("hz-1"),
        "action_ts": st.text(max_size=12)}), max_size=2) | json_values,
    "trigger_id": st.text(max_size=12),
}, optional={"channel": json_values, "container": json_values, "view": json_values,
             "team": json_values})


@FUZZ
@given(raw=st.binary(max_size=300) | http_text.map(str.encode)
       | block_actions.map(lambda p: urlencode({"payload": json.dumps(p)}).encode()),
       signature=st.sampled_from(["none", "wrong-secret", "stale", "garbage"]))
def test_unsigned_slack_requests_change_nothing(rrt: Runtime, web: WebServer, raw: bytes,
                                                signature: str) -> None:
    text = raw.decode("utf-8", "replace")
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if signature == "wrong-secret":
        headers = signed_headers(text, secret="not-the-signing-secret")
    elif signature == "stale":
        headers = signed_headers(text, timestamp=time.time() - 600)
    elif signature == "garbage":
        headers.update({"X-Slack-Request-Timestamp": "x", "X-Slack-Signature": "v0=zz"})
    before = quiet_state(rrt)
    resp = http().post(f"{web.url}/slack/events", data=raw, headers=headers, timeout=10)
    assert resp.status_code == 401, (resp.status_code, resp.text[:300])
    assert quiet_state(rrt) == before


@FUZZ
@given(payload=block_actions)
def test_signed_hostile_slack_payloads_decide_nothing(rrt: Runtime, web: WebServer,
                                                      payload: dict[str, Any]) -> None:
    form = urlencode({"payload": json.dumps(payload)})
    before = request_state(rrt)
    resp = http().post(f"{web.url}/slack/events", data=form, headers=signed_headers(form),
                       timeout=10)
    assert resp.status_code < 500, (resp.status_code, resp.text[:300])
    assert request_state(rrt) == before


@FUZZ
@given(text=http_text, user=slack_users)
def test_slash_command_text(rrt: Runtime, web: WebServer, text: str, user: str) -> None:
    form = urlencode({"command": "/signoff", "text": text, "user_id": user,
                      "channel_id": "C0GENERAL", "team_id": "T0SIGNOFF",
                      "response_url": "http://127.0.0.1:9/none", "trigger_id": "1.1.t"})
    before = request_state(rrt)
    resp = http().post(f"{web.url}/slack/events", data=form, headers=signed_headers(form),
                       timeout=10)
    assert resp.status_code == 200, (resp.status_code, resp.text[:300])
    assert request_state(rrt) == before


# --- Teams ------------------------------------------------------------------------------------
activities = st.fixed_dictionaries({
    "type": st.sampled_from(["message", "invoke", "conversationUpdate", "installationUpdate",
                             "event", "", "x"]),
}, optional={
    "name": st.sampled_from(["adaptiveCard/action", "composeExtension/query", ""]) | hostile_text,
    "value": json_values | st.fixed_dictionaries({"action": st.fixed_dictionaries({
        "type": st.just("Action.Execute"), "verb": st.sampled_from(["approve", "deny",
                                                                    "refresh", "x"]),
        "data": json_values | st.just({"r": "hz-1", "v": 1, "c": "approve", "s": "0" * 32})})}),
    "text": hostile_text, "from": json_values | st.fixed_dictionaries({
        "id": hostile_text, "aadObjectId": st.sampled_from(
            ["00000000-0000-0000-0000-00000000a11c", "x", ""])}),
    "conversation": json_values, "channelData": json_values, "channelId": st.sampled_from(
        ["msteams", "webchat", "directline", ""]), "id": hostile_text,
    "membersAdded": json_values, "replyToId": hostile_text,
})


def _activity(bf: FakeBotFramework, fuzzed: dict[str, Any]) -> dict[str, Any]:
    base: dict[str, Any] = {
        "serviceUrl": bf.service_url, "channelId": "msteams",
        "recipient": {"id": "28:bot"},
        "conversation": {"id": APPROVALS, "conversationType": "channel", "tenantId": TENANT},
        "channelData": {"tenant": {"id": TENANT}},
    }
    return {**base, **fuzzed}


@FUZZ
@given(fuzzed=activities, token=st.sampled_from(["none", "rogue", "audience", "expired",
                                                 "garbage"]))
def test_unsigned_teams_activities_change_nothing(rrt: Runtime, web: WebServer,
                                                  bf: FakeBotFramework,
                                                  fuzzed: dict[str, Any], token: str) -> None:
    activity = _activity(bf, fuzzed)
    minted = {"none": "", "garbage": "a.b.c",
              "rogue": bf.mint(activity["serviceUrl"], key=bf.rogue_key),
              "audience": bf.mint(activity["serviceUrl"], audience="someone-else"),
              "expired": bf.mint(activity["serviceUrl"], expires_in=-600)}[token]
    before = quiet_state(rrt)
    resp = TeamsClient(bf, web).post(activity, token=minted)
    assert resp.status_code in (400, 401, 415), (resp.status_code, resp.text[:300])
    assert quiet_state(rrt) == before


@FUZZ
@given(fuzzed=activities)
def test_signed_hostile_teams_activities_decide_nothing(rrt: Runtime, web: WebServer,
                                                        bf: FakeBotFramework,
                                                        fuzzed: dict[str, Any]) -> None:
    activity = _activity(bf, fuzzed)
    before = request_state(rrt)
    resp = TeamsClient(bf, web).post(activity)
    # 501 is the Bot Framework protocol's answer to an invoke a bot does not implement.
    assert resp.status_code < 500 or (
        resp.status_code == 501 and activity["type"] == "invoke"), (resp.status_code,
                                                                  resp.text[:300])
    assert request_state(rrt) == before
