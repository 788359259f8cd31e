"""What to do after one delivery attempt: done, retry at a deadline, or give up.

This module is sans-I/O: it reads no clock, draws no random numbers and touches
no socket. The sender passes in the attempt number, the outcome (an HTTP status
with headers and a body excerpt, or the kind of transport error), the current
wall-clock time and a uniform random number, and gets back a decision. Tests
drive every branch with plain values.

The rules, in order:

* **2xx**: delivered.
* **408, 425, 429 and every 5xx**, and **connection errors, timeouts and resets**:
  transient. Retry at ``now + delay`` where the delay is the server's
  ``Retry-After`` (seconds or an HTTP date, cut to ``max_retry_after``) when it
  asks for a positive wait, and otherwise full-jitter exponential backoff:
  uniform in ``[0, min(cap, base * 2 ** (attempt - 1))]``. Full jitter (rather
  than OTel's ±20 %) spreads the retries of many agents that lost the platform
  at the same moment, and needs no per-entry state beyond the attempt count.
* **Any other status** (401, 403, 404 unknown result id, 409, 413, 422, and 3xx
  redirects, which are not followed because ``X-API-Key`` would go wherever the
  ``Location`` points): permanent. The entry is marked failed and kept, with the
  server's message, so nothing is lost and ``roost outbox flush --retry-failed``
  can send it again after the cause is fixed.
* A transient failure more than ``max_age`` after submission becomes permanent
  too (still kept). The last retry is scheduled no later than that age, so a
  long backoff never skips the final attempt.

Example:
    >>> from roost.delivery.policy import HttpResponse, RetryAt, RetryPolicy
    >>> policy = RetryPolicy(base=1.0, cap=60.0)
    >>> decision = policy.decide(
    ...     attempt=1,
    ...     outcome=HttpResponse(429, {"retry-after": "7"}),
    ...     now=1000.0,
    ...     created_at=999.0,
    ...     rand=0.5,
    ... )
    >>> decision
    RetryAt(deadline=1007.0, reason='HTTP 429 (Retry-After 7s)')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from enum import StrEnum

__all__ = [
    "Decision",
    "Delivered",
    "ErrorKind",
    "Fail",
    "HttpResponse",
    "Outcome",
    "RetryAt",
    "RetryPolicy",
    "TransportFailure",
    "describe_response",
    "parse_retry_after",
]

_TRANSIENT_STATUSES = frozenset({408, 425, 429})
_MESSAGE_LIMIT = 500


class ErrorKind(StrEnum):
    """Why an attempt produced no HTTP response."""

    CONNECT = "connect"
    """The connection could not be opened (refused, DNS, TLS handshake)."""
    TIMEOUT = "timeout"
    """Connecting, sending or waiting for the response took longer than the timeout."""
    NETWORK = "network"
    """The connection broke mid-request (reset, closed early, malformed response)."""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """The server answered.

    Attributes:
        status: HTTP status code.
        headers: Response headers with lower-case names.
        body: The start of the response body (the sender reads at most a few KiB).
    """

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class TransportFailure:
    """The attempt ended without a response.

    Attributes:
        kind: Category of the failure.
        message: Human-readable detail (exception class and text).
    """

    kind: ErrorKind
    message: str


Outcome = HttpResponse | TransportFailure


@dataclass(frozen=True, slots=True)
class Delivered:
    """The platform accepted the payload.

    Attributes:
        status: The 2xx status.
        message: The server's message, if it sent one.
    """

    status: int
    message: str


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Try again no earlier than ``deadline`` (wall-clock seconds since the epoch).

    Attributes:
        deadline: When the next attempt becomes due.
        reason: What went wrong, for the outbox and logs.
    """

    deadline: float
    reason: str


@dataclass(frozen=True, slots=True)
class Fail:
    """Stop retrying; keep the entry as failed.

    Attributes:
        reason: What went wrong, including the server's message.
    """

    reason: str


Decision = Delivered | RetryAt | Fail


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value.

    Accepts delay-seconds (``"120"``) and HTTP dates
    (``"Wed, 21 Oct 2026 07:28:00 GMT"``). A date in the past gives ``0.0``.
    Anything unparsable gives ``None`` (the caller falls back to backoff).

    Example:
        >>> parse_retry_after("120", now=0.0)
        120.0
        >>> parse_retry_after("Thu, 01 Jan 1970 00:01:00 GMT", now=30.0)
        30.0
        >>> parse_retry_after("soon", now=0.0) is None
        True
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are always GMT; a zone-less parse is a malformed value.
        return None
    return max(0.0, when.timestamp() - now)


