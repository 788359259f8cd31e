"""A thin asyncio transport for websockets' sans-I/O WebSocket client.

The CHIRP caller must write a frame for every call on every 20 ms tick, hundreds
of calls at a time. websockets' high-level asyncio client makes each send a
coroutine with a lock and a drain; here a plain :class:`asyncio.Protocol` owns a
:class:`websockets.client.ClientProtocol`, so a tick writes a frame with one
synchronous call (serialise + ``transport.write``) and no task or await.

This module knows WebSocket, not CHIRP: it performs the opening handshake,
reassembles fragmented messages, answers pings (the sans-I/O core does) and
runs the closing handshake with a timeout. Everything it learns goes to a
:class:`WsListener`.

Fast path. At 500 calls the caller moves 25,000 frames a second each way, and
websockets' general frame machinery (generator parser, ``Frame`` objects, a
``getrandom`` call per mask) cost about 9 µs per frame in each direction,
which alone used most of a core. So, once the connection is open and no
extension was negotiated (we offer none), the two cases that carry the audio
take a short path of their own, and websockets keeps everything else:

- sending a binary message writes a precomputed header, a mask drawn from a
  pooled ``os.urandom`` buffer and websockets' C ``apply_mask`` in one write;
- receiving splits the byte stream at frame boundaries itself. A final,
  unmasked text or binary frame without reserved bits and within the size
  limit goes straight to the listener; a complete control frame (ping, pong,
  close) is handed to websockets on its own, so its parser is always at a
  frame boundary and answers pings and closes as usual; anything else
  (fragments, reserved bits, masking, oversize, bytes after a close) switches
  the connection to websockets' parser for good, which then applies every
  rule of RFC 6455 and fails the connection where it must.

The opening handshake is split off the same way: the HTTP response head (up
to the blank line) goes to websockets alone and the bytes after it, which may
already hold the agent's first frames, go to the frame splitter.

Example:
    >>> import asyncio
    >>> from roost.chirp.wsclient import open_websocket
    >>> async def main() -> str:
    ...     try:
    ...         await open_websocket("ws://127.0.0.1:9/", None, open_timeout=1.0)
    ...     except OSError as exc:
    ...         return type(exc).__name__
    ...     return "connected"
    >>> asyncio.run(main())
    'ConnectionRefusedError'
"""

from __future__ import annotations

import asyncio
import os
import ssl as ssl_module
from collections.abc import Mapping
from typing import Protocol, cast

from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import WebSocketURI, parse_uri

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - pure-Python websockets build
    from websockets.utils import apply_mask

__all__ = [
    "HandshakeError",
    "HandshakeRejected",
    "WsClientConnection",
    "WsListener",
    "open_websocket",
]

_TEXT = Opcode.TEXT
_BINARY = Opcode.BINARY
_CONT = Opcode.CONT
_CLOSE = Opcode.CLOSE
_OPEN = State.OPEN
_CONNECTING = State.CONNECTING
_MAX_RESPONSE_HEAD = 64 * 1024
_FINAL_NO_RSV = 0x80
_MASK_POOL_BYTES = 64 * 1024


class _MaskPool:
    """Masking keys cut from one large ``os.urandom`` read instead of one syscall each."""

    __slots__ = ("_data", "_pos")

    def __init__(self) -> None:
        self._data = b""
        self._pos = 0

    def take(self) -> bytes:
        pos = self._pos
        if pos + 4 > len(self._data):
            self._data = os.urandom(_MASK_POOL_BYTES)
            pos = 0
        self._pos = pos + 4
        return self._data[pos : pos + 4]


_masks = _MaskPool()
_headers_by_size: dict[int, bytes] = {}


