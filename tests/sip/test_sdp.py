"""Unit tests of :mod:`roost.sip.sdp`: parsing, offers, answers, negotiation."""

from __future__ import annotations

import pytest

from roost.sip.errors import SdpError
from roost.sip.sdp import (
    SessionDescription,
    answer_offer,
    make_offer,
    media_from_answer,
    negotiate_answer,
)


def sdp(*lines: str) -> SessionDescription:
    return SessionDescription.parse("\r\n".join(lines) + "\r\n")


HEAD = ("v=0", "o=peer 42 7 IN IP4 192.0.2.1", "s=call", "t=0 0")


def test_offer_lists_pcmu_pcma_and_telephone_event_with_ptime() -> None:
    offer = make_offer("10.0.0.1", 40000, session_id=9)
    text = offer.to_bytes().decode()
    assert text.endswith("\r\n")
    lines = text.split("\r\n")
    assert lines[:3] == ["v=0", "o=roost 9 1 IN IP4 10.0.0.1", "s=-"]
    assert "c=IN IP4 10.0.0.1" in lines
    assert "m=audio 40000 RTP/AVP 0 8 101" in lines
    for line in (
        "a=rtpmap:0 PCMU/8000",
        "a=rtpmap:8 PCMA/8000",
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-16",
        "a=ptime:20",
        "a=sendrecv",
    ):
        assert line in lines
    again = SessionDescription.parse(offer.to_bytes())
    assert again.to_bytes() == offer.to_bytes()


def test_offer_options_codec_order_ptime_direction_and_no_dtmf() -> None:
    offer = make_offer(
        "10.0.0.1", 40000, codecs=["pcma"], dtmf_payload_type=None, ptime=30, direction="recvonly"
    )
    (m,) = offer.media
    assert m.formats == ["8"]
    assert m.rtpmap() == {8: ("PCMA", 8000)}
    assert m.ptime == 30
    assert m.direction == "recvonly"
    assert m.fmtp(101) is None


@pytest.mark.parametrize("codecs", [[], ["G729"], ["PCMU", "opus"]])
def test_offer_refuses_codecs_we_cannot_speak(codecs: list[str]) -> None:
    with pytest.raises(ValueError, match="codecs"):
        make_offer("10.0.0.1", 40000, codecs=codecs)


def test_offer_refuses_an_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        make_offer("10.0.0.1", 40000, direction="both")


def test_offer_over_ipv6_says_ip6() -> None:
    text = make_offer("2001:db8::1", 40000).to_bytes().decode()
    assert "c=IN IP6 2001:db8::1" in text
    assert "o=roost 0 1 IN IP6 2001:db8::1" in text


@pytest.mark.parametrize(("codec", "pt"), [("PCMU", 0), ("PCMA", 8)])
def test_offer_answer_round_trip_for_each_codec(codec: str, pt: int) -> None:
    offer = make_offer("10.0.0.1", 40000, codecs=[codec], session_id=1)
    answer, ours = answer_offer(offer, "10.0.0.2", 50000, session_id=2)
    assert (ours.codec, ours.payload_type, ours.clock_rate) == (codec, pt, 8000)
    assert ours.remote == ("10.0.0.1", 40000)
    assert ours.dtmf_payload_type == 101
    assert ours.direction == "sendrecv"
    (m,) = answer.media
    assert m.formats == [str(pt), "101"]
    assert m.port == 50000
    assert answer.connection == "10.0.0.2"
    theirs = negotiate_answer(offer, SessionDescription.parse(answer.to_bytes()))
    assert (theirs.codec, theirs.payload_type) == (codec, pt)
    assert theirs.remote == ("10.0.0.2", 50000)
    assert theirs.dtmf_payload_type == 101
    assert media_from_answer(offer, answer).codec == codec


def test_answer_takes_the_first_supported_codec_in_the_offerers_order() -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 18 8 0", "a=rtpmap:18 G729/8000")
    _, media = answer_offer(offer, "10.0.0.2", 50000)
    assert (media.codec, media.payload_type) == ("PCMA", 8)


def test_answer_keeps_our_codec_list_as_a_filter() -> None:
    offer = make_offer("10.0.0.1", 40000)
    _, media = answer_offer(offer, "10.0.0.2", 50000, codecs=["PCMA"])
    assert media.codec == "PCMA"


