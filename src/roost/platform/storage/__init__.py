"""Storage of the platform: SQLAlchemy 2 (asyncio) on SQLite or PostgreSQL.

How to use it (other platform modules, including webhooks, rely on this):

- Tables derive from :class:`Base` (``roost.platform.storage.base``), which
  carries a naming convention for constraints. A module that defines tables
  adds itself to :data:`TABLE_MODULES` so Alembic and the tests see it.
- A :class:`Database` owns the engines. Inside the app it lives at
  ``request.app.state.db`` (FastAPI dependency:
  :func:`roost.platform.deps.get_db`). Elsewhere create one from a URL.
- ``async with db.write() as session:`` gives an ``AsyncSession`` inside one
  transaction that commits, durably, when the block exits; ``db.read()`` gives
  a read-only snapshot. Both are ``sqlalchemy.ext.asyncio.AsyncSession``.
- The schema is managed by Alembic (:mod:`roost.platform.storage.migrate`,
  revisions in ``roost/platform/migrations/versions``). The server refuses to
  start unless the database is at the latest revision.

Example:
    >>> import asyncio, tempfile
    >>> from roost.platform.storage import Database, Organisation, migrate
    >>> async def main(path):
    ...     db = Database(f"sqlite:///{path}/doc.sqlite3")
    ...     await migrate.upgrade(db)
    ...     async with db.write() as session:
    ...         session.add(Organisation(name="acme"))
    ...     async with db.read() as session:
    ...         org = (await session.execute(select(Organisation))).scalar_one()
    ...     await db.dispose()
    ...     return org.name
    >>> from sqlalchemy import select
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     asyncio.run(main(tmp))
    'acme'
"""

from __future__ import annotations

import importlib
import importlib.util

from roost.platform.storage.base import Base, JSONText, UTCDateTime, dumps_json, utcnow
from roost.platform.storage.database import (
    Database,
    DatabaseURLError,
    default_database_url,
    normalize_url,
)
from roost.platform.storage.tables import (
    Agent,
    ApiKey,
    DigitalHuman,
    EnrichmentBatch,
    IdempotencyRecord,
    Organisation,
    Simulation,
    SimulationDigitalHuman,
    SimulationResult,
    SimulationRun,
    ToolCallRow,
)

__all__ = [
    "TABLE_MODULES",
    "Agent",
    "ApiKey",
    "Base",
    "Database",
    "DatabaseURLError",
    "DigitalHuman",
    "EnrichmentBatch",
    "IdempotencyRecord",
    "JSONText",
    "Organisation",
    "Simulation",
    "SimulationDigitalHuman",
    "SimulationResult",
    "SimulationRun",
    "ToolCallRow",
    "UTCDateTime",
    "default_database_url",
    "dumps_json",
    "load_table_modules",
    "normalize_url",
    "utcnow",
]

# Every module that defines tables on Base. Optional ones are imported when
# present, so the webhook tables join the schema as soon as their module lands.
TABLE_MODULES: tuple[str, ...] = (
    "roost.platform.storage.tables",
    "roost.platform.webhooks.tables",
)


def load_table_modules() -> list[str]:
    """Import every table module that exists; return the names imported."""
    loaded = []
    for name in TABLE_MODULES:
        parent = name.rpartition(".")[0]
        if importlib.util.find_spec(parent) is None or importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name)
        loaded.append(name)
    return loaded
