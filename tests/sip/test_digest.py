"""Unit tests of digest authentication (roost.sip.digest).

The expected ``response`` values are published vectors, not values this code
computed: RFC 2617 §3.5 (MD5, qop=auth) and the RFC 2069 example as corrected
by its errata (MD5, no qop). test_core.py checks that the UA core answers a
401 and a 407 end to end; here each piece is pinned down: challenge parsing
from both header kinds, the Authorization value, nonce counting, stale nonces,
unsupported algorithms and malformed challenges.
"""

from __future__ import annotations

import pytest

from roost.sip.digest import (
    Challenge,
    Credentials,
    DigestClient,
    DigestServer,
    digest_response,
    parse_auth_params,
)
from roost.sip.errors import DigestError
from roost.sip.message import SipRequest, SipResponse, parse_message

# RFC 2617 §3.5.
RFC2617_CHALLENGE = (
    'Digest realm="testrealm@host.com", qop="auth,auth-int", '
    'nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41"'
)
RFC2617_RESPONSE = "6629fae49393a05397450978507c4ef1"
# RFC 2069 §2.4 example (password "CircleOfLife"), value as corrected by the errata.
RFC2069_RESPONSE = "1949323746fe6a43ef61f9606e7febea"

USERS = {"agent": "secret"}.get


def rfc2617_client() -> DigestClient:
    return DigestClient(Credentials("Mufasa", "Circle Of Life"), cnonce_factory=lambda: "0a4f113b")


def test_md5_with_qop_auth_matches_rfc_2617() -> None:
    value = digest_response(
        algorithm="MD5",
        username="Mufasa",
        realm="testrealm@host.com",
        password="Circle Of Life",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
        qop="auth",
        nc="00000001",
        cnonce="0a4f113b",
    )
    assert value == RFC2617_RESPONSE


def test_md5_without_qop_matches_the_rfc_2069_example() -> None:
    value = digest_response(
        algorithm="MD5",
        username="Mufasa",
        realm="testrealm@host.com",
        password="CircleOfLife",
        nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
        method="GET",
        uri="/dir/index.html",
    )
    assert value == RFC2069_RESPONSE


def test_the_client_answers_the_rfc_2617_challenge_with_the_published_header() -> None:
    challenge = Challenge.parse(RFC2617_CHALLENGE)
    assert challenge.qop == ("auth", "auth-int") and challenge.algorithm == "MD5"
    assert challenge.opaque == "5ccc069c403ebaf9f0171e9517f40e41" and not challenge.stale
    header = rfc2617_client().authorize(challenge, "GET", "/dir/index.html")
    scheme, _, rest = header.partition(" ")
    assert scheme == "Digest"
    assert parse_auth_params(rest) == {
        "username": "Mufasa",
        "realm": "testrealm@host.com",
        "nonce": "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        "uri": "/dir/index.html",
        "response": RFC2617_RESPONSE,
        "algorithm": "MD5",
        "cnonce": "0a4f113b",
        "qop": "auth",  # auth preferred over auth-int
        "nc": "00000001",
        "opaque": "5ccc069c403ebaf9f0171e9517f40e41",
    }


def test_the_client_answers_a_challenge_without_qop_in_the_legacy_form() -> None:
    challenge = Challenge.parse(
        'Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093"'
    )
    client = DigestClient(Credentials("Mufasa", "CircleOfLife"), cnonce_factory=lambda: "c")
    params = parse_auth_params(client.authorize(challenge, "GET", "/dir/index.html")[7:])
    assert params["response"] == RFC2069_RESPONSE
    assert "qop" not in params and "nc" not in params and "cnonce" not in params
    assert "opaque" not in params


def test_the_nonce_count_increases_per_nonce() -> None:
    client = rfc2617_client()
    challenge = Challenge.parse(RFC2617_CHALLENGE)
    counts = [
        parse_auth_params(client.authorize(challenge, "INVITE", "sip:a@b")[7:])["nc"]
        for _ in range(3)
    ]
    assert counts == ["00000001", "00000002", "00000003"]
    other = Challenge.parse('Digest realm="testrealm@host.com", nonce="fresh", qop=auth')
    assert parse_auth_params(client.authorize(other, "INVITE", "sip:a@b")[7:])["nc"] == "00000001"


