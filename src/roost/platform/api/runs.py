"""Bluejay's run and result operations, and ``/v1/ping``.

- ``POST /v1/queue-simulation-run``: creates the run and one result per
  digital human and run (``num_runs``), commits, then hands the result ids to
  the dispatcher (:mod:`roost.platform.dispatch`).
- ``POST /v1/update-simulation-result``: the agent's enrichment; the hot path,
  decoded by msgspec (:mod:`roost.platform.wire`) and written by the group
  committer (:mod:`roost.platform.ingest`). The 200 is sent only after COMMIT.
- ``GET /v1/retrieve-simulation-result/{test_result_id}`` and
  ``GET /v1/retrieve-simulation-results/{simulation_run_id}``.
- ``POST /v1/re-evaluate-simulation-result/{simulation_result_id}``: evaluates
  now; 409 if the call has not ended (or failed: nothing to evaluate).

Example:
    >>> sorted(route.path for route in router.routes)[0]
    '/v1/ping'
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from roost.platform.api.common import (
    ERROR_RESPONSES,
    CallerDep,
    Conflict,
    DatabaseDep,
    ErrorResponse,
    IdempotencyKey,
    NotFound,
    RequestProblem,
    idempotent_write,
    parse_id,
    validation_error,
)
from roost.platform.api.result_models import (
    ReEvaluateSimulationResultResponse,
    SimulationResultsResponse,
    SimulationRunRequest,
    SimulationRunResponse,
    SingleSimulationResultResponse,
    UpdateSimulationResponse,
)
from roost.platform.auth import Caller
from roost.platform.ingest import IngestWriter
from roost.platform.ingest_process import IngestProcess
from roost.platform.ingest_sql import prepare_update
from roost.platform.lifecycle import EnrichmentState, ResultStatus, run_status
from roost.platform.progress import InvalidTransition, reevaluate
from roost.platform.results import load_bundles, result_response, run_counters
from roost.platform.storage import (
    DigitalHuman,
    Simulation,
    SimulationDigitalHuman,
    SimulationResult,
    SimulationRun,
    dumps_json,
    utcnow,
)
from roost.platform.wire import Wire, WireError

__all__ = ["UPDATE_REQUEST_BODY", "router"]

log = logging.getLogger(__name__)

router = APIRouter()

_JSON_TYPES = ("application/json",)
_VALIDATION_422 = {
    "description": "Validation Error",
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
    },
}

UPDATE_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/UpdateSimulationRequest"}}
    },
}


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= 255 and key.isascii() and key.isprintable() and " " not in key


def _source(user_agent: str | None) -> str | None:
    if not user_agent:
        return None
    printable = "".join(char for char in user_agent if " " <= char <= "~")
    return printable[:200] or None


@router.post(
    "/v1/update-simulation-result",
    response_model=UpdateSimulationResponse,
    responses={**ERROR_RESPONSES, 422: _VALIDATION_422},
    summary="Update Simulation Result",
    tags=["results"],
    openapi_extra={
        "requestBody": UPDATE_REQUEST_BODY,
        "parameters": [
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 255,
                    "pattern": "^[!-~]+$",
                },
                "description": "Roost: a repeat with the same key and body replays the first "
                "response.",
            }
        ],
        "security": [{"apiKeyAuth": []}],
    },
)
async def update_simulation_result(request: Request) -> Response:
    """Post the agent's tool calls, events, transcript, tags, metadata and trace ids.

    Each accepted POST is stored as one enrichment batch, durably committed
    before the 200 is sent. Tool calls with a ``call_id`` are deduplicated per
    result; a repeat with the same ``Idempotency-Key`` replays the first
    response and stores nothing.
    """
    caller: Caller = request.scope["state"]["caller"]
    headers = request.headers
    if not _is_json(headers.get("content-type")):
        return validation_error(
            ["body"], "Content-Type must be application/json", "model_attributes_type"
        )
    key = headers.get("idempotency-key")
    if key is not None and not (
        0 < len(key) <= 255 and key.isascii() and key.isprintable() and " " not in key
    ):
        return validation_error(
            ["header", "Idempotency-Key"],
            "Idempotency-Key must be 1 to 255 printable ASCII characters without spaces",
            "string_pattern_mismatch",
        )
    body = await request.body()
    wire: Wire = request.app.state.wire
    try:
        update = wire.decode(body)
    except WireError as exc:
        return Response(
            content=_detail_json(exc.detail), status_code=422, media_type="application/json"
        )
    result_id = parse_id(update.simulation_result_id)
    if result_id is None:
        raise NotFound("simulation result", update.simulation_result_id)
    writer: IngestWriter | IngestProcess = request.app.state.ingest
    outcome = await writer.submit(
        caller,
        prepare_update(update),
        result_id,
        body,
        idempotency_key=key,
        source=_source(headers.get("user-agent")),
    )
    return Response(
        content=outcome.body,
        status_code=outcome.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if outcome.replayed else None,
    )


def _detail_json(detail: list[dict[str, Any]]) -> bytes:
    return dumps_json({"detail": detail}).encode()


@router.get(
    "/v1/retrieve-simulation-result/{test_result_id}",
    response_model=SingleSimulationResultResponse,
    responses=ERROR_RESPONSES,
    summary="Retrieve Simulation Result",
    tags=["results"],
)
async def retrieve_simulation_result(
    test_result_id: str, caller: CallerDep, db: DatabaseDep
) -> Any:
    """One result: status, tool-call groups, events, evaluation and Roost details."""
    result_id = parse_id(test_result_id)
    bundles = []
    if result_id is not None:
        async with db.read() as session:
            bundles = await load_bundles(session, caller.org_id, result_ids=[result_id])
    if not bundles:
        raise NotFound("simulation result", test_result_id)
    return {"simulation_result": result_response(bundles[0]), "status": "200"}


@router.get(
    "/v1/retrieve-simulation-results/{simulation_run_id}",
    response_model=SimulationResultsResponse,
    responses=ERROR_RESPONSES,
    summary="Retrieve Simulation Results",
    tags=["results"],
)
async def retrieve_simulation_results(
    simulation_run_id: str, caller: CallerDep, db: DatabaseDep
) -> Any:
    """A run with its counters and every result."""
    run_id = parse_id(simulation_run_id)
    run = None
    async with db.read() as session:
        if run_id is not None:
            run = (
                await session.execute(
                    select(SimulationRun).where(
                        SimulationRun.id == run_id, SimulationRun.org_id == caller.org_id
                    )
                )
            ).scalar_one_or_none()
        if run is None:
            raise NotFound("simulation run", simulation_run_id)
        bundles = await load_bundles(session, caller.org_id, run_id=run.id)
    pairs = [
        (
            bundle.result.status,
            (bundle.result.evaluation or {}).get("passed")
            if bundle.result.evaluated_at is not None
            else None,
        )
        for bundle in bundles
    ]
    return {
        "simulation_run": {
            "id": str(run.id),
            "simulation_id": str(run.simulation_id),
            "summary": run.summary,
            "status": run_status([status for status, _ in pairs]),
            "created_at": run.created_at,
            **run_counters(pairs),
        },
        "simulation_results": [result_response(bundle) for bundle in bundles],
        "status": "200",
    }


def _num_runs(dh_data: dict[str, Any], simulation_config: dict[str, Any]) -> int:
    value = dh_data.get("num_runs")
    if value is None:
        value = (simulation_config.get("digital_humans_settings") or {}).get("num_runs")
    return value if isinstance(value, int) and value >= 1 else 1


@router.post(
    "/v1/queue-simulation-run",
    response_model=SimulationRunResponse,
    responses=ERROR_RESPONSES,
    summary="Queue Simulation Run",
    tags=["runs"],
)
async def queue_simulation_run(
    body: SimulationRunRequest,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a run and its results, then hand them to the dispatcher."""
    limits = request.app.state.settings.limits
    if (
        body.digital_human_ids is not None
        and len(body.digital_human_ids) > limits.max_ids_per_request
    ):
        return validation_error(
            ["body", "digital_human_ids"],
            f"at most {limits.max_ids_per_request} digital humans per request",
            "too_long",
        )
    created: list[int] = []

    async def write(session: AsyncSession) -> tuple[int, Any]:
        simulation_id = parse_id(body.simulation_id)
        simulation = None
        if simulation_id is not None:
            simulation = (
                await session.execute(
                    select(Simulation).where(
                        Simulation.id == simulation_id, Simulation.org_id == caller.org_id
                    )
                )
            ).scalar_one_or_none()
        if simulation is None:
            raise NotFound("simulation", body.simulation_id)
        humans = await _digital_humans(session, caller, simulation, body.digital_human_ids)
        if not humans:
            raise RequestProblem(
                ["body", "simulation_id"],
                f"simulation {simulation.id} has no digital humans; create one with "
                "create-digital-human or pass digital_human_ids",
                "no_digital_humans",
            )
        plan = [(dh.id, _num_runs(dh.data, simulation.config)) for dh in humans]
        total = sum(runs for _, runs in plan)
        if total > limits.max_results_per_run:
            raise RequestProblem(
                ["body", "digital_human_ids"],
                f"this run would create {total} results; the limit is "
                f"{limits.max_results_per_run} (ROOST_MAX_RESULTS_PER_RUN)",
                "too_many_results",
            )
        now = utcnow()
        run = SimulationRun(
            org_id=caller.org_id,
            simulation_id=simulation.id,
            agent_id=simulation.agent_id,
            overrides=body.model_dump(
                mode="json", exclude_none=True, exclude={"simulation_id", "digital_human_ids"}
            ),
            created_at=now,
        )
        session.add(run)
        await session.flush()
        rows = [
            SimulationResult(
                org_id=caller.org_id,
                run_id=run.id,
                digital_human_id=dh_id,
                status=ResultStatus.QUEUED,
                created_at=now,
                enrichment_state=EnrichmentState.PENDING,
                batch_count=0,
                tool_call_count=0,
                evaluation_stale=False,
                evaluation_count=0,
                needs_attention=False,
            )
            for dh_id, runs in plan
            for _ in range(runs)
        ]
        session.add_all(rows)
        await session.flush()
        created[:] = [row.id for row in rows]
        return 200, {
            "simulation_run_id": str(run.id),
            "simulation_result_ids": [str(row.id) for row in rows],
            "agent_id": str(simulation.agent_id),
            "status": "success",
        }

    response, wrote = await idempotent_write(
        db=db,
        caller=caller,
        operation="queue-simulation-run",
        body=await request.body(),
        key=idempotency_key,
        write=write,
    )
    if wrote and created:
        try:
            await request.app.state.dispatcher.dispatch(list(created))
        except Exception:
            log.exception("dispatcher failed; results %s stay QUEUED", created)
    return response


