"""The RTP media driver of one SIP call: G.711 over UDP, paced by the shared ticker.

:class:`RtpSession` owns the call's RTP socket and both audio directions:

* **out**: 16 kHz ``pcm_s16le`` queued with :meth:`RtpSession.queue` is
  resampled to 8 kHz (streaming) and G.711-encoded 100 ms at a time, a few
  frames ahead of the send position, in a callback that runs right after the
  tick (one numpy call per five packets, and a burst of long utterances never
  stalls the loop). Every 20 ms tick of the process-wide
  :class:`~roost.media.MediaTicker` then only copies the next 160 payload
  bytes into a reused packet buffer, packs the 12-byte header in place and
  sends it with ``sendto`` on the session's own non-blocking socket: with hundreds of
  calls on one tick, each subscriber's send waits for the ones before it, so
  nothing else happens there. Silence is sent while nothing is queued, so the
  peer's symmetric-RTP latch and NAT bindings stay alive.
* **in**: each datagram is parsed, checked by the :class:`~roost.sip.rtp.RtpLatch`
  (symmetric RTP: once the peer's packets arrive we send to where they come
  from) and put in order by the :class:`~roost.sip.rtp.JitterBuffer`; the
  payloads are collected and decoded and resampled 8 -> 16 kHz with a
  streaming :class:`~roost.audio.Resampler` ``receive_batch`` (100 ms) at a
  time, then handed to ``on_audio`` stamped with the arrival of the batch's
  first packet. soxr releases its output in ~100 ms blocks anyway, so the
  batch adds almost no delay and saves most of the per-packet numpy and soxr
  calls. A packet that never arrived is concealed with one frame of digital
  silence so the timeline keeps its length. RFC 4733 DTMF goes to
  ``on_dtmf`` at once. Packets that are not RTP, or come from a stranger once
  latched, are counted and dropped. :meth:`RtpSession.close` hands over what
  is still batched.
* **recording** (optional): a stereo WAV at 16 kHz, left our audio at its send
  deadline, right the peer's at its arrival.

No task sleeps per call: sending happens inside the ticker callback, receiving
inside ``datagram_received``, and held-back packets are released on the next
tick.

Example:
    >>> import asyncio
    >>> from roost.sip.media import RtpSession
    >>> from roost.sip.sdp import NegotiatedMedia
    >>> async def main() -> int:
    ...     got: list[bytes] = []
    ...     a = RtpSession("127.0.0.1")
    ...     b = RtpSession("127.0.0.1", on_audio=lambda pcm, at: got.append(pcm))
    ...     pa, pb = await a.open(), await b.open()
    ...     a.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", pb)))
    ...     b.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", pa)))
    ...     done = a.queue(b"\\x00\\x10" * 3200)  # 200 ms of audio
    ...     await done.future
    ...     await asyncio.sleep(0.1)
    ...     a.close(); b.close()
    ...     return sum(map(len, got)) // 640 >= 10
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roost.audio.resample import Resampler
from roost.audio.wav import StereoWavWriter
from roost.media.ticker import MediaTicker, Subscription
from roost.sip.errors import RtpError
from roost.sip.g711 import decode, encode
from roost.sip.rtp import DtmfReceiver, JitterBuffer, RtpLatch, RtpPacket
from roost.sip.sdp import NegotiatedMedia

__all__ = ["AudioCallback", "DtmfCallback", "FrameCallback", "Playback", "RtpSession", "RtpStats"]

logger = logging.getLogger(__name__)

AudioCallback = Callable[[bytes, float], None]
"""Receives the peer's audio as 16 kHz ``pcm_s16le`` with its arrival time (``loop.time()``)."""

DtmfCallback = Callable[[str, float], None]
"""Receives a DTMF digit the peer pressed, with its arrival time."""

FrameCallback = Callable[[float, float], None]
"""Called after each RTP packet is sent with ``(deadline, sent_at)`` in ``loop.time()``."""

_SILENCE = {"PCMU": b"\xff" * 160, "PCMA": b"\xd5" * 160}
_FRAME = 160  # payload bytes per packet: 20 ms of 8 kHz G.711
_HEADER = struct.Struct("!BBHII")  # RTP v2 fixed header, packed in place every tick
_COMPACT_AFTER = 1 << 16
_CHUNK = 3200  # 100 ms of 16 kHz audio converted at a time
_AHEAD = 4 * _FRAME  # converted ahead: catch-up ticks run back to back


