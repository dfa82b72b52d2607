"""The app manifest agrees with the code: command name, request URL path, and every scope
the Web API methods Signoff calls need (and no others)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from bot.slack import messenger, web
from tests.conftest import ROOT

MANIFEST = ROOT / "slack" / "manifest.yaml"

# Web API method -> the bot scopes Slack documents for it (any one of a set suffices).
NEEDS = {
    "chat.postMessage": {"chat:write"},
    "chat.update": {"chat:write"},
    "chat.postEphemeral": {"chat:write"},
    "views.open": set(),
    "conversations.join": {"channels:join"},
    "conversations.list": {"channels:read", "groups:read"},
    "conversations.history": {"channels:history", "groups:history", "im:history"},
    "conversations.replies": {"channels:history", "groups:history", "im:history"},
    "conversations.open": {"im:write"},
}


def _methods_called(path: Path) -> set[str]:
    source = path.read_text()
    quoted = set(re.findall(r'"((?:chat|views|conversations)\.[A-Za-z]+)"', source))
    typed = {m.replace("_", ".", 1) for m in re.findall(
        r"\.((?:chat|views|conversations)_[A-Za-z]+)\(", source)}
    return quoted | typed


def test_manifest_matches_the_code() -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == web.COMMAND
    assert command["url"].endswith(web.EVENTS_PATH)
    assert manifest["settings"]["interactivity"]["request_url"].endswith(web.EVENTS_PATH)
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    called = _methods_called(Path(messenger.__file__)) | _methods_called(Path(web.__file__))
    assert called, "no Web API calls found"
    unknown = called - set(NEEDS)
    assert not unknown, f"add the scopes for {unknown} to NEEDS and the manifest"
    needed = set().union(*(NEEDS[m] for m in called)) | {"commands"}
    assert needed <= scopes, needed - scopes
    assert scopes <= needed, f"scopes nothing uses: {scopes - needed}"
