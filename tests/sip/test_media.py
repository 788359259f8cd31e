"""RtpSession on real UDP sockets: latching, reordering, loss, DTMF, bad input, both codecs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import numpy as np
import pytest

from roost.audio import rms_dbfs
from roost.sip import NegotiatedMedia, RtpPacket, RtpSession, dtmf_payloads, pack_rtp
from roost.sip.g711 import decode, encode

WAIT = 30.0


def tone(ms: int, rate: int = 16000, freq: float = 440.0) -> bytes:
    t = np.arange(rate * ms // 1000) / rate
    return (np.sin(2 * np.pi * freq * t) * 8000).astype("<i2").tobytes()


class Peer:
    """A raw UDP socket standing in for the far end."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.loop = asyncio.get_running_loop()

    async def send(self, data: bytes, port: int) -> None:
        await self.loop.sock_sendto(self.sock, data, ("127.0.0.1", port))

    async def recv(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.loop.sock_recvfrom(self.sock, 2048), WAIT)


@pytest.fixture
async def peer() -> AsyncIterator[Peer]:
    p = Peer()
    yield p
    p.sock.close()


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    async def poll() -> None:
        while not predicate():  # noqa: ASYNC110 - the session exposes plain counters
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
async def test_queued_audio_goes_out_as_paced_g711_then_silence(peer: Peer, codec: str) -> None:
    session = RtpSession("127.0.0.1")
    await session.open()
    pt = 0 if codec == "PCMU" else 8
    session.start(NegotiatedMedia(codec, pt, 8000, ("127.0.0.1", peer.port)))
    try:
        playback = session.queue(tone(200))
        packets = [RtpPacket.parse((await peer.recv())[0]) for _ in range(14)]
        assert await asyncio.wait_for(playback.future, WAIT) is True
        assert playback.sent_ms == pytest.approx(200.0)
    finally:
        session.close()
    assert {p.payload_type for p in packets} == {pt}
    assert all(len(p.payload) == 160 for p in packets)
    seqs = [p.sequence for p in packets]
    assert all((b - a) % 65536 == 1 for a, b in zip(seqs, seqs[1:], strict=False))
    stamps = [p.timestamp for p in packets]
    assert all((b - a) % 2**32 == 160 for a, b in zip(stamps, stamps[1:], strict=False))
    assert sum(p.marker for p in packets) == 1  # start of the talkspurt only
    loud = [rms_dbfs(decode(codec, p.payload)) > -30 for p in packets]
    assert 9 <= sum(loud) <= 11  # 200 ms of tone; the rest is silence
    assert session.stats.audio_sent_ms == pytest.approx(200.0, abs=20)


async def test_symmetric_rtp_answers_where_packets_really_come_from(peer: Peer) -> None:
    session = RtpSession("127.0.0.1")
    port = await session.open()
    # The SDP names a port nobody uses; the peer actually sends from its socket.
    session.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", 9)))
    try:
        await peer.send(pack_rtp(0, 1, 160, 77, encode("PCMU", bytes(320))), port)
        await wait_until(lambda: session.remote == ("127.0.0.1", peer.port), "latch")
        data, source = await peer.recv()
        assert source == ("127.0.0.1", port)
        assert RtpPacket.parse(data).payload_type == 0
    finally:
        session.close()


async def test_reordered_packets_play_in_order_and_a_lost_one_is_concealed(peer: Peer) -> None:
    got: list[bytes] = []
    session = RtpSession("127.0.0.1", on_audio=lambda pcm, at: got.append(pcm), jitter_delay=0.05)
    port = await session.open()
    session.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", peer.port)))
    loud = encode("PCMU", tone(20, rate=8000))
    try:
        for seq in (10, 12, 11, 14, 15):  # 13 never arrives
            await peer.send(pack_rtp(0, seq, seq * 160, 5, loud), port)
        await wait_until(lambda: session.stats.concealed == 1, "concealment")
        await wait_until(lambda: session.stats.audio_received_ms >= 120, "all six frames")
    finally:
        session.close()
    assert session.stats.received == 5
    assert session.stats.audio_received_ms == pytest.approx(120.0)
    assert sum(len(chunk) for chunk in got) > 0


