"""Simulation result id extraction: every carrier, validation, detection, logging.

Payloads are written the way each platform documents them (cited next to each);
tests/test_ids_live.py gets the same ids through real servers and SIPp.
"""

from __future__ import annotations

import doctest
import email.message
import http.client
import io
import json
import logging
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import FormData
from starlette.datastructures import Headers as StarletteHeaders
from starlette.requests import Request
from websockets.datastructures import Headers as WebsocketsHeaders
from werkzeug.datastructures import EnvironHeaders
from werkzeug.datastructures import Headers as WerkzeugHeaders

import roost
from roost import _idcarriers, _idvalue, ids
from roost.ids import (
    InvalidSimulationResultId,
    extract_simulation_result_id,
    from_asgi_scope,
    from_bland,
    from_daily_dialin,
    from_freeswitch,
    from_headers,
    from_livekit_attributes,
    from_livekit_metadata,
    from_openai_sip,
    from_retell,
    from_sip_invite,
    from_twilio_params,
    from_vapi,
    from_wsgi_environ,
    validate_simulation_result_id,
)

FIXTURES = Path(__file__).parent / "fixtures" / "carriers"
ID = "720488"


@pytest.fixture(autouse=True)
def fresh_log_state(monkeypatch: pytest.MonkeyPatch) -> None:
    # "Logged once per process" state must not leak between tests.
    monkeypatch.setattr(_idvalue, "_logged", set())


def test_doctests() -> None:
    for module in (ids, _idvalue, _idcarriers):
        assert doctest.testmod(module, raise_on_error=True).attempted > 0


def test_top_level_exports() -> None:
    assert roost.extract_simulation_result_id is extract_simulation_result_id
    assert roost.InvalidSimulationResultId is InvalidSimulationResultId
    assert issubclass(InvalidSimulationResultId, ValueError)
    assert InvalidSimulationResultId.__module__ == "roost.ids"


# Validation


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ID, ID),
        (" 720488\t", ID),  # SIP and HTTP pad header values
        ("\r\n720488\r\n", ID),
        ("sim-42-abc", "sim-42-abc"),  # not stricter than the contract: any string
        ("a b", "a b"),
        ("x" * 128, "x" * 128),
        ("Ünïcødé-ид", "Ünïcødé-ид"),
        ("a\u200bb", "a\u200bb"),  # format characters are not control characters
        (720488, ID),  # a JSON number
        (b"720488", ID),
        (bytearray(b" 720488 "), ID),
    ],
)
def test_valid_ids(value: object, expected: str) -> None:
    assert validate_simulation_result_id(value) == expected


@pytest.mark.parametrize(
    ("value", "reason", "detail"),
    [
        ("", "empty", "the value is empty"),
        (b"", "empty", "the value is empty"),
        ("   ", "whitespace", "the value is only whitespace (3 chars)"),
        (" \t\r\n\xa0", "whitespace", "only whitespace (5 chars)"),
        ("720\x00488", "control_character", "control character '\\x00' at position 3"),
        ("  72\x1b0", "control_character", "'\\x1b' at position 4"),
        ("72\x7f", "control_character", "'\\x7f' at position 2"),
        ("72\x85x", "control_character", "'\\x85' at position 2"),
        ("72\r\n0", "control_character", "'\\r' at position 2"),
        ("x" * 129, "too_long", "129 characters long; at most 128 are allowed"),
        (" " + "x" * 500 + " ", "too_long", "500 characters long"),
        (10**200, "too_long", "more than 128 digits"),
        (b"72\xff88", "encoding", "not valid UTF-8 (byte 0xff at position 2)"),
        ("72\ud800", "surrogate", "lone surrogate '\\ud800' at position 2"),
        (7.5, "type", "expected a string, got float"),
        (True, "type", "expected a string, got bool"),
        ({"id": 1}, "type", "expected a string, got dict"),
    ],
)
def test_malformed_ids(value: object, reason: str, detail: str) -> None:
    with pytest.raises(InvalidSimulationResultId) as info:
        validate_simulation_result_id(value, source="test value")
    assert info.value.reason == reason
    assert info.value.source == "test value"
    assert str(info.value).startswith("invalid simulation result id in test value: ")
    assert detail in str(info.value)


def test_error_pickles_with_its_fields() -> None:
    error = InvalidSimulationResultId("message", "empty", "source")
    copy = pickle.loads(pickle.dumps(error))
    assert (str(copy), copy.reason, copy.source) == ("message", "empty", "source")


def test_error_names_where_the_id_was() -> None:
    with pytest.raises(InvalidSimulationResultId, match=r"in SIP header 'X-Simulation-Result-Id'"):
        from_sip_invite(b"INVITE a SIP/2.0\r\nX-Simulation-Result-Id:\r\n\r\n")
    with pytest.raises(InvalidSimulationResultId, match=r"in parameter 'SipHeader_X-Simulation"):
        from_twilio_params({"SipHeader_X-Simulation-Result-Id": "1\x002"})
    with pytest.raises(InvalidSimulationResultId, match=r"data\.sip_headers 'x-simulation"):
        from_openai_sip(
            {"data": {"sip_headers": [{"name": "x-simulation-result-id", "value": ""}]}}
        )


# SIP messages

