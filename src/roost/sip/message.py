"""SIP messages: parse, build and serialise requests and responses.

Parsing rules (RFC 3261 §7, with RFC 4475 as the test of them):

* The start line is strict: exactly ``METHOD SP Request-URI SP SIP/2.0`` or
  ``SIP/2.0 SP 3DIGIT SP reason``. Extra or trailing spaces, a Request-URI in
  ``<>`` or with ``?headers``, and status codes outside 100-699 are rejected
  (RFC 4475 allows either rejecting or repairing these; repairing silently
  would hide exactly the agent bugs a test tool should report). Another SIP
  version raises with ``status`` 505.
* Header names are case-insensitive and compact forms are expanded; folded
  lines are unfolded to one space; list headers (:data:`LIST_HEADERS`) are split
  into one entry per value; every other header, including unknown ``X-``
  headers, is kept as one value in its original position.
* The mandatory headers are validated at parse time so that the transaction
  and dialog layers can rely on them: one Call-ID, From, To and CSeq, at least
  one Via, a CSeq method equal to the request method, and well-formed Contact,
  Max-Forwards and Content-Length when present. Anything else is parsed lazily
  by the typed accessors (:attr:`SipMessage.via`, :attr:`SipMessage.to`...).
* A datagram is one message: ``Content-Length`` may be absent (the body is the
  rest of the datagram); when present, extra octets are ignored (RFC 4475
  ``dblreq``) and a length larger than what arrived is an error (``clerr``).
* Streams are framed by :class:`StreamFramer`, which needs ``Content-Length``.
* Bytes that are not UTF-8 are kept with ``surrogateescape`` so that a header
  is written back exactly as it arrived.

Every problem raises :class:`~roost.sip.errors.SipParseError` with a reason and
the byte offset, and sizes are bounded by :class:`Limits`.

Serialising writes headers in their stored order with canonical names and
always recomputes ``Content-Length`` (written last).

Example:
    >>> msg = parse_message(
    ...     b"OPTIONS sip:agent@127.0.0.1 SIP/2.0\\r\\n"
    ...     b"v: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\\r\\n"
    ...     b"f: <sip:probe@127.0.0.1>;tag=1\\r\\nt: <sip:agent@127.0.0.1>\\r\\n"
    ...     b"i: abc\\r\\nCSeq: 1 OPTIONS\\r\\nX-Simulation-Result-Id: 720488\\r\\n\\r\\n"
    ... )
    >>> (msg.method, msg.call_id, msg.headers.get("x-simulation-result-id"))
    ('OPTIONS', 'abc', '720488')
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from roost.sip.errors import InvalidHeaderError, SipParseError
from roost.sip.headers import (
    LIST_HEADERS,
    Address,
    CSeq,
    Uri,
    Via,
    canonical_name,
    header_key,
    split_list,
)

__all__ = [
    "DEFAULT_LIMITS",
    "REASON_PHRASES",
    "Headers",
    "Limits",
    "SipMessage",
    "SipRequest",
    "SipResponse",
    "make_response",
    "parse_message",
]

T = TypeVar("T")

REASON_PHRASES: dict[int, str] = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    182: "Queued",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    380: "Alternative Service",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Timeout",
    410: "Gone",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Unsupported URI Scheme",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    484: "Address Incomplete",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Server Time-out",
    505: "Version Not Supported",
    513: "Message Too Large",
    600: "Busy Everywhere",
    603: "Decline",
    604: "Does Not Exist Anywhere",
    606: "Not Acceptable",
}
"""Default reason phrases (RFC 3261 §21)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits applied to every parsed message and stream.

    Attributes:
        max_message_size: Largest message (start line, headers and body) in
            bytes. A stream whose next message would exceed it is refused
            before the body is buffered.
        max_headers: Most header lines (after unfolding) in one message.
        max_line_length: Longest header line (after unfolding), in bytes.
    """

    max_message_size: int = 65_536
    max_headers: int = 256
    max_line_length: int = 8_192


DEFAULT_LIMITS = Limits()

_NAME_RE = re.compile(r"[!%'*+\-.0-9A-Z_`a-z~]+")
_HEADER_LINE_RE = re.compile(r"([!%'*+\-.0-9A-Z_`a-z~]+)[ \t]*:[ \t]*(.*?)[ \t]*", re.DOTALL)
_FORBIDDEN_VALUE = re.compile(r"[\r\n\x00]")
_VERSION_RE = re.compile(r"SIP/[0-9]+\.[0-9]+", re.IGNORECASE)
_BARE_EOL_RE = re.compile(r"\r(?!\n)|(?<!\r)\n")


class Headers:
    """An ordered, case-insensitive multi-map of header names to values.

    Names are looked up by :func:`~roost.sip.headers.header_key` (so ``v``,
    ``VIA`` and ``Via`` are the same header) and stored with their canonical
    spelling. List headers hold one entry per value. Values passed to
    :meth:`add` and :meth:`set` are checked: a name must be a token and a value
    must not contain CR, LF or NUL (header injection).

    Example:
        >>> h = Headers([("X-Simulation-Result-Id", "720488"), ("v", "SIP/2.0/UDP a")])
        >>> list(h), h.get("VIA")
        ([('X-Simulation-Result-Id', '720488'), ('Via', 'SIP/2.0/UDP a')], 'SIP/2.0/UDP a')
    """

    __slots__ = ("_cache", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str, str]] = []
        self._cache: dict[str, Any] = {}
        for name, value in items:
            self.add(name, value)

    @classmethod
    def _trusted(cls, items: list[tuple[str, str, str]]) -> Headers:
        headers = cls.__new__(cls)
        headers._items = items
        headers._cache = {}
        return headers

    @staticmethod
    def _check(name: str, value: str) -> None:
        if _NAME_RE.fullmatch(name) is None:
            raise InvalidHeaderError(f"header name {name!r} is not a token")
        if _FORBIDDEN_VALUE.search(value) is not None:
            raise InvalidHeaderError(f"value of header {name} contains CR, LF or NUL")

    def __iter__(self) -> Iterator[tuple[str, str]]:
        for _, name, value in self._items:
            yield name, value

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = header_key(name)
        return any(item[0] == key for item in self._items)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return [(k, v) for k, _, v in self._items] == [(k, v) for k, _, v in other._items]

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``, or ``default``."""
        key = header_key(name)
        for item in self._items:
            if item[0] == key:
                return item[2]
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        key = header_key(name)
        return [item[2] for item in self._items if item[0] == key]

    def add(self, name: str, value: str) -> None:
        """Append a header (list values are split into separate entries)."""
        self._check(name, value)
        key = header_key(name)
        canonical = canonical_name(name)
        values = split_list(value) if key in LIST_HEADERS else [value]
        self._items.extend((key, canonical, v) for v in values)
        self._cache.clear()

    def add_first(self, name: str, value: str) -> None:
        """Insert a header before all others (used for a new top Via)."""
        self._check(name, value)
        self._items.insert(0, (header_key(name), canonical_name(name), value))
        self._cache.clear()

    def set(self, name: str, value: str) -> None:
        """Replace every value of ``name`` by ``value``, at the first one's position."""
        self._check(name, value)
        key = header_key(name)
        entry = (key, canonical_name(name), value)
        for index, item in enumerate(self._items):
            if item[0] == key:
                self._items[index] = entry
                self._items[index + 1 :] = [i for i in self._items[index + 1 :] if i[0] != key]
                break
        else:
            self._items.append(entry)
        self._cache.clear()

    def replace_first(self, name: str, value: str) -> None:
        """Replace only the first value of ``name`` (or append it)."""
        self._check(name, value)
        key = header_key(name)
        for index, item in enumerate(self._items):
            if item[0] == key:
                self._items[index] = (key, item[1], value)
                break
        else:
            self._items.append((key, canonical_name(name), value))
        self._cache.clear()

    def remove(self, name: str) -> int:
        """Remove every value of ``name``; returns how many were removed."""
        key = header_key(name)
        before = len(self._items)
        self._items = [item for item in self._items if item[0] != key]
        self._cache.clear()
        return before - len(self._items)

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers._trusted(list(self._items))