async def test_dtmf_and_garbage_are_told_apart(peer: Peer) -> None:
    digits: list[str] = []
    session = RtpSession("127.0.0.1", on_dtmf=lambda digit, at: digits.append(digit))
    port = await session.open()
    session.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", peer.port), dtmf_payload_type=101))
    try:
        await peer.send(b"\x00not rtp", port)
        await peer.send(pack_rtp(96, 1, 0, 5, b"x" * 10), port)  # not negotiated
        for i, (payload, marker) in enumerate(dtmf_payloads("7")):
            await peer.send(pack_rtp(101, 100 + i, 8000, 5, payload, marker=marker), port)
        await wait_until(lambda: digits == ["7"], "digit")
        await wait_until(lambda: session.stats.invalid == 1, "invalid")
    finally:
        session.close()
    assert session.stats.rejected == 1
    assert session.stats.dtmf == 1


async def test_clear_cuts_the_queue_and_settles_playbacks(peer: Peer) -> None:
    session = RtpSession("127.0.0.1")
    await session.open()
    session.start(NegotiatedMedia("PCMA", 8, 8000, ("127.0.0.1", peer.port)))
    try:
        first = session.queue(tone(2000))
        second = session.queue(tone(500))
        for _ in range(10):
            await peer.recv()
        dropped = session.clear()
        assert await first.future is False and await second.future is False
        assert 0 < first.sent_ms < 2000 and second.sent_ms == 0
        assert dropped > 1000
        assert session.queued_ms == 0
        again = session.queue(tone(100))
        assert await asyncio.wait_for(again.future, WAIT) is True
    finally:
        session.close()
    late = session.queue(tone(100))
    assert late.future.done() and late.future.result() is False


async def test_odd_pcm_is_refused() -> None:
    session = RtpSession("127.0.0.1")
    await session.open()
    try:
        with pytest.raises(ValueError, match="even"):
            session.queue(b"\x00\x01\x02")
        with pytest.raises(ValueError, match="codec"):
            session.start(NegotiatedMedia("G722", 9, 8000, ("127.0.0.1", 9)))
    finally:
        session.close()


async def test_received_audio_is_decoded_in_batches_and_the_rest_on_close(peer: Peer) -> None:
    got: list[tuple[bytes, float]] = []
    session = RtpSession(
        "127.0.0.1", on_audio=lambda pcm, at: got.append((pcm, at)), receive_batch=0.1
    )
    port = await session.open()
    session.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", peer.port)))
    loud = encode("PCMU", tone(20, rate=8000))
    loop = asyncio.get_running_loop()
    before = loop.time()
    try:
        for seq in range(1, 21):  # 400 ms
            await peer.send(pack_rtp(0, seq, seq * 160, 5, loud), port)
        await wait_until(lambda: session.stats.audio_received_ms >= 400, "twenty frames")
        after = loop.time()
    finally:
        session.close()  # decodes what is still batched
    # One decode per 100 ms batch, stamped with its first packet's arrival.
    assert 1 <= len(got) <= 5
    assert all(before <= at <= after for _, at in got)
    assert all(a[1] <= b[1] for a, b in zip(got, got[1:], strict=False))
    received = sum(len(pcm) for pcm, _ in got) / 32  # ms at 16 kHz
    assert 200 <= received <= 400  # the resampler keeps its block of delay
    assert rms_dbfs(b"".join(pcm for pcm, _ in got)) > -30


@pytest.mark.parametrize("batch", [0.0, 5.0])
async def test_receive_batch_sets_how_long_audio_waits_to_be_decoded(
    peer: Peer, batch: float
) -> None:
    got: list[bytes] = []
    session = RtpSession("127.0.0.1", on_audio=lambda pcm, at: got.append(pcm), receive_batch=batch)
    port = await session.open()
    session.start(NegotiatedMedia("PCMA", 8, 8000, ("127.0.0.1", peer.port)))
    loud = encode("PCMA", tone(20, rate=8000))
    try:
        for seq in range(1, 11):  # 200 ms
            await peer.send(pack_rtp(8, seq, seq * 160, 5, loud), port)
        await wait_until(lambda: session.stats.audio_received_ms >= 200, "ten frames")
        if batch == 0:
            await wait_until(lambda: len(got) >= 1, "audio decoded packet by packet")
        else:
            await asyncio.sleep(0.3)  # several ticks: the batch is not old enough yet
            assert got == []
    finally:
        session.close()
    assert sum(map(len, got)) >= 100 * 32  # closing decodes the rest
    with pytest.raises(ValueError, match="receive_batch"):
        RtpSession("127.0.0.1", receive_batch=-1)


