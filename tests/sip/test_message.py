"""Unit tests of the SIP message parser and serialiser (roost.sip.message).

The integration tests (test_core.py), the RFC 4475 torture fixtures and the
fuzz run exercise the parser as a whole; these pin down each rule on its own:
name folding, every compact form, unfolding, list splitting, header order,
Content-Length, the size limits and the exact parse error of each malformed
input.
"""

from __future__ import annotations

import pytest

from roost.sip import Limits, SipParseError, SipRequest, SipResponse, parse_message
from roost.sip.errors import InvalidHeaderError
from roost.sip.headers import canonical_name, header_key, split_list
from roost.sip.message import Headers, make_response

HEAD = (
    "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-unit-1\r\n"
    "From: <sip:roost@127.0.0.1>;tag=a1\r\n"
    "To: <sip:agent@127.0.0.1>\r\n"
    "Call-ID: unit-1@127.0.0.1\r\n"
)


def request(extra: str = "", *, method: str = "OPTIONS", body: bytes = b"") -> bytes:
    return (
        f"{method} sip:agent@127.0.0.1 SIP/2.0\r\n{HEAD}CSeq: 1 {method}\r\n{extra}\r\n"
    ).encode() + body


def parse_error(data: bytes, limits: Limits | None = None) -> SipParseError:
    with pytest.raises(SipParseError) as info:
        if limits is None:
            parse_message(data)
        else:
            parse_message(data, limits)
    return info.value


def test_a_request_parses_into_its_parts() -> None:
    msg = parse_message(request("Content-Type: text/plain\r\nContent-Length: 5\r\n", body=b"hello"))
    assert isinstance(msg, SipRequest)
    assert (msg.method, msg.uri) == ("OPTIONS", "sip:agent@127.0.0.1")
    assert msg.request_uri.host == "127.0.0.1" and msg.request_uri.user == "agent"
    assert msg.call_id == "unit-1@127.0.0.1"
    assert (msg.cseq.seq, msg.cseq.method) == (1, "OPTIONS")
    assert msg.from_.tag == "a1" and msg.to.tag is None
    assert msg.top_via.branch == "z9hG4bK-unit-1"
    assert msg.content_type == "text/plain"
    assert msg.body == b"hello"


def test_a_response_parses_with_a_reason_containing_spaces() -> None:
    data = f"SIP/2.0 486 Busy Here Right Now\r\n{HEAD}CSeq: 7 INVITE\r\n\r\n".encode()
    msg = parse_message(data)
    assert isinstance(msg, SipResponse)
    assert (msg.status, msg.reason) == (486, "Busy Here Right Now")
    assert msg.cseq.seq == 7 and msg.body == b""


def test_a_response_may_have_an_empty_reason() -> None:
    msg = parse_message(f"SIP/2.0 200 \r\n{HEAD}CSeq: 1 BYE\r\n\r\n".encode())
    assert isinstance(msg, SipResponse) and (msg.status, msg.reason) == (200, "")


def test_serialising_a_parsed_message_round_trips() -> None:
    original = parse_message(request("X-Simulation-Result-Id: 720488\r\n", body=b""))
    again = parse_message(original.to_bytes())
    assert isinstance(original, SipRequest) and isinstance(again, SipRequest)
    assert again.method == original.method and again.uri == original.uri
    # Content-Length is always written, so the re-parsed copy gains it at the end.
    assert list(again.headers) == [*original.headers, ("Content-Length", "0")]
    assert again.to_bytes() == original.to_bytes()


def test_built_request_and_response_serialise_with_start_line_and_length() -> None:
    req = SipRequest("BYE", "sip:agent@127.0.0.1", [("Call-ID", "x")], b"abc")
    assert (
        req.to_bytes()
        == b"BYE sip:agent@127.0.0.1 SIP/2.0\r\nCall-ID: x\r\nContent-Length: 3\r\n\r\nabc"
    )
    resp = SipResponse(404, headers=[("Call-ID", "x")])
    assert resp.to_bytes().startswith(b"SIP/2.0 404 Not Found\r\n")
    assert SipResponse(299).reason == ""  # no default phrase: left empty, not invented


