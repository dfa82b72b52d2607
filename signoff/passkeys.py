"""Passkeys: people's WebAuthn credentials, their enrolment, removal and revocation.

A person signed in to the inbox registers one or more passkeys (user verification
required); step-up votes (:mod:`signoff.stepup`) are then proven with one of them. The
WebAuthn ceremonies are the ``webauthn`` library's (options, attestation and assertion
verification); this module owns what it cannot: the per-person credential store in Redis
(:class:`PasskeyStore`, keys in :mod:`signoff.keys`), the single-use ceremony challenges, and
the audit of every enrolment and removal.

The relying party is the inbox's public address: its host is the RP ID and its origin the
only origin accepted (``SIGNOFF_PUBLIC_URL``). Without it passkeys are unavailable and a
step-up vote is refused (fail closed).
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import time
from dataclasses import asdict, dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import redis
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url
from webauthn.helpers.exceptions import (
    InvalidAuthenticationResponse,
    InvalidJSONStructure,
    InvalidRegistrationResponse,
)
from webauthn.helpers.parse_authentication_credential_json import (
    parse_authentication_credential_json,
)
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from signoff.audit import Event
from signoff.keys import Keys

if TYPE_CHECKING:
    from signoff.runtime import Runtime
    from signoff.settings import Settings

RP_NAME = "Signoff"
CEREMONY_SECONDS = 300  # how long an enrolment prompt stays answerable
MAX_PASSKEYS = 10  # per person
MAX_NAME = 60
ENROL_FRESH_SIGN_IN = 15 * 60  # enrolment needs a sign-in at most this old


class PasskeyError(Exception):
    """A refused enrolment or removal; the message is safe to show the person."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Removal(str, Enum):
    """What removing a passkey did."""

    REMOVED = "removed"
    NOT_FOUND = "not_found"


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the RP ID (a host name) and the one accepted origin."""

    rp_id: str
    origin: str
    name: str = RP_NAME

    @classmethod
    def from_settings(cls, settings: Settings) -> RelyingParty | None:
        """The relying party of ``SIGNOFF_PUBLIC_URL``, or None when passkeys cannot work
        (no public URL, or a host that is an IP address, which WebAuthn does not accept)."""
        return cls.from_url(settings.public_url)

    @classmethod
    def from_url(cls, url: str | None) -> RelyingParty | None:
        if not url:
            return None
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http") or not host or _is_ip(host):
            return None
        if parts.scheme == "http" and host != "localhost" and not host.endswith(".localhost"):
            return None  # WebAuthn needs a secure context: https, or http on localhost
        origin = f"{parts.scheme}://{parts.netloc.lower()}"
        return cls(rp_id=host, origin=origin)


UNAVAILABLE = ("Passkeys need the inbox's public address: set SIGNOFF_PUBLIC_URL to an https "
               "URL with a host name (or http://localhost for local use).")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class Passkey:
    """One registered credential (the public half only)."""

    credential_id: str  # base64url
    public_key: str  # base64url COSE key
    sign_count: int
    name: str
    created_at: float
    aaguid: str = ""
    transports: tuple[str, ...] = ()
    backed_up: bool = False
    last_used_at: float = 0.0

    def to_json(self) -> str:
        data = asdict(self)
        data["transports"] = list(self.transports)
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, raw: str) -> Passkey:
        data = json.loads(raw)
        data["transports"] = tuple(data.get("transports") or ())
        return cls(**data)

    def public(self) -> dict[str, Any]:
        """What lists show (no key material)."""
        return {"credential_id": self.credential_id, "name": self.name,
                "created_at": self.created_at, "last_used_at": self.last_used_at,
                "sign_count": self.sign_count, "aaguid": self.aaguid,
                "backed_up": self.backed_up}


# Compare-and-set of a credential's sign count, consuming the ceremony's challenge in the same
# step: a proof is used once, and two racing uses of one authenticator cannot both pass.
_USE_PROOF = """
local state = redis.call('GET', KEYS[1])
if not state or state == '"used"' then return 'used' end
local raw = redis.call('HGET', KEYS[2], ARGV[1])
if not raw then return 'unknown' end
local cred = cjson.decode(raw)
local stored = tonumber(cred['sign_count']) or 0
local new = tonumber(ARGV[2])
if (new > 0 or stored > 0) and new <= stored then return 'regressed' end
redis.call('SET', KEYS[1], '"used"', 'KEEPTTL')
cred['sign_count'] = new
cred['last_used_at'] = tonumber(ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], cjson.encode(cred))
return 'ok'
"""

# Advance a credential's sign count (an enrolment confirmed with an existing passkey).
_BUMP = """
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 'unknown' end
local cred = cjson.decode(raw)
local stored = tonumber(cred['sign_count']) or 0
local new = tonumber(ARGV[2])
if (new > 0 or stored > 0) and new <= stored then return 'regressed' end
cred['sign_count'] = new
cred['last_used_at'] = tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(cred))
return 'ok'
"""

# Add a credential unless another person (or this one) already registered it, within the cap.
_ADD = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'taken' end
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then return 'full' end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 'ok'
"""

_REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[2], ARGV[1]) end
return 1
"""


class PasskeyStore:
    """People's passkeys in Redis; owns the ``passkeys``/``webauthn`` keys of :class:`Keys`.

    Args:
        client: redis-py client with ``decode_responses=True``.
        keys: the key builder.
    """

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.r = client
        self.keys = keys
        self._use = client.register_script(_USE_PROOF)
        self._add = client.register_script(_ADD)
        self._remove = client.register_script(_REMOVE)
        self._bump = client.register_script(_BUMP)

    # --- credentials ----------------------------------------------------------------------
    def list_for(self, person: str) -> list[Passkey]:
        """A person's passkeys, oldest first."""
        raw = self.r.hgetall(self.keys.passkeys(person))
        return sorted((Passkey.from_json(v) for v in raw.values()), key=lambda p: p.created_at)

    def get(self, person: str, credential_id: str) -> Passkey | None:
        raw = self.r.hget(self.keys.passkeys(person), credential_id)
        return Passkey.from_json(raw) if raw else None

    def owner(self, credential_id: str) -> str | None:
        """Who registered ``credential_id`` (None: nobody)."""
        return self.r.hget(self.keys.passkey_owners, credential_id)

    def count(self, person: str) -> int:
        return int(self.r.hlen(self.keys.passkeys(person)))

    def add(self, person: str, passkey: Passkey) -> str:
        """Store a new passkey: ``ok``, ``taken`` (registered already) or ``full``."""
        return str(self._add(keys=[self.keys.passkeys(person), self.keys.passkey_owners],
                             args=[passkey.credential_id, passkey.to_json(), person,
                                   MAX_PASSKEYS]))

    def remove(self, person: str, credential_id: str) -> bool:
        return bool(self._remove(keys=[self.keys.passkeys(person), self.keys.passkey_owners],
                                 args=[credential_id, person]))

    def people(self) -> list[str]:
        """Everyone with at least one passkey (from the owner index)."""
        return sorted(set(self.r.hvals(self.keys.passkey_owners)))

    def user_handle(self, person: str) -> bytes:
        """The person's WebAuthn user handle: random, made once (never the email)."""
        key = self.keys.passkey_user(person)
        self.r.set(key, secrets.token_urlsafe(32), nx=True)

        return base64url_to_bytes(str(self.r.get(key)))

    # --- ceremonies -----------------------------------------------------------------------
    def put_challenge(self, nonce: str, data: dict[str, Any], ttl: int) -> None:
        self.r.set(self.keys.webauthn_challenge(nonce), json.dumps(data), ex=max(1, ttl))

    def peek_challenge(self, nonce: str) -> Any:
        """The challenge's data; ``"used"`` once a step-up proof consumed it."""
        raw = self.r.get(self.keys.webauthn_challenge(nonce))
        return json.loads(raw) if raw else None

    def take_challenge(self, nonce: str) -> dict[str, Any] | None:
        """The challenge's data, deleting it (each ceremony answers once)."""
        raw = self.r.getdel(self.keys.webauthn_challenge(nonce))
        return json.loads(raw) if raw else None

    def use_proof(self, nonce: str, person: str, credential_id: str, sign_count: int,
                  now: float) -> str:
        """Consume a step-up challenge and advance the credential's sign count atomically.

        Returns:
            ``ok``, ``used`` (already used or expired), ``unknown`` (the credential is gone)
            or ``regressed`` (the sign count did not grow: a cloned authenticator).
        """
        return str(self._use(keys=[self.keys.webauthn_challenge(nonce),
                                   self.keys.passkeys(person)],
                             args=[credential_id, int(sign_count), repr(now)]))


    def bump(self, person: str, credential_id: str, sign_count: int, now: float) -> str:
        """Advance a credential's sign count: ``ok``, ``unknown`` or ``regressed``."""
        return str(self._bump(keys=[self.keys.passkeys(person)],
                              args=[credential_id, int(sign_count), repr(now)]))