async def test_a_lost_packet_is_concealed_with_digital_silence_in_the_batch(peer: Peer) -> None:
    got: list[bytes] = []
    session = RtpSession("127.0.0.1", on_audio=lambda pcm, at: got.append(pcm), jitter_delay=0.04)
    port = await session.open()
    session.start(NegotiatedMedia("PCMA", 8, 8000, ("127.0.0.1", peer.port)))
    loud = encode("PCMA", tone(20, rate=8000))
    try:
        for seq in (1, 2, 3, 5, 6, 7, 8, 9, 10):  # 4 never arrives
            await peer.send(pack_rtp(8, seq, seq * 160, 5, loud), port)
        await wait_until(lambda: session.stats.audio_received_ms >= 200, "ten frames")
    finally:
        session.close()
    assert session.stats.concealed == 1
    pcm = np.frombuffer(b"".join(got), dtype="<i2")
    # The concealed frame is 320 samples at 16 kHz; its middle is silent, the
    # tone around it loud (the resampler's delay shifts it by a few samples).
    energy = [
        float(np.sqrt(np.mean(pcm[i : i + 160].astype(np.float64) ** 2)))
        for i in range(0, len(pcm) - 160, 40)
    ]
    assert max(energy) > 1000
    assert min(energy) < 10


async def test_small_chunks_queued_back_to_back_play_without_gaps(peer: Peer) -> None:
    session = RtpSession("127.0.0.1")
    await session.open()
    session.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", peer.port)))
    try:
        chunk = tone(1000)
        playbacks = [session.queue(chunk[i : i + 640]) for i in range(0, len(chunk), 640)]
        packets = [RtpPacket.parse((await peer.recv())[0]) for _ in range(56)]
        results = await asyncio.wait_for(asyncio.gather(*(p.future for p in playbacks)), WAIT)
    finally:
        session.close()
    assert all(results) and len(playbacks) == 50
    assert sum(p.sent_ms for p in playbacks) == pytest.approx(1000.0)
    loud = [rms_dbfs(decode("PCMU", p.payload)) > -30 for p in packets]
    first = loud.index(True)
    assert all(loud[first : first + 49])  # one talkspurt, no silent frame inside it
    assert sum(p.marker for p in packets) == 1


async def test_chunks_queued_after_each_other_went_out_are_sent_whole(peer: Peer) -> None:
    session = RtpSession("127.0.0.1")
    await session.open()
    session.start(NegotiatedMedia("PCMU", 0, 8000, ("127.0.0.1", peer.port)))
    received: list[RtpPacket] = []

    async def drain_peer() -> None:
        while True:
            received.append(RtpPacket.parse((await peer.recv())[0]))

    reader = asyncio.create_task(drain_peer())
    try:
        for _ in range(3):  # each one drains the resampler before the next comes
            playback = session.queue(tone(100))
            assert await asyncio.wait_for(playback.future, WAIT) is True
            assert playback.sent_ms == pytest.approx(100.0)
        await wait_until(lambda: session.stats.audio_sent_ms >= 300, "all audio")
    finally:
        reader.cancel()
        session.close()
    # 100 ms at 8 kHz is exactly five full frames: nothing lost, nothing padded.
    assert session.stats.audio_sent_ms == pytest.approx(300.0)
    loud = [p for p in received if rms_dbfs(decode("PCMU", p.payload)) > -30]
    assert 13 <= len(loud) <= 15


def test_the_send_downsampler_drains_like_a_flush_but_keeps_going() -> None:
    from roost.audio.resample import Resampler
    from roost.sip.media import _Downsampler

    speech = tone(1000) + tone(500, freq=1200.0)
    ours, reference = _Downsampler(), Resampler(16000, 8000)
    got, want = [], []
    for size in (3200, 640, 6400, 320, 3200):
        chunk, speech = speech[:size], speech[size:]
        got += [ours.process(chunk), ours.drain()]
        want += [reference.process(chunk), reference.flush()]
    a = np.frombuffer(b"".join(got), dtype="<i2").astype(np.int32)
    b = np.frombuffer(b"".join(want), dtype="<i2").astype(np.int32)
    assert len(a) == len(b) == (3200 + 640 + 6400 + 320 + 3200) // 4
    assert int(np.max(np.abs(a - b))) <= 4
    assert ours.done == len(a) * 2