@pytest.mark.parametrize("spelling", ["Call-ID", "call-id", "CALL-ID", "cAlL-iD", "i", "I"])
def test_header_names_are_case_insensitive(spelling: str) -> None:
    data = request().replace(b"Call-ID: unit-1", spelling.encode() + b": unit-1")
    msg = parse_message(data)
    assert msg.call_id == "unit-1@127.0.0.1"
    assert msg.headers.get("CALL-id") == "unit-1@127.0.0.1"
    assert "call-id" in msg.headers and "I" in msg.headers
    # Written back with the RFC spelling whatever arrived.
    assert b"\r\nCall-ID: unit-1@127.0.0.1\r\n" in msg.to_bytes()


@pytest.mark.parametrize(
    ("compact", "full"),
    [
        ("a", "Accept-Contact"),
        ("b", "Referred-By"),
        ("c", "Content-Type"),
        ("d", "Request-Disposition"),
        ("e", "Content-Encoding"),
        ("f", "From"),
        ("i", "Call-ID"),
        ("j", "Reject-Contact"),
        ("k", "Supported"),
        ("l", "Content-Length"),
        ("m", "Contact"),
        ("o", "Event"),
        ("r", "Refer-To"),
        ("s", "Subject"),
        ("t", "To"),
        ("u", "Allow-Events"),
        ("v", "Via"),
        ("x", "Session-Expires"),
        ("y", "Identity"),
    ],
)
def test_every_compact_form_maps_to_its_full_name(compact: str, full: str) -> None:
    assert header_key(compact) == full.lower()
    assert header_key(compact.upper()) == full.lower()
    assert canonical_name(compact) == full
    headers = Headers([(compact, "1")])
    assert list(headers) == [(full, "1")]
    assert headers.get(full) == "1" and headers.get(full.upper()) == "1"


def test_a_message_written_in_compact_form_parses_like_the_long_one() -> None:
    data = (
        b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\n"
        b"v: SIP/2.0/TCP 127.0.0.1:5062;branch=z9hG4bK-c\r\n"
        b"f: <sip:roost@127.0.0.1>;tag=9\r\n"
        b"t: <sip:agent@127.0.0.1>\r\n"
        b"i: compact@h\r\n"
        b"CSeq: 3 INVITE\r\n"
        b"m: <sip:roost@127.0.0.1:5062;transport=tcp>\r\n"
        b"k: timer, 100rel\r\n"
        b"s: hi\r\n"
        b"c: application/sdp\r\n"
        b"l: 4\r\n\r\nv=0\r\n"
    )
    msg = parse_message(data)
    assert msg.top_via.transport == "TCP"
    assert msg.call_id == "compact@h" and msg.from_.tag == "9"
    assert msg.contact[0].uri.transport == "TCP"
    assert msg.headers.get_all("Supported") == ["timer", "100rel"]
    assert msg.headers.get("Subject") == "hi"
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\r"  # l: 4 counted exactly, the rest ignored
    names = [name for name, _ in msg.headers]
    assert names == [
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Supported",
        "Supported",
        "Subject",
        "Content-Type",
        "Content-Length",
    ]


def test_folded_lines_are_unfolded_to_one_space() -> None:
    data = request("Subject: first part\r\n   second part\r\n\tthird part\r\n")
    msg = parse_message(data)
    assert msg.headers.get("subject") == "first part second part third part"
    assert b"Subject: first part second part third part\r\n" in msg.to_bytes()


def test_a_folded_via_is_unfolded_before_it_is_split() -> None:
    data = request().replace(
        b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-unit-1\r\n",
        b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-unit-1,\r\n"
        b" SIP/2.0/UDP 10.0.0.9;branch=z9hG4bK-2\r\n",
    )
    msg = parse_message(data)
    assert [v.branch for v in msg.via] == ["z9hG4bK-unit-1", "z9hG4bK-2"]


