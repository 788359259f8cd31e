"""The lifecycle worker: applies deadlines and evaluations in the background.

It runs :func:`roost.platform.progress.apply_due` every
``interval`` seconds, and at once when :meth:`LifecycleWorker.notify` is called
(after enrichment is committed or a call ends), so a result is evaluated
promptly rather than on the next tick. A failing pass is logged and retried on
the next tick; the worker never dies on a database hiccup.

Example:
    >>> import asyncio
    >>> from datetime import timedelta
    >>> from roost.platform.lifecycle import LifecyclePolicy
    >>> async def run(db):
    ...     worker = LifecycleWorker(db, LifecyclePolicy(grace=timedelta(seconds=60)))
    ...     worker.start()
    ...     worker.notify()
    ...     await worker.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

from roost.platform.judges import JudgeSetup
from roost.platform.lifecycle import LifecyclePolicy
from roost.platform.progress import ApplyStats, apply_due
from roost.platform.storage import Database, utcnow

__all__ = ["LifecycleWorker"]

log = logging.getLogger(__name__)


class LifecycleWorker:
    """Background task applying the result lifecycle.

    Args:
        db: The platform database.
        policy: Grace window and re-evaluation policy.
        interval: Seconds between passes when nothing notifies it.
        clock: Returns the current time (tests may pass their own).
        judging: The judge for model-judged checks (default: none).
    """

    def __init__(
        self,
        db: Database,
        policy: LifecyclePolicy,
        *,
        interval: float = 1.0,
        clock: Callable[[], datetime] = utcnow,
        judging: JudgeSetup | None = None,
    ) -> None:
        self._judging = judging
        self._db = db
        self._policy = policy
        self._interval = interval
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.passes = 0
        self.last_stats: ApplyStats | None = None

    def start(self) -> None:
        """Start the background task (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="roost-lifecycle")

    async def stop(self) -> None:
        """Stop the background task."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def notify(self, *_args: object) -> None:
        """Run a pass soon (accepts and ignores arguments, for callbacks)."""
        self._wake.set()

    async def run_once(self) -> ApplyStats:
        """One pass, now (also used by tests)."""
        stats = await apply_due(self._db, self._policy, self._clock(), judging=self._judging)
        self.passes += 1
        self.last_stats = stats
        return stats

    async def _run(self) -> None:
        while True:
            # Not ``wait_for``: on Python 3.11 it returns normally when the wake
            # and a cancellation coincide, and ``stop()`` then waits forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                stats = await self.run_once()
                # A full page means more are due: go again without waiting.
                if stats.examined >= 200:
                    self._wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("lifecycle pass failed; retrying on the next tick")
