from __future__ import annotations

import hashlib
import hmac

import pytest

from roost import __version__
from roost.platform.webhooks.signing import (
    delivery_headers,
    generate_secret,
    sign,
    sign_timestamped,
    verify_signature,
    verify_timestamped,
)

# Vectors computed independently of the module under test.
SECRET = "whsec_5ee3d2a1c0ffee"
BODY = b'{"type":"simulation_ended","id":720488,"digital_human_id":3}'


def reference(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def test_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    assert sign(SECRET, BODY) == reference(SECRET, BODY)
    # RFC 4231 test case 2 ("Jefe"), as a fixed known answer.
    assert sign("Jefe", b"what do ya want for nothing?") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert sign("", b"") == "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad"


def test_timestamped_signature_covers_the_timestamp() -> None:
    assert sign_timestamped(SECRET, BODY, 1767225600) == reference(SECRET, b"1767225600." + BODY)
    assert sign_timestamped(SECRET, BODY, 1767225600) != sign_timestamped(SECRET, BODY, 1767225601)


@pytest.mark.parametrize(
    "header",
    [
        reference(SECRET, BODY),
        "sha256=" + reference(SECRET, BODY),
        "SHA256=" + reference(SECRET, BODY).upper(),
        "  " + reference(SECRET, BODY) + "\n",
    ],
)
def test_verify_accepts_the_forms_receivers_see(header: str) -> None:
    assert verify_signature(SECRET, BODY, header)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "sha256=",
        reference(SECRET, BODY)[:-1],
        reference(SECRET, BODY) + "0",
        reference("whsec_other", BODY),
        reference(SECRET, BODY + b" "),
        "z" * 64,
        "sha1=" + reference(SECRET, BODY),
    ],
)
def test_verify_refuses_everything_else(header: str) -> None:
    assert not verify_signature(SECRET, BODY, header)


def test_verify_refuses_non_string_headers() -> None:
    assert not verify_signature(SECRET, BODY, None)  # type: ignore[arg-type]


def test_verify_with_several_secrets() -> None:
    header = reference("whsec_old", BODY)
    assert verify_signature(["whsec_new", "whsec_old"], BODY, header)
    assert verify_signature(("whsec_old",), BODY, header)
    assert not verify_signature(["whsec_new"], BODY, header)
    assert not verify_signature([], BODY, header)


def test_verify_timestamped() -> None:
    timestamp = 1767225600
    new, old = (
        reference("whsec_new", b"1767225600." + BODY),
        reference("whsec_old", b"1767225600." + BODY),
    )
    header = f"v1={new},v1={old}"
    assert verify_timestamped("whsec_new", BODY, str(timestamp), header, now=timestamp)
    assert verify_timestamped("whsec_old", BODY, str(timestamp), header, now=timestamp + 299)
    assert verify_timestamped("whsec_old", BODY, str(timestamp), header, now=timestamp - 299)
    # Too old or too far in the future: a replay.
    assert not verify_timestamped("whsec_new", BODY, str(timestamp), header, now=timestamp + 301)
    assert not verify_timestamped(
        "whsec_new", BODY, str(timestamp), header, now=timestamp + 3600, tolerance=60
    )
    # Another timestamp than the one signed.
    assert not verify_timestamped("whsec_new", BODY, str(timestamp + 1), header, now=timestamp)
    for bad in ["", "-5", "1.5", "x", "9" * 13]:
        assert not verify_timestamped("whsec_new", BODY, bad, header, now=timestamp)
    for bad_header in ["", new, "v2=" + new, "v1=", "v1=" + "0" * 64, "v1=" + new[:10]]:
        assert not verify_timestamped("whsec_new", BODY, str(timestamp), bad_header, now=timestamp)
    assert not verify_timestamped("whsec_new", BODY, str(timestamp), "v1=" * 2000, now=timestamp)


def test_delivery_headers() -> None:
    headers = delivery_headers(
        event_type="simulation_result_evaluated",
        body=BODY,
        bluejay_secret="whsec_old",
        roost_secrets=["whsec_new", "whsec_old"],
        delivery_id="3f0c5a1e-0000-4000-8000-000000000001",
        event_id="9b2d7c4e-0000-4000-8000-000000000002",
        attempt=3,
        timestamp=1767225600,
    )
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": f"Roost-Webhooks/{__version__}",
        "X-Bluejay-Signature": reference("whsec_old", BODY),
        "X-Bluejay-Event": "simulation_result_evaluated",
        "X-Bluejay-Delivery": "3f0c5a1e-0000-4000-8000-000000000001",
        "X-Roost-Event-Id": "9b2d7c4e-0000-4000-8000-000000000002",
        "X-Roost-Attempt": "3",
        "X-Roost-Timestamp": "1767225600",
        "X-Roost-Signature": "v1={},v1={}".format(
            reference("whsec_new", b"1767225600." + BODY),
            reference("whsec_old", b"1767225600." + BODY),
        ),
    }


def test_generate_secret() -> None:
    secrets = {generate_secret() for _ in range(100)}
    assert len(secrets) == 100
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(secret) == len("whsec_") + 43