def test_list_headers_are_split_but_not_inside_quotes_or_angle_brackets() -> None:
    data = request(
        'Contact: "Doe, John" <sip:john@127.0.0.1;x=a,b>;q=0.5, <sip:two@127.0.0.1>\r\n'
        "Allow: INVITE, ACK,BYE ,  CANCEL\r\n"
    )
    msg = parse_message(data)
    contacts = msg.contact
    assert [c.display_name for c in contacts] == ["Doe, John", None]
    assert [c.uri.user for c in contacts] == ["john", "two"]
    assert msg.headers.get_all("contact")[0] == '"Doe, John" <sip:john@127.0.0.1;x=a,b>;q=0.5'
    assert msg.headers.get_all("allow") == ["INVITE", "ACK", "BYE", "CANCEL"]
    assert split_list('a, "b, c", <d,e>, f') == ["a", '"b, c"', "<d,e>", "f"]


def test_headers_that_are_not_lists_keep_their_commas() -> None:
    msg = parse_message(request("Subject: one, two, three\r\nX-Tags: a, b\r\n"))
    assert msg.headers.get_all("subject") == ["one, two, three"]
    assert msg.headers.get_all("x-tags") == ["a, b"]


def test_unknown_x_headers_keep_their_order_and_case_on_reserialisation() -> None:
    extra = (
        "X-Zeta: 1\r\n"
        "x-simulation-result-id: 720488\r\n"
        "X-Call-Type: SIP\r\n"
        "X-ALPHA: 2\r\n"
        "X-Zeta: 3\r\n"
    )
    msg = parse_message(request(extra))
    xs = [(n, v) for n, v in msg.headers if n.lower().startswith("x-")]
    assert xs == [
        ("X-Zeta", "1"),
        ("x-simulation-result-id", "720488"),
        ("X-Call-Type", "SIP"),
        ("X-ALPHA", "2"),
        ("X-Zeta", "3"),
    ]
    wire = msg.to_bytes()
    assert wire.index(b"X-Zeta: 1") < wire.index(b"x-simulation-result-id: 720488")
    assert wire.index(b"X-Call-Type: SIP") < wire.index(b"X-ALPHA: 2") < wire.index(b"X-Zeta: 3")
    assert msg.headers.get("X-Simulation-Result-Id") == "720488"
    assert msg.headers.get_all("x-zeta") == ["1", "3"]


def test_header_values_lose_surrounding_whitespace_but_keep_inner() -> None:
    msg = parse_message(request("X-Note   :   a  b  \r\n"))
    assert msg.headers.get("x-note") == "a  b"


def test_content_length_absent_on_a_datagram_takes_the_rest() -> None:
    msg = parse_message(request(body=b"the whole rest"))
    assert msg.body == b"the whole rest"


def test_content_length_shorter_than_the_datagram_ignores_the_extra() -> None:
    msg = parse_message(request("Content-Length: 3\r\n", body=b"abcdef"))
    assert msg.body == b"abc"


def test_content_length_is_always_recomputed_and_written_last() -> None:
    msg = parse_message(request("Content-Length: 3\r\nX-After: 1\r\n", body=b"abc"))
    msg.body = b"longer body"
    wire = msg.to_bytes()
    assert wire.count(b"Content-Length") == 1
    assert wire.endswith(b"X-After: 1\r\nContent-Length: 11\r\n\r\nlonger body")


def test_leading_crlfs_before_the_start_line_are_skipped() -> None:
    assert parse_message(b"\r\n\r\n" + request()).method == "OPTIONS"  # type: ignore[union-attr]


def test_non_utf8_header_bytes_are_written_back_exactly() -> None:
    data = request().replace(b"\r\n\r\n", b"\r\nX-Raw: caf\xe9\r\n\r\n")
    assert b"X-Raw: caf\xe9\r\n" in parse_message(data).to_bytes()


def test_a_message_over_the_size_limit_is_refused_with_513() -> None:
    limits = Limits(max_message_size=300)
    ok = request()
    assert len(ok) <= 300
    parse_message(ok, limits)
    big = request("X-Pad: " + "p" * 300 + "\r\n")
    error = parse_error(big, limits)
    assert error.status == 513 and error.offset == 0
    assert f"{len(big)} bytes exceeds the 300-byte limit" in error.reason