# The INVITE of docs/bluejay-protocol.md §3.1 (shape from Bluejay's SIP page,
# https://docs.getbluejay.ai/simulation-integrations/sip).
BLUEJAY_INVITE = (
    "INVITE sip:support@agent.example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP gw.bluejay.example:5060;branch=z9hG4bK776asdhds\r\n"
    "From: <sip:dh@bluejay.example>;tag=1928301774\r\n"
    "To: <sip:support@agent.example.com>\r\n"
    "Call-ID: 8c1f2e0a@bluejay.example\r\n"
    "CSeq: 1 INVITE\r\n"
    "X-Simulation-Result-Id: 720488\r\n"
    "X-Call-Type: SIP\r\n"
    "Content-Type: application/sdp\r\n"
    "Content-Length: 0\r\n"
    "\r\n"
)


def test_sipp_invite_fixture() -> None:
    # Captured from `sipp -sf uac_xhdr.xml -key simid 720488` (the scenario of
    # sip-stack-notes.md §4.1); test_ids_live.py captures a fresh one every run.
    message = (FIXTURES / "sipp-uac-xhdr-invite.sip").read_bytes()
    assert message.startswith(b"INVITE sip:agent@127.0.0.1:")
    assert from_sip_invite(message) == ID
    assert from_sip_invite(message.decode("ascii")) == ID
    assert from_sip_invite(bytearray(message)) == ID
    assert from_sip_invite(memoryview(message)) == ID
    assert extract_simulation_result_id(message) == ID


def test_bluejay_invite() -> None:
    assert from_sip_invite(BLUEJAY_INVITE) == ID
    assert from_sip_invite(BLUEJAY_INVITE.replace("\r\n", "\n").encode()) == ID


def test_compact_forms_around_the_header() -> None:
    # RFC 3261 §7.3.3 compact forms; X- headers have none, so only the name counts.
    message = (
        "INVITE sip:agent@example.com SIP/2.0\r\n"
        "v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK1\r\n"
        "f: <sip:dh@example.com>;tag=1\r\n"
        "t: <sip:agent@example.com>\r\n"
        "i: abc@10.0.0.1\r\n"
        "m: <sip:dh@10.0.0.1>\r\n"
        "k: timer\r\n"
        "x-simulation-result-id: 720488\r\n"
        "c: application/sdp\r\n"
        "l: 5\r\n"
        "\r\n"
        "v=0\r\n"
    )
    assert from_sip_invite(message) == ID


@pytest.mark.parametrize(
    "line",
    [
        "X-Simulation-Result-Id: 720488",
        "x-simulation-result-id: 720488",
        "X-SIMULATION-RESULT-ID: 720488",
        "x-Simulation-RESULT-id:720488",
        "X-Simulation-Result-Id   :   720488   ",
        "X-Simulation-Result-Id:\t720488\t",
        "X-Simulation-Result-Id:\r\n 720488",  # folded onto a continuation line
        "X-Simulation-Result-Id: \r\n\t720488 \r\n ",
    ],
)
def test_header_spellings_and_whitespace(line: str) -> None:
    message = f"INVITE sip:a@b SIP/2.0\r\nTo: <sip:a@b>\r\n{line}\r\nCSeq: 1 INVITE\r\n\r\n"
    assert from_sip_invite(message) == ID
    assert from_sip_invite(message.encode()) == ID


def test_folded_value_is_joined_with_one_space() -> None:
    message = b"INVITE a SIP/2.0\r\nX-Simulation-Result-Id: sim\r\n   42\r\n\r\n"
    assert from_sip_invite(message) == "sim 42"


def test_body_is_never_searched() -> None:
    sdp_decoy = BLUEJAY_INVITE.replace("X-Simulation-Result-Id: 720488\r\n", "") + (
        "v=0\r\nX-Simulation-Result-Id: 999\r\ns=X-Simulation-Result-Id: 998\r\n"
    )
    assert from_sip_invite(sdp_decoy) is None
    # message/sipfrag bodies (REFER/NOTIFY) quote whole messages, headers included.
    sipfrag = (
        "NOTIFY sip:a@b SIP/2.0\r\nContent-Type: message/sipfrag\r\n\r\n"
        "INVITE sip:x@y SIP/2.0\r\nX-Simulation-Result-Id: 999\r\n"
    )
    assert from_sip_invite(sipfrag) is None
    assert from_sip_invite(BLUEJAY_INVITE + "X-Simulation-Result-Id: 999\r\n") == ID


def test_first_occurrence_wins() -> None:
    message = "INVITE a SIP/2.0\r\nX-Simulation-Result-Id: 1\r\nx-simulation-result-id: 2\r\n\r\n"
    assert from_sip_invite(message) == "1"
    # Even when the first one is malformed: it is reported, not skipped.
    bad_first = message.replace(": 1", ": ")
    with pytest.raises(InvalidSimulationResultId, match="empty"):
        from_sip_invite(bad_first)


@pytest.mark.parametrize(
    "start_line",
    ["BYE sip:a@b SIP/2.0", "SIP/2.0 200 OK", "OPTIONS sip:a@b SIP/2.0", "GET /voice HTTP/1.1"],
)
def test_any_message_is_searched(start_line: str) -> None:
    message = f"{start_line}\r\nCSeq: 2 BYE\r\nX-Simulation-Result-Id: 720488\r\n\r\n"
    assert from_sip_invite(message) == ID


def test_bare_header_block_and_keep_alives() -> None:
    assert from_sip_invite("X-Simulation-Result-Id: 720488\r\nTo: a\r\n") == ID
    assert from_sip_invite("\r\n\r\n" + BLUEJAY_INVITE) == ID


