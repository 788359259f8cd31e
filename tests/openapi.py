"""Validate JSON values against Bluejay's OpenAPI subset.

The subset is Bluejay's public API description (operations Roost serves and the
schemas they reference). A copy lives in ``tests/fixtures`` so a fresh clone can
run the compatibility tests; when the team's reference copy is present next to
the repository (``../shared/spec``), a test checks that both are identical.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.validators import Draft202012Validator

FIXTURE = Path(__file__).parent / "fixtures" / "bluejay-openapi-subset.json"
REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "spec" / "bluejay-openapi-subset.json"

UPDATE_REQUEST = "src__api__update_simulation_result__UpdateSimulationRequest"


@cache
def spec() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def validator(schema_name: str) -> Draft202012Validator:
    """A JSON Schema validator for ``components.schemas[schema_name]``."""
    document = spec()
    schema = {
        "$ref": f"#/components/schemas/{schema_name}",
        "components": document["components"],
    }
    return Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def assert_valid(schema_name: str, instance: Any) -> None:
    """Fail with every violation listed when ``instance`` does not match."""
    errors = sorted(validator(schema_name).iter_errors(instance), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)
