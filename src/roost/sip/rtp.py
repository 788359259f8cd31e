"""RTP (RFC 3550) packets, a reorder/jitter buffer, symmetric latching and DTMF.

Everything here is pure: bytes and explicit time in, packets and decisions
out. The asyncio media driver owns the sockets and the 20 ms ticker.

* :class:`RtpPacket` packs and unpacks the 12-byte header including CSRC
  lists, header extensions and padding; :func:`pack_rtp` is the allocation-light
  fast path for the common header-plus-payload packet.
* :class:`JitterBuffer` puts packets back in sequence order. An in-order packet
  is released at once (no added latency); a packet that arrives after a gap is
  held until the gap fills or it has waited ``max_delay``, then the gap is
  declared lost and reported as ``None`` entries so the player can conceal
  it. Late and duplicate packets are dropped and counted. Sequence numbers
  are extended past the 16-bit wrap (RFC 3550 §A.1) and a jump beyond
  ``max_dropout`` restarts the stream, as after a peer's SSRC change.
* :class:`RtpLatch` implements symmetric RTP (RFC 4961 behaviour, the
  "latching" most SBCs do): send to the SDP address until a valid packet
  arrives, then send to wherever packets actually come from, and ignore other
  sources unless the latched one falls silent (no hijack by a stray sender).
* :class:`TelephoneEvent` and :class:`DtmfReceiver` decode RFC 4733 DTMF;
  :func:`dtmf_payloads` encodes a digit as the packet sequence to send.

Example:
    >>> wire = pack_rtp(0, 65535, 160, 0x1234, b"\\xff" * 160, marker=True)
    >>> packet = RtpPacket.parse(wire)
    >>> (packet.payload_type, packet.sequence, packet.marker, len(packet.payload))
    (0, 65535, True, 160)
    >>> jb = JitterBuffer()
    >>> for seq in (65535, 1, 0):  # 1 arrives before 0, across the wrap
    ...     _ = jb.push(RtpPacket.parse(pack_rtp(0, seq, seq * 160, 7, b"")), now=0.0)
    >>> [p.sequence if p else None for p in jb.pop(now=0.0)]
    [65535, 0, 1]
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field

from roost.sip.errors import RtpError

__all__ = [
    "DTMF_EVENTS",
    "DtmfReceiver",
    "JitterBuffer",
    "JitterStats",
    "RtpLatch",
    "RtpPacket",
    "TelephoneEvent",
    "dtmf_payloads",
    "pack_rtp",
]

_HEADER = struct.Struct("!BBHII")
_EVENT = struct.Struct("!BBH")

DTMF_EVENTS = "0123456789*#ABCD"
"""RFC 4733 event codes 0-15 as DTMF characters (16 is flash)."""


def pack_rtp(
    payload_type: int,
    sequence: int,
    timestamp: int,
    ssrc: int,
    payload: bytes,
    *,
    marker: bool = False,
) -> bytes:
    """A plain RTP packet (version 2, no padding, extension or CSRC).

    Sequence and timestamp are reduced modulo 2**16 and 2**32, so callers can
    keep counting past the wrap.
    """
    second = (0x80 if marker else 0) | (payload_type & 0x7F)
    return (
        _HEADER.pack(0x80, second, sequence & 0xFFFF, timestamp & 0xFFFFFFFF, ssrc & 0xFFFFFFFF)
        + payload
    )


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet.

    Attributes:
        payload_type: 0-127.
        sequence: 16-bit sequence number.
        timestamp: 32-bit media timestamp.
        ssrc: Synchronisation source.
        payload: Payload bytes (padding removed).
        marker: The marker bit (start of a talkspurt, start of a DTMF event).
        csrcs: Contributing sources.
        extension: ``(profile, data)`` of a header extension, if present.
        padding: Padding bytes that followed the payload (0 when none).
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None
    padding: int = 0

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse a packet.

        Raises:
            RtpError: for a short packet, a version other than 2, or CSRC,
                extension or padding lengths that overrun the packet.
        """
        size = len(data)
        if size < 12:
            raise RtpError(f"RTP packet of {size} bytes is shorter than the 12-byte header")
        first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
        if first >> 6 != 2:
            raise RtpError(f"RTP version {first >> 6} is not 2")
        offset = 12
        count = first & 0x0F
        csrcs: tuple[int, ...] = ()
        if count:
            if offset + 4 * count > size:
                raise RtpError("CSRC list overruns the packet")
            csrcs = struct.unpack_from(f"!{count}I", data, offset)
            offset += 4 * count
        extension = None
        if first & 0x10:
            if offset + 4 > size:
                raise RtpError("header extension overruns the packet")
            profile, words = struct.unpack_from("!HH", data, offset)
            offset += 4
            if offset + 4 * words > size:
                raise RtpError("header extension overruns the packet")
            extension = (profile, bytes(data[offset : offset + 4 * words]))
            offset += 4 * words
        end = size
        padding = 0
        if first & 0x20:
            padding = data[-1]
            if padding == 0 or offset + padding > size:
                raise RtpError(f"invalid RTP padding length {padding}")
            end -= padding
        return cls(
            payload_type=second & 0x7F,
            sequence=sequence,
            timestamp=timestamp,
            ssrc=ssrc,
            payload=bytes(data[offset:end]),
            marker=bool(second & 0x80),
            csrcs=csrcs,
            extension=extension,
            padding=padding,
        )

    def to_bytes(self) -> bytes:
        """Serialise, including CSRCs, extension and padding."""
        if len(self.csrcs) > 15:
            raise RtpError("at most 15 CSRCs fit in an RTP header")
        first = 0x80 | len(self.csrcs)
        if self.extension is not None:
            first |= 0x10
        if self.padding:
            first |= 0x20
        second = (0x80 if self.marker else 0) | (self.payload_type & 0x7F)
        parts = [
            _HEADER.pack(
                first, second, self.sequence & 0xFFFF, self.timestamp & 0xFFFFFFFF, self.ssrc
            )
        ]
        parts.extend(struct.pack("!I", c) for c in self.csrcs)
        if self.extension is not None:
            profile, ext = self.extension
            if len(ext) % 4:
                raise RtpError("header extension data must be a multiple of 4 bytes")
            parts.append(struct.pack("!HH", profile, len(ext) // 4) + ext)
        parts.append(self.payload)
        if self.padding:
            if not 0 < self.padding < 256:
                raise RtpError("padding must be 1-255 bytes")
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


@dataclass(slots=True)
class JitterStats:
    """Counters of a :class:`JitterBuffer`.

    Attributes:
        received: Packets pushed and accepted.
        played: Packets released by :meth:`JitterBuffer.pop`.
        lost: Sequence numbers declared lost (never arrived in time).
        late: Packets that arrived after their slot was played or skipped.
        duplicates: Packets already held or recently played.
        reordered: Packets that arrived after a higher sequence number.
        resets: Stream restarts (sequence jumps beyond ``max_dropout``).
        jitter: RFC 3550 interarrival jitter estimate, in timestamp units.
    """

    received: int = 0
    played: int = 0
    lost: int = 0
    late: int = 0
    duplicates: int = 0
    reordered: int = 0
    resets: int = 0
    jitter: float = 0.0


class JitterBuffer:
    """Reorders RTP packets within a window; drops late and duplicate ones.

    Args:
        max_delay: Longest a packet waits for an earlier, missing one (s).
        capacity: Most packets held; beyond it gaps are skipped at once.
        max_dropout: A forward sequence jump larger than this restarts the stream.
        clock_rate: RTP clock rate, for the jitter estimate.
    """

    def __init__(
        self,
        *,
        max_delay: float = 0.06,
        capacity: int = 64,
        max_dropout: int = 3000,
        clock_rate: int = 8000,
    ) -> None:
        self.max_delay = max_delay
        self.capacity = capacity
        self.max_dropout = max_dropout
        self.clock_rate = clock_rate
        self.stats = JitterStats()
        self._held: dict[int, tuple[RtpPacket, float]] = {}
        self._next: int | None = None
        self._highest = 0
        self._recent: deque[int] = deque(maxlen=128)
        self._transit: float | None = None

    def _extend(self, sequence: int) -> int:
        if self._next is None:
            return sequence
        candidate = (self._highest & ~0xFFFF) | sequence
        if candidate - self._highest > 0x8000:
            candidate -= 0x10000
        elif self._highest - candidate > 0x8000:
            candidate += 0x10000
        return candidate

    def push(self, packet: RtpPacket, now: float) -> str:
        """Offer a received packet.

        Returns:
            ``"accepted"``, ``"duplicate"``, ``"late"`` or ``"reset"`` (accepted
            as the first packet of a restarted stream).
        """
        ext = self._extend(packet.sequence)
        result = "accepted"
        if self._next is None:
            self._next = self._highest = ext
        elif ext - self._next > self.max_dropout or self._next - ext > self.max_dropout:
            self._held.clear()
            self._recent.clear()
            self._next = self._highest = ext
            self._transit = None
            self.stats.resets += 1
            result = "reset"
        elif ext < self._next:
            if ext in self._recent:
                self.stats.duplicates += 1
                return "duplicate"
            self.stats.late += 1
            return "late"
        elif ext in self._held:
            self.stats.duplicates += 1
            return "duplicate"
        if ext < self._highest:
            self.stats.reordered += 1
        else:
            self._update_jitter(packet.timestamp, now)
            self._highest = ext
        self._held[ext] = (packet, now)
        self.stats.received += 1
        return result

    def _update_jitter(self, timestamp: int, now: float) -> None:
        transit = now * self.clock_rate - timestamp
        if self._transit is not None:
            delta = abs(transit - self._transit)
            if delta < self.clock_rate * 10:
                self.stats.jitter += (delta - self.stats.jitter) / 16
        self._transit = transit

    def pop(self, now: float) -> list[RtpPacket | None]:
        """Release what is playable at ``now``, in order; ``None`` marks one lost packet."""
        out: list[RtpPacket | None] = []
        held = self._held
        while held and self._next is not None:
            entry = held.pop(self._next, None)
            if entry is not None:
                out.append(entry[0])
                self._recent.append(self._next)
                self._next += 1
                self.stats.played += 1
                continue
            oldest = min(arrival for _, arrival in held.values())
            if now - oldest < self.max_delay and len(held) < self.capacity:
                break
            first = min(held)
            gap = first - self._next
            self.stats.lost += gap
            out.extend([None] * min(gap, self.capacity))
            self._next = first
        return out

    def next_deadline(self) -> float | None:
        """When a held packet's wait for a missing predecessor runs out, if any."""
        if not self._held or self._next in self._held:
            return None
        return min(arrival for _, arrival in self._held.values()) + self.max_delay

    def __len__(self) -> int:
        return len(self._held)


@dataclass(slots=True)
class RtpLatch:
    """Symmetric RTP: learn where to send from where packets really come from.

    Args:
        remote: The address from the SDP (where to send until latched).
        payload_types: Payload types a valid packet may carry (empty: any).
        expected_ssrc: Only latch on this SSRC, when the SDP announced one.
        relatch_after: Seconds of silence from the latched source after which
            another source may take over (the peer moved, e.g. NAT rebinding).

    Example:
        >>> latch = RtpLatch(("10.0.0.2", 4000), payload_types={0, 101})
        >>> p = RtpPacket(0, 1, 160, ssrc=9)
        >>> latch.accept(p, ("192.0.2.7", 31000), now=0.0), latch.target
        (True, ('192.0.2.7', 31000))
        >>> latch.accept(p, ("203.0.113.5", 1), now=0.5), latch.rejected
        (False, 1)
    """

    remote: tuple[str, int]
    payload_types: Collection[int] = ()
    expected_ssrc: int | None = None
    relatch_after: float = 2.0
    target: tuple[str, int] = field(init=False)
    latched: bool = field(init=False, default=False)
    ssrc: int | None = field(init=False, default=None)
    rejected: int = field(init=False, default=0)
    relatches: int = field(init=False, default=0)
    _last_seen: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self.target = self.remote

    def accept(self, packet: RtpPacket, source: tuple[str, int], now: float) -> bool:
        """Decide whether a packet from ``source`` belongs to this stream.

        Latches onto ``source`` on the first valid packet; afterwards only the
        latched source is accepted (until it has been silent ``relatch_after``).
        """
        if self.payload_types and packet.payload_type not in self.payload_types:
            self.rejected += 1
            return False
        if not self.latched:
            if self.expected_ssrc is not None and packet.ssrc != self.expected_ssrc:
                self.rejected += 1
                return False
            self.latched = True
            self.target = source
            self.ssrc = packet.ssrc
            self._last_seen = now
            return True
        if source == self.target:
            self.ssrc = packet.ssrc
            self._last_seen = now
            return True
        if now - self._last_seen >= self.relatch_after:
            self.target = source
            self.ssrc = packet.ssrc
            self._last_seen = now
            self.relatches += 1
            return True
        self.rejected += 1
        return False


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """An RFC 4733 telephone-event payload.

    Attributes:
        event: Event code (0-15 are DTMF ``0-9 * # A-D``).
        end: The end bit (the event is over; sent three times).
        volume: Power level in -dBm0 (0-63).
        duration: Duration so far, in timestamp units.
    """

    event: int
    end: bool = False
    volume: int = 10
    duration: int = 0

    @classmethod
    def parse(cls, payload: bytes) -> TelephoneEvent:
        """Parse the first event of a payload.

        Raises:
            RtpError: when the payload is shorter than 4 bytes.
        """
        if len(payload) < 4:
            raise RtpError(f"telephone-event payload of {len(payload)} bytes (need 4)")
        event, flags, duration = _EVENT.unpack_from(payload)
        return cls(event, bool(flags & 0x80), flags & 0x3F, duration)

    def to_bytes(self) -> bytes:
        """The 4-byte payload."""
        if not (0 <= self.event <= 255 and 0 <= self.volume <= 63 and 0 <= self.duration <= 0xFFFF):
            raise RtpError(f"telephone-event field out of range: {self!r}")
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)

    @property
    def digit(self) -> str | None:
        """The DTMF character for events 0-15, else ``None``."""
        return DTMF_EVENTS[self.event] if self.event < 16 else None


class DtmfReceiver:
    """Turns the redundant packets of RFC 4733 events into one report per digit.

    One event is many packets with the same RTP timestamp (updates while the
    key is held, then three end packets); a digit is reported once, on its
    first packet.
    """

    def __init__(self) -> None:
        self._last: tuple[int, int] | None = None

    def feed(self, packet: RtpPacket) -> str | None:
        """Return the digit if this packet starts a new event, else ``None``.

        Raises:
            RtpError: when the payload is not a telephone-event.
        """
        event = TelephoneEvent.parse(packet.payload)
        key = (packet.timestamp, event.event)
        if key == self._last:
            return None
        self._last = key
        return event.digit


def dtmf_payloads(
    digit: str, *, duration_ms: int = 100, volume: int = 10, packet_ms: int = 20
) -> list[tuple[bytes, bool]]:
    """The telephone-event payloads for one digit, as ``(payload, marker)`` pairs.

    All packets of the event share one RTP timestamp (the caller's); send one
    per ``packet_ms``. The last one is repeated three times with the end bit,
    as RFC 4733 §2.5.1.4 recommends.
    """
    if len(digit) != 1 or digit.upper() not in DTMF_EVENTS:
        raise ValueError(f"not a DTMF digit: {digit!r}")
    event = DTMF_EVENTS.index(digit.upper())
    step = 8 * packet_ms
    total = 8 * duration_ms
    out: list[tuple[bytes, bool]] = []
    elapsed = step
    while elapsed < total:
        out.append((TelephoneEvent(event, False, volume, elapsed).to_bytes(), not out))
        elapsed += step
    end = TelephoneEvent(event, True, volume, min(total, 0xFFFF)).to_bytes()
    out.extend([(end, not out)] + [(end, False)] * 2)
    return out