def test_non_ascii_and_undecodable_values() -> None:
    message = "INVITE a SIP/2.0\r\nX-Simulation-Result-Id: sim-é-42\r\n\r\n"
    assert from_sip_invite(message) == "sim-é-42"
    assert from_sip_invite(message.encode("utf-8")) == "sim-é-42"
    with pytest.raises(InvalidSimulationResultId, match="byte 0xe9 at position 4"):
        from_sip_invite(message.encode("latin-1"))
    # Lone surrogates (text decoded with surrogateescape from non-UTF-8 bytes).
    with pytest.raises(InvalidSimulationResultId, match="lone surrogate"):
        from_sip_invite(message.encode("latin-1").decode("utf-8", "surrogateescape"))


def test_scan_limit(caplog: pytest.LogCaptureFixture) -> None:
    start = "INVITE a SIP/2.0\r\n"
    padding = "P: " + "p" * ids.SCAN_LIMIT + "\r\n"
    assert from_sip_invite(start + "X-Simulation-Result-Id: 7\r\n" + padding + "\r\n") == "7"
    with caplog.at_level(logging.WARNING, logger="roost"):
        assert from_sip_invite(start + padding + "X-Simulation-Result-Id: 7\r\n\r\n") is None
        assert from_sip_invite((start + padding + "X-Simulation-Result-Id: 7\r\n").encode()) is None
    assert "SIP head longer than 65536 bytes" in caplog.text


def test_sip_rejects_non_text() -> None:
    with pytest.raises(TypeError, match=r"from_sip_invite\(\) expects .* got builtins.dict"):
        from_sip_invite({"X-Simulation-Result-Id": ID})  # type: ignore[arg-type]


# Header collections


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Simulation-Result-Id": ID},
        {"x-simulation-result-id": ID, "host": "agent"},
        {"X-SIMULATION-RESULT-ID": f"  {ID}  "},
        [("Host", "agent"), ("X-Simulation-Result-Id", ID)],
        [(b"host", b"agent"), (b"x-simulation-result-id", ID.encode())],  # ASGI style
        ((b"x-simulation-result-id", bytearray(ID.encode())),),
        [["x-simulation-result-id", ID]],
        [{"name": "X-Simulation-Result-Id", "value": ID}],
        WebsocketsHeaders([("X-Simulation-Result-Id", ID)]),
        StarletteHeaders(raw=[(b"x-simulation-result-id", ID.encode())]),
        httpx.Headers({"X-Simulation-Result-Id": ID}),
        WerkzeugHeaders([("X-Simulation-Result-Id", ID)]),
        FormData([("X-Simulation-Result-Id", ID)]),
    ],
    ids=lambda headers: type(headers).__name__,
)
def test_header_collections(headers: object) -> None:
    assert from_headers(headers) == ID
    assert extract_simulation_result_id(headers) == ID


def test_repeated_headers_first_wins_in_every_collection() -> None:
    pairs = [("X-Simulation-Result-Id", "1"), ("x-simulation-result-id", "2")]
    collections: list[object] = [
        pairs,
        WebsocketsHeaders(pairs),  # its Mapping API raises MultipleValuesError here
        StarletteHeaders(raw=[(k.lower().encode(), v.encode()) for k, v in pairs]),
        httpx.Headers(pairs),  # its items() would give "1, 2"
        WerkzeugHeaders(pairs),
    ]
    message = email.message.Message()
    for name, value in pairs:
        message[name] = value
    collections.append(message)
    for headers in collections:
        assert from_headers(headers) == "1", type(headers)
        assert extract_simulation_result_id(headers) == "1", type(headers)


def test_http_client_headers_are_read_as_utf8() -> None:
    # http.client (and so http.server) decodes header bytes as ISO-8859-1.
    raw = "Host: agent\r\nX-Simulation-Result-Id: sim-é\r\n\r\n".encode()
    parsed = http.client.parse_headers(io.BytesIO(raw))
    assert from_headers(parsed) == "sim-é"
    assert extract_simulation_result_id(parsed) == "sim-é"


def test_starlette_headers_are_read_from_raw_bytes() -> None:
    headers = StarletteHeaders(raw=[(b"x-simulation-result-id", "sim-é".encode())])
    assert dict(headers.items())["x-simulation-result-id"] != "sim-é"  # the latin-1 view
    assert from_headers(headers) == "sim-é"


def test_websockets_headers_are_read_as_utf8() -> None:
    # websockets >= 14 decodes header bytes as ISO-8859-1 and only accepts such text.
    value = "sim-é".encode().decode("latin-1")
    assert from_headers(WebsocketsHeaders([("X-Simulation-Result-Id", value)])) == "sim-é"


def test_surrogateescape_is_undone() -> None:
    # email's BytesParser and aiohttp keep undecodable bytes as lone surrogates.
    value = "sim-é".encode().decode("ascii", "surrogateescape")
    assert from_headers({"X-Simulation-Result-Id": value}) == "sim-é"
    with pytest.raises(InvalidSimulationResultId, match="lone surrogate"):
        from_headers({"X-Simulation-Result-Id": b"sim-\xe9".decode("ascii", "surrogateescape")})


def test_raw_head_and_custom_name() -> None:
    head = b"GET /voice HTTP/1.1\r\nHost: agent\r\nX-Simulation-Result-Id: 720488\r\n\r\n"
    assert from_headers(head) == ID
    assert from_headers({"X-Test-Id": "5", "X-Simulation-Result-Id": ID}, name="x-test-id") == "5"
    assert from_headers("X-Test-Id: 6\r\n\r\n", name="X-Test-Id") == "6"


def test_request_objects_with_headers() -> None:
    class AiohttpLikeRequest(dict[str, Any]):
        """A mapping for app state that also has .headers, like aiohttp's Request."""

        headers = {"X-Simulation-Result-Id": ID}

    assert from_headers(AiohttpLikeRequest(state="x")) == ID
    assert extract_simulation_result_id(AiohttpLikeRequest(state="x")) == ID


