"""One 20 ms clock per event loop that paces every outgoing media stream.

Hundreds of concurrent calls each need a frame sent every 20 ms. One sleeping task
per call costs about twice the CPU of a single batched ticker and saturates a
core near 1,000 streams (``sip-stack-notes.md`` §6), so every stream in a process
subscribes to the same :class:`MediaTicker` instead. Each tick calls every
subscriber once, synchronously, with the tick's deadline; subscribers send one
frame and return. Sending must not block or await: transports buffer writes.

Ticks are deadlines on the loop's monotonic clock, never ``sleep`` durations, so
a late tick does not shift the schedule: if the loop falls behind, due ticks are
run back to back to catch up (up to ``max_catch_up``), and anything beyond that
is counted as skipped rather than silently absorbed.

Example:
    >>> import asyncio
    >>> from roost.media import MediaTicker
    >>> async def main() -> int:
    ...     ticker = MediaTicker.for_running_loop()
    ...     ticks: list[float] = []
    ...     sub = ticker.subscribe(ticks.append)
    ...     await asyncio.sleep(0.1)
    ...     sub.cancel()
    ...     return len(ticks)
    >>> 3 <= asyncio.run(main()) <= 6
    True
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["MediaTicker", "Subscription", "TickerStats"]

logger = logging.getLogger(__name__)

TickCallback = Callable[[float], None]
"""Called once per tick with the tick's deadline in ``loop.time()`` seconds."""

_LATENESS_SAMPLES = 30_000


@dataclass(slots=True)
class TickerStats:
    """Counters of one ticker.

    Attributes:
        ticks: Ticks run.
        skipped: Ticks dropped because the loop fell more than ``max_catch_up``
            ticks behind.
        callback_errors: Subscriber callbacks that raised (the subscriber is
            removed after its first error).
        lateness_ms: Lateness of each tick's start, in milliseconds, newest last
            (bounded to the last 30,000 ticks).
    """

    ticks: int = 0
    skipped: int = 0
    callback_errors: int = 0
    lateness_ms: list[float] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        """Lateness percentile ``q`` (0-100) in milliseconds; 0.0 when empty."""
        if not self.lateness_ms:
            return 0.0
        data = sorted(self.lateness_ms)
        index = min(len(data) - 1, max(0, round(q / 100 * (len(data) - 1))))
        return data[index]


class Subscription:
    """Handle of one subscriber; :meth:`cancel` stops its ticks."""

    __slots__ = ("_callback", "_ticker", "active")

    def __init__(self, ticker: MediaTicker, callback: TickCallback) -> None:
        self._ticker = ticker
        self._callback = callback
        self.active = True

    def cancel(self) -> None:
        """Stop calling this subscriber. Safe to call twice or from a callback."""
        if self.active:
            self.active = False
            self._ticker._remove(self)


class MediaTicker:
    """A shared periodic clock for media pacing on one asyncio loop.

    Args:
        interval: Tick period in seconds (20 ms by default, one audio frame).
        max_catch_up: Most overdue ticks run back to back after a stall; older
            ones are counted in :attr:`TickerStats.skipped`.
        loop: The loop to run on; defaults to the running loop.
    """

    _per_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, MediaTicker] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(
        self,
        interval: float = 0.020,
        *,
        max_catch_up: int = 10,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.interval = interval
        self.max_catch_up = max_catch_up
        self._loop = loop or asyncio.get_running_loop()
        self._subs: dict[Subscription, None] = {}
        self._next: float | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._in_tick = False
        self.stats = TickerStats()

    @classmethod
    def for_running_loop(cls) -> MediaTicker:
        """Return the process-wide ticker of the running loop, creating it once."""
        loop = asyncio.get_running_loop()
        ticker = cls._per_loop.get(loop)
        if ticker is None:
            ticker = cls(loop=loop)
            cls._per_loop[loop] = ticker
        return ticker

    @property
    def subscribers(self) -> int:
        """Number of active subscribers."""
        return len(self._subs)

    def subscribe(self, callback: TickCallback) -> Subscription:
        """Call ``callback(deadline)`` on every tick from the next one on."""
        sub = Subscription(self, callback)
        self._subs[sub] = None
        if self._handle is None:
            self._next = self._loop.time() + self.interval
            self._handle = self._loop.call_at(self._next, self._on_timer)
        return sub

    def _remove(self, sub: Subscription) -> None:
        self._subs.pop(sub, None)
        # Inside a tick, _on_timer itself decides whether to re-arm.
        if not self._subs and self._handle is not None and not self._in_tick:
            self._handle.cancel()
            self._handle = None
            self._next = None

    def _on_timer(self) -> None:
        assert self._next is not None
        now = self._loop.time()
        overdue = int((now - self._next) / self.interval)
        if overdue > self.max_catch_up:
            skip = overdue - self.max_catch_up
            self.stats.skipped += skip
            self._next += skip * self.interval
        stats = self.stats
        lateness = stats.lateness_ms
        self._in_tick = True
        try:
            self._run_due(now)
        finally:
            self._in_tick = False
        if len(lateness) > _LATENESS_SAMPLES:
            del lateness[: len(lateness) - _LATENESS_SAMPLES]
        if self._subs:
            self._handle = self._loop.call_at(self._next, self._on_timer)
        else:
            self._handle = None
            self._next = None

    def _run_due(self, now: float) -> None:
        assert self._next is not None
        stats = self.stats
        lateness = stats.lateness_ms
        while self._next <= now and self._subs:
            deadline = self._next
            lateness.append((now - deadline) * 1000.0)
            stats.ticks += 1
            # Copy: callbacks may cancel themselves or subscribe others.
            for sub in list(self._subs):
                try:
                    sub._callback(deadline)
                except Exception:
                    stats.callback_errors += 1
                    logger.exception("media ticker subscriber failed; unsubscribing it")
                    sub.cancel()
            self._next += self.interval
