"""Webhook events of the result lifecycle: Bluejay bodies and emission.

The lifecycle emits ``simulation_ended`` when a call reaches
CONVERSATION_ENDED and ``simulation_result_evaluated`` after each evaluation,
with the bodies of Bluejay's events webhook (§7.1 of the protocol notes). The
bodies are built here from storage; signing, endpoint matching and the durable
delivery queue belong to :mod:`roost.platform.webhooks`, whose ``emit``
enqueues a delivery inside the caller's transaction, so an event commits (or
not) together with the status change that caused it.

When the webhooks package is not installed in this build, :func:`emit` is a
no-op that reports ``False``.

Example:
    >>> from datetime import UTC, datetime
    >>> body = simulation_ended_body(
    ...     result_id=7, digital_human_id=3, simulation_run_id=2, status="CONVERSATION_ENDED",
    ...     created_at=datetime(2026, 1, 1, tzinfo=UTC), start_time=None, end_time=None)
    >>> body["type"], body["id"], body["duration"]
    ('simulation_ended', 7, None)
"""

from __future__ import annotations

import importlib
import importlib.util
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

__all__ = [
    "SIMULATION_ENDED",
    "SIMULATION_RESULT_EVALUATED",
    "emit",
    "simulation_ended_body",
    "simulation_result_evaluated_body",
]

SIMULATION_ENDED = "simulation_ended"
SIMULATION_RESULT_EVALUATED = "simulation_result_evaluated"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _duration(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return max(0, round((end - start).total_seconds() * 1000))


def simulation_ended_body(
    *,
    result_id: int,
    digital_human_id: int,
    simulation_run_id: int,
    status: str,
    created_at: datetime,
    start_time: datetime | None,
    end_time: datetime | None,
) -> dict[str, Any]:
    """Body of ``simulation_ended`` (fires before evaluation)."""
    return {
        "type": SIMULATION_ENDED,
        "id": result_id,
        "digital_human_id": digital_human_id,
        "status": status,
        "simulation_run_id": simulation_run_id,
        "created_at": _iso(created_at),
        "start_time": _iso(start_time),
        "end_time": _iso(end_time),
        "duration": _duration(start_time, end_time),
    }


def simulation_result_evaluated_body(
    *,
    result_id: int,
    digital_human_id: int,
    simulation_run_id: int,
    simulation_id: int,
    agent_id: int,
    status: str,
    evaluations: list[dict[str, Any]],
    events: list[dict[str, Any]],
    tool_calls: list[dict[str, Any]],
    tags: list[str],
    metadata: dict[str, Any],
    created_at: datetime,
    start_time: datetime | None,
    end_time: datetime | None,
    roost_evaluation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Body of ``simulation_result_evaluated``.

    ``tool_calls`` are Bluejay ``ToolCall`` objects (with Roost's optional
    fields), ``evaluations`` Bluejay ``Evaluation`` objects; ``roost`` carries
    Roost's own evaluation (verdicts, score, enrichment state), which Bluejay
    receivers ignore.
    """
    body: dict[str, Any] = {
        "type": SIMULATION_RESULT_EVALUATED,
        "id": result_id,
        "digital_human_id": digital_human_id,
        "status": status,
        "simulation_run_id": simulation_run_id,
        "simulation_id": simulation_id,
        "agent_id": agent_id,
        "folder_id": None,
        "evaluations": evaluations,
        "events": events,
        "tool_calls": tool_calls,
        "tags": tags,
        "metadata": metadata,
        "created_at": _iso(created_at),
        "start_time": _iso(start_time),
        "end_time": _iso(end_time),
        "duration": _duration(start_time, end_time),
    }
    if roost_evaluation is not None:
        body["roost"] = {"evaluation": roost_evaluation}
    return body


def _webhooks() -> Any | None:
    if importlib.util.find_spec("roost.platform.webhooks") is None:
        return None
    module = importlib.import_module("roost.platform.webhooks")
    return module if hasattr(module, "emit") else None


async def emit(session: AsyncSession, org_id: int, event_type: str, body: dict[str, Any]) -> bool:
    """Enqueue a webhook delivery in ``session``'s transaction.

    Returns:
        Whether the webhooks package took it (``False`` when not installed).
    """
    webhooks = _webhooks()
    if webhooks is None:
        return False
    await webhooks.emit(session, org_id, event_type, body)
    return True
