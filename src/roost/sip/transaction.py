"""The four RFC 3261 §17 transaction state machines, sans-I/O.

A transaction is one request and the responses to it, made reliable over an
unreliable transport by retransmission timers. Each machine here takes
messages and the current time in and returns *effects* out: :class:`Send`
(bytes for the driver to put on the wire to a :class:`Peer`), :class:`Deliver`
(a message for the transaction user, i.e. the UA core), :class:`TimedOut` and
:class:`Terminated`. Timers are deadlines: :meth:`Transaction.next_deadline`
says when the machine next needs :meth:`Transaction.handle_timeout`, so tests
drive a whole retransmission schedule without sleeping.

Over a reliable transport (TCP) no retransmission timer is ever started
(Timers A, E and G), and the "wait for stray retransmissions" timers
(D, I, J, K) are zero, exactly as §17 prescribes; the transaction timeouts
(B, F, H) still apply.

Two deliberate choices beyond RFC 3261:

* **RFC 6026 "Accepted" state.** After a 2xx the INVITE transactions do not
  vanish (RFC 3261's original rule, which made a retransmitted INVITE look like
  a new call and dropped retransmitted 2xx): the server absorbs INVITE
  retransmissions for 64*T1 (Timer L) while the UA core retransmits the 2xx
  until the ACK arrives (§13.3.1.4), and the client passes every retransmitted
  2xx up for 64*T1 (Timer M) so the core can re-send its ACK.
* **ACK for non-2xx inside the client transaction** (§17.1.1.3): same branch,
  To tag from the response, built here, re-sent on every retransmitted final
  response. sip-stack-notes §3 found a Python stack that forgot it and failed
  every digest retry against a strict peer.

State tables (event -> effects, next state). "req" is the request being
retransmitted, "fin"/"prov" the last final/provisional response.

Client INVITE (§17.1.1, RFC 6026):

=============  ======================  ===================================
state          event                   effects -> next state
=============  ======================  ===================================
CALLING        Timer A (UDP)           send req, A *= 2 -> CALLING
CALLING        Timer B (64*T1)         TimedOut -> TERMINATED
CALLING/PROC.  1xx                     deliver -> PROCEEDING
CALLING/PROC.  2xx                     deliver, start M -> ACCEPTED
CALLING/PROC.  300-699                 send ACK, deliver, start D -> COMPLETED
COMPLETED      300-699 (retransmit)    send ACK -> COMPLETED
COMPLETED      Timer D (32 s / 0)      -> TERMINATED
ACCEPTED       2xx (retransmit)        deliver (core re-sends ACK) -> ACCEPTED
ACCEPTED       Timer M (64*T1)         -> TERMINATED
=============  ======================  ===================================

Client non-INVITE (§17.1.2):

=============  ======================  ===================================
TRYING         Timer E (UDP)           send req, E = min(2E, T2) -> TRYING
PROCEEDING     Timer E (UDP)           send req, E = T2 -> PROCEEDING
TRYING/PROC.   Timer F (64*T1)         TimedOut -> TERMINATED
TRYING/PROC.   1xx                     deliver -> PROCEEDING
TRYING/PROC.   200-699                 deliver, start K -> COMPLETED
COMPLETED      any response            (absorbed) -> COMPLETED
COMPLETED      Timer K (T4 / 0)        -> TERMINATED
=============  ======================  ===================================

Server INVITE (§17.2.1, RFC 6026):

=============  ======================  ===================================
PROCEEDING     INVITE (retransmit)     send prov -> PROCEEDING
PROCEEDING     TU 1xx                  send -> PROCEEDING
PROCEEDING     TU 2xx                  send, start L -> ACCEPTED
PROCEEDING     TU 300-699              send, start G (UDP), H -> COMPLETED
COMPLETED      INVITE (retransmit)     send fin -> COMPLETED
COMPLETED      Timer G (UDP)           send fin, G = min(2G, T2) -> COMPLETED
COMPLETED      Timer H (64*T1)         TimedOut -> TERMINATED
COMPLETED      ACK                     start I -> CONFIRMED
CONFIRMED      ACK / INVITE            (absorbed) -> CONFIRMED
CONFIRMED      Timer I (T4 / 0)        -> TERMINATED
ACCEPTED       INVITE (retransmit)     (absorbed) -> ACCEPTED
ACCEPTED       TU 2xx (retransmit)     send -> ACCEPTED
ACCEPTED       ACK                     deliver -> ACCEPTED
ACCEPTED       Timer L (64*T1)         -> TERMINATED
=============  ======================  ===================================

Server non-INVITE (§17.2.2):

=============  ======================  ===================================
TRYING         request (retransmit)    (absorbed) -> TRYING
TRYING/PROC.   TU 1xx                  send -> PROCEEDING
PROCEEDING     request (retransmit)    send prov -> PROCEEDING
TRYING/PROC.   TU 200-699              send, start J -> COMPLETED
COMPLETED      request (retransmit)    send fin -> COMPLETED
COMPLETED      Timer J (64*T1 / 0)     -> TERMINATED
=============  ======================  ===================================

Example:
    >>> from roost.sip.message import parse_message
    >>> invite = parse_message(
    ...     b"INVITE sip:a@10.0.0.2 SIP/2.0\\r\\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK7\\r\\n"
    ...     b"From: <sip:c@d>;tag=1\\r\\nTo: <sip:a@b>\\r\\nCall-ID: x\\r\\n"
    ...     b"CSeq: 1 INVITE\\r\\n\\r\\n")
    >>> tx = ClientInviteTransaction(invite, Peer("10.0.0.2", 5060), TimerConfig(), now=0.0)
    >>> [type(e).__name__ for e in tx.start()], tx.next_deadline()
    (['Send'], 0.5)
    >>> [type(e).__name__ for e in tx.handle_timeout(0.5)], tx.next_deadline()
    (['Send'], 1.5)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from roost.sip.errors import SipStateError
from roost.sip.headers import Address
from roost.sip.message import Headers, SipMessage, SipRequest, SipResponse

__all__ = [
    "ClientInviteTransaction",
    "ClientNonInviteTransaction",
    "Deliver",
    "Effect",
    "Peer",
    "Send",
    "ServerInviteTransaction",
    "ServerNonInviteTransaction",
    "Terminated",
    "TimedOut",
    "TimerConfig",
    "Transaction",
    "TransactionKey",
    "TxState",
    "TransportFailed",
    "client_key",
    "server_key",
]

TransactionKey = tuple[object, ...]
"""Hashable transaction identity (see :func:`client_key` and :func:`server_key`)."""


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message goes or came from.

    Attributes:
        host: IP address or host name (the driver resolves names).
        port: Port.
        transport: ``UDP`` or ``TCP`` (upper case). For TCP the driver maps the
            peer to a connection: the one the request arrived on, or a new one.
    """

    host: str
    port: int
    transport: str = "UDP"

    @property
    def reliable(self) -> bool:
        """True for stream transports, which need no retransmission timers."""
        return self.transport != "UDP"


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 timer values, in seconds.

    Attributes:
        t1: RTT estimate; the base of Timers A, E, G and of every 64*T1 timeout.
        t2: Longest retransmission interval for non-INVITE requests and INVITE
            responses.
        t4: How long a message may stay in the network (Timers I and K).
        timer_d: Client wait for retransmitted final responses on UDP (>= 32 s).
    """

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    timer_d: float = 32.0

    def __post_init__(self) -> None:
        if min(self.t1, self.t2, self.t4) <= 0 or self.timer_d < 0 or self.t2 < self.t1:
            raise ValueError(f"invalid timer configuration {self!r}")

    @property
    def timeout(self) -> float:
        """64*T1: Timers B, F, H, J (UDP), L and M."""
        return 64 * self.t1


@dataclass(frozen=True, slots=True)
class Send:
    """Put ``data`` on the wire to ``peer``."""

    data: bytes
    peer: Peer


@dataclass(frozen=True, slots=True)
class Deliver:
    """Pass ``message`` up to the transaction user (the UA core)."""

    message: SipRequest | SipResponse


@dataclass(frozen=True, slots=True)
class TimedOut:
    """The transaction gave up waiting: ``timer`` is ``B``, ``F`` or ``H``."""

    timer: str


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The driver reported that the peer cannot be reached."""

    detail: str