def test_absent_header() -> None:
    assert from_headers({"host": "agent"}) is None
    assert from_headers([]) is None
    assert from_headers({"X-Simulation-Result-Id": None}) is None  # null counts as absent


def test_header_collection_type_errors() -> None:
    with pytest.raises(TypeError, match=r"from_headers\(\) expects a header collection"):
        from_headers(42)
    with pytest.raises(TypeError, match="header entry 1 is int"):
        from_headers([("host", "a"), 5])


# ASGI and WSGI


def asgi_scope(kind: str = "websocket") -> dict[str, Any]:
    # As uvicorn builds it (ASGI spec 2.4): lower-case byte names, list of pairs.
    return {
        "type": kind,
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws" if kind == "websocket" else "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 51000),
        "root_path": "",
        "path": "/voice",
        "raw_path": b"/voice",
        "query_string": b"",
        "headers": [
            (b"host", b"agent.example.com"),
            (b"upgrade", b"websocket"),
            (b"authorization", b"Basic dXNlcjpwYXNz"),
            (b"x-simulation-result-id", ID.encode()),
        ],
        "subprotocols": [],
        "state": {},
    }


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_asgi_scope(kind: str) -> None:
    scope = asgi_scope(kind)
    assert from_asgi_scope(scope) == ID
    assert extract_simulation_result_id(scope) == ID


def test_starlette_request_is_a_scope_mapping() -> None:
    request = Request(asgi_scope("http"))
    assert from_asgi_scope(request) == ID
    assert extract_simulation_result_id(request) == ID


def test_asgi_type_errors() -> None:
    with pytest.raises(TypeError, match="an ASGI http or websocket scope"):
        from_asgi_scope({"type": "lifespan", "asgi": {"version": "3.0"}})
    with pytest.raises(TypeError, match="headers are a NoneType"):
        from_asgi_scope({"type": "http"})
    with pytest.raises(TypeError, match="header entry 0 is int"):
        from_asgi_scope({"type": "http", "headers": [7]})


def test_wsgi_environ() -> None:
    # PEP 3333: header values arrive as ISO-8859-1 decoded native strings.
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/voice",
        "wsgi.version": (1, 0),
        "HTTP_HOST": "agent.example.com",
        "HTTP_X_SIMULATION_RESULT_ID": "sim-é".encode().decode("latin-1"),
    }
    assert from_wsgi_environ(environ) == "sim-é"
    assert extract_simulation_result_id(environ) == "sim-é"
    assert from_headers(EnvironHeaders(environ)) == "sim-é"
    assert from_wsgi_environ({"REQUEST_METHOD": "GET"}) is None
    with pytest.raises(TypeError):
        from_wsgi_environ([("HTTP_X_SIMULATION_RESULT_ID", ID)])  # type: ignore[arg-type]


# Twilio: https://www.twilio.com/docs/voice/api/sip-twiml ("SipHeader_<name>")

TWILIO_PARAMS = {
    "AccountSid": "AC0123456789abcdef0123456789abcdef",
    "ApiVersion": "2010-04-01",
    "CallSid": "CA0123456789abcdef0123456789abcdef",
    "CallStatus": "ringing",
    "Called": "sip:agent@roost-test.sip.twilio.com",
    "Caller": "sip:dh@gw.bluejay.example",
    "Direction": "inbound",
    "From": "sip:dh@gw.bluejay.example",
    "To": "sip:agent@roost-test.sip.twilio.com",
    "SipDomain": "roost-test.sip.twilio.com",
    "SipDomainSid": "SD0123456789abcdef0123456789abcdef",
    "SipCallId": "8c1f2e0a@gw.bluejay.example",
    "SipSourceIp": "203.0.113.7",
    "SipHeader_X-Simulation-Result-Id": ID,
    "SipHeader_X-Call-Type": "SIP",
}


def test_twilio_params() -> None:
    body = urlencode(TWILIO_PARAMS)
    for params in (
        TWILIO_PARAMS,
        list(TWILIO_PARAMS.items()),
        body,
        body.encode(),
        FormData(list(TWILIO_PARAMS.items())),
    ):
        assert from_twilio_params(params) == ID
    assert extract_simulation_result_id(TWILIO_PARAMS) == ID
    assert extract_simulation_result_id(FormData(list(TWILIO_PARAMS.items()))) == ID
    assert from_twilio_params({"sipheader_x-simulation-result-id": ID}) == ID


def test_twilio_body_encoding() -> None:
    body = "CallSid=CA1&SipHeader_X-Simulation-Result-Id=" + quote("sim é+42")
    assert from_twilio_params(body) == "sim é+42"
    assert from_twilio_params(b"SipHeader_X-Simulation-Result-Id=sim+42") == "sim 42"
    with pytest.raises(InvalidSimulationResultId, match="not valid UTF-8"):
        from_twilio_params(b"SipHeader_X-Simulation-Result-Id=%FF")
    without = {k: v for k, v in TWILIO_PARAMS.items() if not k.startswith("SipHeader_X-Sim")}
    assert from_twilio_params(without) is None
    assert from_twilio_params(urlencode(without)) is None
    assert from_twilio_params(b"") is None


# LiveKit: https://docs.livekit.io/sip/sip-participant/ (attributes) and the
# inbound trunk's headers_to_attributes / include_headers (SIPHeaderOptions).

