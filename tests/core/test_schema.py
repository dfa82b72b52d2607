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
