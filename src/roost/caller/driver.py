"""The one interface every call transport implements.

The runner places calls over CHIRP (WebSocket) and SIP (RTP) alike. Both drivers
expose the same five operations, so a test suite, the digital human and the
report never need to know which transport carried the call:

1. :meth:`CallDriver.connect` places the call and returns once it is answered
   (or raises :class:`CallFailed` carrying the final :class:`CallOutcome`);
2. :meth:`CallDriver.play` speaks one utterance of 16 kHz mono ``pcm_s16le``
   audio at real-time pace, and can be cut short by :meth:`CallDriver.interrupt`
   or by the agent barging in;
3. :meth:`CallDriver.agent_stream` yields what the agent sends: audio chunks and
   protocol events, in arrival order, until the call ends;
4. :meth:`CallDriver.hangup` ends the call from our side;
5. :attr:`CallDriver.outcome` is the final record once the call has ended,
   whichever side ended it.

Audio always crosses this interface as 16 kHz mono signed 16-bit little-endian
PCM, the CHIRP wire format; the SIP driver resamples to and from 8 kHz G.711
inside.

Status vocabulary follows Bluejay (``bluejay-protocol.md`` §1.2): the call's
``status`` uses the result-status names a Bluejay user already knows, and
``error_code`` uses Bluejay's per-result error codes (``CALL_REJECTED``,
``NO_ANSWER``, ``WEBSOCKET_AUTH_FAILED``...), with ``bucket`` giving the
dashboard's failure group.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "AgentAudio",
    "AgentEvent",
    "AgentMedia",
    "CallDriver",
    "CallFailed",
    "CallOutcome",
    "CallStatus",
    "FailureBucket",
    "PlayResult",
]

SAMPLE_RATE = 16_000
"""Sample rate of audio crossing the driver interface."""


class CallStatus(StrEnum):
    """How a call ended, in Bluejay's result-status words."""

    COMPLETED = "COMPLETED"
    """The call connected and ended normally, whichever side hung up."""
    INCOMPLETED = "INCOMPLETED"
    """The call never connected, or dropped mid-call."""
    REJECTED = "REJECTED"
    """The agent refused the call (CHIRP 401/403, SIP 486/603 and other declines)."""
    NO_ANSWER = "NO_ANSWER"
    """The agent never answered before the ringing timeout."""


class FailureBucket(StrEnum):
    """Bluejay's failure groups shown beside an unsuccessful result."""

    NO_CONNECTION = "NO_CONNECTION"
    NO_ANSWER = "NO_ANSWER"
    CALL_DROPPED = "CALL_DROPPED"
    SYSTEM_ERROR = "SYSTEM_ERROR"


@dataclass(frozen=True, slots=True)
class AgentAudio:
    """A chunk of the agent's voice.

    Attributes:
        pcm: 16 kHz mono ``pcm_s16le`` samples (even length).
        offset_ms: Milliseconds since the call was answered when it arrived.
    """

    pcm: bytes
    offset_ms: float


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """A protocol event from the agent's side.

    Attributes:
        type: Event name, for CHIRP the envelope ``type`` (``speech.started``,
            ``mark``...), for SIP a signalling event (``bye``, ``dtmf``...).
        data: The event's payload.
        offset_ms: Milliseconds since the call was answered when it arrived.
    """

    type: str
    data: dict[str, Any]
    offset_ms: float


AgentMedia = AgentAudio | AgentEvent


@dataclass(frozen=True, slots=True)
class PlayResult:
    """What happened to one utterance.

    Attributes:
        utterance_id: The id the utterance carried on the wire.
        played_ms: Audio actually sent, in milliseconds.
        interrupted: True when the utterance was cut short (barge-in or
            :meth:`CallDriver.interrupt`) before all of it was sent.
    """

    utterance_id: str
    played_ms: float
    interrupted: bool


@dataclass(slots=True)
class CallOutcome:
    """Final record of one call.

    Attributes:
        status: How the call ended.
        error_code: Bluejay-style error code when the call was not a clean
            completion (``CALL_REJECTED``, ``NO_ANSWER``, ``WEBSOCKET_AUTH_FAILED``...).
        bucket: Failure group for an unsuccessful call.
        detail: Human-readable explanation.
        transport: ``"chirp"`` or ``"sip"``.
        close_code: CHIRP WebSocket close code, when there was one.
        sip_status: Final SIP response code to the INVITE, when there was one.
        setup_ms: Time from starting to connect until the call was answered.
        duration_ms: Time from answer to the end of the call.
        audio_sent_ms: Caller audio sent, in milliseconds of audio.
        audio_received_ms: Agent audio received, in milliseconds of audio.
        ended_by: ``"caller"``, ``"agent"`` or ``None`` when it never connected.
        recording_path: Stereo WAV of both directions, when recording was on.
        events: Every protocol event seen, as ``(offset_ms, direction, type, data)``.
        agent_errors: Errors the agent reported in-band (CHIRP ``session.error``).
    """

    status: CallStatus
    transport: str
    error_code: str | None = None
    bucket: FailureBucket | None = None
    detail: str = ""
    close_code: int | None = None
    sip_status: int | None = None
    setup_ms: float | None = None
    duration_ms: float | None = None
    audio_sent_ms: float = 0.0
    audio_received_ms: float = 0.0
    ended_by: str | None = None
    recording_path: Path | None = None
    events: list[tuple[float, str, str, dict[str, Any]]] = field(default_factory=list)
    agent_errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the call connected and ended normally."""
        return self.status is CallStatus.COMPLETED


class CallFailed(Exception):
    """The call could not be placed or was refused; ``outcome`` says how."""

    def __init__(self, outcome: CallOutcome) -> None:
        super().__init__(f"{outcome.status}: {outcome.error_code or ''} {outcome.detail}".strip())
        self.outcome = outcome


@runtime_checkable
class CallDriver(Protocol):
    """A call in progress over one transport. See the module docstring."""

    async def connect(self) -> None:
        """Place the call and wait until it is answered.

        Raises:
            CallFailed: when the call is refused, unanswered or unreachable.
        """
        ...

    async def play(self, pcm: bytes, *, utterance_id: str | None = None) -> PlayResult:
        """Speak one utterance at real-time pace; returns when sent or interrupted."""
        ...

    def interrupt(self) -> None:
        """Stop the utterance being played, if any, as soon as the current frame ends."""
        ...

    def agent_stream(self) -> AsyncIterator[AgentMedia]:
        """Yield the agent's audio and events until the call ends."""
        ...

    async def hangup(self) -> CallOutcome:
        """End the call from the caller's side and return the outcome."""
        ...

    @property
    def outcome(self) -> CallOutcome | None:
        """The final outcome once the call has ended, else ``None``."""
        ...
