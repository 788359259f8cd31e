"""Unit tests of :mod:`roost.sip.rtp`: packets, jitter buffer, latching, DTMF."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roost.sip.errors import RtpError
from roost.sip.rtp import (
    DtmfReceiver,
    JitterBuffer,
    RtpLatch,
    RtpPacket,
    TelephoneEvent,
    dtmf_payloads,
    pack_rtp,
)


def packet(sequence: int, *, timestamp: int | None = None, ssrc: int = 7) -> RtpPacket:
    ts = sequence * 160 if timestamp is None else timestamp
    return RtpPacket.parse(pack_rtp(0, sequence, ts, ssrc, b"\xff" * 4))


def sequences(released: list[RtpPacket | None]) -> list[int | None]:
    return [p.sequence if p is not None else None for p in released]


# --- header pack / unpack ---------------------------------------------------


def test_pack_rtp_writes_the_rfc_3550_header_byte_for_byte() -> None:
    wire = pack_rtp(8, 0x1234, 0xDEADBEEF, 0x01020304, b"pay", marker=True)
    assert wire == bytes.fromhex("80 88 1234 deadbeef 01020304") + b"pay"
    plain = pack_rtp(0, 1, 2, 3, b"")
    assert plain == bytes.fromhex("80 00 0001 00000002 00000003")


def test_pack_rtp_wraps_sequence_timestamp_and_ssrc() -> None:
    parsed = RtpPacket.parse(pack_rtp(0, 65536 + 5, 2**32 + 7, 2**32 + 9, b""))
    assert (parsed.sequence, parsed.timestamp, parsed.ssrc) == (5, 7, 9)
    last = RtpPacket.parse(pack_rtp(0, 65535, 2**32 - 1, 0xFFFFFFFF, b""))
    assert (last.sequence, last.timestamp, last.ssrc) == (65535, 2**32 - 1, 0xFFFFFFFF)


def test_parse_reads_every_header_field() -> None:
    header = bytes.fromhex(
        "b2"  # V=2, P=1, X=1, CC=2
        "e5"  # M=1, PT=101
        "fffe"  # sequence
        "00000320"  # timestamp 800
        "cafebabe"  # SSRC
        "00000001 00000002"  # CSRCs
        "bede0001 10ab0000"  # one-word extension
    )
    data = header + b"\x01\x02\x03" + b"\x00\x00\x03"
    parsed = RtpPacket.parse(data)
    assert parsed.marker is True
    assert parsed.payload_type == 101
    assert parsed.sequence == 0xFFFE
    assert parsed.timestamp == 800
    assert parsed.ssrc == 0xCAFEBABE
    assert parsed.csrcs == (1, 2)
    assert parsed.extension == (0xBEDE, bytes.fromhex("10ab0000"))
    assert parsed.padding == 3
    assert parsed.payload == b"\x01\x02\x03"
    assert parsed.to_bytes() == data


def test_to_bytes_of_a_plain_packet_equals_pack_rtp() -> None:
    p = RtpPacket(0, 10, 1600, 42, b"abc", marker=True)
    assert p.to_bytes() == pack_rtp(0, 10, 1600, 42, b"abc", marker=True)


def test_a_packet_that_is_all_header_has_an_empty_payload() -> None:
    assert RtpPacket.parse(pack_rtp(0, 1, 2, 3, b"")).payload == b""


def test_parse_accepts_memoryview_and_bytearray() -> None:
    wire = pack_rtp(0, 1, 2, 3, b"xyz")
    assert RtpPacket.parse(bytearray(wire)) == RtpPacket.parse(wire)  # type: ignore[arg-type]
    assert RtpPacket.parse(memoryview(wire)).payload == b"xyz"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter than the 12-byte header"),
        (bytes.fromhex("8000000100000002000000"), "shorter than the 12-byte header"),
        (bytes.fromhex("00000001 00000002 00000003"), "version 0"),
        (bytes.fromhex("40000001 00000002 00000003"), "version 1"),
        (bytes.fromhex("c0000001 00000002 00000003"), "version 3"),
        (bytes.fromhex("82000001 00000002 00000003 00000004"), "CSRC list overruns"),
        (bytes.fromhex("90000001 00000002 00000003 bede"), "extension overruns"),
        (bytes.fromhex("90000001 00000002 00000003 bede0002 00000000"), "extension overruns"),
        (bytes.fromhex("a0000001 00000002 00000003 00"), "padding length 0"),
        (bytes.fromhex("a0000001 00000002 00000003 0103"), "padding length 3"),
        (bytes.fromhex("a0000001 00000002 00000003"), "padding length"),
    ],
)
def test_malformed_packets_raise_rtp_error(data: bytes, match: str) -> None:
    with pytest.raises(RtpError, match=match):
        RtpPacket.parse(data)


def test_padding_may_take_the_whole_payload() -> None:
    parsed = RtpPacket.parse(bytes.fromhex("a0000001 00000002 00000003 00000004"))
    assert parsed.padding == 4
    assert parsed.payload == b""


@pytest.mark.parametrize(
    ("packet_", "match"),
    [
        (RtpPacket(0, 1, 2, 3, csrcs=tuple(range(16))), "15 CSRCs"),
        (RtpPacket(0, 1, 2, 3, extension=(1, b"abc")), "multiple of 4"),
        (RtpPacket(0, 1, 2, 3, padding=256), "padding"),
    ],
)
def test_unencodable_packets_raise_rtp_error(packet_: RtpPacket, match: str) -> None:
    with pytest.raises(RtpError, match=match):
        packet_.to_bytes()


rtp_packets = st.builds(
    RtpPacket,
    payload_type=st.integers(0, 127),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    payload=st.binary(max_size=200),
    marker=st.booleans(),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15).map(tuple),
    extension=st.none()
    | st.tuples(st.integers(0, 0xFFFF), st.binary(max_size=64).map(lambda b: b[: len(b) // 4 * 4])),
    padding=st.integers(0, 255),
)


@given(rtp_packets)
def test_every_packet_survives_pack_then_unpack(original: RtpPacket) -> None:
    wire = original.to_bytes()
    assert RtpPacket.parse(wire) == original
    assert RtpPacket.parse(wire).to_bytes() == wire


@given(
    st.integers(0, 127),
    st.integers(0, 2**20),
    st.integers(0, 2**40),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=200),
    st.booleans(),
)
def test_pack_rtp_round_trips_modulo_the_field_widths(
    pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool
) -> None:
    parsed = RtpPacket.parse(pack_rtp(pt, seq, ts, ssrc, payload, marker=marker))
    assert parsed == RtpPacket(pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, payload, marker)


@given(st.binary(max_size=100))
def test_arbitrary_bytes_parse_or_raise_rtp_error_only(data: bytes) -> None:
    try:
        RtpPacket.parse(data)
    except RtpError:
        pass


# --- jitter buffer ----------------------------------------------------------


def test_in_order_packets_are_released_at_once() -> None:
    jb = JitterBuffer()
    for seq in range(5):
        assert jb.push(packet(seq), now=seq * 0.02) == "accepted"
        assert sequences(jb.pop(now=seq * 0.02)) == [seq]
    assert jb.stats.received == jb.stats.played == 5
    assert len(jb) == 0
    assert jb.next_deadline() is None


def test_reordered_packets_are_put_back_in_order() -> None:
    jb = JitterBuffer()
    jb.push(packet(0), now=0.0)
    assert sequences(jb.pop(now=0.0)) == [0]
    jb.push(packet(2), now=0.02)
    jb.push(packet(3), now=0.02)
    assert jb.pop(now=0.03) == []
    assert len(jb) == 2
    jb.push(packet(1), now=0.04)
    assert sequences(jb.pop(now=0.04)) == [1, 2, 3]
    assert jb.stats.reordered == 1
    assert jb.stats.lost == 0


def test_a_gap_is_declared_lost_after_max_delay() -> None:
    jb = JitterBuffer(max_delay=0.06)
    jb.push(packet(0), now=0.0)
    jb.pop(now=0.0)
    jb.push(packet(3), now=1.0)
    assert jb.next_deadline() == pytest.approx(1.06)
    assert jb.pop(now=1.05) == []
    assert sequences(jb.pop(now=1.06)) == [None, None, 3]
    assert jb.stats.lost == 2
    # The lost packets turning up now are late.
    assert jb.push(packet(1), now=1.1) == "late"
    assert jb.push(packet(2), now=1.1) == "late"
    assert jb.stats.late == 2
    assert jb.pop(now=2.0) == []


def test_duplicates_held_or_already_played_are_dropped() -> None:
    jb = JitterBuffer()
    jb.push(packet(0), now=0.0)
    assert sequences(jb.pop(now=0.0)) == [0]
    assert jb.push(packet(0), now=0.01) == "duplicate"
    jb.push(packet(2), now=0.02)
    assert jb.push(packet(2), now=0.03) == "duplicate"
    assert jb.stats.duplicates == 2
    assert jb.stats.received == 2
    jb.push(packet(1), now=0.04)
    assert sequences(jb.pop(now=0.04)) == [1, 2]


def test_a_full_buffer_skips_the_gap_without_waiting() -> None:
    jb = JitterBuffer(capacity=4, max_delay=10.0)
    jb.push(packet(0), now=0.0)
    jb.pop(now=0.0)
    for seq in (2, 3, 4, 5):
        jb.push(packet(seq), now=0.0)
    assert sequences(jb.pop(now=0.0)) == [None, 2, 3, 4, 5]
    assert jb.stats.lost == 1


def test_sequence_numbers_are_extended_across_the_wrap() -> None:
    jb = JitterBuffer()
    for seq in (65534, 65535, 0, 1):
        assert jb.push(packet(seq), now=0.0) == "accepted"
    assert sequences(jb.pop(now=0.0)) == [65534, 65535, 0, 1]
    jb.push(packet(3), now=0.0)
    jb.push(packet(2), now=0.0)
    assert sequences(jb.pop(now=0.0)) == [2, 3]
    # A packet from before the wrap is late, not a jump 65535 ahead.
    assert jb.push(packet(65533), now=0.0) == "late"
    assert jb.stats.resets == 0


def test_reordering_across_the_wrap_waits_for_the_missing_packet() -> None:
    jb = JitterBuffer()
    jb.push(packet(65535), now=0.0)
    jb.pop(now=0.0)
    jb.push(packet(1), now=0.0)
    assert jb.pop(now=0.01) == []
    jb.push(packet(0), now=0.02)
    assert sequences(jb.pop(now=0.02)) == [0, 1]


@pytest.mark.parametrize("jump", [3001, 40000, -5000])
def test_a_jump_beyond_max_dropout_restarts_the_stream(jump: int) -> None:
    jb = JitterBuffer(max_dropout=3000)
    for seq in range(10000, 10003):
        jb.push(packet(seq), now=0.0)
    jb.pop(now=0.0)
    jb.push(packet(10005), now=0.0)
    # The jump is measured from the next sequence number to play, 10003.
    new = (10003 + jump) & 0xFFFF
    assert jb.push(packet(new, ssrc=99), now=0.1) == "reset"
    assert jb.stats.resets == 1
    assert sequences(jb.pop(now=0.1)) == [new]
    assert jb.push(packet((new + 1) & 0xFFFF, ssrc=99), now=0.12) == "accepted"


def test_a_jump_of_exactly_max_dropout_is_a_gap_not_a_restart() -> None:
    jb = JitterBuffer(max_dropout=3000, max_delay=0.06)
    jb.push(packet(0), now=0.0)
    jb.pop(now=0.0)
    assert jb.push(packet(3001), now=0.0) == "accepted"
    # capacity bounds the None entries a single gap can produce.
    released = jb.pop(now=0.1)
    assert sequences(released)[-1] == 3001
    assert released.count(None) == jb.capacity
    assert jb.stats.lost == 3000


def test_interarrival_jitter_is_zero_for_a_steady_stream_and_grows_with_variance() -> None:
    steady = JitterBuffer()
    for seq in range(50):
        steady.push(packet(seq), now=seq * 0.02)
        steady.pop(now=seq * 0.02)
    assert steady.stats.jitter == pytest.approx(0.0, abs=1e-6)
    bumpy = JitterBuffer()
    for seq in range(50):
        arrival = seq * 0.02 + (0.01 if seq % 2 else 0.0)
        bumpy.push(packet(seq), now=arrival)
        bumpy.pop(now=arrival)
    # Every transit differs from the last by 10 ms = 80 timestamp units.
    assert 40 < bumpy.stats.jitter <= 80


# --- symmetric RTP ----------------------------------------------------------


def test_latch_sends_to_the_sdp_address_until_a_packet_arrives() -> None:
    latch = RtpLatch(("10.0.0.2", 4000))
    assert latch.target == ("10.0.0.2", 4000)
    assert latch.latched is False
    assert latch.accept(packet(1, ssrc=5), ("192.0.2.7", 31000), now=0.0)
    assert latch.target == ("192.0.2.7", 31000)
    assert (latch.latched, latch.ssrc) == (True, 5)


def test_latch_ignores_other_sources_while_the_latched_one_talks() -> None:
    latch = RtpLatch(("10.0.0.2", 4000), relatch_after=2.0)
    latch.accept(packet(1), ("192.0.2.7", 31000), now=0.0)
    assert latch.accept(packet(2), ("192.0.2.7", 31000), now=1.0)
    assert not latch.accept(packet(1), ("203.0.113.5", 1), now=2.5)
    assert latch.target == ("192.0.2.7", 31000)
    assert latch.rejected == 1


def test_latch_moves_to_a_new_source_after_the_old_one_falls_silent() -> None:
    latch = RtpLatch(("10.0.0.2", 4000), relatch_after=2.0)
    latch.accept(packet(1, ssrc=1), ("192.0.2.7", 31000), now=0.0)
    assert latch.accept(packet(9, ssrc=2), ("192.0.2.7", 40000), now=2.0)
    assert latch.target == ("192.0.2.7", 40000)
    assert (latch.relatches, latch.ssrc) == (1, 2)
    assert not latch.accept(packet(2, ssrc=1), ("192.0.2.7", 31000), now=2.1)


def test_latch_refuses_unexpected_payload_types_and_ssrcs() -> None:
    latch = RtpLatch(("10.0.0.2", 4000), payload_types={0, 101}, expected_ssrc=77)
    video = RtpPacket.parse(pack_rtp(96, 1, 0, 77, b""))
    assert not latch.accept(video, ("192.0.2.7", 1), now=0.0)
    assert not latch.accept(packet(1, ssrc=5), ("192.0.2.7", 1), now=0.0)
    assert latch.latched is False
    assert latch.target == ("10.0.0.2", 4000)
    assert latch.accept(packet(1, ssrc=77), ("192.0.2.7", 1), now=0.0)
    assert latch.rejected == 2


# --- RFC 4733 DTMF ----------------------------------------------------------


def test_telephone_event_wire_format() -> None:
    event = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    assert event.to_bytes() == bytes.fromhex("0b 8a 0320")
    assert TelephoneEvent.parse(event.to_bytes()) == event
    assert event.digit == "#"
    # The reserved bit is ignored; trailing events are not read.
    assert TelephoneEvent.parse(bytes.fromhex("05 4a 00a0 0b8a0320")) == TelephoneEvent(
        5, False, 10, 160
    )
    assert TelephoneEvent(16).digit is None


@pytest.mark.parametrize(
    "event",
    [TelephoneEvent(256), TelephoneEvent(1, volume=64), TelephoneEvent(1, duration=0x10000)],
)
def test_out_of_range_telephone_events_raise_rtp_error(event: TelephoneEvent) -> None:
    with pytest.raises(RtpError, match="out of range"):
        event.to_bytes()


def test_short_telephone_event_payload_raises_rtp_error() -> None:
    with pytest.raises(RtpError, match="need 4"):
        TelephoneEvent.parse(b"\x01\x02\x03")


def test_dtmf_payloads_follow_rfc_4733() -> None:
    sent = dtmf_payloads("5", duration_ms=100, volume=10, packet_ms=20)
    events = [TelephoneEvent.parse(payload) for payload, _ in sent]
    assert [m for _, m in sent] == [True] + [False] * 6
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert {e.event for e in events} == {5}
    assert {e.volume for e in events} == {10}


def test_a_short_digit_is_three_end_packets_the_first_marked() -> None:
    sent = dtmf_payloads("a", duration_ms=20)
    assert [m for _, m in sent] == [True, False, False]
    assert {TelephoneEvent.parse(p).digit for p, _ in sent} == {"A"}


@pytest.mark.parametrize("digit", ["", "12", "E", "x"])
def test_dtmf_payloads_refuse_non_digits(digit: str) -> None:
    with pytest.raises(ValueError, match="DTMF"):
        dtmf_payloads(digit)


def test_dtmf_receiver_reports_each_digit_once() -> None:
    receiver = DtmfReceiver()
    heard: list[str | None] = []
    seq = 0
    for digit, timestamp in (("1", 8000), ("1", 16000), ("#", 24000)):
        for payload, marker in dtmf_payloads(digit):
            wire = pack_rtp(101, seq, timestamp, 9, payload, marker=marker)
            heard.append(receiver.feed(RtpPacket.parse(wire)))
            seq += 1
    assert [d for d in heard if d is not None] == ["1", "1", "#"]


def test_dtmf_receiver_refuses_a_payload_that_is_not_an_event() -> None:
    with pytest.raises(RtpError):
        DtmfReceiver().feed(RtpPacket(101, 1, 0, 9, b"\x01"))
