"""schemas/policy.v1.json is the schema the loader uses, and the example satisfies it."""

from __future__ import annotations

import json

import jsonschema
import yaml

from policy.schema import SCHEMA

from .conftest import EXAMPLE, ROOT


def test_schema_file_is_current() -> None:
    on_disk = json.loads((ROOT / "schemas" / "policy.v1.json").read_text())
    assert on_disk == SCHEMA, "run: signoff policy schema > schemas/policy.v1.json"


def test_example_validates_with_a_plain_json_schema_validator() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(yaml.safe_load(EXAMPLE.read_text()), SCHEMA)
