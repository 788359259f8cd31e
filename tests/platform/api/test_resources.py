"""Agents, simulations and digital humans: Bluejay's shapes, status codes and 404s."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from roost.platform.storage import Agent, Database
from tests.openapi import assert_valid
from tests.platform.seed import check

DH_RESPONSE = "src__models__digital_humans__digital_human_response__DigitalHumanResponse"

AGENT = {
    "name": "front desk",
    "system_prompt": "You book tables.",
    "knowledge_base": "Open 12-23h.",
    "goals": ["book a table"],
    "connection_type": "SIP",
    "sip_uri": "sip:agent@127.0.0.1:5070",
    "sip_username": "roost",
    "sip_password": "s3cret",
    "custom_sip_headers": {"X-Tenant": "eu-1"},
    "websocket_url": "wss://agent.example/ws",
    "websocket_username": "ws-user",
    "websocket_password": "ws-pass",
}


async def _agent(client: httpx.AsyncClient, **extra: Any) -> dict[str, Any]:
    return check(await client.post("/v1/add-agent", json={**AGENT, **extra}))


async def test_add_agent_then_get_it_in_bluejays_shape_with_passwords_masked(
    client: httpx.AsyncClient,
) -> None:
    created = await _agent(client, external_agent_id="ext-1")
    assert_valid("AgentResponse", created)
    assert created["status"] == "200"

    agent = check(await client.get(f"/v1/agents/{created['agent_id']}"))
    assert_valid("AgentPydantic", agent)
    assert agent["id"] == created["agent_id"]
    assert agent["name"] == "front desk"
    assert agent["agent_description"] == "You book tables."
    assert agent["sip_uri"] == "sip:agent@127.0.0.1:5070"
    assert agent["sip_username"] == "roost"
    assert agent["custom_sip_headers"] == {"X-Tenant": "eu-1"}
    assert agent["websocket_url"] == "wss://agent.example/ws"
    assert agent["websocket_username"] == "ws-user"
    assert agent["external_agent_id"] == "ext-1"
    # Credentials are kept for the caller but never read back.
    assert agent["sip_password"] == "********"
    assert agent["websocket_password"] == "********"
    assert "s3cret" not in str(agent)


async def test_update_agent_changes_fields_and_keeps_masked_password(
    client: httpx.AsyncClient, db: Database
) -> None:
    created = await _agent(client)
    agent_id = created["agent_id"]
    before = check(await client.get(f"/v1/agents/{agent_id}"))
    # A read-modify-write client sends the mask back: the password must survive.
    updated = check(
        await client.post(
            "/v1/update-agent",
            json={
                "agent_id": str(agent_id),
                "name": "renamed",
                "sip_uri": "sip:other@127.0.0.1:5080",
                "sip_password": before["sip_password"],
            },
        )
    )
    assert_valid("AgentUpdateResponse", updated)
    assert updated["agent"]["name"] == "renamed"
    assert updated["agent"]["sip_uri"] == "sip:other@127.0.0.1:5080"

    async with db.read() as session:
        row = (await session.execute(select(Agent).where(Agent.id == agent_id))).scalar_one()
    assert row.config["sip_password"] == "s3cret"
    assert row.config["websocket_password"] == "ws-pass"

    check(
        await client.post(
            "/v1/update-agent", json={"agent_id": str(agent_id), "sip_password": "rotated"}
        )
    )
    async with db.read() as session:
        row = (await session.execute(select(Agent).where(Agent.id == agent_id))).scalar_one()
    assert row.config["sip_password"] == "rotated"


async def test_unknown_agent_is_404_with_a_clear_message(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/agents/987654321")
    assert response.status_code == 404
    assert response.json() == {"detail": "agent 987654321 not found"}
    response = await client.post("/v1/update-agent", json={"agent_id": "987654321", "name": "x"})
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


async def test_agent_path_id_that_is_not_an_integer_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/agents/abc")
    assert response.status_code == 422
    assert_valid("HTTPValidationError", response.json())
    assert response.json()["detail"][0]["loc"] == ["path", "agent_id"]


async def test_create_simulation_and_get_it(client: httpx.AsyncClient) -> None:
    agent = await _agent(client)
    created = check(
        await client.post(
            "/v1/create-simulation",
            json={
                "agent_id": str(agent["agent_id"]),
                "name": "dinner bookings",
                "description": "peak hours",
                "max_concurrent": 3,
                "digital_humans_settings": {"num_runs": 2},
            },
        )
    )
    assert_valid("SimulationResponse", created)
    simulation = check(await client.get(f"/v1/simulation/{created['simulation_id']}"))
    assert_valid("SimulationPydantic", simulation)
    assert simulation["id"] == created["simulation_id"]
    assert simulation["name"] == "dinner bookings"
    assert str(simulation["agent_id"]) == str(agent["agent_id"])


async def test_create_simulation_for_unknown_agent_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/create-simulation", json={"agent_id": "424242"})
    assert response.status_code == 404
    assert response.json()["detail"] == "agent 424242 not found"
    response = await client.get("/v1/simulation/424242")
    assert response.status_code == 404
    assert response.json()["detail"] == "simulation 424242 not found"


async def test_create_digital_human_with_expected_tool_calls_and_get_it(
    client: httpx.AsyncClient,
) -> None:
    agent = await _agent(client)
    simulation = check(
        await client.post("/v1/create-simulation", json={"agent_id": str(agent["agent_id"])})
    )
    expected = [
        {"name": "check_availability", "parameters": {"party_size": 4}},
        {"name": "book_table"},
    ]
    created = check(
        await client.post(
            "/v1/create-digital-human",
            json={
                "simulation_ids": [simulation["simulation_id"]],
                "digital_human": {
                    "name": "Ada",
                    "phone_number": "+15550100",
                    "expected_tool_calls": expected,
                    "num_runs": 2,
                },
            },
        )
    )
    assert_valid(DH_RESPONSE, created)
    dh_id = created["digital_human"]["id"]
    fetched = check(await client.get(f"/v1/digital-human/{dh_id}"))
    assert_valid(DH_RESPONSE, fetched)
    stored = fetched["digital_human"]["expected_tool_calls"]
    assert [(call["name"], call.get("parameters")) for call in stored] == [
        ("check_availability", {"party_size": 4}),
        ("book_table", None),
    ]
    assert fetched["simulation_ids"] == [simulation["simulation_id"]]


async def test_malformed_expected_tool_calls_are_422_naming_the_location(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/v1/create-digital-human",
        json={"digital_human": {"expected_tool_calls": [{"name": "ok"}, {"parameters": 5}]}},
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert_valid("HTTPValidationError", body)
    assert body["detail"][0]["loc"][:3] == ["body", "digital_human", "expected_tool_calls"]


async def test_digital_human_for_unknown_simulation_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/create-digital-human",
        json={"simulation_ids": [31337], "digital_human": {"phone_number": "+15550100"}},
    )
    assert response.status_code == 404
    assert "31337 not found" in response.json()["detail"]
    response = await client.get("/v1/digital-human/31337")
    assert response.status_code == 404
    assert response.json()["detail"] == "digital human 31337 not found"


async def test_create_with_the_same_idempotency_key_returns_the_first_object(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "agent-create-1"}
    first = await client.post("/v1/add-agent", json=AGENT, headers=headers)
    second = await client.post("/v1/add-agent", json=AGENT, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers["Idempotent-Replayed"] == "true"
    # The same key for a different request is refused rather than replayed.
    other = await client.post("/v1/add-agent", json={**AGENT, "name": "x"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    fresh = check(await client.post("/v1/add-agent", json=AGENT))
    assert fresh["agent_id"] != first.json()["agent_id"]
