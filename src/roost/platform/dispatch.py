"""Handing queued results to whatever places the calls.

``queue-simulation-run`` creates a run and its results, commits, then calls
``dispatcher.dispatch(result_ids)``. Placing calls (CHIRP and SIP callers) is a
separate piece of Roost; it plugs in here by implementing :class:`Dispatcher`
and reporting progress through :mod:`roost.platform.progress`
(``mark_dispatched``, ``mark_call_started``, ``mark_call_ended``).

Without a caller, :class:`QueueOnlyDispatcher` leaves every result QUEUED;
results can then be driven by an external caller through the Roost endpoints
``/v1/roost/simulation-results/{id}/call-started`` and ``.../call-ended``.

Example:
    >>> import asyncio
    >>> asyncio.run(QueueOnlyDispatcher().dispatch([1, 2]))
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

__all__ = ["Dispatcher", "QueueOnlyDispatcher"]


@runtime_checkable
class Dispatcher(Protocol):
    """Receives the ids of newly queued results, after they are committed.

    ``dispatch`` must return quickly (start background work, do not place the
    calls inline): it runs inside the queue-simulation-run request. An
    exception is logged and leaves the results QUEUED; it never fails the
    request, whose results already exist.
    """

    async def dispatch(self, result_ids: Sequence[int]) -> None:
        """Take responsibility for calling the given results."""
        ...


class QueueOnlyDispatcher:
    """The default dispatcher: results wait in QUEUED."""

    async def dispatch(self, result_ids: Sequence[int]) -> None:
        """Do nothing; the results stay QUEUED."""
        return None
