"""SIP for Roost: an RFC 3261 sans-I/O core with SDP, RTP and G.711.

Roost places SIP calls to voice agents (carrying ``X-Simulation-Result-Id``
in the INVITE, bluejay-protocol.md §3) and answers them on the agent side.
This package is the protocol core both ends share. It never touches a socket
or a clock: bytes and explicit time go in; events, bytes to send and timer
deadlines come out. Thin asyncio drivers (UDP and TCP transports, the caller
``CallDriver`` and the agent endpoint) sit on top of it.

Why in-house rather than a library
----------------------------------
Every Python SIP stack we evaluated against SIPp (sip-stack-notes.md §2-§3,
§7) had at least one blocker for this project: a GPL licence (pjsua2,
pyVoIP, rfcvoip); its own event loop or threads instead of asyncio (sippy,
pjsua2, baresip's native thread); no SIP over TCP (sippy, opensip); a Python
floor above 3.11 (voip, sipx); a WebRTC media stack that would not stay on
plain RTP/loopback (sipua); or RFC gaps SIPp exposed within minutes: no ACK
for a 401 so every digest retry failed and no UDP retransmission at all
(aiosipua, the closest fit), a case-sensitive ``transport=UDP`` check that
crashed on BYE (sippy), BYE sent to the wrong target (sipua), an unsolicited
re-INVITE (baresip). Our subset is narrow (one INVITE dialog per call, BYE,
CANCEL, OPTIONS, digest, G.711 offer/answer) but must be exactly right, and a
test tool has to see and report every wire-level detail of the agent under
test, which a sans-I/O core gives for free and lets the tests drive
retransmission timers without sleeping. ``sipmessage`` (BSD) was the one
acceptable parser dependency; it was not needed: this parser handles all 49
RFC 4475 torture messages and parses an INVITE in tens of microseconds
(``benchmarks/sip_parse.py``).

Map of the package
------------------
* :mod:`~roost.sip.message`, :mod:`~roost.sip.headers`, :mod:`~roost.sip.framing`:
  parse/serialise messages, structured headers, TCP stream framing;
* :mod:`~roost.sip.transaction`: the four §17 state machines and their timers;
* :mod:`~roost.sip.dialog`: dialog state, in-dialog requests, call outcomes;
* :mod:`~roost.sip.digest`: digest authentication (client and server);
* :mod:`~roost.sip.core` and :mod:`~roost.sip.events`: :class:`SipCore`, the
  user agent core a driver talks to, and what it emits;
* :mod:`~roost.sip.sdp`, :mod:`~roost.sip.rtp`, :mod:`~roost.sip.g711`: media
  negotiation, RTP packets/jitter buffer/latching/DTMF, the G.711 codec
  (numpy; loaded only when used).

The asyncio drivers (imported on first use of their names):

* :mod:`~roost.sip.transport`: :class:`SipTransport`, UDP and TCP sockets
  around a :class:`SipCore`;
* :mod:`~roost.sip.media`: :class:`RtpSession`, RTP on the shared 20 ms
  ticker with G.711, resampling to 16 kHz, jitter buffer and recording;
* :mod:`~roost.sip.caller`: :class:`SipCaller` (a
  :class:`roost.caller.CallDriver`) configured by :class:`SipCallConfig`;
* :mod:`~roost.sip.endpoint`: :class:`SipEndpoint`, the agent side, which
  gives each handler a :class:`SipCall`.

Example:
    >>> from roost.sip import CoreConfig, SipCore, make_offer
    >>> caller = SipCore(CoreConfig(host="127.0.0.1", port=5062))
    >>> agent = SipCore(CoreConfig(host="127.0.0.1", port=5090))
    >>> call = caller.invite("sip:agent@127.0.0.1:5090", now=0.0,
    ...                      sdp=make_offer("127.0.0.1", 40000),
    ...                      headers=[("X-Simulation-Result-Id", "720488")])
    >>> for out in caller.data_to_send():
    ...     agent.receive_data(out.data, Peer("127.0.0.1", 5062), now=0.01)
    >>> incoming = agent.events_received()[0]
    >>> incoming.request.headers.get("x-simulation-result-id")
    '720488'
    >>> agent.answer(incoming.call, now=0.02, rtp=("127.0.0.1", 50000))
    >>> for out in agent.data_to_send():
    ...     caller.receive_data(out.data, Peer("127.0.0.1", 5090), now=0.03)
    >>> [type(e).__name__ for e in caller.events_received()]
    ['CallProgress', 'CallAnswered']
    >>> call.media.codec, call.state
    ('PCMU', <CallState.CONFIRMED: 'CONFIRMED'>)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from roost.sip.core import CoreConfig, CoreStats, SipCore
from roost.sip.dialog import Dialog, DialogState, EndReason, build_cancel, failure_outcome
from roost.sip.digest import Challenge, Credentials, DigestClient, DigestServer, Verdict
from roost.sip.errors import (
    DigestError,
    InvalidHeaderError,
    RtpError,
    SdpError,
    SipError,
    SipParseError,
    SipStateError,
)
from roost.sip.events import (
    Call,
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallProgress,
    CallState,
    Disconnect,
    Event,
    IncomingCall,
    InDialogRequest,
    MalformedInput,
    OptionsResult,
    Output,
    RequestRejected,
    SessionUpdated,
    Transmit,
)
from roost.sip.framing import KeepAlive, MalformedMessage, StreamFramer
from roost.sip.headers import Address, CSeq, Uri, Via
from roost.sip.message import (
    DEFAULT_LIMITS,
    Headers,
    Limits,
    SipMessage,
    SipRequest,
    SipResponse,
    make_response,
    parse_message,
)
from roost.sip.rtp import (
    DtmfReceiver,
    JitterBuffer,
    JitterStats,
    RtpLatch,
    RtpPacket,
    TelephoneEvent,
    dtmf_payloads,
    pack_rtp,
)
from roost.sip.sdp import (
    MediaDescription,
    NegotiatedMedia,
    SessionDescription,
    answer_offer,
    make_offer,
    media_from_answer,
    negotiate_answer,
)
from roost.sip.transaction import Peer, TimerConfig

if TYPE_CHECKING:
    from roost.sip.caller import SipCallConfig, SipCaller
    from roost.sip.endpoint import SipCall, SipEndpoint
    from roost.sip.g711 import alaw_decode, alaw_encode, decode, encode, ulaw_decode, ulaw_encode
    from roost.sip.media import Playback, RtpSession, RtpStats
    from roost.sip.transport import SipTransport

# G.711 and the media driver need numpy (the ``audio`` extra), the drivers
# asyncio: resolve those names on first use so that the sans-I/O core imports
# without either.
_LAZY = {
    **{
        name: "roost.sip.g711"
        for name in ("alaw_decode", "alaw_encode", "decode", "encode", "ulaw_decode", "ulaw_encode")
    },
    "SipTransport": "roost.sip.transport",
    "RtpSession": "roost.sip.media",
    "RtpStats": "roost.sip.media",
    "Playback": "roost.sip.media",
    "SipCallConfig": "roost.sip.caller",
    "SipCaller": "roost.sip.caller",
    "SipCall": "roost.sip.endpoint",
    "SipEndpoint": "roost.sip.endpoint",
}

__all__ = [
    "DEFAULT_LIMITS",
    "Address",
    "CSeq",
    "Call",
    "CallAnswered",
    "CallConfirmed",
    "CallEnded",
    "CallProgress",
    "CallState",
    "Challenge",
    "CoreConfig",
    "CoreStats",
    "Credentials",
    "Dialog",
    "DialogState",
    "DigestClient",
    "DigestError",
    "DigestServer",
    "Disconnect",
    "DtmfReceiver",
    "EndReason",
    "Event",
    "Headers",
    "InDialogRequest",
    "IncomingCall",
    "InvalidHeaderError",
    "JitterBuffer",
    "JitterStats",
    "KeepAlive",
    "Limits",
    "MalformedInput",
    "MalformedMessage",
    "MediaDescription",
    "NegotiatedMedia",
    "OptionsResult",
    "Output",
    "Peer",
    "Playback",
    "RequestRejected",
    "RtpError",
    "RtpLatch",
    "RtpPacket",
    "RtpSession",
    "RtpStats",
    "SdpError",
    "SessionDescription",
    "SessionUpdated",
    "SipCall",
    "SipCallConfig",
    "SipCaller",
    "SipCore",
    "SipEndpoint",
    "SipError",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipStateError",
    "SipTransport",
    "StreamFramer",
    "TelephoneEvent",
    "TimerConfig",
    "Transmit",
    "Uri",
    "Verdict",
    "Via",
    "alaw_decode",
    "alaw_encode",
    "answer_offer",
    "build_cancel",
    "decode",
    "dtmf_payloads",
    "encode",
    "failure_outcome",
    "make_offer",
    "make_response",
    "media_from_answer",
    "negotiate_answer",
    "pack_rtp",
    "parse_message",
    "ulaw_decode",
    "ulaw_encode",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roost.sip' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
