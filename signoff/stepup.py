"""Step-up: a vote on a ``step_up: passkey`` request needs a fresh WebAuthn assertion.

The challenge the authenticator signs commits to one decision: ``nonce || SHA-256(domain,
request id, payload hash, choice, person, nonce)``. A signature over it is therefore a
signature over "this person approves (or denies) exactly this payload of this request",
and the server recomputes it from the vote it is checking, never from what the browser sent.
The nonce's record in Redis (made when the prompt was issued) gives the issue time for the
rule's ``within`` window and makes each proof single use: it is consumed, together with the
credential's sign-count compare-and-set, in one atomic step right before the vote is
recorded. :func:`check` is called by :func:`signoff.lifecycle.submit_vote` only, so no
channel can vote around it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from webauthn import (
    generate_authentication_options,
    options_to_json,
    verify_authentication_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidJSONStructure
from webauthn.helpers.parse_authentication_credential_json import (
    parse_authentication_credential_json,
)
from webauthn.helpers.parse_client_data_json import parse_client_data_json
from webauthn.helpers.structs import PublicKeyCredentialDescriptor, UserVerificationRequirement

from signoff.passkeys import UNAVAILABLE, RelyingParty, store

if TYPE_CHECKING:
    from signoff.runtime import Runtime
    from signoff.store import Record

DOMAIN = b"signoff-step-up-v1"
NONCE_BYTES = 16
# A proof's record outlives its window by this much, so a late replay is still named a replay.
GRACE_SECONDS = 900
MAX_PROOF_BYTES = 16_384
USED = "used"


class Code(str, Enum):
    """Why a step-up vote was refused (the VoteReply and audit code)."""

    REQUIRED = "step_up_required"
    NO_PASSKEY = "step_up_no_passkey"
    UNAVAILABLE = "step_up_unavailable"
    INVALID = "step_up_invalid"
    REPLAYED = "step_up_replayed"
    EXPIRED = "step_up_expired"
    STALE = "step_up_stale"
    OTHER_REQUEST = "step_up_other_request"
    OTHER_PAYLOAD = "step_up_other_payload"
    OTHER_CHOICE = "step_up_other_choice"
    OTHER_PERSON = "step_up_other_person"
    NOT_YOUR_PASSKEY = "step_up_not_your_passkey"
    UNKNOWN_PASSKEY = "step_up_unknown_passkey"
    SIGN_COUNT = "step_up_sign_count"
    NOT_VERIFIED = "step_up_not_verified"
    NOT_NEEDED = "step_up_not_needed"
    NOT_FOUND = "not_found"
    CLOSED = "closed"
    FORBIDDEN = "forbidden"


@dataclass(frozen=True)
class Refusal:
    """A refused proof: nothing was changed."""

    code: Code
    message: str


@dataclass(frozen=True)
class Proof:
    """A verified, consumed step-up proof (what the vote's audit entry records)."""

    credential_id: str
    user_present: bool
    user_verified: bool
    sign_count: int
    age_seconds: float
    within: int

    def audit(self) -> dict[str, Any]:
        return {"method": "passkey", "credential_id": self.credential_id,
                "flags": {"up": self.user_present, "uv": self.user_verified},
                "sign_count": self.sign_count, "age_seconds": round(self.age_seconds, 3),
                "within": self.within}


def step_up_path(request_id: str, choice: str = "") -> str:
    """The inbox page where a step-up vote is made."""
    path = f"/inbox/r/{quote(request_id, safe='~')}/step-up"
    return f"{path}?choice={choice}" if choice in ("approve", "deny") else path


def step_up_url(public_url: str | None, request_id: str, choice: str = "") -> str:
    base = (public_url or "").rstrip("/")
    return base + step_up_path(request_id, choice)


def bound_challenge(request_id: str, payload_sha256: str, choice: str, person: str,
                    nonce: bytes) -> bytes:
    """The challenge for one decision: the nonce, then a hash binding everything to it."""
    body = json.dumps([request_id, payload_sha256, choice, person,
                       bytes_to_base64url(nonce)], separators=(",", ":")).encode()
    return nonce + hashlib.sha256(DOMAIN + b"\0" + body).digest()


def begin(rt: Runtime, record: Record, person: str, choice: str, within: int
          ) -> tuple[str, int] | Refusal:
    """The assertion options for ``person`` to ``choice`` this request.

    Returns:
        (options JSON for ``navigator.credentials.get``, seconds the proof stays usable),
        or a :class:`Refusal` (no passkey, passkeys unavailable).
    """
    rp = RelyingParty.from_settings(rt.settings)
    if rp is None:
        return Refusal(Code.UNAVAILABLE, UNAVAILABLE)
    if choice not in ("approve", "deny"):
        return Refusal(Code.INVALID, "Choose approve or deny.")
    passkeys = store(rt).list_for(person)
    if not passkeys:
        return Refusal(Code.NO_PASSKEY, no_passkey_text(rt))
    nonce = secrets.token_bytes(NONCE_BYTES)
    psh = record.get("payload_sha256") or ""
    challenge = bound_challenge(record.id, psh, choice, person, nonce)
    options = generate_authentication_options(
        rp_id=rp.rp_id, challenge=challenge, timeout=min(within, 300) * 1000,
        allow_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                           for p in passkeys],
        user_verification=UserVerificationRequirement.REQUIRED)
    store(rt).put_challenge(bytes_to_base64url(nonce), {
        "purpose": "step_up", "request_id": record.id, "payload_sha256": psh,
        "choice": choice, "person": person, "issued_at": time.time(), "within": within,
    }, within + GRACE_SECONDS)
    return options_to_json(options), within


