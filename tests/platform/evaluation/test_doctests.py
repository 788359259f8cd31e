"""The runnable examples in the evaluation package's docstrings stay true."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "roost.platform.evaluation",
    "roost.platform.evaluation.assignment",
    "roost.platform.evaluation.engine",
    "roost.platform.evaluation.errors",
    "roost.platform.evaluation.judging",
    "roost.platform.evaluation.matchers",
    "roost.platform.evaluation.paths",
    "roost.platform.evaluation.report",
    "roost.platform.evaluation.spec",
    "roost.platform.evaluation.values",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0, f"{name} has no runnable example"
    assert failures == 0
