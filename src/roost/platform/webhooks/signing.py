"""Webhook signatures and headers (sans-I/O: bytes and a timestamp in, strings out).

Every delivery carries Bluejay's headers, so a receiver written for Bluejay
works unchanged:

- ``X-Bluejay-Signature``: lowercase hex HMAC-SHA256 of the raw body, keyed
  with the endpoint's signing secret (the UTF-8 bytes of the whole secret
  string, ``whsec_`` prefix included);
- ``X-Bluejay-Event``: the event type, equal to the body's ``type``;
- ``X-Bluejay-Delivery``: a new UUID for every attempt;
- ``User-Agent`` and ``Content-Type: application/json``.

Roost adds what Bluejay's scheme lacks:

- ``X-Roost-Event-Id``: the same UUID on every attempt and every endpoint of
  one event, to deduplicate retries (at-least-once delivery means a receiver
  may see an event twice);
- ``X-Roost-Attempt``: 1 for the first attempt, 2 for the first retry...;
- ``X-Roost-Timestamp``: Unix time of the attempt, in seconds;
- ``X-Roost-Signature``: ``v1=<hex>`` entries, each an HMAC-SHA256 of
  ``"<timestamp>." + body`` with one valid secret. Unlike the Bluejay
  signature it covers the timestamp, so a receiver can refuse replays of old
  deliveries (:func:`verify_timestamped`).

Secret rotation. After ``rotate-secret`` the previous secret stays valid for a
grace period (default one day). During it ``X-Bluejay-Signature`` is still
made with the *previous* secret, so Bluejay-style receivers keep working
untouched until they switch, and ``X-Roost-Signature`` carries one entry per
secret (new first). Receivers should switch to the new secret, or accept both
(:func:`verify_signature` takes a list), before the grace period ends, when
``X-Bluejay-Signature`` moves to the new secret. Rotating with a grace period
of zero (a leaked secret) switches at once.

Example:
    >>> body = b'{"type":"simulation_ended","id":7}'
    >>> signature = sign("whsec_test", body)
    >>> verify_signature("whsec_test", body, signature)
    True
    >>> verify_signature("whsec_test", body, "sha256=" + signature)
    True
    >>> verify_signature("whsec_other", body, signature)
    False
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as _secrets
from collections.abc import Iterable, Sequence
from typing import Final

from roost import __version__

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "ROOST_SIGNATURE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "USER_AGENT",
    "delivery_headers",
    "generate_secret",
    "sign",
    "sign_timestamped",
    "verify_signature",
    "verify_timestamped",
]

SIGNATURE_HEADER: Final = "X-Bluejay-Signature"
EVENT_HEADER: Final = "X-Bluejay-Event"
DELIVERY_HEADER: Final = "X-Bluejay-Delivery"
EVENT_ID_HEADER: Final = "X-Roost-Event-Id"
ATTEMPT_HEADER: Final = "X-Roost-Attempt"
TIMESTAMP_HEADER: Final = "X-Roost-Timestamp"
ROOST_SIGNATURE_HEADER: Final = "X-Roost-Signature"
USER_AGENT: Final = f"Roost-Webhooks/{__version__}"

SECRET_PREFIX: Final = "whsec_"
_MAX_SIGNATURE_HEADER: Final = 4096
_HEX_DIGITS: Final = frozenset("0123456789abcdef")


def generate_secret() -> str:
    """A new signing secret: ``whsec_`` and 256 random bits, URL-safe base64."""
    return SECRET_PREFIX + _secrets.token_urlsafe(32)


def sign(secret: str, body: bytes) -> str:
    """``X-Bluejay-Signature`` of ``body``: lowercase hex HMAC-SHA256."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def sign_timestamped(secret: str, body: bytes, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` (one ``X-Roost-Signature`` entry)."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _as_list(secret: str | Iterable[str]) -> list[str]:
    return [secret] if isinstance(secret, str) else list(secret)


def _clean_hex(text: str) -> str | None:
    value = text.strip().lower()
    if value.startswith("sha256="):
        value = value[len("sha256=") :]
    if len(value) != 64 or not set(value) <= _HEX_DIGITS:
        return None
    return value