@dataclass(frozen=True, slots=True)
class Terminated:
    """The transaction is over and can be forgotten."""


Effect = Send | Deliver | TimedOut | TransportFailed | Terminated
_TERMINATED = Terminated()


class TxState(StrEnum):
    """Transaction states (RFC 3261 §17 plus RFC 6026's ACCEPTED)."""

    CALLING = "CALLING"
    TRYING = "TRYING"
    PROCEEDING = "PROCEEDING"
    COMPLETED = "COMPLETED"
    CONFIRMED = "CONFIRMED"
    ACCEPTED = "ACCEPTED"
    TERMINATED = "TERMINATED"


def client_key(message: SipMessage) -> TransactionKey:
    """Key matching responses to client transactions (§17.1.3): branch + CSeq method."""
    return ("client", message.top_via.branch or "", message.cseq.method)


def server_key(request: SipRequest, *, method: str | None = None) -> TransactionKey:
    """Key matching requests to server transactions (§17.2.3).

    RFC 3261 requests match on the top Via's branch and sent-by plus the
    method, with ACK matching INVITE. Requests without the magic cookie (RFC
    2543 peers, or RFC 4475's ``badbranch`` with a bare ``z9hG4bK``) fall back
    to Request-URI, From tag, Call-ID, CSeq number and top Via, ignoring the To
    tag so that the ACK of a non-2xx still finds its INVITE.

    Args:
        request: The request.
        method: Override the method (a CANCEL looks up ``INVITE``).
    """
    via = request.top_via
    if method is None:
        method = "INVITE" if request.method == "ACK" else request.method
    if via.rfc3261:
        return ("server", via.branch, via.sent_by, method)
    return (
        "server2543",
        request.uri,
        request.from_.tag or "",
        request.call_id,
        request.cseq.seq,
        str(via),
        method,
    )