def no_passkey_text(rt: Runtime) -> str:
    base = (rt.settings.public_url or "").rstrip("/")
    return ("This request needs a passkey and you have none yet: enrol one at "
            f"{base}/inbox/passkeys, then decide it from the inbox.")


def required_text(rt: Runtime, request_id: str) -> str:
    return ("This request needs a passkey check: decide it at "
            f"{step_up_url(rt.settings.public_url, request_id)} (a click alone is not enough).")


def check(rt: Runtime, record: Record, person: str, choice: str, within: int, proof: Any,
          now: float | None = None) -> Proof | Refusal:
    """Verify a step-up assertion for this vote and consume it (single use).

    Every refusal leaves everything as it was: the challenge stays unused and the
    credential's sign count unchanged.
    """
    now = time.time() if now is None else now
    if proof is None or proof == "" or proof == {}:
        if not store(rt).count(person):
            return Refusal(Code.NO_PASSKEY, no_passkey_text(rt))
        return Refusal(Code.REQUIRED, required_text(rt, record.id))
    rp = RelyingParty.from_settings(rt.settings)
    if rp is None:
        return Refusal(Code.UNAVAILABLE, UNAVAILABLE)
    try:
        raw = proof if isinstance(proof, str) else json.dumps(proof)
        if len(raw) > MAX_PROOF_BYTES:
            return Refusal(Code.INVALID, "The passkey proof is too large.")
        credential = parse_authentication_credential_json(raw)
        client_data = parse_client_data_json(credential.response.client_data_json)
    except (InvalidJSONStructure, InvalidAuthenticationResponse, ValueError, TypeError,
            KeyError, AttributeError):
        return Refusal(Code.INVALID, "That is not a WebAuthn passkey proof.")
    if client_data.cross_origin:
        # Made inside a frame on another site: the inbox is never framed (frame-ancestors).
        return Refusal(Code.INVALID, "This passkey proof was made inside another site.")
    challenge = client_data.challenge
    if len(challenge) != NONCE_BYTES + 32:
        return Refusal(Code.INVALID, "This passkey proof was not made for a Signoff decision.")
    nonce = challenge[:NONCE_BYTES]
    pk = store(rt)
    state = pk.peek_challenge(bytes_to_base64url(nonce))
    if state == USED:
        return Refusal(Code.REPLAYED, "This passkey proof was already used; a proof counts "
                                      "once. Confirm again with your passkey.")
    if not isinstance(state, dict) or state.get("purpose") != "step_up":
        return Refusal(Code.EXPIRED, "This passkey proof expired or was not issued by Signoff;"
                                     " confirm again with your passkey.")
    if state.get("request_id") != record.id:
        return Refusal(Code.OTHER_REQUEST, "This passkey proof was made for another request, "
                                           "not this one.")
    if state.get("payload_sha256") != (record.get("payload_sha256") or ""):
        return Refusal(Code.OTHER_PAYLOAD, "This passkey proof was made for a different "
                                           "payload.")
    if state.get("choice") != choice:
        return Refusal(Code.OTHER_CHOICE, f"This passkey proof was made to "
                                          f"{state.get('choice')}, not to {choice}.")
    if state.get("person") != person:
        return Refusal(Code.OTHER_PERSON, "This passkey proof was made by someone else.")
    expected = bound_challenge(record.id, record.get("payload_sha256") or "", choice, person,
                               nonce)
    if not hmac.compare_digest(expected, challenge):
        return Refusal(Code.INVALID, "This passkey proof does not match this decision.")
    age = now - float(state.get("issued_at") or 0)
    if age > within or age < -5:
        return Refusal(Code.STALE, f"This passkey proof is {int(age)}s old; this request needs "
                                   f"one made within the last {within}s. Confirm again.")
    credential_id = bytes_to_base64url(credential.raw_id)
    passkey = pk.get(person, credential_id)
    if passkey is None:
        owner = pk.owner(credential_id)
        if owner and owner != person:
            return Refusal(Code.NOT_YOUR_PASSKEY, "This passkey belongs to someone else; use "
                                                  "your own.")
        return Refusal(Code.UNKNOWN_PASSKEY, "This passkey is not registered (or was removed);"
                                             " enrol it in the inbox first.")
    handle = credential.response.user_handle
    if handle and not hmac.compare_digest(bytes(handle), pk.user_handle(person)):
        return Refusal(Code.NOT_YOUR_PASSKEY, "This passkey belongs to someone else; use your "
                                              "own.")
    try:
        verified = verify_authentication_response(
            credential=credential, expected_challenge=expected, expected_rp_id=rp.rp_id,
            expected_origin=rp.origin, credential_public_key=base64url_to_bytes(
                passkey.public_key),
            credential_current_sign_count=passkey.sign_count, require_user_verification=True)
    except InvalidAuthenticationResponse as exc:
        text = str(exc)
        if "sign count" in text:
            return _replayed_or_cloned(pk, nonce, passkey.sign_count)
        if "verification" in text.lower():
            return Refusal(Code.NOT_VERIFIED, "Your passkey did not verify you (PIN or "
                                              "biometric); this request needs that.")
        return Refusal(Code.INVALID, f"The passkey proof did not verify: {text}.")
    except (ValueError, TypeError, KeyError):
        return Refusal(Code.INVALID, "The passkey proof did not verify.")
    used = pk.use_proof(bytes_to_base64url(nonce), person, credential_id,
                        verified.new_sign_count, now)
    if used == "used":
        return Refusal(Code.REPLAYED, "This passkey proof was already used; a proof counts "
                                      "once. Confirm again with your passkey.")
    if used == "regressed":
        return _replayed_or_cloned(pk, nonce, passkey.sign_count)
    if used != "ok":
        return Refusal(Code.UNKNOWN_PASSKEY, "This passkey was removed; enrol one again.")
    flags = _flags(credential.response.authenticator_data)
    return Proof(credential_id=credential_id, user_present=flags[0],
                 user_verified=bool(verified.user_verified), sign_count=verified.new_sign_count,
                 age_seconds=max(age, 0.0), within=within)


def _replayed_or_cloned(pk: Any, nonce: bytes, stored: int) -> Refusal:
    """A counter that did not grow: the same proof racing its own first use (which has
    consumed it by now), or a cloned authenticator."""
    if pk.peek_challenge(bytes_to_base64url(nonce)) == USED:
        return Refusal(Code.REPLAYED, "This passkey proof was already used; a proof counts "
                                      "once. Confirm again with your passkey.")
    return Refusal(Code.SIGN_COUNT, _cloned_text(stored))


def _cloned_text(stored: int) -> str:
    return (f"This passkey's signature counter did not advance past {stored}: it may have been "
            "copied. The vote is refused; ask an admin to check and revoke the passkey.")


def _flags(authenticator_data: bytes) -> tuple[bool, bool]:
    """(user present, user verified) from the authenticator data's flags byte."""
    flags = authenticator_data[32] if len(authenticator_data) > 32 else 0
    return bool(flags & 0x01), bool(flags & 0x04)
