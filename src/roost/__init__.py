"""Roost: the open, Bluejay-compatible voice-agent simulation loop.

The top-level package is the agent SDK. Importing it is cheap: it pulls in no
server, audio or database code, and the delivery machinery (SQLite outbox, HTTP
sender) loads only when a call actually ends.

Example:
    >>> import roost
    >>> roost.extract_simulation_result_id({"X-Simulation-Result-Id": "720488"})
    '720488'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> defining module. Resolved on first attribute access so that
# `import roost` stays light; `dir(roost)` and static type checkers see them all.
_EXPORTS: dict[str, str] = {
    # id extraction
    "extract_simulation_result_id": "roost.ids",
    "InvalidSimulationResultId": "roost.ids",
    # recording
    "CallRecorder": "roost.recorder",
    "tool": "roost.recorder",
    "current_recorder": "roost.recorder",
    "Redactor": "roost.redaction",
    "CaptureLimits": "roost.capture",
    # wire schema
    "ToolCall": "roost.schema",
    "Event": "roost.schema",
    "TranscriptEntry": "roost.schema",
    "UpdateSimulationRequest": "roost.schema",
    # delivery
    "Delivery": "roost.delivery",
    "DeliveryConfig": "roost.delivery",
}

__all__ = [
    "CallRecorder",
    "CaptureLimits",
    "Delivery",
    "DeliveryConfig",
    "Event",
    "InvalidSimulationResultId",
    "Redactor",
    "ToolCall",
    "TranscriptEntry",
    "UpdateSimulationRequest",
    "__version__",
    "current_recorder",
    "extract_simulation_result_id",
    "tool",
]

if TYPE_CHECKING:
    from roost.capture import CaptureLimits
    from roost.delivery import Delivery, DeliveryConfig
    from roost.ids import InvalidSimulationResultId, extract_simulation_result_id
    from roost.recorder import CallRecorder, current_recorder, tool
    from roost.redaction import Redactor
    from roost.schema import Event, ToolCall, TranscriptEntry, UpdateSimulationRequest


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'roost' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
