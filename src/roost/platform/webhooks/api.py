"""Webhook endpoints of the caller's organisation: ``/v1/roost/webhooks`` (Roost only).

- ``POST /v1/roost/webhooks``: register a URL; the answer holds its signing
  ``secret``, shown this once;
- ``GET /v1/roost/webhooks`` and ``GET /v1/roost/webhooks/{webhook_id}``;
- ``PATCH /v1/roost/webhooks/{webhook_id}``: change the URL, description,
  filters or ``enabled``;
- ``DELETE /v1/roost/webhooks/{webhook_id}``: remove it and its delivery log;
- ``POST /v1/roost/webhooks/{webhook_id}/rotate-secret``: a new secret (shown
  once); the previous one stays valid for ``grace_seconds`` (default one day,
  0 to revoke it at once; see :mod:`.signing` for what receivers see);
- ``GET /v1/roost/webhooks/{webhook_id}/deliveries``: the delivery log, newest
  first, optionally only ``pending``, ``delivered`` or ``failed`` ones;
- ``POST /v1/roost/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver``:
  queue a delivery again with a fresh retry schedule;
- ``POST /v1/roost/webhooks/{webhook_id}/test``: send a signed ``ping`` now
  and report what the receiver answered.

Another organisation's endpoint is answered exactly like a missing one (404).
Creation and rotation accept ``Idempotency-Key``, like every Roost write.

Example:
    >>> sorted({route.path for route in router.routes})[0]
    '/v1/roost/webhooks'
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from roost.platform.api.common import (
    ERROR_RESPONSES,
    CallerDep,
    DatabaseDep,
    IdempotencyKey,
    NotFound,
    RequestProblem,
    idempotent_write,
    parse_id,
)
from roost.platform.storage import utcnow
from roost.platform.webhooks.service import (
    DEFAULT_GRACE,
    MAX_DESCRIPTION_LENGTH,
    MAX_GRACE,
    MAX_URL_LENGTH,
    WebhookConfigError,
    create_endpoint,
    delete_endpoint,
    endpoint_summary,
    get_endpoint,
    list_deliveries,
    list_endpoints,
    redeliver,
    rotate_secret,
    update_endpoint,
    validate_url,
)
from roost.platform.webhooks.worker import send_test
from roost.platform.wire import INT64_MAX

__all__ = ["router"]

router = APIRouter(tags=["webhooks"])

EventType = Literal["simulation_ended", "simulation_result_evaluated"]
AgentId = Annotated[int, Field(ge=1, le=INT64_MAX)]
_WEBHOOK = "webhook"


def _check_url(value: str) -> str:
    try:
        return validate_url(value)
    except WebhookConfigError as exc:
        raise ValueError(exc.message) from None


class WebhookCreate(BaseModel):
    """Body of ``POST /v1/roost/webhooks``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=MAX_URL_LENGTH, description="http(s) URL to POST to")
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    event_types: list[EventType] | None = Field(
        default=None, min_length=1, max_length=10, description="Only these events (null: all)"
    )
    agent_ids: list[AgentId] | None = Field(
        default=None, min_length=1, max_length=1000, description="Only these agents (null: all)"
    )
    enabled: bool = True

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value)


class WebhookUpdate(BaseModel):
    """Body of ``PATCH /v1/roost/webhooks/{webhook_id}``: only the fields given change."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_LENGTH)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=10)
    agent_ids: list[AgentId] | None = Field(default=None, min_length=1, max_length=1000)
    enabled: bool | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class RotateRequest(BaseModel):
    """Body of ``POST .../rotate-secret`` (optional)."""

    model_config = ConfigDict(extra="forbid")

    grace_seconds: int = Field(
        default=int(DEFAULT_GRACE.total_seconds()),
        ge=0,
        le=int(MAX_GRACE.total_seconds()),
        description="How long the previous secret stays valid",
    )


class WebhookOut(BaseModel):
    """A registered endpoint (never with its secret)."""

    id: int
    url: str
    description: str | None
    event_types: list[str] | None
    agent_ids: list[int] | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None


class WebhookCreated(WebhookOut):
    """A new endpoint; ``secret`` is shown this once."""

    secret: str


class WebhookList(BaseModel):
    """The organisation's endpoints, oldest first."""

    webhooks: list[WebhookOut]


