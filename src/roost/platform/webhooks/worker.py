"""The delivery worker: leases due deliveries and POSTs them, off the request path.

One asyncio task per server process. It wakes when a transaction that queued a
delivery commits (in this process), and otherwise every ``interval`` seconds
(deliveries queued by another process, retries coming due). It keeps up to
``concurrency`` attempts in flight, each its own task, so a slow receiver
never holds up the others, and everything it does is awaited I/O (httpx and
the async database), so it never blocks the event loop.

Each attempt: lease the row (so no other process sends it), build the body
bytes and headers (:mod:`.signing`), POST with a total time limit, read at
most 1 KiB of the answer, and store the outcome with the retry decision of
:mod:`.schedule`. If the process dies mid-attempt the lease runs out and
another worker retries: delivery is at least once, and ``X-Roost-Event-Id``
lets a receiver drop duplicates. Redirects are not followed.

Example:
    >>> import asyncio
    >>> async def serve_webhooks(db):
    ...     worker = start_worker(db)      # what the app's lifespan does
    ...     try:
    ...         await asyncio.sleep(3600)
    ...     finally:
    ...         await worker.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from roost.platform.storage import Database, dumps_json, utcnow
from roost.platform.webhooks.schedule import RetryPolicy, decide
from roost.platform.webhooks.service import Claimed, claim_due, record_attempt, register_wake
from roost.platform.webhooks.signing import delivery_headers
from roost.platform.webhooks.tables import WebhookEndpoint

__all__ = ["AttemptOutcome", "WebhookWorker", "send_test", "start_worker"]

log = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 1024


@dataclass(frozen=True, slots=True)
class AttemptOutcome:
    """What one POST produced.

    Attributes:
        status_code: The receiver's status, or ``None`` without a response.
        retry_after: Its ``Retry-After`` header, if any.
        error: Why there was no response (timeout, refused...).
        response: The first bytes of the answer, decoded leniently.
        duration_ms: Wall time of the attempt.
    """

    status_code: int | None
    retry_after: str | None
    error: str | None
    response: str | None
    duration_ms: float


async def post_once(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    headers: dict[str, str],
    time_limit: float,
) -> AttemptOutcome:
    """POST ``body`` once; never raises for network or protocol failures."""
    started = time.perf_counter()
    status_code: int | None = None
    retry_after: str | None = None
    error: str | None = None
    answer = bytearray()
    try:
        async with (
            asyncio.timeout(time_limit),
            client.stream("POST", url, content=body, headers=headers) as response,
        ):
            status_code = response.status_code
            retry_after = response.headers.get("retry-after")
            async for chunk in response.aiter_raw():
                answer += chunk
                if len(answer) >= MAX_RESPONSE_BYTES:
                    break
    except TimeoutError:
        error = f"no answer within {time_limit:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except (OSError, ValueError) as exc:  # unusual socket or URL failures
        error = f"{type(exc).__name__}: {exc}"
    duration_ms = (time.perf_counter() - started) * 1000
    text = bytes(answer[:MAX_RESPONSE_BYTES]).decode("utf-8", "replace") if answer else None
    if error is not None:
        status_code = None
    return AttemptOutcome(status_code, retry_after, error, text, duration_ms)


class WebhookWorker:
    """Background delivery of queued webhooks.

    Args:
        db: The platform database.
        policy: Retry schedule and per-attempt timeout.
        transport: httpx transport (tests may pass one; default: the network).
        interval: Seconds between polls when nothing wakes the worker.
        concurrency: Attempts in flight at once.
        lease: How long a claimed delivery is reserved for this worker; must
            exceed the attempt timeout.
        clock: Current time (tests drive it).
        rand: Uniform random numbers in [0, 1) for the jitter.
    """

    def __init__(
        self,
        db: Database,
        *,
        policy: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        interval: float = 1.0,
        concurrency: int = 16,
        lease: timedelta | None = None,
        clock: Callable[[], datetime] = utcnow,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.policy = policy or RetryPolicy()
        self._db = db
        self._interval = interval
        self._concurrency = max(1, concurrency)
        self._lease = lease or timedelta(seconds=max(60.0, 3 * self.policy.timeout))
        if self._lease.total_seconds() <= self.policy.timeout:
            raise ValueError("the lease must be longer than the attempt timeout")
        self._clock = clock
        self._rand = rand
        self._client = httpx.AsyncClient(transport=transport, follow_redirects=False)
        self.owner = f"worker-{uuid.uuid4().hex[:16]}"
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self.attempts = 0
        """Attempts made by this worker (for tests and metrics)."""

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task (idempotent; needs a running loop)."""
        if self._task is None:
            self._loop = asyncio.get_running_loop()
            self._stopping = False
            register_wake(self)
            self._task = asyncio.create_task(self._run(), name="roost-webhooks")

    async def stop(self) -> None:
        """Stop polling, cancel attempts in flight (their leases lapse and they
        are retried later) and close the HTTP client."""
        # The flag ends the loop even if a library on its path swallows the
        # cancellation (Python 3.11's ``asyncio.wait_for`` does when its inner
        # wait finishes at the moment it is cancelled), which would otherwise
        # leave ``await task`` waiting forever.
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                # The loop's own cancellation ends here; a cancellation of the
                # caller of ``stop()`` must go on.
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        for attempt in list(self._inflight):
            attempt.cancel()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        await self._client.aclose()

    def notify(self) -> None:
        """Look for due deliveries now (safe to call from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    # --- work ------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim what is due now, deliver it, and return how many were attempted."""
        claimed = await claim_due(
            self._db,
            owner=self.owner,
            now=self._clock(),
            lease=self._lease,
            limit=self._concurrency,
        )
        await asyncio.gather(*(self._deliver(item) for item in claimed))
        return len(claimed)

    async def _run(self) -> None:
        while not self._stopped():
            free = self._concurrency - len(self._inflight)
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await claim_due(
                        self._db, owner=self.owner, now=self._clock(), lease=self._lease, limit=free
                    )
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("claiming webhook deliveries failed; retrying shortly")
            for item in claimed:
                task = asyncio.create_task(self._deliver(item), name=f"roost-webhook-{item.id}")
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            if self._stopped():
                return
            if claimed and len(claimed) == free:
                # Full: wait for a slot (a finished attempt sets the event).
                self._wake.clear()
                await self._wake.wait()
                continue
            # ``asyncio.timeout`` rather than ``wait_for``: it never turns a
            # cancellation into a normal return.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()

    def _stopped(self) -> bool:
        # A call, not the attribute: mypy would narrow the attribute across awaits.
        return self._stopping

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _deliver(self, item: Claimed) -> None:
        attempt = item.attempts + 1
        body = item.body.encode()
        headers = delivery_headers(
            event_type=item.event_type,
            body=body,
            bluejay_secret=item.bluejay_secret,
            roost_secrets=item.roost_secrets,
            delivery_id=str(uuid.uuid4()),
            event_id=item.event_id,
            attempt=attempt,
            timestamp=int(self._clock().timestamp()),
        )
        outcome = await post_once(self._client, item.url, body, headers, self.policy.timeout)
        self.attempts += 1
        now = self._clock()
        decision = decide(
            self.policy,
            attempt=attempt,
            status_code=outcome.status_code,
            retry_after=outcome.retry_after,
            error=outcome.error,
            now=now,
            expires_at=item.expires_at,
            rand=self._rand(),
        )
        try:
            stored = await record_attempt(
                self._db,
                item,
                owner=self.owner,
                decision=decision,
                now=now,
                status_code=outcome.status_code,
                response=outcome.response,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            # The lease will lapse and the attempt be repeated: at least once.
            log.exception("could not record webhook delivery %s", item.id)
            return
        if not stored:
            log.warning("webhook delivery %s: lease lost before its outcome was stored", item.id)
        elif decision.state == "failed":
            log.warning("webhook delivery %s to %s failed: %s", item.id, item.url, decision.reason)


def start_worker(db: Database, **options: Any) -> WebhookWorker:
    """Create and start a :class:`WebhookWorker` (the app calls this in its lifespan)."""
    worker = WebhookWorker(db, **options)
    worker.start()
    return worker


async def send_test(
    endpoint: WebhookEndpoint,
    *,
    now: datetime | None = None,
    time_limit: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
) -> dict[str, Any]:
    """Send one signed ``ping`` event to ``endpoint`` now, outside the queue.

    Returns:
        ``{event_id, delivered, status_code, error, duration_ms, response}``.
    """
    now = now or utcnow()
    event_id = str(uuid.uuid4())
    body = dumps_json(
        {
            "type": "ping",
            "webhook_id": endpoint.id,
            "created_at": now.isoformat(),
            "message": "Test delivery from Roost: your endpoint is reachable.",
        }
    ).encode()
    bluejay_secret, roost_secrets = endpoint.secrets_at(now)
    headers = delivery_headers(
        event_type="ping",
        body=body,
        bluejay_secret=bluejay_secret,
        roost_secrets=roost_secrets,
        delivery_id=str(uuid.uuid4()),
        event_id=event_id,
        attempt=1,
        timestamp=int(now.timestamp()),
    )
    async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
        outcome = await post_once(client, endpoint.url, body, headers, time_limit)
    status = outcome.status_code
    return {
        "event_id": event_id,
        "delivered": status is not None and 200 <= status < 300,
        "status_code": status,
        "error": outcome.error,
        "duration_ms": round(outcome.duration_ms, 3),
        "response": outcome.response,
    }
