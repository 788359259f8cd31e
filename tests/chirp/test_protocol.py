from __future__ import annotations

import json

import pytest

from roost.chirp.protocol import (
    KNOWN_TYPES,
    MAX_TEXT_BYTES,
    ChirpProtocolError,
    Envelope,
    ErrorCode,
    EventType,
    check_audio_frame,
    decode_event,
    encode_event,
    error_event,
    new_id,
)


def decode(text: str | bytes) -> Envelope:
    return decode_event(text, now_ms=1_760_000_000_000, make_id=lambda: "generated")


def rejects(text: str | bytes, code: ErrorCode, fragment: str) -> None:
    with pytest.raises(ChirpProtocolError) as info:
        decode(text)
    assert info.value.code is code
    assert fragment in info.value.message


def test_encode_is_compact_and_decodes_back() -> None:
    text = encode_event("speech.started", {"utterance_id": "dh-1"}, event_id="e1", ts_ms=5)
    assert text == '{"type":"speech.started","id":"e1","ts_ms":5,"data":{"utterance_id":"dh-1"}}'
    envelope = decode(text)
    assert envelope == Envelope("speech.started", "e1", 5, {"utterance_id": "dh-1"})
    assert envelope.known
    assert envelope.encode() == text


def test_ids_are_generated_unique_strings() -> None:
    first = json.loads(encode_event("mark", {"name": "a"}, ts_ms=1))["id"]
    second = json.loads(encode_event("mark", {"name": "a"}, ts_ms=1))["id"]
    assert first != second
    assert len(new_id()) == 36


def test_missing_id_and_ts_are_filled_on_receipt() -> None:
    envelope = decode('{"type":"mark","data":{"name":"greeting"}}')
    assert envelope.id == "generated"
    assert envelope.ts_ms == 1_760_000_000_000


def test_bluejay_style_ids_are_not_validated_as_uuids() -> None:
    assert (
        decode('{"type":"mark","id":"b1-evt-0001","ts_ms":1,"data":{"name":"x"}}').id
        == "b1-evt-0001"
    )


def test_float_timestamps_with_integer_value_are_tolerated() -> None:
    assert (
        decode('{"type":"mark","ts_ms":1760000000000.0,"data":{"name":"x"}}').ts_ms == 1760000000000
    )


def test_every_known_type_and_its_required_fields() -> None:
    assert set(KNOWN_TYPES) == {"speech.started", "speech.completed", "session.error", "mark"}
    for kind, data in [
        (EventType.SPEECH_STARTED, {"utterance_id": "u"}),
        (EventType.SPEECH_COMPLETED, {"utterance_id": "u"}),
        (EventType.SESSION_ERROR, {"code": "INTERNAL_ERROR", "message": "boom"}),
        (EventType.MARK, {"name": "m"}),
    ]:
        assert decode(encode_event(kind, data, ts_ms=1)).data == data
        for field in data:
            partial = {k: v for k, v in data.items() if k != field}
            rejects(encode_event(kind, partial, ts_ms=1), ErrorCode.MISSING_FIELD, f"data.{field}")
            wrong = {**data, field: 7}
            rejects(
                encode_event(kind, wrong, ts_ms=1), ErrorCode.INVALID_MESSAGE, "must be a string"
            )


def test_unknown_types_are_not_errors_here() -> None:
    envelope = decode('{"type":"transfer.requested","id":"x","ts_ms":1,"data":{"to":"+1"}}')
    assert not envelope.known
    assert envelope.data == {"to": "+1"}


def test_extra_fields_are_kept_in_data_and_ignored_in_the_envelope() -> None:
    envelope = decode('{"type":"mark","data":{"name":"x","extra":1},"future":true}')
    assert envelope.data == {"name": "x", "extra": 1}


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("not json", ErrorCode.INVALID_MESSAGE, "not valid JSON"),
        (b"\xff\xfe", ErrorCode.INVALID_MESSAGE, "not valid JSON"),
        ('{"type":"mark","data":{"name":"\\ud800"}}', ErrorCode.INVALID_MESSAGE, "not valid JSON"),
        ("[1, 2]", ErrorCode.INVALID_MESSAGE, "JSON object"),
        ('"mark"', ErrorCode.INVALID_MESSAGE, "JSON object"),
        ('{"data":{}}', ErrorCode.MISSING_FIELD, "'type'"),
        ('{"type":null,"data":{}}', ErrorCode.MISSING_FIELD, "'type'"),
        ('{"type":7,"data":{}}', ErrorCode.INVALID_MESSAGE, "'type'"),
        ('{"type":"","data":{}}', ErrorCode.INVALID_MESSAGE, "'type'"),
        ('{"type":"mark"}', ErrorCode.MISSING_FIELD, "'data'"),
        ('{"type":"mark","data":[]}', ErrorCode.INVALID_MESSAGE, "'data'"),
        ('{"type":"mark","id":5,"data":{"name":"x"}}', ErrorCode.INVALID_MESSAGE, "'id'"),
        ('{"type":"mark","ts_ms":"now","data":{"name":"x"}}', ErrorCode.INVALID_MESSAGE, "'ts_ms'"),
        ('{"type":"mark","ts_ms":true,"data":{"name":"x"}}', ErrorCode.INVALID_MESSAGE, "'ts_ms'"),
        ('{"type":"mark","ts_ms":1.5,"data":{"name":"x"}}', ErrorCode.INVALID_MESSAGE, "'ts_ms'"),
        ("[" * 100_000, ErrorCode.INVALID_MESSAGE, ""),
    ],
)
def test_malformed_text_gets_the_spec_error_code(
    text: str | bytes, code: ErrorCode, fragment: str
) -> None:
    rejects(text, code, fragment)


def test_oversized_text_is_rejected_before_parsing() -> None:
    rejects("x" * (MAX_TEXT_BYTES + 1), ErrorCode.INVALID_MESSAGE, "over")


def test_audio_frame_checks() -> None:
    check_audio_frame(bytes(640))
    check_audio_frame(b"\0\0")
    for frame, fragment in [(b"", "empty"), (b"\0", "1 bytes"), (bytes(641), "641 bytes")]:
        with pytest.raises(ChirpProtocolError) as info:
            check_audio_frame(frame)
        assert info.value.code is ErrorCode.INVALID_AUDIO_FRAME
        assert fragment in info.value.message


def test_error_event_shape() -> None:
    payload = json.loads(error_event(ErrorCode.MISSING_FIELD, "no name", ts_ms=9, event_id="e"))
    assert payload == {
        "type": "session.error",
        "id": "e",
        "ts_ms": 9,
        "data": {"code": "MISSING_FIELD", "message": "no name"},
    }
