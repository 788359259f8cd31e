"""Tool-call evaluation: a pure engine (no I/O, no clock, no database).

It judges a simulation result's actual tool calls and business events against
the expectations of its digital human, and returns Bluejay's
``ToolCallComparisonGroup`` list plus Roost verdicts with reasons and partial
scores. Only the standard library is used, so it can run anywhere, including
in a worker thread, and the same inputs always give the same report.

- :mod:`.spec` documents the expectation format (a superset of Bluejay's
  ``expected_tool_calls``) and validates it;
- :mod:`.matchers` documents the value matchers;
- :mod:`.paths` documents the JSON path dialect;
- :mod:`.engine` documents how calls are assigned and how the score is computed;
- :mod:`.assignment` holds the optimal assignment and order algorithms.

Evaluate only results whose enrichment was received: a result whose agent
never posted its tool calls is "enrichment missing", not "called no tools".

Example:
    >>> from roost.platform.evaluation import ActualToolCall, ToolExpectations, evaluate
    >>> spec = ToolExpectations.from_digital_human({
    ...     "expected_tool_calls": [{"name": "book", "parameters": {"date": "2026-01-02"},
    ...                              "match": {"date": "date"}}],
    ...     "tool_call_rules": {"tools": [{"name": "transfer", "forbidden": True}]},
    ... })
    >>> report = evaluate(spec, [ActualToolCall("book", 4100,
    ...                                         parameters={"date": "2026-01-02T18:30:00"})])
    >>> report.passed, report.score, report.groups[0]["name"]
    (True, 1.0, 'book')
"""

from __future__ import annotations

from roost.platform.evaluation.engine import evaluate
from roost.platform.evaluation.errors import ExpectationError
from roost.platform.evaluation.matchers import OPERATORS, Matcher, Outcome, parse_matcher
from roost.platform.evaluation.paths import MISSING, JsonPath, PathSyntaxError, parse_path, resolve
from roost.platform.evaluation.report import ActualToolCall, EvaluationReport, Verdict
from roost.platform.evaluation.spec import (
    Check,
    EventRule,
    ExpectedCall,
    OrderConstraint,
    ToolExpectations,
    ToolRule,
    parse_expectations,
)

__all__ = [
    "MISSING",
    "OPERATORS",
    "ActualToolCall",
    "Check",
    "EvaluationReport",
    "EventRule",
    "ExpectationError",
    "ExpectedCall",
    "JsonPath",
    "Matcher",
    "OrderConstraint",
    "Outcome",
    "PathSyntaxError",
    "ToolExpectations",
    "ToolRule",
    "Verdict",
    "evaluate",
    "parse_expectations",
    "parse_matcher",
    "parse_path",
    "resolve",
]
