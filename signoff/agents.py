"""Registered agents: their credentials, their Redis ACL users and the registry the intake reads.

An agent's identity is authenticated, never declared. ``signoff agent add NAME`` gives the
agent two credentials:

- a Redis ACL user (``{prefix}-agent-{name}``) confined to the agent's own namespace
  ``{prefix}:agent:{name}:`` (:class:`~signoff.keys.AgentKeys`), printed as a ready Redis URL;
- an API token (``so_a_…``, :mod:`signoff.tokens`) for the HTTP API.

The intake reads every registered agent's own stream and takes the requester from the stream
(:func:`signoff.lifecycle.ingest`), so a body cannot speak for anyone else.

The registry (hash ``{prefix}:agents``) keeps, per agent, the SHA-256 of its Redis password
(Redis ACL accepts ``#<sha256>`` passwords), so ACL users lost with a Redis restart that did
not persist them are re-created from it (:meth:`AgentRegistry.ensure_acl`) without Signoff
ever storing a password.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis

from policy.identity import canonical_agent
from signoff.grant_check import _use_script
from signoff.keys import AGENT_NAME_RE, AgentKeys, Keys, agent_requester
from signoff.tokens import TokenKind, TokenStore

log = logging.getLogger(__name__)

# Every command the agent SDK sends, and nothing else: connect (AUTH/HELLO/CLIENT SETNAME,
# PING, SELECT for a non-zero database), send (XADD), wait (BLPOP), read its decisions
# (XRANGE/XREVRANGE/XREAD) and check a grant (HGET the public key and the revocation,
# EXISTS/GET/SET the use marker, EVALSHA of the use script Signoff loads; Redis checks the
# script's own calls against this same ACL). No KEYS/SCAN, no FLUSH*, no CONFIG, no DEL, no
# LPUSH, no EVAL or SCRIPT LOAD (a script of the agent's own could hold Redis busy), no pub/sub.
CONNECT_COMMANDS = ("+auth", "+hello", "+ping", "+select", "+client|setname")
READ_COMMANDS = ("+get", "+hget", "+exists", "+xrange", "+xrevrange", "+xread")


def redis_major(client: redis.Redis) -> int:
    """The major version of the Redis server behind ``client``."""
    info = client.info("server")
    return int(str(info.get("redis_version", "7")).split(".")[0])


def acl_rules(keys: Keys, name: str, redis_version: int = 7) -> list[str]:
    """The ACL rules of agent ``name`` (without the user name and password).

    Every key pattern ends inside the agent's own namespace ``{prefix}:agent:{name}:`` (an
    agent name holds neither ``:`` nor a glob character, so no pattern reaches another
    agent's keys or Signoff's). On Redis 7 each write command is further confined to the keys
    it is for (selectors; ``%R~`` read-only, ``%W~`` write-only): XADD only to the request and
    report streams, BLPOP only on reply lists, SET and the use script only on use markers.
    Redis 6 has neither, so there the agent may use its commands on any key of its own
    namespace; Signoff treats every key there as untrusted (a wrong type is repaired, never
    fatal), so an agent can only spoil its own requests.
    """
    ak = keys.agent(name)
    head = ["resetkeys", "resetchannels", "-@all"]
    if redis_version < 7:
        return [*head, *CONNECT_COMMANDS, *READ_COMMANDS, "+xadd", "+blpop", "+set",
                "+evalsha", f"~{ak.base}:*"]
    return [
        *head, *CONNECT_COMMANDS, *READ_COMMANDS,
        f"%R~{ak.decisions}", f"%R~{ak.public_keys}", f"%R~{ak.grant('*')}",
        f"%R~{ak.grant_used('*')}",
        f"(+xadd %W~{ak.requests} %W~{ak.grant_reports})",
        f"(+blpop ~{ak.reply('*')})",
        f"(+set ~{ak.grant_used('*')})",
        f"(+evalsha ~{ak.grant_used('*')} ~{ak.grant('*')} ~{ak.grant_reports})",
    ]


def acl_command(keys: Keys, name: str, password_sha256: str, redis_version: int = 7
                ) -> list[str]:
    """The full ``ACL SETUSER`` command for agent ``name`` (what the docs show)."""
    return ["ACL", "SETUSER", keys.acl_user(name), "reset", "on", f"#{password_sha256}",
            *acl_rules(keys, name, redis_version)]


def canonical_name(name: str) -> str:
    """An agent name as given (``export-bot`` or ``agent:export-bot``, any case), canonical.

    Raises:
        ValueError: not a valid agent name.
    """
    name = canonical_agent(name)
    if name.startswith("agent:"):
        name = name[len("agent:"):]
    if not AGENT_NAME_RE.match(name):
        raise ValueError(f"not a valid agent name: {name!r} (lower-case letters, digits, '-' "
                         "and '_', at most 63, starting with a letter or digit)")
    return name


def agent_url(redis_url: str, user: str, password: str) -> str:
    """``redis_url`` with the agent's user and password in it (the rest as given)."""
    parts = urlsplit(redis_url)
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path or "/0", parts.query, ""))


