"""CHIRP v2 wire rules, sans-I/O: the event envelope, validation and error codes.

CHIRP v2 (``bluejay-protocol.md`` §4) carries audio as WebSocket binary frames
of raw 16 kHz mono ``pcm_s16le`` and everything else as UTF-8 JSON text frames
sharing one envelope::

    {"type": "speech.started", "id": "…", "ts_ms": 1760000000000, "data": {"utterance_id": "dh-1"}}

This module turns text frames into :class:`Envelope` objects and back, checks
audio frames, and names each violation with the spec's error code
(:class:`ErrorCode`), so both ends of a call answer bad input the same way.
It reads no clock and touches no socket: the current time comes in as
``now_ms`` and ids come from an injectable factory, which keeps it testable with
plain synchronous tests.

Rules implemented (§4.4, §4.5):

- Audio frames must be non-empty and of even length, else ``INVALID_AUDIO_FRAME``.
- Text must be a JSON object, else ``INVALID_MESSAGE``; ``type`` and ``data`` are
  required (``MISSING_FIELD``), ``id`` and ``ts_ms`` are filled in when absent,
  as Bluejay does on receipt.
- Known types must carry their required ``data`` fields (``MISSING_FIELD``) as
  strings (``INVALID_MESSAGE``).
- An unknown ``type`` is not an error here: :attr:`Envelope.known` is False and
  each side applies its own policy (the platform answers ``INVALID_MESSAGE``,
  agents ignore it).

Example:
    >>> from roost.chirp.protocol import decode_event, encode_event
    >>> text = encode_event("mark", {"name": "greeting"}, event_id="m-1", ts_ms=1760000000000)
    >>> text
    '{"type":"mark","id":"m-1","ts_ms":1760000000000,"data":{"name":"greeting"}}'
    >>> decode_event(text, now_ms=0).data["name"]
    'greeting'
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import msgspec

__all__ = [
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_NORMAL",
    "CLOSE_POLICY_VIOLATION",
    "KNOWN_TYPES",
    "MAX_TEXT_BYTES",
    "REQUIRED_FIELDS",
    "ChirpProtocolError",
    "Envelope",
    "ErrorCode",
    "EventType",
    "check_audio_frame",
    "decode_event",
    "encode_event",
    "error_event",
    "new_id",
]

CLOSE_NORMAL: Final = 1000
"""Normal end of a call, sent by whichever side hangs up."""
CLOSE_POLICY_VIOLATION: Final = 1008
"""Policy violation, typically authentication refused after accepting."""
CLOSE_INTERNAL_ERROR: Final = 1011
"""Internal error on the sender's side, after a ``session.error INTERNAL_ERROR``."""

MAX_TEXT_BYTES: Final = 64 * 1024
"""Largest text frame accepted; CHIRP events are a few hundred bytes."""


class EventType(StrEnum):
    """The four CHIRP v2 event types."""

    SPEECH_STARTED = "speech.started"
    SPEECH_COMPLETED = "speech.completed"
    SESSION_ERROR = "session.error"
    MARK = "mark"


class ErrorCode(StrEnum):
    """Codes of ``session.error`` (§4.5)."""

    INVALID_MESSAGE = "INVALID_MESSAGE"
    """Bad JSON, a field of the wrong type, or an unknown ``type``."""
    MISSING_FIELD = "MISSING_FIELD"
    """A required envelope or ``data`` field is absent."""
    INVALID_AUDIO_FRAME = "INVALID_AUDIO_FRAME"
    """An empty or odd-length binary frame."""
    INTERNAL_ERROR = "INTERNAL_ERROR"
    """The sender failed and will close the connection (code 1011)."""


KNOWN_TYPES: Final = frozenset(EventType)
"""Every event type CHIRP v2 defines."""

REQUIRED_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    EventType.SPEECH_STARTED: ("utterance_id",),
    EventType.SPEECH_COMPLETED: ("utterance_id",),
    EventType.SESSION_ERROR: ("code", "message"),
    EventType.MARK: ("name",),
}
"""Required string fields of ``data`` for each known type."""


