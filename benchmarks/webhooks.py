"""Cost of durable, signed webhooks, against bare HTTP in the same run.

1. **drain throughput**: the webhook worker delivering N queued events (signed,
   leased, outcome recorded) to a loopback receiver, against an
   ``httpx.AsyncClient`` posting the same N bodies to the same receiver with the
   same concurrency (nothing signed, stored or retried).
2. **emit cost**: a write transaction that changes a result's status, with and
   without :func:`roost.platform.webhooks.emit` queuing the event for one
   endpoint in it (what the lifecycle pays per event).

The receiver runs in a separate process (uvicorn, a trivial ASGI app answering
204), so it does not compete with the measured code for the GIL. SQLite file
database (WAL, ``synchronous=FULL``), the platform's default.

Run from the repository root:  ``.venv/bin/python benchmarks/webhooks.py``
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import httpx
from sqlalchemy import update

from roost.platform.keys import create_key
from roost.platform.storage import Database, Organisation, migrate
from roost.platform.webhooks import RetryPolicy, WebhookWorker, create_endpoint, emit

EVENTS = 300
CONCURRENCY = 16
ROUNDS = 3
EMITS = 200


def body(index: int) -> dict[str, Any]:
    return {
        "type": "simulation_result_evaluated",
        "id": index,
        "digital_human_id": 3,
        "status": "COMPLETED",
        "simulation_run_id": 41,
        "simulation_id": 9,
        "agent_id": 5,
        "evaluations": [],
        "events": [{"title": "identity_verified", "start_offset_ms": 5200}] * 10,
        "tool_calls": [
            {
                "name": f"tool_{i}",
                "start_offset_ms": 1000 * i,
                "parameters": {"order_id": f"A-{i:04d}"},
                "output": {"status": "shipped"},
            }
            for i in range(20)
        ],
        "tags": ["bench"],
        "metadata": {"branch": "main"},
    }


async def receiver_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def start_receiver() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, __file__, "--receiver", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return process, f"http://127.0.0.1:{port}/hook"
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("receiver did not start")


async def drain_worker(db: Database, org_id: int, url: str) -> float:
    async with db.write() as session:
        await create_endpoint(session, org_id, url=url)
    async with db.write() as session:
        for index in range(EVENTS):
            await emit(session, org_id, "simulation_result_evaluated", body(index))
    # The background loop, as the server runs it (attempts stream through
    # ``concurrency`` slots).
    worker = WebhookWorker(db, concurrency=CONCURRENCY, policy=RetryPolicy(timeout=10))
    start = time.perf_counter()
    worker.start()
    try:
        while worker.attempts < EVENTS:
            await asyncio.sleep(0.005)
            if time.perf_counter() - start > 300:
                raise RuntimeError("deliveries stalled")
        elapsed = time.perf_counter() - start
    finally:
        await worker.stop()
    return EVENTS / elapsed


async def drain_bare(url: str) -> float:
    from roost.platform.storage import dumps_json

    bodies = [dumps_json(body(index)).encode() for index in range(EVENTS)]
    gate = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient() as client:

        async def post(data: bytes) -> None:
            async with gate:
                response = await client.post(
                    url, content=data, headers={"Content-Type": "application/json"}
                )
                response.raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(post(data) for data in bodies))
        return EVENTS / (time.perf_counter() - start)


async def emit_cost(db: Database, org_id: int, with_emit: bool) -> float:
    """Median milliseconds of one status-change transaction."""
    times = []
    for index in range(EMITS):
        start = time.perf_counter()
        async with db.write() as session:
            # A real row write, so the commit has WAL pages to fsync like a
            # status change does.
            await session.execute(
                update(Organisation)
                .where(Organisation.id == org_id)
                .values(name=f"bench-{index}-{with_emit}")
            )
            if with_emit:
                await emit(session, org_id, "simulation_result_evaluated", body(index))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def run(url: str) -> None:
    worker_rates, bare_rates, plain_ms, emit_ms = [], [], [], []
    for _ in range(ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{tmp}/bench.sqlite3")
            await migrate.upgrade(db)
            async with db.write() as session:
                org_id = (await create_key(session, "bench")).info.org_id
            bare_rates.append(await drain_bare(url))
            worker_rates.append(await drain_worker(db, org_id, url))
            # The endpoint now exists: emit queues one delivery per event.
            plain_ms.append(await emit_cost(db, org_id, with_emit=False))
            emit_ms.append(await emit_cost(db, org_id, with_emit=True))
            await db.dispose()
    print(f"load average: {os.getloadavg()}")
    bare, worker = statistics.median(bare_rates), statistics.median(worker_rates)
    print(f"drain, bare httpx (baseline): {bare:7.0f} deliveries/s  rounds {_fmt(bare_rates)}")
    print(
        f"drain, webhook worker:        {worker:7.0f} deliveries/s  rounds {_fmt(worker_rates)}"
        f"  ratio {bare / worker:.2f}x the time"
    )
    plain, with_emit = statistics.median(plain_ms), statistics.median(emit_ms)
    print(f"status-change transaction (baseline): {plain:.2f} ms  rounds {_fmt(plain_ms, 2)}")
    print(
        f"same transaction + emit:              {with_emit:.2f} ms  rounds {_fmt(emit_ms, 2)}"
        f"  ratio {with_emit / plain:.2f}"
    )


def _fmt(values: list[float], digits: int = 0) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--receiver":
        import uvicorn

        uvicorn.run(
            receiver_app,
            host="127.0.0.1",
            port=int(sys.argv[2]),
            log_level="error",
            access_log=False,
            lifespan="off",
        )
        return
    process, url = start_receiver()
    try:
        asyncio.run(run(url))
    finally:
        process.terminate()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
