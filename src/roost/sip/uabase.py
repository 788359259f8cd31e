"""Shared state and plumbing of the SIP user agent core.

:class:`UaBase` owns what both roles of :class:`~roost.sip.core.SipCore` use:
the transaction table and who owns each transaction, the call table, the
outbox of bytes to send and the list of events, one timer heap for every
transaction and call deadline, and the helpers that build Via, Contact, tags,
responses and BYEs. The answering side lives in :mod:`roost.sip.uas`, the
calling side and the driver interface in :mod:`roost.sip.core`.

Deadlines of transactions and calls change all the time (every retransmission
moves one). Rather than searching every object at each step, :class:`_TimerQueue`
keeps a heap of ``(deadline, owner)`` entries and skips an entry when its
owner's current deadline no longer matches: O(log n) per change for the
hundreds of concurrent calls a load test holds.

Example:
    >>> core = UaBase(CoreConfig(host="127.0.0.1", port=5060))
    >>> core.next_deadline() is None, core.data_to_send(), core.events_received()
    (True, [], [])
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from roost.sip.dialog import DialogState, EndReason, peer_for_uri
from roost.sip.errors import InvalidHeaderError, SipParseError, SipStateError
from roost.sip.events import (
    Call,
    CallEnded,
    CallState,
    Event,
    MalformedInput,
    Output,
    RequestRejected,
    Transmit,
)
from roost.sip.framing import StreamFramer
from roost.sip.headers import Address, Uri, Via, header_key, split_list
from roost.sip.message import (
    DEFAULT_LIMITS,
    Headers,
    Limits,
    SipRequest,
    SipResponse,
    make_response,
)
from roost.sip.transaction import (
    ClientNonInviteTransaction,
    Deliver,
    Effect,
    Peer,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Terminated,
    TimedOut,
    TimerConfig,
    Transaction,
    TransactionKey,
    TransportFailed,
)

__all__ = ["ALLOW", "CoreConfig", "CoreStats", "UaBase"]

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO"
NOT_ALLOWED_METHODS = {
    "REGISTER",
    "SUBSCRIBE",
    "NOTIFY",
    "REFER",
    "MESSAGE",
    "PUBLISH",
    "PRACK",
    "UPDATE",
}
RESERVED_HEADERS = {
    "via",
    "from",
    "to",
    "call-id",
    "cseq",
    "contact",
    "content-length",
    "max-forwards",
}
SDP_ACCEPTS = {"application/sdp", "application/*", "*/*"}


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """Configuration of a :class:`SipCore`.

    Attributes:
        host: Our address as written in Via, Contact and From.
        port: Our listening port (UDP, and TCP unless ``tcp_port`` is set).
        tcp_port: Our TCP listening port, when different.
        user: User part of our Contact and From URIs.
        display_name: Display name in From, if any.
        user_agent: ``User-Agent``/``Server`` header value.
        timers: T1, T2, T4 and Timer D.
        ring_timeout: Default seconds to ring before cancelling (``None``: no limit).
        codecs: Codecs we accept in offers, in preference order.
        limits: Message size limits.
        rng: Source of tags, branches and Call-IDs (seeded in tests; a
            ``SystemRandom`` by default).
    """

    host: str
    port: int = 5060
    tcp_port: int | None = None
    user: str = "roost"
    display_name: str | None = None
    user_agent: str = "Roost/0.1"
    timers: TimerConfig = field(default_factory=TimerConfig)
    ring_timeout: float | None = None
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    limits: Limits = DEFAULT_LIMITS
    rng: random.Random | None = None

    def port_for(self, transport: str) -> int:
        """Our listening port for ``transport``."""
        return self.tcp_port if transport != "UDP" and self.tcp_port else self.port


@dataclass(slots=True)
class CoreStats:
    """Counters of a :class:`SipCore` (for logs and load tests)."""

    received: int = 0
    sent: int = 0
    malformed: int = 0
    discarded: int = 0
    calls_in: int = 0
    calls_out: int = 0


@dataclass(slots=True)
class TxOwner:
    """Who a transaction belongs to: ``kind`` is invite, bye, cancel, options..."""

    kind: str
    call: Call | None = None
    request_id: str = ""
    attempts: int = 0


Timed = Transaction | Call


class _TimerQueue:
    """A heap of (deadline, owner); stale entries are skipped lazily."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timed]] = []
        self._counter = itertools.count()

    def schedule(self, owner: Timed) -> None:
        deadline = owner.next_deadline()
        if deadline is not None:
            heapq.heappush(self._heap, (deadline, next(self._counter), owner))

    def peek(self) -> float | None:
        heap = self._heap
        while heap:
            deadline, _, owner = heap[0]
            current = owner.next_deadline()
            if current is not None and current <= deadline:
                return deadline
            heapq.heappop(heap)
            if current is not None:
                heapq.heappush(heap, (current, next(self._counter), owner))
        return None

    def pop_due(self, now: float) -> list[Timed]:
        due: list[Timed] = []
        seen: set[int] = set()
        while (deadline := self.peek()) is not None and deadline <= now:
            _, _, owner = heapq.heappop(self._heap)
            if id(owner) not in seen:
                seen.add(id(owner))
                due.append(owner)
        return due


