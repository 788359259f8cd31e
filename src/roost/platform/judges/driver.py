"""The I/O side of model-judged checks: ask a judge, cache, bound, time out.

The evaluation engine is pure: it lists judgement requests and reads answers
(:mod:`roost.platform.evaluation.judging`). :class:`JudgeDriver` answers them
with a configured judge:

- answers are cached by (judge, request key), so re-evaluating a result, or
  another result with the same question, does not ask again; only definite
  answers are cached, so a timeout is retried next time;
- at most ``concurrency`` questions are in flight at once, across results;
- each question has ``timeout`` seconds; a judge that takes longer, raises or
  answers garbage yields a failed :class:`~.judging.Judgement` whose reason
  says so, and the check fails with that reason.

:meth:`JudgeDriver.judgements_for` runs the engine until nothing is pending
(at most :data:`MAX_ROUNDS` runs, see :mod:`roost.platform.evaluation.engine`)
and returns the answers to pass to the final, pure evaluation.

Example:
    >>> import asyncio
    >>> from roost.platform.evaluation import ActualToolCall, ToolExpectations, evaluate
    >>> class Always:
    ...     name = "always:yes"
    ...     async def judge(self, request):
    ...         return Judgement(True, 1.0, "looks right", self.name)
    ...     async def aclose(self):
    ...         pass
    >>> spec = ToolExpectations.from_digital_human({"expected_tool_calls": [
    ...     {"name": "note", "match": {"text": {"judge": "a polite greeting"}}}]})
    >>> calls = [ActualToolCall("note", 10, parameters={"text": "Hello there!"})]
    >>> answers = asyncio.run(JudgeDriver(Always()).judgements_for(spec, calls))
    >>> evaluate(spec, calls, judgements=answers).passed
    True
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Protocol

from roost.platform.evaluation import ActualToolCall, ToolExpectations, evaluate
from roost.platform.evaluation.judging import Judgement, JudgementRequest

__all__ = ["MAX_ROUNDS", "Judge", "JudgeDriver"]

log = logging.getLogger(__name__)

MAX_ROUNDS: Final = 3


class Judge(Protocol):
    """Something that answers judgement requests (a model grader).

    ``judge`` should not raise: a judge that cannot decide returns
    :meth:`Judgement.failure` with the reason. The driver still guards
    against exceptions and timeouts.
    """

    name: str

    async def judge(self, request: JudgementRequest) -> Judgement:
        """Answer one request."""
        ...

    async def aclose(self) -> None:
        """Release connections or models."""
        ...


class JudgeDriver:
    """A judge with a cache, bounded concurrency and a per-question timeout.

    Args:
        judge: The model grader.
        timeout: Seconds one question may take.
        concurrency: Questions in flight at once.
        cache_size: Answers kept (least recently used are dropped first).
    """

    def __init__(
        self,
        judge: Judge,
        *,
        timeout: float = 30.0,
        concurrency: int = 4,
        cache_size: int = 4096,
    ) -> None:
        if timeout <= 0 or concurrency < 1 or cache_size < 0:
            raise ValueError("timeout must be > 0, concurrency >= 1 and cache_size >= 0")
        self.judge = judge
        self.timeout = timeout
        self.cache_size = cache_size
        self._cache: OrderedDict[str, Judgement] = OrderedDict()
        self._slots = asyncio.Semaphore(concurrency)
        self.asked = 0
        """Questions actually sent to the judge (cache misses), for tests and logs."""

    @property
    def name(self) -> str:
        """The judge's name (``semantic:all-MiniLM-L6-v2``, ``openai:MODEL``...)."""
        return self.judge.name

    async def _ask(self, request: JudgementRequest) -> Judgement:
        async with self._slots:
            self.asked += 1
            try:
                async with asyncio.timeout(self.timeout):
                    # Typed loosely on purpose: a third-party judge may break the protocol.
                    answer: object = await self.judge.judge(request)
            except TimeoutError:
                return Judgement.failure(f"timed out after {self.timeout:g} s", self.name)
            except Exception as exc:  # a judge bug must not stop an evaluation
                log.exception("judge %s failed on %s", self.name, request.key)
                return Judgement.failure(f"the judge failed: {type(exc).__name__}", self.name)
        if not isinstance(answer, Judgement):
            return Judgement.failure("the judge returned no judgement", self.name)
        return answer

    async def resolve(self, requests: Iterable[JudgementRequest]) -> dict[str, Judgement]:
        """Answers to ``requests`` by key, from the cache or the judge."""
        answers: dict[str, Judgement] = {}
        todo: dict[str, JudgementRequest] = {}
        for request in requests:
            key = request.key
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                answers[key] = cached
            else:
                todo.setdefault(key, request)
        if todo:
            results = await asyncio.gather(*(self._ask(r) for r in todo.values()))
            for key, answer in zip(todo, results, strict=True):
                answers[key] = answer
                if answer.passed is not None and self.cache_size:
                    self._cache[key] = answer
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return answers

    async def judgements_for(
        self,
        spec: ToolExpectations,
        actual: Sequence[ActualToolCall],
        events: Sequence[Mapping[str, Any]] = (),
    ) -> dict[str, Judgement]:
        """Every answer the evaluation of these calls needs.

        Runs the pure engine (in a worker thread: scoring can take a few
        milliseconds) until it asks nothing new, at most :data:`MAX_ROUNDS`
        times; a request still pending then is left unanswered (its check
        fails as "not judged").
        """
        answers: dict[str, Judgement] = {}
        if not spec.uses_judge:
            return answers
        for _ in range(MAX_ROUNDS):
            report = await asyncio.to_thread(
                evaluate, spec, actual, events, judgements=dict(answers)
            )
            pending = report.pending_judgements
            if not pending:
                break
            answers.update(await self.resolve(pending))
        return answers

    async def aclose(self) -> None:
        """Close the judge."""
        await self.judge.aclose()
