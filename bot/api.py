"""The HTTP API: agents create requests; approvers (bearer tokens mapped to people) decide.

Routes (described in ``schemas/openapi.json``, served at ``/openapi.json``):

- ``POST /api/v1/requests``: an agent token; the body is a request v1. It is appended to the
  request stream, so the API and Redis agents share one intake path. 202.
- ``GET /api/v1/requests/{id}``: the masked view (any token).
- ``GET /api/v1/requests?status=pending``: what the token's person may decide, newest first.
- ``POST /api/v1/requests/{id}/decision``: ``{"decision": "approve"|"deny", "comment": …}``;
  a person token only (agent credentials never decide). A request whose rule needs a passkey
  step-up also needs ``"step_up"``: the WebAuthn assertion (``navigator.credentials.get``
  result as JSON) made for the options from ``POST /api/v1/requests/{id}/step-up``
  (``{"decision"}``), which are bound to the request, its payload, the decision and the person.
- ``POST /api/v1/requests/{id}/cancel``: the requesting agent or the person it acts for.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any

from aiohttp import web

from bot.appkeys import METRICS, RT
from policy.identity import canonical_agent, same_agent
from signoff import lifecycle, stepup
from signoff.agents import AgentRegistry
from signoff.cardview.view import CardView, build_view
from signoff.keys import AGENT_NAME_RE, scoped_id
from signoff.models import RECORD_ID_PATTERN, Status
from signoff.runtime import Runtime
from signoff.standing import parse_window
from signoff.store import Record
from signoff.tokens import TokenInfo, TokenKind

RID = "{rid:" + RECORD_ID_PATTERN.strip("^$") + "}"


def registered_agent(rt: Runtime, who: TokenInfo) -> str | None:
    """The registered agent an agent token belongs to (``agent:NAME``), or None."""
    if who.kind is not TokenKind.AGENT:
        return None
    subject = canonical_agent(who.subject)
    name = subject[len("agent:"):] if subject.startswith("agent:") else ""
    if AGENT_NAME_RE.match(name) and AgentRegistry(rt.redis, rt.keys).is_registered(name):
        return name
    return None


def record_id(rt: Runtime, who: TokenInfo, rid: str) -> str:
    """The internal id a path names: a registered agent names its own ids only (scoped), so
    it never reaches another agent's request; people name Signoff's ids."""
    agent = registered_agent(rt, who)
    return scoped_id(agent, rid) if agent else rid


def problem(status: int, title: str, detail: str = "", **extra: Any) -> web.Response:
    """An RFC 7807 problem response (one shape for every API error)."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.json_response(body, status=status, content_type="application/problem+json")


async def _auth(request: web.Request) -> TokenInfo | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    rt = request.app[RT]
    return await asyncio.to_thread(rt.tokens.lookup, token.strip())


def view_json(view: CardView) -> dict[str, Any]:
    """The masked, channel-neutral view as API JSON."""
    return {
        "id": view.request_id, "status": view.status.value, "version": view.version,
        "action": view.action, "resource": view.resource, "requester": view.requester,
        "on_behalf_of": view.on_behalf_of, "environment": view.environment,
        "reason": view.reason, "context": view.context, "params": view.params,
        "policy": {"rule": view.policy_rule, "summary": view.policy_summary,
                   "progress": view.progress, "quorum": view.quorum,
                   "groups": view.group_needs},
        "masking": {"summary": view.masking_summary, "count": view.masked_count},
        "payload_sha256": view.payload_sha256, "created_at": view.created_at,
        "deadline": view.deadline, "decided_at": view.decided_at,
        "decision": view.final_line() if not view.open else None,
        "votes": [{"person": v.person, "choice": v.choice, "at": v.at, "channel": v.channel,
                   "comment": v.comment} for v in view.votes],
        "notify_failures": list(view.notify_failures),
    }


