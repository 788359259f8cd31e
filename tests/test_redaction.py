from __future__ import annotations

import doctest
import logging
import re

import pytest

import roost.redaction
from roost.redaction import DEFAULT_SENSITIVE_KEYS, REDACTED, Redactor, key_words, luhn_valid


def test_doctests() -> None:
    assert doctest.testmod(roost.redaction).failed == 0


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("cardNumber", ("card", "number")),
        ("card_number", ("card", "number")),
        ("Card-Number", ("card", "number")),
        ("CARD_NUMBER", ("card", "number")),
        ("card number", ("card", "number")),
        ("cardnumber", ("cardnumber",)),
        ("APIKey", ("api", "key")),
        ("x-api-key", ("x", "api", "key")),
        ("SSNNumber", ("ssn", "number")),
        ("cvv2", ("cvv", "2")),
        ("", ()),
        ("___", ()),
    ],
)
def test_key_words_normalise_spelling(key: str, words: tuple[str, ...]) -> None:
    assert key_words(key) == words


@pytest.mark.parametrize(
    "key",
    [
        "card_number",
        "cardNumber",
        "CardNumber",
        "CARDNUMBER",
        "card-number",
        "pan",
        "PAN",
        "cvv",
        "CVV2",
        "cvc",
        "securityCode",
        "ssn",
        "customer_ssn",
        "SocialSecurityNumber",
        "password",
        "userPassword",
        "passwd",
        "client_secret",
        "secret",
        "access_token",
        "refreshToken",
        "token",
        "api_key",
        "apiKey",
        "x-api-key",
        "apikey",
        "Authorization",
        "proxy-authorization",
        "account_number",
        "accountNumber",
        "acct_no",
        "routing_number",
        "RoutingNumber",
        "iban",
        "pin",
        "PIN",
        "pin_code",
        "otp",
        "private_key",
        "cookie",
        "credentials",
    ],
)
def test_default_keys_cover_financial_services(key: str) -> None:
    assert Redactor().is_sensitive_key(key), key


@pytest.mark.parametrize(
    "key",
    [
        "company",  # contains "pan", but not as a word
        "span_id",
        "max_tokens",
        "prompt_tokens",
        "author",
        "routing",  # voice agents route calls
        "account_id",
        "order_id",
        "amount",
        "classname",  # contains "ssn"
        "spin",
        "name",
    ],
)
def test_harmless_keys_are_kept(key: str) -> None:
    assert not Redactor().is_sensitive_key(key), key


def test_redact_masks_values_under_sensitive_keys_at_any_depth() -> None:
    value = {
        "customer": {"name": "Ada", "ssn": "078-05-1120", "cards": [{"pan": 4111111111111111}]},
        "Authorization": "Bearer abc",
        "notes": ["call back"],
    }
    assert Redactor().redact(value) == {
        "customer": {"name": "Ada", "ssn": REDACTED, "cards": [{"pan": REDACTED}]},
        "Authorization": REDACTED,
        "notes": ["call back"],
    }


def test_a_whole_nested_value_under_a_sensitive_key_is_masked() -> None:
    assert Redactor().redact({"credentials": {"user": "ada", "password": "x"}}) == {
        "credentials": REDACTED
    }


def test_booleans_and_none_under_sensitive_keys_stay_visible() -> None:
    value = {"pin_verified": True, "password": None, "token_present": False, "pin": 0}
    assert Redactor().redact(value) == {
        "pin_verified": True,
        "password": None,
        "token_present": False,
        "pin": REDACTED,
    }


@pytest.mark.parametrize(
    "number",
    [
        "4111111111111111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "378282246310005",  # Amex, 15 digits
        "6011111111111117",
        "4000056655665556",
    ],
)
def test_card_numbers_in_free_text_are_scrubbed(number: str) -> None:
    text = f"charge {number} now"
    assert Redactor().scrub(text) == f"charge {REDACTED} now"


