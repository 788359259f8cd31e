"""Signed, durable, retried webhooks (Bluejay's events webhook, served by Roost).

Roost posts Bluejay's ``simulation_ended`` and ``simulation_result_evaluated``
events (bodies built by :mod:`roost.platform.events`) to the endpoints an
organisation registers through ``/v1/roost/webhooks`` (:mod:`.api`) or
``roost webhooks`` (the CLI):

- :mod:`.signing`: the headers, ``X-Bluejay-Signature`` and Roost's
  timestamped signature, and :func:`verify_signature` for receivers;
- :mod:`.schedule`: the retry decision (pure: outcome and time in);
- :mod:`.tables`: endpoints and the delivery queue;
- :mod:`.service`: endpoint management and :func:`emit`, which queues a
  delivery per matching endpoint inside the caller's transaction;
- :mod:`.worker`: the asyncio task that leases and sends due deliveries.

A receiver, in a few lines (any framework; verify the raw body)::

    from roost.platform.webhooks import verify_signature

    def handle(raw_body: bytes, headers) -> int:
        if not verify_signature(SECRET, raw_body, headers["X-Bluejay-Signature"]):
            return 401
        if seen(headers["X-Roost-Event-Id"]):     # deliveries are at least once
            return 200
        process(json.loads(raw_body))
        return 200

Example:
    >>> from roost.platform.webhooks import sign, verify_signature
    >>> verify_signature("whsec_x", b"{}", sign("whsec_x", b"{}"))
    True
"""

from __future__ import annotations

from roost.platform.events import simulation_ended_body, simulation_result_evaluated_body
from roost.platform.webhooks.schedule import Decision, RetryPolicy, backoff_delay, decide
from roost.platform.webhooks.service import (
    EVENT_TYPES,
    WebhookConfigError,
    create_endpoint,
    delete_endpoint,
    emit,
    list_deliveries,
    list_endpoints,
    redeliver,
    rotate_secret,
    update_endpoint,
    validate_url,
)
from roost.platform.webhooks.signing import (
    ATTEMPT_HEADER,
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_ID_HEADER,
    ROOST_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    USER_AGENT,
    delivery_headers,
    generate_secret,
    sign,
    sign_timestamped,
    verify_signature,
    verify_timestamped,
)
from roost.platform.webhooks.tables import WebhookDelivery, WebhookEndpoint
from roost.platform.webhooks.worker import WebhookWorker, send_test, start_worker

__all__ = [
    "ATTEMPT_HEADER",
    "DELIVERY_HEADER",
    "EVENT_HEADER",
    "EVENT_ID_HEADER",
    "EVENT_TYPES",
    "ROOST_SIGNATURE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "USER_AGENT",
    "Decision",
    "RetryPolicy",
    "WebhookConfigError",
    "WebhookDelivery",
    "WebhookEndpoint",
    "WebhookWorker",
    "backoff_delay",
    "create_endpoint",
    "decide",
    "delete_endpoint",
    "delivery_headers",
    "emit",
    "generate_secret",
    "list_deliveries",
    "list_endpoints",
    "redeliver",
    "rotate_secret",
    "send_test",
    "sign",
    "sign_timestamped",
    "simulation_ended_body",
    "simulation_result_evaluated_body",
    "start_worker",
    "update_endpoint",
    "validate_url",
    "verify_signature",
    "verify_timestamped",
]