class Transaction:
    """Common timer bookkeeping of the four machines."""

    __slots__ = ("_config", "_interval", "key", "peer", "request", "state", "timers")

    initial_state: ClassVar[TxState]

    def __init__(self, request: SipRequest, peer: Peer, config: TimerConfig, key: TransactionKey):
        self.request = request
        self.peer = peer
        self.key = key
        self.state = self.initial_state
        self.timers: dict[str, float] = {}
        self._config = config
        self._interval = config.t1

    @property
    def terminated(self) -> bool:
        """True once the machine reached TERMINATED."""
        return self.state is TxState.TERMINATED

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called, or ``None``."""
        return min(self.timers.values()) if self.timers else None

    def handle_timeout(self, now: float) -> list[Effect]:
        """Fire every timer due at ``now``, earliest first."""
        effects: list[Effect] = []
        while self.timers:
            name, when = min(self.timers.items(), key=lambda item: item[1])
            if when > now:
                break
            del self.timers[name]
            effects.extend(self._on_timer(name, when))
        return effects

    def transport_failed(self, detail: str) -> list[Effect]:
        """The driver could not deliver to :attr:`peer` (§17.1.4, §17.2.4)."""
        if self.terminated:
            return []
        return [TransportFailed(detail), *self._terminate()]

    def _on_timer(self, name: str, when: float) -> list[Effect]:
        raise NotImplementedError

    def _terminate(self) -> list[Effect]:
        self.state = TxState.TERMINATED
        self.timers.clear()
        return [_TERMINATED]

    def _linger(self, name: str, now: float, delay: float) -> list[Effect]:
        """Start a wait-for-stragglers timer, or end now when it is zero (TCP)."""
        if delay <= 0:
            return self._terminate()
        self.timers[name] = now + delay
        return []


class ClientInviteTransaction(Transaction):
    """INVITE client transaction (see the module table)."""

    __slots__ = ("_ack", "_wire")
    initial_state = TxState.CALLING

    def __init__(self, request: SipRequest, peer: Peer, config: TimerConfig, now: float) -> None:
        super().__init__(request, peer, config, client_key(request))
        self._wire = request.to_bytes()
        self._ack: bytes | None = None
        self.timers["B"] = now + config.timeout
        if not peer.reliable:
            self.timers["A"] = now + config.t1

    def start(self) -> list[Effect]:
        """The effects of creating the transaction: send the INVITE."""
        return [Send(self._wire, self.peer)]

    def receive_response(self, response: SipResponse, now: float) -> list[Effect]:
        """Handle a response matched to this transaction."""
        status = response.status
        if self.state in (TxState.CALLING, TxState.PROCEEDING):
            self.timers.pop("A", None)
            self.timers.pop("B", None)
            if status < 200:
                self.state = TxState.PROCEEDING
                return [Deliver(response)]
            if status < 300:
                self.state = TxState.ACCEPTED
                self.timers["M"] = now + self._config.timeout
                return [Deliver(response)]
            self.state = TxState.COMPLETED
            self._ack = build_non2xx_ack(self.request, response).to_bytes()
            delay = 0.0 if self.peer.reliable else self._config.timer_d
            return [Send(self._ack, self.peer), Deliver(response), *self._linger("D", now, delay)]
        if self.state is TxState.COMPLETED and status >= 300 and self._ack is not None:
            return [Send(self._ack, self.peer)]
        if self.state is TxState.ACCEPTED and 200 <= status < 300:
            return [Deliver(response)]
        return []

    def _on_timer(self, name: str, when: float) -> list[Effect]:
        if name == "A" and self.state is TxState.CALLING:
            self._interval *= 2
            self.timers["A"] = when + self._interval
            return [Send(self._wire, self.peer)]
        if name == "B" and self.state is TxState.CALLING:
            return [TimedOut("B"), *self._terminate()]
        if name in ("D", "M"):
            return self._terminate()
        return []


class ClientNonInviteTransaction(Transaction):
    """Non-INVITE client transaction (see the module table)."""

    __slots__ = ("_wire",)
    initial_state = TxState.TRYING

    def __init__(self, request: SipRequest, peer: Peer, config: TimerConfig, now: float) -> None:
        super().__init__(request, peer, config, client_key(request))
        self._wire = request.to_bytes()
        self.timers["F"] = now + config.timeout
        if not peer.reliable:
            self.timers["E"] = now + config.t1

    def start(self) -> list[Effect]:
        """The effects of creating the transaction: send the request."""
        return [Send(self._wire, self.peer)]

    def receive_response(self, response: SipResponse, now: float) -> list[Effect]:
        """Handle a response matched to this transaction."""
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            return []
        if response.status < 200:
            self.state = TxState.PROCEEDING
            return [Deliver(response)]
        self.state = TxState.COMPLETED
        self.timers.pop("E", None)
        self.timers.pop("F", None)
        delay = 0.0 if self.peer.reliable else self._config.t4
        return [Deliver(response), *self._linger("K", now, delay)]

    def _on_timer(self, name: str, when: float) -> list[Effect]:
        if name == "E" and self.state in (TxState.TRYING, TxState.PROCEEDING):
            if self.state is TxState.TRYING:
                self._interval = min(2 * self._interval, self._config.t2)
            else:
                self._interval = self._config.t2
            self.timers["E"] = when + self._interval
            return [Send(self._wire, self.peer)]
        if name == "F" and self.state in (TxState.TRYING, TxState.PROCEEDING):
            return [TimedOut("F"), *self._terminate()]
        if name == "K":
            return self._terminate()
        return []


class _ServerTransaction(Transaction):
    __slots__ = ("_final", "_provisional")

    def __init__(self, request: SipRequest, peer: Peer, config: TimerConfig) -> None:
        super().__init__(request, peer, config, server_key(request))
        self._provisional: bytes | None = None
        self._final: bytes | None = None

    def respond(self, response: SipResponse, now: float) -> list[Effect]:
        """Send a response the TU built for this transaction's request."""
        raise NotImplementedError

    def receive_request(self, request: SipRequest, now: float) -> list[Effect]:
        """Handle a retransmitted request (or, for INVITE, an ACK) matched here."""
        raise NotImplementedError


