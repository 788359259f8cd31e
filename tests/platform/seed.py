"""Build agents, simulations, digital humans and runs through the API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx


@dataclass(frozen=True)
class Seeded:
    """Ids created by :func:`seed_run` (ids as the API returned them)."""

    agent_id: int
    simulation_id: int
    digital_human_ids: list[int]
    run_id: str
    result_ids: list[str]


def check(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    """Assert the status (showing the body on failure) and return the JSON."""
    assert response.status_code == status, (response.status_code, response.text)
    data: dict[str, Any] = response.json()
    return data


async def seed_run(
    client: httpx.AsyncClient,
    *,
    expected_tool_calls: list[dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    humans: int = 1,
    num_runs: int = 1,
) -> Seeded:
    """Agent -> simulation -> digital humans -> a queued run."""
    agent = check(
        await client.post(
            "/v1/add-agent",
            json={"name": "agent", "system_prompt": "help", "knowledge_base": "", "goals": []},
        )
    )
    simulation = check(
        await client.post(
            "/v1/create-simulation", json={"agent_id": str(agent["agent_id"]), "name": "suite"}
        )
    )
    dh_ids = []
    for _ in range(humans):
        data: dict[str, Any] = {"phone_number": "+15550100", "num_runs": num_runs}
        if expected_tool_calls is not None:
            data["expected_tool_calls"] = expected_tool_calls
        data.update(extra or {})
        created = check(
            await client.post(
                "/v1/create-digital-human",
                json={"simulation_ids": [simulation["simulation_id"]], "digital_human": data},
            )
        )
        dh_ids.append(created["digital_human"]["id"])
    run = check(
        await client.post(
            "/v1/queue-simulation-run", json={"simulation_id": str(simulation["simulation_id"])}
        )
    )
    return Seeded(
        agent_id=agent["agent_id"],
        simulation_id=simulation["simulation_id"],
        digital_human_ids=dh_ids,
        run_id=run["simulation_run_id"],
        result_ids=run["simulation_result_ids"],
    )
