import json

import pytest

from tests.openapi import FIXTURE, REFERENCE, UPDATE_REQUEST, assert_valid, spec


def test_fixture_matches_reference_copy() -> None:
    if not REFERENCE.exists():
        pytest.skip("reference copy ../shared/spec not present on this checkout")
    assert json.loads(FIXTURE.read_text()) == json.loads(REFERENCE.read_text())


def test_validator_rejects_a_bad_payload() -> None:
    # Guards the helper itself: a validator that accepts anything would make
    # every compatibility test pass vacuously.
    with pytest.raises(AssertionError, match="start_offset_ms"):
        assert_valid(
            UPDATE_REQUEST,
            {"simulation_result_id": "1", "tool_calls": [{"name": "x", "start_offset_ms": -1}]},
        )
    with pytest.raises(AssertionError, match="simulation_result_id"):
        assert_valid(UPDATE_REQUEST, {"tool_calls": []})
    assert "paths" in spec()