class ServerInviteTransaction(_ServerTransaction):
    """INVITE server transaction (see the module table)."""

    __slots__ = ()
    initial_state = TxState.PROCEEDING

    def respond(self, response: SipResponse, now: float) -> list[Effect]:
        """Send a provisional or final response to the INVITE.

        Raises:
            SipStateError: when a final response was already sent (other than a
                2xx retransmission in ACCEPTED).
        """
        status = response.status
        wire = response.to_bytes()
        if self.state is TxState.PROCEEDING:
            if status < 200:
                self._provisional = wire
                return [Send(wire, self.peer)]
            self._final = wire
            if status < 300:
                self.state = TxState.ACCEPTED
                self.timers["L"] = now + self._config.timeout
                return [Send(wire, self.peer)]
            self.state = TxState.COMPLETED
            self.timers["H"] = now + self._config.timeout
            if not self.peer.reliable:
                self.timers["G"] = now + self._config.t1
            return [Send(wire, self.peer)]
        if self.state is TxState.ACCEPTED and 200 <= status < 300:
            return [Send(wire, self.peer)]
        raise SipStateError(f"cannot send {status} to an INVITE in state {self.state}")

    def receive_request(self, request: SipRequest, now: float) -> list[Effect]:
        """Absorb or answer an INVITE retransmission; take the ACK of a non-2xx."""
        if request.method == "ACK":
            if self.state is TxState.COMPLETED:
                self.state = TxState.CONFIRMED
                self.timers.pop("G", None)
                self.timers.pop("H", None)
                delay = 0.0 if self.peer.reliable else self._config.t4
                return self._linger("I", now, delay)
            if self.state is TxState.ACCEPTED:
                return [Deliver(request)]
            return []
        if self.state is TxState.PROCEEDING and self._provisional is not None:
            return [Send(self._provisional, self.peer)]
        if self.state is TxState.COMPLETED and self._final is not None:
            return [Send(self._final, self.peer)]
        return []

    def _on_timer(self, name: str, when: float) -> list[Effect]:
        if name == "G" and self.state is TxState.COMPLETED and self._final is not None:
            self._interval = min(2 * self._interval, self._config.t2)
            self.timers["G"] = when + self._interval
            return [Send(self._final, self.peer)]
        if name == "H" and self.state is TxState.COMPLETED:
            return [TimedOut("H"), *self._terminate()]
        if name in ("I", "L"):
            return self._terminate()
        return []


