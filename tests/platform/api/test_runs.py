"""Runs and results: queue, enrichment, retrieval, re-evaluation, ping.

Covers the semantics of issue 3: idempotent enrichment, call-id
deduplication, 404 for unknown results, the enrichment lifecycle (pending,
received, missing after the grace window) and stale evaluations after late
enrichment under both re-evaluation policies.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from tests.openapi import assert_valid
from tests.platform.conftest import AppFactory, Org, client_for
from tests.platform.seed import check, seed_run

EXPECTED = [{"name": "lookup_order", "parameters": {"order_id": "A-1"}}]


def _update(result_id: str, **fields: Any) -> dict[str, Any]:
    return {"simulation_result_id": result_id, **fields}


def _tool(name: str = "lookup_order", **extra: Any) -> dict[str, Any]:
    return {"name": name, "start_offset_ms": 1200, "parameters": {"order_id": "A-1"}, **extra}


async def _result(client: httpx.AsyncClient, result_id: str) -> dict[str, Any]:
    data = check(await client.get(f"/v1/retrieve-simulation-result/{result_id}"))
    assert_valid("SingleSimulationResultResponse", data)
    result: dict[str, Any] = data["simulation_result"]
    return result


async def _batches(client: httpx.AsyncClient, result_id: str) -> dict[str, Any]:
    return check(await client.get(f"/v1/roost/simulation-results/{result_id}/enrichment"))


async def settle(
    app: Any, http: httpx.AsyncClient, result_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Apply the lifecycle until ``done(result)`` holds.

    The app's own lifecycle worker is woken by the same events and may hold
    the row (PostgreSQL skips locked rows), so one ``run_once`` is not
    guaranteed to be the pass that applies the change.
    """
    deadline = time.monotonic() + 60
    while True:
        await app.state.lifecycle.run_once()
        result = await _result(http, result_id)
        if done(result) or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.05)


def evaluated(result: dict[str, Any]) -> bool:
    return result["status"] == "COMPLETED" and not result["roost"]["evaluation_stale"]


async def _end_call(client: httpx.AsyncClient, result_id: str) -> None:
    check(await client.post(f"/v1/roost/simulation-results/{result_id}/call-started", json={}))
    check(await client.post(f"/v1/roost/simulation-results/{result_id}/call-ended", json={}))


async def test_ping_names_the_organisation(client: httpx.AsyncClient, org: Org) -> None:
    assert check(await client.get("/v1/ping")) == {
        "status": "ok",
        "message": "pong",
        "organization": org.name,
    }


async def test_queue_creates_one_queued_result_per_human_and_run(
    client: httpx.AsyncClient,
) -> None:
    seeded = await seed_run(client, humans=2, num_runs=3)
    assert len(seeded.result_ids) == 6
    data = check(await client.get(f"/v1/retrieve-simulation-results/{seeded.run_id}"))
    assert_valid("SimulationResultsResponse", data)
    run = data["simulation_run"]
    assert run["id"] == seeded.run_id
    assert run["status"] == "INITIALIZING"
    assert run["total_tests"] == 6
    assert {str(r["id"]) for r in data["simulation_results"]} == set(seeded.result_ids)
    assert {r["status"] for r in data["simulation_results"]} == {"QUEUED"}
    assert {r["roost"]["enrichment"]["state"] for r in data["simulation_results"]} == {"pending"}


