"""The runnable examples in the judges package's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

from tests.platform.judges.conftest import needs_model

MODULES = [
    "roost.platform.judges",
    "roost.platform.judges.driver",
    "roost.platform.judges.openai",
    # Their examples load the real model.
    pytest.param("roost.platform.judges.minilm", marks=needs_model),
    pytest.param("roost.platform.judges.semantic", marks=needs_model),
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0, f"{name} has no runnable example"
    assert failures == 0