def _server_message(body: bytes) -> str:
    """The most useful short text of an error body (FastAPI ``detail`` first)."""
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return text[:_MESSAGE_LIMIT]
    if isinstance(data, dict):
        for key in ("detail", "message", "error"):
            detail = data.get(key)
            if isinstance(detail, str) and detail:
                return detail[:_MESSAGE_LIMIT]
            if isinstance(detail, list) and detail:
                parts = []
                for item in detail[:5]:
                    if isinstance(item, dict) and "msg" in item:
                        loc = ".".join(str(p) for p in item.get("loc", []))
                        parts.append(f"{loc}: {item['msg']}" if loc else str(item["msg"]))
                    else:
                        parts.append(str(item))
                return "; ".join(parts)[:_MESSAGE_LIMIT]
    return text[:_MESSAGE_LIMIT]


def describe_response(response: HttpResponse) -> str:
    """``"HTTP 404: Simulation result not found"``: status plus the server's message.

    Example:
        >>> describe_response(HttpResponse(404, body=b'{"detail": "Result not found"}'))
        'HTTP 404: Result not found'
    """
    message = _server_message(response.body)
    return f"HTTP {response.status}: {message}" if message else f"HTTP {response.status}"


def _format_age(seconds: float) -> str:
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} hours"
    if seconds >= 60:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds:.1f} s"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Backoff and give-up rules (all durations in seconds).

    Attributes:
        base: Bound of the first retry delay.
        cap: Largest bound the doubling reaches.
        max_age: Transient failures are retried until this long after submission.
        max_retry_after: Longest ``Retry-After`` obeyed.
    """

    base: float = 1.0
    cap: float = 300.0
    max_age: float = 7 * 86_400.0
    max_retry_after: float = 3_600.0

    def backoff(self, attempt: int, rand: float) -> float:
        """Full-jitter delay after failed attempt number ``attempt`` (1-based).

        Args:
            attempt: How many attempts have been made, including the one that failed.
            rand: A uniform random number in ``[0, 1)``.

        Example:
            >>> RetryPolicy(base=0.5, cap=4.0).backoff(3, rand=0.5)
            1.0
        """
        # Clamp the exponent so a huge attempt count cannot overflow the float.
        exponent = min(max(attempt, 1) - 1, 60)
        bound = min(self.cap, self.base * math.pow(2.0, exponent))
        return min(max(rand, 0.0), 1.0) * bound

    def decide(
        self,
        *,
        attempt: int,
        outcome: Outcome,
        now: float,
        created_at: float,
        rand: float,
    ) -> Decision:
        """Decide what follows an attempt.

        Args:
            attempt: Attempts made so far, including this one (1 for the first).
            outcome: What the attempt produced.
            now: Current wall-clock time (seconds since the epoch).
            created_at: When the payload was submitted.
            rand: A uniform random number in ``[0, 1)`` for the jitter.

        Returns:
            :class:`Delivered`, :class:`RetryAt` or :class:`Fail`.

        Example:
            >>> RetryPolicy().decide(
            ...     attempt=1, outcome=HttpResponse(404), now=5.0, created_at=0.0, rand=0.0
            ... )
            Fail(reason='HTTP 404 (not retried: the platform rejected the payload)')
        """
        if isinstance(outcome, TransportFailure):
            reason = f"{outcome.kind.value} error: {outcome.message}"
            return self._retry(attempt, reason, None, now, created_at, rand)
        status = outcome.status
        if 200 <= status < 300:
            return Delivered(status, _server_message(outcome.body))
        if status in _TRANSIENT_STATUSES or 500 <= status < 600:
            retry_after = parse_retry_after(outcome.headers.get("retry-after"), now)
            return self._retry(
                attempt, describe_response(outcome), retry_after, now, created_at, rand
            )
        if 300 <= status < 400:
            location = outcome.headers.get("location", "?")
            return Fail(
                f"HTTP {status} redirect to {location} (not followed, the API key would go "
                "with it); set the base URL to the final address"
            )
        described = describe_response(outcome)
        if described == f"HTTP {status}":
            return Fail(f"{described} (not retried: the platform rejected the payload)")
        return Fail(described)

    def _retry(
        self,
        attempt: int,
        reason: str,
        retry_after: float | None,
        now: float,
        created_at: float,
        rand: float,
    ) -> Decision:
        expires = created_at + self.max_age
        if now >= expires:
            return Fail(
                f"gave up after {attempt} attempts over {_format_age(now - created_at)} "
                f"(max age {_format_age(self.max_age)}); last error: {reason}"
            )
        delay = 0.0
        if retry_after is not None:
            delay = min(retry_after, self.max_retry_after)
        if delay > 0:
            reason = f"{reason} (Retry-After {retry_after:g}s)"
        else:
            # No usable Retry-After (absent, zero, or capped to zero): back off
            # anyway, so a server answering "retry now" forever is not hammered.
            delay = self.backoff(attempt, rand)
        return RetryAt(min(now + delay, expires), reason)