LIVEKIT_ATTRIBUTES = {
    "sip.callID": "SCL_fRgnmfSDNzhX",
    "sip.callIDFull": "8c1f2e0a@gw.bluejay.example",
    "sip.callStatus": "active",
    "sip.phoneNumber": "+15105550100",
    "sip.trunkID": "ST_mCu8bDkhTCNE",
    "sip.trunkPhoneNumber": "+15105550123",
    "sip.ruleID": "SDR_kzqTxLmkm8cU",
}


class Participant:
    """The shape of livekit.rtc.RemoteParticipant that matters: an attributes dict."""

    def __init__(self, attributes: dict[str, str]) -> None:
        self.identity = "sip_+15105550100"
        self.attributes = attributes


def test_livekit_attributes() -> None:
    mapped = {**LIVEKIT_ATTRIBUTES, "X-Simulation-Result-Id": ID}  # headers_to_attributes
    x_headers = {**LIVEKIT_ATTRIBUTES, "sip.h.x-simulation-result-id": ID}  # SIP_X_HEADERS
    for attributes in (mapped, x_headers):
        assert from_livekit_attributes(attributes) == ID
        assert from_livekit_attributes(Participant(attributes)) == ID
        assert extract_simulation_result_id(Participant(attributes)) == ID
        assert extract_simulation_result_id(attributes) == ID
    custom = {
        **LIVEKIT_ATTRIBUTES,
        "simulation_result_id": "5",
        "sip.h.x-simulation-result-id": "6",
    }
    assert from_livekit_attributes(custom, attribute="simulation_result_id") == "5"
    assert from_livekit_attributes(custom) == "6"
    assert from_livekit_attributes(LIVEKIT_ATTRIBUTES) is None
    with pytest.raises(TypeError, match="a participant or its attributes"):
        from_livekit_attributes(object())


def test_livekit_metadata() -> None:
    # What Bluejay puts in the dispatched job's metadata (bluejay-protocol.md §2).
    metadata = json.dumps({"X-Simulation-Result-Id": ID, "X-Agent-Id": "4412"})
    assert from_livekit_metadata(metadata) == ID
    assert from_livekit_metadata(metadata.encode()) == ID
    assert from_livekit_metadata(json.loads(metadata)) == ID
    assert from_livekit_metadata({"X-Simulation-Result-Id": 720488}) == ID

    class Job:
        def __init__(self, metadata: str) -> None:
            self.id = "AJ_1"
            self.metadata = metadata

    assert from_livekit_metadata(Job(metadata)) == ID
    assert extract_simulation_result_id(metadata) == ID
    for nothing in ("", "   ", "not json", "[1, 2]", '"a string"', "{}", '{"a": 1}'):
        assert from_livekit_metadata(nothing) is None
    with pytest.raises(TypeError):
        from_livekit_metadata(42)


# Vapi: https://docs.vapi.ai/advanced/sip (x- headers fill template variables)
# and https://docs.vapi.ai/server-url/end-of-call-report; Bluejay reads
# message.assistant.variableValues["simulation-result-id"].

VAPI_REPORT = {
    "message": {
        "timestamp": 1754300000000,
        "type": "end-of-call-report",
        "endedReason": "customer-ended-call",
        "call": {
            "id": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "orgId": "org-1",
            "type": "inboundPhoneCall",
            "phoneCallProvider": "vapi",
            "phoneCallTransport": "sip",
            "status": "ended",
        },
        "assistant": {
            "name": "Support",
            "firstMessage": "Hello, how can I help?",
            "variableValues": {"simulation-result-id": ID, "call-type": "SIP"},
        },
        "artifact": {"transcript": "AI: Hello, how can I help?\nUser: Hi.", "messages": []},
        "analysis": {"summary": "The caller asked about an order."},
        "startedAt": "2026-08-04T10:15:00.000Z",
        "endedAt": "2026-08-04T10:16:12.000Z",
        "cost": 0.0712,
    }
}


def test_vapi() -> None:
    message = VAPI_REPORT["message"]
    for carrier in (
        VAPI_REPORT,
        message,
        message["assistant"],
        message["assistant"]["variableValues"],
        json.dumps(VAPI_REPORT),
    ):
        assert from_vapi(carrier) == ID
        assert extract_simulation_result_id(carrier) == ID


def test_vapi_variants() -> None:
    overrides = {
        "message": {
            "type": "status-update",
            "call": {"assistantOverrides": {"variableValues": {"Simulation_Result_Id": ID}}},
        }
    }
    assert from_vapi(overrides) == ID
    assert from_vapi({"variableValues": {"X-Simulation-Result-Id": ID}}) == ID
    # A path that exists without the id does not stop the search.
    both = {
        "message": {
            "assistant": {"variableValues": {"other": "1"}},
            "call": {"assistantOverrides": {"variableValues": {"simulation-result-id": ID}}},
        }
    }
    assert from_vapi(both) == ID
    assert from_vapi({"message": {"type": "end-of-call-report"}}) is None
    assert from_vapi(b"not json") is None


# Retell: https://docs.retellai.com/build/telephony/sip-headers (custom_sip_headers,
# X- stripped) and the call webhook body https://docs.retellai.com/features/webhook.

RETELL_WEBHOOK = {
    "event": "call_started",
    "call": {
        "call_type": "phone_call",
        "from_number": "+12137771234",
        "to_number": "+12137771235",
        "direction": "inbound",
        "call_id": "Jabr9TXYYJHfvl6Syypi88rdAHYHmcq6",
        "agent_id": "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD",
        "call_status": "ongoing",
        "metadata": {},
        "custom_sip_headers": {"simulation-result-id": ID, "call-type": "SIP"},
        "retell_llm_dynamic_variables": {"simulation-result-id": ID, "call-type": "SIP"},
        "start_timestamp": 1754300100000,
    },
}


