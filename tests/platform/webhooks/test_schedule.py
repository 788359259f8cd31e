from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from roost.platform.webhooks.schedule import (
    Decision,
    RetryPolicy,
    backoff_delay,
    decide,
    parse_retry_after,
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RetryPolicy()
LATER = NOW + POLICY.max_age


def after(attempt: int, status: int | None = 500, **kwargs: object) -> Decision:
    options: dict[str, object] = {
        "retry_after": None,
        "error": None if status is not None else "ConnectError: refused",
        "now": NOW,
        "expires_at": LATER,
        "rand": 0.5,
    }
    options.update(kwargs)
    return decide(POLICY, attempt=attempt, status_code=status, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert after(1, status) == Decision("delivered", None, f"HTTP {status}")


@pytest.mark.parametrize("status", [None, 301, 302, 400, 401, 404, 408, 429, 500, 502, 503, 504])
def test_everything_else_is_retried(status: int | None) -> None:
    decision = after(1, status)
    assert decision.state == "pending"
    assert decision.next_attempt_at == NOW + timedelta(seconds=10)


def test_410_gives_up_at_once() -> None:
    decision = after(1, 410)
    assert decision.state == "failed"
    assert "gone" in decision.reason


def test_exponential_backoff_with_cap() -> None:
    delays = [backoff_delay(POLICY, attempt, 0.5) for attempt in range(1, 16)]
    assert delays[:11] == [10.0 * 2**i for i in range(11)]
    assert delays[11:] == [4 * 3600.0] * 4
    # The documented total: about 22 hours between the first and the last attempt.
    assert sum(delays) == pytest.approx(78070)
    assert backoff_delay(POLICY, 1000, 0.5) == 4 * 3600.0


def test_jitter_stays_within_bounds() -> None:
    assert backoff_delay(POLICY, 1, 0.0) == pytest.approx(8.0)
    assert backoff_delay(POLICY, 1, 0.999999) == pytest.approx(12.0, abs=1e-4)
    # Jitter never pushes past the cap.
    assert backoff_delay(POLICY, 20, 0.999999) == 4 * 3600.0
    no_jitter = RetryPolicy(jitter=0.0)
    assert {backoff_delay(no_jitter, 2, r) for r in (0.0, 0.3, 0.9)} == {20.0}


def test_gives_up_after_max_attempts() -> None:
    assert after(15, 503).state == "pending"
    decision = after(16, 503)
    assert decision == Decision("failed", None, "HTTP 503; gave up after 16 attempts")
    assert (
        decide(
            RetryPolicy(max_attempts=1),
            attempt=1,
            status_code=None,
            retry_after=None,
            error="ReadTimeout",
            now=NOW,
            expires_at=LATER,
            rand=0.0,
        ).reason
        == "ReadTimeout; gave up after 1 attempts"
    )


def test_gives_up_when_the_next_attempt_would_be_too_late() -> None:
    decision = after(3, 500, expires_at=NOW + timedelta(seconds=39))
    assert decision.state == "failed"
    assert "after 2026-01-01T12:00:39+00:00" in decision.reason
    assert after(3, 500, expires_at=NOW + timedelta(seconds=40)).state == "pending"


def test_retry_after_seconds_and_dates() -> None:
    assert after(1, 429, retry_after="120").next_attempt_at == NOW + timedelta(seconds=120)
    assert after(1, 503, retry_after="Thu, 01 Jan 2026 12:05:00 GMT").next_attempt_at == (
        NOW + timedelta(minutes=5)
    )
    # At least one second, at most the cap; garbage falls back to backoff.
    assert after(1, 429, retry_after="0").next_attempt_at == NOW + timedelta(seconds=1)
    assert after(1, 429, retry_after="999999999").next_attempt_at == NOW + timedelta(hours=4)
    assert after(1, 429, retry_after="soon").next_attempt_at == NOW + timedelta(seconds=10)
    assert after(1, 429, retry_after="120").reason == "HTTP 429; retry 2 in 120 s"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("60", 60.0),
        (" 60 ", 60.0),
        ("-1", None),
        ("1.5", None),
        ("Thu, 01 Jan 2026 12:00:30 GMT", 30.0),
        ("Wed, 31 Dec 2025 12:00:00 GMT", 0.0),
        ("Thu, 01 Jan 2026 12:00:30", 30.0),
        ("not a date", None),
        ("9" * 40, 1e9),
    ],
)
def test_parse_retry_after(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, NOW) == seconds


@pytest.mark.parametrize(
    "options",
    [
        {"max_attempts": 0},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"base_delay": 0},
        {"base_delay": 10, "max_delay": 5},
        {"timeout": 0},
    ],
)
def test_policy_validation(options: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**options)  # type: ignore[arg-type]
