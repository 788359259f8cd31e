"""Pydantic models of runs, results and their responses.

They mirror Bluejay's ``SimulationRunRequest``, ``SimulationRunResponse``,
``SimulationResultResponse``, ``SimulationRunResultResponse``,
``ToolCallComparisonGroup`` and ``ReEvaluateSimulationResultResponse``. Roost
adds, as optional fields Bluejay clients ignore:

- on each actual tool call: ``call_id``, ``end_offset_ms``, ``duration_ms``,
  ``status``, ``error_type``, ``error_message`` and ``description``;
- on each result: a ``roost`` object with the enrichment state (pending,
  received, missing), the batches' tags, metadata and transcript, the error
  code of a failed call and Roost's evaluation verdicts.

The request body of update-simulation-result is not here: it is decoded by
msgspec on the hot path (:mod:`roost.platform.wire`).

Example:
    >>> UpdateSimulationResponse().status
    'success'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

__all__ = [
    "ActualToolCallDetail",
    "CallEndedRequest",
    "CallStartedRequest",
    "Evaluation",
    "ExpectedToolCallDetail",
    "ReEvaluateSimulationResultResponse",
    "ResultEvent",
    "RoostEnrichment",
    "RoostResultDetails",
    "SimulationResultResponse",
    "SimulationResultsResponse",
    "SimulationRunRequest",
    "SimulationRunResponse",
    "SimulationRunResultResponse",
    "SingleSimulationResultResponse",
    "ToolCallComparisonGroup",
    "TranscriptEntry",
    "UpdateSimulationResponse",
]


class SimulationRunRequest(BaseModel):
    """Body of ``POST /v1/queue-simulation-run``."""

    simulation_id: str
    prompt_id: UUID | None = None
    knowledge_base_id: UUID | None = None
    digital_human_ids: list[str] | None = None
    phone_number: str | None = None
    sip_uri: str | None = None
    livekit_agent_name: str | None = None
    livekit_metadata: dict[str, Any] | None = None
    pipecat_agent_name: str | None = None
    pipecat_agent_configuration: dict[str, Any] | None = None
    pipecat_room_properties: dict[str, Any] | None = None


class SimulationRunResponse(BaseModel):
    """200 body of ``POST /v1/queue-simulation-run``."""

    simulation_run_id: str
    simulation_result_ids: list[str]
    agent_id: str
    status: str = "success"


class UpdateSimulationResponse(BaseModel):
    """200 body of ``POST /v1/update-simulation-result``."""

    status: str = "success"
    message: str | None = None


class ResultEvent(BaseModel):
    """An event of a result (Bluejay's ``Event``)."""

    title: str
    start_offset_ms: int
    description: str | None = None
    end_offset_ms: int | None = None
    tags: list[str] | None = None
    metadata: dict[str, Any] | None = None


class ExpectedToolCallDetail(BaseModel):
    """One expected invocation in a comparison group."""

    parameters: dict[str, Any] | None = None
    output: Any | None = None


class ActualToolCallDetail(BaseModel):
    """One actual invocation in a comparison group, with Roost's extensions."""

    parameters: dict[str, Any] | None = None
    output: Any | None = None
    start_offset_ms: int | None = None
    description: str | None = None
    call_id: str | None = None
    end_offset_ms: int | None = None
    duration_ms: float | None = None
    status: str | None = None
    error_type: str | None = None
    error_message: str | None = None


class ToolCallComparisonGroup(BaseModel):
    """Expected vs actual calls of one tool name."""

    name: str
    expected: list[ExpectedToolCallDetail] = Field(default_factory=list)
    actual: list[ActualToolCallDetail] = Field(default_factory=list)


class CustomMetric(BaseModel):
    """A named check in an evaluation (Bluejay's ``CustomMetric``)."""

    name: str
    description: str
    response_type: str
    response_value: str
    reasoning: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    category: str | None = None
    tags: list[str] | None = None
    scoring_guidance: str | None = None
    enum_options: list[str] | None = None


class Evaluation(BaseModel):
    """Bluejay's ``Evaluation``; Roost fills the tool-call checks.

    Roost does not judge speech (no LLM judge), so the speech metrics are
    null; ``custom_metrics`` holds one entry per tool-call verdict and
    ``custom_evals`` the full report.
    """

    id: str
    created_at: datetime
    hallucination: bool | None = None
    hallucination_reasoning: str | None = None
    redundancy: bool | None = None
    redundancy_reasoning: str | None = None
    agent_speak_percentage: float | None
    avg_agent_latency: float | None
    num_turns: int | None = None
    call_summary: str | None = None
    custom_evals: list[Any] | dict[str, Any] | None = None
    custom_evals_success_rate: float | None = None
    goal_success: bool | None = None
    goal_reasoning: str | None = None
    pronunciation_score: float | None = None
    pronunciation_reasoning: str | None = None
    custom_metrics: list[CustomMetric] | None = None


class TranscriptEntry(BaseModel):
    """One entry of the agent's recorded transcript."""

    start_offset_ms: int
    end_offset_ms: int
    speaker: str
    utterance: str
    filler_utterance: bool | None = None


class RoostEnrichment(BaseModel):
    """What the agent has posted for a result."""

    state: Literal["pending", "received", "missing"] = Field(
        description="pending until the first batch; missing once the grace window "
        "after hang-up passed without one (the result is then never scored as "
        "if no tools were called)"
    )
    batches: int
    first_received_at: datetime | None = None
    last_received_at: datetime | None = None
    tool_call_count: int


class RoostResultDetails(BaseModel):
    """Roost's additions to a result (ignored by Bluejay clients)."""

    enrichment: RoostEnrichment
    error_code: str | None = None
    evaluation: dict[str, Any] | None = Field(
        default=None,
        description="Roost's evaluation: tool-call verdicts, score, and whether it is stale",
    )
    evaluation_stale: bool = False
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    recorded_transcript: list[TranscriptEntry] = Field(default_factory=list)
    run_id: int


class SimulationResultResponse(BaseModel):
    """One simulated call (Bluejay's ``SimulationResultResponse``)."""

    id: int
    digital_human_id: int
    result: dict[str, Any] | None = None
    duration: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    custom_metrics: dict[str, Any] | list[Any] | None = None
    status: str | None = None
    latency: dict[str, Any] | list[Any] | None = None
    events: list[ResultEvent] | None = None
    transcript_url: str | None = None
    audio_url: str | None = None
    evaluations: list[Evaluation] | None = None
    tool_calls: list[ToolCallComparisonGroup] | None = None
    trace_ids: list[str] | None = None
    roost: RoostResultDetails | None = None


class SingleSimulationResultResponse(BaseModel):
    """200 body of ``GET /v1/retrieve-simulation-result/{test_result_id}``."""

    simulation_result: SimulationResultResponse
    status: str = "200"


class SimulationRunResultResponse(BaseModel):
    """A run with its counters (Bluejay's ``SimulationRunResultResponse``)."""

    id: str
    simulation_id: str
    summary: str | None = None
    status: (
        Literal["INITIALIZING", "RUNNING", "COMPLETED", "INCOMPLETED", "INSUFFICIENT_FUNDS"] | None
    ) = None
    total_tests: int | None = None
    tests_passed: int | None = None
    tests_failed: int | None = None
    tests_completed: int | None = None
    tests_incompleted: int | None = None
    created_at: datetime


class SimulationResultsResponse(BaseModel):
    """200 body of ``GET /v1/retrieve-simulation-results/{simulation_run_id}``."""

    simulation_run: SimulationRunResultResponse
    simulation_results: list[SimulationResultResponse] | None = None
    status: str = "200"


class ReEvaluateSimulationResultResponse(BaseModel):
    """200 body of ``POST /v1/re-evaluate-simulation-result/{id}``."""

    status: str
    simulation_result_id: int
    message: str


class CallStartedRequest(BaseModel):
    """Roost: the caller connected (``started_at`` defaults to now)."""

    started_at: datetime | None = None


class CallEndedRequest(BaseModel):
    """Roost: the call ended.

    ``outcome`` ``completed`` moves the result to CONVERSATION_ENDED (then
    evaluation); the failure outcomes map to Bluejay's statuses:
    ``rejected`` to REJECTED, everything else to INCOMPLETED, with
    ``error_code`` (for example ``NO_ANSWER``, ``CALL_REJECTED``,
    ``BRIDGE_DISCONNECTED``) kept on the result.
    """

    ended_at: datetime | None = None
    outcome: Literal["completed", "no_answer", "rejected", "no_connection", "dropped", "failed"] = (
        "completed"
    )
    error_code: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$")
