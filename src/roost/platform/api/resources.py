"""Bluejay's agent, simulation and digital-human operations.

- ``POST /v1/add-agent``, ``GET /v1/agents/{agent_id}``, ``POST /v1/update-agent``
- ``POST /v1/create-simulation``, ``GET /v1/simulation/{simulation_id}``
- ``POST /v1/create-digital-human``, ``GET /v1/digital-human/{digital_human_id}``

Agent passwords (``websocket_password``, ``sip_password``) are stored because
the caller needs them to authenticate to the agent, but never returned: reads
show ``"********"`` when one is set, and an update that sends that mask back
leaves the stored value unchanged (so read-modify-write clients do not
overwrite a password with the mask).

Digital humans are checked with the evaluation engine's parser when created:
a malformed ``expected_tool_calls`` or ``tool_call_rules`` is a 422 naming the
exact location, not a surprise at evaluation time.

Example:
    >>> router.prefix
    ''
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from roost.platform.api.common import (
    ERROR_RESPONSES,
    CallerDep,
    DatabaseDep,
    IdempotencyKey,
    NotFound,
    idempotent_write,
    parse_id,
    validation_error,
)
from roost.platform.api.resource_models import (
    AgentPydantic,
    AgentRequest,
    AgentResponse,
    AgentUpdateRequest,
    AgentUpdateResponse,
    CreateDigitalHumanRequest,
    DigitalHumanResponse,
    SimulationPydantic,
    SimulationRequest,
    SimulationResponse,
)
from roost.platform.auth import Caller
from roost.platform.evaluation import ExpectationError, ToolExpectations
from roost.platform.storage import (
    Agent,
    DigitalHuman,
    Simulation,
    SimulationDigitalHuman,
    utcnow,
)

__all__ = ["router"]

router = APIRouter()

MASK = "********"
_SECRETS = ("websocket_password", "sip_password")


def _text_ok(value: str | None) -> bool:
    return value is None or "\x00" not in value


def _agent_payload(agent: Agent, caller: Caller) -> dict[str, Any]:
    config = dict(agent.config)
    for secret in _SECRETS:
        if config.get(secret) is not None:
            config[secret] = MASK
    return {
        "id": agent.id,
        "name": agent.name,
        "agent_description": config.get("system_prompt") or "",
        "knowledge_base": config.get("knowledge_base") or "",
        "organization_id": str(caller.org_id),
        "goals": config.get("goals"),
        "mode": config.get("mode") or "VOICE",
        "type": config.get("type"),
        "connection_type": config.get("connection_type"),
        "phone_number": config.get("phone_number"),
        "websocket_url": config.get("websocket_url"),
        "redact_pii": config.get("redact_pii"),
        "folder_id": None,
        "created_at": agent.created_at,
        "keyterms": config.get("keyterms"),
        "voice_provider": config.get("voice_provider"),
        "provider_id": config.get("provider_id"),
        "websocket_username": config.get("websocket_username"),
        "websocket_password": config.get("websocket_password"),
        "external_agent_id": agent.external_agent_id,
        "sip_uri": config.get("sip_uri"),
        "custom_sip_headers": config.get("custom_sip_headers"),
        "sip_username": config.get("sip_username"),
        "sip_password": config.get("sip_password"),
        "simulation_notifications": {},
        "livekit_agent_name": config.get("livekit_agent_name"),
        "livekit_metadata": config.get("livekit_metadata"),
        "pipecat_agent_name": config.get("pipecat_agent_name"),
        "pipecat_agent_configuration": config.get("pipecat_agent_configuration"),
        "pipecat_room_properties": config.get("pipecat_room_properties"),
        "http_webhook": config.get("http_webhook"),
        "http_webhook_key": None,
        "enable_outbound_call_auto_start": config.get("enable_outbound_call_auto_start"),
    }


@router.post(
    "/v1/add-agent",
    response_model=AgentResponse,
    responses=ERROR_RESPONSES,
    summary="Add Agent",
    tags=["agents"],
)
async def add_agent(
    body: AgentRequest,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Register the agent under test and how to reach it."""
    if not (_text_ok(body.name) and _text_ok(body.external_agent_id)):
        return validation_error(
            ["body", "name"], "String must not contain NUL characters", "string_nul"
        )

    async def write(session: AsyncSession) -> tuple[int, Any]:
        now = utcnow()
        agent = Agent(
            org_id=caller.org_id,
            name=body.name,
            external_agent_id=body.external_agent_id,
            config=body.model_dump(mode="json"),
            created_at=now,
            updated_at=now,
        )
        session.add(agent)
        await session.flush()
        return 200, {"agent_id": agent.id, "status": "200", "http_webhook_key": None}

    response, _ = await idempotent_write(
        db=db,
        caller=caller,
        operation="add-agent",
        body=await request.body(),
        key=idempotency_key,
        write=write,
    )
    return response