def test_retell() -> None:
    call = RETELL_WEBHOOK["call"]
    for carrier in (RETELL_WEBHOOK, call, call["custom_sip_headers"], json.dumps(RETELL_WEBHOOK)):
        assert from_retell(carrier) == ID
        assert extract_simulation_result_id(carrier) == ID
    only_variables = {"call": {"retell_llm_dynamic_variables": {"simulation-result-id": "9"}}}
    assert from_retell(only_variables) == "9"
    assert from_retell({"event": "call_started", "call": {"call_id": "c"}}) is None


# Bland: https://docs.bland.ai/agents/sip-headers (sip_header_ + lower-cased name).

BLAND_WEBHOOK = {
    "call_id": "2d5f1e3c-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    "c_id": "2d5f1e3c-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    "call_length": 1.2,
    "to": "+15105550123",
    "from": "+15105550100",
    "inbound": True,
    "completed": True,
    "status": "completed",
    "variables": {
        "now": "Monday, August 4, 2026 10:15 AM",
        "call_id": "2d5f1e3c-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
        "phone_number": "+15105550100",
        "sip_header_x-simulation-result-id": ID,
        "sip_header_x-call-type": "SIP",
    },
    "concatenated_transcript": "assistant: Hello. user: Hi.",
}


def test_bland() -> None:
    for carrier in (BLAND_WEBHOOK, BLAND_WEBHOOK["variables"], json.dumps(BLAND_WEBHOOK)):
        assert from_bland(carrier) == ID
        assert extract_simulation_result_id(carrier) == ID
    assert from_bland({"call_id": "b", "variables": {"now": "today"}}) is None


# Daily pinless dial-in: the room_creation_api webhook body (docs.daily.co
# "Pinless dial-in", MIVAS pipecat harness for sipHeaders) and Pipecat's runner
# body (pipecat.runner.types.DailyDialinRequest / DialinSettings).

DAILY_WEBHOOK = {
    "To": "sip:static-address--0@roost.sip.daily.co",
    "From": "sip:dh@gw.bluejay.example",
    "callId": "f7b6c5d4-e3f2-4a1b-9c8d-7e6f5a4b3c2d",
    "callDomain": "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
    "sipHeaders": {"X-Simulation-Result-Id": ID, "X-Call-Type": "SIP"},
}
PIPECAT_BODY = {
    "dialin_settings": {
        "call_id": DAILY_WEBHOOK["callId"],
        "call_domain": DAILY_WEBHOOK["callDomain"],
        "To": DAILY_WEBHOOK["To"],
        "From": DAILY_WEBHOOK["From"],
        "sip_headers": {"x-simulation-result-id": ID},
    },
    "daily_api_key": "dk_test",
    "daily_api_url": "https://api.daily.co/v1",
}


def test_daily_dialin() -> None:
    for carrier in (
        DAILY_WEBHOOK,
        DAILY_WEBHOOK["sipHeaders"],
        PIPECAT_BODY,
        PIPECAT_BODY["dialin_settings"],
        json.dumps(DAILY_WEBHOOK).encode(),
    ):
        assert from_daily_dialin(carrier) == ID
        assert extract_simulation_result_id(carrier) == ID
    # Daily's configuration probe carries no call.
    assert from_daily_dialin({"To": "+15105550123"}) is None


# OpenAI: https://platform.openai.com/docs/guides/realtime-sip (the example
# realtime.call.incoming event, plus the platform's X- headers).

OPENAI_EVENT = {
    "object": "event",
    "id": "evt_685343a1381c819085d44c354e1b330e",
    "type": "realtime.call.incoming",
    "created_at": 1750287018,
    "data": {
        "call_id": "rtc_0123456789abcdef",
        "sip_headers": [
            {"name": "From", "value": "sip:+142555512112@sip.example.com"},
            {"name": "To", "value": "sip:+18005551212@sip.example.com"},
            {"name": "Call-ID", "value": "03782086-4ce9-44bf-8b0d-4e303d2cc590"},
            {"name": "X-Simulation-Result-Id", "value": ID},
            {"name": "X-Call-Type", "value": "SIP"},
        ],
    },
}


class SipHeader(pydantic.BaseModel):
    name: str
    value: str


class EventData(pydantic.BaseModel):
    call_id: str
    sip_headers: list[SipHeader]


class RealtimeCallIncoming(pydantic.BaseModel):
    """The OpenAI SDK's RealtimeCallIncomingWebhookEvent, field for field."""

    id: str
    created_at: int
    data: EventData
    type: str
    object: str


def test_openai_sip() -> None:
    data = OPENAI_EVENT["data"]
    model = RealtimeCallIncoming.model_validate(OPENAI_EVENT)
    for carrier in (OPENAI_EVENT, data, data["sip_headers"], json.dumps(OPENAI_EVENT), model):
        assert from_openai_sip(carrier) == ID
        assert extract_simulation_result_id(carrier) == ID
    assert from_openai_sip(model.data.sip_headers) == ID  # SDK objects with .name/.value
    assert from_openai_sip({"type": "realtime.call.incoming", "data": {"sip_headers": []}}) is None


# FreeSWITCH: mod_sofia "Adding Request Headers" (inbound X- headers become the
# channel variable sip_h_<name>); ESL event-plain format URL-encodes values.

