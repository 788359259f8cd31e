"""Model-judged checks in the pure engine: judgements are plain data here.

No model is involved: the tests hand the engine answers keyed by request key
and check what it asks, how it decides and what it says.
"""

from __future__ import annotations

from typing import Any

import pytest

from roost.platform.evaluation import (
    ActualToolCall,
    ExpectationError,
    ToolExpectations,
    evaluate,
    parse_expectations,
)
from roost.platform.evaluation.judging import (
    MAX_JUDGE_MATCHERS,
    MAX_JUDGEMENTS,
    Judgement,
    JudgementRequest,
    canonical_json,
)

JUDGE = "test-judge:v1"


def spec_of(entries: list[dict[str, Any]], rules: dict[str, Any] | None = None) -> ToolExpectations:
    return parse_expectations(entries, rules)


def answer_all(
    spec: ToolExpectations, calls: list[ActualToolCall], verdict: bool, score: float = 0.9
) -> dict[str, Judgement]:
    """Answer every request (across rounds) with the same verdict."""
    answers: dict[str, Judgement] = {}
    for _ in range(3):
        pending = evaluate(spec, calls, judgements=answers).pending_judgements
        for request in pending:
            answers[request.key] = Judgement(verdict, score, f"said {verdict}", JUDGE)
    return answers


BOOK = [
    {
        "name": "book",
        "parameters": {"notes": "window seat"},
        "match": {"notes": {"judge": "asks for a seat by the window"}},
    }
]
CALL = [ActualToolCall("book", 100, parameters={"notes": "by the window please"})]


def test_request_keys_are_canonical_and_ignore_context() -> None:
    first = JudgementRequest("judge", "c", {"b": 1, "a": [1, 2]}, "x", 0.5, context="here")
    second = JudgementRequest("judge", "c", {"a": [1, 2], "b": 1}, "x", 0.5, context="there")
    assert first.key == second.key
    assert first.key != JudgementRequest("judge", "c", {"a": [1, 2], "b": 1}, "y", 0.5).key
    assert first.key != JudgementRequest("fallback", "c", {"a": [1, 2], "b": 1}, "x", 0.5).key
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'


def test_without_judgements_a_judged_check_fails_and_is_listed_as_pending() -> None:
    spec = spec_of(BOOK)
    assert spec.uses_judge
    report = evaluate(spec, CALL)
    assert not report.passed
    assert report.verdicts[0].reason.endswith(
        "parameters.notes: not judged: no judgement was supplied for it"
    )
    [request] = report.pending_judgements
    assert (request.kind, request.criterion, request.expected, request.actual) == (
        "judge",
        "asks for a seat by the window",
        "window seat",
        "by the window please",
    )
    assert request.context == "book parameters.notes"
    assert report.to_dict()["judgements"][0]["answer"] is None


def test_the_unjudged_reason_is_the_callers() -> None:
    report = evaluate(spec_of(BOOK), CALL, unjudged="no judge is configured (ROOST_JUDGE=off)")
    assert "not judged: no judge is configured (ROOST_JUDGE=off)" in report.verdicts[0].reason


@pytest.mark.parametrize("verdict", [True, False])
def test_a_judged_verdict_names_the_judge_and_its_reason(verdict: bool) -> None:
    spec = spec_of(BOOK)
    answers = answer_all(spec, CALL, verdict)
    report = evaluate(spec, CALL, judgements=answers)
    assert report.passed is verdict
    assert report.pending_judgements == []
    word = "passed" if verdict else "failed"
    assert report.verdicts[0].reason == (
        f"book (expected #0): called at 100 ms, {int(verdict)}/1 checks passed; "
        f"parameters.notes: {word}, judged by {JUDGE} (score 0.90): said {verdict}"
    )
    [check] = report.verdicts[0].details["checks"]
    assert check["judgement"] == next(iter(answers))
    assert report.to_dict()["judgements"][0]["answer"]["judge"] == JUDGE


def test_a_judge_that_could_not_decide_fails_the_check_with_its_reason() -> None:
    spec = spec_of(BOOK)
    key = evaluate(spec, CALL).pending_judgements[0].key
    failure = Judgement.failure("the judge timed out after 30 s", JUDGE)
    report = evaluate(spec, CALL, judgements={key: failure})
    assert not report.passed
    assert "not judged (test-judge:v1): the judge timed out after 30 s" in report.verdicts[0].reason
    assert report.pending_judgements == []


