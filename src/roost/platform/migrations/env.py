"""Alembic environment: runs migrations on a connection Roost hands over.

:mod:`roost.platform.storage.migrate` opens the connection through the
platform's own :class:`~roost.platform.storage.Database` (so SQLite gets the same
pragmas and ``BEGIN IMMEDIATE`` as the server) and passes it in
``config.attributes["connection"]``. Offline mode (``--sql``) renders SQL for a
URL instead.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from roost.platform.storage import load_table_modules
from roost.platform.storage.base import Base

# Imports every module that defines tables on Base: the core tables and, once
# it exists, roost.platform.webhooks.tables (see TABLE_MODULES there).
load_table_modules()

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    context.configure(
        url=context.config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    _run_offline()
else:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "run Roost migrations through roost.platform.storage.migrate (or `roost db upgrade`)"
        )
    _run(connection)
