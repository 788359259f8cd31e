"""Endpoint management and the delivery queue, on the platform database.

Shared by the API (:mod:`.api`, scoped to the caller's organisation), the CLI
(``roost webhooks``, which may act on any organisation) and the worker
(:mod:`.worker`). Functions that take a session run inside the caller's
transaction; the queue functions used by the worker open their own.

:func:`emit` is the producer side: the lifecycle calls it in the same
transaction as the status change that causes the event, so the event and the
change commit together or not at all, and a crash after the commit only
delays the delivery. Each matching endpoint gets its own delivery row (and so
its own retry schedule); all of them share one ``event_id``.

Filters. An endpoint with ``event_types`` receives only those types; one with
``agent_ids`` only events of those agents (taken from the body's ``agent_id``,
or, for ``simulation_ended`` whose Bluejay body has none, from the run).
Disabled endpoints receive nothing new and their queued deliveries wait.

Example:
    >>> validate_url("https://hooks.example.com/roost")
    'https://hooks.example.com/roost'
    >>> validate_url("ftp://example.com")
    Traceback (most recent call last):
    ...
    roost.platform.webhooks.service.WebhookConfigError: url: must start with http:// or https://
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, event, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from roost.platform.storage import Database, SimulationRun, dumps_json, utcnow
from roost.platform.webhooks.schedule import Decision, RetryPolicy
from roost.platform.webhooks.signing import generate_secret
from roost.platform.webhooks.tables import WebhookDelivery, WebhookEndpoint

__all__ = [
    "DEFAULT_GRACE",
    "EVENT_TYPES",
    "MAX_GRACE",
    "Claimed",
    "WebhookConfigError",
    "claim_due",
    "create_endpoint",
    "delete_endpoint",
    "emit",
    "endpoint_summary",
    "get_endpoint",
    "list_deliveries",
    "list_endpoints",
    "record_attempt",
    "redeliver",
    "register_wake",
    "rotate_secret",
    "update_endpoint",
    "validate_url",
]

EVENT_TYPES: Final = ("simulation_ended", "simulation_result_evaluated")
"""The events Roost emits (Bluejay's names and bodies)."""

DEFAULT_GRACE: Final = timedelta(days=1)
MAX_GRACE: Final = timedelta(days=7)
MAX_URL_LENGTH: Final = 2048
MAX_DESCRIPTION_LENGTH: Final = 1000
MAX_ENDPOINTS_PER_ORG: Final = 100
MAX_AGENT_FILTER: Final = 1000
_STORED_TEXT: Final = 2000


class WebhookConfigError(ValueError):
    """An endpoint setting that cannot be used; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


# --- validation ----------------------------------------------------------------


def validate_url(url: Any) -> str:
    """Check a receiver URL and return it unchanged.

    Only absolute ``http``/``https`` URLs with a host are accepted; fragments
    (never sent over HTTP) and embedded spaces or control characters are
    refused. Private and loopback addresses are allowed: a self-hosted Roost
    often posts to a service next to it.

    Raises:
        WebhookConfigError: naming what is wrong.
    """
    if not isinstance(url, str) or not url:
        raise WebhookConfigError("url", "must be a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise WebhookConfigError("url", f"may have at most {MAX_URL_LENGTH} characters")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise WebhookConfigError("url", "must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookConfigError("url", f"is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise WebhookConfigError("url", "must start with http:// or https://")
    if not parts.hostname:
        raise WebhookConfigError("url", "needs a host name")
    if port == 0:
        raise WebhookConfigError("url", "port 0 cannot be reached")
    if parts.fragment or url.endswith("#"):
        raise WebhookConfigError("url", "must not have a #fragment (it is never sent)")
    try:
        httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise WebhookConfigError("url", f"is not a valid URL ({exc})") from None
    return url


def _event_types(value: Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    types = list(dict.fromkeys(value))
    unknown = [item for item in types if item not in EVENT_TYPES]
    if unknown or not types:
        raise WebhookConfigError(
            "event_types", f"must be a non-empty list of {', '.join(EVENT_TYPES)}"
        )
    return types


def _agent_ids(value: Sequence[int] | None) -> list[int] | None:
    if value is None:
        return None
    ids = list(dict.fromkeys(value))
    if not ids or len(ids) > MAX_AGENT_FILTER:
        raise WebhookConfigError("agent_ids", f"must list 1 to {MAX_AGENT_FILTER} agent ids")
    if any(isinstance(i, bool) or not isinstance(i, int) or not 0 < i < 2**63 for i in ids):
        raise WebhookConfigError("agent_ids", "must be positive integers")
    return ids


def _description(value: str | None) -> str | None:
    if value is not None and len(value) > MAX_DESCRIPTION_LENGTH:
        raise WebhookConfigError(
            "description", f"may have at most {MAX_DESCRIPTION_LENGTH} characters"
        )
    return value


def endpoint_summary(endpoint: WebhookEndpoint, now: datetime | None = None) -> dict[str, Any]:
    """The endpoint as shown by the API and the CLI (never with a secret)."""
    now = now or utcnow()
    grace = endpoint.previous_secret_expires_at
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "agent_ids": endpoint.agent_ids,
        "enabled": endpoint.enabled,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
        "secret_rotated_at": endpoint.secret_rotated_at,
        "previous_secret_expires_at": grace if grace is not None and grace > now else None,
    }


# --- endpoints -------------------------------------------------------------------


def _scoped(query: Any, org_id: int | None, endpoint_id: int) -> Any:
    query = query.where(WebhookEndpoint.id == endpoint_id)
    return query if org_id is None else query.where(WebhookEndpoint.org_id == org_id)


async def create_endpoint(
    session: AsyncSession,
    org_id: int,
    *,
    url: str,
    description: str | None = None,
    event_types: Sequence[str] | None = None,
    agent_ids: Sequence[int] | None = None,
    enabled: bool = True,
    now: datetime | None = None,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it and its secret (show the secret once).

    Raises:
        WebhookConfigError: for an invalid setting or too many endpoints.
    """
    now = now or utcnow()
    count = await session.scalar(
        select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id)
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_ORG:
        raise WebhookConfigError(
            "url", f"an organisation may have at most {MAX_ENDPOINTS_PER_ORG} webhook endpoints"
        )
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        org_id=org_id,
        url=validate_url(url),
        description=_description(description),
        secret=secret,
        event_types=_event_types(event_types),
        agent_ids=_agent_ids(agent_ids),
        enabled=enabled,
        created_at=now,
        updated_at=now,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def list_endpoints(session: AsyncSession, org_id: int | None) -> list[WebhookEndpoint]:
    """Endpoints of one organisation (or of all, for ``None``), oldest first."""
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id)
    if org_id is not None:
        query = query.where(WebhookEndpoint.org_id == org_id)
    return list((await session.execute(query)).scalars())


