"""asyncio UDP and TCP transports around the sans-I/O :class:`~roost.sip.core.SipCore`.

:class:`SipTransport` owns one core and the sockets it speaks through: a UDP
socket and a TCP listener on the same port (when the OS allows it, else the
TCP port is reported separately in Via and Contact), plus outgoing TCP
connections opened on demand. It is the only place that reads the clock for
signalling: every input and command is stamped with ``loop.time()``.

The driving loop has no polling:

* a datagram or TCP chunk goes to :meth:`SipCore.receive_data`;
* after every input, command or timer the transport *pumps*: it writes what
  :meth:`SipCore.data_to_send` returns, hands the events to their owners, and
  re-arms one ``loop.call_at`` for :meth:`SipCore.next_deadline` (only when
  the deadline moved);
* events about a call go to the callback registered with :meth:`watch`
  (the caller and each endpoint call register one); an
  :class:`~roost.sip.events.IncomingCall` goes to ``on_incoming``.

TCP: each connection is keyed by the peer's ``(host, port)`` as the core's
:class:`~roost.sip.transaction.Peer`. A Transmit to a TCP peer without a
connection opens one (bytes written meanwhile are queued); a failed connect
is reported to the core with :meth:`SipCore.transport_error`, a closed one
with :meth:`SipCore.connection_lost`.

Example:
    >>> import asyncio
    >>> from roost.sip import CoreConfig
    >>> from roost.sip.transport import SipTransport
    >>> async def main() -> bool:
    ...     async with SipTransport(CoreConfig(host="127.0.0.1", port=0)) as transport:
    ...         return transport.port > 0 and transport.core.config.port == transport.port
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, cast

from roost.sip.core import SipCore
from roost.sip.events import Call, Disconnect, Event, IncomingCall, Transmit
from roost.sip.transaction import Peer
from roost.sip.uabase import CoreConfig

__all__ = ["EventCallback", "SipTransport"]

logger = logging.getLogger(__name__)

EventCallback = Callable[[Event], None]
"""Receives core events synchronously on the loop; must not block."""

_TRANSPORTS = ("udp", "tcp")
_MAX_TCP_QUEUE = 1 << 20  # bytes buffered for a TCP peer still connecting


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._owner._received(data, Peer(addr[0], addr[1], "UDP"))

    def error_received(self, exc: Exception) -> None:
        # An ICMP error does not say which datagram caused it; the transaction
        # timers cover the loss, so it is only worth a debug line.
        logger.debug("SIP UDP socket error: %s", exc)


class _Tcp(asyncio.Protocol):
    """One TCP connection, accepted or opened by us."""

    def __init__(self, owner: SipTransport, peer: Peer | None = None) -> None:
        self._owner = owner
        self.peer = peer
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        if self.peer is None:
            host, port = transport.get_extra_info("peername")[:2]
            self.peer = Peer(host, port, "TCP")
        self._owner._connected(self)
        for chunk in self.pending:
            self.transport.write(chunk)
        self.pending.clear()
        self.pending_bytes = 0

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.write(data)
        elif self.pending_bytes + len(data) <= _MAX_TCP_QUEUE:
            self.pending.append(data)
            self.pending_bytes += len(data)

    def data_received(self, data: bytes) -> None:
        assert self.peer is not None
        self._owner._received(data, self.peer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._owner._lost(self)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class SipTransport:
    """A :class:`SipCore` wired to asyncio sockets. See the module docstring.

    Args:
        config: Core configuration; ``port`` 0 picks a free port (the core is
            built with the real one once bound).
        transports: Which listeners to open: ``"udp"``, ``"tcp"`` or both.
            Outgoing TCP connections work either way.
        on_incoming: Receives every :class:`IncomingCall` (agent side).
        on_event: Receives events that belong to no watched call.

    Raises:
        ValueError: for an unknown transport name.
    """

    def __init__(
        self,
        config: CoreConfig,
        *,
        transports: Sequence[str] = _TRANSPORTS,
        on_incoming: EventCallback | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        names = tuple(t.lower() for t in transports)
        unknown = [t for t in names if t not in _TRANSPORTS]
        if unknown or not names:
            raise ValueError(f"transports must be a non-empty subset of {_TRANSPORTS}")
        self._config = config
        self.transports = names
        self.on_incoming = on_incoming
        self.on_event = on_event
        self._core: SipCore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        self._tcp: dict[Peer, _Tcp] = {}
        self._watchers: dict[Call, EventCallback] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._pumping = False
        self._closed = False
        self._idle: list[Callable[[], None]] = []

    # Lifecycle.

    @property
    def core(self) -> SipCore:
        """The protocol core (after :meth:`start`)."""
        if self._core is None:
            raise RuntimeError("start() the transport first")
        return self._core

    @property
    def port(self) -> int:
        """Our SIP port (UDP, and TCP unless :attr:`tcp_port` differs)."""
        return self.core.config.port

    @property
    def tcp_port(self) -> int:
        """Our TCP listening port."""
        return self.core.config.port_for("TCP")

    @property
    def host(self) -> str:
        """Our address as written in Via and Contact."""
        return self._config.host

    async def start(self) -> SipTransport:
        """Bind the sockets and build the core. Returns ``self``."""
        if self._loop is not None:
            raise RuntimeError("the transport is already started")
        loop = self._loop = asyncio.get_running_loop()
        host = self._config.host
        port = self._config.port
        tcp_port: int | None = self._config.tcp_port
        try:
            if "udp" in self.transports:
                udp, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self), local_addr=(host, port), family=socket.AF_INET
                )
                self._udp = udp
                port = udp.get_extra_info("sockname")[1]
            if "tcp" in self.transports:
                self._server = await self._listen_tcp(host, tcp_port or port)
                bound = self._server.sockets[0].getsockname()[1]
                tcp_port = None if bound == port else bound
                if "udp" not in self.transports:
                    port, tcp_port = bound, None
            elif self._udp is None:
                raise AssertionError("unreachable: no transport")
        except BaseException:
            self._close_sockets()
            raise
        if self._udp is None:
            # Outgoing UDP still needs a socket (a TCP-only endpoint that is
            # asked to send over UDP, e.g. a response to a misrouted request).
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, 0), family=socket.AF_INET
            )
            self._udp = udp
        self._core = SipCore(replace(self._config, port=port, tcp_port=tcp_port))
        return self

    async def _listen_tcp(self, host: str, port: int) -> asyncio.Server:
        assert self._loop is not None
        try:
            return await self._loop.create_server(
                lambda: _Tcp(self), host, port, family=socket.AF_INET, reuse_address=True
            )
        except OSError:
            if port == 0:
                raise
            # The UDP port is taken for TCP by someone else: use any free one.
            return await self._loop.create_server(
                lambda: _Tcp(self), host, 0, family=socket.AF_INET, reuse_address=True
            )

    async def close(self) -> None:
        """Close every socket and stop the timer (pending transactions are dropped)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        connections = list(self._tcp.values())
        self._close_sockets()
        for conn in connections:
            conn.close()
        if self._server is not None:
            await self._server.wait_closed()
        await asyncio.sleep(0)

    def _close_sockets(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._server is not None:
            self._server.close()

    async def __aenter__(self) -> SipTransport:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Driving the core.

    def now(self) -> float:
        """The core's clock: the loop's monotonic time."""
        assert self._loop is not None
        return self._loop.time()

    def watch(self, call: Call, callback: EventCallback) -> None:
        """Send every event about ``call`` to ``callback`` (until :meth:`unwatch`)."""
        self._watchers[call] = callback

    def unwatch(self, call: Call) -> None:
        """Stop routing events of ``call``."""
        self._watchers.pop(call, None)

    def after_pump(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Run ``callback`` after every pump (e.g. to notice a finished BYE).

        Returns a function that removes it.
        """
        self._idle.append(callback)

        def remove() -> None:
            if callback in self._idle:
                self._idle.remove(callback)

        return remove

    def pump(self) -> None:
        """Send what the core queued, dispatch its events and re-arm its timer.

        Call it after issuing a command on :attr:`core`; inputs and timers pump
        on their own.
        """
        if self._pumping or self._core is None:
            return
        self._pumping = True
        try:
            core = self._core
            while True:
                outputs = core.data_to_send()
                events = core.events_received()
                if not outputs and not events:
                    break
                for output in outputs:
                    if isinstance(output, Transmit):
                        self._send(output.data, output.peer)
                    elif isinstance(output, Disconnect):
                        self._disconnect(output.peer, output.reason)
                for event in events:
                    self._dispatch(event)
            for callback in list(self._idle):
                callback()
        finally:
            self._pumping = False
        self._arm_timer()

    def _dispatch(self, event: Event) -> None:
        call = getattr(event, "call", None)
        if isinstance(event, IncomingCall):
            if self.on_incoming is not None:
                self._safely(self.on_incoming, event)
            else:
                self.core.reject(event.call, self.now(), 480, "No handler")
            return
        callback = self._watchers.get(call) if call is not None else None
        if callback is None:
            callback = self.on_event
        if callback is not None:
            self._safely(callback, event)

    @staticmethod
    def _safely(callback: EventCallback, event: Event) -> None:
        try:
            callback(event)
        except Exception:
            # One broken call handler must not stop signalling for the others.
            logger.exception("SIP event handler failed on %s", type(event).__name__)

    def _arm_timer(self) -> None:
        if self._closed or self._core is None or self._loop is None:
            return
        deadline = self._core.next_deadline()
        if deadline == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self._core is None or self._closed:
            return
        self._core.handle_timeout(self.now())
        self.pump()

    # Sockets.

    def _received(self, data: bytes, peer: Peer) -> None:
        if self._core is None or self._closed:
            return
        self._core.receive_data(data, peer, self.now())
        self.pump()

    def _send(self, data: bytes, peer: Peer) -> None:
        if self._closed:
            return
        if peer.transport == "UDP":
            if self._udp is not None:
                self._udp.sendto(data, (peer.host, peer.port))
            return
        conn = self._tcp.get(peer)
        if conn is None or conn.closed:
            conn = self._tcp[peer] = _Tcp(self, peer)
            assert self._loop is not None
            self._loop.create_task(self._open(conn, peer))
        conn.write(data)

    async def _open(self, conn: _Tcp, peer: Peer) -> None:
        assert self._loop is not None
        try:
            await self._loop.create_connection(lambda: conn, peer.host, peer.port)
        except OSError as exc:
            if self._tcp.get(peer) is conn:
                del self._tcp[peer]
            if self._core is not None and not self._closed:
                self._core.transport_error(peer, self.now(), f"TCP connect failed: {exc}")
                self.pump()

    def _connected(self, conn: _Tcp) -> None:
        assert conn.peer is not None
        if self._closed:
            conn.close()
            return
        self._tcp[conn.peer] = conn

    def _lost(self, conn: _Tcp) -> None:
        peer = conn.peer
        if peer is None or self._tcp.get(peer) is not conn:
            return
        del self._tcp[peer]
        if self._core is not None and not self._closed:
            self._core.connection_lost(peer, self.now())
            self.pump()

    def _disconnect(self, peer: Peer, reason: str) -> None:
        conn = self._tcp.get(peer)
        if conn is not None:
            logger.info("closing SIP TCP connection to %s:%s: %s", peer.host, peer.port, reason)
            conn.close()
