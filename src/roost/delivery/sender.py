"""The background sender: drains the outbox to ``/v1/update-simulation-result``.

Why a daemon thread with its own ``httpx.Client`` rather than an asyncio task:
the SDK is used from sync agents, from asyncio agents, and from processes that run
several event loops or none; a thread works under all of them, its blocking I/O
can never stall the agent's loop, and an event loop that is closed or busy cannot
stall delivery. The thread is a daemon, so it never holds up interpreter exit;
``Delivery.close`` and the ``atexit`` hook give it a bounded time to finish, and
whatever it leaves is still in the outbox for the next start.

The loop is :meth:`Sender.step` (claim a due entry, post it, record the policy's
decision, repeat; then report when the next entry becomes due) plus a wait on an
event that ``submit`` sets, bounded by that deadline and by ``poll_interval``
(entries added by other processes). Tests call :meth:`Sender.step` directly with
an injected clock and an ``httpx.MockTransport``.

Example:
    >>> import tempfile, pathlib, httpx
    >>> from roost.delivery import DeliveryConfig, Outbox, Sender
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite3"
    >>> config = DeliveryConfig(api_key="k", base_url="http://platform.test", outbox_path=path)
    >>> outbox = Outbox(path)
    >>> _ = outbox.add(body=b'{"simulation_result_id":"1"}', simulation_result_id="1",
    ...                base_url=config.base_url, key_fingerprint=None, now=0.0)
    >>> sender = Sender(outbox, config, clock=lambda: 10.0,
    ...                 transport=httpx.MockTransport(lambda request: httpx.Response(200)))
    >>> sender.step() is None, sender.stats.delivered
    (True, 1)
    >>> sender.stop(); outbox.close()
    True
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from roost import __version__
from roost.delivery.config import DeliveryConfig
from roost.delivery.outbox import Claim, Outbox
from roost.delivery.policy import (
    Decision,
    Delivered,
    ErrorKind,
    Fail,
    HttpResponse,
    Outcome,
    RetryAt,
    RetryPolicy,
    TransportFailure,
)

__all__ = ["USER_AGENT", "Sender", "SenderStats"]

logger = logging.getLogger("roost.delivery")

USER_AGENT = f"roost-sdk/{__version__}"

# Enough of an error body for the server's message; a misbehaving proxy that
# answers with megabytes must not fill the sender's memory.
_BODY_EXCERPT = 8_192
_PURGE_EVERY = 3_600.0
_MIN_WAIT = 0.005


@dataclass(slots=True)
class SenderStats:
    """Counters since the sender was created.

    Attributes:
        attempts: HTTP attempts made.
        delivered: Entries the platform accepted.
        retried: Attempts that ended in a scheduled retry.
        failed: Entries marked failed (kept in the outbox).
        lost_leases: Outcomes not recorded because another process took the entry over.
        loop_errors: Unexpected errors in the sender loop (logged; the loop goes on).
    """

    attempts: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    lost_leases: int = 0
    loop_errors: int = 0


class _Throttle:
    """Lets a message through at most once per ``interval`` per key."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._last: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            return False
        self._last[key] = now
        return True


def _failure(exc: Exception) -> TransportFailure:
    if isinstance(exc, httpx.TimeoutException):
        kind = ErrorKind.TIMEOUT
    elif isinstance(exc, httpx.ConnectError):
        kind = ErrorKind.CONNECT
    else:
        kind = ErrorKind.NETWORK
    detail = str(exc) or exc.__class__.__name__
    return TransportFailure(kind, f"{exc.__class__.__name__}: {detail}")


