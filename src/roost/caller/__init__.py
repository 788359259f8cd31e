"""The platform's side of a call: drivers that place calls to an agent."""

from roost.caller.driver import (
    AgentAudio,
    AgentEvent,
    AgentMedia,
    CallDriver,
    CallFailed,
    CallOutcome,
    CallStatus,
    FailureBucket,
    PlayResult,
)

__all__ = [
    "AgentAudio",
    "AgentEvent",
    "AgentMedia",
    "CallDriver",
    "CallFailed",
    "CallOutcome",
    "CallStatus",
    "FailureBucket",
    "PlayResult",
]