def test_prefer_wins_when_offered_and_is_ignored_otherwise() -> None:
    offer = make_offer("10.0.0.1", 40000)
    assert answer_offer(offer, "10.0.0.2", 5000, prefer="pcma")[1].codec == "PCMA"
    only_pcmu = make_offer("10.0.0.1", 40000, codecs=["PCMU"])
    assert answer_offer(only_pcmu, "10.0.0.2", 5000, prefer="PCMA")[1].codec == "PCMU"


def test_no_common_codec_is_refused_with_488() -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 18 9", "a=rtpmap:18 G729/8000")
    with pytest.raises(SdpError) as caught:
        answer_offer(offer, "10.0.0.2", 50000)
    assert caught.value.status == 488
    assert "18 9" in str(caught.value)


def test_an_offer_without_media_or_with_only_video_is_refused_with_488() -> None:
    with pytest.raises(SdpError) as caught:
        answer_offer(sdp(*HEAD, "c=IN IP4 192.0.2.1"), "10.0.0.2", 5000)
    assert caught.value.status == 488
    video = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=video 5000 RTP/AVP 0")
    with pytest.raises(SdpError) as caught:
        answer_offer(video, "10.0.0.2", 5000)
    assert caught.value.status == 488


def test_a_disabled_or_non_rtp_audio_stream_is_not_accepted() -> None:
    for mline in ("m=audio 0 RTP/AVP 0", "m=audio 4000 UDP/TLS/RTP/SAVPF 0", "m=audio 4000 udp 0"):
        offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", mline)
        with pytest.raises(SdpError) as caught:
            answer_offer(offer, "10.0.0.2", 5000)
        assert caught.value.status == 488


def test_every_offered_stream_gets_an_answer_line_and_extras_are_refused() -> None:
    offer = sdp(
        *HEAD,
        "c=IN IP4 192.0.2.1",
        "m=video 6000 RTP/AVP 96",
        "a=rtpmap:96 H264/90000",
        "m=audio 4000 RTP/AVP 0",
        "m=audio 4002 RTP/AVP 8",
    )
    answer, media = answer_offer(offer, "10.0.0.2", 5000)
    assert [(m.media, m.port) for m in answer.media] == [
        ("video", 0),
        ("audio", 5000),
        ("audio", 0),
    ]
    assert media.remote == ("192.0.2.1", 4000)
    assert negotiate_answer(offer, answer).remote == ("10.0.0.2", 5000)


def test_telephone_event_keeps_the_offerers_payload_type_and_events() -> None:
    offer = sdp(
        *HEAD,
        "c=IN IP4 192.0.2.1",
        "m=audio 4000 RTP/AVP 0 96",
        "a=rtpmap:96 telephone-event/8000",
        "a=fmtp:96 0-15",
    )
    answer, media = answer_offer(offer, "10.0.0.2", 5000)
    assert media.dtmf_payload_type == 96
    (m,) = answer.media
    assert m.formats == ["0", "96"]
    assert m.fmtp(96) == "0-15"


def test_telephone_event_is_left_out_when_not_offered_or_not_wanted() -> None:
    offer = make_offer("10.0.0.1", 40000, dtmf_payload_type=None)
    answer, media = answer_offer(offer, "10.0.0.2", 5000)
    assert media.dtmf_payload_type is None
    assert answer.media[0].formats == ["0"]
    answer, media = answer_offer(make_offer("10.0.0.1", 40000), "10.0.0.2", 5000, dtmf=False)
    assert media.dtmf_payload_type is None
    assert negotiate_answer(make_offer("10.0.0.1", 40000), answer).dtmf_payload_type is None


def test_telephone_event_at_another_clock_rate_is_ignored() -> None:
    offer = sdp(
        *HEAD,
        "c=IN IP4 192.0.2.1",
        "m=audio 4000 RTP/AVP 0 101",
        "a=rtpmap:101 telephone-event/48000",
    )
    assert answer_offer(offer, "10.0.0.2", 5000)[1].dtmf_payload_type is None


def test_ptime_the_peer_asks_for_is_what_we_send_and_20_when_absent() -> None:
    offer = make_offer("10.0.0.1", 40000, ptime=30)
    answer, media = answer_offer(offer, "10.0.0.2", 5000, ptime=40)
    assert media.ptime == 30
    assert answer.media[0].ptime == 40
    assert negotiate_answer(offer, answer).ptime == 40
    bare = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0")
    assert answer_offer(bare, "10.0.0.2", 5000)[1].ptime == 20