async def _digital_humans(
    session: AsyncSession, caller: Caller, simulation: Simulation, raw_ids: list[str] | None
) -> list[DigitalHuman]:
    if raw_ids is None:
        query = (
            select(DigitalHuman)
            .join(
                SimulationDigitalHuman, SimulationDigitalHuman.digital_human_id == DigitalHuman.id
            )
            .where(SimulationDigitalHuman.simulation_id == simulation.id)
            .where(DigitalHuman.org_id == caller.org_id)
            .order_by(SimulationDigitalHuman.position, DigitalHuman.id)
        )
        return list((await session.execute(query)).scalars())
    humans = []
    for index, raw in enumerate(raw_ids):
        dh_id = parse_id(raw)
        dh = None
        if dh_id is not None:
            dh = (
                await session.execute(
                    select(DigitalHuman).where(
                        DigitalHuman.id == dh_id, DigitalHuman.org_id == caller.org_id
                    )
                )
            ).scalar_one_or_none()
        if dh is None:
            raise NotFound(f"digital human (digital_human_ids[{index}])", raw)
        humans.append(dh)
    return humans


@router.post(
    "/v1/re-evaluate-simulation-result/{simulation_result_id}",
    response_model=ReEvaluateSimulationResultResponse,
    responses={**ERROR_RESPONSES, 409: {"model": ErrorResponse, "description": "Call not ended"}},
    summary="Re-evaluate Simulation Result",
    tags=["results"],
)
async def re_evaluate_simulation_result(
    simulation_result_id: int, caller: CallerDep, db: DatabaseDep, request: Request
) -> Any:
    """Evaluate an ended result again, now, with everything stored so far."""
    result_id = parse_id(simulation_result_id)
    evaluation = None
    if result_id is not None:
        try:
            evaluation = await reevaluate(
                db,
                result_id,
                org_id=caller.org_id,
                judging=getattr(request.app.state, "judging", None),
            )
        except InvalidTransition as exc:
            raise Conflict(str(exc)) from None
    if evaluation is None:
        raise NotFound("simulation result", simulation_result_id)
    passed = evaluation.get("passed")
    verdict = {True: "passed", False: "failed", None: "not evaluated"}[passed]
    reason = evaluation.get("tool_calls", {}).get("reason")
    message = f"re-evaluated: tool calls {verdict}" + (f" ({reason})" if reason else "")
    return {"status": "success", "simulation_result_id": result_id, "message": message}


@router.get("/v1/ping", responses=ERROR_RESPONSES, summary="Pong", tags=["health"])
async def ping(caller: CallerDep) -> dict[str, str]:
    """Check connectivity and the API key."""
    return {"status": "ok", "message": "pong", "organization": caller.org_name}
