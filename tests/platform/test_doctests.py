"""The runnable examples in the platform's docstrings stay true.

The evaluation and webhooks packages check their own examples.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "roost.platform",
    "roost.platform.api.common",
    "roost.platform.api.resources",
    "roost.platform.api.roost",
    "roost.platform.api.runs",
    "roost.platform.app",
    "roost.platform.auth",
    "roost.platform.ingest",
    "roost.platform.ingest_sql",
    "roost.platform.lifecycle",
    "roost.platform.middleware",
    "roost.platform.settings",
    "roost.platform.storage",
    "roost.platform.storage.base",
    "roost.platform.storage.database",
    "roost.platform.wire",
    "roost.cli.db",
    "roost.cli.keys",
    "roost.cli.serve",
    "roost.cli._platform",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    failures, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert attempted > 0, f"{name} has no runnable example"
    assert failures == 0
