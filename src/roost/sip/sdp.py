"""SDP (RFC 4566) and the offer/answer rules (RFC 3264) for G.711 voice calls.

Roost's calls carry one audio stream of G.711 (PCMU or PCMA, 8 kHz, 20 ms
frames) plus RFC 4733 telephone-events for DTMF. This module parses any
well-formed SDP (unknown lines are kept and written back), and negotiates
that subset:

* :func:`make_offer` writes ``m=audio <port> RTP/AVP 0 8 101`` with rtpmaps,
  ``a=fmtp:101 0-16``, ``a=ptime:20`` and a direction attribute;
* :func:`answer_offer` answers an offer: one answer m-line per offer m-line, in
  order (§6); the first acceptable audio stream gets the first codec *in the
  offerer's order* that we support, plus telephone-event (with the offerer's
  payload type) if it was offered; every other stream is refused with port 0;
  the direction is mirrored (an offer of ``sendonly`` is answered
  ``recvonly``...). An offer with no usable audio raises :class:`SdpError`
  with status 488 (Not Acceptable Here);
* :func:`negotiate_answer` reads the answer to our own offer.

Both negotiation functions return :class:`NegotiatedMedia`: codec, payload
types, where to send RTP, packet time and direction, which is all the RTP
driver needs. ``c=`` is taken from the media level, else the session level.

Example:
    >>> offer = make_offer("10.0.0.1", 40000, session_id=1)
    >>> answer, media = answer_offer(offer, "10.0.0.2", 50000, session_id=2)
    >>> (media.codec, media.payload_type, media.remote, media.dtmf_payload_type)
    ('PCMU', 0, ('10.0.0.1', 40000), 101)
    >>> negotiate_answer(offer, answer).remote
    ('10.0.0.2', 50000)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from roost.sip.errors import SdpError

__all__ = [
    "DIRECTIONS",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "SessionDescription",
    "answer_offer",
    "make_offer",
    "media_from_answer",
    "negotiate_answer",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
"""The RFC 3264 direction attributes."""

# RFC 3551 static payload types we can name without an rtpmap.
_STATIC: dict[int, tuple[str, int]] = {
    0: ("PCMU", 8000),
    3: ("GSM", 8000),
    4: ("G723", 8000),
    8: ("PCMA", 8000),
    9: ("G722", 8000),
    13: ("CN", 8000),
    18: ("G729", 8000),
}
_SUPPORTED = ("PCMU", "PCMA")
_STATIC_PT = {"PCMU": 0, "PCMA": 8}
_MIRROR = {
    "sendrecv": "sendrecv",
    "sendonly": "recvonly",
    "recvonly": "sendonly",
    "inactive": "inactive",
}
_ALLOWED = {
    "sendrecv": set(DIRECTIONS),
    "sendonly": {"recvonly", "inactive"},
    "recvonly": {"sendonly", "inactive"},
    "inactive": {"inactive"},
}


@dataclass(slots=True)
class Origin:
    """The ``o=`` line."""

    username: str = "roost"
    session_id: str = "0"
    version: int = 1
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (
            f"{self.username} {self.session_id} {self.version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(slots=True)
class MediaDescription:
    """One ``m=`` section.

    Attributes:
        media: ``audio``, ``video``...
        port: Transport port; 0 means the stream is refused or disabled.
        proto: ``RTP/AVP``...
        formats: Payload types (as text), in preference order.
        connection: Media-level ``c=`` address, if any.
        attributes: ``a=`` lines as ``(name, value-or-None)``, in order.
        other: Other lines (``b=``, ``i=``, ``k=``) as ``(type, value)``.
        port_count: The ``/count`` suffix of the port, if any.
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    connection: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)
    port_count: int | None = None

    def attribute(self, name: str) -> str | None:
        """Value of the first ``a=<name>`` (``""`` for a flag), else ``None``."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def rtpmap(self) -> dict[int, tuple[str, int]]:
        """Payload type -> (encoding name upper-cased, clock rate), static types included."""
        result = {pt: _STATIC[pt] for pt in self._payload_types() if pt in _STATIC}
        for key, value in self.attributes:
            if key != "rtpmap" or not value:
                continue
            pt_text, _, rest = value.partition(" ")
            encoding, _, clock_text = rest.strip().partition("/")
            clock_text = clock_text.partition("/")[0]
            if _small_number(pt_text, 3) and _small_number(clock_text, 9):
                result[int(pt_text)] = (encoding.upper(), int(clock_text))
        return result

    def fmtp(self, payload_type: int) -> str | None:
        """Format parameters of ``payload_type``, if any."""
        prefix = f"{payload_type} "
        for key, value in self.attributes:
            if key == "fmtp" and value and value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    @property
    def direction(self) -> str:
        """The direction attribute (``sendrecv`` when absent)."""
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return "sendrecv"

    @property
    def ptime(self) -> int | None:
        """The ``a=ptime`` value in milliseconds, if present and sane."""
        value = self.attribute("ptime")
        if value and value.isascii() and value.isdigit() and 0 < len(value) <= 4:
            return int(value) or None
        return None

    def _payload_types(self) -> list[int]:
        return [int(f) for f in self.formats if f.isascii() and f.isdigit() and len(f) <= 3]


@dataclass(slots=True)
class SessionDescription:
    """A whole SDP body.

    Attributes:
        origin: The ``o=`` line.
        session_name: The ``s=`` line.
        connection: Session-level ``c=`` address, if any.
        times: ``t=`` values.
        attributes: Session-level ``a=`` lines.
        media: The ``m=`` sections, in order.
        other: Other session-level lines, as ``(type, value)``.
    """

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: str | None = None
    times: list[str] = field(default_factory=lambda: ["0 0"])
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    other: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse an SDP body (CRLF or bare LF line ends).

        Raises:
            SdpError: with status 400 when the body is not valid SDP.
        """
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
        lines = [line.rstrip("\r") for line in text.split("\n")]
        while lines and not lines[-1]:
            lines.pop()
        if not lines or lines[0].strip() != "v=0":
            raise SdpError("SDP must start with v=0", status=400)
        sdp = cls(times=[])
        current: MediaDescription | None = None
        seen_origin = False
        for number, line in enumerate(lines[1:], start=2):
            if len(line) < 2 or line[1] != "=" or not line[0].isalpha():
                raise SdpError(
                    f"SDP line {number} is not '<type>=<value>': {line[:40]!r}", status=400
                )
            kind, value = line[0], line[2:].strip()
            if kind == "m":
                current = _parse_media(value, number)
                sdp.media.append(current)
            elif kind == "c":
                address = _parse_connection(value, number)
                if current is None:
                    sdp.connection = address
                else:
                    current.connection = address
            elif kind == "a":
                name, colon, attr_value = value.partition(":")
                entry = (name.strip(), attr_value.strip() if colon else None)
                (sdp.attributes if current is None else current.attributes).append(entry)
            elif current is not None:
                current.other.append((kind, value))
            elif kind == "o":
                sdp.origin = _parse_origin(value, number)
                seen_origin = True
            elif kind == "s":
                sdp.session_name = value
            elif kind == "t":
                sdp.times.append(value)
            else:
                sdp.other.append((kind, value))
        if not seen_origin:
            raise SdpError("SDP has no o= line", status=400)
        if not sdp.times:
            sdp.times = ["0 0"]
        return sdp

    def to_bytes(self) -> bytes:
        """The SDP text, CRLF line ends."""
        lines = ["v=0", f"o={self.origin}", f"s={self.session_name or '-'}"]
        lines.extend(f"{kind}={value}" for kind, value in self.other)
        if self.connection is not None:
            lines.append(_connection_line(self.connection))
        lines.extend(f"t={value}" for value in self.times)
        lines.extend(_attribute_line(name, value) for name, value in self.attributes)
        for m in self.media:
            port = f"{m.port}/{m.port_count}" if m.port_count else str(m.port)
            lines.append(f"m={m.media} {port} {m.proto} {' '.join(m.formats)}".rstrip())
            lines.extend(f"{kind}={value}" for kind, value in m.other if kind != "c")
            if m.connection is not None:
                lines.append(_connection_line(m.connection))
            lines.extend(_attribute_line(name, value) for name, value in m.attributes)
        return ("\r\n".join(lines) + "\r\n").encode("utf-8")

    def connection_for(self, media: MediaDescription) -> str | None:
        """The address RTP for ``media`` goes to (media-level ``c=``, else session-level)."""
        return media.connection if media.connection is not None else self.connection


