"""Every public example in roost.delivery (and `roost outbox`) runs as written."""

from __future__ import annotations

import doctest
import importlib
import os

import pytest

from roost.delivery import service

MODULES = [
    "roost.delivery",
    "roost.delivery.config",
    "roost.delivery.policy",
    "roost.delivery.outbox",
    "roost.delivery.sender",
    "roost.delivery.service",
    "roost.cli.outbox",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples_run(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default_delivery example sets ROOST_OUTBOX_PATH itself; keep the
    # process-wide state of this test session out of it.
    for variable in ("ROOST_API_KEY", "BLUEJAY_API_KEY", "ROOST_BASE_URL", "ROOST_OUTBOX_PATH"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(service, "_default", None)
    monkeypatch.setattr(os, "environ", os.environ.copy())
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0
