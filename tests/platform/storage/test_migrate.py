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
from pathlib import Path

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from roost.cli import app as cli
from roost.platform import PlatformSettings, create_app
from roost.platform.storage import Database, migrate
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
    "events",
    "transcript_entries",
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