class SipMessage:
    """Fields and typed accessors shared by requests and responses.

    The typed accessors parse on first use and cache the result until the
    headers change; they raise :class:`SipParseError` for malformed values.
    """

    __slots__ = ("body", "headers")

    def __init__(
        self, headers: Headers | Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        self.headers = headers if isinstance(headers, Headers) else Headers(headers)
        self.body = body

    # -- typed accessors -------------------------------------------------

    def _cached(self, key: str, compute: Callable[[], T]) -> T:
        cache = self.headers._cache
        try:
            value: T = cache[key]
        except KeyError:
            value = compute()
            cache[key] = value
        return value

    def _single(self, name: str) -> str:
        values = self.headers.get_all(name)
        if not values:
            raise SipParseError(f"missing required {name} header")
        if len(values) > 1:
            raise SipParseError(f"{len(values)} {name} headers where exactly one is allowed")
        return values[0]

    @property
    def via(self) -> list[Via]:
        """Every Via value, top first."""
        return self._cached("via", lambda: [Via.parse(v) for v in self.headers.get_all("via")])

    @property
    def top_via(self) -> Via:
        """The first Via value (raises :class:`SipParseError` when there is none)."""
        vias = self.via
        if not vias:
            raise SipParseError("missing required Via header")
        return vias[0]

    @property
    def call_id(self) -> str:
        """The Call-ID."""

        def compute() -> str:
            value = self._single("Call-ID")
            if not value or any(ch in value for ch in " \t"):
                raise SipParseError(f"malformed Call-ID {value[:60]!r}")
            return value

        return self._cached("call-id", compute)

    @property
    def cseq(self) -> CSeq:
        """The CSeq."""
        return self._cached("cseq", lambda: CSeq.parse(self._single("CSeq")))

    @property
    def from_(self) -> Address:
        """The From address."""
        return self._cached("from", lambda: Address.parse(self._single("From")))

    @property
    def to(self) -> Address:
        """The To address."""
        return self._cached("to", lambda: Address.parse(self._single("To")))

    @property
    def contact(self) -> list[Address]:
        """Contact addresses (empty for none and for the ``*`` wildcard)."""

        def compute() -> list[Address]:
            values = self.headers.get_all("contact")
            if values == ["*"]:
                return []
            return [Address.parse(v) for v in values]

        return self._cached("contact", compute)

    @property
    def record_route(self) -> list[Address]:
        """Record-Route addresses, in order."""
        return self._cached(
            "record-route", lambda: [Address.parse(v) for v in self.headers.get_all("record-route")]
        )

    @property
    def route(self) -> list[Address]:
        """Route addresses, in order."""
        return self._cached(
            "route", lambda: [Address.parse(v) for v in self.headers.get_all("route")]
        )

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (0-255), or ``None`` when absent."""

        def compute() -> int | None:
            if "max-forwards" not in self.headers:
                return None
            value = self._single("Max-Forwards")
            if not (value.isascii() and value.isdigit()) or len(value) > 10 or int(value) > 255:
                raise SipParseError(f"Max-Forwards {value[:20]!r} is not a number from 0 to 255")
            return int(value)

        return self._cached("max-forwards", compute)

    @property
    def content_type(self) -> str | None:
        """Lower-case media type of the body (``application/sdp``), parameters dropped."""

        def compute() -> str | None:
            if "content-type" not in self.headers:
                return None
            value = self._single("Content-Type")
            return value.split(";", 1)[0].strip().lower() or None

        return self._cached("content-type", compute)

    # -- serialisation ----------------------------------------------------

    def _start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        """The wire form: start line, headers in order, Content-Length, body."""
        lines = [self._start_line()]
        lines.extend(
            f"{name}: {value}"
            for key, name, value in self.headers._items
            if key != "content-length"
        )
        lines.append(f"Content-Length: {len(self.body)}")
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()


class SipRequest(SipMessage):
    """A SIP request.

    Attributes:
        method: The method, case-sensitive (``INVITE``, ``BYE``...).
        uri: The Request-URI as text.
        headers: The headers.
        body: The body bytes.

    Example:
        >>> req = SipRequest("BYE", "sip:agent@127.0.0.1", [("Call-ID", "x")])
        >>> req.to_bytes().splitlines()[0]
        b'BYE sip:agent@127.0.0.1 SIP/2.0'
    """

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: str | Uri,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = str(uri)

    @property
    def request_uri(self) -> Uri:
        """The parsed Request-URI."""
        return self._cached("\0ruri", lambda: Uri.parse(self.uri))

    def _start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"


class SipResponse(SipMessage):
    """A SIP response.

    Attributes:
        status: Status code (100-699).
        reason: Reason phrase (may be empty).
        headers: The headers.
        body: The body bytes.
    """

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str | None = None,
        headers: Headers | Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "") if reason is None else reason

    def _start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"


def _byte_offset(text: str, char_index: int, ascii_only: bool) -> int:
    if ascii_only:
        return char_index
    return len(text[:char_index].encode("utf-8", "surrogateescape"))


def parse_message(data: bytes, limits: Limits = DEFAULT_LIMITS) -> SipRequest | SipResponse:
    """Parse one complete message (one UDP datagram, or one framed stream message).

    Args:
        data: The message bytes. Leading CRLFs are skipped.
        limits: Size limits.

    Returns:
        A :class:`SipRequest` or :class:`SipResponse` whose mandatory headers
        have been validated.

    Raises:
        SipParseError: for any malformed input, with the byte offset.
    """
    size = len(data)
    if size > limits.max_message_size:
        raise SipParseError(
            f"message of {size} bytes exceeds the {limits.max_message_size}-byte limit",
            0,
            status=513,
        )
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    if start >= size:
        raise SipParseError("empty message", start)
    end = data.find(b"\r\n\r\n", start)
    if end < 0:
        raise SipParseError("incomplete message: no empty line after the headers", size)
    head = data[start:end]
    ascii_only = head.isascii()
    text = head.decode("utf-8", "surrogateescape")
    bare = _BARE_EOL_RE.search(text)
    if bare is not None:
        raise SipParseError(
            "bare CR or LF in the header section",
            start + _byte_offset(text, bare.start(), ascii_only),
        )
    lines = text.split("\r\n")
    if len(lines) - 1 > limits.max_headers:
        raise SipParseError(
            f"{len(lines) - 1} header lines exceed the limit of {limits.max_headers}", start
        )
    message = _parse_start_line(lines[0], start)

    items: list[tuple[str, str, str]] = []
    offsets: list[tuple[str, int]] = []
    pos = len(lines[0]) + 2
    pending_name: str | None = None
    pending_value = ""
    pending_offset = 0
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if pending_name is None:
                raise SipParseError(
                    "continuation line before the first header",
                    start + _byte_offset(text, pos, ascii_only),
                )
            pending_value += " " + line.strip(" \t")
        else:
            if pending_name is not None:
                _store(items, offsets, pending_name, pending_value, pending_offset, limits)
            match = _HEADER_LINE_RE.fullmatch(line)
            if match is None:
                raise SipParseError(
                    f"malformed header line {line[:40]!r}",
                    start + _byte_offset(text, pos, ascii_only),
                )
            pending_name, pending_value = match.group(1), match.group(2)
            pending_offset = start + _byte_offset(text, pos, ascii_only)
        pos += len(line) + 2
    if pending_name is not None:
        _store(items, offsets, pending_name, pending_value, pending_offset, limits)

    message.headers = Headers._trusted(items)
    body_start = end + 4
    content_length = _content_length(message.headers, offsets)
    if content_length is None:
        message.body = data[body_start:]
    else:
        available = size - body_start
        if content_length > available:
            raise SipParseError(
                f"Content-Length {content_length} is larger than the {available} body bytes "
                "received",
                body_start,
            )
        message.body = data[body_start : body_start + content_length]
    _validate(message, offsets)
    return message


def _store(
    items: list[tuple[str, str, str]],
    offsets: list[tuple[str, int]],
    name: str,
    value: str,
    offset: int,
    limits: Limits,
) -> None:
    if len(name) + len(value) + 2 > limits.max_line_length:
        raise SipParseError(
            f"header {name[:40]} is longer than {limits.max_line_length} bytes", offset
        )
    key = header_key(name)
    canonical = canonical_name(name)
    offsets.append((key, offset))
    if key in LIST_HEADERS and "," in value:
        items.extend((key, canonical, v) for v in split_list(value))
    else:
        items.append((key, canonical, value.strip(" \t")))


def _parse_start_line(line: str, offset: int) -> SipRequest | SipResponse:
    if line[:4].upper() == "SIP/":
        parts = line.split(" ", 2)
        if len(parts) < 2 or parts[0].upper() != "SIP/2.0":
            raise SipParseError(f"malformed status line {line[:60]!r}", offset)
        code = parts[1]
        if len(code) != 3 or not (code.isascii() and code.isdigit()) or not 100 <= int(code) <= 699:
            raise SipParseError(f"status code {code[:20]!r} is not in 100-699", offset)
        return SipResponse(int(code), parts[2] if len(parts) == 3 else "")
    parts = line.split(" ")
    if len(parts) != 3 or not all(parts):
        raise SipParseError(
            f"request line must be exactly 'METHOD SP Request-URI SP SIP/2.0' (got {line[:80]!r})",
            offset,
        )
    method, uri_text, version = parts
    if version.upper() != "SIP/2.0":
        if _VERSION_RE.fullmatch(version):
            raise SipParseError(f"unsupported SIP version {version}", offset, status=505)
        raise SipParseError(f"malformed SIP version {version[:20]!r}", offset)
    if _NAME_RE.fullmatch(method) is None:
        raise SipParseError(f"method {method[:40]!r} is not a token", offset)
    try:
        uri = Uri.parse(uri_text)
    except SipParseError as exc:
        raise SipParseError(f"bad Request-URI: {exc.reason}", offset) from None
    if uri.headers:
        raise SipParseError("Request-URI must not carry ?headers", offset)
    request = SipRequest(method, uri_text)
    request.headers._cache["\0ruri"] = uri
    return request


def _content_length(headers: Headers, offsets: list[tuple[str, int]]) -> int | None:
    values = headers.get_all("content-length")
    if not values:
        return None
    offset = next(o for k, o in offsets if k == "content-length")
    if len(values) > 1:
        raise SipParseError(f"{len(values)} Content-Length headers", offset)
    value = values[0]
    if not value.isdigit() or not value.isascii() or len(value) > 10:
        raise SipParseError(f"Content-Length {value[:20]!r} is not a non-negative number", offset)
    return int(value)


_VALIDATED: tuple[tuple[str, Callable[[SipMessage], object]], ...] = (
    ("via", lambda m: m.top_via),
    ("call-id", lambda m: m.call_id),
    ("from", lambda m: m.from_),
    ("to", lambda m: m.to),
    ("cseq", lambda m: m.cseq),
    ("max-forwards", lambda m: m.max_forwards),
    ("contact", lambda m: m.contact),
    ("content-type", lambda m: m.content_type),
)


def _validate(message: SipMessage, offsets: list[tuple[str, int]]) -> None:
    for key, check in _VALIDATED:
        try:
            check(message)
        except SipParseError as exc:
            offset = next((o for k, o in offsets if k == key), None)
            raise SipParseError(exc.reason, offset, status=exc.status) from None
    if isinstance(message, SipRequest) and message.cseq.method != message.method:
        offset = next((o for k, o in offsets if k == "cseq"), None)
        raise SipParseError(
            f"CSeq method {message.cseq.method} does not match request method {message.method}",
            offset,
        )


def make_response(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
) -> SipResponse:
    """Build a response to ``request`` per RFC 3261 §8.2.6.

    Copies Via (all values, in order), From, Call-ID and CSeq verbatim, copies
    To and adds ``;tag=to_tag`` when the request's To has no tag yet, copies
    Record-Route into responses 101-299 to dialog-creating requests, and
    copies Timestamp into 100 Trying.

    Example:
        >>> req = parse_message(
        ...     b"BYE sip:a@b SIP/2.0\\r\\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\\r\\n"
        ...     b"From: <sip:c@d>;tag=1\\r\\nTo: <sip:a@b>;tag=2\\r\\nCall-ID: x\\r\\n"
        ...     b"CSeq: 2 BYE\\r\\n\\r\\n")
        >>> make_response(req, 200).to_bytes().splitlines()[:2]
        [b'SIP/2.0 200 OK', b'Via: SIP/2.0/UDP h;branch=z9hG4bK1']
    """
    items: list[tuple[str, str, str]] = []
    for key, name, value in request.headers._items:
        if key in ("via", "from", "call-id", "cseq"):
            items.append((key, name, value))
        elif key == "to":
            if to_tag is not None and status > 100 and request.to.tag is None:
                value = f"{value};tag={to_tag}"
            items.append((key, name, value))
        elif (key == "record-route" and 100 < status < 300 and request.method in ("INVITE",)) or (
            key == "timestamp" and status == 100
        ):
            items.append((key, name, value))
    response = SipResponse(status, reason, Headers._trusted(items), body)
    for name, value in headers:
        response.headers.add(name, value)
    return response