def test_the_default_limit_is_64_kib() -> None:
    body = b"x" * 70_000
    error = parse_error(request(f"Content-Length: {len(body)}\r\n", body=body))
    assert error.status == 513 and "65536-byte limit" in error.reason


def test_too_many_header_lines_are_refused() -> None:
    extra = "".join(f"X-H{n}: {n}\r\n" for n in range(20))
    error = parse_error(request(extra), Limits(max_headers=10))
    assert error.status == 400 and "exceed the limit of 10" in error.reason


def test_an_overlong_header_line_is_refused_even_when_folded() -> None:
    folded = "X-Long: " + "\r\n ".join(["abcdefgh"] * 20) + "\r\n"
    error = parse_error(request(folded), Limits(max_line_length=100))
    assert "X-Long is longer than 100 bytes" in error.reason
    assert error.offset == request().index(b"\r\n\r\n") + 2


@pytest.mark.parametrize(
    ("data", "status", "fragment"),
    [
        (b"", 400, "empty message"),
        (b"\r\n\r\n", 400, "empty message"),
        (b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n", 400, "no empty line after the headers"),
        (b"INVITE sip:a@b SIP/7.0\r\n\r\n", 505, "unsupported SIP version SIP/7.0"),
        (b"INVITE sip:a@b SIP/two\r\n\r\n", 400, "malformed SIP version"),
        (b"INVITE  sip:a@b SIP/2.0\r\n\r\n", 400, "request line must be exactly"),
        (b"INVITE sip:a@b SIP/2.0 \r\n\r\n", 400, "request line must be exactly"),
        (b"INV(TE sip:a@b SIP/2.0\r\n\r\n", 400, "is not a token"),
        (b"INVITE <sip:a@b> SIP/2.0\r\n\r\n", 400, "bad Request-URI"),
        (b"INVITE sip:a@b?Subject=x SIP/2.0\r\n\r\n", 400, "must not carry ?headers"),
        (b"SIP/2.0 99 Low\r\n\r\n", 400, "is not in 100-699"),
        (b"SIP/2.0 700 High\r\n\r\n", 400, "is not in 100-699"),
        (b"SIP/2.0 2000 OK\r\n\r\n", 400, "is not in 100-699"),
        (b"SIP/3.0 200 OK\r\n\r\n", 400, "malformed status line"),
    ],
)
def test_a_malformed_start_line_raises_its_specific_error(
    data: bytes, status: int, fragment: str
) -> None:
    error = parse_error(data)
    assert fragment in error.reason
    assert error.status == status
    assert isinstance(error, ValueError)  # callers may catch it as a ValueError too


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ((b"Call-ID: unit-1@127.0.0.1\r\n", b""), "missing required Call-ID header"),
        ((b"From: <sip:roost@127.0.0.1>;tag=a1\r\n", b""), "missing required From header"),
        ((b"To: <sip:agent@127.0.0.1>\r\n", b""), "missing required To header"),
        ((b"CSeq: 1 OPTIONS\r\n", b""), "missing required CSeq header"),
        (
            (b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-unit-1\r\n", b""),
            "missing required Via",
        ),
        ((b"Call-ID: unit-1", b"Call-ID: a\r\nCall-ID: b\r\nX: unit-1"), "2 Call-ID headers"),
        ((b"CSeq: 1 OPTIONS", b"CSeq: 1 INVITE"), "does not match request method OPTIONS"),
        ((b"CSeq: 1 OPTIONS", b"CSeq: one OPTIONS"), "malformed CSeq"),
        ((b"CSeq: 1 OPTIONS", b"CSeq: 99999999999 OPTIONS"), "larger than 2**32-1"),
        ((b"To: <sip:agent@127.0.0.1>", b"To: <sip:agent@127.0.0.1"), "missing '>'"),
        ((b"Via: SIP/2.0/UDP", b"Via: SIP/2.0"), "malformed Via"),
        ((b"Call-ID: unit-1", b"Call-ID unit-1"), "malformed header line"),
        ((b"Call-ID: unit-1", b"Call ID: unit-1"), "malformed header line"),
        ((b"Via: ", b" Via: "), "continuation line before the first header"),
        ((b"Call-ID: unit-1", b"Call-ID: unit\n-1"), "bare CR or LF"),
        ((b"Call-ID: unit-1", b"Call-ID: unit\r-1"), "bare CR or LF"),
    ],
)
def test_a_malformed_header_raises_its_specific_error(
    change: tuple[bytes, bytes], fragment: str
) -> None:
    data = request()
    assert change[0] in data
    error = parse_error(data.replace(change[0], change[1], 1))
    assert fragment in error.reason
    assert error.status == 400