async def get_endpoint(
    session: AsyncSession, org_id: int | None, endpoint_id: int, *, lock: bool = False
) -> WebhookEndpoint | None:
    """One endpoint, if it exists in the organisation (any, for ``None``)."""
    query = _scoped(select(WebhookEndpoint), org_id, endpoint_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


_UNSET: Final[Any] = object()


async def update_endpoint(
    session: AsyncSession,
    org_id: int | None,
    endpoint_id: int,
    *,
    url: Any = _UNSET,
    description: Any = _UNSET,
    event_types: Any = _UNSET,
    agent_ids: Any = _UNSET,
    enabled: Any = _UNSET,
    now: datetime | None = None,
) -> WebhookEndpoint | None:
    """Change the given settings (``None`` clears a filter); ``None`` if not found."""
    endpoint = await get_endpoint(session, org_id, endpoint_id, lock=True)
    if endpoint is None:
        return None
    if url is not _UNSET:
        endpoint.url = validate_url(url)
    if description is not _UNSET:
        endpoint.description = _description(description)
    if event_types is not _UNSET:
        endpoint.event_types = _event_types(event_types)
    if agent_ids is not _UNSET:
        endpoint.agent_ids = _agent_ids(agent_ids)
    if enabled is not _UNSET:
        if not isinstance(enabled, bool):
            raise WebhookConfigError("enabled", "must be true or false")
        endpoint.enabled = enabled
    endpoint.updated_at = now or utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, org_id: int | None, endpoint_id: int) -> bool:
    """Remove an endpoint and its delivery log; whether it existed."""
    result = await session.execute(_scoped(delete(WebhookEndpoint), org_id, endpoint_id))
    return bool(getattr(result, "rowcount", 0))