@router.get(
    "/v1/agents/{agent_id}",
    response_model=AgentPydantic,
    responses=ERROR_RESPONSES,
    summary="Get Agent",
    tags=["agents"],
)
async def get_agent(agent_id: int, caller: CallerDep, db: DatabaseDep) -> Any:
    """Read an agent (passwords masked)."""
    async with db.read() as session:
        agent = await _agent(session, caller, agent_id)
    return _agent_payload(agent, caller)


async def _agent(session: AsyncSession, caller: Caller, raw_id: str | int) -> Agent:
    agent_id = parse_id(raw_id)
    agent = None
    if agent_id is not None:
        agent = (
            await session.execute(
                select(Agent).where(Agent.id == agent_id, Agent.org_id == caller.org_id)
            )
        ).scalar_one_or_none()
    if agent is None:
        raise NotFound("agent", raw_id)
    return agent


@router.post(
    "/v1/update-agent",
    response_model=AgentUpdateResponse,
    responses=ERROR_RESPONSES,
    summary="Update Agent",
    tags=["agents"],
)
async def update_agent(
    body: AgentUpdateRequest,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Change an agent; omitted or null fields stay as they are."""
    if body.agent_id is None and body.external_agent_id is None:
        return validation_error(
            ["body", "agent_id"], "give agent_id or external_agent_id", "missing"
        )
    if not (_text_ok(body.name) and _text_ok(body.external_agent_id)):
        return validation_error(
            ["body", "name"], "String must not contain NUL characters", "string_nul"
        )

    async def write(session: AsyncSession) -> tuple[int, Any]:
        agent: Agent | None
        if body.agent_id is not None:
            agent = await _agent(session, caller, body.agent_id)
        else:
            agent = (
                await session.execute(
                    select(Agent)
                    .where(Agent.org_id == caller.org_id)
                    .where(Agent.external_agent_id == body.external_agent_id)
                    .order_by(Agent.id)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if agent is None:
                raise NotFound("agent with external_agent_id", body.external_agent_id)
        changes = body.model_dump(mode="json", exclude_none=True, exclude={"agent_id"})
        for secret in _SECRETS:
            if changes.get(secret) == MASK:
                del changes[secret]
        config = {**agent.config, **changes}
        agent.config = config
        if body.name is not None:
            agent.name = body.name
        if body.external_agent_id is not None:
            agent.external_agent_id = body.external_agent_id
        agent.updated_at = utcnow()
        shown = {key: config.get(key) for key in AgentUpdateRequest.model_fields}
        shown["agent_id"] = str(agent.id)
        shown["name"] = agent.name
        shown["external_agent_id"] = agent.external_agent_id
        for secret in _SECRETS:
            if shown.get(secret) is not None:
                shown[secret] = MASK
        return 200, {"agent": shown, "status": "200", "http_webhook_key": None}

    response, _ = await idempotent_write(
        db=db,
        caller=caller,
        operation="update-agent",
        body=await request.body(),
        key=idempotency_key,
        write=write,
    )
    return response


def _simulation_type(config: dict[str, Any]) -> str:
    if config.get("sequential_calling"):
        return "sequential"
    if config.get("max_concurrent") is not None:
        return "max_concurrent"
    return "parallel"


@router.post(
    "/v1/create-simulation",
    response_model=SimulationResponse,
    responses=ERROR_RESPONSES,
    summary="Create Simulation",
    tags=["simulations"],
)
async def create_simulation(
    body: SimulationRequest,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a simulation (a test suite) for an agent."""
    if not (_text_ok(body.name) and _text_ok(body.description)):
        return validation_error(
            ["body", "name"], "String must not contain NUL characters", "string_nul"
        )

    async def write(session: AsyncSession) -> tuple[int, Any]:
        agent = await _agent(session, caller, body.agent_id)
        simulation = Simulation(
            org_id=caller.org_id,
            agent_id=agent.id,
            name=body.name or "Untitled simulation",
            description=body.description,
            config=body.model_dump(mode="json"),
            created_at=utcnow(),
        )
        session.add(simulation)
        await session.flush()
        return 200, {"simulation_id": simulation.id, "status": "200"}

    response, _ = await idempotent_write(
        db=db,
        caller=caller,
        operation="create-simulation",
        body=await request.body(),
        key=idempotency_key,
        write=write,
    )
    return response


async def _simulation(session: AsyncSession, caller: Caller, raw_id: str | int) -> Simulation:
    simulation_id = parse_id(raw_id)
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
        raise NotFound("simulation", raw_id)
    return simulation


@router.get(
    "/v1/simulation/{simulation_id}",
    response_model=SimulationPydantic,
    responses=ERROR_RESPONSES,
    summary="Get Simulation",
    tags=["simulations"],
)
async def get_simulation(simulation_id: int, caller: CallerDep, db: DatabaseDep) -> Any:
    """Read a simulation."""
    async with db.read() as session:
        simulation = await _simulation(session, caller, simulation_id)
    config = simulation.config
    return {
        "id": simulation.id,
        "agent_id": simulation.agent_id,
        "name": simulation.name,
        "created_at": simulation.created_at,
        "settings": config,
        "type": _simulation_type(config),
        "max_concurrent": config.get("max_concurrent"),
        "max_turns": None,
        "ringing_timeout": config.get("ringing_timeout"),
        "tags": None,
        "description": simulation.description,
        "pinned": False,
        "always_on": config.get("always_on"),
    }


def _digital_human_payload(dh: DigitalHuman, simulation_ids: list[int]) -> dict[str, Any]:
    data = dict(dh.data)
    data["id"] = dh.id
    data["created_at"] = dh.created_at
    data.setdefault("websocket_url", None)
    return {
        "digital_human": data,
        "simulation_ids": simulation_ids,
        "simulation_id": simulation_ids[0] if simulation_ids else None,
    }


@router.post(
    "/v1/create-digital-human",
    response_model=DigitalHumanResponse,
    responses=ERROR_RESPONSES,
    summary="Create Digital Human",
    tags=["digital humans"],
)
async def create_digital_human(
    body: CreateDigitalHumanRequest,
    request: Request,
    caller: CallerDep,
    db: DatabaseDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a simulated caller, optionally adding it to simulations."""
    limits = request.app.state.settings.limits
    data = body.digital_human.model_dump(mode="json")
    try:
        ToolExpectations.from_digital_human(data)
    except ExpectationError as exc:
        return validation_error(
            ["body", "digital_human", *exc.loc], exc.message, "invalid_tool_expectations"
        )
    wanted = list(body.simulation_ids or [])
    if body.simulation_id is not None and body.simulation_id not in wanted:
        wanted.append(body.simulation_id)
    if len(wanted) > limits.max_ids_per_request:
        return validation_error(
            ["body", "simulation_ids"],
            f"at most {limits.max_ids_per_request} simulations per request",
            "too_long",
        )

    async def write(session: AsyncSession) -> tuple[int, Any]:
        simulations = [await _simulation(session, caller, raw) for raw in dict.fromkeys(wanted)]
        dh = DigitalHuman(org_id=caller.org_id, data=data, created_at=utcnow())
        session.add(dh)
        await session.flush()
        for simulation in simulations:
            session.add(SimulationDigitalHuman(simulation_id=simulation.id, digital_human_id=dh.id))
        return 200, _digital_human_payload(dh, [s.id for s in simulations])

    response, _ = await idempotent_write(
        db=db,
        caller=caller,
        operation="create-digital-human",
        body=await request.body(),
        key=idempotency_key,
        write=write,
    )
    return response


@router.get(
    "/v1/digital-human/{digital_human_id}",
    response_model=DigitalHumanResponse,
    responses=ERROR_RESPONSES,
    summary="Get Digital Human",
    tags=["digital humans"],
)
async def get_digital_human(digital_human_id: int, caller: CallerDep, db: DatabaseDep) -> Any:
    """Read a digital human, with its expected tool calls and Roost rules."""
    dh_id = parse_id(digital_human_id)
    async with db.read() as session:
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
            raise NotFound("digital human", digital_human_id)
        simulation_ids = list(
            (
                await session.execute(
                    select(SimulationDigitalHuman.simulation_id)
                    .where(SimulationDigitalHuman.digital_human_id == dh.id)
                    .order_by(SimulationDigitalHuman.simulation_id)
                )
            ).scalars()
        )
    return _digital_human_payload(dh, simulation_ids)