async def create_request(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who = await _auth(request)
    if who is None:
        return problem(401, "Unauthorized", "send an agent token as 'Authorization: Bearer …'")
    if who.kind is not TokenKind.AGENT:
        return problem(403, "Forbidden", "only agent tokens create requests")
    body = await request.read()
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return problem(400, "Bad Request", f"body is not JSON: {exc}")
    if not isinstance(data, dict):
        return problem(400, "Bad Request", "body must be a JSON object")
    agent = await asyncio.to_thread(registered_agent, rt, who)
    named = data.get("requester", who.subject)
    if not isinstance(named, str) or not same_agent(named, who.subject):
        return problem(403, "Forbidden", f"this token speaks for {who.subject!r} only")
    if agent is None:
        if not rt.settings.trusted_stream_enabled:
            return problem(403, "Forbidden", f"{who.subject!r} is not a registered agent "
                           "(signoff agent add NAME issues an agent's token)")
        data["requester"] = who.subject
    req, _rid, errors, reason = lifecycle.parse_body(json.dumps(data),
                                                     rt.settings.max_request_bytes, agent=agent)
    if req is None:
        return problem(422, "Invalid request", reason or "the request has errors",
                       errors=[e.model_dump() for e in errors])
    if agent is not None:
        # Into the agent's own stream: the intake takes the requester from the stream.
        ak = rt.keys.agent(agent)
        data.pop("requester", None)
        stream, reply_key = ak.requests, ak.reply(req.id)
    else:
        stream, reply_key = rt.keys.requests, req.reply_to or rt.keys.reply(req.id)
    await asyncio.to_thread(rt.redis.xadd, stream, {"body": json.dumps(data)})
    return web.json_response({"id": req.id, "status": "received",
                              "status_url": f"/api/v1/requests/{req.id}",
                              "reply_key": reply_key}, status=202)


def _visible(who: TokenInfo, record: Record) -> bool:
    """An agent sees only its own requests (the stored requester, never the masked view's);
    every known person may see a masked request."""
    if who.kind is TokenKind.AGENT:
        return same_agent(record.requester, who.subject)
    return True  # every known person may see a masked request


async def get_request(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who = await _auth(request)
    if who is None:
        return problem(401, "Unauthorized", "missing or unknown bearer token")
    rid = request.match_info["rid"]
    record = await asyncio.to_thread(rt.store.get, await asyncio.to_thread(record_id, rt, who,
                                                                           rid))
    if record is None:
        return problem(404, "Not Found", f"no request {rid}")
    if not _visible(who, record):
        return problem(404, "Not Found", f"no request {rid}")
    return web.json_response(view_json(build_view(record)))


async def list_requests(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who = await _auth(request)
    if who is None:
        return problem(401, "Unauthorized", "missing or unknown bearer token")
    status = request.query.get("status", "pending")
    if status != "pending":
        return problem(400, "Bad Request", "only status=pending is listed; GET one id for others")
    try:
        limit = min(max(int(request.query.get("limit", "20")), 1), 100)
        offset = max(int(request.query.get("offset", "0")), 0)
    except ValueError:
        return problem(400, "Bad Request", "limit and offset are integers")

    def _load() -> list[dict[str, Any]]:
        if who.kind is TokenKind.PERSON:
            person = rt.policy.directory.person(who.subject)
            groups = sorted(person.groups) if person else []
            ids = rt.store.pending_ids(groups=groups, offset=offset, limit=limit)
        else:
            ids = rt.store.pending_ids(offset=offset, limit=limit)
        out = []
        for rid in ids:
            record = rt.store.get(rid)
            if record is None:
                continue
            if _visible(who, record):
                out.append(view_json(build_view(record)))
        return out

    items = await asyncio.to_thread(_load)
    return web.json_response({"items": items, "offset": offset, "limit": limit})


async def _person_decision(request: web.Request
                           ) -> tuple[TokenInfo, dict[str, Any]] | web.Response:
    """A person's token and a JSON body naming ``decision: approve | deny``, or the problem
    answer (agent credentials never decide)."""
    who = await _auth(request)
    if who is None:
        return problem(401, "Unauthorized", "missing or unknown bearer token")
    if who.kind is not TokenKind.PERSON:
        return problem(403, "Forbidden", "agent credentials can never decide")
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return problem(400, "Bad Request", "body is not JSON")
    if not isinstance(data, dict) or data.get("decision") not in ("approve", "deny"):
        return problem(400, "Bad Request", "body needs decision: approve | deny")
    return who, data


async def decide(request: web.Request) -> web.Response:
    rt = request.app[RT]
    checked = await _person_decision(request)
    if isinstance(checked, web.Response):
        return checked
    who, data = checked
    comment = data.get("comment")
    if comment is not None and (not isinstance(comment, str) or len(comment) > 2000):
        return problem(400, "Bad Request", "comment must be a string of at most 2000 characters")
    step_up = data.get("step_up")
    if step_up is not None and not isinstance(step_up, dict):
        return problem(400, "Bad Request", "step_up must be a WebAuthn assertion (a JSON object)")
    # standing: approve for a while ("1h"); for: decide as a delegate; payload_sha256: the
    # version seen (signoff.standing, signoff.delegation, signoff.edits).
    standing = None
    if data.get("standing") not in (None, ""):
        standing = parse_window(data["standing"])
        if standing is None:
            return problem(400, "Bad Request", "standing must be a duration such as 15m or 1h")
    for_person, seen = data.get("for"), data.get("payload_sha256")
    if not isinstance(for_person, str | None) or not isinstance(seen, str | None):
        return problem(400, "Bad Request", "for and payload_sha256 must be strings")
    rid = request.match_info["rid"]

    def _vote() -> lifecycle.VoteReply:
        person = rt.policy.directory.person(who.subject)
        return lifecycle.submit_vote(rt, rid, person, data["decision"], comment, channel="api",
                                     actor_label=who.subject, step_up=step_up,
                                     for_person=for_person, standing=standing,
                                     seen_sha256=seen)

    reply = await asyncio.to_thread(_vote)
    request.app[METRICS].votes.labels("api", reply.code).inc()
    if reply.ok:
        assert reply.record is not None
        return web.json_response({"result": reply.code, "message": reply.message,
                                  "request": view_json(build_view(reply.record))})
    status = {"not_found": 404, "closed": 409, "already_voted": 409, "replay": 409,
              "stale": 409, "comment_required": 422, "bad_choice": 400,
              "bad_standing": 422}.get(reply.code, 403)
    if reply.code.startswith("step_up"):
        return problem(status, "Decision refused", reply.message, code=reply.code,
                       **step_up_links(rt, rid))
    return problem(status, "Decision refused", reply.message, code=reply.code)


def step_up_links(rt: Runtime, rid: str) -> dict[str, str]:
    """Where a person proves presence for ``rid`` and enrols a passkey."""
    base = (rt.settings.public_url or "").rstrip("/")
    return {"step_up_url": stepup.step_up_url(rt.settings.public_url, rid),
            "step_up_options": f"/api/v1/requests/{rid}/step-up",
            "enrol_url": f"{base}/inbox/passkeys"}


async def step_up_options(request: web.Request) -> web.Response:
    """WebAuthn assertion options for a step-up vote by the token's person."""
    rt = request.app[RT]
    checked = await _person_decision(request)
    if isinstance(checked, web.Response):
        return checked
    who, data = checked
    rid = request.match_info["rid"]
    result = await asyncio.to_thread(lifecycle.step_up_options, rt, rid,
                                     rt.policy.directory.person(who.subject), data["decision"])
    if isinstance(result, stepup.Refusal):
        status = {"not_found": 404, "closed": 409}.get(result.code, 403)
        return problem(status, "Step-up refused", result.message, code=result.code,
                       **step_up_links(rt, rid))
    options, within = result
    return web.json_response({"publicKey": json.loads(options), "within": within})


async def cancel(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who = await _auth(request)
    if who is None:
        return problem(401, "Unauthorized", "missing or unknown bearer token")
    rid = request.match_info["rid"]
    internal = await asyncio.to_thread(record_id, rt, who, rid)
    result = await asyncio.to_thread(lifecycle.cancel, rt, internal, who.subject)
    if result is lifecycle.Cancel.NOT_FOUND:
        return problem(404, "Not Found", f"no request {rid}")
    if result is lifecycle.Cancel.FORBIDDEN:
        return problem(403, "Forbidden", "only the requesting agent or its human may cancel")
    if result is not lifecycle.Cancel.CHANGED:
        return problem(409, "Conflict", "the request is already closed")
    return web.json_response({"result": "cancelled", "id": rid, "status": Status.CANCELLED.value})


async def openapi(request: web.Request) -> web.Response:
    text = resources.files("bot").joinpath("openapi.json").read_text()
    return web.Response(text=text, content_type="application/json")


def setup(app: web.Application, rt: Runtime) -> None:
    """Mount the API routes."""
    app.router.add_post("/api/v1/requests", create_request)
    app.router.add_get("/api/v1/requests", list_requests)
    app.router.add_get(f"/api/v1/requests/{RID}", get_request)
    app.router.add_post(f"/api/v1/requests/{RID}/decision", decide)
    app.router.add_post(f"/api/v1/requests/{RID}/step-up", step_up_options)
    app.router.add_post(f"/api/v1/requests/{RID}/cancel", cancel)
    app.router.add_get("/openapi.json", openapi)
