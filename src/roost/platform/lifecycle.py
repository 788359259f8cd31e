"""The result lifecycle as pure functions: state and ``now`` in, decision out.

No clock, no database: the background worker (:mod:`roost.platform.worker`)
reads a :class:`ResultView`, calls :func:`decide` with the current time and
applies the :class:`Decision`. Tests drive time by passing ``now``.

Status (Bluejay's ``TestResultStatus``, §1.2-1.3 of the protocol notes)::

    QUEUED -> DISPATCHED -> RUNNING -> CONVERSATION_ENDED -> EVALUATING -> COMPLETED
                     \\-> INCOMPLETED / REJECTED (failed calls: never evaluated)

Enrichment (Roost's, per result)::

    pending --first batch--> received
    pending --grace window after hang-up passes--> missing --late batch--> received

Rules:

- A CONVERSATION_ENDED result is evaluated as soon as its enrichment is
  ``received``, or once it is ``missing``. Missing enrichment is evaluated
  *as missing*: the tool-call checks report "not evaluated: enrichment
  missing", never "no tools were called".
- Enrichment that arrives after the evaluation marks the evaluation stale.
  Policy ``auto`` re-evaluates it; ``manual`` leaves it stale (and visible as
  such) until ``re-evaluate-simulation-result`` is called.
- Calls that failed (INCOMPLETED, REJECTED...) are not evaluated; their
  enrichment is still stored and still becomes ``missing`` after the window.

Example:
    >>> from datetime import UTC, datetime, timedelta
    >>> ended = datetime(2026, 1, 1, tzinfo=UTC)
    >>> view = ResultView(status="CONVERSATION_ENDED", end_time=ended,
    ...                   enrichment_state="pending", evaluated_at=None,
    ...                   evaluation_stale=False)
    >>> policy = LifecyclePolicy(grace=timedelta(seconds=120))
    >>> early = decide(view, ended + timedelta(seconds=10), policy)
    >>> str(early.enrichment_state), early.evaluate, early.wake_at.isoformat()
    ('pending', False, '2026-01-01T00:02:00+00:00')
    >>> decide(view, ended + timedelta(seconds=121), policy).evaluate
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal

__all__ = [
    "FAILURE_STATUS",
    "TERMINAL_STATUSES",
    "Decision",
    "EnrichmentState",
    "LifecyclePolicy",
    "ResultStatus",
    "ResultView",
    "decide",
    "run_status",
]


class ResultStatus(StrEnum):
    """Bluejay's result statuses (``TestResultStatus``)."""

    INITIALIZING = "INITIALIZING"
    QUEUED = "QUEUED"
    READY = "READY"
    DISPATCHED = "DISPATCHED"
    RUNNING = "RUNNING"
    CONVERSATION_ENDED = "CONVERSATION_ENDED"
    EVALUATING = "EVALUATING"
    COMPLETED = "COMPLETED"
    INCOMPLETED = "INCOMPLETED"
    REJECTED = "REJECTED"
    INSUFFICIENT_FUNDS = "INSUFFICIENT_FUNDS"


class EnrichmentState(StrEnum):
    """Whether the agent's enrichment has arrived."""

    PENDING = "pending"
    RECEIVED = "received"
    MISSING = "missing"


TERMINAL_STATUSES = frozenset(
    {
        ResultStatus.COMPLETED,
        ResultStatus.INCOMPLETED,
        ResultStatus.REJECTED,
        ResultStatus.INSUFFICIENT_FUNDS,
    }
)
"""Statuses after which a result never changes status again (re-evaluation
of a COMPLETED result keeps it COMPLETED)."""

FAILURE_STATUS: dict[str, ResultStatus] = {
    "completed": ResultStatus.CONVERSATION_ENDED,
    "rejected": ResultStatus.REJECTED,
    "no_answer": ResultStatus.INCOMPLETED,
    "no_connection": ResultStatus.INCOMPLETED,
    "dropped": ResultStatus.INCOMPLETED,
    "failed": ResultStatus.INCOMPLETED,
}
"""Call outcome reported by the caller -> result status after hang-up."""


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    """The configurable parts of the lifecycle.

    Attributes:
        grace: How long after hang-up enrichment may take to arrive.
        reevaluate_late: ``auto`` or ``manual`` (see the module docstring).
    """

    grace: timedelta
    reevaluate_late: Literal["auto", "manual"] = "auto"


@dataclass(frozen=True, slots=True)
class ResultView:
    """The fields of a result the lifecycle depends on."""

    status: str
    end_time: datetime | None
    enrichment_state: str
    evaluated_at: datetime | None
    evaluation_stale: bool


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with a result now.

    Attributes:
        enrichment_state: The state the result should be in at ``now``.
        evaluate: Evaluate (or re-evaluate) it now.
        wake_at: When something will be due if nothing else happens; ``None``
            when the result needs no more attention.
    """

    enrichment_state: str
    evaluate: bool
    wake_at: datetime | None


def _enrichment_at(
    view: ResultView, now: datetime, grace: timedelta
) -> tuple[str, datetime | None]:
    if view.enrichment_state == EnrichmentState.RECEIVED:
        return EnrichmentState.RECEIVED, None
    if view.end_time is None:
        # Not hung up yet: the window has not started.
        return EnrichmentState.PENDING, None
    deadline = view.end_time + grace
    if now >= deadline:
        return EnrichmentState.MISSING, None
    return EnrichmentState.PENDING, deadline


def decide(view: ResultView, now: datetime, policy: LifecyclePolicy) -> Decision:
    """Decide a result's enrichment state and whether to evaluate it at ``now``."""
    state, deadline = _enrichment_at(view, now, policy.grace)
    if view.status == ResultStatus.CONVERSATION_ENDED:
        if state == EnrichmentState.PENDING:
            return Decision(state, evaluate=False, wake_at=deadline)
        return Decision(state, evaluate=True, wake_at=None)
    if view.status == ResultStatus.COMPLETED and view.evaluated_at is not None:
        if view.evaluation_stale and policy.reevaluate_late == "auto":
            return Decision(state, evaluate=True, wake_at=None)
        return Decision(state, evaluate=False, wake_at=deadline)
    return Decision(state, evaluate=False, wake_at=deadline)


def run_status(statuses: list[str]) -> str:
    """A run's status from its results' statuses (Bluejay's ``SimulationRunStatus``).

    INITIALIZING while every result is still queued, COMPLETED once every
    result is terminal, RUNNING otherwise. An empty run is COMPLETED.

    Example:
        >>> run_status(["QUEUED", "QUEUED"]), run_status(["COMPLETED", "RUNNING"])
        ('INITIALIZING', 'RUNNING')
    """
    if all(status in TERMINAL_STATUSES for status in statuses):
        return "COMPLETED"
    if all(status in (ResultStatus.QUEUED, ResultStatus.INITIALIZING) for status in statuses):
        return "INITIALIZING"
    return "RUNNING"