class ServerNonInviteTransaction(_ServerTransaction):
    """Non-INVITE server transaction (see the module table)."""

    __slots__ = ()
    initial_state = TxState.TRYING

    def respond(self, response: SipResponse, now: float) -> list[Effect]:
        """Send a provisional or final response.

        Raises:
            SipStateError: when a final response was already sent.
        """
        if self.state not in (TxState.TRYING, TxState.PROCEEDING):
            raise SipStateError(f"cannot send {response.status} in state {self.state}")
        wire = response.to_bytes()
        if response.status < 200:
            self.state = TxState.PROCEEDING
            self._provisional = wire
            return [Send(wire, self.peer)]
        self.state = TxState.COMPLETED
        self._final = wire
        delay = 0.0 if self.peer.reliable else self._config.timeout
        return [Send(wire, self.peer), *self._linger("J", now, delay)]

    def receive_request(self, request: SipRequest, now: float) -> list[Effect]:
        """Answer a retransmitted request with the last response sent, if any."""
        if self.state is TxState.PROCEEDING and self._provisional is not None:
            return [Send(self._provisional, self.peer)]
        if self.state is TxState.COMPLETED and self._final is not None:
            return [Send(self._final, self.peer)]
        return []

    def _on_timer(self, name: str, when: float) -> list[Effect]:
        if name == "J":
            return self._terminate()
        return []


def build_non2xx_ack(invite: SipRequest, response: SipResponse) -> SipRequest:
    """The ACK for a 300-699 response, built by the transaction (§17.1.1.3).

    Same Request-URI, Call-ID, From and CSeq number as the INVITE; the To of the
    response (with its tag); only the INVITE's top Via (same branch); the
    INVITE's Route headers.
    """
    items: list[tuple[str, str]] = [("Via", invite.headers.get_all("via")[0])]
    items.append(("Max-Forwards", "70"))
    items.extend(("Route", value) for value in invite.headers.get_all("route"))
    items.append(("From", invite.headers.get("from") or ""))
    try:
        to_value = response.headers.get("to") or invite.headers.get("to") or ""
        Address.parse(to_value)
    except ValueError:
        to_value = invite.headers.get("to") or ""
    items.append(("To", to_value))
    items.append(("Call-ID", invite.call_id))
    items.append(("CSeq", f"{invite.cseq.seq} ACK"))
    return SipRequest("ACK", invite.uri, Headers(items))
