"""The published request schema is the model's, and other languages can validate with it."""

from __future__ import annotations

import json

import jsonschema

from signoff.models import request_json_schema
from tests.conftest import ROOT

SCHEMA_FILE = ROOT / "schemas" / "request.v1.json"


def test_published_schema_matches_model() -> None:
    published = json.loads(SCHEMA_FILE.read_text())
    assert published == request_json_schema(), "run: python -m signoff.models"


def test_schema_accepts_a_good_request_and_names_bad_fields() -> None:
    schema = json.loads(SCHEMA_FILE.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    good = {"id": "r-1", "action": "db.export", "resource": "t", "requester": "agent:x",
            "params": {"a": [1, 2]}, "context": {"environment": "prod"}}
    assert not list(validator.iter_errors(good))
    bad = {"id": "has space", "action": "", "resource": "t", "requester": "a", "extra": 1}
    fields = {".".join(map(str, e.absolute_path)) or e.validator for e in validator.iter_errors(bad)}
    assert {"id", "action", "additionalProperties"} <= fields


def test_published_v2_schema_matches_model_and_keeps_the_agent_out_of_the_body() -> None:
    """request v2 (a registered agent's own stream): no reply_to, requester optional."""
    from signoff.models import request_v2_json_schema

    published = json.loads((ROOT / "schemas" / "request.v2.json").read_text())
    assert published == request_v2_json_schema(), "run: python -m signoff.models"
    validator = jsonschema.Draft202012Validator(published)
    good = {"id": "r-1", "action": "db.export", "resource": "t", "params": {}}
    assert not list(validator.iter_errors(good))
    bad = {**good, "reply_to": "signoff:reply:x"}
    assert [e.validator for e in validator.iter_errors(bad)] == ["additionalProperties"]