def url_user(redis_url: str) -> str | None:
    """The user name in a Redis URL, or None."""
    user = urlsplit(redis_url).username
    return unquote(user) if user else None


@dataclass(frozen=True)
class AgentInfo:
    """One registered agent."""

    name: str
    acl_user: str
    created_at: float
    rotated_at: float
    token_hash: str

    @property
    def requester(self) -> str:
        return agent_requester(self.name)


@dataclass(frozen=True)
class Credentials:
    """What ``agent add`` and ``agent rotate`` print once (never stored in clear)."""

    name: str
    redis_url: str
    api_token: str


class AgentError(ValueError):
    """An agent operation that cannot be done (unknown agent, already registered...)."""


class AgentRegistry:
    """Add, list, rotate and remove agents; keep their ACL users in place.

    Args:
        client: a str-decoding Redis client whose user may run ``ACL SETUSER`` (Signoff's).
        keys: the deployment's key builder.
    """

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.r = client
        self.keys = keys
        self.tokens = TokenStore(client, keys)

    # --- reads --------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Every registered agent's name (what the intake consumes)."""
        return sorted(n for n in self.r.hkeys(self.keys.agents) if AGENT_NAME_RE.match(n))

    def get(self, name: str) -> AgentInfo | None:
        raw = self.r.hget(self.keys.agents, name)
        if not raw:
            return None
        data = json.loads(raw)
        return AgentInfo(name, data["acl_user"], data["created_at"],
                         data.get("rotated_at", data["created_at"]), data.get("token_hash", ""))

    def list(self) -> list[AgentInfo]:
        return [a for a in (self.get(n) for n in self.names()) if a is not None]

    def is_registered(self, name: str) -> bool:
        return bool(self.r.hexists(self.keys.agents, name))

    # --- writes -------------------------------------------------------------------------
    def _issue(self, name: str, redis_url: str, created_at: float | None) -> Credentials:
        password = secrets.token_urlsafe(32)
        digest = hashlib.sha256(password.encode()).hexdigest()
        self.r.execute_command(*acl_command(self.keys, name, digest, redis_major(self.r)))
        token = self.tokens.create(TokenKind.AGENT, agent_requester(name), label=f"agent {name}")
        now = time.time()
        record = {"acl_user": self.keys.acl_user(name), "password_sha256": digest,
                  "created_at": created_at or now, "rotated_at": now,
                  "token_hash": hashlib.sha256(token.encode()).hexdigest()}
        self.r.hset(self.keys.agents, name, json.dumps(record))
        self._persist_acl()
        sync_public_keys(self.r, self.keys, name)
        load_scripts(self.r)
        return Credentials(name, agent_url(redis_url, self.keys.acl_user(name), password), token)

    def add(self, name: str, redis_url: str) -> Credentials:
        """Register an agent and issue its credentials (printed once).

        Raises:
            AgentError: the name is taken (use :meth:`rotate`).
        """
        name = canonical_name(name)
        if self.is_registered(name):
            raise AgentError(f"agent {name} is already registered (rotate its credentials "
                             "with 'signoff agent rotate')")
        return self._issue(name, redis_url, None)

    def rotate(self, name: str, redis_url: str) -> Credentials:
        """New Redis password and API token; the old ones stop working at once."""
        name = canonical_name(name)
        info = self.get(name)
        if info is None:
            raise AgentError(f"no agent {name}")
        self._revoke_token(info)
        creds = self._issue(name, redis_url, info.created_at)
        # Connections opened with the old password keep their authentication: close them.
        self._kill_connections(name)
        return creds

    def remove(self, name: str) -> bool:
        """Unregister an agent: delete its ACL user, close its connections, revoke its token.
        Its open requests still get decided; it can no longer send or read anything."""
        name = canonical_name(name)
        info = self.get(name)
        if info is None:
            return False
        self._revoke_token(info)
        self.r.hdel(self.keys.agents, name)
        self.r.execute_command("ACL", "DELUSER", self.keys.acl_user(name))
        self._kill_connections(name)
        self._persist_acl()
        return True

    def ensure_acl(self) -> int:
        """Re-create the ACL user of any registered agent Redis lost (a restart without an
        ACL file); returns how many were re-created."""
        present = set(self.r.execute_command("ACL", "USERS"))
        made = 0
        for name in self.names():
            user = self.keys.acl_user(name)
            if user in present:
                continue
            raw = self.r.hget(self.keys.agents, name)
            digest = json.loads(raw or "{}").get("password_sha256")
            if not digest:
                continue
            self.r.execute_command(*acl_command(self.keys, name, digest, redis_major(self.r)))
            made += 1
            log.warning("re-created the Redis ACL user of agent %s", name)
        if made:
            self._persist_acl()
        return made

    def _revoke_token(self, info: AgentInfo) -> None:
        if info.token_hash:
            self.tokens.revoke(info.token_hash)

    def _kill_connections(self, name: str) -> None:
        try:
            self.r.execute_command("CLIENT", "KILL", "USER", self.keys.acl_user(name))
        except redis.ResponseError:
            pass  # no connection (Redis answers an error when none matched)

    def _persist_acl(self) -> None:
        """``ACL SAVE`` when Redis uses an ACL file; otherwise the registry re-creates the
        users after a restart (:meth:`ensure_acl`)."""
        try:
            self.r.execute_command("ACL", "SAVE")
        except redis.ResponseError:
            pass  # no aclfile configured