async def rotate_secret(
    session: AsyncSession,
    org_id: int | None,
    endpoint_id: int,
    *,
    grace: timedelta = DEFAULT_GRACE,
    now: datetime | None = None,
) -> tuple[WebhookEndpoint, str] | None:
    """Give the endpoint a new secret; the old one stays valid for ``grace``.

    Only one previous secret is kept: rotating again during a grace period
    ends the older secret's grace at once.

    Raises:
        WebhookConfigError: for a negative grace or one over :data:`MAX_GRACE`.
    """
    if grace < timedelta(0) or grace > MAX_GRACE:
        raise WebhookConfigError("grace_seconds", f"must be between 0 and {MAX_GRACE.days} days")
    now = now or utcnow()
    endpoint = await get_endpoint(session, org_id, endpoint_id, lock=True)
    if endpoint is None:
        return None
    secret = generate_secret()
    if grace > timedelta(0):
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = now + grace
    else:
        endpoint.previous_secret = None
        endpoint.previous_secret_expires_at = None
    endpoint.secret = secret
    endpoint.secret_rotated_at = now
    endpoint.updated_at = now
    await session.flush()
    return endpoint, secret


# --- producing events ------------------------------------------------------------------

_wake_callbacks: weakref.WeakSet[Any] = weakref.WeakSet()
_WAKE_FLAG: Final = "roost.webhooks.wake_on_commit"


def register_wake(worker: Any) -> None:
    """Have ``worker.notify()`` called after any transaction that queued a delivery."""
    _wake_callbacks.add(worker)


def _wake_after_commit(session: AsyncSession) -> None:
    sync_session = session.sync_session
    if sync_session.info.get(_WAKE_FLAG):
        return
    sync_session.info[_WAKE_FLAG] = True

    def wake(committed: Session) -> None:
        committed.info.pop(_WAKE_FLAG, None)
        for worker in list(_wake_callbacks):
            worker.notify()

    event.listen(sync_session, "after_commit", wake, once=True)


async def _agent_of(session: AsyncSession, org_id: int, body: dict[str, Any]) -> int | None:
    agent = body.get("agent_id")
    if isinstance(agent, int) and not isinstance(agent, bool):
        return agent
    run_id = body.get("simulation_run_id")
    if isinstance(run_id, int) and not isinstance(run_id, bool) and 0 < run_id < 2**63:
        found = await session.scalar(
            select(SimulationRun.agent_id).where(
                SimulationRun.id == run_id, SimulationRun.org_id == org_id
            )
        )
        return None if found is None else int(found)
    return None


async def emit(
    session: AsyncSession,
    org_id: int,
    event_type: str,
    body: dict[str, Any],
    *,
    agent_id: int | None = None,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
) -> list[int]:
    """Queue ``body`` for every matching endpoint, inside ``session``'s transaction.

    Args:
        session: The caller's write session (the rows commit with it).
        org_id: The organisation the event belongs to.
        event_type: Must equal ``body["type"]`` (it becomes ``X-Bluejay-Event``).
        body: The event body (see :mod:`roost.platform.events` for builders).
        agent_id: The agent concerned, when the body does not say.
        now: The current time (tests pass their own).
        policy: Retry policy, for the delivery deadline.

    Returns:
        The ids of the queued deliveries (empty when no endpoint matches).

    Raises:
        ValueError: when ``event_type`` and ``body["type"]`` differ (a bug in
            the caller; the transaction should not commit).
    """
    if body.get("type") != event_type:
        raise ValueError(f"event type {event_type!r} differs from the body's {body.get('type')!r}")
    endpoints = [
        endpoint
        for endpoint in await list_endpoints(session, org_id)
        if endpoint.enabled and (endpoint.event_types is None or event_type in endpoint.event_types)
    ]
    if any(endpoint.agent_ids is not None for endpoint in endpoints):
        agent = agent_id if agent_id is not None else await _agent_of(session, org_id, body)
        endpoints = [e for e in endpoints if e.agent_ids is None or agent in e.agent_ids]
    if not endpoints:
        return []
    now = now or utcnow()
    policy = policy or RetryPolicy()
    text = dumps_json(body)
    event_id = str(uuid.uuid4())
    rows = [
        WebhookDelivery(
            org_id=org_id,
            endpoint_id=endpoint.id,
            event_id=event_id,
            event_type=event_type,
            body=text,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            expires_at=now + policy.max_age,
            created_at=now,
        )
        for endpoint in endpoints
    ]
    session.add_all(rows)
    await session.flush()
    _wake_after_commit(session)
    return [row.id for row in rows]


