"""The offline semantic judge on the real model's numbers.

The pairs below are the ones :mod:`roost.platform.judges.semantic` quotes:
its docstring's ranges are checked here against what the encoder computes, so
the documentation cannot drift from the model.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from roost.platform.evaluation import ActualToolCall, ToolExpectations, evaluate
from roost.platform.evaluation.judging import JudgementRequest
from roost.platform.judges import JudgeDriver, minilm, semantic
from roost.platform.judges.minilm import MiniLMEncoder
from roost.platform.judges.semantic import DEFAULT_THRESHOLD, SemanticJudge, numbers
from tests.platform.judges.conftest import needs_model

pytestmark = needs_model

# Call-centre paraphrases: the same request or fact in other words.
PARAPHRASES = [
    ("Your refund has been processed.", "We have issued your refund."),
    ("I want to cancel my subscription.", "Please end my membership."),
    ("The package will arrive tomorrow.", "Your parcel is being delivered tomorrow."),
    ("transfer me to a human agent", "can I speak to a real person?"),
    ("What time do you open on Saturday?", "When are you open on Saturdays?"),
    (
        "I'd like to book a table for two at 7 pm.",
        "A reservation for two people at seven in the evening.",
    ),
    ("My card was charged twice.", "I was billed two times for the same order."),
    ("Please update my delivery address.", "I need to change the address you ship to."),
    (
        "The caller wants to reschedule the appointment.",
        "The customer asked to move their appointment to another day.",
    ),
    (
        "I forgot my password and can't log in.",
        "I'm locked out because I don't remember my password.",
    ),
    ("The flight has been delayed by two hours.", "Your flight is now leaving two hours late."),
    (
        "Customer reports the internet is not working.",
        "The caller says their broadband connection is down.",
    ),
]
# The same openings beside sentences about something else.
UNRELATED = [
    ("Your refund has been processed.", "The weather will be sunny this weekend."),
    ("I want to cancel my subscription.", "The museum closes at five."),
    ("Please update my delivery address.", "My dog loves to play fetch."),
    ("I'd like to book a table for two at 7 pm.", "The printer is out of toner."),
    ("My card was charged twice.", "Photosynthesis happens in chloroplasts."),
    ("What time do you open on Saturday?", "Add extra cheese to the pizza."),
    ("The flight has been delayed by two hours.", "Tomatoes grow best in full sun."),
    ("I forgot my password and can't log in.", "The river flooded the village last spring."),
    ("transfer me to a human agent", "Quarterly revenue rose by eight percent."),
    ("Customer reports the internet is not working.", "She plays the violin in an orchestra."),
]
# Same topic, opposite facts: what similarity cannot see.
CONTRADICTIONS = [
    ("payment succeeded", "payment failed"),
    ("a table for four on Friday", "a table for two on Monday"),
    ("The refund was approved.", "The refund was denied."),
]
# The loose paraphrases the docstring names as scoring under the default.
BELOW_DEFAULT = {PARAPHRASES[3], PARAPHRASES[5]}


def similarities(encoder: MiniLMEncoder, pairs: list[tuple[str, str]]) -> list[float]:
    vectors = encoder.encode([text for pair in pairs for text in pair])
    return [float(vectors[2 * i] @ vectors[2 * i + 1]) for i in range(len(pairs))]


def span(values: list[float]) -> str:
    """``lo..hi`` as the docstring writes it (two decimals)."""
    return f"{min(values):.2f}..{max(values):.2f}"


@pytest.fixture(scope="module")
def judge(encoder: MiniLMEncoder) -> SemanticJudge:
    return SemanticJudge(encoder=encoder)


def request(expected: object, actual: object, threshold: float | None = None) -> JudgementRequest:
    return JudgementRequest("judge", "has the same meaning", expected, actual, threshold)


def test_the_documented_ranges_are_what_the_model_measures(encoder: MiniLMEncoder) -> None:
    doc = " ".join((semantic.__doc__ or "").split())
    assert (len(PARAPHRASES), len(UNRELATED)) == (12, 10)
    paraphrase = similarities(encoder, PARAPHRASES)
    unrelated = similarities(encoder, UNRELATED)
    contradiction = similarities(encoder, CONTRADICTIONS)
    assert f"unrelated pairs score {span(unrelated)}" in doc
    assert f"the paraphrases {span(paraphrase)}" in doc
    assert f"contradictions there score {span(contradiction)}" in doc
    # The default separates the two sets as the docstring says: every
    # unrelated pair fails, 10 of 12 paraphrases pass, the named two do not.
    assert max(unrelated) < DEFAULT_THRESHOLD
    below = {pair for pair, score in zip(PARAPHRASES, paraphrase, strict=True) if score < 0.55}
    assert below == BELOW_DEFAULT
    assert "10 of the 12 reach 0.55" in doc
    for (first, second), score in zip(PARAPHRASES, paraphrase, strict=True):
        if (first, second) in BELOW_DEFAULT:
            assert f'"{first}" / "{second}" {score:.2f}' in doc
    assert min(contradiction) >= DEFAULT_THRESHOLD


def test_the_platform_guide_quotes_the_same_ranges(encoder: MiniLMEncoder) -> None:
    guide = (Path(__file__).parents[3] / "docs" / "PLATFORM.md").read_text(encoding="utf-8")
    for label, pairs in (
        ("12 paraphrases", PARAPHRASES),
        ("10 unrelated sentences", UNRELATED),
        ("3 contradictions", CONTRADICTIONS),
    ):
        low, high = span(similarities(encoder, pairs)).split("..")
        assert re.search(rf"\| {label}[^|]* \| {low} \.\. {high} \|", guide), label


def test_the_documented_confusions_are_what_the_model_measures(encoder: MiniLMEncoder) -> None:
    doc = " ".join((semantic.__doc__ or "").split())
    quoted = re.findall(r'"([^"]+)" / "([^"]+)" (-?\d\.\d\d)', doc)
    assert len(quoted) >= 8
    measured = similarities(encoder, [(first, second) for first, second, _ in quoted])
    for (first, second, written), score in zip(quoted, measured, strict=True):
        assert f"{score:.2f}" == written, (first, second, score)


async def test_a_paraphrase_passes_and_says_how_it_was_decided(judge: SemanticJudge) -> None:
    answer = await judge.judge(request(*PARAPHRASES[0]))
    assert answer.passed is True
    assert answer.score == pytest.approx(0.83, abs=0.005)
    assert answer.judge == "semantic:all-MiniLM-L6-v2"
    assert answer.reason == (
        "cosine similarity to the expected value 0.83 >= 0.55 "
        "(similar meaning, not a check of facts)"
    )


@pytest.mark.parametrize("pair", UNRELATED[:3], ids=["weather", "museum", "dog"])
async def test_an_unrelated_sentence_fails(judge: SemanticJudge, pair: tuple[str, str]) -> None:
    answer = await judge.judge(request(*pair))
    assert answer.passed is False
    assert answer.score is not None and answer.score < DEFAULT_THRESHOLD
    assert " < 0.55 " in answer.reason


async def test_the_requests_threshold_overrides_the_default(
    judge: SemanticJudge, encoder: MiniLMEncoder
) -> None:
    # 0.25 under the default of 0.55: fails by default, passes at 0.2.
    loose = PARAPHRASES[3]
    assert (await judge.judge(request(*loose))).passed is False
    assert (await judge.judge(request(*loose, threshold=0.2))).passed is True
    # 0.83: passes by default, fails at 0.9.
    tight = await judge.judge(request(*PARAPHRASES[0], threshold=0.9))
    assert tight.passed is False
    assert "0.83 < 0.9 " in tight.reason
    # The judge's own default is a constructor argument.
    strict = SemanticJudge(threshold=0.9, encoder=encoder)
    assert (await strict.judge(request(*PARAPHRASES[0]))).passed is False


async def test_without_an_expected_value_the_criterion_is_the_reference(
    judge: SemanticJudge,
) -> None:
    answer = await judge.judge(
        JudgementRequest("judge", "the caller wants a refund", None, "I would like my money back")
    )
    assert answer.passed is not None
    assert answer.reason.startswith("cosine similarity to the criterion ")
    # The criterion describes a value and holds none of its numbers: no
    # number check against it.
    dated = await judge.judge(
        JudgementRequest("judge", "a delivery date", None, "delivery on 2026-03-14")
    )
    assert "cosine similarity to the criterion" in dated.reason


@pytest.mark.parametrize("expected", ["2026-01-02", None], ids=["with-reference", "no-reference"])
async def test_fallback_questions_are_declined_with_the_reason(
    judge: SemanticJudge, expected: str | None
) -> None:
    answer = await judge.judge(
        JudgementRequest("fallback", "parameters.date should be ...", expected, "January 2nd")
    )
    assert answer.passed is None
    assert answer.score is None
    assert "does not answer judge_fallback questions" in answer.reason
    assert "ROOST_JUDGE=openai" in answer.reason


async def test_different_numbers_fail_even_when_the_texts_look_alike(
    judge: SemanticJudge, encoder: MiniLMEncoder
) -> None:
    # Same tokens in another order: similarity cannot tell these dates apart.
    assert similarities(encoder, [("2026-01-02", "2026-02-01")])[0] > 0.99
    swapped = await judge.judge(request("2026-01-02", "2026-02-01"))
    assert (swapped.passed, swapped.score) == (False, None)
    assert swapped.reason.startswith(
        "the values hold different numbers (2026, 1, 2 expected, 2026, 2, 1 given)"
    )
    hour = await judge.judge(request("a table for 2 at 7 pm", "a table for 2 at 8 pm"))
    assert hour.passed is False
    # A number written in words is a different number to this check: refused.
    words = await judge.judge(request(*PARAPHRASES[5]))
    assert words.reason.startswith("the values hold different numbers (7 expected, none given)")
    # Leading zeros and the words around the numbers do not matter...
    kept = await judge.judge(request("table for 2 at 07:30", "a table for 2 people at 7:30"))
    assert kept.score is not None and kept.passed is True
    # ...their order does.
    moved = await judge.judge(request("order 0042 for 2 people", "2 people, order number 42"))
    assert moved.reason.startswith("the values hold different numbers (42, 2 expected")


def test_numbers_are_digit_runs_in_order_without_leading_zeros() -> None:
    assert numbers("07:30 on 2026-03-14, room 000") == ["7", "30", "2026", "3", "14", "0"]
    assert numbers("") == []
    assert numbers("9" * 5000) == ["9" * 5000]


async def test_scores_are_clamped_to_zero_and_one(judge: SemanticJudge) -> None:
    negative = UNRELATED[8]
    answer = await judge.judge(request(*negative))
    assert answer.passed is False
    assert answer.score == 0.0
    assert "-0.10 < 0.55" in answer.reason
    same = await judge.judge(request("Please hold the line.", "Please hold the line."))
    assert same.passed is True
    assert same.score is not None and 0.999 <= same.score <= 1.0


async def test_json_values_are_compared_as_json_text(judge: SemanticJudge) -> None:
    answer = await judge.judge(
        request({"seat": "window", "meal": "vegetarian"}, {"meal": "vegetarian", "seat": "window"})
    )
    assert answer.passed is True
    assert answer.score == pytest.approx(1.0, abs=1e-5)


async def test_a_missing_model_is_a_failed_judgement_not_an_exception(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(minilm, "PACKAGE", "roost_test_no_such_model_package")
    answer = await SemanticJudge().judge(request("a", "b"))
    assert answer.passed is None
    assert "model is not installed" in answer.reason


async def test_the_semantic_judge_decides_an_engine_check_end_to_end(
    judge: SemanticJudge,
) -> None:
    spec = ToolExpectations.from_digital_human(
        {
            "expected_tool_calls": [
                {
                    "name": "log_issue",
                    "parameters": {"summary": "The customer was charged twice for one order."},
                    "match": {"summary": "judge"},
                }
            ]
        }
    )
    good = [
        ActualToolCall(
            "log_issue", 10, parameters={"summary": "Caller says they were billed two times."}
        )
    ]
    bad = [ActualToolCall("log_issue", 10, parameters={"summary": "Wants to change address."})]
    driver = JudgeDriver(judge)
    for calls, passed in ((good, True), (bad, False)):
        answers = await driver.judgements_for(spec, calls)
        report = evaluate(spec, calls, judgements=answers)
        assert report.passed is passed
        assert "by semantic:all-MiniLM-L6-v2 (score 0." in report.verdicts[0].reason
    assert driver.asked == 2
    assert np.isfinite(report.score)
