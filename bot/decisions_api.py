"""HTTP API for deciding less often and better: batches, edits, extending a deadline,
standing approvals, delegations and the history of decided requests.

Routes (person tokens only; agent credentials never decide):

- ``POST /api/v1/decisions``: ``{"ids": [...], "decision": "approve"|"deny", "comment",
  "for"}``: each request through ``lifecycle.submit_vote``; ``{"results": [{id, ok, code,
  message}]}``.
- ``POST /api/v1/requests/{id}/edit``: ``{"params": {name: value}, "payload_sha256": seen,
  "approve": true, "comment", "for"}`` (``signoff.edits.submit_edit``).
- ``POST /api/v1/requests/{id}/extend``: ``{"by": "30m"}``.
- ``GET /api/v1/standing``, ``POST /api/v1/standing/{sid}/revoke``.
- ``GET /api/v1/delegations``, ``POST /api/v1/delegations`` (``{"to", "for": "4h" or seconds,
  "from" (administrators only), "reason"}``), ``POST /api/v1/delegations/{did}/revoke``.
- ``GET /api/v1/history?status=&agent=&action=&person=&since=&until=&q=&offset=&limit=``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from bot.api import _auth, problem, view_json
from bot.appkeys import RT
from policy.durations import parse_duration
from signoff import batch, edits, history, lifecycle
from signoff.cardview.view import build_view
from signoff.delegation import Delegations, delegate_as, revoke_delegation_as
from signoff.models import RECORD_ID_PATTERN
from signoff.runtime import Runtime
from signoff.standing import StandingApprovals, revoke_standing_as
from signoff.tokens import TokenInfo, TokenKind

RID = "{rid:" + RECORD_ID_PATTERN.strip("^$") + "}"

REFUSAL_STATUS = {"not_found": 404, "closed": 409, "already_voted": 409, "replay": 409,
                  "stale": 409, "comment_required": 422, "bad_choice": 400,
                  "edit_refused": 422, "bad_standing": 422, "over": 422,
                  "bad_extension": 422, "not_extendable": 422}


async def _person_call(request: web.Request) -> tuple[TokenInfo | None, web.Response | None,
                                                      dict[str, Any]]:
    """Authenticate a person token and read a JSON object body (empty for GET)."""
    who = await _auth(request)
    if who is None:
        return None, problem(401, "Unauthorized", "missing or unknown bearer token"), {}
    if who.kind is not TokenKind.PERSON:
        return None, problem(403, "Forbidden", "agent credentials can never decide"), {}
    if request.method == "GET" or not await request.read():
        return who, None, {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None, problem(400, "Bad Request", "body is not JSON"), {}
    if not isinstance(data, dict):
        return None, problem(400, "Bad Request", "body must be a JSON object"), {}
    for name in ("comment", "for"):
        value = data.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            return None, problem(400, "Bad Request", f"{name} must be a short string"), {}
    return who, None, data


def _refused(reply: lifecycle.VoteReply) -> web.Response:
    return problem(REFUSAL_STATUS.get(reply.code, 403), "Refused", reply.message,
                   code=reply.code)


async def decide_many(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who, error, data = await _person_call(request)
    if error is not None or who is None:
        return error or problem(401, "Unauthorized")
    ids = data.get("ids")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        return problem(400, "Bad Request", "ids must be a non-empty list of request ids")
    if data.get("decision") not in ("approve", "deny"):
        return problem(400, "Bad Request", "body needs decision: approve | deny")

    def _run() -> list[batch.BatchItem]:
        person = rt.policy.directory.person(who.subject)
        return batch.submit_many(rt, ids, person, data["decision"], comment=data.get("comment"),
                                 channel="api", for_person=data.get("for"),
                                 actor_label=who.subject)

    items = await asyncio.to_thread(_run)
    return web.json_response({"results": [i.to_dict() for i in items],
                              "summary": batch.summary(items)})


async def edit(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who, error, data = await _person_call(request)
    if error is not None or who is None:
        return error or problem(401, "Unauthorized")
    params = data.get("params")
    if not isinstance(params, dict) or not params:
        return problem(400, "Bad Request", "params must be an object of the params to change")
    seen = data.get("payload_sha256")
    if seen is not None and not isinstance(seen, str):
        return problem(400, "Bad Request", "payload_sha256 must be the hash you saw")
    rid = request.match_info["rid"]

    def _run() -> lifecycle.VoteReply:
        person = rt.policy.directory.person(who.subject)
        return edits.submit_edit(rt, rid, person, params, seen_sha256=seen, channel="api",
                                 comment=data.get("comment"),
                                 approve=data.get("approve", True) is not False,
                                 for_person=data.get("for"), actor_label=who.subject)

    reply = await asyncio.to_thread(_run)
    if reply.ok and reply.record is not None:
        return web.json_response({"result": reply.code, "message": reply.message,
                                  "request": view_json(build_view(reply.record))})
    return _refused(reply)


async def extend(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who, error, data = await _person_call(request)
    if error is not None or who is None:
        return error or problem(401, "Unauthorized")
    try:
        seconds = parse_duration(data.get("by", ""))
    except (TypeError, ValueError):
        return problem(400, "Bad Request", "by must be a duration such as 30m or 1h")
    rid = request.match_info["rid"]
    reply = await asyncio.to_thread(
        lifecycle.extend_deadline, rt, rid, rt.policy.directory.person(who.subject), seconds,
        "api")
    if reply.ok and reply.record is not None:
        return web.json_response({"result": reply.code, "deadline": reply.record.deadline})
    return _refused(reply)


async def list_standing(request: web.Request) -> web.Response:
    rt = request.app[RT]
    _who, error, _ = await _person_call(request)
    if error is not None:
        return error
    items = await asyncio.to_thread(StandingApprovals(rt.redis, rt.keys).active)
    return web.json_response({"items": [s.to_public() for s in items]})



async def revoke_standing(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who, error, _ = await _person_call(request)
    if error is not None or who is None:
        return error or problem(401, "Unauthorized")
    status, message, item = await asyncio.to_thread(
        revoke_standing_as, rt, request.match_info["sid"], who.subject, "api")
    if item is None:
        return problem(status, "Refused", message)
    return web.json_response({"result": message, "standing": item})


async def list_delegations(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who, error, _ = await _person_call(request)
    if error is not None or who is None:
        return error or problem(401, "Unauthorized")

    def _load() -> dict[str, Any]:
        d = Delegations(rt.redis, rt.keys)
        me = rt.policy.directory.canonical_person(who.subject)
        return {"given": [x.to_public() for x in d.given_by(me)],
                "received": [x.to_public() for x in d.received_by(me)]}

    return web.json_response(await asyncio.to_thread(_load))





async def create_delegation(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who, error, data = await _person_call(request)
    if error is not None or who is None:
        return error or problem(401, "Unauthorized")
    try:
        seconds = parse_duration(data.get("for") or data.get("duration") or "")
    except (TypeError, ValueError):
        return problem(400, "Bad Request", "for must be a duration such as 8h or 3d")
    if not isinstance(data.get("to"), str):
        return problem(400, "Bad Request", "to must name the delegate")
    status, message, item = await asyncio.to_thread(
        delegate_as, rt, who.subject, data["to"], seconds, data.get("from"),
        str(data.get("reason") or ""))
    if item is None:
        return problem(status, "Refused", message)
    return web.json_response({"result": message, "delegation": item}, status=status)


async def revoke_delegation(request: web.Request) -> web.Response:
    rt = request.app[RT]
    who, error, _ = await _person_call(request)
    if error is not None or who is None:
        return error or problem(401, "Unauthorized")
    status, message, item = await asyncio.to_thread(
        revoke_delegation_as, rt, request.match_info["did"], who.subject)
    if item is None:
        return problem(status, "Refused", message)
    return web.json_response({"result": message, "delegation": item})


def history_query(query: Any) -> history.HistoryQuery:
    """Filters from a query string (``since``/``until``: Unix seconds; ``status`` one of the
    final states). Raises ValueError on a malformed value."""
    status = str(query.get("status") or "")
    if status and status not in history.STATUSES:
        raise ValueError(f"status is one of {', '.join(history.STATUSES)}")
    return history.HistoryQuery(
        status=status, agent=str(query.get("agent") or "")[:200],
        action=str(query.get("action") or "")[:200], person=str(query.get("person") or "")[:200],
        since=float(query.get("since") or 0), until=float(query.get("until") or 0),
        q=str(query.get("q") or "")[:200])


async def list_history(request: web.Request) -> web.Response:
    rt = request.app[RT]
    _who, error, _ = await _person_call(request)
    if error is not None:
        return error
    try:
        query = history_query(request.query)
        offset = max(int(request.query.get("offset", "0")), 0)
        limit = min(max(int(request.query.get("limit", "50")), 1), 200)
    except ValueError as exc:
        return problem(400, "Bad Request", str(exc))
    records, more = await asyncio.to_thread(history.decided, rt, query, offset, limit)
    return web.json_response({"items": [view_json(build_view(r)) for r in records],
                              "more": more, "offset": offset, "limit": limit})


def setup(app: web.Application, rt: Runtime) -> None:
    """Mount the routes."""
    app.router.add_post("/api/v1/decisions", decide_many)
    app.router.add_post(f"/api/v1/requests/{RID}/edit", edit)
    app.router.add_post(f"/api/v1/requests/{RID}/extend", extend)
    app.router.add_get("/api/v1/standing", list_standing)
    app.router.add_post("/api/v1/standing/{sid:st-[0-9a-f]{1,40}}/revoke", revoke_standing)
    app.router.add_get("/api/v1/delegations", list_delegations)
    app.router.add_post("/api/v1/delegations", create_delegation)
    app.router.add_post("/api/v1/delegations/{did:dl-[0-9a-f]{1,40}}/revoke", revoke_delegation)
    app.router.add_get("/api/v1/history", list_history)