class ChirpProtocolError(Exception):
    """A frame broke a CHIRP rule; answer with ``session.error`` and drop the frame.

    Attributes:
        code: The spec's error code for the violation.
        message: Human-readable detail, safe to send back to the peer.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Envelope:
    """One decoded CHIRP text event.

    Attributes:
        type: Event type; may be one this implementation does not know.
        id: Event id (generated on receipt when the sender left it out).
        ts_ms: Sender's Unix time in milliseconds (receipt time when absent).
        data: Type-specific payload.
    """

    type: str
    id: str
    ts_ms: int
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def known(self) -> bool:
        """True for the four CHIRP v2 types."""
        return self.type in KNOWN_TYPES

    def encode(self) -> str:
        """Serialise to the compact JSON text frame."""
        return encode_event(self.type, self.data, event_id=self.id, ts_ms=self.ts_ms)


def new_id() -> str:
    """A fresh event id (a random UUID, as Bluejay uses in practice)."""
    return str(uuid.uuid4())


def encode_event(
    event_type: str,
    data: dict[str, Any],
    *,
    ts_ms: int,
    event_id: str | None = None,
) -> str:
    """Build a text frame for ``event_type``; the id is generated when not given."""
    envelope = {"type": event_type, "id": event_id or new_id(), "ts_ms": ts_ms, "data": data}
    return msgspec.json.encode(envelope).decode()


def error_event(
    code: ErrorCode | str, message: str, *, ts_ms: int, event_id: str | None = None
) -> str:
    """Build a ``session.error`` text frame."""
    return encode_event(
        EventType.SESSION_ERROR,
        {"code": str(code), "message": message},
        ts_ms=ts_ms,
        event_id=event_id,
    )


def check_audio_frame(frame: bytes | bytearray | memoryview) -> None:
    """Accept a binary frame or raise :class:`ChirpProtocolError` (``INVALID_AUDIO_FRAME``)."""
    size = len(frame)
    if size == 0:
        raise ChirpProtocolError(ErrorCode.INVALID_AUDIO_FRAME, "empty audio frame")
    if size % 2:
        raise ChirpProtocolError(
            ErrorCode.INVALID_AUDIO_FRAME,
            f"audio frame of {size} bytes: pcm_s16le needs an even length",
        )


_decoder: Final = msgspec.json.Decoder()


def decode_event(
    text: str | bytes | bytearray | memoryview,
    *,
    now_ms: int,
    make_id: Callable[[], str] = new_id,
) -> Envelope:
    """Parse and validate one text frame.

    Args:
        text: The frame's payload, as text or as UTF-8 bytes.
        now_ms: Receipt time, used when the frame has no ``ts_ms``.
        make_id: Id factory used when the frame has no ``id``.

    Raises:
        ChirpProtocolError: ``INVALID_MESSAGE`` or ``MISSING_FIELD`` as the spec says.
    """
    if len(text) > MAX_TEXT_BYTES:
        raise ChirpProtocolError(
            ErrorCode.INVALID_MESSAGE, f"text frame over {MAX_TEXT_BYTES} bytes"
        )
    try:
        raw = _decoder.decode(text)
        # JSON may smuggle lone surrogates in \u escapes; they cannot be
        # re-encoded, so an event carrying them could never be echoed or stored.
        msgspec.json.encode(raw)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise ChirpProtocolError(ErrorCode.INVALID_MESSAGE, f"not valid JSON: {exc}") from None
    except RecursionError:
        raise ChirpProtocolError(ErrorCode.INVALID_MESSAGE, "JSON nested too deeply") from None
    if not isinstance(raw, dict):
        raise ChirpProtocolError(ErrorCode.INVALID_MESSAGE, "a CHIRP event must be a JSON object")
    event_type = raw.get("type")
    if event_type is None:
        raise ChirpProtocolError(ErrorCode.MISSING_FIELD, "missing field 'type'")
    if not isinstance(event_type, str) or not event_type:
        raise ChirpProtocolError(ErrorCode.INVALID_MESSAGE, "'type' must be a non-empty string")
    data = raw.get("data")
    if data is None:
        raise ChirpProtocolError(ErrorCode.MISSING_FIELD, f"missing field 'data' in {event_type}")
    if not isinstance(data, dict):
        raise ChirpProtocolError(ErrorCode.INVALID_MESSAGE, "'data' must be a JSON object")
    event_id = raw.get("id")
    if event_id is None:
        event_id = make_id()
    elif not isinstance(event_id, str):
        raise ChirpProtocolError(ErrorCode.INVALID_MESSAGE, "'id' must be a string")
    ts_ms = raw.get("ts_ms")
    if ts_ms is None:
        ts_ms = now_ms
    elif isinstance(ts_ms, float) and ts_ms.is_integer():
        ts_ms = int(ts_ms)  # tolerate 1760000000000.0 from JavaScript senders
    elif isinstance(ts_ms, bool) or not isinstance(ts_ms, int):
        raise ChirpProtocolError(ErrorCode.INVALID_MESSAGE, "'ts_ms' must be an integer")
    for name in REQUIRED_FIELDS.get(event_type, ()):
        value = data.get(name)
        if value is None:
            raise ChirpProtocolError(
                ErrorCode.MISSING_FIELD, f"missing field 'data.{name}' in {event_type}"
            )
        if not isinstance(value, str):
            raise ChirpProtocolError(
                ErrorCode.INVALID_MESSAGE, f"'data.{name}' in {event_type} must be a string"
            )
    return Envelope(type=event_type, id=event_id, ts_ms=ts_ms, data=data)
