"""Delivery of call enrichment: a durable SQLite outbox, a sans-I/O retry policy and
a background sender.

At hang-up the recorder hands an :class:`~roost.schema.UpdateSimulationRequest` to
:meth:`Delivery.submit`, which commits it to the outbox before returning. A daemon
thread posts it to ``{base_url}/v1/update-simulation-result`` with a per-payload
Idempotency-Key, retrying transient failures with jittered backoff for days and
keeping anything the platform refuses. ``roost outbox`` lists, shows, flushes and
purges the file.

Example:
    >>> import tempfile, pathlib
    >>> from roost.delivery import Delivery, DeliveryConfig
    >>> from roost.schema import UpdateSimulationRequest
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite3"
    >>> with Delivery(DeliveryConfig(outbox_path=path), start=False) as delivery:
    ...     entry_id = delivery.submit(UpdateSimulationRequest(simulation_result_id="720488"))
    ...     delivery.outbox.find(entry_id).state
    <EntryState.PENDING: 'pending'>
"""

from __future__ import annotations

from roost.delivery.config import (
    DEFAULT_BASE_URL,
    DeliveryConfig,
    DeliveryConfigError,
    default_outbox_path,
)
from roost.delivery.outbox import (
    Claim,
    EntryState,
    Outbox,
    OutboxCorruptError,
    OutboxEntry,
    OutboxError,
)
from roost.delivery.policy import (
    Decision,
    Delivered,
    ErrorKind,
    Fail,
    HttpResponse,
    Outcome,
    RetryAt,
    RetryPolicy,
    TransportFailure,
    parse_retry_after,
)
from roost.delivery.sender import USER_AGENT, Sender, SenderStats
from roost.delivery.service import Delivery, DeliveryError, default_delivery

__all__ = [
    "DEFAULT_BASE_URL",
    "USER_AGENT",
    "Claim",
    "Decision",
    "Delivered",
    "Delivery",
    "DeliveryConfig",
    "DeliveryConfigError",
    "DeliveryError",
    "EntryState",
    "ErrorKind",
    "Fail",
    "HttpResponse",
    "Outbox",
    "OutboxCorruptError",
    "OutboxEntry",
    "OutboxError",
    "Outcome",
    "RetryAt",
    "RetryPolicy",
    "Sender",
    "SenderStats",
    "TransportFailure",
    "default_delivery",
    "default_outbox_path",
    "parse_retry_after",
]
