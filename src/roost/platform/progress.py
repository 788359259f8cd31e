"""Recording call progress and applying the lifecycle to stored results.

The caller (CHIRP or SIP driver) reports what happens to each call through
these functions; the lifecycle worker calls :func:`apply_due`. They are the
I/O shell around the pure rules of :mod:`roost.platform.lifecycle`:

- :func:`mark_dispatched`: QUEUED -> DISPATCHED (the caller took it);
- :func:`mark_call_started`: -> RUNNING, records ``start_time`` (answer time,
  the zero point of every offset);
- :func:`mark_call_ended`: -> CONVERSATION_ENDED (outcome ``completed``) or a
  failure status, records ``end_time`` and starts the enrichment grace window;
  emits ``simulation_ended`` for completed conversations;
- :func:`reevaluate`: evaluates an ended result now, whatever its state;
- :func:`apply_due`: marks enrichment missing once the window passes and
  evaluates every result that is due, emitting
  ``simulation_result_evaluated``.

Each change runs in its own write transaction together with the webhook it
causes. On PostgreSQL, rows are claimed with ``FOR UPDATE SKIP LOCKED`` so two
server processes never evaluate the same result at once.

Example:
    >>> import asyncio
    >>> from roost.platform.storage import Database
    >>> async def example(db: Database, result_id: int) -> str:
    ...     await mark_call_started(db, result_id)
    ...     row = await mark_call_ended(db, result_id, outcome="completed")
    ...     return row.status
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from roost.platform.evaluation.judging import Judgement
from roost.platform.events import (
    SIMULATION_ENDED,
    SIMULATION_RESULT_EVALUATED,
    emit,
    simulation_ended_body,
    simulation_result_evaluated_body,
)
from roost.platform.judges import JudgeSetup
from roost.platform.lifecycle import (
    FAILURE_STATUS,
    Decision,
    LifecyclePolicy,
    ResultStatus,
    ResultView,
    decide,
)
from roost.platform.results import (
    bluejay_evaluation,
    evaluate_bundle,
    judge_inputs,
    load_bundles,
    results_needing_judge,
    webhook_tool_calls,
)
from roost.platform.storage import Database, Simulation, SimulationResult, utcnow

__all__ = [
    "InvalidTransition",
    "apply_due",
    "mark_call_ended",
    "mark_call_started",
    "mark_dispatched",
    "reevaluate",
]

_STARTABLE = frozenset(
    {ResultStatus.QUEUED, ResultStatus.READY, ResultStatus.DISPATCHED, ResultStatus.INITIALIZING}
)
_ENDABLE = _STARTABLE | {ResultStatus.RUNNING}
_EVALUABLE = frozenset(
    {ResultStatus.CONVERSATION_ENDED, ResultStatus.EVALUATING, ResultStatus.COMPLETED}
)


NO_JUDGE: Final = "no judge is configured"
CHANGED_WHILE_JUDGING: Final = (
    "the result's data changed while it was being judged; it is marked stale and "
    "judged again when re-evaluated"
)


class InvalidTransition(Exception):
    """The result is not in a status that allows this change."""


@dataclass(frozen=True, slots=True)
class ApplyStats:
    """What one :func:`apply_due` pass did."""

    examined: int
    evaluated: int
    marked_missing: int


async def _lock_result(
    session: AsyncSession, result_id: int, org_id: int | None, *, skip_locked: bool = False
) -> SimulationResult | None:
    query = select(SimulationResult).where(SimulationResult.id == result_id)
    if org_id is not None:
        query = query.where(SimulationResult.org_id == org_id)
    query = query.with_for_update(skip_locked=skip_locked)
    return (await session.execute(query)).scalar_one_or_none()


async def mark_dispatched(db: Database, result_ids: Sequence[int]) -> int:
    """Move QUEUED results to DISPATCHED; return how many moved."""
    if not result_ids:
        return 0
    async with db.write() as session:
        outcome = await session.execute(
            update(SimulationResult)
            .where(SimulationResult.id.in_(list(result_ids)))
            .where(SimulationResult.status == ResultStatus.QUEUED)
            .values(status=ResultStatus.DISPATCHED)
        )
        return int(getattr(outcome, "rowcount", 0) or 0)


async def mark_call_started(
    db: Database,
    result_id: int,
    started_at: datetime | None = None,
    *,
    org_id: int | None = None,
) -> SimulationResult | None:
    """Record that the call was answered; ``None`` if the result is unknown.

    Raises:
        InvalidTransition: the call already started or ended.
    """
    async with db.write() as session:
        row = await _lock_result(session, result_id, org_id)
        if row is None:
            return None
        if row.status not in _STARTABLE:
            raise InvalidTransition(
                f"simulation result {result_id} is {row.status}; a call can start only "
                "while the result is QUEUED or DISPATCHED"
            )
        row.status = ResultStatus.RUNNING
        row.start_time = started_at or utcnow()
        return row


async def mark_call_ended(
    db: Database,
    result_id: int,
    ended_at: datetime | None = None,
    outcome: str = "completed",
    *,
    error_code: str | None = None,
    org_id: int | None = None,
) -> SimulationResult | None:
    """Record the end of a call; ``None`` if the result is unknown.

    Args:
        db: The platform database.
        result_id: The simulation result.
        ended_at: Hang-up time (default now); starts the enrichment window.
        outcome: ``completed`` or a failure (see ``FAILURE_STATUS``).
        error_code: Bluejay-style failure code kept on the result.
        org_id: Restrict to this organisation (API callers).

    Raises:
        InvalidTransition: the call already ended, or ``outcome`` is unknown.
    """
    status = FAILURE_STATUS.get(outcome)
    if status is None:
        raise InvalidTransition(
            f"unknown call outcome {outcome!r}; use one of {', '.join(FAILURE_STATUS)}"
        )
    async with db.write() as session:
        row = await _lock_result(session, result_id, org_id)
        if row is None:
            return None
        if row.status not in _ENDABLE:
            raise InvalidTransition(
                f"simulation result {result_id} has already ended ({row.status})"
            )
        ended = ended_at or utcnow()
        row.status = status
        row.end_time = ended
        if row.start_time is not None and row.start_time > ended:
            row.start_time = ended
        row.error_code = error_code
        row.needs_attention = True
        row.wake_at = None
        if status == ResultStatus.CONVERSATION_ENDED:
            await emit(
                session,
                row.org_id,
                SIMULATION_ENDED,
                simulation_ended_body(
                    result_id=row.id,
                    digital_human_id=row.digital_human_id,
                    simulation_run_id=row.run_id,
                    status=row.status,
                    created_at=row.created_at,
                    start_time=row.start_time,
                    end_time=row.end_time,
                ),
            )
        return row


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


async def _prejudge(
    db: Database, results: Sequence[tuple[int, int]], judging: JudgeSetup | None
) -> dict[int, dict[str, Judgement]]:
    """Answers to the judged checks of ``(result id, org id)`` pairs.

    Judges are slow (a model, maybe over the network), so they are asked
    before the row lock is taken, on a read snapshot; the locked evaluation
    then only reads the answers.
    """
    if judging is None or judging.driver is None or not results:
        return {}
    driver = judging.driver
    by_org: dict[int, list[int]] = {}
    for result_id, org_id in results:
        by_org.setdefault(org_id, []).append(result_id)
    inputs = []
    async with db.read() as session:
        for org_id, ids in by_org.items():
            ids = await results_needing_judge(session, org_id, ids)
            if not ids:
                continue
            for bundle in await load_bundles(session, org_id, result_ids=ids):
                needed = judge_inputs(bundle)
                if needed is not None:
                    inputs.append((bundle.result.id, needed))
    answers = await asyncio.gather(*(driver.judgements_for(*needed) for _, needed in inputs))
    return {result_id: found for (result_id, _), found in zip(inputs, answers, strict=True)}


async def _evaluate_locked(
    session: AsyncSession,
    row: SimulationResult,
    now: datetime,
    judging: JudgeSetup | None = None,
    judgements: dict[str, Judgement] | None = None,
) -> dict[str, Any]:
    bundles = await load_bundles(session, row.org_id, result_ids=[row.id])
    bundle = bundles[0]
    judged = judging is not None and judging.driver is not None
    if judging is None:
        unjudged = NO_JUDGE
    else:
        unjudged = CHANGED_WHILE_JUDGING if judged else judging.unavailable or NO_JUDGE
    evaluation = evaluate_bundle(
        bundle,
        now,
        judgements=judgements,
        judge=None if judging is None else judging.name,
        unjudged=unjudged,
    )
    row.evaluation = evaluation
    row.evaluated_at = now
    # Questions no judge saw (the data changed after they were asked): the
    # evaluation is stale, and the lifecycle re-evaluates it like late data.
    row.evaluation_stale = judged and bool(evaluation.get("judgements_pending"))
    row.evaluation_count = row.evaluation_count + 1
    row.status = ResultStatus.COMPLETED
    simulation_id, agent_id = (
        await session.execute(
            select(Simulation.id, Simulation.agent_id).where(
                Simulation.id == bundle.run.simulation_id
            )
        )
    ).one()
    bundle.result = row
    summary = bluejay_evaluation(bundle)
    await emit(
        session,
        row.org_id,
        SIMULATION_RESULT_EVALUATED,
        _jsonable(
            simulation_result_evaluated_body(
                result_id=row.id,
                digital_human_id=row.digital_human_id,
                simulation_run_id=row.run_id,
                simulation_id=simulation_id,
                agent_id=agent_id,
                status=row.status,
                evaluations=[summary] if summary is not None else [],
                events=bundle.events,
                tool_calls=webhook_tool_calls(bundle),
                tags=bundle.tags,
                metadata=bundle.metadata,
                created_at=row.created_at,
                start_time=row.start_time,
                end_time=row.end_time,
                roost_evaluation=evaluation,
            )
        ),
    )
    return evaluation


async def reevaluate(
    db: Database,
    result_id: int,
    *,
    org_id: int | None = None,
    now: datetime | None = None,
    judging: JudgeSetup | None = None,
) -> dict[str, Any] | None:
    """Evaluate an ended result again now; ``None`` if the result is unknown.

    ``judging`` answers judged checks (asked before the row is locked).

    Raises:
        InvalidTransition: the call has not ended, or it failed (nothing to
            evaluate).
    """
    answers: dict[str, Judgement] | None = None
    if judging is not None and judging.driver is not None:
        async with db.read() as session:
            found = (
                await session.execute(
                    select(SimulationResult.org_id, SimulationResult.status).where(
                        SimulationResult.id == result_id
                    )
                )
            ).one_or_none()
        # A call that has not ended is refused below: asking a model about it
        # first would spend a judge call on every such 409.
        if (
            found is not None
            and (org_id is None or found.org_id == org_id)
            and found.status in _EVALUABLE
        ):
            answers = (await _prejudge(db, [(result_id, found.org_id)], judging)).get(result_id)
    async with db.write() as session:
        row = await _lock_result(session, result_id, org_id)
        if row is None:
            return None
        if row.status not in _EVALUABLE:
            raise InvalidTransition(
                f"simulation result {result_id} is {row.status}; only results whose "
                "conversation ended can be evaluated"
            )
        return await _evaluate_locked(session, row, now or utcnow(), judging, answers)


async def apply_due(
    db: Database,
    policy: LifecyclePolicy,
    now: datetime,
    *,
    limit: int = 200,
    judging: JudgeSetup | None = None,
) -> ApplyStats:
    """Apply the lifecycle to every flagged result that is due at ``now``.

    Decisions are first taken on a read snapshot. Results with nothing to do
    get their flag cleared in one batched write, guarded so that a row changed
    meanwhile (new enrichment, hang-up) keeps its flag; each result with work
    is then re-read under a row lock and handled in its own transaction.
    Results to evaluate whose spec has judged checks are judged (``judging``)
    between the two, outside any lock.
    """
    columns = (
        SimulationResult.id,
        SimulationResult.status,
        SimulationResult.end_time,
        SimulationResult.enrichment_state,
        SimulationResult.evaluated_at,
        SimulationResult.evaluation_stale,
        SimulationResult.batch_count,
        SimulationResult.org_id,
    )
    async with db.read() as session:
        rows = (
            await session.execute(
                select(*columns)
                .where(SimulationResult.needs_attention.is_(True))
                .where((SimulationResult.wake_at.is_(None)) | (SimulationResult.wake_at <= now))
                .order_by(SimulationResult.id)
                .limit(limit)
            )
        ).all()
    busy: list[int] = []
    to_judge: list[tuple[int, int]] = []
    idle: list[tuple[Any, Decision]] = []
    for row in rows:
        decision = decide(_view(row), now, policy)
        if decision.evaluate or decision.enrichment_state != row.enrichment_state:
            busy.append(row.id)
            if decision.evaluate:
                to_judge.append((row.id, row.org_id))
        else:
            idle.append((row, decision))
    if idle:
        async with db.write() as session:
            for row, decision in idle:
                await session.execute(
                    update(SimulationResult)
                    .where(
                        SimulationResult.id == row.id,
                        SimulationResult.status == row.status,
                        SimulationResult.enrichment_state == row.enrichment_state,
                        SimulationResult.batch_count == row.batch_count,
                        SimulationResult.evaluation_stale.is_(row.evaluation_stale),
                    )
                    .values(needs_attention=decision.wake_at is not None, wake_at=decision.wake_at)
                )
    answers = await _prejudge(db, to_judge, judging)
    evaluated = missing = 0
    for result_id in busy:
        async with db.write() as session:
            result = await _lock_result(session, result_id, None, skip_locked=True)
            if result is None or not result.needs_attention:
                continue
            decision = decide(_view(result), now, policy)
            if decision.enrichment_state != result.enrichment_state:
                result.enrichment_state = decision.enrichment_state
                missing += 1
            if decision.evaluate:
                await _evaluate_locked(session, result, now, judging, answers.get(result_id))
                evaluated += 1
            # Flagged again only if something becomes due later by itself
            # (the end of the grace window, a judged evaluation gone stale);
            # new data re-flags it anyway.
            result.needs_attention = decision.wake_at is not None or (
                decision.evaluate and result.evaluation_stale
            )
            result.wake_at = decision.wake_at
    return ApplyStats(examined=len(rows), evaluated=evaluated, marked_missing=missing)


def _view(row: Any) -> ResultView:
    return ResultView(
        status=row.status,
        end_time=row.end_time,
        enrichment_state=row.enrichment_state,
        evaluated_at=row.evaluated_at,
        evaluation_stale=row.evaluation_stale,
    )
