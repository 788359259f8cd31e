"""Reading results back: bundles, Bluejay responses, evaluation.

A :class:`ResultBundle` is one result with everything stored about it (its
run, digital human, tool calls, events, transcript and the merged batch
fields). From it this module builds Bluejay's ``SimulationResultResponse`` and
runs the evaluation engine.

How repeated batches combine (Bluejay leaves this open, §10.10 of the notes):
tool calls, events and transcript entries of every batch are kept and listed
in time order (ties in arrival order); ``tags`` and ``trace_ids`` are the
union in first-seen order; ``metadata`` objects are merged key by key, later
batches winning.

Example:
    >>> merge_metadata([{"a": 1, "b": 1}, None, {"b": 2}])
    {'a': 1, 'b': 2}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from roost.platform.evaluation import (
    ActualToolCall,
    ExpectationError,
    ToolExpectations,
    evaluate,
)
from roost.platform.evaluation.engine import NO_JUDGEMENT
from roost.platform.evaluation.judging import Judgement
from roost.platform.lifecycle import EnrichmentState, ResultStatus
from roost.platform.storage import (
    DigitalHuman,
    EnrichmentBatch,
    SimulationResult,
    SimulationRun,
    ToolCallRow,
)

__all__ = [
    "ResultBundle",
    "bluejay_evaluation",
    "evaluate_bundle",
    "judge_inputs",
    "load_bundles",
    "merge_metadata",
    "results_needing_judge",
    "result_response",
    "stored_judgements",
    "webhook_tool_calls",
]

_TOOL_FIELDS = (
    "call_id",
    "end_offset_ms",
    "duration_ms",
    "status",
    "error_type",
    "error_message",
)


@dataclass(slots=True)
class ResultBundle:
    """A result and everything stored about it."""

    result: SimulationResult
    run: SimulationRun
    digital_human: dict[str, Any]
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    trace_ids: list[str] = field(default_factory=list)


def merge_metadata(items: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """Shallow-merge metadata objects; later keys win."""
    merged: dict[str, Any] = {}
    for item in items:
        if item:
            merged.update(item)
    return merged


def _union(lists: Iterable[list[str] | None]) -> list[str]:
    seen: dict[str, None] = {}
    for values in lists:
        for value in values or ():
            seen.setdefault(value, None)
    return list(seen)


def _tool_dict(row: ToolCallRow) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": row.name,
        "start_offset_ms": row.start_offset_ms,
        "description": row.description,
        "parameters": row.parameters,
        "output": row.output,
    }
    for key in _TOOL_FIELDS:
        data[key] = getattr(row, key)
    return data


def _event_dict(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": event["title"],
        "start_offset_ms": event["start_offset_ms"],
        "end_offset_ms": event.get("end_offset_ms"),
        "description": event.get("description"),
        "tags": event.get("tags"),
        "metadata": event.get("metadata"),
    }


def _entry_dict(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "start_offset_ms": entry["start_offset_ms"],
        "end_offset_ms": entry["end_offset_ms"],
        "speaker": entry["speaker"],
        "utterance": entry["utterance"],
        "filler_utterance": entry.get("filler_utterance"),
    }


def _offset(item: dict[str, Any]) -> Any:
    return item["start_offset_ms"]


async def load_bundles(
    session: AsyncSession,
    org_id: int,
    *,
    result_ids: Sequence[int] | None = None,
    run_id: int | None = None,
) -> list[ResultBundle]:
    """Load results of ``org_id`` by id or by run, with all their data.

    Results of other organisations are never returned (they are simply absent,
    exactly like unknown ids).
    """
    query = (
        select(SimulationResult, SimulationRun, DigitalHuman.data)
        .join(SimulationRun, SimulationRun.id == SimulationResult.run_id)
        .join(DigitalHuman, DigitalHuman.id == SimulationResult.digital_human_id)
        .where(SimulationResult.org_id == org_id)
        .order_by(SimulationResult.id)
    )
    if result_ids is not None:
        query = query.where(SimulationResult.id.in_(list(result_ids)))
    if run_id is not None:
        query = query.where(SimulationResult.run_id == run_id)
    rows = (await session.execute(query)).all()
    bundles = {
        row[0].id: ResultBundle(result=row[0], run=row[1], digital_human=row[2]) for row in rows
    }
    if not bundles:
        return []
    ids = list(bundles)
    calls = await session.execute(
        select(ToolCallRow)
        .where(ToolCallRow.result_id.in_(ids))
        .order_by(ToolCallRow.start_offset_ms, ToolCallRow.batch_id, ToolCallRow.seq)
    )
    for call in calls.scalars():
        bundles[call.result_id].tool_calls.append(_tool_dict(call))
    batches = await session.execute(
        select(
            EnrichmentBatch.result_id,
            EnrichmentBatch.tags,
            EnrichmentBatch.metadata_,
            EnrichmentBatch.trace_ids,
            EnrichmentBatch.events,
            EnrichmentBatch.transcript,
        )
        .where(EnrichmentBatch.result_id.in_(ids))
        .order_by(EnrichmentBatch.id)
    )
    per_result: dict[int, list[Any]] = {}
    for batch in batches:
        per_result.setdefault(batch.result_id, []).append(batch)
    for result_id, items in per_result.items():
        bundle = bundles[result_id]
        # In batch order, each batch's entries in the order they were sent;
        # the sorts are stable, so entries at the same offset keep that order.
        bundle.events = sorted(
            (_event_dict(event) for item in items for event in item.events or ()),
            key=_offset,
        )
        bundle.transcript = sorted(
            (_entry_dict(entry) for item in items for entry in item.transcript or ()),
            key=_offset,
        )
        bundle.tags = _union(item.tags for item in items)
        bundle.trace_ids = _union(item.trace_ids for item in items)
        bundle.metadata = merge_metadata(item.metadata_ for item in items)
    return list(bundles.values())


def judge_inputs(
    bundle: ResultBundle,
) -> tuple[ToolExpectations, list[ActualToolCall], list[dict[str, Any]]] | None:
    """What a judge must see to answer the result's judged checks, or ``None``
    when evaluating it needs no judge (no enrichment, no judged check, or an
    invalid spec)."""
    if bundle.result.enrichment_state != EnrichmentState.RECEIVED:
        return None
    try:
        spec = ToolExpectations.from_digital_human(bundle.digital_human)
    except ExpectationError:
        return None
    if not spec.uses_judge:
        return None
    return spec, [ActualToolCall.from_dict(call) for call in bundle.tool_calls], bundle.events


async def results_needing_judge(
    session: AsyncSession, org_id: int, result_ids: Sequence[int]
) -> list[int]:
    """The results among ``result_ids`` whose evaluation may ask a judge.

    Reads only each result's spec, so that results without judged checks
    (most of them) are not loaded twice around an evaluation.
    """
    rows = await session.execute(
        select(SimulationResult.id, DigitalHuman.data)
        .join(DigitalHuman, DigitalHuman.id == SimulationResult.digital_human_id)
        .where(
            SimulationResult.org_id == org_id,
            SimulationResult.id.in_(list(result_ids)),
            SimulationResult.enrichment_state == EnrichmentState.RECEIVED,
        )
    )
    needing = []
    for result_id, data in rows:
        try:
            if ToolExpectations.from_digital_human(data).uses_judge:
                needing.append(result_id)
        except ExpectationError:
            continue
    return needing


def stored_judgements(evaluation: dict[str, Any] | None) -> dict[str, Judgement]:
    """The judge answers recorded in a stored evaluation, by request key."""
    answers: dict[str, Judgement] = {}
    section = (evaluation or {}).get("tool_calls") or {}
    for item in section.get("judgements") or ():
        answer = item.get("answer")
        if isinstance(answer, dict):
            try:
                answers[item["key"]] = Judgement.from_dict(answer)
            except (KeyError, TypeError, ValueError):
                continue
    return answers


def evaluate_bundle(
    bundle: ResultBundle,
    now: datetime,
    *,
    judgements: dict[str, Judgement] | None = None,
    judge: str | None = None,
    unjudged: str = NO_JUDGEMENT,
) -> dict[str, Any]:
    """Run the tool-call evaluation of a result; the dict stored on it.

    Enrichment that never arrived is reported as such: the tool-call section
    says ``"not evaluated: enrichment missing"`` and ``passed`` is ``None``,
    never a verdict computed from an empty list of calls.

    ``judgements`` answer the judged checks (see
    :meth:`roost.platform.judges.JudgeDriver.judgements_for`); ``judge`` names
    the judge that gave them and ``unjudged`` says why a judged check without
    an answer was not judged. Both are recorded in the evaluation.
    """
    enrichment = bundle.result.enrichment_state
    evaluation: dict[str, Any] = {
        "engine": "roost",
        "evaluated_at": now.isoformat(),
        "enrichment": enrichment,
    }
    if enrichment != EnrichmentState.RECEIVED:
        evaluation.update(
            passed=None,
            score=None,
            tool_calls={
                "evaluated": False,
                "reason": "not evaluated: enrichment missing"
                if enrichment == EnrichmentState.MISSING
                else "not evaluated: enrichment not received yet",
            },
        )
        return evaluation
    try:
        spec = ToolExpectations.from_digital_human(bundle.digital_human)
    except ExpectationError as exc:
        # Specs are validated when the digital human is created; this guards
        # against data written by an older Roost with looser rules.
        evaluation.update(
            passed=None,
            score=None,
            tool_calls={
                "evaluated": False,
                "reason": f"not evaluated: invalid expectations: {exc}",
            },
        )
        return evaluation
    actual = [ActualToolCall.from_dict(call) for call in bundle.tool_calls]
    report = evaluate(spec, actual, bundle.events, judgements=judgements, unjudged=unjudged)
    evaluation.update(
        passed=report.passed,
        score=report.score,
        tool_calls={"evaluated": True, **report.to_dict()},
    )
    if spec.uses_judge:
        evaluation["judge"] = judge
        evaluation["judgements_pending"] = len(report.pending_judgements)
    return evaluation


def _groups(bundle: ResultBundle) -> list[dict[str, Any]]:
    """Bluejay ``ToolCallComparisonGroup`` list for the current data."""
    try:
        spec = ToolExpectations.from_digital_human(bundle.digital_human)
    except ExpectationError:
        spec = ToolExpectations()
    actual = [ActualToolCall.from_dict(call) for call in bundle.tool_calls]
    # Judged checks reuse the answers of the stored evaluation: the response
    # must agree with it, and reading a result must never call a model.
    answers = stored_judgements(bundle.result.evaluation)
    groups = evaluate(spec, actual, bundle.events, judgements=answers).groups
    descriptions = [call["description"] for call in bundle.tool_calls]
    for group in groups:
        for item in group["actual"]:
            index = item.get("index")
            if isinstance(index, int) and descriptions[index] is not None:
                item["description"] = descriptions[index]
    return groups


def bluejay_evaluation(bundle: ResultBundle) -> dict[str, Any] | None:
    """The stored evaluation as a Bluejay ``Evaluation`` object (or None).

    Roost judges tool calls and events, not speech: the speech metrics stay
    null. ``custom_metrics`` has one entry for the tool-call evaluation as a
    whole and one per verdict; ``custom_evals`` is the full Roost report.
    """
    result = bundle.result
    evaluation = result.evaluation
    if evaluation is None or result.evaluated_at is None:
        return None
    section = evaluation.get("tool_calls", {})
    passed = evaluation.get("passed")
    overall = "not_evaluated" if passed is None else ("pass" if passed else "fail")
    reasoning = section.get("reason") or (
        "all tool-call checks passed"
        if passed
        else "; ".join(
            verdict["reason"] for verdict in section.get("verdicts", []) if not verdict["passed"]
        )
    )
    metrics = [
        {
            "name": "tool_calls",
            "description": "Roost tool-call evaluation (expected vs actual tool calls and events)",
            "response_type": "enum",
            "response_value": overall,
            "reasoning": reasoning,
            "enum_options": ["pass", "fail", "not_evaluated"],
            "category": "roost",
        }
    ]
    for verdict in section.get("verdicts", []):
        subject = verdict.get("subject")
        metrics.append(
            {
                "name": f"{verdict['check']}:{subject}" if subject else verdict["check"],
                "description": f"Roost check {verdict['check']}",
                "response_type": "boolean",
                "response_value": "true" if verdict["passed"] else "false",
                "reasoning": verdict["reason"],
                "min_value": 0.0,
                "max_value": 1.0,
                "category": "roost",
            }
        )
    score = evaluation.get("score")
    agent_turns = sum(1 for entry in bundle.transcript if entry["speaker"] == "AGENT")
    return {
        "id": f"roost-{result.id}-{result.evaluation_count}",
        "created_at": result.evaluated_at,
        "agent_speak_percentage": None,
        "avg_agent_latency": None,
        "num_turns": agent_turns if bundle.transcript else None,
        "custom_evals": evaluation,
        "custom_evals_success_rate": None if score is None else round(score * 100, 2),
        "custom_metrics": metrics,
    }


def _duration_ms(result: SimulationResult) -> int | None:
    if result.start_time is None or result.end_time is None:
        return None
    return max(0, round((result.end_time - result.start_time).total_seconds() * 1000))


def result_response(bundle: ResultBundle) -> dict[str, Any]:
    """Bluejay ``SimulationResultResponse`` (plus the ``roost`` object)."""
    result = bundle.result
    evaluation = bluejay_evaluation(bundle)
    return {
        "id": result.id,
        "digital_human_id": result.digital_human_id,
        "result": None,
        "duration": _duration_ms(result),
        "start_time": result.start_time,
        "end_time": result.end_time,
        "custom_metrics": None,
        "status": result.status,
        "latency": None,
        "events": [dict(event) for event in bundle.events],
        "transcript_url": None,
        "audio_url": None,
        "evaluations": [evaluation] if evaluation is not None else [],
        "tool_calls": _groups(bundle),
        "trace_ids": bundle.trace_ids,
        "roost": {
            "run_id": result.run_id,
            "enrichment": {
                "state": result.enrichment_state,
                "batches": result.batch_count,
                "first_received_at": result.first_enrichment_at,
                "last_received_at": result.last_enrichment_at,
                "tool_call_count": len(bundle.tool_calls),
            },
            "error_code": result.error_code,
            "evaluation": result.evaluation,
            "evaluation_stale": result.evaluation_stale,
            "tags": bundle.tags,
            "metadata": bundle.metadata,
            "recorded_transcript": bundle.transcript,
        },
    }


def webhook_tool_calls(bundle: ResultBundle) -> list[dict[str, Any]]:
    """The result's tool calls as Bluejay ``ToolCall`` objects (webhook bodies)."""
    calls = []
    for call in bundle.tool_calls:
        item = {key: value for key, value in call.items() if value is not None}
        item.setdefault("start_offset_ms", call["start_offset_ms"])
        calls.append(item)
    return calls


def run_counters(statuses_and_passed: Sequence[tuple[str, bool | None]]) -> dict[str, int]:
    """Bluejay's run counters from ``(status, evaluation passed)`` pairs."""
    completed = sum(1 for status, _ in statuses_and_passed if status == ResultStatus.COMPLETED)
    incompleted = sum(
        1
        for status, _ in statuses_and_passed
        if status
        in (ResultStatus.INCOMPLETED, ResultStatus.REJECTED, ResultStatus.INSUFFICIENT_FUNDS)
    )
    return {
        "total_tests": len(statuses_and_passed),
        "tests_passed": sum(1 for _, passed in statuses_and_passed if passed is True),
        "tests_failed": sum(1 for _, passed in statuses_and_passed if passed is False),
        "tests_completed": completed,
        "tests_incompleted": incompleted,
    }