ESL_EVENT = (
    "Event-Name: CHANNEL_PARK\n"
    "Core-UUID: 6d0b8f3a-2c1e-4b5d-9f8e-7a6b5c4d3e2f\n"
    "FreeSWITCH-Hostname: fs1\n"
    "Event-Date-Local: 2026-08-04%2010%3A15%3A00\n"
    "Event-Calling-Function: switch_ivr_park\n"
    "Channel-State: CS_EXECUTE\n"
    "Unique-ID: 3f2e1d0c-9b8a-4756-8453-2f1e0d9c8b7a\n"
    "Caller-Caller-ID-Number: sipp\n"
    "variable_sip_call_id: 1-23995%40127.0.0.1\n"
    "variable_sip_h_X-Simulation-Result-Id: 720488\n"
    "variable_sip_h_X-Call-Type: SIP\n"
    "\n"
)


def esl_read(event: str, content_type: str = "text/event-plain") -> bytes:
    """The event as an ESL client reads it off the socket: envelope, then body."""
    body = event.encode()
    return f"Content-Length: {len(body)}\nContent-Type: {content_type}\n\n".encode() + body


def test_freeswitch() -> None:
    as_dict = {
        "Event-Name": "CHANNEL_PARK",
        "Unique-ID": "3f2e1d0c-9b8a-4756-8453-2f1e0d9c8b7a",
        "variable_sip_h_X-Simulation-Result-Id": ID,
    }
    for carrier in (
        ESL_EVENT,
        ESL_EVENT.encode(),
        esl_read(ESL_EVENT),
        esl_read(json.dumps(as_dict), "text/event-json"),
        as_dict,
        list(as_dict.items()),
        json.dumps(as_dict),
        {"sip_h_X-Simulation-Result-Id": ID},
    ):
        assert from_freeswitch(carrier) == ID
    assert extract_simulation_result_id(as_dict) == ID
    # URL-encoded values are decoded; the variable_ form is preferred.
    encoded = "variable_sip_h_X-Simulation-Result-Id: sim%2042\nsip_h_X-Simulation-Result-Id: 1\n"
    assert from_freeswitch(encoded) == "sim 42"
    assert from_freeswitch({"sip_h_x-simulation-result-id": "1", **as_dict}) == ID
    # The body of an event with one is not searched.
    body_decoy = (
        "Event-Name: CUSTOM\nContent-Length: 40\n\nvariable_sip_h_X-Simulation-Result-Id: 9\n"
    )
    assert from_freeswitch(body_decoy) is None


def test_freeswitch_esl_event_object() -> None:
    class ESLevent:
        """The getHeader API of FreeSWITCH's ESL bindings (ESL.py)."""

        def __init__(self, headers: dict[str, str]) -> None:
            self._headers = headers

        def getHeader(self, name: str) -> str | None:  # noqa: N802 - the binding's name
            return self._headers.get(name)

    assert from_freeswitch(ESLevent({"sip_h_X-Simulation-Result-Id": ID})) == ID
    assert from_freeswitch(ESLevent({"Event-Name": "CHANNEL_PARK"})) is None
    with pytest.raises(TypeError):
        from_freeswitch(3.5)


# Auto-detection


def test_detection_order() -> None:
    # JSON text vs SIP: decided by the first non-whitespace character.
    assert extract_simulation_result_id('  {"X-Simulation-Result-Id": "1"}') == "1"
    assert extract_simulation_result_id('\ufeff{"X-Simulation-Result-Id": "1"}') == "1"
    assert extract_simulation_result_id("X-Simulation-Result-Id: 2\r\n") == "2"
    # A dict that looks like an ASGI scope is read as one, not by its keys.
    assert extract_simulation_result_id({**asgi_scope(), "X-Simulation-Result-Id": "3"}) == ID
    # Paths come before the mapping's own keys.
    assert (
        extract_simulation_result_id(
            {"sipHeaders": {"x-simulation-result-id": "4"}, "X-Simulation-Result-Id": "5"}
        )
        == "4"
    )
    # Among own keys, the first in order wins, whatever the spelling.
    assert (
        extract_simulation_result_id(
            {"sip.h.x-simulation-result-id": "6", "SipHeader_X-Simulation-Result-Id": "7"}
        )
        == "6"
    )


def test_detection_of_pydantic_models() -> None:
    class Vapi(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(populate_by_name=True)
        variable_values: dict[str, str] = pydantic.Field(alias="variableValues")

    model = Vapi(variable_values={"simulation-result-id": ID})
    assert extract_simulation_result_id(model) == ID
    assert from_vapi(model) == ID


@pytest.mark.parametrize("carrier", [42, 4.2, None, object(), {1, 2}, True])
def test_unsupported_carriers_raise_type_error(carrier: object) -> None:
    with pytest.raises(TypeError, match=type(carrier).__qualname__):
        extract_simulation_result_id(carrier)


def test_payload_junk_is_skipped_not_raised() -> None:
    # Webhook bodies are not under the agent's control: odd shapes mean "no id".
    for payload in (
        {"type": "http", "headers": "nope"},
        {"data": {"sip_headers": [1, "x", None, {"value": "v"}]}},
        {"sipHeaders": 5, "variables": [1, 2]},
        {"headers": [[1, 2, 3]]},
    ):
        assert extract_simulation_result_id(payload) is None


# Absent ids are logged once per carrier kind


def test_absence_is_logged_once_per_kind(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="roost"):
        assert from_livekit_attributes(LIVEKIT_ATTRIBUTES) is None
        assert from_livekit_attributes(LIVEKIT_ATTRIBUTES) is None
        assert from_sip_invite(b"INVITE a SIP/2.0\r\n\r\n") is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    debugs = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert [r.name for r in warnings] == ["roost", "roost"]
    assert "LiveKit participant attributes" in warnings[0].getMessage()
    assert "headers_to_attributes" in warnings[0].getMessage()  # the hint
    assert "SIP message" in warnings[1].getMessage()
    assert len(debugs) == 1


def test_found_and_malformed_ids_are_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="roost"):
        assert from_headers({"X-Simulation-Result-Id": ID}) == ID
        with pytest.raises(InvalidSimulationResultId):
            from_headers({"X-Simulation-Result-Id": ""})
    assert caplog.records == []


