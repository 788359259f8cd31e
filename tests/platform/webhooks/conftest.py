"""A database of its own for each webhook worker test.

The worker claims every due delivery in its database, so worker tests must
not share one with other tests (a delivery left pending elsewhere would be
sent by them). SQLite gets a copy of the session's migrated template; on
PostgreSQL each test gets a database cloned from a migrated template
(``CREATE DATABASE ... TEMPLATE``, much faster than migrating each time).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from roost.platform.storage import Database
from tests.platform.conftest import PG_HOST, PG_PORT, _admin, _migrate


@pytest.fixture(scope="session")
def pg_template(pg_database_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database used only as a template."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"roost_webhooks_tpl_{worker}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(_migrate(f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"))
        yield name
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def own_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a migrated database no other test uses."""
    if request.param == "sqlite":
        source: Path = request.getfixturevalue("sqlite_template")
        shutil.copyfile(source, tmp_path / "own.sqlite3")
        yield f"sqlite:///{tmp_path / 'own.sqlite3'}"
        return
    template: str = request.getfixturevalue("pg_template")
    name = f"roost_webhooks_{uuid.uuid4().hex[:16]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def own_db(own_db_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on :func:`own_db_url`."""
    database = Database(own_db_url)
    try:
        yield database
    finally:
        await database.dispose()