def store(rt: Runtime) -> PasskeyStore:
    """The process's passkey store (built once per runtime)."""
    found = rt.__dict__.get("_passkeys")
    if found is None:
        found = PasskeyStore(rt.redis, rt.keys)
        rt.__dict__["_passkeys"] = found
    return found


# --------------------------------------------------------------------------------------------
# enrolment
# --------------------------------------------------------------------------------------------
def begin_enrolment(rt: Runtime, person: str, display_name: str = "") -> tuple[str, str]:
    """Registration options for ``person`` (user verification required).

    A person who already has a passkey must confirm the new one with it (a stolen inbox
    session alone cannot add an attacker's passkey): the options then also carry
    ``confirm``, assertion options for one of the existing passkeys.

    Returns:
        (ceremony id, the options as JSON for ``navigator.credentials.create``, with
        ``confirm`` when a confirmation is needed).

    Raises:
        PasskeyError: passkeys are unavailable, or the person has the most allowed.
    """
    rp = RelyingParty.from_settings(rt.settings)
    if rp is None:
        raise PasskeyError("unavailable", UNAVAILABLE)
    pk = store(rt)
    existing = pk.list_for(person)
    if len(existing) >= MAX_PASSKEYS:
        raise PasskeyError("full", f"You have {MAX_PASSKEYS} passkeys, the most allowed; "
                                   "remove one first.")

    options = generate_registration_options(
        rp_id=rp.rp_id, rp_name=rp.name, user_name=person,
        user_id=pk.user_handle(person), user_display_name=display_name or person,
        timeout=CEREMONY_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.REQUIRED),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
                             for p in existing],
    )
    ceremony = secrets.token_urlsafe(24)
    state: dict[str, Any] = {"purpose": "enrol", "person": person,
                             "challenge": bytes_to_base64url(options.challenge),
                             "issued_at": time.time()}
    body = json.loads(options_to_json(options))
    if existing:
        confirm = generate_authentication_options(
            rp_id=rp.rp_id, timeout=CEREMONY_SECONDS * 1000,
            allow_credentials=[PublicKeyCredentialDescriptor(
                id=base64url_to_bytes(p.credential_id)) for p in existing],
            user_verification=UserVerificationRequirement.REQUIRED)
        state["confirm"] = bytes_to_base64url(confirm.challenge)
        body["confirm"] = json.loads(options_to_json(confirm))
    pk.put_challenge(ceremony, state, CEREMONY_SECONDS)
    return ceremony, json.dumps(body)


