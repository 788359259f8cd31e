"""JudgeDriver: cache, concurrency bound, timeouts, broken judges, convergence.

The judges here are small asyncio objects whose answers are scripted, so the
driver's own behaviour is what is tested; the engine it runs is the real one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from roost.platform.evaluation import ActualToolCall, ToolExpectations, evaluate
from roost.platform.evaluation.judging import Judgement, JudgementRequest
from roost.platform.judges import MAX_ROUNDS, JudgeDriver


def question(actual: Any, kind: str = "judge") -> JudgementRequest:
    return JudgementRequest(kind, "a greeting", None, actual)  # type: ignore[arg-type]


class Scripted:
    """Answers from ``verdicts`` (by actual value); records every question."""

    name = "scripted:v1"

    def __init__(self, verdicts: dict[Any, bool | None] | None = None) -> None:
        self.verdicts = verdicts or {}
        self.questions: list[JudgementRequest] = []
        self.closed = False

    async def judge(self, request: JudgementRequest) -> Judgement:
        self.questions.append(request)
        verdict = self.verdicts.get(request.actual, True)
        if verdict is None:
            return Judgement.failure("could not decide", self.name)
        return Judgement(verdict, 1.0 if verdict else 0.0, f"said {verdict}", self.name)

    async def aclose(self) -> None:
        self.closed = True


async def test_answers_are_cached_by_request_key() -> None:
    judge = Scripted()
    driver = JudgeDriver(judge)
    first = await driver.resolve([question("hi"), question("hello"), question("hi")])
    assert driver.asked == 2, "the duplicate in one batch is asked once"
    again = await driver.resolve([question("hello"), question("hi")])
    assert driver.asked == 2, "the second time comes from the cache"
    assert again == first
    assert set(first) == {question("hi").key, question("hello").key}
    # The context is not part of the key: the same question about another
    # tool shares the answer.
    moved = JudgementRequest("judge", "a greeting", None, "hi", context="other_tool text")
    await driver.resolve([moved])
    assert driver.asked == 2
    assert [q.actual for q in judge.questions] == ["hi", "hello"]


async def test_answers_that_are_not_verdicts_are_not_cached() -> None:
    judge = Scripted({"hi": None})
    driver = JudgeDriver(judge)
    [failed] = (await driver.resolve([question("hi")])).values()
    assert failed.passed is None
    judge.verdicts["hi"] = True
    [passed] = (await driver.resolve([question("hi")])).values()
    assert passed.passed is True
    assert driver.asked == 2
    await driver.resolve([question("hi")])
    assert driver.asked == 2


async def test_the_cache_drops_the_least_recently_used_answer() -> None:
    driver = JudgeDriver(Scripted(), cache_size=2)
    await driver.resolve([question("a"), question("b")])
    await driver.resolve([question("a")])  # "a" is now the most recent
    await driver.resolve([question("c")])  # evicts "b"
    assert driver.asked == 3
    await driver.resolve([question("a"), question("c")])
    assert driver.asked == 3
    await driver.resolve([question("b")])
    assert driver.asked == 4
    uncached = JudgeDriver(Scripted(), cache_size=0)
    await uncached.resolve([question("a")])
    await uncached.resolve([question("a")])
    assert uncached.asked == 2


class Gated:
    """Holds every question until ``gate`` opens; counts questions in flight."""

    name = "gated:v1"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0
        self.started = 0

    async def judge(self, request: JudgementRequest) -> Judgement:
        self.started += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await self.gate.wait()
        finally:
            self.in_flight -= 1
        return Judgement(True, 1.0, "ok", self.name)

    async def aclose(self) -> None:
        pass


async def test_no_more_than_concurrency_questions_are_in_flight() -> None:
    judge = Gated()
    driver = JudgeDriver(judge, concurrency=3)
    # Two resolves at once (two results being evaluated): the bound is the
    # driver's, across callers.
    first = asyncio.create_task(driver.resolve([question(i) for i in range(6)]))
    second = asyncio.create_task(driver.resolve([question(i) for i in range(6, 10)]))
    # Let every task run as far as it can while the gate is shut.
    for _ in range(100):
        await asyncio.sleep(0)
    assert (judge.started, judge.in_flight) == (3, 3)
    judge.gate.set()
    answers = {**await first, **await second}
    assert len(answers) == 10
    assert judge.most_in_flight == 3
    assert judge.started == driver.asked == 10


async def test_a_question_over_its_time_fails_with_the_reason_and_is_asked_again() -> None:
    judge = Gated()  # its gate never opens: every question hangs
    driver = JudgeDriver(judge, timeout=0.05)
    [answer] = (await driver.resolve([question("hi")])).values()
    assert answer == Judgement.failure("timed out after 0.05 s", "gated:v1")
    assert judge.in_flight == 0, "the hung question was cancelled"
    await driver.resolve([question("hi")])
    assert driver.asked == 2


class Broken:
    name = "broken:v1"

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    async def judge(self, request: JudgementRequest) -> Any:
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def aclose(self) -> None:
        pass


async def test_a_judge_that_raises_gives_a_failed_judgement_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    driver = JudgeDriver(Broken(RuntimeError("model exploded")))
    with caplog.at_level(logging.ERROR, logger="roost.platform.judges.driver"):
        [answer] = (await driver.resolve([question("hi")])).values()
    assert answer == Judgement.failure("the judge failed: RuntimeError", "broken:v1")
    assert "judge broken:v1 failed on" in caplog.text
    assert "model exploded" in caplog.text  # the traceback is logged, not shown to users


@pytest.mark.parametrize("bad", [None, {"passed": True}, "yes"], ids=["none", "dict", "str"])
async def test_a_judge_that_returns_no_judgement_gives_a_failed_judgement(bad: Any) -> None:
    driver = JudgeDriver(Broken(bad))
    [answer] = (await driver.resolve([question("hi")])).values()
    assert answer == Judgement.failure("the judge returned no judgement", "broken:v1")


@pytest.mark.parametrize(
    "options", [{"timeout": 0}, {"concurrency": 0}, {"cache_size": -1}], ids=str
)
def test_bad_limits_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="timeout must be > 0"):
        JudgeDriver(Scripted(), **options)


async def test_closing_the_driver_closes_the_judge() -> None:
    judge = Scripted()
    driver = JudgeDriver(judge)
    assert driver.name == "scripted:v1"
    await driver.aclose()
    assert judge.closed


# Two "note" entries competing for two calls. Before any answer the judged
# entry fails on both calls and the tie gives it the first call; the judge's
# answer then moves it to the second, which moves the fallback entry to the
# first call: a new fallback question, so three engine runs in all.
SPEC = ToolExpectations.from_digital_human(
    {
        "expected_tool_calls": [
            {"name": "note", "match": {"text": {"judge": "a greeting"}}},
            {"name": "note", "parameters": {"text": "bye"}, "judge_fallback": True},
        ]
    }
)
CALLS = [
    ActualToolCall("note", 10, parameters={"text": "see you later"}),
    ActualToolCall("note", 20, parameters={"text": "hello there"}),
]
VERDICTS: dict[Any, bool | None] = {"see you later": False, "hello there": True}


class ByKind(Scripted):
    """``judge`` questions from VERDICTS; fallbacks pass "see you later" only."""

    async def judge(self, request: JudgementRequest) -> Judgement:
        if request.kind == "fallback":
            self.questions.append(request)
            ok = request.actual == "see you later"
            return Judgement(ok, None, "same farewell" if ok else "not a farewell", self.name)
        return await super().judge(request)


async def test_judgements_for_converges_and_agrees_with_the_final_evaluation() -> None:
    judge = ByKind(VERDICTS)
    driver = JudgeDriver(judge)
    answers = await driver.judgements_for(SPEC, CALLS)
    asked = [(q.kind, q.actual) for q in judge.questions]
    assert asked == [
        ("judge", "see you later"),
        ("judge", "hello there"),
        ("fallback", "hello there"),  # asked in run 1, before the judge moved the entry
        ("fallback", "see you later"),
    ]
    assert MAX_ROUNDS == 3
    report = evaluate(SPEC, CALLS, judgements=answers)
    assert report.pending_judgements == []
    assert report.passed is True
    greeting, farewell = (verdict.reason for verdict in report.verdicts)
    assert greeting.startswith("note (expected #0): called at 20 ms")
    assert "judged by scripted:v1 (score 1.00): said True" in greeting
    assert farewell.startswith("note (expected #1): called at 10 ms")
    assert "passed by the judge fallback, judged by scripted:v1: same farewell" in farewell
    # Answering every question by hand, round after round, gives the same report.
    by_hand: dict[str, Judgement] = {}
    for _ in range(MAX_ROUNDS):
        for request in evaluate(SPEC, CALLS, judgements=by_hand).pending_judgements:
            by_hand[request.key] = await ByKind(VERDICTS).judge(request)
    assert evaluate(SPEC, CALLS, judgements=by_hand).to_dict() == report.to_dict()
    # A second evaluation of the same calls is answered from the cache.
    again = await driver.judgements_for(SPEC, CALLS)
    assert len(judge.questions) == 4
    assert evaluate(SPEC, CALLS, judgements=again).to_dict() == report.to_dict()


async def test_a_judge_that_cannot_decide_leaves_nothing_pending_and_fails_the_check() -> None:
    judge = ByKind({"see you later": None, "hello there": None})
    answers = await JudgeDriver(judge).judgements_for(SPEC, CALLS)
    report = evaluate(SPEC, CALLS, judgements=answers)
    assert report.pending_judgements == []
    assert report.passed is False
    assert "not judged (scripted:v1): could not decide" in report.verdicts[0].reason


async def test_a_spec_without_judged_checks_asks_nothing() -> None:
    judge = Scripted()
    spec = ToolExpectations.from_digital_human(
        {"expected_tool_calls": [{"name": "note", "parameters": {"text": "bye"}}]}
    )
    assert await JudgeDriver(judge).judgements_for(spec, CALLS) == {}
    assert judge.questions == []