class UaBase:
    """State and helpers shared by the calling and answering halves of the core.

    Args:
        config: Addresses, timers, codecs and limits.
    """

    def __init__(self, config: CoreConfig) -> None:
        self.config = config
        self.stats = CoreStats()
        self._rng = config.rng if config.rng is not None else random.SystemRandom()
        self._transactions: dict[TransactionKey, Transaction] = {}
        self._owners: dict[TransactionKey, TxOwner] = {}
        self._calls: dict[tuple[str, str], Call] = {}
        self._merged: dict[tuple[str, str, int], Call] = {}
        self._framers: dict[Peer, StreamFramer] = {}
        self._outbox: list[Output] = []
        self._events: list[Event] = []
        self._timers = _TimerQueue()
        self._ids = itertools.count(1)
        self._sent_by = {
            f"{config.host.lower()}:{config.port}",
            f"{config.host.lower()}:{config.port_for('TCP')}",
        }

    def data_to_send(self) -> list[Output]:
        """Bytes to send and connections to close, in order (the list is drained)."""
        out, self._outbox = self._outbox, []
        return out

    def events_received(self) -> list[Event]:
        """Events since the last call (the list is drained)."""
        events, self._events = self._events, []
        return events

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timeout` must next be called, or ``None``."""
        return self._timers.peek()

    def handle_timeout(self, now: float) -> None:
        """Fire every transaction and call timer due at ``now``."""
        for _ in range(1000):
            due = self._timers.pop_due(now)
            if not due:
                return
            for owner in due:
                if isinstance(owner, Transaction):
                    self._process(owner, owner.handle_timeout(now), now)
                else:
                    self._call_timers(owner, now)
                    self._timers.schedule(owner)

    @property
    def calls(self) -> list[Call]:
        """Calls that have not ended."""
        return list(self._calls.values())

    def _add(self, tx: Transaction, owner: TxOwner | None) -> None:
        self._transactions[tx.key] = tx
        if owner is not None:
            self._owners[tx.key] = owner

    def _process(self, tx: Transaction, effects: list[Effect], now: float) -> None:
        for effect in effects:
            if isinstance(effect, Send):
                self._transmit(effect.data, effect.peer)
            elif isinstance(effect, Deliver):
                self._deliver(tx, effect.message, now)
            elif isinstance(effect, TimedOut):
                self._tx_failed(tx, f"Timer {effect.timer}", now)
            elif isinstance(effect, TransportFailed):
                self._tx_failed(tx, effect.detail, now)
            elif isinstance(effect, Terminated):
                self._transactions.pop(tx.key, None)
                self._owners.pop(tx.key, None)
        self._timers.schedule(tx)

    def _send_bye(self, call: Call, now: float, reason: EndReason) -> None:
        if call.dialog is not None:
            bye = call.dialog.request("BYE", via=self._new_via(call.peer.transport))
            tx = ClientNonInviteTransaction(bye, self._dialog_peer(call), self.config.timers, now)
            self._add(tx, TxOwner("bye", call))
            self._process(tx, tx.start(), now)
        self._end(call, reason, now)

    def _end(self, call: Call, reason: EndReason, now: float) -> None:
        if call.ended:
            return
        call.state = CallState.TERMINATED
        call.end = reason
        call.ended_at = now
        call._ring_deadline = call._cancel_deadline = None
        call._ok_next = call._ack_deadline = None
        if call.dialog is not None:
            call.dialog.state = DialogState.TERMINATED
        self._calls.pop((call.call_id, call.local_tag), None)
        if call.role == "uas":
            key = (call.call_id, call.invite.from_.tag or "", call.invite.cseq.seq)
            self._merged.pop(key, None)
        self._events.append(CallEnded(call, reason))

    def _respond(
        self,
        tx: Transaction,
        status: int,
        reason: str | None = None,
        *,
        call: Call | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: bool = False,
        now: float,
    ) -> bytes:
        request = tx.request
        tag = None
        if status > 100 and not request.to.tag:
            tag = call.local_tag if call is not None else self._new_tag()
        extra = [*headers, ("Server", self.config.user_agent)]
        if body and content_type:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(request, status, reason, to_tag=tag, headers=extra, body=body)
        assert isinstance(tx, ServerInviteTransaction | ServerNonInviteTransaction)
        self._process(tx, tx.respond(response, now), now)
        return response.to_bytes()

    def _refuse(
        self,
        tx: Transaction,
        status: int,
        why: str,
        now: float,
        *,
        headers: Iterable[tuple[str, str]] = (),
        allow: bool = False,
    ) -> None:
        extra = list(headers)
        if allow:
            extra.append(("Allow", ALLOW))
        self._respond(tx, status, headers=extra, now=now)
        self._events.append(RequestRejected(tx.request, status, why, tx.peer))

    def _malformed(self, raw: bytes, error: SipParseError, peer: Peer) -> None:
        """Report unparseable input; answer it statelessly when it was a request."""
        self.stats.malformed += 1
        self._events.append(MalformedInput(peer, error))
        response = _stateless_error(raw, error)
        if response is not None:
            self._transmit(response.to_bytes(), peer)
            self._events.append(RequestRejected(None, response.status, error.reason, peer))

    def _transmit(self, data: bytes, peer: Peer) -> None:
        self.stats.sent += 1
        self._outbox.append(Transmit(data, peer))

    def _require(self, call: Call, role: str, state: CallState) -> None:
        if call.role != role or call.state is not state:
            raise SipStateError(
                f"call {call.call_id} is {call.role}/{call.state}, not {role}/{state}"
            )

    def _server_tx(self, call: Call) -> ServerInviteTransaction:
        tx = self._transactions.get(call._server_tx) if call._server_tx is not None else None
        if not isinstance(tx, ServerInviteTransaction):
            raise SipStateError(f"the INVITE transaction of call {call.call_id} is gone")
        return tx

    def _response_peer(self, request: SipRequest, peer: Peer) -> Peer:
        """Where responses go (§18.2.2 with RFC 3581): the source, or sent-by's port."""
        if peer.reliable:
            return peer
        via = request.top_via
        if via.param("rport") is not None:
            return peer
        return Peer(peer.host, via.port if via.port is not None else 5060, peer.transport)

    def _dialog_peer(self, call: Call) -> Peer:
        if call.peer.reliable or call.dialog is None:
            return call.peer
        _, _, hop = call.dialog.next_hop()
        return peer_for_uri(hop, call.peer.transport)

    def _capabilities(self) -> list[tuple[str, str]]:
        return [("Allow", ALLOW), ("Accept", "application/sdp"), ("Accept-Language", "en")]

    def _local_address(self) -> Address:
        uri = Uri("sip", host=self.config.host, user=self.config.user)
        return Address(uri, self.config.display_name)

    def _contact(self, transport: str) -> str:
        port = self.config.port_for(transport)
        suffix = "" if transport == "UDP" else f";transport={transport.lower()}"
        return f"<sip:{self.config.user}@{self.config.host}:{port}{suffix}>"

    def _new_via(self, transport: str) -> str:
        branch = f"z9hG4bK{self._rng.getrandbits(64):016x}"
        port = self.config.port_for(transport)
        return f"SIP/2.0/{transport} {self.config.host}:{port};branch={branch};rport"

    def _new_tag(self) -> str:
        return f"{self._rng.getrandbits(48):012x}"

    def _expect_ack(self, call: Call, wire: bytes, cseq: int, peer: Peer, now: float) -> None:
        call._ok_cseq = cseq
        call._ok_peer = peer
        call._ack_deadline = now + self.config.timers.timeout
        if not peer.reliable:
            call._ok_wire = wire
            call._ok_interval = self.config.timers.t1
            call._ok_next = now + call._ok_interval
        self._timers.schedule(call)

    # Hooks the subclasses implement.

    def _deliver(self, tx: Transaction, message: SipRequest | SipResponse, now: float) -> None:
        raise NotImplementedError

    def _tx_failed(self, tx: Transaction, detail: str, now: float) -> None:
        raise NotImplementedError

    def _call_timers(self, call: Call, now: float) -> None:
        raise NotImplementedError

    def _on_ack(self, ack: SipRequest, now: float) -> None:
        raise NotImplementedError


def _stateless_error(raw: bytes, error: SipParseError) -> SipResponse | None:
    """A best-effort 4xx/5xx for a request that failed to parse (§8.2.6 fields copied)."""
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8", "surrogateescape")
    lines = head.lstrip("\r\n").split("\r\n")
    start = lines[0].split(" ")
    if not lines or start[0].upper().startswith("SIP/") or start[0] == "ACK":
        return None
    wanted = {"via": "Via", "from": "From", "to": "To", "call-id": "Call-ID", "cseq": "CSeq"}
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        key = header_key(name.strip(" \t")) if colon else ""
        if key in wanted:
            items.append((wanted[key], value.strip(" \t")))
    if not {"Via", "From", "To", "Call-ID", "CSeq"} <= {name for name, _ in items}:
        return None
    try:
        # Without a readable Via the answer could not be matched by the peer.
        Via.parse(split_list(next(v for n, v in items if n == "Via"))[0])
    except (SipParseError, IndexError):
        return None
    try:
        reason = f"Bad Request ({error.reason[:100]})" if error.status == 400 else None
        return SipResponse(error.status, reason, Headers(items))
    except InvalidHeaderError:
        return None
