"""Every example in the SDK's docstrings runs as written, and every public name has one.

The per-module tests run their own module's examples too; this file is the one
place that lists the whole SDK, so a new module or a public name without an
example cannot slip in unnoticed.
"""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

import roost
from roost.delivery import service

SDK_MODULES = [
    "roost",
    "roost.schema",
    "roost.ids",
    "roost._idvalue",
    "roost._idcarriers",
    "roost._sipheaders",
    "roost.recorder",
    "roost.tools",
    "roost.handles",
    "roost.redaction",
    "roost.capture",
    "roost.snapshot",
    "roost.budget",
    "roost.payload",
]


@pytest.mark.parametrize("name", SDK_MODULES)
def test_examples_run(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # An example that ends a call with the default sink must not reach the
    # process-wide delivery of this test session.
    monkeypatch.setattr(service, "_default", None)
    monkeypatch.setenv("ROOST_OUTBOX_PATH", "/nonexistent/roost-doctest-must-not-write")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def _public_names() -> list[str]:
    names = [f"roost.{name}" for name in roost.__all__ if name != "__version__"]
    names += [f"roost.ids.{name}" for name in importlib.import_module("roost.ids").__all__]
    names += [
        f"roost.CallRecorder.{name}"
        for name, member in vars(roost.CallRecorder).items()
        if not name.startswith("_") and inspect.isfunction(member)
    ]
    # Constants (``__version__``, ``SCAN_LIMIT``...) document themselves.
    return sorted(name for name in set(names) if _is_api(_resolve(name)))


def _resolve(dotted: str) -> object:
    module_name, _, attribute = dotted.rpartition(".")
    if module_name == "roost.CallRecorder":
        return getattr(roost.CallRecorder, attribute)
    return getattr(importlib.import_module(module_name), attribute)


def _is_api(value: object) -> bool:
    return inspect.isclass(value) or callable(value)


@pytest.mark.parametrize("dotted", _public_names())
def test_public_names_carry_an_example(dotted: str) -> None:
    value = _resolve(dotted)
    assert ">>>" in (inspect.getdoc(value) or ""), f"{dotted} has no runnable example"