# Properties

_TEXT_FUNCTIONS = [
    extract_simulation_result_id,
    from_sip_invite,
    from_headers,
    from_twilio_params,
    from_livekit_metadata,
    from_vapi,
    from_retell,
    from_bland,
    from_daily_dialin,
    from_openai_sip,
    from_freeswitch,
]


# The autouse log-state fixture runs once per test, not per example; that is fine.
_PROPERTY = settings(
    deadline=None,  # a loaded CI machine must not turn slowness into failures
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("function", _TEXT_FUNCTIONS, ids=lambda f: f.__name__)
@_PROPERTY
@given(data=st.one_of(st.text(), st.binary()))
def test_arbitrary_text_gives_an_id_none_or_invalid(function: Any, data: str | bytes) -> None:
    _id_none_or_invalid(function, data)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "type",
                    "headers",
                    "data",
                    "sip_headers",
                    "sipHeaders",
                    "dialin_settings",
                    "message",
                    "assistant",
                    "variableValues",
                    "call",
                    "custom_sip_headers",
                    "variables",
                    "name",
                    "value",
                    "X-Simulation-Result-Id",
                    "simulation-result-id",
                    "sip_header_x-simulation-result-id",
                ]
            )
            | st.text(max_size=5),
            inner,
            max_size=4,
        )
    ),
    max_leaves=12,
)


@pytest.mark.parametrize(
    "function", [_TEXT_FUNCTIONS[0], *_TEXT_FUNCTIONS[4:]], ids=lambda f: f.__name__
)
@_PROPERTY
@given(
    document=st.dictionaries(st.text(max_size=20), _JSON, max_size=5)
    | _JSON.filter(lambda value: isinstance(value, dict))
)
def test_arbitrary_json_gives_an_id_none_or_invalid(function: Any, document: Any) -> None:
    _id_none_or_invalid(function, document)
    _id_none_or_invalid(function, json.dumps(document))


def _id_none_or_invalid(function: Any, carrier: object) -> None:
    try:
        result = function(carrier)
    except InvalidSimulationResultId:
        return
    assert result is None or (isinstance(result, str) and 0 < len(result) <= 128)


VALID_IDS = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=128
).filter(lambda text: text.strip() == text)


def carriers_for(value: str) -> Iterator[tuple[Any, object]]:
    """Every carrier, holding ``value`` the way that carrier encodes it."""
    utf8 = value.encode()
    sip = f"INVITE sip:a@b SIP/2.0\r\nTo: a\r\nX-Simulation-Result-Id: {value}\r\n\r\nv=0\r\n"
    yield from_sip_invite, sip
    yield from_sip_invite, sip.encode()
    yield from_headers, [(b"x-simulation-result-id", utf8)]
    yield from_headers, {"X-Simulation-Result-Id": value}
    # As websockets' parser fills it from the wire: UTF-8 bytes read as ISO-8859-1.
    yield from_headers, WebsocketsHeaders([("X-Simulation-Result-Id", utf8.decode("latin-1"))])
    yield from_headers, StarletteHeaders(raw=[(b"x-simulation-result-id", utf8)])
    raw_http = b"Host: a\r\nX-Simulation-Result-Id: " + utf8 + b"\r\n\r\n"
    yield from_headers, http.client.parse_headers(io.BytesIO(raw_http))
    yield from_asgi_scope, {"type": "websocket", "headers": [(b"x-simulation-result-id", utf8)]}
    yield from_wsgi_environ, {"HTTP_X_SIMULATION_RESULT_ID": utf8.decode("latin-1")}
    yield from_twilio_params, urlencode({"SipHeader_X-Simulation-Result-Id": value}).encode()
    yield from_twilio_params, {"SipHeader_X-Simulation-Result-Id": value}
    yield from_livekit_attributes, {"X-Simulation-Result-Id": value}
    yield from_livekit_attributes, {"sip.h.x-simulation-result-id": value}
    yield from_livekit_metadata, json.dumps({"X-Simulation-Result-Id": value})
    yield from_vapi, {"message": {"assistant": {"variableValues": {"simulation-result-id": value}}}}
    yield from_retell, {"call": {"custom_sip_headers": {"simulation-result-id": value}}}
    yield from_bland, {"variables": {"sip_header_x-simulation-result-id": value}}
    yield from_daily_dialin, json.dumps({"sipHeaders": {"X-Simulation-Result-Id": value}})
    yield from_openai_sip, {"data": {"sip_headers": [{"name": HEADER, "value": value}]}}
    esl = f"Event-Name: CHANNEL_PARK\nvariable_sip_h_{HEADER}: {quote(value)}\n\n"
    yield from_freeswitch, esl.encode()
    yield from_freeswitch, esl_read(esl)


HEADER = "X-Simulation-Result-Id"


@_PROPERTY
@given(VALID_IDS)
def test_any_valid_id_round_trips_through_every_carrier(value: str) -> None:
    for function, carrier in carriers_for(value):
        assert function(carrier) == value, (function.__name__, carrier)
        # Detection reads text as SIP or JSON only; form bodies and ESL text
        # (here as bytes) need their own function.
        if not (isinstance(carrier, bytes) and function in (from_twilio_params, from_freeswitch)):
            assert extract_simulation_result_id(carrier) == value, carrier
