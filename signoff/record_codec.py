"""The compact encoding of a request record's descriptive fields.

Most of a record (the policy's evaluation, the masked views, the shown fields, the identity
fields) is written once, by :meth:`Store.create <signoff.store.Store.create>` and
:meth:`Store.open <signoff.store.Store.open>`, and only ever read back in Python through
:class:`~signoff.store.Record`. Those fields (:data:`PACKABLE`) are kept together in one hash
field, :data:`PACKED`, as zlib-compressed JSON with a preset dictionary of the words every
record repeats: one hash field instead of twenty (a Redis hash with long values pays some 60
bytes of bookkeeping per field) and about a quarter of the bytes.

Every field a Lua script or another module reads from the hash by name (``status``,
``deadline``, ``index_keys``, the quorum fields, ``agent``, ``ciphertext``, ``version``, ...)
stays a hash field of its own, and so does everything written after ``open``. A plain field
always wins over a packed one of the same name (a later ``HSET``, e.g. an approver's edit of
the masked views, is what counts), and a record without :data:`PACKED` (written before this
encoding) reads as it always did.
"""

from __future__ import annotations

import json
import zlib

# The hash field holding the packed fields.
PACKED = "packed"

# The fields that may be packed: written at create/open and read only through Record. A
# field read by name anywhere else (a Lua script, HGET/HMGET) must never be added here.
PACKABLE = frozenset({
    "id", "client_id", "action", "requester", "on_behalf_of", "environment", "reply_to",
    "shown", "evaluation", "rule_id", "summary", "eligible", "masked", "masked_partial",
    "partial_groups", "findings", "masking_summary", "masking_counts", "step_up_url",
    "merged_into", "error",
})

# Format "z1": zlib with the preset dictionary below. Never edit it (records written with it
# could no longer be read): a new dictionary is a new format tag, and the old one stays
# readable.
_Z1 = b"z1:"
_Z1_DICT = json.dumps({
    "id": "", "client_id": "", "action": "", "requester": "agent:", "on_behalf_of": "",
    "environment": "prod", "reply_to": "", "rule_id": "", "summary": "", "eligible": "[]",
    "masking_summary": " field masked: ", "masking_counts": "{}",
    "shown": json.dumps({"action": "", "resource": "", "requester": "agent:",
                         "on_behalf_of": "", "environment": ""}),
    "masked": json.dumps({"resource": "", "params": {}, "reason": "", "context": {}}),
    "findings": json.dumps([{"detector": "", "entity": "", "path": "$.params.", "start": 0,
                             "end": 0, "strategy": "redact", "confidence": 0.9}]),
    "evaluation": json.dumps({
        "rule_id": "", "outcome": "require_approval", "requirement": {
            "groups": {}, "quorum": 1, "eligible_groups": [], "deny_quorum": 1,
            "require_reason": False, "require_deny_comment": False, "timeout_seconds": 3600,
            "on_timeout": "deny", "reminders": [], "escalation": [], "channels": [
                {"kind": "slack_channel", "target": "#"}, {"kind": "teams", "target": ""},
                {"kind": "web", "target": ""}],
            "masking_profile": "default", "disable_detectors": [], "partial_groups": [],
            "step_up": None, "step_up_within": 300, "standing_max": 0,
            "standing_params": {}, "editable": {}, "deny_reasons": [], "extend_max": 0},
        "reason": "", "explanation": ["\u2713  (line ) matched"], "summary": "",
        "policy_version": ""}),
}).encode()


class UnreadableRecord(ValueError):
    """A packed field in a format this version cannot read."""


def split(fields: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain fields, packable fields) of a record write."""
    plain = {k: v for k, v in fields.items() if k not in PACKABLE}
    packable = {k: v for k, v in fields.items() if k in PACKABLE}
    return plain, packable


def pack(fields: dict[str, str]) -> bytes:
    """The packed form of ``fields`` (every value a string)."""
    z = zlib.compressobj(level=9, zdict=_Z1_DICT)
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return _Z1 + z.compress(raw) + z.flush()


def unpack(blob: bytes | None) -> dict[str, str]:
    """The fields of a packed value (empty for none)."""
    if not blob:
        return {}
    if not blob.startswith(_Z1):
        raise UnreadableRecord(f"packed record fields in an unknown format {blob[:4]!r}")
    z = zlib.decompressobj(zdict=_Z1_DICT)
    data = json.loads(z.decompress(blob[len(_Z1):]) + z.flush())
    return {str(k): str(v) for k, v in data.items()}