async def test_queue_response_matches_bluejays_schema(client: httpx.AsyncClient) -> None:
    seeded = await seed_run(client)
    response = check(
        await client.post(
            "/v1/queue-simulation-run",
            json={"simulation_id": str(seeded.simulation_id)},
            headers={"Idempotency-Key": "run-1"},
        )
    )
    assert_valid("src__main__SimulationRunResponse", response)
    assert response["status"] == "success"
    again = await client.post(
        "/v1/queue-simulation-run",
        json={"simulation_id": str(seeded.simulation_id)},
        headers={"Idempotency-Key": "run-1"},
    )
    assert again.json() == response
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_queue_for_unknown_simulation_is_404_and_empty_simulation_is_422(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/queue-simulation-run", json={"simulation_id": "777777"})
    assert response.status_code == 404
    assert response.json() == {"detail": "simulation 777777 not found"}
    agent = check(
        await client.post(
            "/v1/add-agent",
            json={"name": "a", "system_prompt": "", "knowledge_base": "", "goals": []},
        )
    )
    simulation = check(
        await client.post("/v1/create-simulation", json={"agent_id": str(agent["agent_id"])})
    )
    response = await client.post(
        "/v1/queue-simulation-run", json={"simulation_id": str(simulation["simulation_id"])}
    )
    assert response.status_code == 422
    assert_valid("HTTPValidationError", response.json())
    assert "no digital humans" in response.json()["detail"][0]["msg"]


async def test_queue_hands_new_results_to_the_dispatcher(make_app: AppFactory, org: Org) -> None:
    received: list[list[int]] = []

    class Recording:
        async def dispatch(self, result_ids: list[int]) -> None:
            received.append(list(result_ids))

    async with make_app(dispatcher=Recording()) as app, client_for(app, org.headers) as http:
        seeded = await seed_run(http, humans=1, num_runs=2)
    assert received == [[int(i) for i in seeded.result_ids]]


async def test_update_stores_a_batch_and_retrieve_shows_it(client: httpx.AsyncClient) -> None:
    seeded = await seed_run(client, expected_tool_calls=EXPECTED)
    rid = seeded.result_ids[0]
    body = _update(
        rid,
        tool_calls=[_tool(call_id="c1", duration_ms=35, status="ok")],
        events=[{"title": "greeted", "start_offset_ms": 10}],
        tags=["nightly"],
        metadata={"build": "42"},
        trace_ids=["trace-1"],
        recorded_transcript=[
            {"speaker": "AGENT", "utterance": "Hello", "start_offset_ms": 0, "end_offset_ms": 800}
        ],
    )
    response = await client.post("/v1/update-simulation-result", json=body)
    data = check(response)
    assert_valid("UpdateSimulationResponse", data)
    assert data["status"] == "success"

    result = await _result(client, rid)
    assert result["roost"]["enrichment"]["state"] == "received"
    assert result["roost"]["enrichment"]["batches"] == 1
    assert result["trace_ids"] == ["trace-1"]
    assert result["roost"]["tags"] == ["nightly"]
    assert result["roost"]["metadata"] == {"build": "42"}
    assert [group["name"] for group in result["tool_calls"]] == ["lookup_order"]
    calls = result["tool_calls"][0]["actual"]
    assert [(c["call_id"], c["duration_ms"], c["status"]) for c in calls] == [("c1", 35, "ok")]
    assert [e["title"] for e in result["events"]] == ["greeted"]
    assert [t["utterance"] for t in result["roost"]["recorded_transcript"]] == ["Hello"]


async def test_same_idempotency_key_returns_first_response_and_stores_nothing_new(
    client: httpx.AsyncClient,
) -> None:
    seeded = await seed_run(client)
    rid = seeded.result_ids[0]
    body = _update(rid, tool_calls=[_tool()])
    headers = {"Idempotency-Key": "enrich-1"}
    first = await client.post("/v1/update-simulation-result", json=body, headers=headers)
    second = await client.post("/v1/update-simulation-result", json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert second.headers["Idempotent-Replayed"] == "true"
    batches = await _batches(client, rid)
    assert len(batches["batches"]) == 1
    assert batches["batches"][0]["idempotency_key"] == "enrich-1"
    assert batches["batches"][0]["tool_calls"] == 1
    result = await _result(client, rid)
    assert result["roost"]["enrichment"]["tool_call_count"] == 1


async def test_without_a_key_every_post_appends_a_batch(client: httpx.AsyncClient) -> None:
    seeded = await seed_run(client)
    rid = seeded.result_ids[0]
    body = _update(rid, tool_calls=[_tool()])
    for _ in range(3):
        check(await client.post("/v1/update-simulation-result", json=body))
    batches = await _batches(client, rid)
    assert len(batches["batches"]) == 3
    assert all(batch["idempotency_key"] is None for batch in batches["batches"])
    assert (await _result(client, rid))["roost"]["enrichment"]["tool_call_count"] == 3


async def test_tool_calls_with_a_call_id_are_deduplicated(client: httpx.AsyncClient) -> None:
    seeded = await seed_run(client)
    rid = seeded.result_ids[0]
    first = _update(rid, tool_calls=[_tool(call_id="c1"), _tool(call_id="c2")])
    second = _update(rid, tool_calls=[_tool(call_id="c2"), _tool(call_id="c3"), _tool()])
    check(await client.post("/v1/update-simulation-result", json=first))
    check(await client.post("/v1/update-simulation-result", json=second))
    batches = (await _batches(client, rid))["batches"]
    assert [(b["tool_calls"], b["duplicate_tool_calls"]) for b in batches] == [(2, 0), (3, 1)]
    result = await _result(client, rid)
    calls = [call for group in result["tool_calls"] for call in group["actual"]]
    assert sorted(str(call["call_id"]) for call in calls) == ["None", "c1", "c2", "c3"]


async def test_unknown_result_is_404_with_a_clear_message(client: httpx.AsyncClient) -> None:
    for raw in ("999999999", "abc", "-1", "0", "99999999999999999999999"):
        response = await client.post("/v1/update-simulation-result", json=_update(raw))
        assert response.status_code == 404, (raw, response.text)
        assert response.json()["detail"].startswith("simulation result ")
        assert response.json()["detail"].endswith(" not found")
        response = await client.get(f"/v1/retrieve-simulation-result/{raw}")
        assert response.status_code == 404, (raw, response.text)
    response = await client.get("/v1/retrieve-simulation-results/424242")
    assert response.status_code == 404
    assert response.json() == {"detail": "simulation run 424242 not found"}
    response = await client.post("/v1/re-evaluate-simulation-result/424242")
    assert response.status_code == 404
    assert response.json() == {"detail": "simulation result 424242 not found"}


async def test_enrichment_then_hang_up_is_evaluated_on_the_tool_calls(
    client: httpx.AsyncClient,
) -> None:
    seeded = await seed_run(client, expected_tool_calls=EXPECTED)
    rid = seeded.result_ids[0]
    check(
        await client.post("/v1/update-simulation-result", json=_update(rid, tool_calls=[_tool()]))
    )
    await _end_call(client, rid)
    result = await settle(client.app, client, rid, evaluated)  # type: ignore[attr-defined]
    assert result["status"] == "COMPLETED"
    assert result["roost"]["evaluation"]["passed"] is True
    assert result["roost"]["evaluation"]["tool_calls"]["evaluated"] is True
    assert result["roost"]["evaluation_stale"] is False
    run = check(await client.get(f"/v1/retrieve-simulation-results/{seeded.run_id}"))
    assert_valid("SimulationResultsResponse", run)
    assert run["simulation_run"]["status"] == "COMPLETED"
    assert run["simulation_run"]["tests_passed"] == 1


async def test_missing_enrichment_after_grace_is_flagged_never_evaluated_as_no_tools(
    make_app: AppFactory, org: Org
) -> None:
    async with make_app(enrichment_grace_seconds=0) as app, client_for(app, org.headers) as http:
        # An expectation that *no* tool is called would pass on an empty list:
        # missing enrichment must not be read as "the agent called nothing".
        seeded = await seed_run(
            http,
            extra={"tool_call_rules": {"tools": [{"name": "lookup_order", "forbidden": True}]}},
        )
        rid = seeded.result_ids[0]
        before = await _result(http, rid)
        assert before["roost"]["enrichment"]["state"] == "pending"
        await _end_call(http, rid)
        result = await settle(app, http, rid, evaluated)
    assert result["status"] == "COMPLETED"
    assert result["roost"]["enrichment"]["state"] == "missing"
    evaluation = result["roost"]["evaluation"]
    assert evaluation["passed"] is None
    assert evaluation["tool_calls"] == {
        "evaluated": False,
        "reason": "not evaluated: enrichment missing",
    }


async def test_pending_enrichment_waits_for_the_grace_window(
    make_app: AppFactory, org: Org
) -> None:
    async with make_app(enrichment_grace_seconds=3600) as app, client_for(app, org.headers) as http:
        seeded = await seed_run(http, expected_tool_calls=EXPECTED)
        rid = seeded.result_ids[0]
        await _end_call(http, rid)
        await app.state.lifecycle.run_once()
        result = await _result(http, rid)
    assert result["status"] == "CONVERSATION_ENDED"
    assert result["roost"]["enrichment"]["state"] == "pending"
    assert result["roost"]["evaluation"] is None


async def _late_enrichment(app: Any, http: httpx.AsyncClient) -> str:
    seeded = await seed_run(http, expected_tool_calls=EXPECTED)
    rid = seeded.result_ids[0]
    await _end_call(http, rid)
    first = await settle(app, http, rid, evaluated)
    assert first["status"] == "COMPLETED"
    assert first["roost"]["enrichment"]["state"] == "missing"
    check(await http.post("/v1/update-simulation-result", json=_update(rid, tool_calls=[_tool()])))
    return rid


async def test_late_enrichment_is_stored_marks_stale_and_auto_policy_reevaluates(
    make_app: AppFactory, org: Org
) -> None:
    async with (
        make_app(enrichment_grace_seconds=0, reevaluate_late="auto") as app,
        client_for(app, org.headers) as http,
    ):
        rid = await _late_enrichment(app, http)
        batches = (await _batches(http, rid))["batches"]
        assert [batch["late"] for batch in batches] == [True]
        result = await settle(app, http, rid, evaluated)
    assert result["roost"]["enrichment"]["state"] == "received"
    assert result["roost"]["evaluation_stale"] is False
    assert result["roost"]["evaluation"]["passed"] is True


async def test_late_enrichment_with_manual_policy_stays_stale_until_reevaluated(
    make_app: AppFactory, org: Org
) -> None:
    async with (
        make_app(enrichment_grace_seconds=0, reevaluate_late="manual") as app,
        client_for(app, org.headers) as http,
    ):
        rid = await _late_enrichment(app, http)
        await app.state.lifecycle.run_once()
        stale = await _result(http, rid)
        assert stale["roost"]["evaluation_stale"] is True
        assert stale["roost"]["evaluation"]["passed"] is None
        response = check(await http.post(f"/v1/re-evaluate-simulation-result/{rid}"))
        assert_valid("ReEvaluateSimulationResultResponse", response)
        assert response["status"] == "success"
        assert response["simulation_result_id"] == int(rid)
        assert "passed" in response["message"]
        fresh = await _result(http, rid)
    assert fresh["roost"]["evaluation_stale"] is False
    assert fresh["roost"]["evaluation"]["passed"] is True


async def test_reevaluating_a_call_that_has_not_ended_is_409(client: httpx.AsyncClient) -> None:
    seeded = await seed_run(client)
    response = await client.post(f"/v1/re-evaluate-simulation-result/{seeded.result_ids[0]}")
    assert response.status_code == 409
    assert response.json()["detail"]


async def test_call_progress_reports_move_the_status(client: httpx.AsyncClient) -> None:
    seeded = await seed_run(client, humans=1, num_runs=2)
    ok, failed = seeded.result_ids
    started = check(await client.post(f"/v1/roost/simulation-results/{ok}/call-started", json={}))
    assert started["status"] == "RUNNING"
    ended = check(
        await client.post(
            f"/v1/roost/simulation-results/{failed}/call-ended",
            json={"outcome": "no_answer", "error_code": "NO_ANSWER"},
        )
    )
    assert ended["status"] == "INCOMPLETED"
    result = await _result(client, failed)
    assert result["roost"]["error_code"] == "NO_ANSWER"
    again = await client.post(f"/v1/roost/simulation-results/{failed}/call-started", json={})
    assert again.status_code == 409