@pytest.mark.parametrize("value", ["abc", "0", "99999", "-5", ""])
def test_an_insane_ptime_reads_as_absent(value: str) -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0", f"a=ptime:{value}")
    assert offer.media[0].ptime is None
    assert answer_offer(offer, "10.0.0.2", 5000)[1].ptime == 20


@pytest.mark.parametrize(
    ("offered", "answered"),
    [
        ("sendrecv", "sendrecv"),
        ("sendonly", "recvonly"),
        ("recvonly", "sendonly"),
        ("inactive", "inactive"),
    ],
)
def test_direction_is_mirrored(offered: str, answered: str) -> None:
    offer = make_offer("10.0.0.1", 40000, direction=offered)
    answer, media = answer_offer(offer, "10.0.0.2", 5000)
    assert media.direction == answered
    assert answer.media[0].direction == answered
    # The offerer's view mirrors the answer back.
    assert negotiate_answer(offer, answer).direction == offered


def test_a_compatible_requested_direction_is_kept() -> None:
    offer = make_offer("10.0.0.1", 40000)
    answer, media = answer_offer(offer, "10.0.0.2", 5000, direction="recvonly")
    assert media.direction == "recvonly"
    assert negotiate_answer(offer, answer).direction == "sendonly"


def test_media_level_connection_overrides_the_session_level() -> None:
    offer = sdp(
        *HEAD,
        "c=IN IP4 192.0.2.1",
        "m=audio 4000 RTP/AVP 0",
        "c=IN IP4 198.51.100.9/127",
    )
    assert offer.connection == "192.0.2.1"
    assert offer.media[0].connection == "198.51.100.9"
    assert answer_offer(offer, "10.0.0.2", 5000)[1].remote == ("198.51.100.9", 4000)


def test_media_level_connection_alone_is_enough() -> None:
    offer = sdp(*HEAD, "m=audio 4000 RTP/AVP 0", "c=IN IP6 2001:db8::7")
    assert offer.connection is None
    assert answer_offer(offer, "10.0.0.2", 5000)[1].remote == ("2001:db8::7", 4000)
    assert "c=IN IP6 2001:db8::7" in offer.to_bytes().decode()


def test_session_level_connection_serves_every_stream() -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0")
    assert offer.connection_for(offer.media[0]) == "192.0.2.1"


def test_an_accepted_stream_without_any_connection_address_is_a_400() -> None:
    offer = sdp(*HEAD, "m=audio 4000 RTP/AVP 0")
    with pytest.raises(SdpError) as caught:
        answer_offer(offer, "10.0.0.2", 5000)
    assert caught.value.status == 400


def test_static_payload_types_need_no_rtpmap() -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 8 0")
    assert offer.media[0].rtpmap() == {8: ("PCMA", 8000), 0: ("PCMU", 8000)}
    _, media = answer_offer(offer, "10.0.0.2", 5000)
    assert (media.codec, media.payload_type) == ("PCMA", 8)


def test_explicit_rtpmap_of_a_static_type_is_read_case_insensitively() -> None:
    offer = sdp(
        *HEAD,
        "c=IN IP4 192.0.2.1",
        "m=audio 4000 RTP/AVP 0",
        "a=rtpmap:0 pcmu/8000/1",
    )
    assert offer.media[0].rtpmap() == {0: ("PCMU", 8000)}
    assert answer_offer(offer, "10.0.0.2", 5000)[1].codec == "PCMU"


def test_g711_on_a_dynamic_payload_type_is_accepted_by_its_rtpmap() -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 97", "a=rtpmap:97 PCMA/8000")
    answer, media = answer_offer(offer, "10.0.0.2", 5000)
    assert (media.codec, media.payload_type) == ("PCMA", 97)
    assert answer.media[0].formats == ["97"]


def test_g711_at_a_wrong_clock_rate_is_not_g711() -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 97", "a=rtpmap:97 PCMU/16000")
    with pytest.raises(SdpError) as caught:
        answer_offer(offer, "10.0.0.2", 5000)
    assert caught.value.status == 488