def sip_response(status: int, header: str, value: str) -> SipResponse:
    msg = parse_message(
        (
            f"SIP/2.0 {status} Unauthorized\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-auth\r\n"
            "From: <sip:roost@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>;tag=2\r\n"
            "Call-ID: auth@127.0.0.1\r\nCSeq: 1 INVITE\r\n"
            f"{header}: {value}\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, SipResponse)
    return msg


@pytest.mark.parametrize(
    ("status", "challenge_header", "answer_header"),
    [
        (401, "WWW-Authenticate", "Authorization"),
        (407, "Proxy-Authenticate", "Proxy-Authorization"),
    ],
)
def test_a_challenge_in_a_401_or_407_is_answered_and_verified(
    status: int, challenge_header: str, answer_header: str
) -> None:
    server = DigestServer("sim.test", secret=b"key")
    response = sip_response(status, challenge_header, server.challenge(now=10.0))
    value = response.headers.get(challenge_header.lower())
    assert value is not None
    challenge = Challenge.parse(value)
    assert challenge.realm == "sim.test" and challenge.qop == ("auth",)
    client = DigestClient(Credentials("agent", "secret"))
    uri = "sip:agent@127.0.0.1:5090"
    retry = SipRequest("INVITE", uri, [(answer_header, client.authorize(challenge, "INVITE", uri))])
    parsed = parse_message(
        retry.to_bytes().replace(b"\r\nContent-Length", _MANDATORY + b"\r\nContent-Length")
    )
    answer = parsed.headers.get(answer_header)
    assert answer is not None
    verdict = server.verify(answer, "INVITE", USERS, now=11.0)
    assert verdict.ok and verdict.username == "agent"
    # The same header replayed (same nonce count) is refused.
    assert server.verify(answer, "INVITE", USERS, now=12.0).reason == "replayed nonce count"
    # The answer is bound to the method.
    assert server.verify(answer, "BYE", USERS, now=12.0).reason == "wrong response"


_MANDATORY = (
    b"\r\nVia: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-retry\r\n"
    b"From: <sip:roost@127.0.0.1>;tag=1\r\nTo: <sip:agent@127.0.0.1>\r\n"
    b"Call-ID: auth@127.0.0.1\r\nCSeq: 2 INVITE"
)


def test_an_expired_nonce_is_stale_and_the_stale_challenge_is_answered_afresh() -> None:
    server = DigestServer("sim.test", secret=b"key", nonce_ttl=30.0)
    client = DigestClient(Credentials("agent", "secret"))
    old = Challenge.parse(server.challenge(now=0.0))
    late = client.authorize(old, "INVITE", "sip:agent@h")
    verdict = server.verify(late, "INVITE", USERS, now=31.0)
    assert not verdict.ok and verdict.stale and verdict.reason == "nonce expired"
    renewed = Challenge.parse(server.challenge(now=31.0, stale=True))
    assert renewed.stale and renewed.nonce != old.nonce
    answer = client.authorize(renewed, "INVITE", "sip:agent@h")
    assert parse_auth_params(answer[7:])["nc"] == "00000001"
    assert server.verify(answer, "INVITE", USERS, now=32.0).ok


def test_stale_is_read_case_insensitively_and_only_when_true() -> None:
    assert Challenge.parse('Digest realm="r", nonce="n", stale=TRUE').stale
    assert not Challenge.parse('Digest realm="r", nonce="n", stale=false').stale
    assert not Challenge.parse('Digest realm="r", nonce="n"').stale


def test_a_wrong_password_is_refused_but_not_as_stale() -> None:
    server = DigestServer("sim.test", secret=b"key")
    client = DigestClient(Credentials("agent", "wrong"))
    header = client.authorize(Challenge.parse(server.challenge(now=0.0)), "INVITE", "sip:a@h")
    verdict = server.verify(header, "INVITE", USERS, now=1.0)
    assert (verdict.ok, verdict.stale, verdict.reason) == (False, False, "wrong response")


def test_a_nonce_from_another_server_is_refused() -> None:
    ours = DigestServer("sim.test", secret=b"ours")
    theirs = DigestServer("sim.test", secret=b"theirs")
    client = DigestClient(Credentials("agent", "secret"))
    header = client.authorize(Challenge.parse(theirs.challenge(now=0.0)), "INVITE", "sip:a@h")
    assert ours.verify(header, "INVITE", USERS, now=1.0).reason == "nonce not issued by this server"


@pytest.mark.parametrize("algorithm", ["SHA-512", "AKAv1-MD5", "md6"])
def test_an_unsupported_algorithm_is_not_answered(algorithm: str) -> None:
    challenge = Challenge.parse(f'Digest realm="r", nonce="n", algorithm={algorithm}, qop="auth"')
    assert challenge.algorithm == algorithm and not challenge.supported
    client = DigestClient(Credentials("agent", "secret"))
    assert not client.can_answer(challenge)
    with pytest.raises(DigestError, match=f"cannot answer a {algorithm} challenge"):
        client.authorize(challenge, "INVITE", "sip:a@h")
    with pytest.raises(DigestError, match="unsupported digest algorithm"):
        digest_response(
            algorithm=algorithm,
            username="u",
            realm="r",
            password="p",
            nonce="n",
            method="INVITE",
            uri="sip:a@h",
        )
    with pytest.raises(DigestError, match="unsupported digest algorithm"):
        DigestServer("r", algorithm=algorithm)


def test_an_unsupported_qop_is_not_answered() -> None:
    challenge = Challenge.parse('Digest realm="r", nonce="n", qop="auth-conf"')
    assert not challenge.supported
    with pytest.raises(DigestError, match="unsupported qop"):
        digest_response(
            algorithm="MD5",
            username="u",
            realm="r",
            password="p",
            nonce="n",
            method="INVITE",
            uri="sip:a@h",
            qop="auth-conf",
            nc="00000001",
            cnonce="c",
        )


def test_credentials_for_another_realm_are_not_used() -> None:
    client = DigestClient(Credentials("agent", "secret", realm="sim.test"))
    assert client.can_answer(Challenge.parse('Digest realm="sim.test", nonce="n"'))
    assert not client.can_answer(Challenge.parse('Digest realm="elsewhere", nonce="n"'))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('Basic realm="r"', "unsupported authentication scheme 'Basic'"),
        ("", "unsupported authentication scheme ''"),
        ('Digest realm="r"', "without realm or nonce"),
        ('Digest nonce="n"', "without realm or nonce"),
        ('Digest realm="r", realm="s", nonce="n"', "auth parameter realm given twice"),
        ('Digest realm="unterminated, nonce="n"', "malformed auth parameter"),
        ("Digest realm r, nonce n", "malformed auth parameter"),
        ('Digest realm="r",, nonce="n"', "malformed auth parameter"),
    ],
)
def test_a_malformed_challenge_raises_the_digest_error(value: str, fragment: str) -> None:
    with pytest.raises(DigestError) as info:
        Challenge.parse(value)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_qop_without_nc_or_cnonce_is_refused() -> None:
    with pytest.raises(DigestError, match="qop requires nc and cnonce"):
        digest_response(
            algorithm="MD5",
            username="u",
            realm="r",
            password="p",
            nonce="n",
            method="INVITE",
            uri="sip:a@h",
            qop="auth",
        )


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Basic dXNlcjpwYXNz", "unsupported scheme 'Basic'"),
        ('Digest username="agent", realm="sim.test"', "missing nonce, uri, response"),
        ('Digest username="agent", realm="sim.test", nonce=', "missing uri, response"),
        ('Digest username="agent",, x', "malformed auth parameter"),
    ],
)
def test_the_server_refuses_malformed_answers_with_a_reason(header: str, reason: str) -> None:
    verdict = DigestServer("sim.test", secret=b"key").verify(header, "INVITE", USERS, now=0.0)
    assert not verdict.ok
    assert reason in verdict.reason