def agent_keys(keys: Keys, name: str | None) -> AgentKeys | None:
    """The agent's keys, or None for the trusted shared stream."""
    return keys.agent(name) if name else None


def sync_public_keys(r: redis.Redis, keys: Keys, name: str, need: str = "") -> bool:
    """Copy the grant public keys into the agent's namespace (its only way to read them).

    With ``need``, only when that key id is missing there (or the copy is not a hash: the
    agent's own key may hold anything). Returns whether it copied.
    """
    mirror = keys.agent(name).public_keys
    if need and r.type(mirror) == "hash" and r.hexists(mirror, need):
        return False
    public = r.hgetall(keys.public_keys)
    pipe = r.pipeline(transaction=True)
    pipe.delete(mirror)
    if public:
        pipe.hset(mirror, mapping=public)
    pipe.execute()
    return True


def load_scripts(r: redis.Redis) -> str:
    """Load the grant-use script into Redis (agents may EVALSHA it, never load one)."""
    return str(r.script_load(_use_script()))


_acl_refused_logged = False


def refresh(r: redis.Redis, keys: Keys) -> int:
    """Keep every registered agent able to work: its ACL user present, its copy of the public
    keys current, the grant-use script loaded. Run by the intake's sweep; returns how many
    agents are registered."""
    global _acl_refused_logged
    registry = AgentRegistry(r, keys)
    try:
        registry.ensure_acl()
    except redis.ResponseError as exc:  # Signoff's own user may not manage ACLs here
        if not _acl_refused_logged:
            log.warning("cannot check the agents' Redis ACL users (%s): Signoff's Redis user "
                        "needs ACL SETUSER/USERS", exc)
            _acl_refused_logged = True
    names = registry.names()
    for name in names:
        mirror = keys.agent(name).public_keys
        if r.type(mirror) != "hash" or r.hgetall(mirror) != r.hgetall(keys.public_keys):
            sync_public_keys(r, keys, name)
    if names:
        load_scripts(r)
    return len(names)
