"""RFC 4475 torture messages: each one with the outcome the RFC describes.

Valid messages (§3.1.1) must parse and yield the right values. Invalid ones
(§3.1.2) must raise :class:`SipParseError`, except where the RFC lets an element
accept the message (``baddate``: a Date we never interpret). Transaction and
application-layer messages (§3.2-§3.4) parse, and the UA core gives the answer
the RFC describes for an endpoint (416, 420, 415, 406, 405...).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from roost.sip import (
    CoreConfig,
    IncomingCall,
    MalformedInput,
    Peer,
    SipCore,
    SipParseError,
    SipRequest,
    SipResponse,
    parse_message,
)
from roost.sip.transaction import server_key

FIXTURES = Path(__file__).parent.parent / "fixtures" / "sip" / "torture"


def load(name: str) -> bytes:
    return (FIXTURES / f"{name}.dat").read_bytes()


def test_all_49_messages_are_fixtures() -> None:
    assert len(list(FIXTURES.glob("*.dat"))) == 49
    assert set(VALID) | set(INVALID) | set(CORE_ANSWERS) | {"bcast", "baddate"} == {
        p.stem for p in FIXTURES.glob("*.dat")
    }


# -- §3.1.1 valid messages, with what each one exercises ---------------------


def check_wsinv(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipRequest) and m.method == "INVITE"
    assert m.request_uri.has_param("unknownparam")
    assert m.to.tag == "1918181833n" and m.to.display_name is None
    assert m.from_.display_name == 'J Rosenberg \\"' and m.from_.tag == "98asjd8"
    assert m.max_forwards == 68 and m.cseq.seq == 9 and m.cseq.method == "INVITE"
    assert [(v.transport, v.host, v.branch) for v in m.via] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    assert m.headers.get("subject") == ""
    assert m.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert m.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    (contact,) = m.contact
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == (("newparam", "newvalue"), ("secondparam", None), ("q", "0.33"))
    assert m.route[0].uri.has_param("lr") and m.content_type == "application/sdp"
    assert len(m.body) == 150


def check_intmeth(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipRequest) and m.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert m.request_uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert m.request_uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert m.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert m.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert m.from_.param("fromParam''~+*_!.-%") == "работающий"
    assert m.from_.tag == "_token~1'+`*%!-."
    assert m.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"
    assert m.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert m.top_via.branch == "z9hG4bK-.!%66*_+`'~"


def check_esc01(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipRequest)
    assert m.request_uri.user == "sips%3Auser%40example.com" and m.request_uri.host == "example.net"
    assert m.to.uri.user == "%75se%72" and m.from_.uri.user == "I%20have%20spaces"
    assert m.contact[0].uri.params == (("%6C%72", None), ("n%61me", "v%61lue%25%34%31"))
    assert m.call_id == "esc01.239409asdfakjkn23onasd0-3234"


def check_escnull(m: SipRequest | SipResponse) -> None:
    assert [c.uri.user for c in m.contact] == ["%00", "%00%00"]
    assert m.to.uri.user == "null-%00-null"


def check_esc02(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipRequest) and m.method == "RE%47IST%45R"
    assert m.to.display_name == "%Z%45"
    assert [c.uri.user for c in m.contact] == ["alias1", "alias3"]
    assert m.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"
    assert m.top_via.branch == "z9hG4bK209%fzsnel234"


def check_lwsdisp(m: SipRequest | SipResponse) -> None:
    assert m.from_.display_name == "caller" and m.from_.tag == "323"


def check_longreq(m: SipRequest | SipResponse) -> None:
    assert len(m.via) == 34 and m.via[0].host == "sip33.example.com"
    assert m.via[-1].param("received") == "192.0.2.5"
    assert m.to.uri.port == 6000 and len(m.to.uri.params) == 3
    assert m.from_.tag is not None and m.from_.tag.endswith("424")
    assert len(m.body) == 150


def check_dblreq(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipRequest) and m.method == "REGISTER"
    assert m.body == b""  # the trailing INVITE octets are noise (RFC 3261 §18.3)
    assert m.call_id == "dblreq.0ha0isndaksdj99sdfafnl3lk233412"


def check_semiuri(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipRequest)
    assert m.request_uri.user == "user;par=u%40example.net" and m.request_uri.params == ()
    assert m.headers.get_all("accept") == [
        "application/sdp",
        "application/pkcs7-mime",
        "multipart/mixed",
        "multipart/signed",
        "message/sip",
        "message/sipfrag",
    ]


def check_transports(m: SipRequest | SipResponse) -> None:
    assert [v.transport for v in m.via] == ["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
    assert m.call_id == "transports.kijh4akdnaqjkwendsasfdj"


def check_mpart01(m: SipRequest | SipResponse) -> None:
    assert m.content_type == "multipart/mixed"
    assert b"\x00" in m.body and m.body.endswith(b"--7a9cbec02ceef655--\r\n")
    assert len(m.body) == int(m.headers.get("content-length") or 0)


def check_unreason(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipResponse) and m.status == 200
    assert m.reason == "= 2**3 * 5**2 но сто девяносто девять - простое"
    assert len(m.body) == 154


def check_noreason(m: SipRequest | SipResponse) -> None:
    assert isinstance(m, SipResponse) and (m.status, m.reason) == (100, "")


VALID = {
    "wsinv": check_wsinv,
    "intmeth": check_intmeth,
    "esc01": check_esc01,
    "escnull": check_escnull,
    "esc02": check_esc02,
    "lwsdisp": check_lwsdisp,
    "longreq": check_longreq,
    "dblreq": check_dblreq,
    "semiuri": check_semiuri,
    "transports": check_transports,
    "mpart01": check_mpart01,
    "unreason": check_unreason,
    "noreason": check_noreason,
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_messages_parse(name: str) -> None:
    message = parse_message(load(name))
    VALID[name](message)


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_messages_round_trip(name: str) -> None:
    first = parse_message(load(name))
    again = parse_message(first.to_bytes())
    assert list(again.headers) == [(n, v) for n, v in first.headers if n != "Content-Length"] + [
        ("Content-Length", str(len(first.body)))
    ]
    assert again.body == first.body
    VALID[name](again) if name != "mpart01" else None


# -- §3.1.2 invalid messages: the parse error and why -------------------------

INVALID = {
    "badinv01": (400, "malformed Via parameter"),  # ;;,;,, in Via
    "clerr": (400, "Content-Length 9999 is larger"),  # over UDP: 400
    "ncl": (400, "'-999' is not a non-negative number"),
    "scalar02": (400, "larger than 2**32-1"),  # CSeq overflow (Max-Forwards 300 too)
    "scalarlg": (400, "larger than 2**32-1"),  # a response: the UA discards it
    "quotbal": (400, "unterminated quoted string"),
    "ltgtruri": (400, "bad Request-URI"),  # <> around the Request-URI
    "lwsruri": (400, "request line must be exactly"),  # LWS inside the Request-URI
    "lwsstart": (400, "request line must be exactly"),  # several SP (we reject, not repair)
    "trws": (400, "request line must be exactly"),  # trailing SP
    "escruri": (400, "must not carry ?headers"),
    "regbadct": (400, "must be enclosed in <>"),
    "badaspec": (400, "whitespace"),  # spaces inside <>
    "baddn": (400, "must be quoted"),  # unquoted display name with a comma
    "badvers": (505, "unsupported SIP version SIP/7.0"),  # 505 Version Not Supported
    "mismatch01": (400, "does not match request method"),
    "mismatch02": (400, "does not match request method"),  # RFC: 501 preferred, 400 allowed
    "bigcode": (400, "not in 100-699"),  # a response: dropped
    "insuf": (400, "missing required Call-ID"),  # §3.3.1: missing To/From/Call-ID
    "multi01": (400, "exactly one is allowed"),  # §3.3.8: two CSeq, Call-ID, To, From
    "mcl01": (400, "2 Content-Length headers"),  # §3.3.9
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_messages_raise_the_parse_error(name: str) -> None:
    status, reason = INVALID[name]
    with pytest.raises(SipParseError) as info:
        parse_message(load(name))
    assert info.value.status == status
    assert reason in info.value.reason
    assert info.value.offset is None or 0 <= info.value.offset < len(load(name))


def test_baddate_is_accepted_because_date_is_never_interpreted() -> None:
    # RFC 4475 §3.1.2.12: reject only if the Date matters to the element.
    message = parse_message(load("baddate"))
    assert message.headers.get("date") == "Fri, 01 Jan 2010 16:00:00 EST"


# -- §3.2-§3.4: what the UA core answers ------------------------------------

CORE_ANSWERS = {
    "badbranch": 200,  # bare z9hG4bK: falls back to RFC 2543 matching, answered normally
    "unkscm": 416,  # unknown Request-URI scheme
    "novelsc": 416,  # known but non-SIP scheme
    "unksm2": 405,  # REGISTER with odd schemes parses; we are no registrar
    "bext01": 420,  # Require of unknown extensions
    "invut": 415,  # INVITE body of unknown type
    "regaut01": 405,  # unknown Authorization scheme parses; REGISTER refused
    "zeromf": 200,  # Max-Forwards 0 matters to proxies only
    "cparam01": 405,
    "cparam02": 405,
    "regescrt": 405,
    "sdp01": 406,  # Accept without application/sdp
    "inv2543": 100,  # RFC 2543 INVITE (no branch, tags, Contact, Max-Forwards) is accepted
    # malformed requests are answered statelessly by the core as well:
    "badvers": 505,
    "mismatch01": 400,
}


@pytest.mark.parametrize("name", sorted(CORE_ANSWERS))
def test_core_answers_like_an_endpoint(name: str) -> None:
    core = SipCore(CoreConfig(host="192.0.2.99", port=5060))
    core.receive_data(load(name), Peer("192.0.2.1", 5060), 0.0)
    replies = [parse_message(out.data) for out in core.data_to_send()]  # type: ignore[union-attr]
    assert replies, name
    first = replies[0]
    assert isinstance(first, SipResponse) and first.status == CORE_ANSWERS[name]
    if name == "inv2543":
        (incoming,) = [e for e in core.events_received() if isinstance(e, IncomingCall)]
        core.answer(incoming.call, 0.1, rtp=("192.0.2.99", 40000))
        ok = parse_message(core.data_to_send()[0].data)  # type: ignore[union-attr]
        assert isinstance(ok, SipResponse) and ok.status == 200


def test_parameters_land_where_rfc_4475_says() -> None:
    # cparam01: addr-spec form, so ;unknownparam is a Contact parameter...
    (contact,) = parse_message(load("cparam01")).contact
    assert contact.params == (("unknownparam", None),) and contact.uri.params == ()
    # ...cparam02: inside <>, so it is a URI parameter.
    (contact,) = parse_message(load("cparam02")).contact
    assert contact.params == () and contact.uri.params == (("unknownparam", None),)
    # regescrt: URI headers are legal inside <>.
    (contact,) = parse_message(load("regescrt")).contact
    assert contact.uri.headers == (("Route", "%3Csip:sip.example.com%3E"),)
    unksm2 = parse_message(load("unksm2"))
    assert (unksm2.to.uri.scheme, unksm2.to.uri.opaque) == ("isbn", "2983792873")
    assert unksm2.contact[0].uri.scheme == "name"


def test_badbranch_and_inv2543_use_the_rfc_2543_transaction_key() -> None:
    for name in ("badbranch", "inv2543"):
        message = parse_message(load(name))
        assert isinstance(message, SipRequest)
        assert not message.top_via.rfc3261
        assert server_key(message)[0] == "server2543"


def test_badinv01_is_reported_but_not_answered() -> None:
    # Its Via is the malformed header, so no response could be routed back by it.
    core = SipCore(CoreConfig(host="192.0.2.99", port=5060))
    core.receive_data(load("badinv01"), Peer("192.0.2.15", 5060), 0.0)
    assert core.data_to_send() == []
    (event,) = core.events_received()
    assert isinstance(event, MalformedInput) and "Via" in event.error.reason


def test_bcast_response_is_discarded() -> None:
    # §3.3.10: a 200 with a second (broadcast) Via must not be processed.
    core = SipCore(CoreConfig(host="192.0.2.198", port=5060))
    core.receive_data(load("bcast"), Peer("192.0.2.1", 5060), 0.0)
    assert core.data_to_send() == [] and core.events_received() == []
    assert core.stats.discarded == 1
