"""Unit tests of TCP stream framing (roost.sip.framing).

test_fuzz.py holds the framer to its contract on random input and checks a
7-byte chunking of valid messages; these pin down the exact rules: every
possible split point, a body that itself contains CRLFCRLF, the compact
``l:`` form, what a missing, repeated or non-numeric Content-Length raises,
a framed-but-malformed message keeping the stream in sync, and ping versus
pong keep-alives.
"""

from __future__ import annotations

import pytest

from roost.sip import Limits, SipParseError, SipRequest, SipResponse, StreamFramer
from roost.sip.framing import KeepAlive, MalformedMessage


def options(call_id: str, body: bytes = b"", length_header: str = "Content-Length") -> bytes:
    return (
        "OPTIONS sip:agent@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK-frame\r\n"
        "From: <sip:roost@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\n"
        f"{length_header}: {len(body)}\r\n\r\n"
    ).encode() + body


def test_two_messages_split_at_every_possible_point_come_out_whole() -> None:
    first = options("one", b"body with \r\n\r\n inside")  # CRLFCRLF in a body is not a boundary
    second = options("two")
    stream = first + second
    for cut in range(len(stream) + 1):
        framer = StreamFramer()
        got = framer.feed(stream[:cut]) + framer.feed(stream[cut:])
        assert [m.call_id for m in got if isinstance(m, SipRequest)] == ["one", "two"], cut
        assert got[0].body == b"body with \r\n\r\n inside"  # type: ignore[union-attr]
        assert framer.buffered == 0


def test_byte_by_byte_feeding_yields_each_message_as_its_last_byte_arrives() -> None:
    stream = options("a", b"xy") + options("b")
    framer = StreamFramer()
    completed_at = []
    for index in range(len(stream)):
        if framer.feed(stream[index : index + 1]):
            completed_at.append(index + 1)
    assert completed_at == [len(options("a", b"xy")), len(stream)]


def test_the_compact_length_header_frames_too() -> None:
    framer = StreamFramer()
    got = framer.feed(options("c", b"abc", length_header="l") + options("d"))
    assert [m.body for m in got if isinstance(m, SipRequest)] == [b"abc", b""]


def test_a_response_is_framed_like_a_request() -> None:
    response = (
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK-frame\r\n"
        b"From: <sip:roost@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>;tag=2\r\n"
        b"Call-ID: r\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    got = StreamFramer().feed(response)
    assert len(got) == 1 and isinstance(got[0], SipResponse) and got[0].status == 200


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (b"Content-Type: text/plain\r\n", "Content-Length is required on stream transports"),
        (b"Content-Length: 0\r\nl: 0\r\n", "several Content-Length headers on a stream"),
        (b"Content-Length: -5\r\n", "is not a number"),
        (b"Content-Length: ten\r\n", "is not a number"),
        (b"Content-Length: 12345678901\r\n", "is not a number"),
    ],
)
def test_a_stream_without_a_usable_content_length_loses_framing(head: bytes, fragment: str) -> None:
    message = options("x").replace(b"Content-Length: 0\r\n", head)
    framer = StreamFramer()
    with pytest.raises(SipParseError) as info:
        framer.feed(message)
    assert fragment in info.value.reason
    assert framer.buffered == 0
    # The stream cannot be resynchronised: every later feed is refused, naming why.
    with pytest.raises(SipParseError, match="framing was lost earlier") as later:
        framer.feed(options("y"))
    assert fragment in str(later.value)


def test_a_content_length_past_the_limit_is_refused_before_the_body() -> None:
    framer = StreamFramer(Limits(max_message_size=400))
    head = options("big").replace(b"Content-Length: 0", b"Content-Length: 1000")
    with pytest.raises(SipParseError, match="would exceed the 400-byte limit") as info:
        framer.feed(head)
    assert info.value.status == 513


def test_a_framed_but_malformed_message_keeps_the_stream_in_sync() -> None:
    bad = options("bad").replace(b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS")
    got = StreamFramer().feed(bad + options("good"))
    assert isinstance(got[0], MalformedMessage)
    assert got[0].raw == bad and "malformed CSeq" in got[0].error.reason
    assert isinstance(got[1], SipRequest) and got[1].call_id == "good"


def test_crlfcrlf_is_a_ping_and_a_lone_crlf_a_pong() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n\r\n") == [KeepAlive]
    assert framer.feed(b"\r\n") == []  # a pong needs no answer
    got = framer.feed(b"\r\n\r\n\r\n\r\n" + options("after"))
    assert got[:2] == [KeepAlive, KeepAlive] and isinstance(got[2], SipRequest)


def test_a_ping_split_across_reads_is_counted_once() -> None:
    framer = StreamFramer()
    assert framer.feed(b"\r\n") == []
    assert framer.feed(b"\r\n") == [KeepAlive]
    assert framer.feed(b"\r\n") == []
    assert framer.feed(options("m")) != []  # a message in between resets the count
    assert framer.feed(b"\r\n") == []