# --- the delivery log ----------------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    org_id: int | None,
    endpoint_id: int,
    *,
    status: str | None = None,
    limit: int = 50,
) -> list[WebhookDelivery]:
    """An endpoint's most recent deliveries, newest first."""
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if org_id is not None:
        query = query.where(WebhookDelivery.org_id == org_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return list((await session.execute(query)).scalars())


async def redeliver(
    session: AsyncSession,
    org_id: int | None,
    endpoint_id: int,
    delivery_id: int,
    *,
    now: datetime | None = None,
    policy: RetryPolicy | None = None,
) -> WebhookDelivery | None:
    """Queue a delivery again, now, with a fresh retry schedule (same event id)."""
    query = select(WebhookDelivery).where(
        WebhookDelivery.id == delivery_id, WebhookDelivery.endpoint_id == endpoint_id
    )
    if org_id is not None:
        query = query.where(WebhookDelivery.org_id == org_id)
    row = (await session.execute(query.with_for_update())).scalar_one_or_none()
    if row is None:
        return None
    now = now or utcnow()
    row.status = "pending"
    row.attempts = 0
    row.next_attempt_at = now
    row.expires_at = now + (policy or RetryPolicy()).max_age
    row.lease_owner = None
    row.lease_expires_at = None
    row.delivered_at = None
    await session.flush()
    _wake_after_commit(session)
    return row


# --- the worker's side of the queue --------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased by one worker, with what it needs to send it."""

    id: int
    url: str
    body: str
    event_type: str
    event_id: str
    attempts: int
    expires_at: datetime
    bluejay_secret: str
    roost_secrets: list[str]


async def claim_due(
    db: Database, *, owner: str, now: datetime, lease: timedelta, limit: int
) -> list[Claimed]:
    """Lease up to ``limit`` deliveries that are due, for ``owner``.

    A delivery is due when it is pending, its time has come, its endpoint is
    enabled and nobody holds a live lease on it. On PostgreSQL the rows are
    locked with ``FOR UPDATE SKIP LOCKED``, so concurrent workers take
    different rows without waiting; SQLite runs one write transaction at a
    time, which gives the same guarantee.
    """
    if limit <= 0:
        return []
    async with db.write() as session:
        rows = (
            await session.execute(
                select(WebhookDelivery, WebhookEndpoint)
                .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
                .where(
                    WebhookDelivery.status == "pending",
                    WebhookDelivery.next_attempt_at <= now,
                    or_(
                        WebhookDelivery.lease_expires_at.is_(None),
                        WebhookDelivery.lease_expires_at <= now,
                    ),
                    WebhookEndpoint.enabled.is_(True),
                )
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                .limit(limit)
                .with_for_update(skip_locked=True, of=WebhookDelivery)
            )
        ).all()
        claimed = []
        for delivery, endpoint in rows:
            delivery.lease_owner = owner
            delivery.lease_expires_at = now + lease
            bluejay_secret, roost_secrets = endpoint.secrets_at(now)
            claimed.append(
                Claimed(
                    id=delivery.id,
                    url=endpoint.url,
                    body=delivery.body,
                    event_type=delivery.event_type,
                    event_id=delivery.event_id,
                    attempts=delivery.attempts,
                    expires_at=delivery.expires_at,
                    bluejay_secret=bluejay_secret,
                    roost_secrets=roost_secrets,
                )
            )
    return claimed


async def record_attempt(
    db: Database,
    claimed: Claimed,
    *,
    owner: str,
    decision: Decision,
    now: datetime,
    status_code: int | None,
    response: str | None,
) -> bool:
    """Store an attempt's outcome; ``False`` if the lease was lost meanwhile."""
    values: dict[str, Any] = {
        "attempts": WebhookDelivery.attempts + 1,
        "status": decision.state,
        "last_attempt_at": now,
        "last_status_code": status_code,
        "last_error": None if decision.state == "delivered" else decision.reason[:_STORED_TEXT],
        "last_response": None if response is None else response[:_STORED_TEXT],
        "lease_owner": None,
        "lease_expires_at": None,
    }
    if decision.state == "delivered":
        values["delivered_at"] = now
    if decision.next_attempt_at is not None:
        values["next_attempt_at"] = decision.next_attempt_at
    async with db.write() as session:
        result = await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claimed.id,
                WebhookDelivery.lease_owner == owner,
                WebhookDelivery.status == "pending",
            )
            .values(**values)
        )
    return bool(getattr(result, "rowcount", 0))
