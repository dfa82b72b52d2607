"""The Teams app package: a manifest Teams accepts and the two icons it names."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tests.conftest import ROOT

TEAMS = ROOT / "teams"


def png_size(path: Path) -> tuple[int, int, int]:
    """(width, height, colour type) from a PNG's IHDR chunk."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    width, height, _depth, colour = struct.unpack(">IIBB", data[16:26])
    return width, height, colour


def test_manifest_and_icons() -> None:
    manifest = json.loads((TEAMS / "manifest.json").read_text())
    assert manifest["manifestVersion"] == "1.17"
    assert len(manifest["name"]["short"]) <= 30 and len(manifest["description"]["short"]) <= 80
    assert len(manifest["description"]["full"]) <= 4000
    bot = manifest["bots"][0]
    assert bot["botId"] == manifest["id"]  # both are replaced with MICROSOFT_APP_ID
    assert set(bot["scopes"]) == {"personal", "team", "groupChat"}
    commands = bot["commandLists"][0]["commands"]
    assert [c["title"] for c in commands] == ["pending", "status", "mine", "help"]
    assert all(len(c["title"]) <= 32 and len(c["description"]) <= 128 for c in commands)
    assert png_size(TEAMS / manifest["icons"]["color"]) == (192, 192, 6)
    assert png_size(TEAMS / manifest["icons"]["outline"]) == (32, 32, 6)