def test_an_rtpmap_for_a_format_not_on_the_m_line_is_not_chosen() -> None:
    offer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 18", "a=rtpmap:97 PCMU/8000")
    with pytest.raises(SdpError):
        answer_offer(offer, "10.0.0.2", 5000)


def test_unknown_lines_are_kept_and_written_back() -> None:
    text = (
        "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=x\r\ni=info\r\nc=IN IP4 192.0.2.1\r\n"
        "t=0 0\r\na=tool:test\r\nm=audio 4000/2 RTP/AVP 0\r\nb=AS:64\r\na=x-custom\r\n"
    )
    parsed = SessionDescription.parse(text)
    assert parsed.other == [("i", "info")]
    assert parsed.attributes == [("tool", "test")]
    m = parsed.media[0]
    assert (m.port, m.port_count) == (4000, 2)
    assert m.other == [("b", "AS:64")]
    assert m.attribute("x-custom") == ""
    assert m.attribute("missing") is None
    assert SessionDescription.parse(parsed.to_bytes()).to_bytes() == parsed.to_bytes()


def test_bare_lf_line_ends_and_trailing_blank_lines_are_accepted() -> None:
    parsed = SessionDescription.parse(b"v=0\no=- 1 2 IN IP4 h\ns=-\nm=audio 1 RTP/AVP 0\n\n\n")
    assert parsed.media[0].port == 1
    assert parsed.times == ["0 0"]


@pytest.mark.parametrize(
    "body",
    [
        "",
        "v=1\r\no=- 1 1 IN IP4 h\r\ns=-\r\n",
        "o=- 1 1 IN IP4 h\r\nv=0\r\n",
        "v=0\r\ns=-\r\nt=0 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nnot a line\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\n=x\r\n",
        "v=0\r\no=- 1 IN IP4 h\r\n",
        "v=0\r\no=- 1 x IN IP4 h\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nc=IN IP4\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nc=ATM NSAP h\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio port RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 70000 RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio 4000/x RTP/AVP 0\r\n",
        "v=0\r\no=- 1 1 IN IP4 h\r\nm=audio ４０００ RTP/AVP 0\r\n",
    ],
)
def test_malformed_sdp_raises_sdp_error_with_400(body: str) -> None:
    with pytest.raises(SdpError) as caught:
        SessionDescription.parse(body)
    assert caught.value.status == 400


def test_undecodable_bytes_do_not_escape_as_unicode_errors() -> None:
    parsed = SessionDescription.parse(b"v=0\r\no=- 1 1 IN IP4 h\r\ns=\xff\xfe\r\n")
    assert parsed.session_name


def test_an_answer_with_another_number_of_m_lines_is_a_400() -> None:
    offer = make_offer("10.0.0.1", 40000)
    answer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 0", "m=audio 0 RTP/AVP 0")
    with pytest.raises(SdpError) as caught:
        negotiate_answer(offer, answer)
    assert caught.value.status == 400


def test_an_answer_refusing_our_stream_is_a_488() -> None:
    offer = make_offer("10.0.0.1", 40000)
    answer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 0 RTP/AVP 0")
    with pytest.raises(SdpError) as caught:
        negotiate_answer(offer, answer)
    assert caught.value.status == 488


def test_an_answer_picking_a_codec_we_did_not_offer_is_a_488() -> None:
    offer = make_offer("10.0.0.1", 40000, codecs=["PCMU"])
    answer = sdp(*HEAD, "c=IN IP4 192.0.2.1", "m=audio 4000 RTP/AVP 8")
    with pytest.raises(SdpError) as caught:
        negotiate_answer(offer, answer)
    assert caught.value.status == 488


def test_an_answer_without_a_connection_address_is_a_400() -> None:
    offer = make_offer("10.0.0.1", 40000)
    answer = sdp(*HEAD, "m=audio 4000 RTP/AVP 0")
    with pytest.raises(SdpError) as caught:
        negotiate_answer(offer, answer)
    assert caught.value.status == 400


def test_media_from_answer_refuses_an_answer_without_g711() -> None:
    offer = make_offer("10.0.0.1", 40000)
    answer = sdp(*HEAD, "c=IN IP4 192.0.2.2", "m=audio 4000 RTP/AVP 18")
    with pytest.raises(SdpError) as caught:
        media_from_answer(offer, answer)
    assert caught.value.status == 488