def test_the_error_offset_points_at_the_bad_header() -> None:
    data = request("Max-Forwards: lots\r\n")
    error = parse_error(data)
    assert "Max-Forwards 'lots' is not a number from 0 to 255" in error.reason
    assert error.offset == data.index(b"Max-Forwards")
    assert str(error).endswith(f"at byte {error.offset}")


@pytest.mark.parametrize(
    ("extra", "body", "fragment"),
    [
        ("Content-Length: 10\r\n", b"short", "Content-Length 10 is larger than the 5 body bytes"),
        ("Content-Length: -1\r\n", b"", "is not a non-negative number"),
        ("Content-Length: 1x\r\n", b"", "is not a non-negative number"),
        ("Content-Length: 99999999999\r\n", b"", "is not a non-negative number"),
        ("Content-Length: 0\r\nl: 0\r\n", b"", "2 Content-Length headers"),
    ],
)
def test_a_bad_content_length_raises_its_specific_error(
    extra: str, body: bytes, fragment: str
) -> None:
    data = request(extra, body=body)
    error = parse_error(data)
    assert fragment in error.reason


def test_a_bad_contact_is_caught_at_parse_time() -> None:
    error = parse_error(request("Contact: <sip:a@b\r\n"))
    assert "missing '>'" in error.reason


def test_headers_refuse_injection_when_building() -> None:
    headers = Headers()
    with pytest.raises(InvalidHeaderError, match="contains CR, LF or NUL"):
        headers.add("X-Evil", "a\r\nVia: injected")
    with pytest.raises(InvalidHeaderError, match="is not a token"):
        headers.add("X Evil", "a")
    assert len(headers) == 0


def test_headers_set_replace_and_remove_keep_positions() -> None:
    headers = Headers(
        [("Via", "SIP/2.0/UDP a, SIP/2.0/UDP b"), ("X-A", "1"), ("v", "SIP/2.0/UDP c")]
    )
    assert headers.get_all("via") == ["SIP/2.0/UDP a", "SIP/2.0/UDP b", "SIP/2.0/UDP c"]
    headers.replace_first("VIA", "SIP/2.0/UDP z")
    assert headers.get_all("via")[0] == "SIP/2.0/UDP z"
    headers.set("via", "SIP/2.0/UDP only")
    assert list(headers) == [("Via", "SIP/2.0/UDP only"), ("X-A", "1")]
    headers.add_first("Via", "SIP/2.0/UDP top")
    assert headers.get("via") == "SIP/2.0/UDP top"
    assert headers.remove("v") == 2 and list(headers) == [("X-A", "1")]


def test_typed_accessors_follow_header_changes() -> None:
    msg = parse_message(request())
    assert msg.call_id == "unit-1@127.0.0.1"
    msg.headers.set("Call-ID", "changed")
    assert msg.call_id == "changed"


def test_make_response_copies_the_dialog_headers_and_adds_the_tag() -> None:
    invite = parse_message(
        request(
            "Record-Route: <sip:p1@127.0.0.1;lr>, <sip:p2@127.0.0.1;lr>\r\nX-Other: 1\r\n",
            method="INVITE",
        )
    )
    assert isinstance(invite, SipRequest)
    ok = make_response(invite, 200, to_tag="b7")
    assert ok.to.tag == "b7" and ok.call_id == invite.call_id
    assert ok.headers.get_all("record-route") == ["<sip:p1@127.0.0.1;lr>", "<sip:p2@127.0.0.1;lr>"]
    assert "x-other" not in ok.headers
    trying = make_response(invite, 100, to_tag="b7")
    assert trying.to.tag is None and "record-route" not in trying.headers
    assert parse_message(ok.to_bytes()).cseq.method == "INVITE"