class Sender:
    """Posts due outbox entries and applies the retry policy to each outcome.

    Args:
        outbox: The outbox to drain.
        config: Target, key, timeouts and backoff settings.
        transport: httpx transport to use instead of the network (tests).
        clock: Wall-clock time source (seconds since the epoch).
        rand: Uniform ``[0, 1)`` source for backoff jitter.
    """

    def __init__(
        self,
        outbox: Outbox,
        config: DeliveryConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._config = config
        self._transport = transport
        self._clock = clock
        self._rand = rand
        self._fingerprint = config.key_fingerprint
        self.policy = RetryPolicy(
            base=config.backoff_base,
            cap=config.backoff_cap,
            max_age=config.max_age,
            max_retry_after=config.max_retry_after,
        )
        self.stats = SenderStats()
        self._client: httpx.Client | None = None
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._progress = threading.Condition()
        self._generation = 0
        self._last_purge: float | None = None
        self._throttle = _Throttle()

    # -- one pass ------------------------------------------------------------

    def step(self) -> float | None:
        """Send every due entry this sender may send; return the next due time.

        Returns ``None`` when nothing is pending for this target (or there is no
        API key to send with).
        """
        self._maybe_purge()
        if self._config.api_key is None:
            return None
        while not self._stopping.is_set():
            claims = self._outbox.claim(
                now=self._clock(),
                base_url=self._config.base_url,
                key_fingerprint=self._fingerprint,
                lease=self._config.lease,
                limit=1,
            )
            if not claims:
                break
            self.deliver(claims[0])
        return self._outbox.next_due(
            base_url=self._config.base_url, key_fingerprint=self._fingerprint
        )

    def deliver(self, claim: Claim) -> Decision:
        """Post one claimed entry, decide, and record the decision in the outbox."""
        outcome = self._post(claim)
        now = self._clock()
        entry = claim.entry
        decision = self.policy.decide(
            attempt=entry.attempts,
            outcome=outcome,
            now=now,
            created_at=entry.retry_since,
            rand=self._rand(),
        )
        status = outcome.status if isinstance(outcome, HttpResponse) else None
        if isinstance(decision, Delivered):
            recorded = self._outbox.record_delivered(
                claim,
                now=now,
                status=decision.status,
                message=decision.message,
                keep=self._config.retention > 0,
            )
            self.stats.delivered += 1
            logger.debug(
                "roost delivery: result %s delivered (entry %s, attempt %d)",
                entry.simulation_result_id,
                entry.id,
                entry.attempts,
            )
        elif isinstance(decision, RetryAt):
            recorded = self._outbox.record_retry(
                claim, deadline=decision.deadline, error=decision.reason, status=status
            )
            self.stats.retried += 1
            if self._throttle.allow("retry"):
                logger.warning(
                    "roost delivery: result %s not delivered yet (attempt %d: %s); retrying "
                    "in %.1f s, payload kept in %s",
                    entry.simulation_result_id,
                    entry.attempts,
                    decision.reason,
                    max(0.0, decision.deadline - now),
                    self._outbox.path,
                )
        else:
            assert isinstance(decision, Fail)
            recorded = self._outbox.record_failed(claim, error=decision.reason, status=status)
            self.stats.failed += 1
            logger.error(
                "roost delivery: result %s was not accepted: %s. The payload is kept in %s "
                "(entry %s); fix the cause, then run `roost outbox flush --retry-failed`",
                entry.simulation_result_id,
                decision.reason,
                self._outbox.path,
                entry.id,
            )
        if not recorded:
            self.stats.lost_leases += 1
        with self._progress:
            self._generation += 1
            self._progress.notify_all()
        return decision

    def _post(self, claim: Claim) -> Outcome:
        if self._client is None:
            self._client = httpx.Client(
                transport=self._transport,
                timeout=httpx.Timeout(self._config.timeout),
                follow_redirects=False,
            )
        api_key = self._config.api_key
        assert api_key is not None
        headers = {
            "X-API-Key": api_key,
            "Idempotency-Key": claim.entry.idempotency_key,
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self.stats.attempts += 1
        try:
            with self._client.stream(
                "POST", self._config.endpoint, content=claim.body, headers=headers
            ) as response:
                excerpt = bytearray()
                try:
                    for chunk in response.iter_bytes():
                        excerpt += chunk
                        if len(excerpt) >= _BODY_EXCERPT:
                            break
                except httpx.TransportError:
                    # The status line arrived; a body cut short does not change
                    # what the server decided.
                    pass
                return HttpResponse(
                    response.status_code,
                    {name.lower(): value for name, value in response.headers.items()},
                    bytes(excerpt[:_BODY_EXCERPT]),
                )
        except httpx.TransportError as exc:
            return _failure(exc)
        except Exception as exc:
            # A custom transport or a TLS library bug: still an attempt that did
            # not deliver, so retry with backoff rather than kill the thread.
            logger.exception("roost delivery: unexpected error while posting")
            return TransportFailure(ErrorKind.NETWORK, f"{exc.__class__.__name__}: {exc}")

    def _maybe_purge(self) -> None:
        retention = self._config.retention
        now = self._clock()
        if retention <= 0 or (
            self._last_purge is not None and now - self._last_purge < _PURGE_EVERY
        ):
            return
        self._last_purge = now
        self._outbox.purge(before=now - retention)

    # -- thread --------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the background thread (idempotent)."""
        if self.running or self._stopping.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="roost-delivery", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Make the thread look for due entries now."""
        self._wake.set()

    def wait_progress(self, timeout: float) -> None:
        """Block until an outcome is recorded or ``timeout`` seconds pass."""
        with self._progress:
            generation = self._generation
            self._progress.wait_for(lambda: self._generation != generation, timeout=timeout)

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the thread to finish its current attempt and exit.

        Returns:
            True if the thread has exited (or never ran) within ``timeout``.
        """
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                return False
        self._close_client()
        return True

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    deadline = self.step()
                except Exception:
                    self.stats.loop_errors += 1
                    if self._throttle.allow("loop"):
                        logger.exception(
                            "roost delivery: error in the sender loop (payloads stay in %s; "
                            "retrying)",
                            self._outbox.path,
                        )
                    deadline = None
                delay = self._config.poll_interval
                if deadline is not None:
                    delay = min(delay, max(_MIN_WAIT, deadline - self._clock()))
                self._wake.wait(delay)
        finally:
            self._close_client()
