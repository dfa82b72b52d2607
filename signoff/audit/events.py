"""Every kind of audit entry, and which events settle a request."""

from __future__ import annotations

from enum import Enum


class Event(str, Enum):
    """Every kind of audit entry."""

    REQUESTED = "requested"
    DUPLICATE = "duplicate"
    MERGED = "merged"
    MERGE_REFUSED = "merge_refused"  # a follower its leader's approvers may not decide
    REJECTED = "rejected"
    PREPARED = "prepared"
    CARD_POSTED = "card_posted"
    CARD_FAILED = "card_failed"
    VOTE = "vote"
    CLICK_REFUSED = "click_refused"
    DECIDED = "decided"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    CANCEL_REFUSED = "cancel_refused"
    REMINDED = "reminded"
    ESCALATED = "escalated"
    GRANT_ISSUED = "grant_issued"
    GRANT_USED = "grant_used"
    GRANT_REFUSED = "grant_refused"
    GRANT_REVOKED = "grant_revoked"
    REVOKE_REFUSED = "revoke_refused"
    POLICY_RELOADED = "policy_reloaded"
    POLICY_REFUSED = "policy_refused"
    TOKEN_CREATED = "token_created"  # noqa: S105 - an event name, not a password
    KEY_ROTATED = "key_rotated"
    PASSKEY_ENROLLED = "passkey_enrolled"
    PASSKEY_REMOVED = "passkey_removed"
    STEP_UP_REFUSED = "step_up_refused"
    EDITED = "edited"  # an approver changed editable params before approving
    EDIT_REFUSED = "edit_refused"
    STANDING_CREATED = "standing_created"
    STANDING_REVOKED = "standing_revoked"
    DELEGATION_CREATED = "delegation_created"
    DELEGATION_REVOKED = "delegation_revoked"
    DEADLINE_EXTENDED = "deadline_extended"


# Events that settle a request, and the status each one means.
FINAL_EVENTS = {"rejected": "rejected", "expired": "timed_out", "cancelled": "cancelled"}


# Entries after which a checkpoint is signed at once (SIGNOFF_AUDIT_CHECKPOINT_PER_DECISION),
# so cutting the tail of the log after a decision always breaks a signed tree head.
SEAL_EVENTS = frozenset({"decided", "expired", "cancelled", "rejected", "grant_issued",
                         "grant_revoked", "policy_reloaded", "policy_refused"})
