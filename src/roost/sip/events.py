"""What the UA core hands to its driver: calls, events and bytes to send.

:class:`Call` is the core's record of one INVITE session, shared by reference
with the driver: its public attributes are read-only from the driver's point
of view (commands go through :class:`~roost.sip.core.SipCore`).

The call state machine (UAC rows first, then UAS):

============  =================================  ==========================
state         event                              next state
============  =================================  ==========================
CALLING       1xx received                       PROCEEDING
CALLING/PRO.  2xx received (ACK sent)            CONFIRMED
CALLING/PRO.  cancel() / ringing timeout         CANCELLING (CANCEL sent at
                                                 the first 1xx, never before)
CALLING/PRO.  401/407 with credentials           CALLING (new INVITE, once)
any UAC       3xx-6xx, Timer B, transport error  TERMINATED
CANCELLING    487 / 2xx (ACK + BYE) / 64*T1      TERMINATED
INCOMING      ring()                             INCOMING (180 sent)
INCOMING      answer() (2xx sent)                ANSWERED
INCOMING      reject(), CANCEL received          TERMINATED
ANSWERED      ACK received                       CONFIRMED
ANSWERED      no ACK for 64*T1 (BYE sent)        TERMINATED
CONFIRMED     hangup() (BYE sent) / BYE received TERMINATED
============  =================================  ==========================

RFC 3261 §15.1.1 makes a session end as soon as BYE is *sent*, so
:class:`CallEnded` comes at once; the BYE transaction finishes in the
background (its final status lands in :attr:`Call.bye_status`).

Example:
    >>> from roost.sip.transaction import Peer
    >>> Transmit(b"\\r\\n", Peer("127.0.0.1", 5060, "TCP")).peer.reliable
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from roost.sip.dialog import Dialog, EndReason
from roost.sip.errors import SipParseError
from roost.sip.message import SipRequest, SipResponse
from roost.sip.sdp import NegotiatedMedia, SessionDescription
from roost.sip.transaction import Peer, TransactionKey

if TYPE_CHECKING:
    from roost.sip.digest import DigestClient

__all__ = [
    "Call",
    "CallAnswered",
    "CallConfirmed",
    "CallEnded",
    "CallProgress",
    "CallState",
    "Disconnect",
    "Event",
    "InDialogRequest",
    "IncomingCall",
    "MalformedInput",
    "OptionsResult",
    "Output",
    "RequestRejected",
    "SessionUpdated",
    "Transmit",
]


class CallState(StrEnum):
    """States of a :class:`Call` (see the module table)."""

    CALLING = "CALLING"
    PROCEEDING = "PROCEEDING"
    CANCELLING = "CANCELLING"
    INCOMING = "INCOMING"
    ANSWERED = "ANSWERED"
    CONFIRMED = "CONFIRMED"
    TERMINATED = "TERMINATED"


@dataclass(eq=False)
class Call:
    """One call (INVITE session), caller or callee side.

    Attributes:
        call_id: The Call-ID.
        role: ``"uac"`` (we called) or ``"uas"`` (we were called).
        state: Current :class:`CallState`.
        invite: The INVITE: for the callee the one received (every header the
            caller sent is in ``invite.headers``), for the caller the latest sent.
        peer: Where signalling goes: the first hop for the caller, the flow the
            INVITE arrived on for the callee.
        local_tag: Our tag.
        dialog: The dialog once established, else ``None``.
        local_sdp: Our offer or answer.
        remote_sdp: The peer's offer or answer.
        media: The negotiated media once known.
        last_status: Last response status received (caller) or sent (callee).
        end: Why the call ended, once it has.
        started_at: Time the INVITE was sent or received.
        answered_at: Time of the 2xx (sent or received).
        ended_at: Time the call ended.
        auth_attempts: Authenticated INVITE retries made (caller).
        bye_status: Final status of our BYE, when we sent one and it completed.
    """

    call_id: str
    role: str
    state: CallState
    invite: SipRequest
    peer: Peer
    local_tag: str
    started_at: float
    dialog: Dialog | None = None
    local_sdp: SessionDescription | None = None
    remote_sdp: SessionDescription | None = None
    media: NegotiatedMedia | None = None
    last_status: int | None = None
    end: EndReason | None = None
    answered_at: float | None = None
    ended_at: float | None = None
    auth_attempts: int = 0
    bye_status: int | None = None
    # Private bookkeeping of the UA core.
    _invite_tx: TransactionKey | None = field(default=None, repr=False)
    _auth: DigestClient | None = field(default=None, repr=False)
    _cancel_reason: EndReason | None = field(default=None, repr=False)
    _cancel_sent: bool = field(default=False, repr=False)
    _ring_deadline: float | None = field(default=None, repr=False)
    _cancel_deadline: float | None = field(default=None, repr=False)
    _ack_wire: bytes | None = field(default=None, repr=False)
    _ack_peer: Peer | None = field(default=None, repr=False)
    _ok_wire: bytes | None = field(default=None, repr=False)
    _ok_peer: Peer | None = field(default=None, repr=False)
    _ok_cseq: int | None = field(default=None, repr=False)
    _ok_next: float | None = field(default=None, repr=False)
    _ok_interval: float = field(default=0.0, repr=False)
    _ack_deadline: float | None = field(default=None, repr=False)
    _hangup_pending: bool = field(default=False, repr=False)
    _server_tx: TransactionKey | None = field(default=None, repr=False)

    @property
    def ended(self) -> bool:
        """True once the call is over."""
        return self.state is CallState.TERMINATED

    def next_deadline(self) -> float | None:
        """The earliest call-level timer (ringing timeout, 2xx retransmission...)."""
        times = [
            t
            for t in (self._ring_deadline, self._cancel_deadline, self._ok_next, self._ack_deadline)
            if t is not None
        ]
        return min(times) if times else None


@dataclass(frozen=True, slots=True)
class Transmit:
    """Send ``data`` to ``peer`` (UDP datagram, or bytes on the TCP connection)."""

    data: bytes
    peer: Peer


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Close the TCP connection to ``peer`` (its stream framing was lost)."""

    peer: Peer
    reason: str


