"""Configuration of enrichment delivery: where to send, with which key, how hard to try.

Every setting has a default that suits an agent in production; the three that
differ between deployments also come from the environment:

``ROOST_API_KEY``
    The platform API key (``BLUEJAY_API_KEY`` is read when it is unset, so an
    agent already configured for Bluejay needs no change).
``ROOST_BASE_URL``
    The platform, ``https://api.getbluejay.ai`` by default; point it at a
    self-hosted ``roost serve``.
``ROOST_OUTBOX_PATH``
    The SQLite outbox file, by default ``outbox.sqlite3`` in the user data
    directory (``platformdirs.user_data_dir("roost")``).

A malformed value (a URL without a host, a negative timeout, an API key with a
line break in it) raises :class:`DeliveryConfigError` at construction, naming the
setting, so a typo fails when the agent starts and not after its first call.

A missing API key is not an error: payloads are still stored and stay pending
until a process with a key (the restarted agent, or ``roost outbox flush``) sends
them.

Example:
    >>> from roost.delivery import DeliveryConfig
    >>> config = DeliveryConfig(api_key="rk_test", base_url="http://127.0.0.1:8000/")
    >>> config.endpoint
    'http://127.0.0.1:8000/v1/update-simulation-result'
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import platformdirs

__all__ = [
    "DEFAULT_BASE_URL",
    "ENDPOINT_PATH",
    "DeliveryConfig",
    "DeliveryConfigError",
    "default_outbox_path",
]

logger = logging.getLogger("roost.delivery")

DEFAULT_BASE_URL = "https://api.getbluejay.ai"
ENDPOINT_PATH = "/v1/update-simulation-result"

_DAY = 86_400.0
# DNS labels (httpx already turned internationalised names into xn-- form);
# underscores are tolerated because container service names use them.
_HOST = re.compile(
    r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?"
)


class DeliveryConfigError(ValueError):
    """A delivery setting is malformed; the message names the setting and the fix."""


def default_outbox_path() -> Path:
    """The outbox file used when neither an argument nor ``ROOST_OUTBOX_PATH`` names one.

    Example:
        >>> default_outbox_path().name
        'outbox.sqlite3'
    """
    return Path(platformdirs.user_data_dir("roost", appauthor=False)) / "outbox.sqlite3"


def _positive(name: str, value: float, *, allow_zero: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DeliveryConfigError(f"{name} must be a number of seconds, got {value!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise DeliveryConfigError(f"{name} must be a finite number of seconds, got {value!r}")
    if number < 0 or (number == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise DeliveryConfigError(f"{name} must be {bound} seconds, got {value!r}")
    return number


def _normalise_base_url(value: str) -> str:
    text = str(value).strip()
    try:
        url = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as exc:
        raise DeliveryConfigError(f"base_url {value!r} is not a valid URL: {exc}") from None
    if url.scheme not in ("http", "https"):
        raise DeliveryConfigError(
            f"base_url {value!r} must start with https:// (or http:// for a local server)"
        )
    if not url.host:
        raise DeliveryConfigError(f"base_url {value!r} has no host name")
    if not _HOST.fullmatch(url.host) and not _is_ip(url.host):
        raise DeliveryConfigError(f"base_url {value!r} is not a valid URL: bad host name")
    # Credentials in the URL would be copied into every outbox row in clear text.
    if url.userinfo:
        raise DeliveryConfigError(
            f"base_url must not contain credentials; pass the API key as api_key "
            f"(or ROOST_API_KEY) instead of {url.copy_with(username=None, password=None)}"
        )
    if url.query or url.fragment:
        raise DeliveryConfigError(
            f"base_url {value!r} must not have a query string or fragment; "
            f"give the platform root, e.g. {DEFAULT_BASE_URL}"
        )
    path = url.path.rstrip("/")
    if path.endswith(ENDPOINT_PATH):
        raise DeliveryConfigError(
            f"base_url {value!r} should be the platform root without {ENDPOINT_PATH}"
        )
    return str(url.copy_with(path=path or "/")).rstrip("/")


def _check_api_key(value: str | None) -> str | None:
    if value is None:
        return None
    key = str(value).strip()
    if not key:
        return None
    # A header value with a line break or control character would be rejected by
    # httpx on every attempt (or worse, split the header); refuse it up front.
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in key):
        raise DeliveryConfigError(
            "api_key contains whitespace or control characters; check ROOST_API_KEY for a "
            "stray newline or quote"
        )
    if not key.isascii():
        raise DeliveryConfigError("api_key must be ASCII; check ROOST_API_KEY")
    return key


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryConfig:
    """Settings of one :class:`~roost.delivery.Delivery`.

    All durations are in seconds.

    Attributes:
        api_key: Sent as ``X-API-Key``. ``None`` stores payloads without sending them.
        base_url: Platform root; payloads go to ``{base_url}/v1/update-simulation-result``.
        outbox_path: The SQLite outbox file (created with mode 0600 when missing).
        timeout: httpx timeout of one attempt (connect, write and each read).
        backoff_base: Upper bound of the first retry delay; it doubles per attempt
            (full jitter: the actual delay is uniform between 0 and the bound).
        backoff_cap: Largest bound the doubling reaches.
        max_retry_after: Longest ``Retry-After`` the sender obeys; longer values are cut
            to this.
        max_age: How long after submission transient failures are retried. After
            that the entry is marked failed and kept; nothing is ever deleted
            undelivered.
        retention: How long delivered entries stay in the outbox for
            ``roost outbox list``; ``0`` deletes them as soon as they are delivered.
        poll_interval: How often the sender looks for entries added by other
            processes sharing the outbox (its own submissions wake it at once).
        lease: How long a claimed entry is reserved for the process sending it;
            another process may re-send it after the lease runs out (same
            Idempotency-Key, so the platform stores it once).
        shutdown_timeout: Default bound of :meth:`Delivery.close` and of the
            ``atexit`` flush.
        busy_timeout: How long a write waits for another process holding the outbox
            lock before failing.

    Example:
        >>> config = DeliveryConfig(api_key="rk_live_1", outbox_path="/tmp/roost-outbox.sqlite3")
        >>> config.endpoint
        'https://api.getbluejay.ai/v1/update-simulation-result'
        >>> DeliveryConfig(timeout=0)
        Traceback (most recent call last):
        ...
        roost.delivery.config.DeliveryConfigError: timeout must be > 0 seconds, got 0
    """

    api_key: str | None = field(default=None, repr=False)
    base_url: str = DEFAULT_BASE_URL
    outbox_path: Path = field(default_factory=default_outbox_path)
    timeout: float = 10.0
    backoff_base: float = 1.0
    backoff_cap: float = 300.0
    max_retry_after: float = 3_600.0
    max_age: float = 7 * _DAY
    retention: float = 7 * _DAY
    poll_interval: float = 5.0
    lease: float = 120.0
    shutdown_timeout: float = 5.0
    busy_timeout: float = 30.0

    def __post_init__(self) -> None:
        # Frozen dataclass: normalise in place through object.__setattr__.
        set_ = object.__setattr__
        set_(self, "api_key", _check_api_key(self.api_key))
        set_(self, "base_url", _normalise_base_url(self.base_url))
        try:
            path = Path(os.fspath(self.outbox_path)).expanduser()
        except TypeError:
            raise DeliveryConfigError(
                f"outbox_path must be a path, got {self.outbox_path!r}"
            ) from None
        if str(path) in ("", ".") or path.is_dir():
            raise DeliveryConfigError(
                f"outbox_path {str(path)!r} must name a file, not a directory"
            )
        set_(self, "outbox_path", path)
        for name in ("timeout", "backoff_base", "backoff_cap", "poll_interval", "lease"):
            set_(self, name, _positive(name, getattr(self, name)))
        for name in ("max_retry_after", "max_age", "retention", "shutdown_timeout", "busy_timeout"):
            set_(self, name, _positive(name, getattr(self, name), allow_zero=True))
        if self.backoff_cap < self.backoff_base:
            raise DeliveryConfigError(
                f"backoff_cap ({self.backoff_cap}) must be >= backoff_base ({self.backoff_base})"
            )
        if self.lease <= self.timeout:
            raise DeliveryConfigError(
                f"lease ({self.lease}) must be longer than timeout ({self.timeout}), or a "
                "slow attempt would be re-sent by another process while still in flight"
            )
        url = httpx.URL(self.base_url)
        if url.scheme == "http" and not _is_loopback(url.host) and self.api_key:
            logger.warning(
                "roost delivery: base_url %s is plain http; the API key travels unencrypted",
                self.base_url,
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> DeliveryConfig:
        """Build a config from environment variables, with explicit arguments winning.

        Args:
            env: Variables to read instead of ``os.environ`` (for tests and tools).
            **overrides: Any field of :class:`DeliveryConfig`; a value given here is
                used even when the variable is set.

        Raises:
            DeliveryConfigError: A variable or argument is malformed.

        Example:
            >>> config = DeliveryConfig.from_env(
            ...     {"BLUEJAY_API_KEY": "bj_1", "ROOST_BASE_URL": "http://127.0.0.1:9"}
            ... )
            >>> (config.api_key, config.base_url)
            ('bj_1', 'http://127.0.0.1:9')
        """
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        key = source.get("ROOST_API_KEY") or source.get("BLUEJAY_API_KEY")
        if key:
            values["api_key"] = key
        if source.get("ROOST_BASE_URL"):
            values["base_url"] = source["ROOST_BASE_URL"]
        if source.get("ROOST_OUTBOX_PATH"):
            values["outbox_path"] = Path(source["ROOST_OUTBOX_PATH"])
        unknown = set(overrides) - set(cls.__dataclass_fields__)
        if unknown:
            raise DeliveryConfigError(f"unknown delivery setting(s): {', '.join(sorted(unknown))}")
        values.update({name: value for name, value in overrides.items() if value is not None})
        return cls(**values)

    def with_changes(self, **changes: Any) -> DeliveryConfig:
        """A copy with some fields replaced (validated again).

        Example:
            >>> DeliveryConfig(api_key="k").with_changes(timeout=2.5).timeout
            2.5
        """
        return replace(self, **changes)

    @property
    def endpoint(self) -> str:
        """The full URL payloads are posted to."""
        return self.base_url + ENDPOINT_PATH

    @property
    def key_fingerprint(self) -> str | None:
        """A short SHA-256 fingerprint of the API key, stored with each entry.

        The key itself is never written to the outbox. The fingerprint lets a
        process send only entries submitted under its own key (or under none), so
        two agents of different organisations sharing a host cannot post each
        other's payloads with the wrong key.
        """
        if self.api_key is None:
            return None
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:16]

    @property
    def api_key_hint(self) -> str:
        """The API key masked for display (``"…1a2b"``), or ``"(not set)"``."""
        if self.api_key is None:
            return "(not set)"
        return "…" + self.api_key[-4:] if len(self.api_key) > 8 else "…"
