"""Where Teams cards can go: conversation references saved on install, or configured.

Teams lets a bot post proactively only where it is installed, and the install
(``conversationUpdate`` / ``installationUpdate``) is when the bot learns how to reach that
team, chat or personal conversation. Each is saved in one Redis hash
(:attr:`signoff.keys.Keys.teams_conversations`):

- ``id:{conversation id}`` -> ``{"reference": …, "names": […], "tenant": …, "type": …}``
- ``name:{name}`` -> conversation id

Names come from the install (the team's name for its General channel, a channel's name
when Teams sends it, a group chat's topic, and the person's email for a personal chat) and
the first conversation to claim a name keeps it: a later install elsewhere cannot redirect
cards meant for another conversation. ``SIGNOFF_TEAMS_CONVERSATIONS`` (``name=conversation
id`` pairs) binds names explicitly and always wins. A policy channel ``{teams: NAME}``
resolves by configured name, then saved name, then conversation id.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from botbuilder.core import TurnContext
from botbuilder.schema import Activity, ConversationReference

from signoff.keys import Keys

log = logging.getLogger(__name__)

_SPACES = re.compile(r"\s+")
MAX_NAMES = 10


def normalize_name(name: str) -> str:
    """How names compare: case-folded, no leading ``#``, inner spaces as ``-``."""
    return _SPACES.sub("-", name.strip().lstrip("#").strip()).casefold()


def parse_configured(text: str) -> dict[str, str]:
    """``"approvals=19:abc@thread.tacv2, ops=a:1xyz"`` -> ``{name: conversation id}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        name, sep, conversation_id = part.partition("=")
        if sep and normalize_name(name) and conversation_id.strip():
            out[normalize_name(name)] = conversation_id.strip()
    return out


@dataclass(frozen=True)
class SavedConversation:
    """One conversation the bot can post to."""

    conversation_id: str
    reference: ConversationReference
    names: tuple[str, ...]
    tenant: str | None
    kind: str


def _channel_id(activity: Activity) -> str | None:
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    channel = data.get("channel")
    if isinstance(channel, dict) and isinstance(channel.get("id"), str):
        return str(channel["id"])
    return None


def conversation_id_of(activity: Activity) -> str | None:
    """The id cards are posted to: a channel's own id, never one thread of it."""
    conversation = activity.conversation
    if conversation is None or not conversation.id:
        return None
    if (conversation.conversation_type or "") == "channel":
        channel = _channel_id(activity)
        if channel:
            return channel
    return str(conversation.id).split(";messageid=")[0]


def names_from(activity: Activity, person_email: str | None) -> list[str]:
    """The names an install or message offers for its conversation."""
    names: list[str] = []
    data = activity.channel_data if isinstance(activity.channel_data, dict) else {}
    kind = (activity.conversation.conversation_type if activity.conversation else "") or ""
    team_raw, channel_raw = data.get("team"), data.get("channel")
    team: dict[str, Any] = team_raw if isinstance(team_raw, dict) else {}
    channel: dict[str, Any] = channel_raw if isinstance(channel_raw, dict) else {}
    conv_id = conversation_id_of(activity)
    if channel.get("name") and channel.get("id") == conv_id:
        names.append(str(channel["name"]))
    if team.get("name") and team.get("id") == conv_id:
        names.append(str(team["name"]))  # a team's id is its General channel's id
    if kind == "groupChat" and activity.conversation and activity.conversation.name:
        names.append(str(activity.conversation.name))
    if kind == "personal" and person_email:
        names.append(person_email)
    out = []
    for name in names:
        norm = normalize_name(name)
        # Only a personal chat may carry a person's email as its name: a team called
        # "alice@example.com" must not catch the cards meant for Alice.
        if "@" in norm and not (kind == "personal" and name == person_email):
            continue
        if norm and norm not in out:
            out.append(norm)
    return out[:MAX_NAMES]


