"""Real-time playout and pacing models, sans-I/O (time in, deadlines out).

Both ends of a CHIRP call reason about audio that has been *sent* but not yet
*heard*:

- The platform buffers the agent's audio in a playout queue and echoes a
  ``mark`` only once the audio queued before it has played out to the digital
  human (``bluejay-protocol.md`` §4.8). :class:`PlayoutClock` models that queue
  as real-time consumption: each chunk starts playing when it arrives or when
  the previous one ends, whichever is later, and a mark falls due when the
  queue reaches it.
- Agents send their audio paced at real time with about 200 ms lead, so the far
  end never starves yet a barge-in can still cut the agent off quickly (§4.4).
  :class:`Pacer` says when the next frame may go.

Times are plain floats in seconds on whatever monotonic clock the driver uses.

Example:
    >>> from roost.chirp.playout import PlayoutClock
    >>> clock = PlayoutClock()
    >>> clock.push(0.5, now=10.0)  # half a second of agent audio arrives
    10.0
    >>> clock.mark("greeting", now=10.1)  # the echo is due when it has played
    10.5
    >>> clock.due(10.4), clock.due(10.5)
    ([], ['greeting'])
"""

from __future__ import annotations

from collections import deque

__all__ = ["Pacer", "PlayoutClock"]


class PlayoutClock:
    """Models real-time playout of received audio and the marks waiting on it."""

    __slots__ = ("_end", "_marks")

    def __init__(self) -> None:
        self._end = 0.0
        self._marks: deque[tuple[float, str]] = deque()

    @property
    def end(self) -> float:
        """When everything received so far will have played out."""
        return self._end

    def queued(self, now: float) -> float:
        """Seconds of received audio not yet played at ``now``."""
        return max(0.0, self._end - now)

    def push(self, seconds: float, now: float) -> float:
        """Queue ``seconds`` of audio received at ``now``; returns when it starts playing."""
        start = self._end if self._end > now else now
        self._end = start + seconds
        return start

    def mark(self, name: str, now: float) -> float:
        """Queue a mark received at ``now``; returns the moment its echo is due."""
        deadline = self._end if self._end > now else now
        self._marks.append((deadline, name))
        return deadline

    @property
    def next_deadline(self) -> float | None:
        """Due time of the oldest pending mark, or ``None``."""
        return self._marks[0][0] if self._marks else None

    def due(self, now: float) -> list[str]:
        """Remove and return the names of marks due at ``now``, oldest first."""
        names: list[str] = []
        marks = self._marks
        # Deadlines never decrease: each is max(now, end) and both only grow.
        while marks and marks[0][0] <= now:
            names.append(marks.popleft()[1])
        return names

    def cancel(self) -> list[str]:
        """Drop every pending mark (session teardown) and return their names."""
        names = [name for _, name in self._marks]
        self._marks.clear()
        return names


class Pacer:
    """Lets audio go out ahead of real time by at most ``lead`` seconds.

    Args:
        lead: How far ahead of the far end's playout the sender may run.
    """

    __slots__ = ("_end", "lead")

    def __init__(self, lead: float = 0.2) -> None:
        if lead < 0:
            raise ValueError("lead must not be negative")
        self.lead = lead
        self._end = 0.0

    def ready(self, now: float) -> bool:
        """Whether one more chunk may be sent at ``now``."""
        # The margin absorbs float error summed over many 20 ms frames.
        return self._end - self.lead < now - 1e-6

    def next_time(self) -> float:
        """Earliest moment :meth:`ready` turns true."""
        return self._end - self.lead

    def sent(self, seconds: float, now: float) -> None:
        """Record that ``seconds`` of audio went out at ``now``."""
        self._end = (self._end if self._end > now else now) + seconds

    def ahead(self, now: float) -> float:
        """Seconds of sent audio the far end has not played yet at ``now``."""
        return max(0.0, self._end - now)