def finish_enrolment(rt: Runtime, person: str, ceremony: str, credential: Any,
                     name: str = "", confirmation: Any = None) -> Passkey:
    """Verify the browser's attestation and store the passkey; audited.

    ``confirmation`` is the assertion of one of the person's existing passkeys for the
    ceremony's ``confirm`` options (required whenever the person has a passkey).

    Raises:
        PasskeyError: anything wrong (nothing is stored).
    """
    rp = RelyingParty.from_settings(rt.settings)
    if rp is None:
        raise PasskeyError("unavailable", UNAVAILABLE)
    pk = store(rt)
    state = pk.take_challenge(ceremony) if isinstance(ceremony, str) and ceremony else None
    if state is None or state.get("purpose") != "enrol" or state.get("person") != person:
        raise PasskeyError("expired", "This passkey prompt expired or was already used; "
                                      "start again.")

    confirmed_by = ""
    if pk.count(person):
        confirmed_by = _confirm(rt, rp, person, state, confirmation)
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=base64url_to_bytes(state["challenge"]),
            expected_rp_id=rp.rp_id, expected_origin=rp.origin,
            require_user_verification=True)
    except (InvalidRegistrationResponse, ValueError, TypeError, KeyError) as exc:
        raise PasskeyError("invalid", f"The passkey could not be verified: {exc}") from None
    transports: tuple[str, ...] = ()
    if isinstance(credential, dict):
        raw_t = (credential.get("response") or {}).get("transports") or []
        transports = tuple(str(t) for t in raw_t if isinstance(t, str))[:8]
    label = " ".join((name or "").split())[:MAX_NAME] or f"Passkey {time.strftime('%Y-%m-%d')}"
    passkey = Passkey(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=bytes_to_base64url(verified.credential_public_key),
        sign_count=int(verified.sign_count), name=label, created_at=time.time(),
        aaguid=str(verified.aaguid), transports=transports,
        backed_up=bool(verified.credential_backed_up))
    result = pk.add(person, passkey)
    if result == "taken":
        raise PasskeyError("taken", "This passkey is already registered.")
    if result == "full":
        raise PasskeyError("full", f"You have {MAX_PASSKEYS} passkeys, the most allowed.")
    rt.audit.append(Event.PASSKEY_ENROLLED, "", person, credential_id=passkey.credential_id,
                    name=passkey.name, aaguid=passkey.aaguid, user_verified=True,
                    sign_count=passkey.sign_count, backed_up=passkey.backed_up,
                    **({"confirmed_with": confirmed_by} if confirmed_by else {}))
    return passkey


def _confirm(rt: Runtime, rp: RelyingParty, person: str, state: dict[str, Any],
             confirmation: Any) -> str:
    """Check that one of ``person``'s passkeys approved adding another; its credential id.

    Raises:
        PasskeyError: missing, for another ceremony, not the person's passkey, no user
            verification, or a sign-count regression.
    """
    if not state.get("confirm") or not isinstance(confirmation, dict):
        raise PasskeyError("confirm_required", "You already have a passkey: confirm adding "
                                               "another with one of them.")
    try:
        parsed = parse_authentication_credential_json(json.dumps(confirmation))
    except (InvalidJSONStructure, ValueError, TypeError):
        raise PasskeyError("invalid", "The confirmation is not a passkey proof.") from None
    pk = store(rt)
    credential_id = bytes_to_base64url(parsed.raw_id)
    existing = pk.get(person, credential_id)
    if existing is None:
        raise PasskeyError("not_yours", "Confirm with one of your own passkeys.")
    try:
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=base64url_to_bytes(state["confirm"]),
            expected_rp_id=rp.rp_id, expected_origin=rp.origin,
            credential_public_key=base64url_to_bytes(existing.public_key),
            credential_current_sign_count=existing.sign_count, require_user_verification=True)
    except (InvalidAuthenticationResponse, ValueError, TypeError) as exc:
        raise PasskeyError("invalid", f"The confirmation did not verify: {exc}") from None
    if pk.bump(person, credential_id, verified.new_sign_count, time.time()) != "ok":
        raise PasskeyError("sign_count", "The confirming passkey's counter did not advance: it "
                                         "may have been copied.")
    return credential_id


def remove(rt: Runtime, person: str, credential_id: str, by: str, reason: str = "") -> Removal:
    """Remove one of ``person``'s passkeys (by themselves, or revoked by an admin); audited."""
    if not store(rt).remove(person, credential_id):
        return Removal.NOT_FOUND
    details: dict[str, Any] = {"owner": person, "credential_id": credential_id,
                               "revoked": by != person}
    if reason:
        details["reason"] = reason[:500]
    rt.audit.append(Event.PASSKEY_REMOVED, "", by, **details)
    return Removal.REMOVED


def revoke_all(rt: Runtime, person: str, by: str, reason: str = "") -> int:
    """An admin removes every passkey of ``person`` (a lost or stolen device); audited."""
    return sum(1 for p in store(rt).list_for(person)
               if remove(rt, person, p.credential_id, by, reason) is Removal.REMOVED)
