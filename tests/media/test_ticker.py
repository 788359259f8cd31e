from __future__ import annotations

import asyncio
from typing import Any

import pytest

from roost.media.ticker import MediaTicker


class FakeLoop:
    """Just enough of an event loop for the ticker: a settable clock and timers."""

    def __init__(self) -> None:
        self.now = 100.0
        self.timers: list[tuple[float, Any]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), loop=self)  # type: ignore[arg-type]
        self.timers.append((when, handle))
        return handle

    def get_debug(self) -> bool:
        return False

    def _timer_handle_cancelled(self, handle: asyncio.TimerHandle) -> None:
        pass

    def advance(self, seconds: float) -> None:
        """Move the clock and fire every due, uncancelled timer in order."""
        self.now += seconds
        while True:
            due = [(w, h) for w, h in self.timers if w <= self.now and not h.cancelled()]
            if not due:
                break
            when, handle = min(due, key=lambda item: item[0])
            self.timers.remove((when, handle))
            handle._run()


def make() -> tuple[MediaTicker, FakeLoop]:
    loop = FakeLoop()
    return MediaTicker(0.020, max_catch_up=3, loop=loop), loop  # type: ignore[arg-type]


def test_each_subscriber_is_called_once_per_tick_with_the_deadline() -> None:
    ticker, loop = make()
    a: list[float] = []
    b: list[float] = []
    ticker.subscribe(a.append)
    ticker.subscribe(b.append)
    for _ in range(5):
        loop.advance(0.020)
    assert a == b
    assert a == pytest.approx([100.02, 100.04, 100.06, 100.08, 100.10])
    assert ticker.stats.ticks == 5


def test_late_timer_catches_up_without_shifting_the_schedule() -> None:
    ticker, loop = make()
    seen: list[float] = []
    ticker.subscribe(seen.append)
    loop.advance(0.065)  # three ticks due at once
    assert seen == pytest.approx([100.02, 100.04, 100.06])
    assert ticker.stats.lateness_ms == pytest.approx([45.0, 25.0, 5.0])
    loop.advance(0.015)
    assert seen[-1] == pytest.approx(100.08)


def test_a_long_stall_skips_and_counts_ticks_beyond_the_catch_up_limit() -> None:
    ticker, loop = make()
    seen: list[float] = []
    ticker.subscribe(seen.append)
    loop.advance(0.200)  # ten ticks due, catch-up limit three (+ the current one)
    assert ticker.stats.skipped == 6
    assert len(seen) == 4
    assert seen[-1] == pytest.approx(100.20)


def test_cancel_stops_ticks_and_idles_the_timer() -> None:
    ticker, loop = make()
    seen: list[float] = []
    sub = ticker.subscribe(seen.append)
    loop.advance(0.020)
    sub.cancel()
    sub.cancel()
    loop.advance(0.100)
    assert len(seen) == 1
    assert ticker.subscribers == 0
    assert not [h for _, h in loop.timers if not h.cancelled()]


def test_a_failing_subscriber_is_removed_and_the_others_keep_ticking() -> None:
    ticker, loop = make()
    seen: list[float] = []

    def boom(deadline: float) -> None:
        raise RuntimeError("broken sender")

    ticker.subscribe(boom)
    ticker.subscribe(seen.append)
    loop.advance(0.020)
    loop.advance(0.020)
    assert len(seen) == 2
    assert ticker.stats.callback_errors == 1
    assert ticker.subscribers == 1


def test_subscribers_may_cancel_themselves_inside_a_tick() -> None:
    ticker, loop = make()
    calls: list[float] = []
    holder: list[Any] = []

    def once(deadline: float) -> None:
        calls.append(deadline)
        holder[0].cancel()

    holder.append(ticker.subscribe(once))
    loop.advance(0.040)
    assert len(calls) == 1


def test_percentile() -> None:
    ticker, _ = make()
    ticker.stats.lateness_ms.extend(float(i) for i in range(101))
    assert ticker.stats.percentile(50) == 50.0
    assert ticker.stats.percentile(99) == 99.0


async def test_one_ticker_per_running_loop() -> None:
    first = MediaTicker.for_running_loop()
    assert MediaTicker.for_running_loop() is first
    ticks: list[float] = []
    three = asyncio.Event()

    def on_tick(deadline: float) -> None:
        ticks.append(deadline)
        if len(ticks) == 3:
            three.set()

    sub = first.subscribe(on_tick)
    await asyncio.wait_for(three.wait(), timeout=5)
    sub.cancel()
    assert ticks == sorted(ticks)