def verify_signature(secret: str | Iterable[str], body: bytes, signature: str) -> bool:
    """Check an ``X-Bluejay-Signature`` header, for receivers.

    Args:
        secret: The endpoint's signing secret, or several (accept both the old
            and the new one while a rotation is in progress).
        body: The raw request body, exactly as received (before any JSON
            parsing: re-encoding changes the bytes).
        signature: The header value; an optional ``sha256=`` prefix is accepted.

    Returns:
        Whether the signature was made with one of the secrets. The comparison
        takes the same time however much of a forged signature is right.

    Example:
        >>> verify_signature(["whsec_new", "whsec_old"], b"{}", sign("whsec_old", b"{}"))
        True
    """
    candidate = _clean_hex(signature) if isinstance(signature, str) else None
    if candidate is None:
        return False
    matched = False
    for key in _as_list(secret):
        # No early exit: every secret is compared.
        matched |= hmac.compare_digest(sign(key, body), candidate)
    return matched


def verify_timestamped(
    secret: str | Iterable[str],
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: float,
    tolerance: float = 300.0,
) -> bool:
    """Check ``X-Roost-Signature`` and refuse deliveries older than ``tolerance``.

    Args:
        secret: One secret or several.
        body: The raw request body.
        timestamp: The ``X-Roost-Timestamp`` header.
        signature: The ``X-Roost-Signature`` header (``v1=<hex>[,v1=<hex>...]``).
        now: The receiver's current Unix time (``time.time()``).
        tolerance: Largest accepted distance between ``now`` and the timestamp,
            in seconds (both directions, to allow for clock skew).

    Example:
        >>> header = "v1=" + sign_timestamped("whsec_k", b"{}", 1767225600)
        >>> verify_timestamped("whsec_k", b"{}", "1767225600", header, now=1767225660)
        True
        >>> verify_timestamped("whsec_k", b"{}", "1767225600", header, now=1767229200)
        False
    """
    if not isinstance(timestamp, str) or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if len(timestamp) > 12 or abs(now - int(timestamp)) > tolerance:
        return False
    if not isinstance(signature, str) or len(signature) > _MAX_SIGNATURE_HEADER:
        return False
    offered = [
        value
        for part in signature.split(",")
        if part.strip().startswith("v1=")
        and (value := _clean_hex(part.strip()[len("v1=") :])) is not None
    ]
    matched = False
    for key in _as_list(secret):
        expected = sign_timestamped(key, body, int(timestamp))
        for candidate in offered:
            matched |= hmac.compare_digest(expected, candidate)
    return matched


def delivery_headers(
    *,
    event_type: str,
    body: bytes,
    bluejay_secret: str,
    roost_secrets: Sequence[str],
    delivery_id: str,
    event_id: str,
    attempt: int,
    timestamp: int,
) -> dict[str, str]:
    """Every header of one delivery attempt.

    Args:
        event_type: The body's ``type``.
        body: The exact bytes that will be sent.
        bluejay_secret: The secret for ``X-Bluejay-Signature`` (the previous
            one during a rotation's grace period, else the current one).
        roost_secrets: Every valid secret, current first.
        delivery_id: A fresh UUID for this attempt.
        event_id: The event's UUID (stable across attempts).
        attempt: 1-based attempt number.
        timestamp: Unix seconds of this attempt.

    Example:
        >>> headers = delivery_headers(event_type="simulation_ended", body=b"{}",
        ...     bluejay_secret="whsec_a", roost_secrets=["whsec_a"], delivery_id="d",
        ...     event_id="e", attempt=1, timestamp=1767225600)
        >>> headers["X-Bluejay-Signature"] == sign("whsec_a", b"{}")
        True
    """
    roost_signature = ",".join(
        f"v1={sign_timestamped(key, body, timestamp)}" for key in roost_secrets
    )
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(bluejay_secret, body),
        EVENT_HEADER: event_type,
        DELIVERY_HEADER: delivery_id,
        EVENT_ID_HEADER: event_id,
        ATTEMPT_HEADER: str(attempt),
        TIMESTAMP_HEADER: str(timestamp),
        ROOST_SIGNATURE_HEADER: roost_signature,
    }
