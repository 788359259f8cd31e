"""``Delivery``: the one object the recorder talks to at call end.

``submit`` writes the payload to the outbox and returns once it is committed;
the background sender does the network part. ``flush`` and ``close`` wait a
bounded time for the sender; anything left stays in the outbox file and goes out
at the next start, from whichever process shares the file.

Compared with the SDKs Roost is measured against (OTel, sentry, langfuse,
LangSmith all keep payloads in memory and drop them on overflow, on a failed
export or at exit), nothing here is ever dropped: a payload leaves the outbox
only once the platform has answered 2xx, or when a user purges it.

Example:
    >>> import tempfile, pathlib
    >>> from roost.delivery import Delivery, DeliveryConfig
    >>> from roost.schema import UpdateSimulationRequest
    >>> config = DeliveryConfig(
    ...     api_key=None,  # no key: stored, kept pending, nothing sent
    ...     outbox_path=pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite3",
    ... )
    >>> with Delivery(config) as delivery:
    ...     entry_id = delivery.submit(UpdateSimulationRequest(simulation_result_id="720488"))
    ...     delivery.pending()
    1
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable
from types import TracebackType

import httpx
import msgspec

from roost.delivery.config import DeliveryConfig
from roost.delivery.outbox import EntryState, Outbox
from roost.delivery.sender import Sender, SenderStats
from roost.schema import UpdateSimulationRequest, decode_request, encode_request

__all__ = ["Delivery", "DeliveryError", "default_delivery"]

logger = logging.getLogger("roost.delivery")

_FLUSH_POLL = 0.1


class DeliveryError(Exception):
    """A payload could not be stored (it cannot be serialised, or the delivery is closed)."""


class Delivery:
    """Durable, retrying delivery of call enrichment to the platform.

    Args:
        config: Settings; ``None`` reads them from the environment
            (:meth:`DeliveryConfig.from_env`).
        transport: httpx transport for the sender (tests use ``httpx.MockTransport``).
        start: Start the background sender now. With ``False`` it starts on the
            first :meth:`flush`.
        register_atexit: Flush (bounded by ``config.shutdown_timeout``) when the
            interpreter exits.
        clock: Wall-clock source used for scheduling (tests).
        rand: Jitter source (tests).

    Raises:
        DeliveryConfigError: The configuration from the environment is malformed.
        OutboxCorruptError: The outbox file is not a readable Roost outbox.
        OutboxError: The outbox file cannot be created or opened.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "o.sqlite3"
        >>> delivery = Delivery(DeliveryConfig(outbox_path=path), start=False)
        >>> delivery.close()
        0
    """

    def __init__(
        self,
        config: DeliveryConfig | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        start: bool = True,
        register_atexit: bool = True,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._config = config if config is not None else DeliveryConfig.from_env()
        self._transport = transport
        self._clock = clock
        self._rand = rand
        self._outbox = Outbox(self._config.outbox_path, busy_timeout=self._config.busy_timeout)
        self._sender = self._new_sender()
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._warned_no_key = False
        self._atexit_registered = register_atexit
        self._started = start
        _INSTANCES.add(self)
        if start:
            self._sender.start()
        if register_atexit:
            atexit.register(self._at_exit)

    def _new_sender(self) -> Sender:
        return Sender(
            self._outbox,
            self._config,
            transport=self._transport,
            clock=self._clock,
            rand=self._rand,
        )

    # -- properties ----------------------------------------------------------

    @property
    def config(self) -> DeliveryConfig:
        """The settings in use."""
        return self._config

    @property
    def outbox(self) -> Outbox:
        """The outbox this delivery writes to."""
        return self._outbox

    @property
    def sender(self) -> Sender:
        """The background sender (for its :attr:`~Sender.stats` and tests)."""
        return self._sender

    @property
    def stats(self) -> SenderStats:
        """Counters of this process's sender."""
        return self._sender.stats

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has run."""
        return self._closed

    # -- API -------------------------------------------------------------------

    def submit(self, request: UpdateSimulationRequest) -> str:
        """Store a payload durably and hand it to the sender.

        Blocks for one committed, fsynced SQLite insert (call it from a thread in
        async code: ``await asyncio.to_thread(delivery.submit, request)``). A payload
        that fails the schema's validation is still stored, as ``failed`` with the
        reason, so it is never lost and never sent as-is.

        Args:
            request: The enrichment of one finished call.

        Returns:
            The outbox id of the entry (``roost outbox show ID``).

        Raises:
            TypeError: ``request`` is not an :class:`UpdateSimulationRequest`.
            DeliveryError: The payload cannot be serialised to JSON, or the delivery
                is closed.
            OutboxError: The outbox file could not be written.

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "o.sqlite3"
            >>> with Delivery(DeliveryConfig(outbox_path=path), start=False) as d:
            ...     len(d.submit(UpdateSimulationRequest(simulation_result_id="1")))
            32
        """
        if not isinstance(request, UpdateSimulationRequest):
            raise TypeError(
                f"submit() takes a roost.UpdateSimulationRequest, got {type(request).__name__}"
            )
        self._ensure_usable()
        result_id = request.simulation_result_id
        try:
            body = encode_request(request)
        except (TypeError, ValueError, msgspec.EncodeError) as exc:
            raise DeliveryError(
                f"cannot serialise the enrichment of result {result_id!r} to JSON: {exc}"
            ) from exc
        state, error = EntryState.PENDING, None
        try:
            decode_request(body)
        except msgspec.ValidationError as exc:
            state, error = EntryState.FAILED, f"invalid payload, not sent: {exc}"
        entry = self._outbox.add(
            body=body,
            simulation_result_id=str(result_id),
            base_url=self._config.base_url,
            key_fingerprint=self._config.key_fingerprint,
            now=self._clock(),
            state=state,
            error=error,
        )
        if state is EntryState.FAILED:
            logger.error(
                "roost delivery: the enrichment of result %r is invalid (%s); it was stored as "
                "failed entry %s in %s and will not be sent",
                result_id,
                error,
                entry.id,
                self._outbox.path,
            )
        elif self._config.api_key is None:
            if not self._warned_no_key:
                self._warned_no_key = True
                logger.warning(
                    "roost delivery: no API key (set ROOST_API_KEY or BLUEJAY_API_KEY). The "
                    "enrichment of result %r is stored in %s and stays pending until a process "
                    "with a key sends it (restart the agent with the key, or run "
                    "`roost outbox flush`)",
                    result_id,
                    self._outbox.path,
                )
        else:
            self._sender.wake()
        return entry.id

    def pending(self) -> int:
        """Pending entries this delivery can send (its base URL, its key or none)."""
        self._ensure_process()
        return self._outbox.pending_for(
            base_url=self._config.base_url, key_fingerprint=self._config.key_fingerprint
        )

    def flush(self, timeout: float = 10.0, *, force: bool = False) -> int:
        """Wait up to ``timeout`` seconds for pending entries to be delivered.

        Returns early when nothing is pending, when there is no API key, or when the
        next entry is not due before the timeout (backoff and ``Retry-After`` are
        honoured) and nothing is in flight.

        Args:
            timeout: Upper bound of the wait, in seconds.
            force: Make every pending entry due now, ignoring its backoff.

        Returns:
            How many entries for this target are still pending.

        Example:
            >>> import tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "o.sqlite3"
            >>> with Delivery(DeliveryConfig(outbox_path=path)) as d:
            ...     d.flush(timeout=1.0)
            0
        """
        self._ensure_process()
        if self._closed:
            return self.pending()
        return self._wait(timeout, force=force)

    def _wait(self, timeout: float, *, force: bool) -> int:
        if force:
            self._outbox.make_due(now=self._clock(), base_url=self._config.base_url)
        if self._config.api_key is not None and not self._closed:
            self._started = True
            self._sender.start()
        self._sender.wake()
        give_up = time.monotonic() + max(0.0, timeout)
        while True:
            pending, in_flight, next_at = self._outbox.pending_summary(
                base_url=self._config.base_url,
                key_fingerprint=self._config.key_fingerprint,
                now=self._clock(),
            )
            remaining = give_up - time.monotonic()
            if pending == 0 or self._config.api_key is None or remaining <= 0:
                return pending
            if not self._sender.running:
                return pending
            if in_flight == 0 and (next_at is None or next_at - self._clock() > remaining):
                return pending
            self._sender.wait_progress(min(remaining, _FLUSH_POLL))

    # The timeout is part of flush's contract (it returns what is left instead of
    # raising), so asyncio.timeout() would not express it.
    async def aflush(self, timeout: float = 10.0, *, force: bool = False) -> int:  # noqa: ASYNC109
        """:meth:`flush` for async code: waits in a worker thread, never on the loop.

        Example:
            >>> import asyncio, tempfile, pathlib
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "o.sqlite3"
            >>> with Delivery(DeliveryConfig(outbox_path=path)) as d:
            ...     asyncio.run(d.aflush(timeout=1.0))
            0
        """
        return await asyncio.to_thread(self.flush, timeout, force=force)

    def close(self, timeout: float | None = None) -> int:
        """Flush for up to ``timeout`` seconds, stop the sender and close the outbox.

        Idempotent. Undelivered entries stay in the outbox file.

        Args:
            timeout: Bound of the whole shutdown; ``None`` means
                ``config.shutdown_timeout``.

        Returns:
            Entries for this target still pending (-1 if the outbox could not be read
            during the final flush; the error is logged).
        """
        with self._lock:
            if self._closed or os.getpid() != self._pid:
                return 0
            self._closed = True
        budget = self._config.shutdown_timeout if timeout is None else max(0.0, timeout)
        started = time.monotonic()
        remaining = self._flush_quietly(budget)
        stopped = self._sender.stop(max(0.05, budget - (time.monotonic() - started)))
        if remaining > 0:
            logger.info(
                "roost delivery: %d enrichment payload(s) still pending in %s; they are sent "
                "at the next start or with `roost outbox flush`",
                remaining,
                self._outbox.path,
            )
        if stopped:
            # The thread may still be inside an attempt when it did not stop in
            # time; the process is exiting anyway, so leave its connection open.
            self._outbox.close()
        if self._atexit_registered:
            atexit.unregister(self._at_exit)
            self._atexit_registered = False
        return remaining

    def __enter__(self) -> Delivery:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -----------------------------------------------------------

    def _flush_quietly(self, timeout: float) -> int:
        try:
            return self._wait(timeout, force=False)
        except Exception:
            logger.exception(
                "roost delivery: flush at shutdown failed; payloads stay in the outbox"
            )
            return -1

    def _ensure_usable(self) -> None:
        self._ensure_process()
        if self._closed:
            raise DeliveryError(
                "this Delivery is closed; create a new one or use default_delivery()"
            )

    def _ensure_process(self) -> None:
        # After fork() the child has the parent's objects but not its sender
        # thread: give it its own sender (the outbox reopens itself). The lock
        # was already replaced by the at-fork hook below.
        if os.getpid() == self._pid:
            return
        with self._lock:
            if os.getpid() == self._pid:
                return
            self._pid = os.getpid()
            self._sender = self._new_sender()
            if self._started and not self._closed:
                self._sender.start()

    def _at_exit(self) -> None:
        try:
            self.close()
        except Exception:
            logger.exception("roost delivery: shutdown failed; payloads stay in the outbox")


_default: Delivery | None = None
_default_lock = threading.Lock()
_INSTANCES: weakref.WeakSet[Delivery] = weakref.WeakSet()


def _reset_locks_in_child() -> None:
    # A lock held by a parent thread at fork time stays held forever in the
    # child; the child is single-threaded right now, so swapping them is safe.
    global _default_lock
    _default_lock = threading.Lock()
    for instance in list(_INSTANCES):
        instance._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)


def default_delivery() -> Delivery:
    """The process-wide delivery, created on first use from the environment.

    The sender starts with it, and an ``atexit`` hook flushes it (bounded by
    ``shutdown_timeout``). A forked child gets its own instance.

    Raises:
        DeliveryConfigError: ``ROOST_BASE_URL`` or another variable is malformed.
        OutboxCorruptError: The outbox file is not a readable Roost outbox.

    Example:
        >>> import os, tempfile
        >>> os.environ["ROOST_OUTBOX_PATH"] = os.path.join(tempfile.mkdtemp(), "o.sqlite3")
        >>> default_delivery() is default_delivery()
        True
        >>> _ = default_delivery().close(timeout=0)
        >>> del os.environ["ROOST_OUTBOX_PATH"]
    """
    global _default
    with _default_lock:
        current = _default
        if current is None or current.closed or current._pid != os.getpid():
            current = Delivery(DeliveryConfig.from_env())
            _default = current
        return current
