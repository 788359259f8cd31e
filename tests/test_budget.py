from __future__ import annotations

import doctest

import msgspec

import roost.budget
from roost.budget import NOTE_KEY, fit_payload
from roost.schema import Event, ToolCall, TranscriptEntry, UpdateSimulationRequest, encode_request
from tests.openapi import UPDATE_REQUEST, assert_valid


def test_doctests() -> None:
    assert doctest.testmod(roost.budget).failed == 0


def _size(request: UpdateSimulationRequest) -> int:
    return len(encode_request(request))


def _valid(request: UpdateSimulationRequest) -> None:
    assert_valid(UPDATE_REQUEST, msgspec.json.decode(encode_request(request)))


def test_a_payload_under_budget_is_untouched() -> None:
    request = UpdateSimulationRequest(
        simulation_result_id="1", tool_calls=[ToolCall(name="a", start_offset_ms=0, output="x")]
    )
    before = encode_request(request)
    assert fit_payload(request, 4096) is False
    assert encode_request(request) == before


def test_largest_outputs_and_parameters_go_first_keeping_names_and_timings() -> None:
    calls = [
        ToolCall(
            name=f"tool{i}",
            start_offset_ms=i * 10,
            end_offset_ms=i * 10 + 5,
            duration_ms=5.0,
            status="ok",
            call_id=f"p-{i}",
            parameters={"q": "p" * (100 * i)},
            output="o" * (1000 * i),
        )
        for i in range(1, 21)
    ]
    request = UpdateSimulationRequest(simulation_result_id="720488", tool_calls=calls)
    limit = 60_000
    assert _size(request) > limit
    assert fit_payload(request, limit) is True
    assert _size(request) <= limit
    _valid(request)
    assert request.tool_calls is not None
    assert [c.name for c in request.tool_calls] == [f"tool{i}" for i in range(1, 21)]
    assert [c.start_offset_ms for c in request.tool_calls] == [i * 10 for i in range(1, 21)]
    assert all(c.status == "ok" and c.end_offset_ms is not None for c in request.tool_calls)
    # The biggest outputs were dropped, the small ones kept.
    assert request.tool_calls[-1].output == "…[dropped 20002 bytes: payload limit]"
    assert request.tool_calls[0].output == "o" * 1000
    assert request.metadata is not None
    cut = request.metadata[NOTE_KEY]["cut"]
    assert cut["limit_bytes"] == limit
    assert cut["bytes_before"] > limit
    assert cut["dropped_values"][0] == {
        "tool_call": "p-20",
        "name": "tool20",
        "field": "output",
        "bytes": 20002,
    }


def test_parameters_and_event_metadata_stay_objects() -> None:
    request = UpdateSimulationRequest(
        simulation_result_id="1",
        tool_calls=[ToolCall(name="t", start_offset_ms=0, parameters={"blob": "b" * 5000})],
        events=[Event(title="e", start_offset_ms=0, metadata={"blob": "m" * 5000})],
        metadata={"context": "c" * 5000, "model": "gpt"},
    )
    fit_payload(request, 2048)
    assert _size(request) <= 2048
    _valid(request)
    assert request.tool_calls is not None and request.events is not None
    assert isinstance(request.tool_calls[0].parameters, dict)
    assert isinstance(request.events[0].metadata, dict)
    assert request.metadata is not None
    assert request.metadata["model"] == "gpt"


def test_transcript_utterances_go_before_entries_are_dropped() -> None:
    request = UpdateSimulationRequest(
        simulation_result_id="1",
        recorded_transcript=[
            TranscriptEntry(
                start_offset_ms=i, end_offset_ms=i + 1, speaker="AGENT", utterance="u" * 400
            )  # type: ignore[arg-type]
            for i in range(20)
        ],
    )
    fit_payload(request, 4096)
    assert _size(request) <= 4096
    assert request.recorded_transcript is not None
    assert len(request.recorded_transcript) == 20
    _valid(request)


def test_whole_entries_are_dropped_only_as_a_last_resort() -> None:
    request = UpdateSimulationRequest(
        simulation_result_id="1",
        tool_calls=[ToolCall(name=f"t{i}", start_offset_ms=i) for i in range(2000)],
        events=[Event(title=f"e{i}", start_offset_ms=i) for i in range(500)],
        tags=[f"tag{i}" for i in range(100)],
    )
    assert _size(request) > 20_000
    fit_payload(request, 20_000)
    assert _size(request) <= 20_000
    _valid(request)
    assert request.metadata is not None
    cut = request.metadata[NOTE_KEY]["cut"]
    assert cut["dropped_events"] == 500
    assert cut["dropped_tool_calls"] > 0
    assert request.tool_calls is not None
    # The earliest tool calls survive.
    assert request.tool_calls[0].name == "t0"


def test_many_cut_values_are_counted_not_all_listed() -> None:
    request = UpdateSimulationRequest(
        simulation_result_id="1",
        tool_calls=[ToolCall(name="t", start_offset_ms=i, output="x" * 300) for i in range(200)],
    )
    fit_payload(request, 16_384)
    assert _size(request) <= 16_384
    assert request.metadata is not None
    cut = request.metadata[NOTE_KEY]["cut"]
    assert len(cut["dropped_values"]) == 50
    assert cut["dropped_values_not_listed"] > 0