def test_the_server_without_qop_accepts_the_legacy_answer_and_refuses_a_qop_one() -> None:
    legacy = DigestServer("sim.test", secret=b"key", qop=None)
    challenge_text = legacy.challenge(now=0.0)
    assert "qop" not in challenge_text
    challenge = Challenge.parse(challenge_text)
    header = DigestClient(Credentials("agent", "secret")).authorize(challenge, "BYE", "sip:a@h")
    assert legacy.verify(header, "BYE", USERS, now=1.0).ok
    forced = Challenge(challenge.realm, challenge.nonce, qop=("auth",))
    with_qop = DigestClient(Credentials("agent", "secret")).authorize(forced, "BYE", "sip:a@h")
    assert legacy.verify(with_qop, "BYE", USERS, now=1.0).reason == "qop 'auth' was not offered"


def test_every_nonce_verifies_even_when_its_mac_holds_a_colon_byte() -> None:
    # About one MAC in sixteen holds a 0x3A byte; 400 nonces with a fixed secret
    # include such MACs deterministically (a split at the last colon refused them).
    server = DigestServer("sim.test", secret=b"key")
    client = DigestClient(Credentials("agent", "secret"))
    refused = []
    for step in range(400):
        now = 1000.0 + step / 8
        challenge = Challenge.parse(server.challenge(now=now))
        header = client.authorize(challenge, "INVITE", "sip:agent@h")
        verdict = server.verify(header, "INVITE", USERS, now=now + 1.0)
        if not verdict.ok:
            refused.append((now, verdict.reason))
    assert refused == []
