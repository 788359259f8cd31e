"""Inputs and outputs of an evaluation: actual calls, verdicts, the report.

Example:
    >>> from roost.platform.evaluation.report import ActualToolCall
    >>> call = ActualToolCall.from_dict(
    ...     {"name": "lookup", "start_offset_ms": 1200, "end_offset_ms": 1450})
    >>> call.elapsed_ms
    250.0
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from roost.platform.evaluation.judging import Judgement, JudgementRequest
from roost.platform.evaluation.values import preview

__all__ = ["ActualToolCall", "EvaluationReport", "Verdict"]

CheckKind = Literal[
    "expected_call",
    "order",
    "before",
    "count",
    "forbidden",
    "max_duration",
    "no_extra_calls",
    "no_tool_errors",
    "event",
]

_EXTENSION_FIELDS = (
    "call_id",
    "end_offset_ms",
    "duration_ms",
    "status",
    "error_type",
    "error_message",
)


@dataclass(frozen=True, slots=True)
class ActualToolCall:
    """One tool call the agent reported (Bluejay ``ToolCall`` plus Roost fields).

    Example:
        >>> ActualToolCall("lookup", 1200, parameters={"id": 7}).parameters
        {'id': 7}
    """

    name: str
    start_offset_ms: int
    parameters: dict[str, Any] | None = None
    output: Any = None
    call_id: str | None = None
    end_offset_ms: int | None = None
    duration_ms: float | None = None
    status: str | None = None
    error_type: str | None = None
    error_message: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActualToolCall:
        """Build from a stored or posted tool call; unknown keys are ignored."""
        return cls(
            name=data["name"],
            start_offset_ms=data["start_offset_ms"],
            parameters=data.get("parameters"),
            output=data.get("output"),
            **{key: data.get(key) for key in _EXTENSION_FIELDS},
        )

    @property
    def elapsed_ms(self) -> float | None:
        """How long the call took: ``duration_ms``, else end minus start, else None."""
        if self.duration_ms is not None:
            return float(self.duration_ms)
        if self.end_offset_ms is not None:
            return float(self.end_offset_ms - self.start_offset_ms)
        return None

    def detail(self) -> dict[str, Any]:
        """Bluejay ``ActualToolCallDetail`` plus the Roost fields that are set."""
        out: dict[str, Any] = {
            "parameters": self.parameters,
            "output": self.output,
            "start_offset_ms": self.start_offset_ms,
        }
        for key in _EXTENSION_FIELDS:
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


@dataclass(frozen=True, slots=True)
class Verdict:
    """One judged rule, with a reason a person can act on.

    Attributes:
        check: Which rule (``expected_call``, ``order``, ``before``, ``count``,
            ``forbidden``, ``max_duration``, ``no_extra_calls``,
            ``no_tool_errors``, ``event``).
        passed: Whether the rule holds.
        score: Partial credit in [0, 1] (1.0 when passed).
        reason: One or two sentences: what was expected, what happened.
        subject: The tool, entry, event title or constraint concerned.
        expected_index: Position in ``expected_tool_calls``, if about one entry.
        actual_indices: Positions (in the order given to ``evaluate``) of the
            actual calls concerned.
        details: Machine-readable specifics (per-check outcomes, counts...).
    """

    check: CheckKind
    passed: bool
    score: float
    reason: str
    subject: str | None = None
    expected_index: int | None = None
    actual_indices: tuple[int, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "check": self.check,
            "passed": self.passed,
            "score": self.score,
            "reason": self.reason,
            "subject": self.subject,
            "expected_index": self.expected_index,
            "actual_indices": list(self.actual_indices),
            "details": self.details,
        }


@dataclass(frozen=True, slots=True)
class EvaluationReport:
    """Everything :func:`~.engine.evaluate` concluded.

    Attributes:
        groups: Bluejay ``ToolCallComparisonGroup`` objects (``name``,
            ``expected``, ``actual``) with Roost fields added to the items.
        passed: True when every verdict passed.
        score: Mean of the verdict scores (1.0 when there is no verdict).
        verdicts: Every rule judged, in spec order.
        warnings: Notes about the spec (ignored unknown keys).
        judgement_requests: Every question for a judge model the evaluation
            needed (``judge`` matchers, fallbacks), answered or not.
        judgements: The answers used, by request key.
    """

    groups: list[dict[str, Any]]
    passed: bool
    score: float
    verdicts: list[Verdict]
    warnings: list[str] = field(default_factory=list)
    judgement_requests: list[JudgementRequest] = field(default_factory=list)
    judgements: dict[str, Judgement] = field(default_factory=dict)

    VERSION: ClassVar[int] = 1
    """Bumped when the shape of :meth:`to_dict` changes."""

    @property
    def pending_judgements(self) -> list[JudgementRequest]:
        """Requests without an answer: what a driver must ask a judge."""
        return [r for r in self.judgement_requests if r.key not in self.judgements]

    def failures(self) -> list[Verdict]:
        """The verdicts that did not pass."""
        return [verdict for verdict in self.verdicts if not verdict.passed]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, for storage and the API."""
        return {
            "version": self.VERSION,
            "passed": self.passed,
            "score": self.score,
            "verdicts": [verdict.to_dict() for verdict in self.verdicts],
            "groups": self.groups,
            "warnings": list(self.warnings),
            "judgements": [self._judgement_dict(request) for request in self.judgement_requests],
        }

    def _judgement_dict(self, request: JudgementRequest) -> dict[str, Any]:
        # Values are previewed: the full ones are stored with the tool calls.
        answer = self.judgements.get(request.key)
        return {
            "key": request.key,
            "kind": request.kind,
            "context": request.context,
            "criterion": request.criterion,
            "expected": preview(request.expected, 200),
            "actual": preview(request.actual, 200),
            "threshold": request.threshold,
            "answer": None if answer is None else answer.to_dict(),
        }
