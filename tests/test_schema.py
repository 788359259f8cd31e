import msgspec
import pytest

from roost.schema import (
    Event,
    Speaker,
    ToolCall,
    TranscriptEntry,
    UpdateSimulationRequest,
    decode_request,
    encode_request,
)
from tests.openapi import UPDATE_REQUEST, assert_valid


def full_request() -> UpdateSimulationRequest:
    return UpdateSimulationRequest(
        simulation_result_id="720488",
        tool_calls=[
            ToolCall(
                name="lookup_order",
                start_offset_ms=1520,
                description="Find an order by number.",
                parameters={"order_id": "A-17"},
                output={"status": "shipped"},
                call_id="c-1",
                end_offset_ms=1610,
                duration_ms=90.25,
                status="ok",
            ),
            ToolCall(
                name="refund",
                start_offset_ms=5000,
                status="error",
                error_type="TimeoutError",
                error_message="gateway timed out",
            ),
        ],
        events=[Event(title="hold", start_offset_ms=2000, end_offset_ms=4000, tags=["hold"])],
        recorded_transcript=[
            TranscriptEntry(
                start_offset_ms=0, end_offset_ms=900, speaker=Speaker.AGENT, utterance="Hi!"
            )
        ],
        tags=["smoke"],
        metadata={"model": "gpt-x"},
        trace_ids=["0af7651916cd43dd8448eb211c80319c"],
    )


def test_full_payload_matches_bluejay_openapi() -> None:
    body = msgspec.json.decode(encode_request(full_request()))
    assert_valid(UPDATE_REQUEST, body)


def test_round_trip() -> None:
    request = full_request()
    assert decode_request(encode_request(request)) == request


def test_minimal_payload_omits_unset_fields() -> None:
    body = encode_request(UpdateSimulationRequest(simulation_result_id="1"))
    assert body == b'{"simulation_result_id":"1"}'


def test_bluejay_client_payload_decodes() -> None:
    # A body as a plain Bluejay client sends it, with explicit nulls.
    raw = (
        b'{"simulation_result_id":"13062","tool_calls":[{"name":"t","start_offset_ms":0,'
        b'"description":null,"parameters":null,"output":null}],"events":null,'
        b'"recorded_transcript":null,"tags":null,"metadata":null}'
    )
    request = decode_request(raw)
    assert request.tool_calls == [ToolCall(name="t", start_offset_ms=0)]


def test_negative_offset_is_refused_with_the_field_path() -> None:
    raw = b'{"simulation_result_id":"1","tool_calls":[{"name":"t","start_offset_ms":-5}]}'
    with pytest.raises(msgspec.ValidationError, match=r"tool_calls\[0\].start_offset_ms"):
        decode_request(raw)


def test_unknown_status_is_refused() -> None:
    raw = (
        b'{"simulation_result_id":"1",'
        b'"tool_calls":[{"name":"t","start_offset_ms":1,"status":"meh"}]}'
    )
    with pytest.raises(msgspec.ValidationError, match="status"):
        decode_request(raw)
