"""Header names and the structured header values the core reads.

SIP header names are case-insensitive and many have a one-letter compact form
(``v`` is ``Via``, ``i`` is ``Call-ID``...). :func:`header_key` folds every
spelling to one lookup key, and :func:`canonical_name` gives the spelling the
core writes back on the wire (the long form, in the RFC's capitalisation, so a
peer with a case-sensitive parser still understands us).

Some headers carry a comma-separated list (``Via: a, b`` is two Via values);
:func:`split_list` splits those outside quotes and angle brackets. Headers that
are *not* lists are never split: ``WWW-Authenticate`` and ``Date`` contain
commas, and an unknown header such as RFC 4475's
``UnknownHeaderWithUnusualValue: ;;,,;;,;`` must stay one opaque value.

The value types are small frozen dataclasses with a ``parse`` classmethod that
raises :class:`~roost.sip.errors.SipParseError` and a ``__str__`` that writes
the wire form:

* :class:`Uri`: ``sip:``/``sips:`` URIs split into user, host, port, params
  and headers; any other scheme (``tel:``, RFC 4475's ``isbn:``) is kept opaque;
* :class:`Address`: a name-addr or addr-spec with header parameters (From, To,
  Contact, Route, Record-Route);
* :class:`Via`: sent-protocol, sent-by and parameters (branch, received, rport);
* :class:`CSeq`: sequence number and method.

Parameters keep their order and original spelling; lookups by name are
case-insensitive. Quoted parameter values are stored with their quotes so that
a value such as ``+sip.instance="<urn:...>"`` survives a round trip;
:meth:`Address.param` returns it unquoted.

Example:
    >>> addr = Address.parse('"Agent" <sip:agent@127.0.0.1:5090;transport=TCP>;tag=a1')
    >>> (addr.display_name, addr.uri.port, addr.uri.transport, addr.tag)
    ('Agent', 5090, 'TCP', 'a1')
    >>> str(Via.parse("SIP/2.0/udp 10.0.0.1:5060;branch=z9hG4bKx;rport"))
    'SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;rport'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from roost.sip.errors import SipParseError

__all__ = [
    "LIST_HEADERS",
    "Address",
    "CSeq",
    "Params",
    "Uri",
    "Via",
    "canonical_name",
    "format_params",
    "header_key",
    "parse_params",
    "quote",
    "split_list",
    "unquote",
]

Params = tuple[tuple[str, str | None], ...]
"""Ordered ``(name, value)`` pairs; ``value`` is ``None`` for a flag (``;lr``)."""

# RFC 3261 §7.3.3 and later extensions: compact form -> lookup key.
_COMPACT: dict[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

_KNOWN_NAMES = (  # one string, split below: easier to scan than 60 list items
    "Accept Accept-Contact Accept-Encoding Accept-Language Alert-Info Allow Allow-Events "
    "Authentication-Info Authorization Call-ID Call-Info Contact Content-Disposition "
    "Content-Encoding Content-Language Content-Length Content-Type CSeq Date Error-Info "
    "Event Expires From Identity In-Reply-To Max-Forwards MIME-Version Min-Expires Min-SE "
    "Organization P-Asserted-Identity Path Priority Proxy-Authenticate Proxy-Authorization "
    "Proxy-Require RAck Reason Record-Route Refer-To Referred-By Reject-Contact Reply-To "
    "Request-Disposition Require Retry-After Route RSeq Server Service-Route "
    "Session-Expires Subject Supported Timestamp To Unsupported User-Agent Via Warning "
    "WWW-Authenticate"
)

_CANONICAL: dict[str, str] = {name.lower(): name for name in _KNOWN_NAMES.split()}

_LIST_NAMES = (
    "accept accept-contact accept-encoding accept-language alert-info allow allow-events "
    "call-info contact content-encoding content-language error-info in-reply-to "
    "p-asserted-identity path proxy-require reason record-route reject-contact require route "
    "service-route supported unsupported via warning"
)
LIST_HEADERS = frozenset(_LIST_NAMES.split())
"""Lookup keys of headers whose values are comma-separated lists."""


def header_key(name: str) -> str:
    """The case-folded lookup key of a header name, compact forms expanded.

    Example:
        >>> header_key("v"), header_key("CALL-id"), header_key("X-Foo")
        ('via', 'call-id', 'x-foo')
    """
    key = name.lower()
    return _COMPACT.get(key, key)


def canonical_name(name: str) -> str:
    """The spelling to write on the wire: RFC form for known headers, else as given.

    Example:
        >>> canonical_name("i"), canonical_name("cseq"), canonical_name("X-Call-Type")
        ('Call-ID', 'CSeq', 'X-Call-Type')
    """
    return _CANONICAL.get(header_key(name), name)


_TOKEN_CHARS = r"!%'*+\-.0-9A-Z_`a-z~"
_TOKEN_RE = re.compile(f"[{_TOKEN_CHARS}]+")
# A parameter: ";" name ["=" value], value a token (widened with the characters
# hosts and IPv6 references use) or a quoted string; LWS allowed around ; and =.
_PARAM_RE = re.compile(
    rf"[ \t]*;[ \t]*([{_TOKEN_CHARS}]+)"
    rf'(?:[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[{_TOKEN_CHARS}:\[\]/]+))?',
    re.DOTALL,
)
_SPACE_RE = re.compile(r"[ \t]*")


def split_list(value: str) -> list[str]:
    """Split a comma-separated header value outside quotes and ``<...>``.

    Empty elements (``a,,b``) are dropped; a value with no comma is returned
    as is (stripped).

    Example:
        >>> split_list('"Doe, J" <sip:j@x>;q=1, <sip:k@y?a=1,2>')
        ['"Doe, J" <sip:j@x>;q=1', '<sip:k@y?a=1,2>']
    """
    if "," not in value:
        return [value.strip()]
    parts: list[str] = []
    start = 0
    in_quotes = False
    in_angle = False
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if in_quotes:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_quotes = False
        elif ch == '"':
            in_quotes = True
        elif ch == "<":
            in_angle = True
        elif ch == ">":
            in_angle = False
        elif ch == "," and not in_angle:
            part = value[start:i].strip()
            if part:
                parts.append(part)
            start = i + 1
        i += 1
    part = value[start:].strip()
    if part:
        parts.append(part)
    return parts


def unquote(value: str) -> str:
    """Remove the quotes and backslash escapes of a quoted string (else as is).

    Example:
        >>> unquote('"say \\\\"hi\\\\""')
        'say "hi"'
    """
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        inner = value[1:-1]
        if "\\" not in inner:
            return inner
        out: list[str] = []
        i = 0
        while i < len(inner):
            ch = inner[i]
            if ch == "\\" and i + 1 < len(inner):
                i += 1
                ch = inner[i]
            out.append(ch)
            i += 1
        return "".join(out)
    return value


def quote(value: str) -> str:
    """Write ``value`` as a quoted string, escaping ``"`` and ``\\``.

    Example:
        >>> quote('a "b"')
        '"a \\\\"b\\\\""'
    """
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_params(text: str, *, what: str = "header") -> Params:
    """Parse ``;name[=value]`` parameters; the whole of ``text`` must be consumed.

    Raises:
        SipParseError: on an empty or malformed parameter (``;;``, ``;=x``...).

    Example:
        >>> parse_params(" ;   tag    = 1918181833n ; lr")
        (('tag', '1918181833n'), ('lr', None))
    """
    params: list[tuple[str, str | None]] = []
    pos = 0
    n = len(text)
    while True:
        match = _PARAM_RE.match(text, pos)
        if match is None:
            tail = _SPACE_RE.match(text, pos)
            if tail is not None and tail.end() == n:
                break
            raise SipParseError(f"malformed {what} parameter near {text[pos : pos + 20]!r}")
        params.append((match.group(1), match.group(2)))
        pos = match.end()
    return tuple(params)


def format_params(params: Params) -> str:
    """Write parameters back as ``;name=value`` text."""
    return "".join(f";{name}" if value is None else f";{name}={value}" for name, value in params)


def _lookup(params: Params, name: str) -> tuple[bool, str | None]:
    lname = name.lower()
    for key, value in params:
        if key.lower() == lname:
            return True, value
    return False, None


def _without(params: Params, name: str) -> Params:
    lname = name.lower()
    return tuple(p for p in params if p[0].lower() != lname)


_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_BAD_URI_CHARS = re.compile(r'[\x00-\x20\x7f<>"]')
_HOST_RE = re.compile(r"[A-Za-z0-9_\-.]+")
_IPV6_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]")


@dataclass(frozen=True, slots=True)
class Uri:
    """A URI; ``sip:`` and ``sips:`` URIs are split into their parts.

    Attributes:
        scheme: Lower-case scheme (``sip``, ``sips``, ``tel``...).
        host: Host name, IPv4 address or bracketed IPv6 reference (SIP only).
        user: User part, escapes kept as received (``%40`` stays ``%40``).
        password: Password part, if any.
        port: Port, or ``None`` for the scheme's default.
        params: URI parameters (``;transport=tcp;lr``), in order.
        headers: URI headers (``?Subject=x``), in order.
        opaque: Everything after ``scheme:`` for non-SIP schemes, else ``None``.

    Example:
        >>> uri = Uri.parse("sip:agent@example.com:5070;transport=tcp")
        >>> (uri.user, uri.host, uri.port, uri.transport, str(uri))
        ('agent', 'example.com', 5070, 'TCP', 'sip:agent@example.com:5070;transport=tcp')
    """

    scheme: str
    host: str = ""
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> Uri:
        """Parse a URI.

        Raises:
            SipParseError: when ``text`` is not a URI, or a SIP URI is malformed
                (whitespace, bad host, port out of range, empty parameter...).
        """
        if _BAD_URI_CHARS.search(text) is not None:
            raise SipParseError(f"URI contains whitespace or a forbidden character: {text[:60]!r}")
        match = _SCHEME_RE.match(text)
        if match is None:
            raise SipParseError(f"not a URI: {text[:60]!r}")
        scheme = match.group(1).lower()
        rest = text[match.end() :]
        if not rest:
            raise SipParseError(f"URI has nothing after the scheme: {text[:60]!r}")
        if scheme not in ("sip", "sips"):
            return cls(scheme=scheme, opaque=rest)
        user: str | None = None
        password: str | None = None
        at = rest.find("@")
        if at >= 0:
            userinfo = rest[:at]
            rest = rest[at + 1 :]
            user, colon, pw = userinfo.partition(":")
            if colon:
                password = pw
            if not user:
                raise SipParseError(f"SIP URI has an empty user part: {text[:60]!r}")
        end = len(rest)
        for sep in (";", "?"):
            idx = rest.find(sep)
            if 0 <= idx < end:
                end = idx
        hostport = rest[:end]
        tail = rest[end:]
        if hostport.startswith("["):
            close = hostport.find("]")
            host = hostport[: close + 1]
            if close < 0 or _IPV6_RE.fullmatch(host) is None:
                raise SipParseError(f"bad IPv6 reference in URI: {text[:60]!r}")
            port_text = hostport[close + 1 :]
        else:
            host, colon, port_text = hostport.partition(":")
            port_text = colon + port_text
            if _HOST_RE.fullmatch(host) is None:
                raise SipParseError(f"bad host in URI: {text[:60]!r}")
        port: int | None = None
        if port_text:
            digits = port_text[1:]
            if not (digits.isascii() and digits.isdigit()) or len(digits) > 5:
                raise SipParseError(f"bad port in URI: {text[:60]!r}")
            port = int(digits)
            if port > 65535:
                raise SipParseError(f"port out of range in URI: {text[:60]!r}")
        query = ""
        qmark = tail.find("?")
        if qmark >= 0:
            query = tail[qmark + 1 :]
            tail = tail[:qmark]
        params: list[tuple[str, str | None]] = []
        if tail:
            for item in tail[1:].split(";"):
                name, eq, value = item.partition("=")
                if not name:
                    raise SipParseError(f"empty URI parameter in {text[:60]!r}")
                params.append((name, value if eq else None))
        headers: list[tuple[str, str]] = []
        if qmark >= 0:
            for item in query.split("&"):
                name, _eq, value = item.partition("=")
                if not name:
                    raise SipParseError(f"empty URI header in {text[:60]!r}")
                headers.append((name, value))
        return cls(
            scheme=scheme,
            host=host,
            user=user,
            password=password,
            port=port,
            params=tuple(params),
            headers=tuple(headers),
        )

    @property
    def is_sip(self) -> bool:
        """True for ``sip:`` and ``sips:`` URIs."""
        return self.opaque is None

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, upper-cased (``UDP``, ``TCP``), if present.

        Compared case-insensitively on purpose: SIPp writes ``transport=UDP``
        and at least one Python stack tried failed on it (sip-stack-notes §2).
        """
        value = self.param("transport")
        return value.upper() if value else None

    def param(self, name: str) -> str | None:
        """Value of URI parameter ``name``; ``""`` for a flag, ``None`` if absent."""
        found, value = _lookup(self.params, name)
        if not found:
            return None
        return "" if value is None else value

    def has_param(self, name: str) -> bool:
        """True when the URI carries parameter ``name`` (case-insensitive)."""
        return _lookup(self.params, name)[0]

    def with_params(self, **params: str | None) -> Uri:
        """A copy with parameters set (``None`` writes a flag such as ``lr``)."""
        current = self.params
        for name in params:
            current = _without(current, name)
        return replace(self, params=current + tuple(params.items()))

    def bare(self) -> Uri:
        """A copy without URI headers (what a Request-URI may carry)."""
        return replace(self, headers=())

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts.append(f":{self.port}")
        parts.append(format_params(self.params))
        if self.headers:
            parts.append("?" + "&".join(f"{k}={v}" for k, v in self.headers))
        return "".join(parts)


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Read the quoted string starting at ``text[start] == '"'``.

    Returns the unescaped content and the index just after the closing quote.
    """
    out: list[str] = []
    i = start + 1
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            if i + 1 >= n:
                break
            out.append(text[i + 1])
            i += 2
            continue
        if ch == '"':
            return "".join(out), i + 1
        out.append(ch)
        i += 1
    raise SipParseError(f"unterminated quoted string in {text[:60]!r}")


@dataclass(frozen=True, slots=True)
class Address:
    """A name-addr or addr-spec with header parameters (From, To, Contact, Route).

    Attributes:
        uri: The address's URI.
        display_name: The display name, unquoted and unescaped, or ``None``.
        params: Header parameters after the URI (``tag``, ``expires``...), in order.

    Example:
        >>> a = Address.parse("sip:+19725552222@gw1.example.net;unknownparam")
        >>> (a.uri.params, a.params)
        ((), (('unknownparam', None),))
    """

    uri: Uri
    display_name: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse one address (not a list: split Contact/Route values first).

        Raises:
            SipParseError: on an unterminated quote, a display name with
                characters outside ``token``, a missing ``>``, a URI with
                ``?``/``,`` outside angle brackets, or a malformed parameter.
        """
        s = text.strip()
        if not s:
            raise SipParseError("empty address")
        display: str | None = None
        if s[0] == '"':
            display, end = _read_quoted(s, 0)
            lt = end + len(s[end:]) - len(s[end:].lstrip(" \t"))
            if lt >= len(s) or s[lt] != "<":
                raise SipParseError(f"display name not followed by <URI> in {s[:60]!r}")
        else:
            lt = s.find("<")
            if lt > 0:
                words = s[:lt].split()
                for word in words:
                    if _TOKEN_RE.fullmatch(word) is None:
                        raise SipParseError(
                            f"display name {s[:lt].strip()!r} must be quoted "
                            "(it contains characters outside token)"
                        )
                display = " ".join(words) or None
        if lt >= 0:
            gt = s.find(">", lt + 1)
            if gt < 0:
                raise SipParseError(f"missing '>' in address {s[:60]!r}")
            uri = Uri.parse(s[lt + 1 : gt])
            params_text = s[gt + 1 :]
        else:
            semi = s.find(";")
            uri_text = (s if semi < 0 else s[:semi]).rstrip(" \t")
            if "?" in uri_text or "," in uri_text:
                raise SipParseError(f"a URI with '?' or ',' must be enclosed in <> (in {s[:60]!r})")
            uri = Uri.parse(uri_text)
            params_text = "" if semi < 0 else s[semi:]
        return cls(uri=uri, display_name=display, params=parse_params(params_text))

    def param(self, name: str) -> str | None:
        """Unquoted value of header parameter ``name``; ``""`` for a flag, else ``None``."""
        found, value = _lookup(self.params, name)
        if not found:
            return None
        return "" if value is None else unquote(value)

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (dialog identifier half), if present."""
        return self.param("tag") or None

    def with_param(self, name: str, value: str | None) -> Address:
        """A copy with header parameter ``name`` set (replacing any previous value)."""
        return replace(self, params=_without(self.params, name) + ((name, value),))

    def with_tag(self, tag: str) -> Address:
        """A copy carrying ``;tag=<tag>``."""
        return self.with_param("tag", tag)

    def __str__(self) -> str:
        name = "" if self.display_name is None else quote(self.display_name) + " "
        return f"{name}<{self.uri}>{format_params(self.params)}"


_VIA_RE = re.compile(
    r"[ \t]*([^\s/]+)[ \t]*/[ \t]*([^\s/]+)[ \t]*/[ \t]*([^\s/;:]+)[ \t]+"
    r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_\-.]+)(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value.

    Attributes:
        transport: Upper-case transport (``UDP``, ``TCP``, ``TLS``...).
        host: sent-by host.
        port: sent-by port, or ``None`` (5060, or 5061 for TLS).
        params: Parameters in order (``branch``, ``received``, ``rport``...).
        protocol: ``SIP/2.0``.

    Example:
        >>> v = Via.parse("SIP  /   2.0 /UDP    192.0.2.2;branch=390skdjuw")
        >>> (v.transport, v.host, v.sent_by, v.branch, v.rfc3261)
        ('UDP', '192.0.2.2', '192.0.2.2:5060', '390skdjuw', False)
    """

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    @classmethod
    def parse(cls, text: str) -> Via:
        """Parse one Via value (split a multi-valued Via header first).

        Raises:
            SipParseError: on a malformed sent-protocol, sent-by or parameter.
        """
        match = _VIA_RE.match(text)
        if match is None:
            raise SipParseError(f"malformed Via {text[:60]!r}")
        name, version, transport, host, port_text = match.groups()
        if _TOKEN_RE.fullmatch(name) is None or _TOKEN_RE.fullmatch(version) is None:
            raise SipParseError(f"malformed Via protocol in {text[:60]!r}")
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise SipParseError(f"Via port out of range in {text[:60]!r}")
        params = parse_params(text[match.end() :], what="Via")
        return cls(
            transport=transport.upper(),
            host=host,
            port=port,
            params=params,
            protocol=f"{name.upper()}/{version}",
        )

    def param(self, name: str) -> str | None:
        """Value of parameter ``name``; ``""`` for a flag, ``None`` if absent."""
        found, value = _lookup(self.params, name)
        if not found:
            return None
        return "" if value is None else unquote(value)

    @property
    def branch(self) -> str | None:
        """The ``branch`` parameter, if present."""
        return self.param("branch")

    @property
    def rfc3261(self) -> bool:
        """True when the branch has the RFC 3261 magic cookie and an id after it."""
        branch = self.branch
        return branch is not None and branch.startswith("z9hG4bK") and len(branch) > 7

    @property
    def sent_by(self) -> str:
        """``host:port`` with the transport's default port filled in (for matching)."""
        default = 5061 if self.transport == "TLS" else 5060
        return f"{self.host.lower()}:{self.port if self.port is not None else default}"

    def with_param(self, name: str, value: str | None) -> Via:
        """A copy with parameter ``name`` set (replacing any previous value)."""
        found, _ = _lookup(self.params, name)
        if not found:
            return replace(self, params=self.params + ((name, value),))
        lname = name.lower()
        return replace(
            self,
            params=tuple((k, value) if k.lower() == lname else (k, v) for k, v in self.params),
        )

    def __str__(self) -> str:
        port = "" if self.port is None else f":{self.port}"
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"


_CSEQ_RE = re.compile(rf"[ \t]*([0-9]+)[ \t]+([{_TOKEN_CHARS}]+)[ \t]*")


@dataclass(frozen=True, slots=True)
class CSeq:
    """A CSeq value.

    Attributes:
        seq: Sequence number (0 to 2**32-1).
        method: Method name, case-sensitive as on the wire.

    Example:
        >>> CSeq.parse("0009 INVITE")
        CSeq(seq=9, method='INVITE')
    """

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        """Parse a CSeq value.

        Raises:
            SipParseError: when the number is missing, not decimal or above
                2**32-1, or the method is not a token.
        """
        match = _CSEQ_RE.fullmatch(text)
        if match is None:
            raise SipParseError(f"malformed CSeq {text[:60]!r}")
        digits = match.group(1)
        if len(digits) > 10 or int(digits) > 0xFFFFFFFF:
            raise SipParseError(f"CSeq number {digits[:30]} is larger than 2**32-1")
        return cls(int(digits), match.group(2))

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"
