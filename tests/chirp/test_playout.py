from __future__ import annotations

import pytest

from roost.chirp.playout import Pacer, PlayoutClock


def test_audio_plays_back_to_back_and_gaps_restart_at_arrival() -> None:
    clock = PlayoutClock()
    assert clock.push(0.5, now=10.0) == 10.0
    assert clock.push(0.5, now=10.1) == 10.5  # queued behind the first chunk
    assert clock.end == 11.0
    assert clock.queued(10.2) == pytest.approx(0.8)
    assert clock.push(0.02, now=12.0) == 12.0  # the queue ran dry: plays on arrival
    assert clock.queued(13.0) == 0.0


def test_a_mark_falls_due_when_the_audio_before_it_has_played() -> None:
    clock = PlayoutClock()
    clock.push(1.0, now=0.0)
    assert clock.mark("first", now=0.1) == 1.0
    clock.push(1.0, now=0.2)
    assert clock.mark("second", now=0.3) == 2.0
    assert clock.next_deadline == 1.0
    assert clock.due(0.99) == []
    assert clock.due(1.5) == ["first"]
    assert clock.due(5.0) == ["second"]
    assert clock.next_deadline is None


def test_a_mark_with_nothing_queued_is_due_at_once() -> None:
    clock = PlayoutClock()
    assert clock.mark("now", now=3.0) == 3.0
    assert clock.due(3.0) == ["now"]


def test_teardown_cancels_pending_marks() -> None:
    clock = PlayoutClock()
    clock.push(2.0, now=0.0)
    clock.mark("a", now=0.0)
    clock.mark("b", now=0.0)
    assert clock.cancel() == ["a", "b"]
    assert clock.due(10.0) == []


def test_pacer_bursts_the_lead_then_follows_real_time() -> None:
    pacer = Pacer(lead=0.2)
    now = 100.0
    burst = 0
    while pacer.ready(now):
        pacer.sent(0.02, now)
        burst += 1
    assert burst == 10  # 200 ms of 20 ms frames go at once
    assert pacer.ahead(now) == pytest.approx(0.2)
    assert pacer.next_time() == pytest.approx(100.0)
    assert pacer.ready(now + 0.001)  # then one frame per frame time
    pacer.sent(0.02, now + 0.001)
    assert not pacer.ready(now + 0.002)


def test_pacer_restarts_from_now_after_silence() -> None:
    pacer = Pacer(lead=0.2)
    pacer.sent(0.02, 0.0)
    pacer.sent(0.02, 5.0)
    assert pacer.ahead(5.0) == pytest.approx(0.02)
    with pytest.raises(ValueError):
        Pacer(lead=-1)
