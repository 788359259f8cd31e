"""Wire schema of the enrichment an agent posts after a call.

These are the request bodies of ``POST /v1/update-simulation-result`` exactly as
Bluejay's public OpenAPI document defines them (``UpdateSimulationRequest``,
``ToolCall``, ``Event``, ``TranscriptEntryRequest``), plus ``trace_ids``, which
Bluejay documents and its own SDK sends but the OpenAPI snapshot lacks.

Roost adds optional fields to :class:`ToolCall` (``call_id``, ``end_offset_ms``,
``duration_ms``, ``status``, ``error_type``, ``error_message``). Bluejay's API is
a FastAPI/pydantic service that ignores unknown keys, so a payload with them is
still valid there; Roost's platform stores them. Every extension is optional, so a
payload built by any Bluejay client is also a valid Roost payload.

The models are ``msgspec`` structs rather than pydantic models because the SDK
must stay cheap to import and to encode inside an agent process; the platform
keeps its own pydantic models for FastAPI, and a test checks both against the
OpenAPI subset.

Example:
    >>> from roost.schema import ToolCall, UpdateSimulationRequest, encode_request
    >>> body = UpdateSimulationRequest(
    ...     simulation_result_id="720488",
    ...     tool_calls=[ToolCall(name="lookup_order", start_offset_ms=1520)],
    ... )
    >>> encode_request(body)
    b'{"simulation_result_id":"720488","tool_calls":[{"name":"lookup_order","start_offset_ms":1520}]}'
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

__all__ = [
    "Event",
    "Speaker",
    "ToolCall",
    "ToolCallStatus",
    "TranscriptEntry",
    "UpdateSimulationRequest",
    "UpdateSimulationResponse",
    "decode_request",
    "encode_request",
]

NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]

ToolCallStatus = Literal["ok", "error"]
"""Outcome of a tool call: ``ok`` when it returned, ``error`` when it raised."""


class Speaker(StrEnum):
    """Who spoke a transcript entry (Bluejay's ``ParticipantRole``)."""

    AGENT = "AGENT"
    USER = "USER"


class ToolCall(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One tool invocation made by the agent during the call.

    Bluejay fields:
        name: Name of the tool called.
        start_offset_ms: Milliseconds from the call's zero point (answer time) to
            the start of the call; never negative.
        description: What the tool does (Roost fills it from the docstring).
        parameters: Arguments the tool was called with, by name.
        output: What the tool returned (any JSON value).

    Roost extensions (optional, ignored by Bluejay):
        call_id: Unique id of this invocation within the call. The platform
            deduplicates tool calls that carry the same id, so re-posting a
            payload never double-counts a call.
        end_offset_ms: Milliseconds from the zero point to the moment the tool
            returned or raised.
        duration_ms: Wall time the tool took, in milliseconds, with sub-millisecond
            precision (``end_offset_ms`` is rounded, this is not).
        status: ``"ok"`` if the tool returned, ``"error"`` if it raised.
        error_type: Qualified name of the exception class when ``status`` is
            ``"error"`` (for example ``"TimeoutError"``).
        error_message: ``str()`` of that exception.

    Example:
        >>> failed = ToolCall(
        ...     name="refund", start_offset_ms=8_000, end_offset_ms=8_450, duration_ms=450.2,
        ...     status="error", error_type="PaymentDeclined", error_message="card expired",
        ... )
        >>> failed.status, failed.duration_ms
        ('error', 450.2)
    """

    name: str
    start_offset_ms: NonNegativeInt
    description: str | None = None
    parameters: dict[str, Any] | None = None
    output: Any = None
    call_id: str | None = None
    end_offset_ms: NonNegativeInt | None = None
    duration_ms: Annotated[float, msgspec.Meta(ge=0)] | None = None
    status: ToolCallStatus | None = None
    error_type: str | None = None
    error_message: str | None = None


class Event(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A business event during the call (hold, transfer, verification passed...).

    Attributes:
        title: Short name of the event.
        start_offset_ms: Milliseconds from the zero point to the start.
        end_offset_ms: Milliseconds from the zero point to the end, if it lasted.
        description: Free text.
        tags: Labels for filtering.
        metadata: Any JSON object of details.

    Example:
        >>> Event(title="transferred to billing", start_offset_ms=31_200, tags=["transfer"])
        Event(title='transferred to billing', start_offset_ms=31200, end_offset_ms=None, \
description=None, tags=['transfer'], metadata=None)
    """

    title: str
    start_offset_ms: int
    end_offset_ms: int | None = None
    description: str | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class TranscriptEntry(msgspec.Struct, omit_defaults=True, kw_only=True):
    """One utterance of the agent's own transcript (``TranscriptEntryRequest``).

    Attributes:
        start_offset_ms: Milliseconds from the zero point to the first word.
        end_offset_ms: Milliseconds from the zero point to the last word.
        speaker: ``AGENT`` or ``USER``.
        utterance: The text as the agent's STT or LLM saw it.
        filler_utterance: Whether this was a filler ("uh-huh", "one moment").

    Example:
        >>> line = TranscriptEntry(
        ...     start_offset_ms=1_200, end_offset_ms=2_900, speaker=Speaker.AGENT,
        ...     utterance="Your order has shipped.",
        ... )
        >>> line.speaker == "AGENT"
        True
    """

    start_offset_ms: int
    end_offset_ms: int
    speaker: Speaker
    utterance: str
    filler_utterance: bool | None = None


class UpdateSimulationRequest(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Body of ``POST /v1/update-simulation-result``.

    Attributes:
        simulation_result_id: The id the call carried in ``X-Simulation-Result-Id``.
        tool_calls: Every tool call of the call, in start order.
        events: Business events.
        recorded_transcript: The agent's own transcript.
        tags: Labels for the whole call.
        metadata: Any JSON object of call context.
        trace_ids: OpenTelemetry trace ids (32 lowercase hex) to link.

    Example:
        >>> UpdateSimulationRequest(simulation_result_id="720488", tags=["smoke"]).tags
        ['smoke']
    """

    simulation_result_id: str
    tool_calls: list[ToolCall] | None = None
    events: list[Event] | None = None
    recorded_transcript: list[TranscriptEntry] | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None
    trace_ids: list[str] | None = None


class UpdateSimulationResponse(msgspec.Struct, kw_only=True):
    """200 body of ``POST /v1/update-simulation-result``.

    Example:
        >>> msgspec.json.decode(b'{"status":"success"}', type=UpdateSimulationResponse)
        UpdateSimulationResponse(status='success', message=None)
    """

    status: str = "success"
    message: str | None = None


_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(UpdateSimulationRequest)


def encode_request(request: UpdateSimulationRequest) -> bytes:
    """Serialise a request body to compact JSON bytes (unset fields left out).

    Example:
        >>> encode_request(UpdateSimulationRequest(simulation_result_id="7", tags=["a"]))
        b'{"simulation_result_id":"7","tags":["a"]}'
    """
    return _encoder.encode(request)


def decode_request(data: bytes | str) -> UpdateSimulationRequest:
    """Parse and validate a request body.

    Raises:
        msgspec.ValidationError: when a field has the wrong type or a required
            field is missing; the message names the field path.
        msgspec.DecodeError: when the bytes are not JSON.

    Example:
        >>> decode_request(b'{"simulation_result_id":"7","tool_calls":[{"name":"x"}]}')
        Traceback (most recent call last):
        ...
        msgspec.ValidationError: Object missing required field `start_offset_ms` - at `$...`
    """
    return _request_decoder.decode(data)
