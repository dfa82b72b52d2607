"""Every Redis key and stream name Signoff uses, built in one place.

A registered agent reaches only its own namespace (:class:`AgentKeys`: request stream, reply
lists, decisions stream, grant-use markers and reports) and reads the grant public keys;
everything else is internal. The prefix defaults to ``signoff`` and is
configurable (``SIGNOFF_KEY_PREFIX``) so several deployments can share one Redis.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_PREFIX = "signoff"
INTAKE_GROUP = "signoff-intake"

# An agent's name: lower case, no ':' (a name must never be a prefix of another agent's key
# namespace) and no Redis glob characters (it is part of the agent's ACL key patterns).
AGENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
AGENT_NAME_RE = re.compile(AGENT_NAME_PATTERN)
# Separates the agent's name from its own id in Signoff's internal request id
# (``export-bot~req-1``). An agent's id cannot contain it (ID_PATTERN), and it is an
# unreserved URL character, so internal ids travel in paths, button values and job ids as is.
SCOPE_SEP = "~"


def agent_requester(name: str) -> str:
    """The requester identity of a registered agent (as the policy directory names it)."""
    return f"agent:{name}"


def scoped_id(agent: str | None, client_id: str) -> str:
    """Signoff's internal id for the request ``client_id`` of ``agent`` (None: the shared
    trusted stream, whose ids are used as they are)."""
    return f"{agent}{SCOPE_SEP}{client_id}" if agent else client_id


def split_id(request_id: str) -> tuple[str | None, str]:
    """(agent name or None, the agent's own id) of an internal request id."""
    agent, sep, client_id = request_id.partition(SCOPE_SEP)
    return (agent, client_id) if sep else (None, request_id)


@dataclass(frozen=True)
class AgentGrantKeys:
    """Signoff's own view of a registered agent's grants, for the server-side check
    (``signoff.grants.verify``): Signoff's public keys, grant records and reports, and the
    agent's use marker, so a grant runs once whichever side checks it (the agent's SDK sets
    the same marker) and a revocation (which checks that marker) wins or loses atomically."""

    prefix: str
    name: str

    @property
    def public_keys(self) -> str:
        return f"{self.prefix}:keys:public"

    def grant(self, jti: str) -> str:
        return f"{self.prefix}:grant:{jti}"

    def grant_used(self, jti: str) -> str:
        return AgentKeys(self.prefix, self.name).grant_used(jti)

    @property
    def grant_reports(self) -> str:
        return f"{self.prefix}:grant:reports"


@dataclass(frozen=True)
class AgentKeys:
    """The keys one registered agent may reach: its own namespace ``{prefix}:agent:{name}:``
    (and the grant public keys, read-only). Its ACL user is confined to exactly these
    (:func:`signoff.agents.acl_rules`); Signoff writes nothing an agent sends outside them.

    It has the same names the grant check uses on :class:`Keys` (``public_keys``, ``grant``,
    ``grant_used``, ``grant_reports``), so the agent SDK verifies grants with its own keys.

    Args:
        prefix: the deployment's prefix.
        name: the agent's name (:data:`AGENT_NAME_PATTERN`).
    """

    prefix: str
    name: str

    def __post_init__(self) -> None:
        if not AGENT_NAME_RE.match(self.name):
            raise ValueError(f"not an agent name: {self.name!r} (lower-case letters, digits, "
                             "'-' and '_', at most 63)")

    @property
    def base(self) -> str:
        """The namespace every key of this agent starts with (followed by ``:``)."""
        return f"{self.prefix}:agent:{self.name}"

    @property
    def requester(self) -> str:
        return agent_requester(self.name)

    @property
    def requests(self) -> str:
        """The agent's request stream (XADD ``body`` or ``cancel``; only this agent may)."""
        return f"{self.base}:requests"

    def reply(self, request_id: str) -> str:
        """List the decision of the agent's request ``request_id`` is LPUSHed to."""
        return f"{self.base}:reply:{request_id}"

    @property
    def decisions(self) -> str:
        """Stream of every decision on this agent's requests."""
        return f"{self.base}:decisions"

    @property
    def grant_reports(self) -> str:
        """Stream where this agent reports grant use and refusals (its claims)."""
        return f"{self.base}:grant:reports"

    def grant_used(self, jti: str) -> str:
        """Single-use marker of one of this agent's grants (set by the agent's grant check)."""
        return f"{self.base}:grant:used:{jti}"

    def grant(self, jti: str) -> str:
        """Revocation mirror of one of this agent's grants (written by Signoff only, when it
        revokes it; the agent may read it)."""
        return f"{self.base}:grant:revoked:{jti}"

    @property
    def public_keys(self) -> str:
        """The agent's copy of hash kid -> public JWK JSON, kept by Signoff
        (:func:`signoff.agents.sync_public_keys`): an agent never touches a key another agent
        or Signoff reads, even where Redis has no read-only permission (6.x)."""
        return f"{self.base}:keys:public"


@dataclass(frozen=True)
class Keys:
    """Key builder for one prefix.

    Args:
        prefix: the namespace every key starts with.
    """

    prefix: str = DEFAULT_PREFIX

    # --- registered agents --------------------------------------------------------------
    def agent(self, name: str) -> AgentKeys:
        """The namespace of the registered agent ``name``."""
        return AgentKeys(self.prefix, name)

    def agent_grants(self, name: str) -> AgentGrantKeys:
        """Signoff's server-side view of the registered agent ``name``'s grants."""
        return AgentGrantKeys(self.prefix, name)

    @property
    def agents(self) -> str:
        """Hash agent name -> registration JSON (ACL user, password hash, token hash)."""
        return f"{self.prefix}:agents"

    def acl_user(self, name: str) -> str:
        """The Redis ACL user of the registered agent ``name``."""
        return f"{self.prefix}-agent-{name}"

    def agent_of_acl_user(self, user: str) -> str | None:
        """The agent name an ACL user belongs to, or None."""
        head = f"{self.prefix}-agent-"
        if user.startswith(head) and AGENT_NAME_RE.match(user[len(head):]):
            return user[len(head):]
        return None

    # --- the public wire contract -------------------------------------------------------
    @property
    def requests(self) -> str:
        """The shared stream of the trusted single-agent mode (request v1: the body names its
        requester). Registered agents use :attr:`AgentKeys.requests`."""
        return f"{self.prefix}:requests"

    def reply(self, request_id: str) -> str:
        """List the decision JSON is LPUSHed to (trusted mode; agents: AgentKeys.reply)."""
        return f"{self.prefix}:reply:{request_id}"

    @property
    def decisions(self) -> str:
        """Stream every decision is appended to, for Signoff's own readers (agents read their
        own: AgentKeys.decisions)."""
        return f"{self.prefix}:decisions"

    @property
    def dead(self) -> str:
        """Stream of messages that could not be answered (no usable id)."""
        return f"{self.prefix}:dead"

    # --- internal state -----------------------------------------------------------------
    def request(self, request_id: str) -> str:
        """Hash holding one request's record and state."""
        return f"{self.prefix}:req:{request_id}"

    def votes(self, request_id: str) -> str:
        """Hash person -> vote JSON for one request."""
        return f"{self.prefix}:votes:{request_id}"

    def cards(self, request_id: str) -> str:
        """Hash channel-target -> posted-card JSON (where each card lives, for updates)."""
        return f"{self.prefix}:cards:{request_id}"

    def clicks(self, request_id: str) -> str:
        """Set of click nonces already accepted for a request (replay refusal)."""
        return f"{self.prefix}:clicks:{request_id}"

    @property
    def pending(self) -> str:
        """Sorted set of pending request ids, scored by creation time."""
        return f"{self.prefix}:pending"

    def pending_for_group(self, group: str) -> str:
        """Sorted set of pending request ids that ``group`` may decide, by creation time."""
        return f"{self.prefix}:pending:group:{group}"

    def open_for_agent(self, agent: str) -> str:
        """Sorted set of an agent's open (received or pending) request ids (pending cap)."""
        return f"{self.prefix}:open:agent:{agent}"

    def followers(self, request_id: str) -> str:
        """List of identical requests merged onto this one's card."""
        return f"{self.prefix}:followers:{request_id}"

    def by_person(self, person: str) -> str:
        """Sorted set of request ids made on behalf of ``person``."""
        return f"{self.prefix}:mine:{person}"

    @property
    def deadlines(self) -> str:
        """Sorted set of open request ids scored by deadline (safety net for the scheduler)."""
        return f"{self.prefix}:deadlines"

    @property
    def received(self) -> str:
        """Sorted set of ids in ``received`` (not yet prepared), scored by arrival."""
        return f"{self.prefix}:received"

    @property
    def notifying(self) -> str:
        """Sorted set of request ids whose notify job has not finished, by claim time
        (:class:`signoff.cards.CardLedger` owns it)."""
        return f"{self.prefix}:notifying"

    @property
    def outbox(self) -> str:
        """Sorted set of decided request ids whose reply is not yet delivered (finalize outbox)."""
        return f"{self.prefix}:outbox"

    @property
    def all_requests(self) -> str:
        """Sorted set of every request id by creation time (for listings and audit)."""
        return f"{self.prefix}:all"

    @property
    def api_tokens(self) -> str:
        """Hash sha256(token) -> token record JSON (approver and agent API credentials)."""
        return f"{self.prefix}:tokens"

    @property
    def audit(self) -> str:
        """Append-only audit stream."""
        return f"{self.prefix}:audit"

    def audit_for(self, request_id: str) -> str:
        """List of audit stream ids about one request (index for the request page)."""
        return f"{self.prefix}:audit:req:{request_id}"

    @property
    def audit_head(self) -> str:
        """Hash with the audit chain's head (last hash, sequence)."""
        return f"{self.prefix}:audit:head"

    @property
    def audit_checkpoints(self) -> str:
        """Stream of signed audit checkpoints."""
        return f"{self.prefix}:audit:checkpoints"

    @property
    def audit_merkle(self) -> str:
        """Hash with the audit Merkle tree's state (size, last stream id, right-edge frontier)."""
        return f"{self.prefix}:audit:merkle"

    @property
    def audit_merkle_chunks(self) -> str:
        """List of the roots of each complete 1,024-entry subtree (and its last stream id)."""
        return f"{self.prefix}:audit:merkle:chunks"

    @property
    def audit_archive(self) -> str:
        """List of archived audit segments (JSON: seq range, file, SHA-256, checkpoint)."""
        return f"{self.prefix}:audit:archive"

    @property
    def audit_index_state(self) -> str:
        """Hash with the audit index's cursor (last indexed stream id and seq)."""
        return f"{self.prefix}:audit:ix:state"

    def audit_index_request(self, request_id: str) -> str:
        """Hash of one request's facts (action, resource, agent, person) for the index."""
        return f"{self.prefix}:audit:ix:req:{request_id}"

    def audit_index_resource(self, resource: str) -> str:
        """Sorted set of index rows about one resource, scored by time."""
        return f"{self.prefix}:audit:ix:res:{resource}"

    def audit_index_person(self, person: str) -> str:
        """Sorted set of index rows where ``person`` acted, scored by time."""
        return f"{self.prefix}:audit:ix:who:{person}"

    @property
    def audit_index_keys(self) -> str:
        """Sorted set of every audit index key, scored by its newest row's time (retention)."""
        return f"{self.prefix}:audit:ix:keys"

    def audit_sink(self, destination: str) -> str:
        """Hash with one SIEM destination's cursor (last delivered stream id, seq, counts)."""
        return f"{self.prefix}:audit:sink:{destination}"

    def audit_sink_lease(self, destination: str) -> str:
        """Lease held by the one sink process delivering to ``destination``."""
        return f"{self.prefix}:audit:sink:{destination}:lease"

    def grant_used(self, jti: str) -> str:
        """Marker that a grant has been consumed (single use)."""
        return f"{self.prefix}:grant:used:{jti}"

    def grant(self, jti: str) -> str:
        """Hash describing an issued grant (for revocation and listing)."""
        return f"{self.prefix}:grant:{jti}"

    def grant_reported(self, jti: str, result: str, code: str) -> str:
        """Marker that an agent's report of ``result`` (with its ``code``) for grant ``jti`` is
        in the audit (each claim is recorded once: repeating it cannot flood the audit chain)."""
        return f"{self.prefix}:grant:reported:{jti}:{result}:{code}"

    @property
    def grant_reports(self) -> str:
        """Stream where Redis-only verifiers (agents) report grant use and refusals; Signoff
        folds it into the audit chain (agents never write the chain themselves)."""
        return f"{self.prefix}:grant:reports"

    def cancel_early(self, request_id: str) -> str:
        """A cancel that arrived before its request (several intake consumers race); keyed by
        the internal, agent-scoped id, so it can only ever cancel that agent's request."""
        return f"{self.prefix}:cancel:early:{request_id}"

    @property
    def audit_signing_keys(self) -> str:
        """Hash kid -> encrypted Ed25519 private key for audit checkpoints, plus the active kid."""
        return f"{self.prefix}:keys:audit:signing"

    @property
    def audit_public_keys(self) -> str:
        """Hash kid -> public JWK JSON of audit checkpoint keys (kept forever)."""
        return f"{self.prefix}:keys:audit:public"

    def policy_seen(self, version: str) -> str:
        """Marker that a policy version's reload was audited once (every process reloads)."""
        return f"{self.prefix}:policy:seen:{version}"

    @property
    def signing_keys(self) -> str:
        """Hash kid -> encrypted Ed25519 private key, plus the active kid."""
        return f"{self.prefix}:keys:signing"

    @property
    def public_keys(self) -> str:
        """Hash kid -> public JWK JSON (plaintext: agents verify grants with Redis alone)."""
        return f"{self.prefix}:keys:public"

    @property
    def teams_conversations(self) -> str:
        """Hash name -> saved Teams conversation reference JSON."""
        return f"{self.prefix}:teams:conversations"

    def session(self, sid: str) -> str:
        """Web inbox session."""
        return f"{self.prefix}:session:{sid}"

    def rate(self, scope: str, ident: str, window: int) -> str:
        """Counter for rate limiting ``ident`` in ``scope`` for the window starting ``window``."""
        return f"{self.prefix}:rate:{scope}:{ident}:{window}"

    def dedupe(self, fingerprint: str) -> str:
        """Pointer from a pending request fingerprint to the request it was merged onto."""
        return f"{self.prefix}:dedupe:{fingerprint}"

    @property
    def events(self) -> str:
        """Pub/sub channel announcing request changes (web inbox live updates)."""
        return f"{self.prefix}:events"

    # --- passkeys (WebAuthn) and step-up ------------------------------------------------
    def passkeys(self, person: str) -> str:
        """Hash credential id (base64url) -> passkey JSON, one per person (PasskeyStore)."""
        return f"{self.prefix}:passkeys:{person}"

    def passkey_user(self, person: str) -> str:
        """A person's random WebAuthn user handle (never their email)."""
        return f"{self.prefix}:passkeys:user:{person}"

    @property
    def passkey_owners(self) -> str:
        """Hash credential id -> person: a credential belongs to one person only."""
        return f"{self.prefix}:passkeys:owners"

    def webauthn_challenge(self, nonce: str) -> str:
        """One outstanding WebAuthn ceremony (enrolment or step-up), deleted when used."""
        return f"{self.prefix}:webauthn:challenge:{nonce}"

    # --- card delivery (signoff.cards.CardLedger) ----------------------------------------
    def card_outbox(self, channel: str) -> str:
        """Hash request id -> pending card operation for one destination (``kind:dest``)."""
        return f"{self.prefix}:cardbox:{channel}"

    @property
    def card_outbox_due(self) -> str:
        """Sorted set of destinations with pending card operations, scored by the time the
        platform allows the next call (now, or the end of a ``Retry-After``)."""
        return f"{self.prefix}:cardbox:due"

    def card_outbox_lease(self, channel: str) -> str:
        """The worker draining one destination's operations right now (expires)."""
        return f"{self.prefix}:cardbox:lease:{channel}"

    def send_rate(self, scope: str) -> str:
        """Token bucket (tokens, time) of a platform's documented rate for one scope (a Slack
        channel, a Teams app)."""
        return f"{self.prefix}:cardbox:rate:{scope}"

    def digest(self, channel: str, digest_id: str) -> str:
        """Hash of one digest card (requests coalesced into one message at a destination)."""
        return f"{self.prefix}:digest:{channel}:{digest_id}"

    def digest_open(self, channel: str) -> str:
        """The id of the destination's digest card that still takes new requests."""
        return f"{self.prefix}:digest:open:{channel}"

    def trace(self, request_id: str) -> str:
        """A request's trace context (W3C traceparent), kept only while tracing is on."""
        return f"{self.prefix}:trace:{request_id}"

    # --- standing approvals and delegations (signoff/standing.py, signoff/delegation.py) ---
    def standing(self, standing_id: str) -> str:
        """Hash of one standing approval (scope, bounds, approvers, window, uses)."""
        return f"{self.prefix}:standing:{standing_id}"

    @property
    def standing_active(self) -> str:
        """Sorted set standing id -> expiry: every standing approval not yet revoked."""
        return f"{self.prefix}:standing:active"

    def standing_scope(self, fingerprint: str) -> str:
        """Set of the standing approvals covering one scope (agent, action, resource,
        on-behalf-of person, environment and context): what prepare looks up."""
        return f"{self.prefix}:standing:scope:{fingerprint}"

    def delegation(self, delegation_id: str) -> str:
        """Hash of one delegation (from, to, window, who created or revoked it)."""
        return f"{self.prefix}:delegation:{delegation_id}"

    @property
    def delegations_active(self) -> str:
        """Sorted set delegation id -> end of its window: delegations not yet revoked."""
        return f"{self.prefix}:delegation:active"

    def delegations_to(self, person: str) -> str:
        """Set of the delegation ids naming ``person`` (canonical) as the delegate."""
        return f"{self.prefix}:delegation:to:{person}"

    def delegations_from(self, person: str) -> str:
        """Set of the delegation ids ``person`` (canonical) gave."""
        return f"{self.prefix}:delegation:from:{person}"

    @property
    def decided(self) -> str:
        """Sorted set request id -> decided time: the inbox's history of decided requests."""
        return f"{self.prefix}:decided"

    # --- rq queue names -----------------------------------------------------------------
    @property
    def urgent_queue(self) -> str:
        """The rq queue workers take first: delivering decisions and refreshing cards, so a
        backlog of card posts never delays an agent's reply."""
        return f"{self.prefix}:urgent"

    @property
    def queue(self) -> str:
        """The rq queue every other Signoff job runs on (and every scheduled one)."""
        return f"{self.prefix}"
