"""Migrations on SQLite and PostgreSQL: ``roost db upgrade`` and the start-up check.

Each test gets an *empty* database: a new SQLite file, or a PostgreSQL
database created for the test and dropped after it (only ever the one it
created).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select, text
from typer.testing import CliRunner

from roost.cli import app as cli
from roost.platform import PlatformSettings, create_app
from roost.platform.results import load_bundles
from roost.platform.storage import Database, EnrichmentBatch, migrate
from tests.platform.conftest import PG_HOST, PG_PORT, _admin, start_server, stop_server

TABLES = {
    "organisations",
    "api_keys",
    "agents",
    "simulations",
    "digital_humans",
    "simulation_runs",
    "simulation_results",
    "enrichment_batches",
    "tool_calls",
    "idempotency_records",
}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def empty_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_database_url: str
) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.sqlite3'}"
        return
    name = f"roost_empty_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _roost(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from roost.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _tables(url: str) -> set[str]:
    db = Database(url)
    try:
        async with db.write_engine.connect() as conn:
            names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await db.dispose()
    return set(names)


def test_serve_refuses_an_unmigrated_database_and_says_what_to_run(empty_url: str) -> None:
    done = _roost("serve", "--port", "0", "--database-url", empty_url)
    assert done.returncode != 0
    assert "refusing to start" in done.stderr
    assert "roost db upgrade" in done.stderr
    assert "Traceback" not in done.stderr


async def test_the_app_itself_refuses_an_unmigrated_database(empty_url: str) -> None:
    app = create_app(PlatformSettings(database_url=empty_url))
    with pytest.raises(migrate.SchemaNotCurrentError, match="roost db upgrade"):
        async with app.router.lifespan_context(app):
            pass


def test_db_upgrade_creates_the_schema_and_is_idempotent(empty_url: str) -> None:
    runner = CliRunner()
    current = runner.invoke(cli, ["db", "current", "--database-url", empty_url])
    assert current.exit_code == 1
    assert "roost db upgrade" in current.output

    first = runner.invoke(cli, ["db", "upgrade", "--database-url", empty_url])
    assert first.exit_code == 0, first.output
    assert "upgraded from empty" in first.output
    assert asyncio.run(_tables(empty_url)) >= TABLES

    again = runner.invoke(cli, ["db", "upgrade", "--database-url", empty_url])
    assert again.exit_code == 0, again.output
    assert "already at the latest revision" in again.output

    current = runner.invoke(cli, ["db", "current", "--database-url", empty_url])
    assert current.exit_code == 0, current.output
    assert ", ".join(migrate.heads()) in current.output


def test_serve_migrate_flag_upgrades_then_serves(empty_url: str) -> None:
    server = start_server(empty_url, "--migrate")
    try:
        import httpx

        response = httpx.get(f"{server.url}/openapi.json", timeout=30)
        assert response.status_code == 200
    finally:
        stop_server(server)


def test_unreachable_database_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    done = _roost("serve", "--port", "0", "--database-url", "postgresql://nobody@127.0.0.1:1/x")
    assert done.returncode != 0
    assert "cannot reach the database" in done.stderr
    assert "Traceback" not in done.stderr
    done = _roost("db", "upgrade", "--database-url", "mysql://x@y/z")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr


# --- 0004: events and transcript entries move into their batch ---------------

_NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
# Batch 1 has everything, batch 2 a transcript only, batch 3 nothing; then
# enough one-entry batches that the migration pages through them.
_EVENTS = {
    1: [
        (
            "ordered",
            1500,
            1700,
            "the order was placed",
            '["shop", "ok"]',
            '{"n": [1, {"é": null}]}',
        ),
        ("greeted", 100, None, None, None, None),
    ]
}
_ENTRIES = {
    1: [(0, 900, "AGENT", "Hello!", False), (950, 1800, "USER", "Hi, I'd like…", None)],
    2: [(2000, 2100, "AGENT", "Bye.", True)],
    **{
        batch_id: [(batch_id, batch_id + 1, "USER", f"line {batch_id}", None)]
        for batch_id in range(4, 1104)
    },
}


async def _run_alembic(db: Database, action: str, revision: str) -> None:
    config = migrate.alembic_config(db)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        getattr(command, action)(config, revision)

    async with db.write_engine.begin() as connection:
        await connection.run_sync(run)


async def _seed_0003(db: Database) -> None:
    statements = [
        ("INSERT INTO organisations (id, name, created_at) VALUES (1, 'o', :t)", [{}]),
        (
            "INSERT INTO agents (id, org_id, name, config, created_at, updated_at) "
            "VALUES (1, 1, 'a', '{}', :t, :t)",
            [{}],
        ),
        (
            "INSERT INTO simulations (id, org_id, agent_id, name, config, created_at) "
            "VALUES (1, 1, 1, 's', '{}', :t)",
            [{}],
        ),
        ("INSERT INTO digital_humans (id, org_id, data, created_at) VALUES (1, 1, '{}', :t)", [{}]),
        (
            "INSERT INTO simulation_runs (id, org_id, simulation_id, agent_id, overrides, "
            "created_at) VALUES (1, 1, 1, 1, '{}', :t)",
            [{}],
        ),
        (
            "INSERT INTO simulation_results (id, org_id, run_id, digital_human_id, status, "
            "created_at, enrichment_state, batch_count, tool_call_count, evaluation_stale, "
            "evaluation_count, needs_attention) "
            "VALUES (1, 1, 1, 1, 'COMPLETED', :t, 'received', 0, 0, FALSE, 0, FALSE)",
            [{}],
        ),
        (
            "INSERT INTO enrichment_batches (id, org_id, result_id, received_at, body_sha256, "
            "tool_call_count, duplicate_tool_calls, event_count, transcript_count, late) "
            "VALUES (:id, 1, 1, :t, 'x', 0, 0, :events, :entries, FALSE)",
            [
                {"id": b, "events": len(_EVENTS.get(b, ())), "entries": len(_ENTRIES.get(b, ()))}
                for b in range(1, 1104)
            ],
        ),
        (
            # Newest first: the documents must follow seq, not insertion order.
            "INSERT INTO events (batch_id, seq, title, start_offset_ms, end_offset_ms, "
            "description, tags, metadata) VALUES (:b, :s, :title, :start, :end, :d, :tags, :m)",
            [
                dict(
                    zip(
                        ("b", "s", "title", "start", "end", "d", "tags", "m"),
                        (b, s, *row),
                        strict=True,
                    )
                )
                for b, rows in _EVENTS.items()
                for s, row in reversed(list(enumerate(rows)))
            ],
        ),
        (
            "INSERT INTO transcript_entries (batch_id, seq, start_offset_ms, end_offset_ms, "
            "speaker, utterance, filler_utterance) VALUES (:b, :s, :start, :end, :who, :u, :f)",
            [
                dict(zip(("b", "s", "start", "end", "who", "u", "f"), (b, s, *row), strict=True))
                for b, rows in _ENTRIES.items()
                for s, row in reversed(list(enumerate(rows)))
            ],
        ),
    ]
    async with db.write_engine.begin() as connection:
        for sql, rows in statements:
            await connection.execute(text(sql), [{"t": _NOW, **row} for row in rows])


async def _old_rows(db: Database) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    async with db.write_engine.connect() as connection:
        events = await connection.execute(
            text(
                "SELECT batch_id, seq, title, start_offset_ms, end_offset_ms, description, "
                "tags, metadata FROM events ORDER BY batch_id, seq"
            )
        )
        entries = await connection.execute(
            text(
                "SELECT batch_id, seq, start_offset_ms, end_offset_ms, speaker, utterance, "
                "filler_utterance FROM transcript_entries ORDER BY batch_id, seq"
            )
        )
        return [tuple(r) for r in events], [tuple(r) for r in entries]


async def test_0004_moves_events_and_transcripts_into_their_batch_and_back(
    empty_url: str,
) -> None:
    db = Database(empty_url)
    try:
        await migrate.upgrade(db, "0003_pg_batch_rows")
        await _seed_0003(db)
        before = await _old_rows(db)
        await migrate.upgrade(db)

        assert not {"events", "transcript_entries"} & await _tables_of(db)
        async with db.read() as session:
            stored = {
                row.id: (row.events, row.transcript)
                for row in await session.execute(
                    select(EnrichmentBatch.id, EnrichmentBatch.events, EnrichmentBatch.transcript)
                )
            }
        assert stored[1] == (
            [
                {
                    "title": "ordered",
                    "start_offset_ms": 1500,
                    "end_offset_ms": 1700,
                    "description": "the order was placed",
                    "tags": ["shop", "ok"],
                    "metadata": {"n": [1, {"é": None}]},
                },
                {
                    "title": "greeted",
                    "start_offset_ms": 100,
                    "end_offset_ms": None,
                    "description": None,
                    "tags": None,
                    "metadata": None,
                },
            ],
            [
                {
                    "start_offset_ms": 0,
                    "end_offset_ms": 900,
                    "speaker": "AGENT",
                    "utterance": "Hello!",
                    "filler_utterance": False,
                },
                {
                    "start_offset_ms": 950,
                    "end_offset_ms": 1800,
                    "speaker": "USER",
                    "utterance": "Hi, I'd like…",
                    "filler_utterance": None,
                },
            ],
        )
        assert stored[2][0] is None and stored[2][1] is not None
        assert stored[2][1][0]["filler_utterance"] is True
        assert stored[3] == (None, None)
        assert all(stored[b][1][0]["utterance"] == f"line {b}" for b in range(4, 1104))

        # The result reads back through the API's loader, ordered by offset.
        async with db.read() as session:
            [bundle] = await load_bundles(session, 1, result_ids=[1])
        assert [e["title"] for e in bundle.events] == ["greeted", "ordered"]
        assert [e["utterance"] for e in bundle.transcript][:4] == [
            "Hello!",
            "line 4",
            "line 5",
            "line 6",
        ]

        await _run_alembic(db, "downgrade", "0003_pg_batch_rows")
        assert await _old_rows(db) == before
    finally:
        await db.dispose()


async def _tables_of(db: Database) -> set[str]:
    async with db.write_engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
    return set(names)
