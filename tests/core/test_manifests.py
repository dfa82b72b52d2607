"""The platform manifests are valid: ``teams/manifest.json`` against the JSON Schema its own
``$schema`` names, ``slack/manifest.yaml`` against the published Slack app manifest schema
(both schemas copied into tests/data/, see SOURCES.md), with formats checked."""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
import yaml

from tests.conftest import DATA, ROOT


def errors(schema: dict[str, Any], document: Any) -> list[str]:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.path))]


def test_teams_manifest_validates_against_the_schema_it_names() -> None:
    manifest = json.loads((ROOT / "teams" / "manifest.json").read_text())
    named = manifest["$schema"]
    match = re.fullmatch(r"https://developer\.microsoft\.com/en-us/json-schemas/teams/"
                         r"v(\d+\.\d+)/MicrosoftTeams\.schema\.json", named)
    assert match, f"$schema is not a published Teams manifest schema: {named}"
    assert manifest["manifestVersion"] == match.group(1)
    path = DATA / "teams" / f"MicrosoftTeams.v{match.group(1)}.schema.json"
    assert path.exists(), f"copy {named} to {path.relative_to(ROOT)} (and note it in SOURCES.md)"
    assert errors(json.loads(path.read_text()), manifest) == []


def test_slack_manifest_validates_against_the_slack_manifest_schema() -> None:
    manifest = yaml.safe_load((ROOT / "slack" / "manifest.yaml").read_text())
    schema = json.loads((DATA / "slack" / "slack-app-manifest.schema.json").read_text())
    assert errors(schema, manifest) == []
    # Every URL Slack calls is the one route Signoff serves for Slack.
    urls = [c["url"] for c in manifest["features"]["slash_commands"]]
    urls.append(manifest["settings"]["interactivity"]["request_url"])
    assert all(u.endswith("/slack/events") for u in urls), urls


def test_the_schemas_catch_what_they_should() -> None:
    """The check is not vacuous: a property Teams does not know, or a Slack scope of the
    wrong type, is an error."""
    teams = json.loads((ROOT / "teams" / "manifest.json").read_text())
    schema = json.loads((DATA / "teams" / "MicrosoftTeams.v1.17.schema.json").read_text())
    assert errors(schema, {**teams, "packageName": "dev.signoff.teams"})
    slack = yaml.safe_load((ROOT / "slack" / "manifest.yaml").read_text())
    slack["oauth_config"]["scopes"]["bot"] = "chat:write"
    sschema = json.loads((DATA / "slack" / "slack-app-manifest.schema.json").read_text())
    assert errors(sschema, slack)
