"""Webhook bodies have Bluejay's shape (events webhook, protocol notes §7.1).

The OpenAPI subset does not carry the ``webhooks`` section, so the two body
schemas are written here from the notes and Bluejay's published example; the
nested ``ToolCall``, ``Event`` and ``Evaluation`` objects are checked against
the OpenAPI components.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
from jsonschema.validators import Draft202012Validator

from roost.platform.webhooks import simulation_ended_body, simulation_result_evaluated_body
from tests.openapi import spec

INT = {"type": "integer"}
TIME = {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]}
DURATION = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}

SIMULATION_ENDED = {
    "type": "object",
    "required": ["type", "id", "digital_human_id", "simulation_run_id", "status"],
    "properties": {
        "type": {"const": "simulation_ended"},
        "id": INT,
        "digital_human_id": INT,
        "simulation_run_id": INT,
        "status": {"type": "string"},
        "created_at": TIME,
        "start_time": TIME,
        "end_time": TIME,
        "duration": DURATION,
    },
}

SIMULATION_RESULT_EVALUATED = {
    "type": "object",
    "required": [
        "type",
        "id",
        "digital_human_id",
        "simulation_run_id",
        "simulation_id",
        "agent_id",
        "status",
    ],
    "properties": {
        "type": {"const": "simulation_result_evaluated"},
        "id": INT,
        "digital_human_id": INT,
        "simulation_run_id": INT,
        "simulation_id": INT,
        "agent_id": INT,
        "status": {"type": "string"},
        "folder_id": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
        "evaluations": {"type": "array", "items": {"$ref": "#/components/schemas/Evaluation"}},
        "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
        "tool_calls": {"type": "array", "items": {"$ref": "#/components/schemas/ToolCall"}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "metadata": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        "created_at": TIME,
        "start_time": TIME,
        "end_time": TIME,
        "duration": DURATION,
    },
}


def assert_body(schema: dict[str, Any], body: dict[str, Any]) -> None:
    # Bodies travel as JSON: validate what a receiver would decode.
    decoded = json.loads(json.dumps(body))
    validator = Draft202012Validator(
        {**schema, "components": spec()["components"]}, format_checker=jsonschema.FormatChecker()
    )
    errors = sorted(validator.iter_errors(decoded), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


START = datetime(2026, 1, 2, 9, 30, tzinfo=UTC)
END = datetime(2026, 1, 2, 9, 33, 12, 250000, tzinfo=UTC)


def test_simulation_ended_body() -> None:
    body = simulation_ended_body(
        result_id=720488,
        digital_human_id=3,
        simulation_run_id=41,
        status="CONVERSATION_ENDED",
        created_at=START,
        start_time=START,
        end_time=END,
    )
    assert_body(SIMULATION_ENDED, body)
    assert body["type"] == "simulation_ended"
    assert body["duration"] == 192_250  # milliseconds, like SimulationResultResponse


def test_simulation_ended_before_the_call_has_times() -> None:
    body = simulation_ended_body(
        result_id=1,
        digital_human_id=1,
        simulation_run_id=1,
        status="CONVERSATION_ENDED",
        created_at=START,
        start_time=None,
        end_time=None,
    )
    assert_body(SIMULATION_ENDED, body)
    assert body["duration"] is None


def test_simulation_result_evaluated_body() -> None:
    body = simulation_result_evaluated_body(
        result_id=720488,
        digital_human_id=3,
        simulation_run_id=41,
        simulation_id=9,
        agent_id=5,
        status="COMPLETED",
        evaluations=[
            {
                "id": "e1",
                "created_at": END.isoformat(),
                "agent_speak_percentage": 41.5,
                "avg_agent_latency": 820.0,
            }
        ],
        events=[{"title": "identity_verified", "start_offset_ms": 5200}],
        tool_calls=[
            {
                "name": "lookup_order",
                "start_offset_ms": 1520,
                "parameters": {"order_id": "A-17"},
                "output": {"status": "shipped"},
                "call_id": "c-1",
                "duration_ms": 212.5,
                "status": "ok",
            }
        ],
        tags=["smoke"],
        metadata={"branch": "main"},
        created_at=START,
        start_time=START,
        end_time=END,
        roost_evaluation={"passed": True, "score": 1.0},
    )
    assert_body(SIMULATION_RESULT_EVALUATED, body)
    assert body["roost"] == {"evaluation": {"passed": True, "score": 1.0}}
