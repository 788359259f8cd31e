"""A 200 from update-simulation-result means committed: a SIGKILL loses nothing.

``roost serve`` runs in a subprocess; as soon as every response is in, the
process is killed without any chance to flush, and the database is read
directly. Every acknowledged batch must be there.
"""

from __future__ import annotations

import asyncio
import signal

import httpx
from sqlalchemy import func, select

from roost.platform.storage import Database, EnrichmentBatch, ToolCallRow
from tests.platform.conftest import new_org, start_server, stop_server
from tests.platform.seed import seed_run

REQUESTS = 30


async def test_every_acknowledged_batch_survives_a_sigkill(database_url: str, db: Database) -> None:
    org = await new_org(db)
    server = await asyncio.to_thread(start_server, database_url)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=org.headers, timeout=120) as http:
            rid = (await seed_run(http)).result_ids[0]
            responses = await asyncio.gather(
                *(
                    http.post(
                        "/v1/update-simulation-result",
                        json={
                            "simulation_result_id": rid,
                            "tool_calls": [{"name": "t", "start_offset_ms": i, "call_id": f"c{i}"}],
                        },
                        headers={"Idempotency-Key": f"durable-{i}"},
                    )
                    for i in range(REQUESTS)
                )
            )
        assert [r.status_code for r in responses] == [200] * REQUESTS
        server.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.process.wait, 30)
    finally:
        await asyncio.to_thread(stop_server, server)

    async with db.read() as session:
        batches = (
            await session.execute(select(func.count()).where(EnrichmentBatch.result_id == int(rid)))
        ).scalar_one()
        calls = (
            await session.execute(select(func.count()).where(ToolCallRow.result_id == int(rid)))
        ).scalar_one()
    assert (batches, calls) == (REQUESTS, REQUESTS)
