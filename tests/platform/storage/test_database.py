"""The :class:`Database` layer on real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from roost.platform.storage import Database, DatabaseURLError, Organisation, SimulationResult
from roost.platform.storage.database import normalize_url
from tests.platform.conftest import new_org


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///roost.db", "sqlite+aiosqlite"),
        ("postgresql://u@h/db", "postgresql+asyncpg"),
        ("postgres://u@h/db", "postgresql+asyncpg"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg"),
    ],
)
def test_urls_map_to_the_asyncio_drivers(url: str, driver: str) -> None:
    assert normalize_url(url).drivername == driver


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "in-memory SQLite is not supported"),
        ("sqlite:///:memory:", "in-memory SQLite is not supported"),
        ("mysql://u@h/db", "unsupported database backend 'mysql'"),
        ("not a url", "not a database URL"),
    ],
)
def test_unusable_urls_are_refused_with_a_reason(url: str, message: str) -> None:
    with pytest.raises(DatabaseURLError, match=message):
        normalize_url(url)


def test_display_url_hides_the_password() -> None:
    db = Database("postgresql://roost:hunter2@127.0.0.1:5432/roost")
    try:
        shown = db.display_url()
    finally:
        asyncio.run(db.dispose())
    assert "hunter2" not in shown
    assert shown.startswith("postgresql://roost:")


async def test_sqlite_runs_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'wal.sqlite3'}")
    try:
        async with db.write() as session:
            mode = (await session.execute(text("PRAGMA journal_mode"))).scalar_one()
            sync = (await session.execute(text("PRAGMA synchronous"))).scalar_one()
    finally:
        await db.dispose()
    assert mode == "wal"
    assert sync == 2  # FULL: a commit survives a power cut, not only a crash
    assert (tmp_path / "nested" / "wal.sqlite3").is_file()


async def test_a_failed_write_is_rolled_back(db: Database) -> None:
    org = await new_org(db)
    with pytest.raises(RuntimeError):
        async with db.write() as session:
            row = await session.get(Organisation, org.id)
            assert row is not None
            row.name = "renamed-then-rolled-back"
            await session.flush()
            raise RuntimeError("boom")
    async with db.read() as session:
        row = await session.get(Organisation, org.id)
    assert row is not None
    assert row.name == org.name


async def test_concurrent_writers_queue_instead_of_failing(db: Database) -> None:
    names = await asyncio.gather(*(new_org(db, "concurrent") for _ in range(20)))
    ids = {org.id for org in names}
    assert len(ids) == 20
    async with db.read() as session:
        count = (
            await session.execute(select(func.count()).where(Organisation.id.in_(ids)))
        ).scalar_one()
    assert count == 20
    async with db.read() as session:
        # Nothing else was created as a side effect.
        results = (
            await session.execute(select(func.count()).where(SimulationResult.org_id.in_(ids)))
        ).scalar_one()
    assert results == 0