def _binary_header(size: int) -> bytes:
    """FIN + binary opcode, MASK bit and the payload length, as RFC 6455 §5.2 lays out."""
    header = _headers_by_size.get(size)
    if header is None:
        if size < 126:
            header = bytes((0x82, 0x80 | size))
        elif size < 1 << 16:
            header = bytes((0x82, 0xFE)) + size.to_bytes(2, "big")
        else:
            header = bytes((0x82, 0xFF)) + size.to_bytes(8, "big")
        if len(_headers_by_size) < 64:
            _headers_by_size[size] = header
    return header


class HandshakeRejected(Exception):
    """The server answered the upgrade with an HTTP status other than 101.

    Attributes:
        status: The HTTP status code.
        reason: The reason phrase.
        headers: Response headers (lower-case names).
    """

    def __init__(self, status: int, reason: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status
        self.reason = reason
        self.headers = dict(headers)


class HandshakeError(Exception):
    """The server's answer was not a valid WebSocket handshake."""


class WsListener(Protocol):
    """Receives what a :class:`WsClientConnection` learns after the handshake."""

    def on_open(self, connection: WsClientConnection, response: Response) -> None:
        """The handshake succeeded; called before any message of the connection."""
        ...

    def on_message(self, payload: bytes, text: bool) -> None:
        """A complete message arrived (text frames as raw UTF-8 bytes)."""
        ...

    def on_close_frame(self, code: int, reason: str) -> None:
        """The server sent a close frame (it has been answered already)."""
        ...

    def on_connection_lost(self, code: int, reason: str, clean: bool) -> None:
        """The TCP connection is gone; ``clean`` if the closing handshake completed."""
        ...


class WsClientConnection(asyncio.Protocol):
    """asyncio adapter around one :class:`~websockets.client.ClientProtocol`.

    Args:
        uri: Parsed ``ws://`` or ``wss://`` URI.
        listener: Receives the connection's events from the handshake on.
        headers: Extra upgrade request headers; ``Authorization`` here replaces
            credentials embedded in the URI.
        max_size: Largest incoming message in bytes.
        close_timeout: Seconds to wait for the server to close TCP after the
            closing handshake before aborting the connection.
    """

    def __init__(
        self,
        uri: WebSocketURI,
        listener: WsListener | None,
        headers: Mapping[str, str],
        *,
        max_size: int = 2**20,
        close_timeout: float = 2.0,
    ) -> None:
        self.protocol = ClientProtocol(uri, max_size=max_size)
        self.max_size = max_size
        self._headers = dict(headers)
        self.close_timeout = close_timeout
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.response: Response | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self.opened: asyncio.Future[Response] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._fragments: list[bytes] = []
        self._fragment_text = False
        self._abort_handle: asyncio.TimerHandle | None = None
        self._head = b""  # HTTP response bytes until the blank line
        self._rx = b""  # bytes of an incomplete frame, fast path only
        self._fast = False  # set once open without extensions

    # Public methods for sending, all synchronous.

    @property
    def is_open(self) -> bool:
        """True while messages can be sent."""
        return self.protocol.state is _OPEN and self.transport is not None

    def send_binary(self, payload: bytes) -> bool:
        """Send one binary message now; returns False if the connection is not open."""
        protocol = self.protocol
        if protocol.state is not _OPEN:
            return False
        transport = self.transport
        if self._fast and transport is not None:
            mask = _masks.take()
            transport.write(_binary_header(len(payload)) + mask + apply_mask(payload, mask))
            return True
        protocol.send_binary(payload)
        self._flush()
        return True

    def send_text(self, text: str) -> bool:
        """Send one text message now; returns False if the connection is not open."""
        protocol = self.protocol
        if protocol.state is not _OPEN:
            return False
        protocol.send_text(text.encode())
        self._flush()
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake; the TCP connection is aborted if it stalls."""
        if self.protocol.state is _OPEN:
            self.protocol.send_close(code, reason)
            self._flush()
        self._arm_abort()

    def abort(self) -> None:
        """Drop the TCP connection at once."""
        if self.transport is not None:
            self.transport.abort()

    # asyncio.Protocol callbacks.

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        request = self.protocol.connect()
        if "authorization" in {name.lower() for name in self._headers}:
            try:
                del request.headers["Authorization"]
            except KeyError:
                pass
        for name, value in self._headers.items():
            request.headers[name] = value
        self.protocol.send_request(request)
        self._flush()

    def data_received(self, data: bytes) -> None:
        if self._fast:
            self._split_frames(data)
        elif self.protocol.state is _CONNECTING:
            self._receive_head(data)
        else:
            self._feed(data)

    def eof_received(self) -> bool | None:
        if self._head:
            head, self._head = self._head, b""
            self._feed(head)
        self.protocol.receive_eof()
        events = self.protocol.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Response):
                self._on_response(event)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.receive_eof()
        if self._abort_handle is not None:
            self._abort_handle.cancel()
        if not self.opened.done():
            error = exc or ConnectionResetError("connection closed during the WebSocket handshake")
            if isinstance(self.protocol.handshake_exc, Exception) and exc is None:
                error = self._handshake_failure(self.protocol.handshake_exc)
            self.opened.set_exception(error)
            # Retrieved by the awaiting opener; keep asyncio from warning otherwise.
            self.opened.exception()
        elif self.listener is not None and self.response is not None:
            code = self.protocol.close_code or 1006
            reason = self.protocol.close_reason or ""
            clean = self.protocol.close_rcvd is not None and self.protocol.close_sent is not None
            self.listener.on_connection_lost(code, reason, clean)
        if not self.closed.done():
            self.closed.set_result(None)

    # Private helpers.

    def _receive_head(self, data: bytes) -> None:
        head = self._head + data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > _MAX_RESPONSE_HEAD:
                self._head = b""
                self._feed(head)  # websockets rejects the oversized head
            else:
                self._head = head
            return
        self._head = b""
        rest = head[end + 4 :]
        self._feed(head[: end + 4])
        protocol = self.protocol
        if protocol.state is _OPEN and not protocol.extensions:
            self._fast = True
            if rest:
                self._split_frames(rest)
        elif rest:
            self._feed(rest)

    def _split_frames(self, data: bytes) -> None:
        if self._rx:
            data = self._rx + data
            self._rx = b""
        size = len(data)
        pos = 0
        listener = self.listener
        max_size = self.max_size
        while size - pos >= 2:
            first = data[pos]
            second = data[pos + 1]
            length = second & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = int.from_bytes(data[pos + 2 : pos + 10], "big")
                start = pos + 10
            opcode = first & 0x0F
            simple = (first & 0xF0) == _FINAL_NO_RSV and not second & 0x80
            if simple and (opcode == 2 or opcode == 1) and length <= max_size:
                end = start + length
                if end > size:
                    break
                pos = end
                if listener is not None:
                    listener.on_message(data[start:end], opcode == 1)
                if not self._fast:
                    return  # the listener closed or failed the connection
                continue
            if simple and 8 <= opcode <= 10 and length <= 125:
                end = start + length
                if end > size:
                    break
                self._feed(data[pos:end])
                pos = end
                if self.protocol.state is not _OPEN:
                    self._fast = False  # a close frame: websockets discards the rest
                    if pos < size:
                        self._feed(data[pos:])
                    return
                continue
            # Anything unusual: websockets' parser takes over for good.
            self._fast = False
            self._feed(data[pos:])
            return
        if pos < size:
            self._rx = data[pos:]

    def _feed(self, data: bytes) -> None:
        protocol = self.protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._flush()
        for event in events:
            if isinstance(event, Frame):
                self._on_frame(event)
            elif isinstance(event, Response):
                self._on_response(event)
        if protocol.state is not _OPEN:
            self._fast = False
        if protocol.close_expected():
            self._arm_abort()

    def _flush(self) -> None:
        transport = self.transport
        if transport is None:
            return
        for data in self.protocol.data_to_send():
            if data:
                if not transport.is_closing():
                    transport.write(data)
            elif transport.can_write_eof():
                try:
                    transport.write_eof()
                except (OSError, RuntimeError):
                    transport.close()
            else:
                transport.close()

    def _on_response(self, response: Response) -> None:
        if self.opened.done():
            return
        failure = self.protocol.handshake_exc
        if failure is not None:
            self.opened.set_exception(self._handshake_failure(failure))
            self.opened.exception()
            return
        self.response = response
        self.opened.set_result(response)
        if self.listener is not None:
            self.listener.on_open(self, response)

    @staticmethod
    def _handshake_failure(failure: Exception) -> Exception:
        if isinstance(failure, InvalidStatus):
            response = failure.response
            headers = {name.lower(): value for name, value in response.headers.raw_items()}
            return HandshakeRejected(response.status_code, response.reason_phrase, headers)
        error = HandshakeError(f"invalid WebSocket handshake: {failure}")
        error.__cause__ = failure
        return error

    def _on_frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        listener = self.listener
        data = frame.data
        if type(data) is not bytes:  # the parser yields bytes; stay safe for the type checker
            data = bytes(data)
        if opcode is _BINARY or opcode is _TEXT:
            if frame.fin:
                if listener is not None:
                    listener.on_message(data, opcode is _TEXT)
            else:
                self._fragments = [data]
                self._fragment_text = opcode is _TEXT
        elif opcode is _CONT:
            self._fragments.append(data)
            if frame.fin:
                payload = b"".join(self._fragments)
                self._fragments = []
                if listener is not None:
                    listener.on_message(payload, self._fragment_text)
        elif opcode is _CLOSE:
            close = self.protocol.close_rcvd
            if listener is not None and close is not None:
                listener.on_close_frame(close.code, close.reason)
        # Pings are answered by the sans-I/O core; pongs need nothing.

    def _arm_abort(self) -> None:
        if self._abort_handle is None and self.transport is not None:
            self._abort_handle = self._loop.call_later(self.close_timeout, self.abort)


async def open_websocket(
    url: str,
    listener: WsListener | None,
    *,
    headers: Mapping[str, str] | None = None,
    open_timeout: float = 10.0,
    ssl: ssl_module.SSLContext | None = None,
    max_size: int = 2**20,
    close_timeout: float = 2.0,
) -> WsClientConnection:
    """Connect to ``url`` and complete the WebSocket opening handshake.

    Args:
        url: ``ws://`` or ``wss://`` URL.
        listener: Receives messages and close notifications once open.
        headers: Extra upgrade headers.
        open_timeout: Limit for TCP connect, TLS and the HTTP upgrade together.
        ssl: TLS context for ``wss://`` (the system default when omitted).
        max_size: Largest incoming message in bytes.
        close_timeout: See :class:`WsClientConnection`.

    Raises:
        websockets.exceptions.InvalidURI: for a URL that is not ``ws(s)://``.
        OSError: when the server is unreachable, refuses, or TLS fails.
        TimeoutError: when the whole opening takes longer than ``open_timeout``.
        HandshakeRejected: when the server answers with a non-101 status.
        HandshakeError: when the answer is not a valid WebSocket handshake.
    """
    uri = parse_uri(url)
    loop = asyncio.get_running_loop()
    context: ssl_module.SSLContext | None = None
    if uri.secure:
        context = ssl or ssl_module.create_default_context()
    connection: WsClientConnection | None = None

    def factory() -> WsClientConnection:
        nonlocal connection
        connection = WsClientConnection(
            uri, listener, headers or {}, max_size=max_size, close_timeout=close_timeout
        )
        return connection

    async def _open() -> WsClientConnection:
        await loop.create_connection(
            factory,
            uri.host,
            uri.port,
            ssl=context,
            server_hostname=uri.host if context is not None else None,
        )
        assert connection is not None
        await connection.opened
        return connection

    try:
        return await asyncio.wait_for(_open(), open_timeout)
    except BaseException:
        if connection is not None:
            connection.abort()
        raise
