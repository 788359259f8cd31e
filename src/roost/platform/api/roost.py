"""Roost's own operations (not in Bluejay's API), under ``/v1/roost/``.

- ``GET /v1/roost/organisation``: the caller's organisation.
- ``POST /v1/roost/keys``, ``GET /v1/roost/keys``, ``DELETE /v1/roost/keys/{key_id}``:
  API keys of the caller's organisation (the new key is shown once).
- ``POST /v1/roost/simulation-results/{id}/call-started`` and ``.../call-ended``:
  report call progress from an external caller (the built-in caller uses
  :mod:`roost.platform.progress` directly).
- ``GET /v1/roost/simulation-results/{id}/enrichment``: the batches a result
  received, with their idempotency key, arrival time, source and counts.

The benchmark baseline ``POST /_bench/echo`` is mounted only when
``bench_echo`` is set (``ROOST_BENCH_ECHO=1``); it parses and re-encodes the
JSON body and touches nothing else.

Example:
    >>> sorted({route.path for route in router.routes})[0]
    '/v1/roost/keys'
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from roost.platform.api.common import (
    ERROR_RESPONSES,
    CallerDep,
    Conflict,
    DatabaseDep,
    ErrorResponse,
    NotFound,
    RequestProblem,
    parse_id,
)
from roost.platform.api.result_models import CallEndedRequest, CallStartedRequest
from roost.platform.auth import Caller
from roost.platform.keys import KeyInfo, create_key, list_keys, revoke_key
from roost.platform.progress import InvalidTransition, mark_call_ended, mark_call_started
from roost.platform.storage import Database, EnrichmentBatch, Organisation, SimulationResult

__all__ = ["bench_router", "router"]

router = APIRouter(tags=["roost"])
bench_router = APIRouter()


class OrganisationInfo(BaseModel):
    """The caller's organisation."""

    id: int
    name: str


class KeyCreateRequest(BaseModel):
    """Body of ``POST /v1/roost/keys``."""

    name: str | None = Field(default=None, min_length=1, max_length=200)


class KeyOut(BaseModel):
    """An API key as listed (never with its secret)."""

    key_id: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyOut):
    """A new API key; ``key`` is shown this once."""

    key: str


class CallProgressResponse(BaseModel):
    """A result's status after a progress report."""

    simulation_result_id: int
    status: str
    start_time: datetime | None
    end_time: datetime | None


class BatchOut(BaseModel):
    """One stored enrichment batch."""

    id: int
    received_at: datetime
    idempotency_key: str | None
    api_key_id: str | None
    source: str | None
    tool_calls: int
    duplicate_tool_calls: int
    events: int
    transcript_entries: int
    late: bool


class EnrichmentOut(BaseModel):
    """The enrichment batches of a result, oldest first."""

    simulation_result_id: int
    state: str
    batches: list[BatchOut]


def _key_out(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "name": info.name,
        "created_at": info.created_at,
        "revoked_at": info.revoked_at,
    }


@router.get("/v1/roost/organisation", response_model=OrganisationInfo, responses=ERROR_RESPONSES)
async def get_organisation(caller: CallerDep) -> Any:
    """The organisation the API key belongs to."""
    return {"id": caller.org_id, "name": caller.org_name}


@router.post("/v1/roost/keys", response_model=KeyCreated, responses=ERROR_RESPONSES)
async def create_api_key(body: KeyCreateRequest, caller: CallerDep, db: DatabaseDep) -> Any:
    """Create another API key for the caller's organisation (shown once)."""
    if body.name is not None and any(ord(char) < 32 for char in body.name):
        raise RequestProblem(["body", "name"], "must not contain control characters", "value_error")
    async with db.write() as session:
        org = await session.get(Organisation, caller.org_id)
        assert org is not None
        created = await create_key(session, org, name=body.name)
    return {**_key_out(created.info), "key": created.key}


@router.get("/v1/roost/keys", response_model=list[KeyOut], responses=ERROR_RESPONSES)
async def list_api_keys(caller: CallerDep, db: DatabaseDep) -> Any:
    """The organisation's API keys (ids, names, dates; never secrets)."""
    async with db.read() as session:
        keys = await list_keys(session, caller.org_id)
    return [_key_out(info) for info in keys]


