"""Model-judged checks as plain data: judgement requests and judgements.

The engine stays pure: it never calls a model. A check that needs a judge (a
``{"judge": ...}`` matcher, or a deterministic check that failed on an entry
with ``judge_fallback``) makes :func:`~.engine.evaluate` list a
:class:`JudgementRequest` in :attr:`~.report.EvaluationReport.judgement_requests`.
A driver (:mod:`roost.platform.judges`) answers the requests with a configured
judge and runs the engine again with the answers, keyed by
:attr:`JudgementRequest.key`. Same inputs and same judgements give the same
report.

A request is identified by the SHA-256 of its canonical JSON (sorted keys, no
whitespace, UTF-8), so it can be cached across results and processes: two
checks asking the same question about the same values share one answer.

A :class:`Judgement` whose ``passed`` is ``None`` records that the judge could
not decide (not configured, timed out, answered garbage); the check then
fails, and its reason says why, never passing silently.

Limits, so that a spec cannot make evaluation expensive: a spec may hold at
most :data:`MAX_JUDGE_MATCHERS` ``judge`` matchers, and one evaluation asks at
most :data:`MAX_JUDGEMENTS` distinct questions; checks beyond that fail with
a reason that names the limit.

Example:
    >>> request = JudgementRequest("fallback", "same meaning", "Paris", "paris, France")
    >>> len(request.key), request.key == JudgementRequest(
    ...     "fallback", "same meaning", "Paris", "paris, France").key
    (64, True)
    >>> Judgement(True, 0.93, "same city", "semantic:all-MiniLM-L6-v2").describe()
    'judged by semantic:all-MiniLM-L6-v2 (score 0.93): same city'
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "MAX_JUDGEMENTS",
    "MAX_JUDGE_MATCHERS",
    "MAX_JUDGE_TEXT",
    "Judgement",
    "JudgementRequest",
    "canonical_json",
]

MAX_JUDGE_MATCHERS: Final = 32
"""Most ``judge`` matchers one spec may hold."""
MAX_JUDGEMENTS: Final = 64
"""Most distinct judgement requests one evaluation makes."""
MAX_JUDGE_TEXT: Final = 2_000
"""Longest criterion a spec may give; values sent to a judge are cut to
:data:`MAX_VALUE_TEXT` characters of JSON (and the cut is said in the prompt)."""
MAX_VALUE_TEXT: Final = 4_000

RequestKind = Literal["judge", "fallback"]


def canonical_json(value: Any) -> str:
    """JSON text with sorted keys and no whitespace, the form requests hash.

    Example:
        >>> canonical_json({"b": [1, 2.5], "a": "é"})
        '{"a":"é","b":[1,2.5]}'
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=repr
    )


def value_text(value: Any) -> str:
    """How a value is shown to a judge: strings as they are, the rest as JSON."""
    text = value if isinstance(value, str) else canonical_json(value)
    if len(text) > MAX_VALUE_TEXT:
        return text[:MAX_VALUE_TEXT] + f"… [cut, {len(text)} characters in all]"
    return text


@dataclass(frozen=True, slots=True)
class JudgementRequest:
    """One question for a judge: does ``actual`` satisfy ``criterion``?

    Attributes:
        kind: ``"judge"`` (a ``judge`` matcher) or ``"fallback"`` (a
            deterministic check failed on an entry with ``judge_fallback``).
        criterion: What the value must be, in words.
        expected: The expected value, or ``None`` when the criterion alone
            says what is wanted.
        actual: The value the agent produced.
        threshold: A minimum score (0..1) the judge's score must reach, or
            ``None`` to take the judge's own pass/fail.
        context: Where the value comes from (``"lookup_order
            parameters.date"``), shown to the judge but not hashed, so the same
            question about two tools shares an answer.
    """

    kind: RequestKind
    criterion: str
    expected: Any
    actual: Any
    threshold: float | None = None
    context: str = field(default="", compare=False)

    @property
    def key(self) -> str:
        """SHA-256 (hex) of the canonical JSON of everything but ``context``."""
        body = canonical_json(
            {
                "kind": self.kind,
                "criterion": self.criterion,
                "expected": self.expected,
                "actual": self.actual,
                "threshold": self.threshold,
            }
        )
        return hashlib.sha256(body.encode("utf-8")).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for the report and for drivers in other processes)."""
        return {
            "key": self.key,
            "kind": self.kind,
            "criterion": self.criterion,
            "expected": self.expected,
            "actual": self.actual,
            "threshold": self.threshold,
            "context": self.context,
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    """A judge's answer to one :class:`JudgementRequest`.

    Attributes:
        passed: The judge's verdict, or ``None`` when it could not decide.
        score: Its score in [0, 1], if it gave one.
        reason: Its stated reason, or why it could not decide.
        judge: Which judge and model answered (``"openai:gpt-4o-mini"``...).
    """

    passed: bool | None
    score: float | None
    reason: str
    judge: str

    def __post_init__(self) -> None:
        if self.score is not None and not (math.isfinite(self.score) and 0 <= self.score <= 1):
            raise ValueError(f"a judgement score must be in [0, 1], not {self.score!r}")

    @classmethod
    def failure(cls, reason: str, judge: str) -> Judgement:
        """A judge that could not decide (the check fails with this reason)."""
        return cls(None, None, reason, judge)

    def verdict(self, threshold: float | None) -> bool | None:
        """Pass/fail under ``threshold`` (the score must reach it when both are set)."""
        if self.passed is None:
            return None
        if threshold is not None and self.score is not None:
            return self.score >= threshold
        return self.passed

    def describe(self) -> str:
        """``judged by NAME (score S): REASON`` or ``not judged (NAME): REASON``."""
        if self.passed is None:
            return f"not judged ({self.judge}): {self.reason}"
        score = "" if self.score is None else f" (score {self.score:.2f})"
        return f"judged by {self.judge}{score}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "passed": self.passed,
            "score": self.score,
            "reason": self.reason,
            "judge": self.judge,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Judgement:
        """Inverse of :meth:`to_dict`."""
        return cls(data["passed"], data.get("score"), str(data["reason"]), str(data["judge"]))