class WebhookSecret(BaseModel):
    """The result of a rotation; ``secret`` is shown this once."""

    id: int
    secret: str
    previous_secret_expires_at: datetime | None


class WebhookDeleted(BaseModel):
    """Confirmation of a removal."""

    id: int
    deleted: bool


class DeliveryOut(BaseModel):
    """One delivery of one event to one endpoint."""

    id: int
    endpoint_id: int
    event_id: str
    event_type: str
    status: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime | None
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None


class DeliveryList(BaseModel):
    """Deliveries, newest first."""

    deliveries: list[DeliveryOut]


class PingResult(BaseModel):
    """What the receiver answered to a ``ping``."""

    event_id: str
    delivered: bool
    status_code: int | None
    error: str | None
    duration_ms: float
    response: str | None


def _id(raw: int) -> int:
    value = parse_id(raw)
    if value is None:
        raise NotFound(_WEBHOOK, raw)
    return value


def _problem(exc: WebhookConfigError) -> RequestProblem:
    return RequestProblem(["body", exc.field], exc.message, "value_error")


@router.post("/v1/roost/webhooks", response_model=WebhookCreated, responses=ERROR_RESPONSES)
async def create_webhook(
    body: WebhookCreate,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Register an endpoint for the organisation's events."""

    async def write(session: Any) -> tuple[int, Any]:
        try:
            endpoint, secret = await create_endpoint(
                session,
                caller.org_id,
                url=body.url,
                description=body.description,
                event_types=body.event_types,
                agent_ids=body.agent_ids,
                enabled=body.enabled,
            )
        except WebhookConfigError as exc:
            raise _problem(exc) from None
        return 200, {**endpoint_summary(endpoint), "secret": secret}

    response, _ = await idempotent_write(
        db=db,
        caller=caller,
        operation="roost-create-webhook",
        body=await request.body(),
        key=idempotency_key,
        write=write,
    )
    return response


@router.get("/v1/roost/webhooks", response_model=WebhookList, responses=ERROR_RESPONSES)
async def list_webhooks(caller: CallerDep, db: DatabaseDep) -> Any:
    """The organisation's endpoints (never their secrets)."""
    async with db.read() as session:
        endpoints = await list_endpoints(session, caller.org_id)
    now = utcnow()
    return {"webhooks": [endpoint_summary(endpoint, now) for endpoint in endpoints]}


@router.get("/v1/roost/webhooks/{webhook_id}", response_model=WebhookOut, responses=ERROR_RESPONSES)
async def get_webhook(webhook_id: int, caller: CallerDep, db: DatabaseDep) -> Any:
    """One endpoint."""
    async with db.read() as session:
        endpoint = await get_endpoint(session, caller.org_id, _id(webhook_id))
    if endpoint is None:
        raise NotFound(_WEBHOOK, webhook_id)
    return endpoint_summary(endpoint)


@router.patch(
    "/v1/roost/webhooks/{webhook_id}", response_model=WebhookOut, responses=ERROR_RESPONSES
)
async def update_webhook(
    webhook_id: int, body: WebhookUpdate, caller: CallerDep, db: DatabaseDep
) -> Any:
    """Change an endpoint; ``null`` for ``event_types``/``agent_ids`` removes the filter."""
    changes = {field: getattr(body, field) for field in body.model_fields_set}
    for field in ("url", "enabled"):
        if field in changes and changes[field] is None:
            raise RequestProblem(["body", field], "may not be null", "value_error")
    try:
        async with db.write() as session:
            endpoint = await update_endpoint(session, caller.org_id, _id(webhook_id), **changes)
            if endpoint is None:
                raise NotFound(_WEBHOOK, webhook_id)
            return endpoint_summary(endpoint)
    except WebhookConfigError as exc:
        raise _problem(exc) from None


@router.delete(
    "/v1/roost/webhooks/{webhook_id}", response_model=WebhookDeleted, responses=ERROR_RESPONSES
)
async def delete_webhook(webhook_id: int, caller: CallerDep, db: DatabaseDep) -> Any:
    """Remove an endpoint; its queued deliveries are dropped with it."""
    async with db.write() as session:
        deleted = await delete_endpoint(session, caller.org_id, _id(webhook_id))
    if not deleted:
        raise NotFound(_WEBHOOK, webhook_id)
    return {"id": webhook_id, "deleted": True}


@router.post(
    "/v1/roost/webhooks/{webhook_id}/rotate-secret",
    response_model=WebhookSecret,
    responses=ERROR_RESPONSES,
)
async def rotate_webhook_secret(
    webhook_id: int,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
    body: RotateRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Issue a new signing secret (shown once); the old one lasts ``grace_seconds``."""
    grace = timedelta(seconds=(body or RotateRequest()).grace_seconds)
    endpoint_id = _id(webhook_id)

    async def write(session: Any) -> tuple[int, Any]:
        rotated = await rotate_secret(session, caller.org_id, endpoint_id, grace=grace)
        if rotated is None:
            raise NotFound(_WEBHOOK, webhook_id)
        endpoint, secret = rotated
        return 200, {
            "id": endpoint.id,
            "secret": secret,
            "previous_secret_expires_at": endpoint.previous_secret_expires_at,
        }

    response, _ = await idempotent_write(
        db=db,
        caller=caller,
        operation=f"roost-rotate-webhook-{endpoint_id}",
        body=await request.body(),
        key=idempotency_key,
        write=write,
    )
    return response


@router.get(
    "/v1/roost/webhooks/{webhook_id}/deliveries",
    response_model=DeliveryList,
    responses=ERROR_RESPONSES,
)
async def list_webhook_deliveries(
    webhook_id: int,
    caller: CallerDep,
    db: DatabaseDep,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Any:
    """The endpoint's delivery log, newest first."""
    endpoint_id = _id(webhook_id)
    async with db.read() as session:
        if await get_endpoint(session, caller.org_id, endpoint_id) is None:
            raise NotFound(_WEBHOOK, webhook_id)
        rows = await list_deliveries(
            session, caller.org_id, endpoint_id, status=status, limit=limit
        )
    return {"deliveries": [row.summary() for row in rows]}


@router.post(
    "/v1/roost/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver",
    response_model=DeliveryOut,
    responses=ERROR_RESPONSES,
)
async def redeliver_webhook(
    webhook_id: int, delivery_id: int, caller: CallerDep, db: DatabaseDep
) -> Any:
    """Queue a delivery again now, with a fresh retry schedule."""
    endpoint_id = _id(webhook_id)
    raw_delivery = parse_id(delivery_id)
    summary = None
    async with db.write() as session:
        if await get_endpoint(session, caller.org_id, endpoint_id) is None:
            raise NotFound(_WEBHOOK, webhook_id)
        if raw_delivery is not None:
            row = await redeliver(session, caller.org_id, endpoint_id, raw_delivery)
            summary = None if row is None else row.summary()
    if summary is None:
        raise NotFound("webhook delivery", delivery_id)
    return summary


@router.post(
    "/v1/roost/webhooks/{webhook_id}/test",
    response_model=PingResult,
    responses=ERROR_RESPONSES,
)
async def ping_webhook(webhook_id: int, caller: CallerDep, db: DatabaseDep) -> Any:
    """Send a signed ``ping`` event now (not queued, not retried) and report the answer."""
    async with db.read() as session:
        endpoint = await get_endpoint(session, caller.org_id, _id(webhook_id))
    if endpoint is None:
        raise NotFound(_WEBHOOK, webhook_id)
    return await send_test(endpoint)
