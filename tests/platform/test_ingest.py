"""The group committer behind ``update-simulation-result`` (:mod:`roost.platform.ingest`).

The route-level semantics live in ``tests/platform/api/test_runs.py``; these
tests aim at what the writer decides per group and per lane: requests in one
group sharing call ids, one Idempotency-Key used on results that different
lanes write, and which commits wake the lifecycle worker.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select

from roost.platform.auth import Caller
from roost.platform.ingest import IngestWriter, plan_message
from roost.platform.ingest_process import IngestProcess
from roost.platform.ingest_sql import Found, IngestSql, Lookup, Steps, prepare_update
from roost.platform.settings import Limits, PlatformSettings
from roost.platform.storage import Database
from roost.platform.storage.tables import EnrichmentBatch, SimulationResult
from tests.platform.conftest import AppFactory, Org, client_for
from tests.platform.seed import check, seed_run


def _body(result_id: str, *call_ids: str | None, title: str = "lookup") -> bytes:
    calls = [
        {"name": title, "start_offset_ms": 10 * index, "call_id": call_id}
        for index, call_id in enumerate(call_ids)
    ]
    return json.dumps({"simulation_result_id": result_id, "tool_calls": calls}).encode()


async def _batches(http: httpx.AsyncClient, result_id: str) -> list[dict[str, Any]]:
    data = check(await http.get(f"/v1/roost/simulation-results/{result_id}/enrichment"))
    batches: list[dict[str, Any]] = data["batches"]
    return batches


async def _post_all(http: httpx.AsyncClient, requests: list[tuple[bytes, str | None]]) -> list[Any]:
    async def one(body: bytes, key: str | None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return await http.post("/v1/update-simulation-result", content=body, headers=headers)

    return list(await asyncio.gather(*(one(body, key) for body, key in requests)))


def test_plan_message_names_duplicates_and_staleness() -> None:
    text = plan_message(tool_calls=3, duplicates=1, events=0, transcript=2, late=True)
    assert text.startswith("stored 2 tool calls (1 duplicates skipped), 0 events, 2 transcript")
    assert text.endswith("its evaluation is now stale")


async def test_call_ids_shared_by_requests_of_one_group_are_stored_once(
    make_app: AppFactory, org: Org
) -> None:
    async with make_app() as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        check(await http.post("/v1/update-simulation-result", content=_body(rid, "old")))
        # Sent together, these usually share one group; either way each call
        # id must be stored once and every repeat counted as a duplicate.
        responses = await _post_all(
            http, [(_body(rid, "old", "new", f"own-{i}", None), None) for i in range(6)]
        )
        assert [r.status_code for r in responses] == [200] * 6, [r.text for r in responses]
        batches = await _batches(http, rid)
        result = check(await http.get(f"/v1/retrieve-simulation-result/{rid}"))
    calls = [c for group in result["simulation_result"]["tool_calls"] for c in group["actual"]]
    stored_ids = sorted(str(call["call_id"]) for call in calls)
    assert stored_ids == sorted(["old", "new"] + [f"own-{i}" for i in range(6)] + ["None"] * 6)
    assert sum(batch["duplicate_tool_calls"] for batch in batches) == 6 + 5


async def test_one_key_on_results_of_different_lanes_stores_one_batch(
    make_app: AppFactory, org: Org
) -> None:
    # Three lanes on PostgreSQL (SQLite always has one).
    async with make_app(ingest_lanes=3) as app, client_for(app, org.headers) as http:
        results = (await seed_run(http, num_runs=3)).result_ids
        requests = [(_body(rid, f"call-{rid}"), "shared-key") for rid in results for _ in range(3)]
        responses = await _post_all(http, requests)
        stored = [len(await _batches(http, rid)) for rid in results]
    statuses = sorted(r.status_code for r in responses)
    # The first body to claim the key is stored once; its two repeats replay
    # it; the six requests for other results reuse the key with another body.
    assert statuses == [200] * 3 + [422] * 6, [r.text for r in responses]
    assert sum(1 for r in responses if r.headers.get("Idempotent-Replayed") == "true") == 2
    assert sorted(stored) == [0, 0, 1]
    assert {r.json()["detail"][0]["type"] for r in responses if r.status_code == 422} == {
        "idempotency_key_reused"
    }


@pytest.mark.parametrize("kind", ["inline", "process"])
async def test_only_results_whose_call_ended_wake_the_lifecycle(
    make_app: AppFactory, org: Org, db: Database, database_url: str, kind: str
) -> None:
    # The same for the writer in the server's process and in its own, where
    # the wake-up crosses the process boundary.
    async with make_app() as app, client_for(app, org.headers) as http:
        queued, ended = (await seed_run(http, num_runs=2)).result_ids
        check(await http.post(f"/v1/roost/simulation-results/{ended}/call-started", json={}))
        check(await http.post(f"/v1/roost/simulation-results/{ended}/call-ended", json={}))
        reported: list[int] = []
        writer: IngestWriter | IngestProcess
        if kind == "inline":
            writer = IngestWriter(db, app.state.settings.limits, on_committed=reported.extend)
        else:
            writer = IngestProcess(
                PlatformSettings(database_url=database_url), on_committed=reported.extend
            )
        await writer.start()
        caller = Caller(org_id=org.id, org_name=org.name, key_id=org.key_id)
        try:
            for rid in (queued, ended):
                body = _body(rid, None)
                outcome = await writer.submit(
                    caller,
                    prepare_update(app.state.wire.decode(body)),
                    int(rid),
                    body,
                    idempotency_key=None,
                    source="test",
                )
                assert outcome.status_code == 200, outcome.body
        finally:
            await writer.stop()
    assert reported == [int(ended)]


async def test_a_stopped_writer_refuses_work(db: Database) -> None:
    writer = IngestWriter(db, Limits())
    caller = Caller(org_id=1, org_name="x", key_id="k")
    with pytest.raises(RuntimeError, match="not running"):
        await writer.submit(caller, None, 1, b"{}", idempotency_key=None, source=None)


async def test_rows_split_over_several_inserts_are_all_stored_in_order(
    make_app: AppFactory, org: Org, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small statements force several chunks per table, of every size
    # (11 calls -> 4 + 4 + 2 + 1), on SQLite's multi-row VALUES path.
    monkeypatch.setattr("roost.platform.ingest_sql.MAX_ROWS_PER_INSERT", 4)
    async with make_app() as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        body = {
            "simulation_result_id": rid,
            "tool_calls": [
                {"name": f"tool-{i}", "start_offset_ms": i, "call_id": f"c{i}", "output": i}
                for i in range(11)
            ],
            "events": [{"title": f"event-{i}", "start_offset_ms": i} for i in range(5)],
            "recorded_transcript": [
                {
                    "speaker": "AGENT",
                    "utterance": f"line {i}",
                    "start_offset_ms": i,
                    "end_offset_ms": i + 1,
                }
                for i in range(3)
            ],
        }
        check(await http.post("/v1/update-simulation-result", json=body))
        result = check(await http.get(f"/v1/retrieve-simulation-result/{rid}"))
        [batch] = await _batches(http, rid)
    groups = result["simulation_result"]["tool_calls"]
    assert sorted((g["name"], c["call_id"], c["output"]) for g in groups for c in g["actual"]) == [
        (f"tool-{i}", f"c{i}", i) for i in sorted(range(11), key=str)
    ]
    assert (batch["tool_calls"], batch["events"], batch["transcript_entries"]) == (11, 5, 3)
    async with db.read() as session:
        stored = (
            await session.execute(
                select(EnrichmentBatch.events, EnrichmentBatch.transcript).where(
                    EnrichmentBatch.id == batch["id"]
                )
            )
        ).one()
    # The batch keeps them as sent, in order, with every field.
    assert [e["title"] for e in stored.events] == [f"event-{i}" for i in range(5)]
    assert [line["utterance"] for line in stored.transcript] == [f"line {i}" for i in range(3)]
    assert stored.transcript[0] == {
        "start_offset_ms": 0,
        "end_offset_ms": 1,
        "speaker": "AGENT",
        "utterance": "line 0",
        "filler_utterance": None,
    }
    events = result["simulation_result"].get("events") or []
    assert [e["title"] for e in events] == [f"event-{i}" for i in range(5)]


async def test_a_group_that_fails_midway_is_rolled_back_and_retried_request_by_request(
    make_app: AppFactory, org: Org, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A failure inside the transaction, after the group's rows were written,
    # must leave nothing of the group behind, store its neighbours on the
    # request-by-request retry and answer the failing request 503.
    store = IngestWriter._store

    def exploding(self: IngestWriter, plans: list[Any], batch_ids: list[int]) -> Any:
        yield from store(self, plans, batch_ids)
        if any(row[0] == "explode" for p in plans for row in p.item.update.tool_rows):
            raise RuntimeError("failed after writing")

    monkeypatch.setattr(IngestWriter, "_store", exploding)
    async with make_app() as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        bodies = [(_body(rid, f"ok-{i}"), None) for i in range(5)]
        bodies.insert(2, (_body(rid, "bad", title="explode"), None))
        responses = await _post_all(http, bodies)
        batches = await _batches(http, rid)
        result = check(await http.get(f"/v1/retrieve-simulation-result/{rid}"))
    codes = [r.status_code for r in responses]
    assert codes == [200, 200, 503, 200, 200, 200], [r.text for r in responses]
    assert responses[2].json() == {"detail": "storage is unavailable; retry later"}
    assert len(batches) == 5
    calls = [c for group in result["simulation_result"]["tool_calls"] for c in group["actual"]]
    assert sorted(c["call_id"] for c in calls) == [f"ok-{i}" for i in range(5)]


async def test_a_transaction_left_open_on_a_pooled_connection_is_not_committed(
    db: Database,
) -> None:
    # PostgreSQL only: the writer's statements run on asyncpg in implicit
    # transactions, which SQLAlchemy's pool cannot see. Whatever a failed
    # user of the connection left open must be rolled back, never extended
    # (and so never committed) by the writer's statements.
    if db.is_sqlite:
        pytest.skip("PostgreSQL writer path")
    sql = IngestSql(db.write_engine.dialect)

    def steps() -> Steps[list[int]]:
        found: Found = yield Lookup(result_ids=(), keys=(), call_pairs=(), new_ids=2)
        return found.batch_ids

    async with db.write_engine.connect() as conn:
        pg = (await conn.get_raw_connection()).driver_connection
        assert pg is not None
        sequence = await pg.fetchval("SELECT pg_get_serial_sequence('enrichment_batches', 'id')")
        await pg.execute("BEGIN; CREATE TEMP TABLE left_open (x int)")
        first, second = await sql.run_pg(pg, steps(), sequence)
        assert second == first + 1
        assert not pg.is_in_transaction()
        assert await pg.fetchval("SELECT to_regclass('pg_temp.left_open')") is None


@pytest.mark.parametrize("times", [1, 10])
async def test_a_key_or_call_id_stored_by_another_writer_after_the_lookup_is_decided_again(
    make_app: AppFactory,
    org: Org,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    times: int,
) -> None:
    # PostgreSQL only (SQLite's lookup and store share the write lock). A
    # lookup that misses what another writer committed just before the store
    # is what forgetting its answer simulates: the store's unique index then
    # refuses the group, and deciding it again gives each request its answer
    # (a replay, a duplicate). Forgotten every time, the requests fail with a
    # 503, never with a second copy.
    if db.is_sqlite:
        pytest.skip("PostgreSQL writer path")
    import roost.platform.ingest_sql as ingest_sql

    found_pg = ingest_sql._found_pg
    forgets = {"left": 0}

    def forgetful(rows: Any) -> Any:
        found = found_pg(rows)
        if forgets["left"] > 0:
            forgets["left"] -= 1
            found.keys.clear()
            found.call_ids.clear()
        return found

    monkeypatch.setattr(ingest_sql, "_found_pg", forgetful)
    async with make_app() as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        keyed = _body(rid, "k-1")
        first = await http.post(
            "/v1/update-simulation-result", content=keyed, headers={"Idempotency-Key": "once"}
        )
        assert first.status_code == 200, first.text
        check(await http.post("/v1/update-simulation-result", content=_body(rid, "c-1")))
        forgets["left"] = times
        with caplog.at_level("INFO", logger="roost.platform.ingest"):
            replay = await http.post(
                "/v1/update-simulation-result", content=keyed, headers={"Idempotency-Key": "once"}
            )
        forgets["left"] = times
        repeat = await http.post("/v1/update-simulation-result", content=_body(rid, "c-1", "c-2"))
        batches = await _batches(http, rid)
    assert "deciding again" in caplog.text
    if times == 1:
        assert replay.status_code == 200 and replay.content == first.content
        assert replay.headers.get("Idempotent-Replayed") == "true"
        assert repeat.status_code == 200
        assert "(1 duplicates skipped)" in repeat.json()["message"]
        assert [b["duplicate_tool_calls"] for b in batches] == [0, 0, 1]
    else:
        assert (replay.status_code, repeat.status_code) == (503, 503)
        assert len(batches) == 2


async def test_lanes_hold_connections_of_their_own_pool_not_the_apis(
    make_app: AppFactory, org: Org, db: Database
) -> None:
    # PostgreSQL only (SQLite has one lane). Each lane keeps its connection;
    # taken from the API's pool (5 + 10 overflow), 16 lanes would leave the
    # routes none and the last lane would wait for one until it failed.
    if db.is_sqlite:
        pytest.skip("PostgreSQL writer path")
    async with make_app(ingest_lanes=16) as app, client_for(app, org.headers) as http:
        results = (await seed_run(http, num_runs=16)).result_ids
        responses = await _post_all(
            http, [(_body(rid, f"call-{rid}-{i}"), None) for rid in results for i in range(2)]
        )
        assert [r.status_code for r in responses] == [200] * 32, [r.text for r in responses]
        # Every lane now holds a connection; the API still gets its own.
        reads = await asyncio.gather(
            *(http.get(f"/v1/retrieve-simulation-result/{rid}") for rid in results)
        )
        assert [r.status_code for r in reads] == [200] * 16
        stored = [len(await _batches(http, rid)) for rid in results]
        # Nothing is being written now, so the lanes' connections are idle.
        held = [lane.pg for lane in app.state.ingest._lanes if lane.pg is not None]
        settings = [
            (await pg.fetchval("SHOW plan_cache_mode"), await pg.fetchval("SHOW random_page_cost"))
            for pg in held
        ]
    assert len(held) == 16
    assert set(settings) == {("force_custom_plan", "1.1")}
    assert stored == [2] * 16


async def test_the_lookup_finds_idempotency_keys_through_their_index(db: Database) -> None:
    # Keys are unique per (org_id, key); looked up by key alone, the index
    # could not be searched and every group scanned all stored keys (15 ms
    # at 200,000 keys on PostgreSQL, growing with them).
    sql = IngestSql(db.write_engine.dialect)
    if db.is_sqlite:
        query = sql.select_keys.format("?", "?, ?")
        async with db.write_engine.connect() as conn:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            cursor = await raw.execute(f"EXPLAIN QUERY PLAN {query}", (1, "a", "b"))
            plan = " ".join(str(row[-1]) for row in await cursor.fetchall())
        assert "SEARCH idempotency_records USING" in plan and "key=?" in plan, plan
        return
    # PostgreSQL plans by size: the keys of a busy organisation are made up
    # and analysed inside a transaction that is rolled back.
    async with db.write_engine.connect() as conn:
        pg = (await conn.get_raw_connection()).driver_connection
        assert pg is not None
        sequence = await pg.fetchval("SELECT pg_get_serial_sequence('enrichment_batches', 'id')")
        transaction = pg.transaction()
        await transaction.start()
        try:
            org_id = await pg.fetchval(
                "INSERT INTO organisations (name, created_at) VALUES ('busy', now()) RETURNING id"
            )
            await pg.execute(
                "INSERT INTO idempotency_records (org_id, key, operation, request_sha256, "
                "status_code, response_body, created_at) SELECT $1, 'key-' || i, 'op', 'x', "
                "200, '{}', now() FROM generate_series(1, 20000) AS i",
                org_id,
            )
            # Before and after the table's statistics catch up with it.
            plans = []
            for analyse in (False, True):
                if analyse:
                    await pg.execute("ANALYZE idempotency_records")
                rows = await pg.fetch(
                    f"EXPLAIN {sql.lookup}",
                    [1],
                    [org_id, org_id],
                    ["key-5", "key-9"],
                    "[]",
                    sequence,
                    0,
                )
                plans.append("\n".join(row[0] for row in rows))
        finally:
            await transaction.rollback()
    for plan in plans:
        conditions = [line for line in plan.splitlines() if "Index Cond" in line]
        assert any("org_id" in line and "key" in line for line in conditions), plan


async def test_a_result_deleted_between_lookup_and_store_gets_no_batch(
    make_app: AppFactory,
    org: Org,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # PostgreSQL only (SQLite's lookup and store share the write lock, and its
    # batches keep their foreign key). Batches have no foreign key to their
    # result there (migration 0005): the store's result update must notice the
    # deletion, and the request is decided again, as a 404.
    if db.is_sqlite:
        pytest.skip("PostgreSQL writer path")
    store_pg = IngestSql._store_pg
    doomed: dict[str, int] = {}

    async def deleting_first(self: IngestSql, pg: Any, step: Any) -> None:
        if doomed:
            async with db.write() as session:
                await session.execute(
                    delete(SimulationResult).where(SimulationResult.id == doomed.pop("id"))
                )
        await store_pg(self, pg, step)

    monkeypatch.setattr(IngestSql, "_store_pg", deleting_first)
    async with make_app() as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        doomed["id"] = int(rid)
        response = await http.post("/v1/update-simulation-result", content=_body(rid, "c-1"))
    assert response.status_code == 404, response.text
    async with db.read() as session:
        orphans = await session.execute(
            select(EnrichmentBatch.id).where(EnrichmentBatch.result_id == int(rid))
        )
        assert orphans.all() == []


async def test_a_repeated_call_id_is_caught_by_the_index_then_looked_up_first(
    make_app: AppFactory, org: Org, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    # PostgreSQL only (SQLite always looks call ids up). A group's call ids are
    # not looked up at first: the unique index refuses the store that repeats
    # one, the group is decided again with the lookup, and the lane keeps
    # looking them up for its next groups, so a second repeat is found by the
    # lookup without a refused store.
    if db.is_sqlite:
        pytest.skip("PostgreSQL writer path")
    async with make_app() as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        check(await http.post("/v1/update-simulation-result", content=_body(rid, "c-1")))
        with caplog.at_level("INFO", logger="roost.platform.ingest"):
            first = check(
                await http.post("/v1/update-simulation-result", content=_body(rid, "c-1", "c-2"))
            )
            refused_once = caplog.text.count("deciding again")
            second = check(
                await http.post("/v1/update-simulation-result", content=_body(rid, "c-2", "c-3"))
            )
        batches = await _batches(http, rid)
        calls = [
            c["call_id"]
            for g in check(await http.get(f"/v1/retrieve-simulation-result/{rid}"))[
                "simulation_result"
            ]["tool_calls"]
            for c in g["actual"]
        ]
    assert "(1 duplicates skipped)" in first["message"]
    assert "(1 duplicates skipped)" in second["message"]
    assert (refused_once, caplog.text.count("deciding again")) == (1, 1)
    assert [b["duplicate_tool_calls"] for b in batches] == [0, 1, 1]
    assert sorted(calls) == ["c-1", "c-2", "c-3"]