@pytest.mark.parametrize(
    "text",
    [
        "order 4111111111111112 shipped",  # fails the Luhn check
        "call +1 415 555 0100 or 415-555-0199",
        "tracking 1Z999AA10123456784",
        "amount 1234.56",
        "order 123456789012",  # 12 digits: too short for a card
    ],
)
def test_numbers_that_are_not_cards_are_kept(text: str) -> None:
    assert Redactor().scrub(text) == text


def test_ssn_and_bearer_values_are_scrubbed_in_text() -> None:
    redactor = Redactor()
    assert redactor.scrub("SSN 078-05-1120.") == f"SSN {REDACTED}."
    assert redactor.scrub("not an ssn: 000-12-3456") == "not an ssn: 000-12-3456"
    assert redactor.scrub("header: Bearer eyJhbGciOi.J9x_y-z=") == f"header: {REDACTED}"


def test_luhn() -> None:
    assert luhn_valid("79927398713")
    assert not luhn_valid("79927398710")


def test_custom_keys_patterns_and_value_rules() -> None:
    redactor = Redactor(
        keys=["member id", lambda key: key.startswith("x_")],
        patterns=[r"ACCT-\d+", re.compile(r"(?i)mother'?s maiden name: \w+")],
        value_rules=[lambda text: text.replace("hunter2", "*******")],
    )
    assert redactor.is_sensitive_key("memberId")
    assert redactor.is_sensitive_key("x_internal")
    assert redactor.scrub("ACCT-991 ok") == f"{REDACTED} ok"
    assert redactor.scrub("Mother's maiden name: Smith") == REDACTED
    assert redactor.scrub("pw hunter2") == "pw *******"


def test_defaults_can_be_replaced_and_keys_allowed() -> None:
    only_custom = Redactor(["member_id"], defaults=False)
    assert not only_custom.is_sensitive_key("password")
    assert only_custom.is_sensitive_key("MemberID")
    allowing = Redactor(allow_keys=["pin_attempts"])
    assert not allowing.is_sensitive_key("pinAttempts")
    assert allowing.is_sensitive_key("pin")


def test_disabled_redactor_changes_nothing() -> None:
    redactor = Redactor.disabled()
    value = {"password": "x", "text": "4111111111111111"}
    assert redactor.redact(value) == value
    assert not redactor.active


def test_custom_marker() -> None:
    redactor = Redactor(marker="***")
    assert redactor.redact({"cvv": "123"}) == {"cvv": "***"}


def test_failing_custom_rules_fail_closed(caplog: pytest.LogCaptureFixture) -> None:
    def broken_value_rule(text: str) -> str:
        raise RuntimeError("boom")

    def broken_key_rule(key: str) -> bool:
        raise RuntimeError("boom")

    redactor = Redactor(keys=[broken_key_rule], value_rules=[broken_value_rule])
    with caplog.at_level(logging.WARNING, logger="roost"):
        assert redactor.scrub("anything") == REDACTED
        assert redactor.is_sensitive_key("harmless")
    assert "redaction" in caplog.text

    returns_bytes = Redactor(value_rules=[lambda text: text.encode()])  # type: ignore[arg-type,return-value]
    assert returns_bytes.scrub("x") == REDACTED


def test_bad_rules_are_refused_at_construction() -> None:
    with pytest.raises(TypeError, match="key rule"):
        Redactor(keys=[42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="value rule"):
        Redactor(value_rules=["not callable"])  # type: ignore[list-item]
    with pytest.raises(re.error):
        Redactor(patterns=["("])


def test_key_cache_stays_bounded() -> None:
    redactor = Redactor()
    for index in range(10_000):
        redactor.is_sensitive_key(f"field_{index}")
    assert len(redactor._cache) <= 4096
    assert redactor.is_sensitive_key("password")


def test_every_default_key_matches_itself_in_every_spelling() -> None:
    redactor = Redactor()
    for key in DEFAULT_SENSITIVE_KEYS:
        words = key.split()
        for spelling in (
            "_".join(words),
            "-".join(w.upper() for w in words),
            words[0] + "".join(w.title() for w in words[1:]),
            "".join(words),
        ):
            assert redactor.is_sensitive_key(spelling), spelling


def test_transcript_flag_is_exposed() -> None:
    assert not Redactor().transcript
    assert Redactor(transcript=True).transcript
