"""The exceptions of the SIP core.

Every malformed input the core can meet (a datagram, a byte stream, an SDP
body, an RTP packet, a digest header) is answered with one specific exception
type that carries what a peer needs to hear back: a human-readable reason,
where in the input the problem was found, and the SIP status code the core
replies with when the input was a request. Nothing below the public API is
allowed to leak ``IndexError``, ``UnicodeDecodeError`` or ``ValueError`` from
``int()``: the fuzz tests in ``tests/sip/test_fuzz.py`` hold the parsers to it.

Example:
    >>> from roost.sip import SipParseError, parse_message
    >>> try:
    ...     parse_message(b"INVITE sip:a@b SIP/7.0\\r\\n\\r\\n")
    ... except SipParseError as exc:
    ...     (exc.status, exc.offset)
    (505, 0)
"""

from __future__ import annotations

__all__ = [
    "DigestError",
    "InvalidHeaderError",
    "RtpError",
    "SdpError",
    "SipError",
    "SipParseError",
    "SipStateError",
]


class SipError(Exception):
    """Base class of every error raised by :mod:`roost.sip`."""


class SipParseError(SipError, ValueError):
    """A SIP message (or one of its header values) is malformed.

    Attributes:
        reason: What is wrong, in words a peer's developer can act on.
        offset: Byte offset in the parsed input where the problem was found,
            or ``None`` when the value was not parsed from a buffer (for
            example a header set on a message built in memory).
        status: The response code a UAS answers a request like this with:
            400 by default, 505 for an unsupported SIP version, 513 for a
            message over the size limit.
    """

    def __init__(self, reason: str, offset: int | None = None, *, status: int = 400) -> None:
        where = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{reason}{where}")
        self.reason = reason
        self.offset = offset
        self.status = status


class InvalidHeaderError(SipError, ValueError):
    """A header about to be *sent* has an illegal name or value.

    Raised when building messages, for example when a configured ``X-`` header
    value contains CR or LF (which would let it inject extra headers).
    """


class SdpError(SipError, ValueError):
    """An SDP body is malformed, or an offer cannot be answered.

    Attributes:
        reason: What is wrong.
        status: The SIP status to reject the carrying request with: 488 (Not
            Acceptable Here) when the offer is well formed but unusable, 400
            when the body itself is malformed.
    """

    def __init__(self, reason: str, *, status: int = 488) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class RtpError(SipError, ValueError):
    """An RTP packet or telephone-event payload is malformed."""


class DigestError(SipError, ValueError):
    """A digest challenge or credentials header is malformed or unusable."""


class SipStateError(SipError, RuntimeError):
    """An operation is not valid in the current call or transaction state.

    For example answering a call that was already cancelled, or sending BYE
    on a call that never connected.
    """
