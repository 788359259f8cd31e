"""The ingest writer in its own process (:mod:`roost.platform.ingest_process`).

Every test here runs a real child process on a real database (SQLite and
PostgreSQL); the server half runs in the test's event loop. What must hold:
a 200 still means committed, a child that dies turns its unanswered
requests into 503s (never into a 200) and is replaced, and nothing is left
behind when either side goes away.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, func, select

from roost.platform.auth import Caller
from roost.platform.ingest_process import IngestProcess
from roost.platform.ingest_sql import prepare_update
from roost.platform.settings import Limits, PlatformSettings, SettingsError
from roost.platform.storage import Database, EnrichmentBatch, Organisation, SimulationResult
from roost.platform.storage.tables import ToolCallRow
from roost.platform.wire import build_wire
from tests.platform.conftest import AppFactory, Org, client_for
from tests.platform.seed import check, seed_run


def _body(result_id: str, index: int, *, calls: int = 3) -> dict[str, Any]:
    return {
        "simulation_result_id": result_id,
        "tool_calls": [
            {
                "name": "lookup",
                "start_offset_ms": 100 * index + seq,
                "call_id": f"c-{index}-{seq}",
                "parameters": {"order": index, "seq": seq},
                "output": {"ok": True},
            }
            for seq in range(calls)
        ],
        "events": [{"title": f"event-{index}", "start_offset_ms": index}],
        "recorded_transcript": [
            {
                "speaker": "AGENT",
                "utterance": f"line {index}",
                "start_offset_ms": index,
                "end_offset_ms": index + 1,
            }
        ],
    }


async def _count(db: Database, table: Any, **where: Any) -> int:
    query = select(func.count()).select_from(table)
    for name, value in where.items():
        query = query.where(getattr(table, name) == value)
    async with db.read() as session:
        return int((await session.execute(query)).scalar_one())


def _child_pid(app: Any) -> int:
    writer: IngestProcess = app.state.ingest
    assert isinstance(writer, IngestProcess)
    pid = writer.pid
    assert pid is not None
    return pid


def _exited(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie still answers kill(0); its state in /proc says it is gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


async def _wait_for(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def test_the_child_stores_what_the_server_accepted(
    make_app: AppFactory, org: Org, db: Database
) -> None:
    async with make_app(ingest_process=True) as app, client_for(app, org.headers) as http:
        assert _child_pid(app) != os.getpid()
        rid = (await seed_run(http)).result_ids[0]
        reply = check(await http.post("/v1/update-simulation-result", json=_body(rid, 1)))
        assert reply["message"].startswith("stored 3 tool calls")
        again = check(
            await http.post(
                "/v1/update-simulation-result",
                json=_body(rid, 1),
                headers={"Idempotency-Key": "k-1"},
            )
        )
        replay = await http.post(
            "/v1/update-simulation-result", json=_body(rid, 1), headers={"Idempotency-Key": "k-1"}
        )
        result = check(await http.get(f"/v1/retrieve-simulation-result/{rid}"))
    # The second POST's calls were duplicates of the first; the third replayed.
    assert again["message"].startswith("stored 0 tool calls (3 duplicates skipped)")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == again
    calls = [c for group in result["simulation_result"]["tool_calls"] for c in group["actual"]]
    assert sorted(c["call_id"] for c in calls) == ["c-1-0", "c-1-1", "c-1-2"]
    assert calls[0]["parameters"]["order"] == 1
    assert await _count(db, EnrichmentBatch, result_id=int(rid)) == 2


async def test_validation_still_happens_before_the_child(make_app: AppFactory, org: Org) -> None:
    async with make_app(ingest_process=True) as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        bad = await http.post(
            "/v1/update-simulation-result",
            json={"simulation_result_id": rid, "tool_calls": [{"name": 5}]},
        )
        unknown = await http.post(
            "/v1/update-simulation-result", json={"simulation_result_id": "999999999"}
        )
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"][:2] == ["body", "tool_calls"]
    assert unknown.status_code == 404
    assert "not found" in unknown.json()["detail"]


async def test_a_killed_child_gives_503_never_a_false_200_and_is_replaced(
    make_app: AppFactory, org: Org, db: Database
) -> None:
    async with make_app(ingest_process=True) as app, client_for(app, org.headers) as http:
        writer: IngestProcess = app.state.ingest
        rid = (await seed_run(http)).result_ids[0]
        first = _child_pid(app)

        async def post(index: int) -> httpx.Response:
            return await http.post("/v1/update-simulation-result", json=_body(rid, index))

        before = await asyncio.gather(*(post(i) for i in range(10)))
        assert [r.status_code for r in before] == [200] * 10
        # Frozen, the child cannot commit what it receives: these requests are
        # in flight, uncommitted, when it dies.
        os.kill(first, signal.SIGSTOP)
        tasks = [asyncio.create_task(post(100 + i)) for i in range(20)]
        await _wait_for(lambda: len(writer._pending) == 20)
        os.kill(first, signal.SIGKILL)
        lost = await asyncio.gather(*tasks)
        assert [r.status_code for r in lost] == [503] * 20
        assert {r.json()["detail"] for r in lost} == {"storage is unavailable; retry later"}

        await _wait_for(lambda: writer.restarts == 1 and writer.pid not in (None, first))
        assert _exited(first)
        after = check(await http.post("/v1/update-simulation-result", json=_body(rid, 1000)))
        assert after["status"] == "success"

    # The ten answered before and the one after are stored; the twenty are not.
    assert await _count(db, EnrichmentBatch, result_id=int(rid)) == 11


async def test_stop_answers_everything_in_flight_before_the_child_exits(
    make_app: AppFactory, org: Org, db: Database
) -> None:
    async with make_app(ingest_process=True) as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        pid = _child_pid(app)
        writer: IngestProcess = app.state.ingest
        # Frozen, the child cannot answer, so all 40 are certainly in flight
        # when stop() begins (polling for "some pending" raced a fast child).
        os.kill(pid, signal.SIGSTOP)
        try:
            tasks = [
                asyncio.create_task(
                    http.post("/v1/update-simulation-result", json=_body(rid, i, calls=5))
                )
                for i in range(40)
            ]
            await _wait_for(lambda: len(writer._pending) == 40)
        finally:
            os.kill(pid, signal.SIGCONT)
        await writer.stop()
        responses = await asyncio.gather(*tasks)
        # Stopped: a new request is refused, not lost.
        late = await http.post("/v1/update-simulation-result", json=_body(rid, 99))
    answered = [r.status_code for r in responses]
    assert answered == [200] * 40, [r.text for r in responses if r.status_code != 200]
    assert late.status_code == 503
    assert await _count(db, EnrichmentBatch, result_id=int(rid)) == 40
    await _wait_for(lambda: _exited(pid), seconds=10)


async def test_a_child_that_cannot_open_the_database_fails_start_with_its_reason(
    tmp_path: Any,
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    settings = PlatformSettings(database_url=f"sqlite:///{blocker}/roost.sqlite3")
    writer = IngestProcess(settings)
    with pytest.raises(RuntimeError, match="cannot start: .*not-a-directory"):
        await writer.start()
    assert not writer.running
    assert writer.pid is None
    caller = Caller(org_id=1, org_name="x", key_id="k")
    refused = await writer.submit(caller, None, 1, b"{}", idempotency_key=None, source=None)
    assert refused.status_code == 503


async def test_the_child_exits_when_the_server_side_goes_away(database_url: str) -> None:
    writer = IngestProcess(PlatformSettings(database_url=database_url))
    await writer.start()
    pid = writer.pid
    assert pid is not None
    # Not stop(): close the socket as a crashed server would.
    writer.running = False
    channel = writer._channel
    assert channel is not None and channel.transport is not None
    channel.transport.abort()
    await _wait_for(lambda: _exited(pid), seconds=15)
    await writer.stop()


async def test_deleting_an_organisation_deletes_its_batches_rows(
    make_app: AppFactory, org: Org, db: Database
) -> None:
    # On SQLite foreign keys cascade; on PostgreSQL a statement trigger does
    # (migration 0003). Either way no row of a deleted batch survives.
    async with make_app() as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        check(await http.post("/v1/update-simulation-result", json=_body(rid, 3)))
    async with db.read() as session:
        [batch_id] = (
            (
                await session.execute(
                    select(EnrichmentBatch.id).where(EnrichmentBatch.result_id == int(rid))
                )
            )
            .scalars()
            .all()
        )
    assert await _count(db, ToolCallRow, batch_id=batch_id) == 3
    async with db.write() as session:
        await session.execute(delete(Organisation).where(Organisation.id == org.id))
    assert await _count(db, ToolCallRow, batch_id=batch_id) == 0
    assert await _count(db, EnrichmentBatch, id=batch_id) == 0
    assert await _count(db, ToolCallRow, result_id=int(rid)) == 0


async def test_deleting_a_result_deletes_its_batches_and_their_tool_calls(
    make_app: AppFactory, org: Org, db: Database
) -> None:
    # On SQLite foreign keys cascade; on PostgreSQL statement triggers on
    # results and batches do (migrations 0003 and 0005).
    async with make_app() as app, client_for(app, org.headers) as http:
        rids = (await seed_run(http, num_runs=2)).result_ids
        for rid in rids:
            check(await http.post("/v1/update-simulation-result", json=_body(rid, 0, calls=2)))
    gone, kept = (int(rid) for rid in rids)
    async with db.write() as session:
        await session.execute(delete(SimulationResult).where(SimulationResult.id == gone))
    assert await _count(db, EnrichmentBatch, result_id=gone) == 0
    assert await _count(db, ToolCallRow, result_id=gone) == 0
    assert await _count(db, EnrichmentBatch, result_id=kept) == 1
    assert await _count(db, ToolCallRow, result_id=kept) == 2


async def test_lanes_are_a_postgresql_setting(make_app: AppFactory, database_url: str) -> None:
    async with make_app(ingest_lanes=3) as app:
        lanes = len(app.state.ingest._lanes)
    assert lanes == (1 if database_url.startswith("sqlite") else 3)
    with pytest.raises(SettingsError, match="ingest_lanes"):
        PlatformSettings.from_env({"ROOST_INGEST_LANES": "0"})


def test_the_server_side_runs_on_uvloop(database_url: str) -> None:
    # uvicorn runs an app on uvloop when it is installed (uvicorn[standard]),
    # and uvloop's transports are not asyncio.Transport subclasses.
    uvloop = pytest.importorskip("uvloop")

    async def round_trip() -> tuple[bool, int]:
        writer = IngestProcess(PlatformSettings(database_url=database_url))
        await writer.start()
        try:
            caller = Caller(org_id=1, org_name="x", key_id="k")
            # Result 0 never exists: the child answers 404 after its lookup.
            outcome = await writer.submit(
                caller,
                prepare_update(build_wire(Limits()).decode(b'{"simulation_result_id": "0"}')),
                0,
                b"{}",
                idempotency_key=None,
                source=None,
            )
            return writer.running, outcome.status_code
        finally:
            await writer.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(round_trip()) == (True, 404)