def test_threshold_applies_to_the_judges_score() -> None:
    entries = [
        {
            "name": "book",
            "parameters": {"notes": "window seat"},
            "match": {"notes": {"judge": "same request", "threshold": 0.8}},
        }
    ]
    spec = spec_of(entries)
    key = evaluate(spec, CALL).pending_judgements[0].key
    assert evaluate(spec, CALL).pending_judgements[0].threshold == 0.8
    low = evaluate(spec, CALL, judgements={key: Judgement(True, 0.7, "close", JUDGE)})
    high = evaluate(spec, CALL, judgements={key: Judgement(False, 0.85, "close", JUDGE)})
    assert not low.passed
    assert "failed, threshold 0.8" in low.verdicts[0].reason
    assert high.passed


def test_same_inputs_and_judgements_give_the_same_report() -> None:
    spec = spec_of(BOOK, {"judge_fallback": True})
    calls = [*CALL, ActualToolCall("book", 50, parameters={"notes": "aisle"})]
    answers = answer_all(spec, calls, True)
    first = evaluate(spec, calls, judgements=answers).to_dict()
    second = evaluate(spec, list(calls), judgements=dict(reversed(answers.items()))).to_dict()
    assert first == second


def test_judge_answers_steer_the_assignment() -> None:
    # Two candidate calls: the judge approves only the later one, which must be chosen.
    spec = spec_of(BOOK)
    calls = [
        ActualToolCall("book", 10, parameters={"notes": "aisle please"}),
        ActualToolCall("book", 20, parameters={"notes": "next to the window"}),
    ]
    requests = evaluate(spec, calls).pending_judgements
    assert [r.actual for r in requests] == ["aisle please", "next to the window"]
    answers = {
        r.key: Judgement(r.actual == "next to the window", None, "opinion", JUDGE) for r in requests
    }
    report = evaluate(spec, calls, judgements=answers)
    assert report.passed
    assert report.verdicts[0].actual_indices == (1,)


def test_fallback_passes_a_failed_check_when_the_judge_agrees_and_says_so() -> None:
    entries = [{"name": "book", "parameters": {"date": "2026-01-02"}, "judge_fallback": True}]
    calls = [ActualToolCall("book", 100, parameters={"date": "January 2nd, 2026"})]
    spec = spec_of(entries)
    [request] = evaluate(spec, calls).pending_judgements
    assert request.kind == "fallback"
    assert request.expected == "2026-01-02"
    assert request.actual == "January 2nd, 2026"
    assert request.criterion.startswith('parameters.date should be equal to "2026-01-02"')
    report = evaluate(
        spec, calls, judgements={request.key: Judgement(True, 0.75, "same day", JUDGE)}
    )
    assert report.passed
    assert report.verdicts[0].reason.endswith(
        'parameters.date: deterministic check failed (expected "2026-01-02", got '
        '"January 2nd, 2026"); passed by the judge fallback, judged by test-judge:v1 '
        "(score 0.75): same day"
    )
    refused = evaluate(spec, calls, judgements={request.key: Judgement(False, 0.2, "no", JUDGE)})
    assert not refused.passed
    assert "the judge fallback agreed, judged by test-judge:v1" in refused.verdicts[0].reason


def test_fallback_is_not_asked_about_passing_or_missing_values() -> None:
    entries = [{"name": "book", "parameters": {"a": 1, "b": 2, "c": 3}, "judge_fallback": True}]
    calls = [ActualToolCall("book", 100, parameters={"a": 1, "b": 5})]
    requests = evaluate(spec_of(entries), calls).pending_judgements
    assert [(r.expected, r.actual) for r in requests] == [(2, 5)]


def test_fallback_default_comes_from_the_rules_and_an_entry_can_opt_out() -> None:
    entries = [
        {"name": "a", "parameters": {"x": 1}},
        {"name": "b", "parameters": {"x": 1}, "judge_fallback": False},
    ]
    calls = [
        ActualToolCall("a", 1, parameters={"x": 2}),
        ActualToolCall("b", 2, parameters={"x": 2}),
    ]
    spec = spec_of(entries, {"judge_fallback": True})
    assert [spec.fallback_for(entry) for entry in spec.calls] == [True, False]
    assert [r.context for r in evaluate(spec, calls).pending_judgements] == ["a parameters.x"]
    assert not spec_of(entries).uses_judge


def test_a_spec_without_judged_checks_asks_nothing() -> None:
    spec = spec_of([{"name": "a", "parameters": {"x": 1}}])
    report = evaluate(spec, [ActualToolCall("a", 1, parameters={"x": 2})])
    assert report.judgement_requests == []
    assert report.to_dict()["judgements"] == []