def _small_number(text: str, digits: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= digits


def _connection_line(address: str) -> str:
    return f"c=IN {'IP6' if ':' in address else 'IP4'} {address}"


def _attribute_line(name: str, value: str | None) -> str:
    return f"a={name}" if value is None else f"a={name}:{value}"


def _parse_origin(value: str, number: int) -> Origin:
    parts = value.split()
    if len(parts) != 6 or not (parts[2].isascii() and parts[2].isdigit()) or len(parts[2]) > 20:
        raise SdpError(f"SDP line {number}: malformed o= {value[:60]!r}", status=400)
    return Origin(parts[0], parts[1], int(parts[2]), parts[3], parts[4], parts[5])


def _parse_connection(value: str, number: int) -> str:
    parts = value.split()
    if len(parts) != 3 or parts[0] != "IN" or parts[1] not in ("IP4", "IP6"):
        raise SdpError(f"SDP line {number}: malformed c= {value[:60]!r}", status=400)
    return parts[2].split("/", 1)[0]


def _parse_media(value: str, number: int) -> MediaDescription:
    parts = value.split()
    if len(parts) < 3:
        raise SdpError(f"SDP line {number}: malformed m= {value[:60]!r}", status=400)
    port_text, _, count_text = parts[1].partition("/")
    if not (port_text.isascii() and port_text.isdigit()) or len(port_text) > 5:
        raise SdpError(f"SDP line {number}: bad port in m= {value[:60]!r}", status=400)
    port = int(port_text)
    count: int | None = None
    if count_text:
        if not (count_text.isascii() and count_text.isdigit()) or len(count_text) > 5:
            raise SdpError(f"SDP line {number}: bad port count in m= {value[:60]!r}", status=400)
        count = int(count_text)
    if port > 65535:
        raise SdpError(f"SDP line {number}: port {port} out of range", status=400)
    return MediaDescription(parts[0], port, parts[2], parts[3:], port_count=count)


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What the RTP layer needs once offer and answer agree.

    Attributes:
        codec: ``PCMU`` or ``PCMA``.
        payload_type: RTP payload type of the codec.
        clock_rate: RTP clock rate (8000).
        remote: ``(address, port)`` to send RTP to (before symmetric latching).
        ptime: Packet time in ms the peer asked to receive (20 when unstated).
        dtmf_payload_type: Payload type of telephone-event, if negotiated.
        direction: Our direction: ``sendrecv``, ``sendonly``, ``recvonly`` or
            ``inactive``.
    """

    codec: str
    payload_type: int
    clock_rate: int
    remote: tuple[str, int]
    ptime: int = 20
    dtmf_payload_type: int | None = None
    direction: str = "sendrecv"


def make_offer(
    address: str,
    port: int,
    *,
    codecs: Sequence[str] = _SUPPORTED,
    dtmf_payload_type: int | None = 101,
    ptime: int = 20,
    direction: str = "sendrecv",
    session_id: int = 0,
    session_version: int = 1,
    username: str = "roost",
) -> SessionDescription:
    """An offer of one audio stream with G.711 and telephone-event.

    Args:
        address: Our RTP address (``c=``).
        port: Our RTP port.
        codecs: Codec names in our preference order (``PCMU``, ``PCMA``).
        dtmf_payload_type: Payload type for telephone-event, or ``None``.
        ptime: Packet time to ask for, in ms.
        direction: One of :data:`DIRECTIONS`.
        session_id: ``o=`` session id (random per call).
        session_version: ``o=`` version (bump on every new offer).
        username: ``o=`` user name.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}")
    unknown = [c for c in codecs if c.upper() not in _STATIC_PT]
    if unknown or not codecs:
        raise ValueError(f"codecs must be a non-empty subset of {_SUPPORTED}, got {codecs!r}")
    formats = [str(_STATIC_PT[c.upper()]) for c in codecs]
    attributes: list[tuple[str, str | None]] = [
        ("rtpmap", f"{_STATIC_PT[c.upper()]} {c.upper()}/8000") for c in codecs
    ]
    if dtmf_payload_type is not None:
        formats.append(str(dtmf_payload_type))
        attributes.append(("rtpmap", f"{dtmf_payload_type} telephone-event/8000"))
        attributes.append(("fmtp", f"{dtmf_payload_type} 0-16"))
    attributes.append(("ptime", str(ptime)))
    attributes.append((direction, None))
    media = MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)
    origin = Origin(username, str(session_id), session_version, "IN", _addrtype(address), address)
    return SessionDescription(origin=origin, connection=address, media=[media])


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def answer_offer(
    offer: SessionDescription,
    address: str,
    port: int,
    *,
    codecs: Sequence[str] = _SUPPORTED,
    dtmf: bool = True,
    ptime: int = 20,
    direction: str = "sendrecv",
    session_id: int = 0,
    session_version: int = 1,
    username: str = "roost",
    prefer: str | None = None,
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer ``offer`` (RFC 3264 §6) with one G.711 audio stream.

    The codec is the first one in the *offerer's* order that we support, except
    that ``prefer`` wins when offered (a re-INVITE keeps the running codec).

    Returns:
        The answer and the negotiated media parameters.

    Raises:
        SdpError: status 488 when no audio stream can be accepted, 400 when an
            accepted stream has no connection address.
    """
    supported = [c.upper() for c in codecs]
    answer_media: list[MediaDescription] = []
    negotiated: NegotiatedMedia | None = None
    for m in offer.media:
        chosen = None
        if negotiated is None and m.media == "audio" and m.port != 0:
            chosen = _pick_codec(m, [prefer.upper()]) if prefer else None
            chosen = chosen or _pick_codec(m, supported)
        if chosen is None or not m.proto.upper().startswith("RTP/AVP"):
            answer_media.append(MediaDescription(m.media, 0, m.proto, m.formats[:] or ["0"]))
            continue
        pt, name = chosen
        remote_host = offer.connection_for(m)
        if remote_host is None:
            raise SdpError("offer has no c= address for its audio stream", status=400)
        formats = [str(pt)]
        attributes: list[tuple[str, str | None]] = [("rtpmap", f"{pt} {name}/8000")]
        dtmf_pt = _telephone_event(m) if dtmf else None
        if dtmf_pt is not None:
            formats.append(str(dtmf_pt))
            attributes.append(("rtpmap", f"{dtmf_pt} telephone-event/8000"))
            attributes.append(("fmtp", f"{dtmf_pt} {m.fmtp(dtmf_pt) or '0-16'}"))
        attributes.append(("ptime", str(ptime)))
        ours = direction if direction in _ALLOWED[m.direction] else _MIRROR[m.direction]
        attributes.append((ours, None))
        answer_media.append(
            MediaDescription("audio", port, m.proto, formats, attributes=attributes)
        )
        negotiated = NegotiatedMedia(
            codec=name,
            payload_type=pt,
            clock_rate=8000,
            remote=(remote_host, m.port),
            ptime=m.ptime or 20,
            dtmf_payload_type=dtmf_pt,
            direction=ours,
        )
    if negotiated is None:
        offered = "; ".join(
            f"{m.media} {m.port} {m.proto} {' '.join(m.formats)}" for m in offer.media
        )
        raise SdpError(
            f"no acceptable audio stream (we support {'/'.join(supported)} over RTP/AVP; "
            f"offered: {offered or 'no media'})",
            status=488,
        )
    origin = Origin(username, str(session_id), session_version, "IN", _addrtype(address), address)
    answer = SessionDescription(origin=origin, connection=address, media=answer_media)
    return answer, negotiated


def _pick_codec(media: MediaDescription, supported: list[str]) -> tuple[int, str] | None:
    rtpmap = media.rtpmap()
    for pt in media._payload_types():
        name, clock = rtpmap.get(pt, ("", 0))
        if name in supported and clock == 8000:
            return pt, name
    return None


def _telephone_event(media: MediaDescription) -> int | None:
    for pt, (name, clock) in media.rtpmap().items():
        if name == "TELEPHONE-EVENT" and clock == 8000 and str(pt) in media.formats:
            return pt
    return None


def negotiate_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """Read the peer's answer to our ``offer``.

    Raises:
        SdpError: status 488 when the answer accepts no audio stream we offered
            or picks a codec we did not offer; 400 when it is inconsistent
            (m-line count differs, no connection address).
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(
            f"answer has {len(answer.media)} m-lines for an offer of {len(offer.media)}",
            status=400,
        )
    for ours, theirs in zip(offer.media, answer.media, strict=True):
        if ours.media != "audio" or ours.port == 0 or theirs.port == 0:
            continue
        offered = {name for name, _ in ours.rtpmap().values()}
        chosen = _pick_codec(theirs, [c for c in _SUPPORTED if c in offered])
        if chosen is None:
            raise SdpError(
                f"answer picked no codec we offered (formats {' '.join(theirs.formats)})",
                status=488,
            )
        remote_host = answer.connection_for(theirs)
        if remote_host is None:
            raise SdpError("answer has no c= address for its audio stream", status=400)
        return NegotiatedMedia(
            codec=chosen[1],
            payload_type=chosen[0],
            clock_rate=8000,
            remote=(remote_host, theirs.port),
            ptime=theirs.ptime or 20,
            dtmf_payload_type=_telephone_event(theirs),
            direction=_MIRROR.get(theirs.direction, "sendrecv"),
        )
    raise SdpError("answer accepts no audio stream", status=488)


def media_from_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """The answerer's view of an offer and the answer it built (e.g. by hand).

    Raises:
        SdpError: when the answer accepts no audio stream with a G.711 codec.
    """
    for index, theirs in enumerate(offer.media):
        if index >= len(answer.media):
            break
        ours = answer.media[index]
        if ours.media != "audio" or ours.port == 0:
            continue
        chosen = _pick_codec(ours, list(_SUPPORTED))
        remote_host = offer.connection_for(theirs)
        if chosen is None or remote_host is None:
            continue
        return NegotiatedMedia(
            codec=chosen[1],
            payload_type=chosen[0],
            clock_rate=8000,
            remote=(remote_host, theirs.port),
            ptime=theirs.ptime or 20,
            dtmf_payload_type=_telephone_event(ours),
            direction=ours.direction,
        )
    raise SdpError("the answer accepts no G.711 audio stream of the offer", status=488)