class ConversationBook:
    """Saved and configured Teams conversations.

    Args:
        client: a redis-py client with ``decode_responses=True``.
        keys: the key builder.
        configured: ``SIGNOFF_TEAMS_CONVERSATIONS`` as text.
    """

    def __init__(self, client: redis.Redis, keys: Keys, configured: str = "") -> None:
        self.r = client
        self.key = keys.teams_conversations
        self.configured = parse_configured(configured)

    def save(self, activity: Activity, tenant: str | None,
             person_email: Callable[[], str | None] | None = None) -> SavedConversation | None:
        """Save (or refresh) the reference for the activity's conversation.

        Args:
            activity: an authenticated activity from an allowed tenant.
            tenant: its tenant id.
            person_email: who the user is (for naming personal chats), resolved lazily.

        Returns:
            What was saved, or ``None`` when the activity names no conversation.
        """
        conv_id = conversation_id_of(activity)
        if conv_id is None or not activity.service_url:
            return None
        reference = TurnContext.get_conversation_reference(activity)
        reference.activity_id = None  # post new messages, not replies to this activity
        reference.conversation.id = conv_id
        kind = (activity.conversation.conversation_type or "") if activity.conversation else ""
        if kind != "personal":
            reference.user = None  # a channel or group chat post is addressed to no one
        email = person_email() if (person_email is not None and kind == "personal") else None
        names = names_from(activity, email)
        previous = self.get(conv_id)
        if previous is not None:
            names = list(dict.fromkeys([*previous.names, *names]))[:MAX_NAMES]
        entry = {"reference": reference.serialize(), "names": names, "tenant": tenant,
                 "type": kind, "saved_at": time.time()}
        claimed = []
        for name in names:
            if self.r.hsetnx(self.key, f"name:{name}", conv_id) or self.r.hget(
                    self.key, f"name:{name}") == conv_id:
                claimed.append(name)
            else:
                log.warning("Teams name %r already belongs to another conversation; "
                            "not rebinding it", name)
        entry["names"] = claimed
        self.r.hset(self.key, f"id:{conv_id}", json.dumps(entry))
        return SavedConversation(conv_id, reference, tuple(claimed), tenant, kind)

    def forget(self, activity: Activity) -> bool:
        """Drop the activity's conversation and the names it held (the bot was removed)."""
        conv_id = conversation_id_of(activity)
        if conv_id is None:
            return False
        saved = self.get(conv_id)
        pipe = self.r.pipeline()
        for name in saved.names if saved else ():
            pipe.hget(self.key, f"name:{name}")
        owners = pipe.execute() if saved else []
        pipe = self.r.pipeline()
        for name, owner in zip(saved.names if saved else (), owners, strict=True):
            if owner == conv_id:
                pipe.hdel(self.key, f"name:{name}")
        pipe.hdel(self.key, f"id:{conv_id}")
        removed = pipe.execute()[-1]
        return bool(removed)

    def get(self, conversation_id: str) -> SavedConversation | None:
        """The saved conversation with this id."""
        raw = self.r.hget(self.key, f"id:{conversation_id}")
        if not raw:
            return None
        entry: dict[str, Any] = json.loads(raw)
        reference = ConversationReference.deserialize(entry["reference"])
        return SavedConversation(conversation_id, reference, tuple(entry.get("names", [])),
                                 entry.get("tenant"), entry.get("type", ""))

    def resolve(self, destination: str) -> SavedConversation | None:
        """The conversation a policy target names (configured name, saved name, or id)."""
        name = normalize_name(destination)
        conv_id = self.configured.get(name)
        if conv_id is None:
            conv_id = self.r.hget(self.key, f"name:{name}")
        return self.get(conv_id or destination.strip())

    def names_for(self, conversation_id: str) -> list[str]:
        """Every name that leads to this conversation (configured and saved)."""
        names = [n for n, cid in self.configured.items() if cid == conversation_id]
        saved = self.get(conversation_id)
        if saved is not None:
            names += [n for n in saved.names if n not in self.configured]
        return names