@dataclass(slots=True)
class RtpStats:
    """Counters of one session.

    Attributes:
        sent: RTP packets sent.
        received: Valid packets accepted from the peer.
        invalid: Datagrams that were not RTP.
        rejected: Packets from another source or with an unexpected payload type.
        concealed: Lost packets replaced by silence.
        dtmf: DTMF digits received.
        audio_sent_ms: Queued audio actually sent (silence fill excluded).
        audio_received_ms: Peer audio received (concealment included).
    """

    sent: int = 0
    received: int = 0
    invalid: int = 0
    rejected: int = 0
    concealed: int = 0
    dtmf: int = 0
    audio_sent_ms: float = 0.0
    audio_received_ms: float = 0.0


class Playback:
    """One queued chunk of audio; :attr:`future` resolves when it was sent or cut.

    Attributes:
        future: Resolves to ``True`` when all of it was sent, ``False`` when
            :meth:`RtpSession.clear` (or the end of the call) cut it short.
        sent_ms: How much of it was sent, in milliseconds.
    """

    __slots__ = ("_end", "_start", "future", "sent_ms")

    def __init__(self, start: int, end: int, future: asyncio.Future[bool]) -> None:
        self._start = start
        self._end = end
        self.future = future
        self.sent_ms = 0.0


class _Downsampler:
    """16 -> 8 kHz for the send path, drained without resetting the filter.

    soxr releases output in blocks of ~100 ms, so the end of every queued
    utterance has to be drained before it can be sent. ``Resampler.flush``
    does that by ending the stream and resetting it, which costs three times
    a conversion, and an agent that streams its audio in small chunks pays it
    on every chunk. Here the tail is pushed out with zeros instead, and the
    output those zeros become is cut away, so the payload holds exactly the
    real audio, as after a flush, and the stream carries on.
    """

    __slots__ = ("_fed", "_next", "_resampler", "_segments", "done")

    # Zeros per push: just over one soxr HQ block (1,660 input samples), so
    # one push usually drains it (measured fastest among 256-2,048 samples).
    _PAD = bytes(2 * 1700)

    def __init__(self) -> None:
        self._resampler = Resampler(16000, 8000)
        # (end, real) in input samples since the last reset, in order; output
        # sample j stands for input sample 2j, and _next is 2 * outputs so far.
        self._segments: deque[tuple[int, bool]] = deque()
        self._fed = 0
        self._next = 0
        self.done = 0  # real input samples whose output was returned

    def process(self, pcm: bytes) -> bytes:
        """Convert real audio (an even number of bytes); returns what is ready."""
        return self._feed(pcm, True)

    def drain(self) -> bytes:
        """Return the rest of the real audio; the stream stays usable."""
        out: list[bytes] = []
        for _ in range(32):
            if not self._real_left():
                return b"".join(out)
            out.append(self._feed(self._PAD, False))
        # Never expected (soxr holding over a second): end the stream instead.
        done = self.done + self._real_left()
        out.append(self._route(self._resampler.flush()))
        self.reset()
        self.done = done
        return b"".join(out)

    def reset(self) -> None:
        """Drop the stream (barge-in): the next audio starts from scratch."""
        self._resampler.reset()
        self._segments.clear()
        self._fed = self._next = self.done = 0

    def _real_left(self) -> int:
        left = 0
        start = self._next
        for end, real in self._segments:
            if real and end > start:
                left += end - start
            start = max(start, end)
        return left

    def _feed(self, pcm: bytes, real: bool) -> bytes:
        self._fed += len(pcm) // 2
        segments = self._segments
        if segments and segments[-1][1] == real:
            segments[-1] = (self._fed, real)
        else:
            segments.append((self._fed, real))
        return self._route(self._resampler.process(pcm))

    def _route(self, out: bytes) -> bytes:
        total = len(out) // 2
        segments = self._segments
        kept = []
        offset = 0
        while offset < total and segments:
            end, real = segments[0]
            take = min(total - offset, max(0, (end - self._next + 1) // 2))
            if real and take:
                self.done = min(end, self._next + 2 * take) - self._next + self.done
                if take == total:
                    kept.append(out)
                else:
                    kept.append(out[2 * offset : 2 * (offset + take)])
            offset += take
            self._next += 2 * take
            if self._next >= end:
                segments.popleft()
        return kept[0] if len(kept) == 1 else b"".join(kept)


class _Rtp(asyncio.DatagramProtocol):
    def __init__(self, session: RtpSession) -> None:
        self._session = session

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # AF_INET only: addr is already the (host, port) pair.
        self._session._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the peer is not listening yet: harmless.
        logger.debug("RTP socket error: %s", exc)


class RtpSession:
    """RTP for one call. See the module docstring.

    Args:
        host: Local address to bind (and to announce in SDP).
        on_audio: Receives the peer's audio (16 kHz).
        on_dtmf: Receives the peer's DTMF digits.
        on_frame: Observes each send (lateness statistics).
        ticker: Media clock; the running loop's shared ticker by default.
        jitter_delay: Longest wait for a missing packet before it is concealed.
        receive_batch: Peer audio is decoded and resampled this many seconds
            at a time (one numpy and one soxr call per batch instead of per
            packet, the bulk of the receive cost); ``on_audio`` then gets
            chunks of about this length, at most this much later.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        *,
        on_audio: AudioCallback | None = None,
        on_dtmf: DtmfCallback | None = None,
        on_frame: FrameCallback | None = None,
        ticker: MediaTicker | None = None,
        jitter_delay: float = 0.06,
        receive_batch: float = 0.1,
    ) -> None:
        if receive_batch < 0:
            raise ValueError(f"receive_batch must not be negative, got {receive_batch}")
        self.host = host
        self.on_audio = on_audio
        self.on_dtmf = on_dtmf
        self.on_frame = on_frame
        self.stats = RtpStats()
        self.media: NegotiatedMedia | None = None
        self.port = 0
        self._ticker = ticker
        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._sock: socket.socket | None = None
        self._backlog = False  # the transport buffered a send: let it drain first
        self._frame = bytearray(_HEADER.size + _FRAME)  # reused for every packet
        self._frame_silent = False  # its payload already holds silence
        self._subscription: Subscription | None = None
        self._latch: RtpLatch | None = None
        self._jitter = JitterBuffer(max_delay=jitter_delay)
        self._dtmf = DtmfReceiver()
        self._up = Resampler(8000, 16000)
        # In path: G.711 released by the jitter buffer, decoded in batches.
        self._rx = bytearray()
        self._rx_at = 0.0  # arrival of the batch's first packet
        self._rx_gaps: list[tuple[int, int]] = []  # concealed byte ranges of _rx
        self._rx_batch = receive_batch
        self._rx_bytes = max(1, int(receive_batch * 8000))
        self._ssrc = int.from_bytes(os.urandom(4), "big")
        self._seq = int.from_bytes(os.urandom(2), "big")
        self._ts = int.from_bytes(os.urandom(4), "big")
        # Out path. Source positions count 16 kHz bytes ever queued; payload
        # positions count G.711 bytes ever produced (_pay_base is _payload[0]).
        self._down = _Downsampler()
        self._down_base = 0  # source position of the downsampler's last reset
        self._src = bytearray()  # queued 16 kHz audio not yet converted
        self._src_off = 0
        self._queued = 0
        self._converted = 0
        self._done_src = 0  # source bytes whose payload is all sent
        self._reset_src = 0  # positions of the last clear(): sent audio counts from here
        self._reset_pay = 0
        self._payload = bytearray()  # encoded audio, sent from _pos on
        self._pos = 0
        self._pay_base = 0
        self._marks: deque[tuple[int, int]] = deque()  # (payload end, source end) per chunk
        self._tail = False  # the downsampler holds the end of what was converted
        self._work_due = False  # _work is scheduled with call_soon
        self._pcm16 = bytearray()  # converted source kept for the recording
        self._rec_off = 0
        self._playbacks: deque[Playback] = deque()
        self._silence = _SILENCE["PCMU"]
        self._talking = False
        self._writer: StereoWavWriter | None = None
        self._zero = 0.0
        self._closed = False

    async def open(self) -> int:
        """Bind the RTP socket on a free port; returns the port."""
        loop = self._loop = asyncio.get_running_loop()
        # Our own non-blocking socket, so the tick can sendto() on it directly
        # (the transport's sendto costs as much again per packet); the
        # transport still reads it and buffers when the kernel says EAGAIN.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((self.host, 0))
            udp, _ = await loop.create_datagram_endpoint(lambda: _Rtp(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._udp = udp
        self._sock = sock
        self.port = sock.getsockname()[1]
        return self.port

    def start(self, media: NegotiatedMedia, *, zero: float | None = None) -> None:
        """Begin sending and accepting media as negotiated.

        Args:
            media: What offer/answer agreed on.
            zero: ``loop.time()`` of the answer; recording offsets count from it.
        """
        if self._loop is None or self._udp is None:
            raise RuntimeError("open() the session first")
        if media.codec not in _SILENCE:
            raise ValueError(f"unsupported codec {media.codec!r}")
        if self._rx:
            self._deliver()  # decode what arrived with the previous codec
        self.media = media
        self._silence = _SILENCE[media.codec]
        self._frame_silent = False
        types = {media.payload_type}
        if media.dtmf_payload_type is not None:
            types.add(media.dtmf_payload_type)
        self._latch = RtpLatch(media.remote, payload_types=types)
        self._zero = self._loop.time() if zero is None else zero
        if self._subscription is None and not self._closed:
            ticker = self._ticker or MediaTicker.for_running_loop()
            self._subscription = ticker.subscribe(self._on_tick)

    def record_to(self, writer: StereoWavWriter) -> None:
        """Record both directions into ``writer`` (left: ours, right: the peer's)."""
        self._writer = writer

    @property
    def queued_ms(self) -> float:
        """Audio queued and not yet sent, in milliseconds."""
        return (len(self._src) - self._src_off) / 32 + (len(self._payload) - self._pos) / 8

    def queue(self, pcm: bytes) -> Playback:
        """Queue 16 kHz ``pcm_s16le`` for sending after what is already queued.

        Raises:
            ValueError: for an odd number of bytes.
        """
        if len(pcm) % 2:
            raise ValueError(f"pcm_s16le needs an even number of bytes, got {len(pcm)}")
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        start = self._queued
        if self._closed or not pcm:
            future.set_result(not pcm)
            return Playback(start, start, future)
        self._src += pcm
        self._queued += len(pcm)
        playback = Playback(start, self._queued, future)
        self._playbacks.append(playback)
        if self._subscription is not None:
            self._schedule_work(loop)  # convert before the next tick needs it
        return playback

    def clear(self) -> float:
        """Drop everything queued (barge-in); returns the milliseconds dropped."""
        dropped = self.queued_ms
        self._drop_queue()
        return dropped

    def close(self) -> None:
        """Stop sending, close the socket, settle queued playbacks as cut short."""
        if self._closed:
            return
        self._closed = True
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None
        if self._rx:
            # The peer's last words of the batch still reach the listener.
            try:
                self._deliver()
            except Exception:
                logger.exception("on_audio failed while closing the RTP session")
        self._drop_queue()
        if self._udp is not None:
            self._udp.close()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def remote(self) -> tuple[str, int] | None:
        """Where packets go: the SDP address, or the latched source."""
        return self._latch.target if self._latch is not None else None

    # Sending (ticker callback: the hot path, once per call every 20 ms).

    def _on_tick(self, deadline: float) -> None:
        # Only what this tick's packet needs happens here: every subscriber's
        # send waits for the ones before it, so conversion and decoding are
        # left to _work, which runs right after the whole tick.
        sock = self._sock
        media = self.media
        if sock is None or media is None:
            return
        self._release(deadline, deliver=False)
        payload = self._payload
        pos = self._pos
        if len(payload) - pos < _FRAME and (self._src_off < len(self._src) or self._tail):
            self._fill(media.codec)  # queued since the last tick: convert now, not late
        frame = self._frame
        marker = 0
        if pos < len(payload):
            end = min(pos + _FRAME, len(payload))
            sent = end - pos
            frame[12 : 12 + sent] = payload[pos:end]
            if sent < _FRAME:
                frame[12 + sent :] = self._silence[sent:]
            self._frame_silent = False
            marker = 0 if self._talking else 0x80
            self._talking = True
            self._pos = pos = end
            self.stats.audio_sent_ms += sent / 8
            if self._writer is not None:
                rec = self._rec_off
                self._rec_off = rec + 4 * sent
                self._record(0, bytes(self._pcm16[rec : rec + 4 * sent]), deadline)
            marks = self._marks
            if marks and marks[0][0] <= self._pay_base + end:
                self._settle_playbacks()
        else:
            if not self._frame_silent:
                frame[12:] = self._silence
                self._frame_silent = True
            self._talking = False
        if media.direction in ("sendrecv", "sendonly"):
            assert self._latch is not None
            _HEADER.pack_into(
                frame,
                0,
                0x80,
                marker | (media.payload_type & 0x7F),
                self._seq & 0xFFFF,
                self._ts & 0xFFFFFFFF,
                self._ssrc,
            )
            self._send(sock, frame, self._latch.target)
            self.stats.sent += 1
            if self.on_frame is not None:
                assert self._loop is not None
                self.on_frame(deadline, self._loop.time())
        self._seq += 1
        self._ts += _FRAME
        if self._pos >= _COMPACT_AFTER:
            self._compact()
        ahead = len(payload) - self._pos
        if (ahead < _AHEAD and (self._src_off < len(self._src) or self._tail)) or (
            self._rx and deadline - self._rx_at >= self._rx_batch
        ):
            assert self._loop is not None
            self._schedule_work(self._loop)

    def _schedule_work(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._work_due:
            self._work_due = True
            loop.call_soon(self._work)

    def _work(self) -> None:
        """Convert queued audio ahead of the send position; decode a due receive batch."""
        self._work_due = False
        media = self.media
        if self._closed or media is None or self._loop is None:
            return
        if len(self._payload) - self._pos < _AHEAD:
            self._fill(media.codec)
        if self._rx and self._loop.time() - self._rx_at >= self._rx_batch:
            self._deliver()

    def _send(self, sock: socket.socket, frame: bytearray, target: tuple[str, int]) -> None:
        udp = self._udp
        assert udp is not None
        if self._backlog:
            # Selector transports have it; DatagramTransport does not declare it.
            if getattr(udp, "get_write_buffer_size", lambda: 0)():
                udp.sendto(frame, target)  # copies: the frame is reused
                return
            self._backlog = False
        try:
            sock.sendto(frame, target)
        except OSError:
            # EAGAIN, ICMP errors...: the transport retries, buffers or
            # reports to error_received exactly as it would have.
            udp.sendto(frame, target)
            self._backlog = True

    def _fill(self, codec: str) -> None:
        """Convert queued audio just ahead of the send position, 100 ms at a time.

        Converting lazily spreads the numpy work over the ticks: a burst of
        calls starting long utterances together never stalls the loop. The
        downsampler is drained (see :class:`_Downsampler`) only when the queue
        ran out and the send position is about to need the tail.
        """
        src = self._src
        payload = self._payload
        while len(payload) - self._pos < _AHEAD and self._src_off < len(src):
            chunk = bytes(src[self._src_off : self._src_off + _CHUNK])
            self._src_off += len(chunk)
            self._converted += len(chunk)
            pcm8 = self._down.process(chunk)
            if self._src_off >= len(src):
                src.clear()
                self._src_off = 0
            if pcm8:
                payload += encode(codec, pcm8)
            if self._writer is not None:
                self._pcm16 += chunk
            # The filter holds back the end of what it was given: source
            # counts as sent once its own output is in the payload.
            self._marks.append(
                (self._pay_base + len(payload), self._down_base + 2 * self._down.done)
            )
            self._tail = True
        if self._tail and self._src_off >= len(src) and len(payload) - self._pos < _AHEAD:
            pcm8 = self._down.drain()
            self._tail = False
            if pcm8:
                payload += encode(codec, pcm8)
            self._marks.append((self._pay_base + len(payload), self._converted))

    def _settle_playbacks(self) -> None:
        sent = self._pay_base + self._pos
        marks = self._marks
        while marks and marks[0][0] <= sent:
            self._done_src = marks.popleft()[1]
        playbacks = self._playbacks
        while playbacks and playbacks[0]._end <= self._done_src:
            playback = playbacks.popleft()
            playback.sent_ms = (playback._end - playback._start) / 32
            if not playback.future.done():
                playback.future.set_result(True)

    def _drop_queue(self) -> None:
        # Audio still inside the resampler never went out: count what did, at
        # 4 source bytes per payload byte sent since the last reset.
        sent = self._pay_base + self._pos - self._reset_pay
        done = min(self._converted, self._reset_src + 4 * sent)
        while self._playbacks:
            playback = self._playbacks.popleft()
            playback.sent_ms = max(0, min(done, playback._end) - playback._start) / 32
            if not playback.future.done():
                playback.future.set_result(playback._end <= done)
        self._src.clear()
        self._src_off = 0
        self._down.reset()
        self._pay_base += len(self._payload)
        self._payload.clear()
        self._pos = 0
        self._pcm16.clear()
        self._rec_off = 0
        self._marks.clear()
        self._tail = False
        self._converted = self._done_src = self._reset_src = self._down_base = self._queued
        self._reset_pay = self._pay_base

    def _compact(self) -> None:
        del self._payload[: self._pos]
        self._pay_base += self._pos
        self._pos = 0
        del self._pcm16[: self._rec_off]
        self._rec_off = 0

    # Receiving.

    def _on_datagram(self, data: bytes, source: tuple[Any, ...]) -> None:
        if self._closed or self._latch is None or self._loop is None:
            return
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.stats.invalid += 1
            return
        now = self._loop.time()
        if not self._latch.accept(packet, source, now):
            self.stats.rejected += 1
            return
        media = self.media
        assert media is not None
        if packet.payload_type == media.dtmf_payload_type:
            self._on_dtmf_packet(packet, now)
            return
        self.stats.received += 1
        self._jitter.push(packet, now)
        self._release(now)

    def _on_dtmf_packet(self, packet: RtpPacket, now: float) -> None:
        try:
            digit = self._dtmf.feed(packet)
        except RtpError:
            self.stats.invalid += 1
            return
        if digit is not None:
            self.stats.dtmf += 1
            if self.on_dtmf is not None:
                self.on_dtmf(digit, now)

    def _release(self, now: float, *, deliver: bool = True) -> None:
        jitter = self._jitter
        if not len(jitter):
            return
        packets = jitter.pop(now)
        if not packets:
            return
        stats = self.stats
        if self.on_audio is None and self._writer is None:
            # Nobody listens (a load generator): count, skip decoding and resampling.
            for packet in packets:
                if packet is None:
                    stats.concealed += 1
                    stats.audio_received_ms += 20.0
                else:
                    stats.audio_received_ms += len(packet.payload) / 8
            return
        rx = self._rx
        if not rx:
            self._rx_at = now
        for packet in packets:
            if packet is None:
                stats.concealed += 1
                stats.audio_received_ms += 20.0
                start = len(rx)
                rx += self._silence
                self._rx_gaps.append((start, len(rx)))
            else:
                rx += packet.payload
                stats.audio_received_ms += len(packet.payload) / 8
        if deliver and len(rx) >= self._rx_bytes:
            self._deliver()

    def _deliver(self) -> None:
        """Decode and resample the batch of peer audio, hand it to the listeners."""
        media = self.media
        assert media is not None
        pcm8 = decode(media.codec, bytes(self._rx))
        self._rx.clear()
        if self._rx_gaps:
            # A lost packet is concealed with digital silence (PCMA's silence
            # code decodes to +8, not 0).
            zeroed = bytearray(pcm8)
            for start, end in self._rx_gaps:
                zeroed[2 * start : 2 * end] = bytes(2 * (end - start))
            pcm8 = bytes(zeroed)
            self._rx_gaps.clear()
        pcm = self._up.process(pcm8)
        if not pcm:
            return
        at = self._rx_at
        if self._writer is not None:
            self._record(1, pcm, at)
        if self.on_audio is not None:
            self.on_audio(pcm, at)

    def _record(self, track: int, pcm: bytes, at: float) -> None:
        writer = self._writer
        assert writer is not None
        try:
            writer.add(track, pcm, (at - self._zero) * 1000.0)
        except (OSError, RuntimeError) as exc:
            logger.error("RTP recording stopped: %s", exc)
            self._writer = None
