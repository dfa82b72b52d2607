"""Edit before approving: an approver changes the params a rule declares ``editable``.

Each editable param has bounds (a JSON Schema fragment, validated with ``jsonschema``); an
edit outside them, of a param the rule does not declare, or of a request already decided is
refused with a message saying why. An accepted edit replaces the stored request (encrypted,
as the original), so the grant binds the edited payload; the record keeps the original's hash
and who changed what. Every vote on the earlier version is dropped (the edited version needs
its own quorum): :meth:`signoff.store.Store.edit` does it atomically, only while the payload
is still the one the editor saw.

:func:`submit_edit` is the one way an edit reaches the store; every channel calls it, and it
records the editor's approval through :func:`signoff.lifecycle.submit_vote`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jsonschema import Draft202012Validator

from policy import Refused
from signoff import crypto, lifecycle
from signoff.audit import Event
from signoff.delegation import Delegations
from signoff.lifecycle import CLOSED_TEXT, STALE_TEXT, VoteReply, check_decider, original
from signoff.masking.display import shown_text
from signoff.models import Status, canonical_json

if TYPE_CHECKING:
    from policy import Person
    from signoff.runtime import Runtime

MAX_EDITS = 20


@dataclass(frozen=True)
class EditCheck:
    """The params after an edit, or why the edit is refused."""

    params: dict[str, Any] = field(default_factory=dict)
    changes: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""


def coerce(value: Any, bounds: dict[str, Any]) -> Any:
    """A value typed into a text field (Slack, Teams, the inbox's form) in the type its
    bounds ask for: ``"500"`` -> 500 for an integer param. Anything else is left as is (the
    bounds then refuse it)."""
    if not isinstance(value, str):
        return value
    kind = bounds.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    text = value.strip()
    try:
        if "integer" in kinds and text.lstrip("-").isdigit():
            return int(text)
        if "number" in kinds:
            return float(text) if any(c in text for c in ".eE") else int(text)
        if "boolean" in kinds and text.lower() in ("true", "false"):
            return text.lower() == "true"
    except ValueError:
        return value
    if ("object" in kinds or "array" in kinds) and text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return value
    return value


def check_edit(params: dict[str, Any], editable: dict[str, Any], changes: dict[str, Any]
               ) -> EditCheck:
    """Apply ``changes`` to ``params`` within the rule's ``editable`` bounds."""
    if not editable:
        return EditCheck(error="This rule does not let approvers edit a request.")
    if not isinstance(changes, dict) or not changes:
        return EditCheck(error="Nothing to change.")
    unknown = sorted(str(k) for k in changes if k not in editable)
    if unknown:
        return EditCheck(error=f"{', '.join(unknown)} may not be edited (editable: "
                               f"{', '.join(sorted(editable))}).")
    new = dict(params)
    out: list[dict[str, Any]] = []
    for name in sorted(changes):
        value = coerce(changes[name], editable[name])
        errors = sorted(Draft202012Validator(editable[name]).iter_errors(value),
                        key=lambda e: list(e.path))
        if errors:
            return EditCheck(error=f"{name}: {errors[0].message} (allowed: "
                                   f"{json.dumps(editable[name], sort_keys=True)}).")
        if name in params and canonical_json(params[name]) == canonical_json(value):
            continue
        out.append({"param": name, "from": params.get(name), "to": value})
        new[name] = value
    if not out:
        return EditCheck(error="The values are the ones the request already has.")
    return EditCheck(params=new, changes=out)


def submit_edit(rt: Runtime, request_id: str, person: Person | None, changes: dict[str, Any],
                *, seen_sha256: str | None = None, channel: str = "api", comment: str | None = None,
                approve: bool = True, for_person: str | None = None, nonce: str = "",
                actor_label: str = "", card_version: int | None = None) -> VoteReply:
    """Edit a pending request's editable params and (``approve``) approve the edited
    version, as one person through one channel.

    Refused (nothing changes) when the person may not decide the request, the rule declares
    no such editable param, a value is outside its bounds, the request is closed, or the
    payload is no longer the one the person saw (``seen_sha256``, or ``card_version`` for a
    chat card). A rule with a passkey step-up takes the edit alone (``approve`` is ignored):
    the vote on the edited version needs a proof made for it.
    """
    record = rt.store.get(request_id)
    who = person.id if person is not None else (actor_label or "unknown")
    if record is None:
        return VoteReply(False, f"There is no request {request_id}.", "not_found")
    if record.status is not Status.PENDING:
        return VoteReply(False, CLOSED_TEXT.get(record.status, "This request is closed.") +
                         " It can no longer be edited.", "closed", record=record)
    current = record.get("payload_sha256") or ""
    if (seen_sha256 and seen_sha256 != current) or (
            card_version is not None and card_version < int(record.number("edited_version"))):
        return VoteReply(False, STALE_TEXT, "stale", record=record)
    evaluation = record.evaluation
    editor = person
    if for_person:
        principal = rt.policy.directory.person(for_person)
        if person is None or principal is None or Delegations(rt.redis, rt.keys).active_from_to(
                principal.id, person.id) is None:
            return VoteReply(False, f"You have no active delegation from {for_person}.",
                             "no_delegation", record=record)
        own = check_decider(record, person, rt.policy.directory, evaluation)
        if isinstance(own, Refused) and own.code.value != "not_eligible":
            return VoteReply(False, own.reason, own.code.value, record=record)
        editor = principal
    verdict = check_decider(record, editor, rt.policy.directory, evaluation)
    if isinstance(verdict, Refused):
        rt.audit.append(Event.EDIT_REFUSED, request_id, who, channel=channel,
                        code=verdict.code.value, reason=verdict.reason)
        return VoteReply(False, verdict.reason, verdict.code.value, record=record)
    assert person is not None
    edits = record.json("edits", []) or []
    if len(edits) >= MAX_EDITS:
        return VoteReply(False, "This request has been edited too often; decide it as it is.",
                         "edit_refused", record=record)
    req = original(rt, record)
    checked = check_edit(req.params, evaluation.requirement.editable, changes)
    if checked.error:
        rt.audit.append(Event.EDIT_REFUSED, request_id, who, channel=channel,
                        code="out_of_bounds", reason=checked.error)
        return VoteReply(False, checked.error, "edit_refused", record=record)
    edited = req.model_copy(update={"params": checked.params})
    body = canonical_json(edited.model_dump(mode="json"))
    new_sha = edited.payload_sha256()
    fields = lifecycle.masked_fields(rt, edited, evaluation,
                                     agent=record.get("agent") or None)
    # What changed, as every surface shows it (values through the masker, like the payload).
    shown_changes = [{"param": c["param"],
                      "from": shown_text(rt.masker, json.dumps(c["from"])),
                      "to": shown_text(rt.masker, json.dumps(c["to"]))} for c in checked.changes]
    entry = {"by": person.id, **({"for": editor.id} if editor is not person and editor else {}),
             "at": time.time(), "channel": channel, "changes": shown_changes,
             "from_sha256": current, "to_sha256": new_sha}
    fields.update({
        "ciphertext": crypto.encrypt(rt.data_keyring, body, request_id.encode()),
        "payload_sha256": new_sha,
        "original_payload_sha256": record.get("original_payload_sha256") or current,
        "edits": json.dumps([*edits, entry]),
        "edited_version": str(record.version + 1),
    })
    result = rt.store.edit(request_id, current, fields)
    if result == "closed":
        return VoteReply(False, "This request was decided meanwhile; it can no longer be "
                         "edited.", "closed", record=rt.store.get(request_id))
    if result == "stale":
        return VoteReply(False, STALE_TEXT, "stale", record=rt.store.get(request_id))
    if result == "not_found":
        return VoteReply(False, f"There is no request {request_id}.", "not_found")
    # New requests identical to the original no longer ride on this card (they would be
    # approved for the edited payload's votes); followers already on it are refused when it
    # is approved (merging.follower_refusal).
    from signoff import merging

    slot = rt.keys.dedupe(merging.fingerprint(record, req, evaluation))
    if rt.redis.get(slot) == request_id:
        rt.redis.delete(slot)
    dropped = [v.person for v in record.votes.values()]
    rt.audit.append(Event.EDITED, request_id, person.id, channel=channel,
                    **({"for_person": editor.id} if editor is not person and editor else {}),
                    changes=shown_changes, from_sha256=current, to_sha256=new_sha,
                    votes_dropped=dropped)
    if approve and not evaluation.requirement.step_up:
        reply = lifecycle.submit_vote(rt, request_id, person, "approve", comment,
                                      channel=channel, nonce=nonce, actor_label=actor_label,
                                      for_person=for_person, seen_sha256=new_sha)
        if reply.ok:
            return VoteReply(True, "Edited and approved. " + reply.message, reply.code,
                             reply.outcome, reply.record)
        return VoteReply(False, "Edited; your approval was not recorded: " + reply.message,
                         reply.code, reply.outcome, reply.record)
    rt.enqueue(lifecycle.JOB_UPDATE, request_id)
    return VoteReply(True, "Edited. The edited version needs its approvals"
                     + (" (with a passkey)." if evaluation.requirement.step_up else "."),
                     "edited", record=rt.store.get(request_id))
