"""Concurrent enrichment through a real ``roost serve`` (uvicorn in a subprocess).

50 POSTs are in flight at once on 50 connections, so the group committer,
the idempotency claim and the database's own locking are exercised for real,
on SQLite (WAL) and on PostgreSQL, with the ingest writer in its own process
(the default) and in the server's process.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from roost.platform.storage import Agent, Database
from tests.platform.conftest import LiveServer, new_org, start_server, stop_server
from tests.platform.seed import check, seed_run

CONCURRENT = 50


@pytest.fixture(params=["writer-process", "writer-inline"])
def server(request: pytest.FixtureRequest, database_url: str) -> Iterator[LiveServer]:
    """``roost serve`` with its ingest writer in a child process, or inline."""
    inline = request.param == "writer-inline"
    live = start_server(database_url, env={"ROOST_INGEST_PROCESS": "false" if inline else "true"})
    try:
        yield live
    finally:
        stop_server(live)


def _body(result_id: str, index: int) -> dict[str, Any]:
    return {
        "simulation_result_id": result_id,
        "tool_calls": [
            {"name": "lookup", "start_offset_ms": index, "call_id": f"call-{index}"},
            {"name": "lookup", "start_offset_ms": index, "parameters": {"i": index}},
        ],
        "events": [{"title": f"event {index}", "start_offset_ms": index}],
    }


async def _fire(
    server: LiveServer, key: str, requests: list[tuple[dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=CONCURRENT, max_keepalive_connections=CONCURRENT)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"X-API-Key": key}, timeout=120, limits=limits
    ) as http:
        start = asyncio.Event()

        async def one(body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
            await start.wait()
            return await http.post("/v1/update-simulation-result", json=body, headers=headers)

        tasks = [asyncio.create_task(one(body, headers)) for body, headers in requests]
        await asyncio.sleep(0)
        start.set()
        return await asyncio.gather(*tasks)


async def _setup(server: LiveServer, db: Database) -> tuple[str, str]:
    org = await new_org(db)
    async with httpx.AsyncClient(base_url=server.url, headers=org.headers, timeout=60) as http:
        seeded = await seed_run(http)
    return org.key, seeded.result_ids[0]


async def _enrichment(server: LiveServer, key: str, result_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, headers={"X-API-Key": key}) as http:
        batches = check(await http.get(f"/v1/roost/simulation-results/{result_id}/enrichment"))
        result = check(await http.get(f"/v1/retrieve-simulation-result/{result_id}"))
    return {"batches": batches["batches"], "result": result["simulation_result"]}


async def test_50_concurrent_posts_with_distinct_keys_store_50_batches(
    server: LiveServer, db: Database
) -> None:
    key, rid = await _setup(server, db)
    requests = [(_body(rid, i), {"Idempotency-Key": f"distinct-{i}"}) for i in range(CONCURRENT)]
    responses = await _fire(server, key, requests)
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [
        r.text for r in responses if r.status_code != 200
    ]
    assert not any("Idempotent-Replayed" in r.headers for r in responses)

    stored = await _enrichment(server, key, rid)
    batches = stored["batches"]
    assert len(batches) == CONCURRENT
    assert sorted(b["idempotency_key"] for b in batches) == sorted(
        f"distinct-{i}" for i in range(CONCURRENT)
    )
    assert stored["result"]["roost"]["enrichment"]["batches"] == CONCURRENT
    assert stored["result"]["roost"]["enrichment"]["tool_call_count"] == 2 * CONCURRENT
    assert len(stored["result"]["events"]) == CONCURRENT


async def test_50_concurrent_posts_with_the_same_key_store_exactly_one(
    server: LiveServer, db: Database
) -> None:
    key, rid = await _setup(server, db)
    body = _body(rid, 7)
    requests = [(body, {"Idempotency-Key": "same-key"}) for _ in range(CONCURRENT)]
    responses = await _fire(server, key, requests)
    assert [r.status_code for r in responses] == [200] * CONCURRENT, [
        r.text for r in responses if r.status_code != 200
    ]
    assert len({r.content for r in responses}) == 1
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(replayed) == CONCURRENT - 1

    stored = await _enrichment(server, key, rid)
    assert [b["idempotency_key"] for b in stored["batches"]] == ["same-key"]
    assert stored["result"]["roost"]["enrichment"]["batches"] == 1
    assert stored["result"]["roost"]["enrichment"]["tool_call_count"] == 2
    assert len(stored["result"]["events"]) == 1


async def test_50_concurrent_posts_without_a_key_each_append_a_batch(
    server: LiveServer, db: Database
) -> None:
    key, rid = await _setup(server, db)
    requests = [(_body(rid, i % 5), {}) for i in range(CONCURRENT)]
    responses = await _fire(server, key, requests)
    assert [r.status_code for r in responses] == [200] * CONCURRENT
    stored = await _enrichment(server, key, rid)
    assert len(stored["batches"]) == CONCURRENT
    # call-0..call-4 each carried ten times: kept once each; unnamed ones all kept.
    assert stored["result"]["roost"]["enrichment"]["tool_call_count"] == 5 + CONCURRENT


async def test_concurrent_creates_with_the_same_key_make_one_object(
    live_server: LiveServer, db: Database
) -> None:
    org = await new_org(db)
    body = {"name": "once", "system_prompt": "", "knowledge_base": "", "goals": []}
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=org.headers, timeout=120
    ) as http:
        responses = await asyncio.gather(
            *(
                http.post("/v1/add-agent", json=body, headers={"Idempotency-Key": "agent-once"})
                for _ in range(20)
            )
        )
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses]
    assert len({r.json()["agent_id"] for r in responses}) == 1

    async with db.read() as session:
        count = (
            await session.execute(select(func.count()).where(Agent.org_id == org.id))
        ).scalar_one()
    assert count == 1
