"""CHIRP v2 over WebSocket: the sans-I/O protocol core, the platform's caller, the agent's server.

- :mod:`roost.chirp.protocol`: envelope, validation and error codes (sans-I/O).
- :mod:`roost.chirp.playout`: playout and pacing models behind marks and lead (sans-I/O).
- :mod:`roost.chirp.caller`: :class:`ChirpCaller`, the :class:`~roost.caller.CallDriver`
  that places calls to web-based agents, over :mod:`roost.chirp.wsclient`.
- :mod:`roost.chirp.session`: :class:`ChirpSession`, the agent's view of a call.
- :mod:`roost.chirp.server`: :func:`serve` on the ``websockets`` asyncio server.
- :mod:`roost.chirp.asgi`: :class:`ChirpASGIApp` / :func:`chirp_route` for
  Starlette and FastAPI apps.

Needs the ``agent`` extra (websockets) and, for the caller, ``audio``.

Example:
    >>> from roost.chirp import EventType, encode_event
    >>> encode_event(EventType.MARK, {"name": "hi"}, event_id="1", ts_ms=0)
    '{"type":"mark","id":"1","ts_ms":0,"data":{"name":"hi"}}'
"""

from __future__ import annotations

from roost.chirp.asgi import ChirpASGIApp, chirp_route
from roost.chirp.auth import BasicAuth
from roost.chirp.caller import ChirpCaller, FrameCallback
from roost.chirp.playout import Pacer, PlayoutClock
from roost.chirp.protocol import (
    ChirpProtocolError,
    Envelope,
    ErrorCode,
    EventType,
    check_audio_frame,
    decode_event,
    encode_event,
    error_event,
)
from roost.chirp.server import ChirpServer, serve
from roost.chirp.session import (
    CallerAudio,
    CallerEvent,
    CallerMedia,
    ChirpHandler,
    ChirpSession,
    RecorderFactory,
    default_recorder,
)

__all__ = [
    "BasicAuth",
    "CallerAudio",
    "CallerEvent",
    "CallerMedia",
    "ChirpASGIApp",
    "ChirpCaller",
    "ChirpHandler",
    "ChirpProtocolError",
    "ChirpServer",
    "ChirpSession",
    "Envelope",
    "ErrorCode",
    "EventType",
    "FrameCallback",
    "Pacer",
    "PlayoutClock",
    "RecorderFactory",
    "check_audio_frame",
    "chirp_route",
    "decode_event",
    "default_recorder",
    "encode_event",
    "error_event",
    "serve",
]
