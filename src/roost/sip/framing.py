"""Framing SIP over stream transports (TCP): Content-Length splits the stream.

A TCP connection carries messages back to back with nothing between them but
optional CRLFs, so the only way to find where one message ends is the
Content-Length header (RFC 3261 §18.3), which is therefore mandatory on
streams. :class:`StreamFramer` is the incremental splitter a TCP driver feeds
with whatever ``data_received`` delivers. Its memory is bounded by
``Limits.max_message_size``: it refuses a header section that does not end
within the limit and a Content-Length that would take the message past it
*before* buffering the body, so a peer streaming 10 MB of garbage costs at
most one message's worth of memory.

CRLF keep-alives (RFC 5626 §3.5.1: the client sends CRLFCRLF, the server
answers CRLF) come out as the :data:`KeepAlive` sentinel so the driver can
answer them; a message that frames correctly but fails to parse comes out as
:class:`MalformedMessage` (the stream is still in sync, so the UA core can
answer it with a 400 instead of dropping the connection).

Example:
    >>> framer = StreamFramer()
    >>> raw = (b"OPTIONS sip:a@b SIP/2.0\\r\\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\\r\\n"
    ...        b"From: <sip:c@d>;tag=1\\r\\nTo: <sip:a@b>\\r\\nCall-ID: x\\r\\n"
    ...        b"CSeq: 1 OPTIONS\\r\\nContent-Length: 0\\r\\n\\r\\n")
    >>> framer.feed(raw[:10])
    []
    >>> [type(m).__name__ for m in framer.feed(raw[10:] + b"\\r\\n\\r\\n")]
    ['SipRequest', '_KeepAlive']
"""

from __future__ import annotations

from dataclasses import dataclass

from roost.sip.errors import SipParseError
from roost.sip.message import DEFAULT_LIMITS, Limits, SipRequest, SipResponse, parse_message

__all__ = ["KeepAlive", "MalformedMessage", "StreamFramer"]


class _KeepAlive:
    __slots__ = ()

    def __repr__(self) -> str:
        return "KeepAlive"


KeepAlive = _KeepAlive()
"""Sentinel :meth:`StreamFramer.feed` yields for an RFC 5626 CRLFCRLF ping.

The driver answers it with a single CRLF (the pong).
"""


@dataclass(frozen=True, slots=True)
class MalformedMessage:
    """A stream message that was framed correctly but failed to parse.

    The stream stays usable (its length was known), so the connection need not
    be closed; the UA core answers a malformed request with a 400.

    Attributes:
        raw: The message bytes.
        error: Why it failed.
    """

    raw: bytes
    error: SipParseError


_CL_NAMES = (b"content-length", b"l")


class StreamFramer:
    """Split a TCP byte stream into messages using Content-Length.

    Feed it bytes as they arrive; it returns every complete message. It never
    buffers more than ``limits.max_message_size`` bytes: a header section
    that does not end within the limit, or a Content-Length that would take
    the message past it, raises :class:`SipParseError` (status 513) *before*
    the data is buffered. After such a framing error the stream cannot be
    resynchronised, the framer refuses further input and the connection
    must be closed (RFC 3261 §18.3).

    Example:
        >>> framer = StreamFramer(Limits(max_message_size=100))
        >>> framer.feed(b"X" * 150)
        Traceback (most recent call last):
        ...
        roost.sip.errors.SipParseError: header section longer than the 100-byte limit at byte 0
    """

    __slots__ = ("_broken", "_buf", "_crlfs", "_expected", "_limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._buf = bytearray()
        self._expected: int | None = None
        self._broken: SipParseError | None = None
        self._crlfs = 0

    @property
    def buffered(self) -> int:
        """Bytes held waiting for the rest of a message."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[SipRequest | SipResponse | MalformedMessage | _KeepAlive]:
        """Add received bytes; return the complete messages (and keep-alives) in order.

        Raises:
            SipParseError: on an unrecoverable framing error (close the
                connection).
        """
        if self._broken is not None:
            raise SipParseError(
                f"stream framing was lost earlier ({self._broken.reason}); close the connection"
            )
        out: list[SipRequest | SipResponse | MalformedMessage | _KeepAlive] = []
        view = memoryview(data)
        pos = 0
        limit = self._limits.max_message_size
        try:
            while True:
                self._extract(out)
                if pos >= len(view):
                    break
                room = limit - len(self._buf)
                if room <= 0:
                    raise SipParseError(
                        f"header section longer than the {limit}-byte limit", 0, status=513
                    )
                chunk = view[pos : pos + room]
                self._buf += chunk
                pos += len(chunk)
        except SipParseError as exc:
            # Keep a traceback-free copy: the raised error's frames reference
            # this framer (and its refused buffer), a cycle only the GC breaks.
            self._broken = SipParseError(exc.reason, exc.offset, status=exc.status)
            self._buf = bytearray()
            raise
        return out

    def _extract(self, out: list[SipRequest | SipResponse | MalformedMessage | _KeepAlive]) -> None:
        buf = self._buf
        limit = self._limits.max_message_size
        while True:
            if self._expected is None:
                skip = 0
                while buf.startswith(b"\r\n", skip):
                    skip += 2
                if skip:
                    # RFC 5626: CRLFCRLF is a ping (answer it), a lone CRLF a pong.
                    # Count CRLFs across reads so a ping split over two reads counts.
                    crlfs = self._crlfs + skip // 2
                    out.extend([KeepAlive] * (crlfs // 2))
                    self._crlfs = crlfs % 2
                    del buf[:skip]
                if buf and buf != b"\r":
                    # A lone CR may be the first half of a ping's second CRLF.
                    self._crlfs = 0
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) >= limit:
                        raise SipParseError(
                            f"header section longer than the {limit}-byte limit", 0, status=513
                        )
                    return
                length = self._stream_content_length(bytes(buf[:end]))
                total = end + 4 + length
                if total > limit:
                    raise SipParseError(
                        f"message of {total} bytes would exceed the {limit}-byte limit",
                        0,
                        status=513,
                    )
                self._expected = total
            if len(buf) < self._expected:
                return
            raw = bytes(buf[: self._expected])
            del buf[: self._expected]
            self._expected = None
            try:
                out.append(parse_message(raw, self._limits))
            except SipParseError as exc:
                out.append(MalformedMessage(raw, exc))

    @staticmethod
    def _stream_content_length(head: bytes) -> int:
        found: int | None = None
        for line in head.split(b"\r\n")[1:]:
            name, colon, value = line.partition(b":")
            if not colon or name.strip(b" \t").lower() not in _CL_NAMES:
                continue
            value = value.strip(b" \t")
            if found is not None:
                raise SipParseError("several Content-Length headers on a stream", 0)
            if not value.isdigit() or len(value) > 10:
                raise SipParseError(f"Content-Length {value[:20]!r} is not a number", 0)
            found = int(value)
        if found is None:
            raise SipParseError("Content-Length is required on stream transports", 0)
        return found