def test_questions_over_the_per_evaluation_limit_fail_with_the_limit_named() -> None:
    entries = [{"name": "a", "match": {"v": {"judge": "a greeting"}}}]
    calls = [
        ActualToolCall("a", i, parameters={"v": f"hello {i}"}) for i in range(MAX_JUDGEMENTS + 6)
    ]
    spec = spec_of(entries)
    report = evaluate(spec, calls)
    assert len(report.judgement_requests) == MAX_JUDGEMENTS
    # Even if every asked question passes, a call beyond the limit cannot.
    answers = {r.key: Judgement(True, 1.0, "ok", JUDGE) for r in report.judgement_requests}
    full = evaluate(spec, calls, judgements=answers)
    assert full.passed  # the one entry took a call whose question was answered
    beyond = _engine(spec, calls, answers)._judge_pair(spec.calls[0], calls[-1])
    assert beyond.checks[0]["reason"] == (
        f"not judged: over the limit of {MAX_JUDGEMENTS} judge questions per evaluation"
    )


def _engine(
    spec: ToolExpectations, calls: list[ActualToolCall], answers: dict[str, Judgement]
) -> Any:
    from roost.platform.evaluation.engine import NO_JUDGEMENT, _Evaluation

    return _Evaluation(spec, calls, [], answers, NO_JUDGEMENT)


def test_a_spec_may_hold_a_bounded_number_of_judge_matchers() -> None:
    entries = [
        {"name": f"t{i}", "match": {"v": {"judge": "anything"}}} for i in range(MAX_JUDGE_MATCHERS)
    ]
    parse_expectations(entries)
    with pytest.raises(ExpectationError, match="at most 32 judge matchers"):
        parse_expectations([*entries, {"name": "more", "match": {"v": {"judge": "x"}}}])


@pytest.mark.parametrize(
    ("entries", "rules", "message"),
    [
        ([{"name": "a", "match": {"v": {"judge": ""}}}], None, "non-empty criterion"),
        ([{"name": "a", "match": {"v": {"judge": 3}}}], None, "non-empty criterion"),
        ([{"name": "a", "match": {"v": {"judge": "x" * 2001}}}], None, "at most 2000"),
        (
            [{"name": "a", "match": {"v": {"judge": "x", "threshold": 1.5}}}],
            None,
            "threshold: must be between 0 and 1",
        ),
        (
            [{"name": "a", "match": {"v": {"judge": "x", "treshold": 0.5}}}],
            None,
            "did you mean 'threshold'",
        ),
        ([{"name": "a", "match": {"v": {"judeg": "x"}}}], None, "did you mean 'judge'"),
        ([{"name": "a", "match": {"v": "judge"}}], None, "there is none"),
        ([{"name": "a", "judge_fallback": "yes"}], None, "judge_fallback: must be true or false"),
        (None, {"judge_fallback": 1}, "judge_fallback: must be true or false"),
        (None, {"judge_fallbak": True}, "did you mean 'judge_fallback'"),
        (
            None,
            {"events": [{"title": "x", "match": {"$.metadata.q": {"judge": "a queue"}}}]},
            "judge is not allowed in event rules",
        ),
    ],
)
def test_bad_judge_keys_are_refused_with_a_located_message(
    entries: Any, rules: Any, message: str
) -> None:
    with pytest.raises(ExpectationError, match=message.replace("(", r"\(")):
        parse_expectations(entries, rules)


def test_a_misspelt_entry_key_is_a_warning_with_a_suggestion() -> None:
    spec = parse_expectations([{"name": "a", "judge_falback": True}])
    assert spec.warnings == (
        "expected_tool_calls[0]: unknown key 'judge_falback' ignored "
        "(did you mean 'judge_fallback'?)",
    )
    assert not spec.uses_judge


def test_the_judge_shorthand_compares_with_the_parameter_value() -> None:
    spec = spec_of([{"name": "a", "parameters": {"v": "hello"}, "match": {"v": "judge"}}])
    [request] = evaluate(spec, [ActualToolCall("a", 1, parameters={"v": "hi"})]).pending_judgements
    assert (request.criterion, request.expected) == (
        "has the same meaning as the expected value",
        "hello",
    )


def test_explicit_expected_and_criterion_only_judges() -> None:
    spec = spec_of(
        [
            {
                "name": "a",
                "parameters": {"v": "ignored"},
                "match": {"v": {"judge": "a greeting", "expected": {"text": "hi"}}},
                "output_match": {"$.summary": {"judge": "summarises a refund"}},
            }
        ]
    )
    call = ActualToolCall("a", 1, parameters={"v": "hello"}, output={"summary": "refunded"})
    requests = evaluate(spec, [call]).pending_judgements
    assert [(r.expected, r.actual, r.context) for r in requests] == [
        ({"text": "hi"}, "hello", "a parameters.v"),
        (None, "refunded", "a output.summary"),
    ]


def test_a_missing_judged_value_fails_without_asking() -> None:
    spec = spec_of(BOOK)
    report = evaluate(spec, [ActualToolCall("book", 1, parameters={})])
    assert report.judgement_requests == []
    assert "parameters.notes: missing; expected judged" in report.verdicts[0].reason