@router.delete("/v1/roost/keys/{key_id}", response_model=KeyOut, responses=ERROR_RESPONSES)
async def revoke_api_key(key_id: str, request: Request, caller: CallerDep, db: DatabaseDep) -> Any:
    """Revoke a key of the organisation; it stops working at once on this server."""
    info = None
    if len(key_id) <= 32:
        async with db.write() as session:
            info = await revoke_key(session, key_id, caller.org_id)
    if info is None:
        raise NotFound("API key", key_id)
    request.app.state.authenticator.forget(key_id)
    return _key_out(info)


async def _result_exists(db: Database, caller: Caller, raw: int) -> int:
    result_id = parse_id(raw)
    if result_id is not None:
        async with db.read() as session:
            found = (
                await session.execute(
                    select(SimulationResult.id).where(
                        SimulationResult.id == result_id, SimulationResult.org_id == caller.org_id
                    )
                )
            ).scalar_one_or_none()
        if found is not None:
            return result_id
    raise NotFound("simulation result", raw)


def _progress(row: SimulationResult) -> dict[str, Any]:
    return {
        "simulation_result_id": row.id,
        "status": row.status,
        "start_time": row.start_time,
        "end_time": row.end_time,
    }


_CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "Result in the wrong state"}
}


@router.post(
    "/v1/roost/simulation-results/{simulation_result_id}/call-started",
    response_model=CallProgressResponse,
    responses={**ERROR_RESPONSES, **_CONFLICT},
)
async def call_started(
    simulation_result_id: int,
    body: CallStartedRequest,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
) -> Any:
    """Report that the call of a result was answered (RUNNING)."""
    result_id = await _result_exists(db, caller, simulation_result_id)
    try:
        row = await mark_call_started(db, result_id, body.started_at, org_id=caller.org_id)
    except InvalidTransition as exc:
        raise Conflict(str(exc)) from None
    if row is None:
        raise NotFound("simulation result", simulation_result_id)
    return _progress(row)


@router.post(
    "/v1/roost/simulation-results/{simulation_result_id}/call-ended",
    response_model=CallProgressResponse,
    responses={**ERROR_RESPONSES, **_CONFLICT},
)
async def call_ended(
    simulation_result_id: int,
    body: CallEndedRequest,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
) -> Any:
    """Report the end of a call (CONVERSATION_ENDED, or a failure status)."""
    result_id = await _result_exists(db, caller, simulation_result_id)
    try:
        row = await mark_call_ended(
            db,
            result_id,
            body.ended_at,
            body.outcome,
            error_code=body.error_code,
            org_id=caller.org_id,
        )
    except InvalidTransition as exc:
        raise Conflict(str(exc)) from None
    if row is None:
        raise NotFound("simulation result", simulation_result_id)
    request.app.state.lifecycle.notify()
    return _progress(row)


@router.get(
    "/v1/roost/simulation-results/{simulation_result_id}/enrichment",
    response_model=EnrichmentOut,
    responses=ERROR_RESPONSES,
)
async def enrichment_batches(simulation_result_id: int, caller: CallerDep, db: DatabaseDep) -> Any:
    """Every enrichment batch of a result, as received."""
    result_id = parse_id(simulation_result_id)
    async with db.read() as session:
        result = None
        if result_id is not None:
            result = (
                await session.execute(
                    select(SimulationResult).where(
                        SimulationResult.id == result_id, SimulationResult.org_id == caller.org_id
                    )
                )
            ).scalar_one_or_none()
        if result is None:
            raise NotFound("simulation result", simulation_result_id)
        batches = (
            await session.execute(
                select(EnrichmentBatch)
                .where(EnrichmentBatch.result_id == result.id)
                .order_by(EnrichmentBatch.id)
            )
        ).scalars()
        items = [
            {
                "id": batch.id,
                "received_at": batch.received_at,
                "idempotency_key": batch.idempotency_key,
                "api_key_id": batch.api_key_id,
                "source": batch.source,
                "tool_calls": batch.tool_call_count,
                "duplicate_tool_calls": batch.duplicate_tool_calls,
                "events": batch.event_count,
                "transcript_entries": batch.transcript_count,
                "late": batch.late,
            }
            for batch in batches
        ]
    return {"simulation_result_id": result.id, "state": result.enrichment_state, "batches": items}


_echo_decoder = msgspec.json.Decoder()
_echo_encoder = msgspec.json.Encoder()


@bench_router.post("/_bench/echo", include_in_schema=False)
async def echo(request: Request) -> Response:
    """Benchmark baseline: parse the JSON body and send it back."""
    body = await request.body()
    try:
        value = _echo_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return Response(
            b'{"detail":"invalid JSON"}', status_code=400, media_type="application/json"
        )
    return Response(_echo_encoder.encode(value), media_type="application/json")
