from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from roost.delivery.policy import (
    Delivered,
    ErrorKind,
    Fail,
    HttpResponse,
    RetryAt,
    RetryPolicy,
    TransportFailure,
    describe_response,
    parse_retry_after,
)

NOW = 1_800_000_000.0
POLICY = RetryPolicy(base=2.0, cap=60.0, max_age=3_600.0, max_retry_after=600.0)


def decide(
    outcome: HttpResponse | TransportFailure,
    *,
    attempt: int = 1,
    rand: float = 0.5,
    now: float = NOW,
    created_at: float = NOW - 1,
):
    return POLICY.decide(
        attempt=attempt, outcome=outcome, now=now, created_at=created_at, rand=rand
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    decision = decide(HttpResponse(status, body=b'{"status": "success", "message": "ok"}'))
    assert decision == Delivered(status, "ok")


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_transient_statuses_retry(status: int) -> None:
    decision = decide(HttpResponse(status))
    assert isinstance(decision, RetryAt)
    assert decision.deadline == NOW + 0.5 * 2.0
    assert decision.reason.startswith(f"HTTP {status}")


@pytest.mark.parametrize("kind", list(ErrorKind))
def test_transport_failures_retry(kind: ErrorKind) -> None:
    decision = decide(TransportFailure(kind, "ConnectError: refused"), attempt=3, rand=0.25)
    assert decision == RetryAt(NOW + 0.25 * 8.0, f"{kind.value} error: ConnectError: refused")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 410, 413, 415, 422, 451])
def test_other_4xx_fail_with_server_message(status: int) -> None:
    decision = decide(HttpResponse(status, body=b'{"detail": "Simulation result not found"}'))
    assert decision == Fail(f"HTTP {status}: Simulation result not found")


def test_4xx_without_body_still_explains() -> None:
    decision = decide(HttpResponse(401))
    assert isinstance(decision, Fail)
    assert "HTTP 401" in decision.reason and "not retried" in decision.reason


def test_fastapi_validation_detail_is_summarised() -> None:
    body = (
        b'{"detail": [{"loc": ["body", "tool_calls", 0, "start_offset_ms"],'
        b' "msg": "Input should be greater than or equal to 0", "type": "greater_than_equal"}]}'
    )
    decision = decide(HttpResponse(422, body=body))
    assert decision == Fail(
        "HTTP 422: body.tool_calls.0.start_offset_ms: Input should be greater than or equal to 0"
    )


def test_non_json_error_body_is_cut() -> None:
    decision = decide(HttpResponse(400, body=b"<html>" + b"x" * 5000))
    assert isinstance(decision, Fail)
    assert decision.reason.startswith("HTTP 400: <html>xxx")
    assert len(decision.reason) < 600


def test_redirect_is_not_followed() -> None:
    decision = decide(HttpResponse(308, {"location": "https://elsewhere.example/v1/x"}))
    assert isinstance(decision, Fail)
    assert "https://elsewhere.example/v1/x" in decision.reason
    assert "not followed" in decision.reason


def test_backoff_is_full_jitter_doubling_to_the_cap() -> None:
    bounds = [POLICY.backoff(attempt, rand=0.999999) for attempt in range(1, 9)]
    assert [round(b) for b in bounds] == [2, 4, 8, 16, 32, 60, 60, 60]
    assert POLICY.backoff(5, rand=0.0) == 0.0
    assert POLICY.backoff(10_000, rand=1.0) == 60.0  # no overflow for huge counts


def test_retry_after_seconds_wins_over_backoff() -> None:
    decision = decide(HttpResponse(429, {"retry-after": "30"}), rand=0.0)
    assert decision == RetryAt(NOW + 30, "HTTP 429 (Retry-After 30s)")


def test_retry_after_http_date() -> None:
    when = datetime.fromtimestamp(NOW + 45, tz=UTC)
    header = format_datetime(when, usegmt=True)
    decision = decide(HttpResponse(503, {"retry-after": header}))
    assert isinstance(decision, RetryAt)
    assert decision.deadline == NOW + 45


def test_retry_after_is_capped() -> None:
    decision = decide(HttpResponse(503, {"retry-after": "86400"}))
    assert isinstance(decision, RetryAt)
    assert decision.deadline == NOW + 600


@pytest.mark.parametrize("value", ["0", "soon", "-5", "", "1.5"])
def test_zero_or_garbage_retry_after_falls_back_to_backoff(value: str) -> None:
    decision = decide(HttpResponse(503, {"retry-after": value}), rand=0.5)
    assert isinstance(decision, RetryAt)
    assert decision.deadline == NOW + 1.0


def test_retry_after_on_a_permanent_status_is_ignored() -> None:
    decision = decide(HttpResponse(400, {"retry-after": "5"}))
    assert isinstance(decision, Fail)


def test_gives_up_after_max_age_and_says_why() -> None:
    decision = decide(
        TransportFailure(ErrorKind.CONNECT, "refused"), attempt=40, now=NOW, created_at=NOW - 3_600
    )
    assert isinstance(decision, Fail)
    assert "gave up after 40 attempts" in decision.reason
    assert "last error: connect error: refused" in decision.reason


def test_last_retry_is_scheduled_at_the_age_limit() -> None:
    decision = decide(HttpResponse(429, {"retry-after": "500"}), now=NOW, created_at=NOW - 3_500)
    assert isinstance(decision, RetryAt)
    assert decision.deadline == NOW + 100


def test_success_after_max_age_is_still_delivered() -> None:
    decision = decide(HttpResponse(200), now=NOW, created_at=NOW - 10 * 3_600)
    assert decision == Delivered(200, "")


def test_parse_retry_after_past_date_is_zero() -> None:
    assert parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now=NOW) == 0.0


def test_parse_retry_after_rejects_zone_less_dates() -> None:
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:00", now=NOW) is None


def test_describe_response_uses_message_key() -> None:
    assert (
        describe_response(HttpResponse(500, body=b'{"message": "db down"}')) == "HTTP 500: db down"
    )
