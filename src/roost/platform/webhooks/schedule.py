"""When to retry a webhook delivery: a pure decision (attempt outcome and time in).

The worker calls :func:`decide` after every attempt with what happened and the
current time, and stores the returned :class:`Decision`; no clock is read and
nothing sleeps here, so the whole schedule is tested by passing times.

Rules:

- a 2xx answer delivers the event;
- ``410 Gone`` gives up at once (the receiver says the endpoint is gone);
- anything else (connection errors, timeouts, 3xx, 4xx, 5xx) is retried:
  receivers commonly answer 401/404 while being redeployed or re-keyed, so a
  4xx is not proof that a retry cannot succeed;
- the delay before retry ``n`` is ``min(max_delay, base_delay * 2 ** (n - 1))``
  times a random factor in ``[1 - jitter, 1 + jitter)``, so that endpoints
  that fail together do not retry in lockstep;
- a ``Retry-After`` header (seconds or an HTTP date) replaces that delay when
  present, within ``[1 s, max_delay]``;
- the delivery is given up, and kept as ``failed`` (visible and redeliverable
  through the API), after ``max_attempts`` attempts or when the next attempt
  would fall after its ``expires_at`` (``created_at + max_age``).

With the defaults (10 s base, 4 h cap, 16 attempts, 3 days) the retries come
after about 10 s, 20 s, 40 s, 80 s, 2.7 min, 5.3 min, 11 min, 21 min, 43 min,
1.4 h, 2.8 h and then four times every 4 h: the last attempt is about 22 hours
after the first.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> policy = RetryPolicy()
    >>> decide(policy, attempt=1, status_code=503, retry_after=None, error=None,
    ...        now=now, expires_at=now + policy.max_age, rand=0.5).next_attempt_at - now
    datetime.timedelta(seconds=10)
"""

from __future__ import annotations

import email.utils
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = ["Decision", "RetryPolicy", "backoff_delay", "decide", "parse_retry_after"]

DeliveryState = Literal["pending", "delivered", "failed"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try.

    Attributes:
        max_attempts: Attempts before giving up (the first one included).
        base_delay: Seconds before the first retry.
        max_delay: Longest wait between two attempts, in seconds.
        jitter: Relative spread of each delay (0.2 = plus or minus 20 %).
        max_age: How long after the event the last attempt may happen.
        timeout: Seconds one attempt may take, connection to response.
    """

    max_attempts: int = 16
    base_delay: float = 10.0
    max_delay: float = 4 * 3600.0
    jitter: float = 0.2
    max_age: timedelta = timedelta(days=3)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.base_delay <= 0 or self.max_delay < self.base_delay:
            raise ValueError("need 0 < base_delay <= max_delay")
        if self.timeout <= 0:
            raise ValueError("timeout must be positive")


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a delivery after an attempt.

    Attributes:
        state: ``delivered``, ``pending`` (retry later) or ``failed`` (gave up).
        next_attempt_at: When to retry (only for ``pending``).
        reason: Why, in words, for the delivery's ``last_error``.
    """

    state: DeliveryState
    next_attempt_at: datetime | None
    reason: str


def backoff_delay(policy: RetryPolicy, attempt: int, rand: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based).

    Args:
        policy: The retry policy.
        attempt: The attempt that just failed.
        rand: A uniform random number in [0, 1) (injected for tests).

    Example:
        >>> backoff_delay(RetryPolicy(), 3, 0.5)
        40.0
    """
    exponent = min(attempt - 1, 64)  # beyond this the cap applies anyway
    raw = min(policy.max_delay, policy.base_delay * 2.0**exponent)
    factor = 1.0 - policy.jitter + 2.0 * policy.jitter * rand
    return min(policy.max_delay, raw * factor)


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait; ``None`` when absent or invalid.

    Example:
        >>> parse_retry_after("120", datetime(2026, 1, 1, tzinfo=UTC))
        120.0
        >>> parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", datetime(2026, 1, 1, tzinfo=UTC))
        60.0
    """
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(min(int(text[:12]), 10**9))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _describe(status_code: int | None, error: str | None) -> str:
    if status_code is not None:
        return f"HTTP {status_code}"
    return error or "no response"


def decide(
    policy: RetryPolicy,
    *,
    attempt: int,
    status_code: int | None,
    retry_after: str | None,
    error: str | None,
    now: datetime,
    expires_at: datetime,
    rand: float,
) -> Decision:
    """The fate of a delivery after attempt number ``attempt``.

    Args:
        policy: The retry policy.
        attempt: The attempt just made (1-based).
        status_code: The receiver's status, or ``None`` if no response came.
        retry_after: The response's ``Retry-After`` header, if any.
        error: What went wrong when there was no response.
        now: When the attempt finished.
        expires_at: Last moment an attempt may be made.
        rand: A uniform random number in [0, 1) for the jitter.

    Example:
        >>> now = datetime(2026, 1, 1, tzinfo=UTC)
        >>> decide(RetryPolicy(), attempt=1, status_code=204, retry_after=None, error=None,
        ...        now=now, expires_at=now, rand=0.0).state
        'delivered'
    """
    if status_code is not None and 200 <= status_code < 300:
        return Decision("delivered", None, f"HTTP {status_code}")
    what = _describe(status_code, error)
    if status_code == 410:
        return Decision("failed", None, f"{what}: the receiver says the endpoint is gone")
    if attempt >= policy.max_attempts:
        return Decision("failed", None, f"{what}; gave up after {attempt} attempts")
    asked = parse_retry_after(retry_after, now)
    if asked is not None:
        delay = min(max(asked, 1.0), policy.max_delay)
    else:
        delay = backoff_delay(policy, attempt, rand)
    when = now + timedelta(seconds=delay)
    if when > expires_at:
        return Decision(
            "failed",
            None,
            f"{what}; gave up: the next attempt would be after {expires_at.isoformat()}",
        )
    return Decision("pending", when, f"{what}; retry {attempt + 1} in {delay:.0f} s")