Output = Transmit | Disconnect


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """An INVITE arrived (100 Trying already sent); ring, answer or reject it.

    Attributes:
        call: The new call.
        request: The INVITE, with every header the caller sent.
        offer: The SDP offer, or ``None`` when the caller expects ours in the 2xx.
    """

    call: Call
    request: SipRequest
    offer: SessionDescription | None


@dataclass(frozen=True, slots=True)
class CallProgress:
    """A provisional response (100, 180, 183...) to our INVITE."""

    call: Call
    response: SipResponse

    @property
    def status(self) -> int:
        """The response status."""
        return self.response.status


@dataclass(frozen=True, slots=True)
class CallAnswered:
    """Our INVITE was answered with a 2xx; the ACK is already sent.

    Attributes:
        call: The call.
        response: The 2xx.
        media: Negotiated media (``None`` without SDP).
    """

    call: Call
    response: SipResponse
    media: NegotiatedMedia | None


@dataclass(frozen=True, slots=True)
class CallConfirmed:
    """The caller ACKed our 2xx: the call is up (callee side)."""

    call: Call
    ack: SipRequest
    media: NegotiatedMedia | None


@dataclass(frozen=True, slots=True)
class SessionUpdated:
    """A re-INVITE changed (or refreshed) the session; we answered 200."""

    call: Call
    request: SipRequest
    media: NegotiatedMedia | None


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The call is over; ``reason`` says how (Bluejay status, error code, bucket)."""

    call: Call
    reason: EndReason


@dataclass(frozen=True, slots=True)
class InDialogRequest:
    """A request inside a call the core answered 200 without acting on (INFO)."""

    call: Call
    request: SipRequest


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """The core answered a request with an error on its own.

    Attributes:
        request: The request (``None`` when it could not be parsed).
        status: The status sent.
        reason: Why.
        peer: Who sent it.
    """

    request: SipRequest | None
    status: int
    reason: str
    peer: Peer


@dataclass(frozen=True, slots=True)
class OptionsResult:
    """The outcome of :meth:`~roost.sip.core.SipCore.options`.

    Attributes:
        request_id: The id ``options()`` returned.
        response: The final response, or ``None`` on timeout or transport error.
        detail: What happened when there is no response.
    """

    request_id: str
    response: SipResponse | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class MalformedInput:
    """Bytes from ``peer`` could not be parsed (and were answered 400 if possible)."""

    peer: Peer
    error: SipParseError


Event = (
    IncomingCall
    | CallProgress
    | CallAnswered
    | CallConfirmed
    | SessionUpdated
    | CallEnded
    | InDialogRequest
    | RequestRejected
    | OptionsResult
    | MalformedInput
)
