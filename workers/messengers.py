"""Which messengers this deployment has, and where each channel target's cards go."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from bot.web_channel import WebMessenger
from signoff.messenger import Messenger

if TYPE_CHECKING:
    from signoff.runtime import Runtime

log = logging.getLogger(__name__)

# Policy channel kinds -> messenger kind.
CHANNEL_MESSENGER = {
    "slack_channel": "slack",
    "slack_dm": "slack",
    "teams": "teams",
    "web": "web",
}


def build_messengers(rt: Runtime) -> dict[str, Messenger]:
    """The messengers the settings configure (web always; Slack and Teams when set up)."""
    settings = rt.settings
    out: dict[str, Messenger] = {"web": WebMessenger(rt.redis, rt.keys.events)}
    if settings.slack_bot_token is not None:
        # A channel's SDK is imported only when the deployment configures that channel.
        from bot.slack.messenger import SlackMessenger

        out["slack"] = SlackMessenger(settings, rt.hmac_key)
    if settings.microsoft_app_id:
        # A channel's SDK is imported only when the deployment configures that channel.
        from bot.teams.messenger import TeamsMessenger

        out["teams"] = TeamsMessenger(settings, rt)
    return out


def destinations(rt: Runtime, kind: str, target: str) -> list[str]:
    """Concrete destinations for a policy channel target (a DM target expands to people)."""
    if kind == "slack_dm":
        directory = rt.policy.directory
        out = []
        for email in sorted(directory.members(target)):
            person = directory.person(email)
            if person is not None and person.slack_id:
                out.append(person.slack_id)
        return out
    if kind == "web":
        return ["inbox"]
    return [target]
