"""Database URLs, engines and transactions.

The platform talks to its database through SQLAlchemy's asyncio layer
(aiosqlite for SQLite, asyncpg for PostgreSQL), so no query ever blocks the
event loop. A :class:`Database` owns the engines and hands out sessions:

- ``async with db.write() as session:`` one write transaction, committed when
  the block exits normally (rolled back on an exception). When ``write()``
  returns, the commit is durable (see below).
- ``async with db.read() as session:`` one read-only snapshot.

SQLite specifics. The file runs in WAL mode, so readers never block the writer.
Writes go through a single pooled connection that opens every transaction
with ``BEGIN IMMEDIATE``: writers inside this process queue on the pool instead
of racing for SQLite's lock (which with plain ``BEGIN`` can fail with
"database is locked" when a reader upgrades), and writers in other processes
(``roost keys create`` while the server runs) wait on ``busy_timeout``.
``synchronous=FULL`` makes each commit fsync the WAL, so "committed" means
"survives a power cut", not only a process crash; group commit in the ingest
path amortises that fsync over many requests.

PostgreSQL runs at its defaults (READ COMMITTED, ``synchronous_commit=on``):
a commit returns after the WAL is flushed.

Example:
    >>> from roost.platform.storage.database import normalize_url
    >>> normalize_url("postgresql://postgres@127.0.0.1/roost").drivername
    'postgresql+asyncpg'
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import platformdirs
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

__all__ = ["Database", "DatabaseURLError", "default_database_url", "normalize_url"]

SQLITE_BUSY_TIMEOUT_MS = 30_000


class DatabaseURLError(ValueError):
    """The database URL cannot be used (unknown backend, in-memory SQLite...)."""


def default_database_url() -> str:
    """``sqlite:///<user data dir>/roost.sqlite3`` (the embedded default)."""
    path = Path(platformdirs.user_data_dir("roost")) / "roost.sqlite3"
    return f"sqlite:///{path}"


def normalize_url(url: str | URL) -> URL:
    """Map a user-facing SQLAlchemy URL to the asyncio driver Roost uses.

    ``sqlite:///file`` becomes ``sqlite+aiosqlite:///file``; ``postgresql://``,
    ``postgres://`` and the psycopg forms become ``postgresql+asyncpg://``.

    Raises:
        DatabaseURLError: for unparsable URLs, in-memory SQLite (each pooled
            connection would see its own empty database) and other backends.
    """
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except ArgumentError as exc:
        raise DatabaseURLError(f"not a database URL: {url!s}") from exc
    backend = parsed.get_backend_name()
    if backend in {"postgres", "postgresql"}:
        return parsed.set(drivername="postgresql+asyncpg")
    if backend == "sqlite":
        database = parsed.database or ""
        if database in {"", ":memory:"} or database.startswith("file::memory:"):
            raise DatabaseURLError(
                "in-memory SQLite is not supported; give a file path, "
                "for example sqlite:////var/lib/roost/roost.sqlite3"
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    raise DatabaseURLError(
        f"unsupported database backend {backend!r}: use sqlite:///<path> or postgresql://..."
    )


def _sqlite_on_connect(dbapi_connection: Any, *, writer: bool) -> None:
    # Take over transaction control from the driver: BEGIN is emitted in the
    # "begin" hook below, so SQLAlchemy's transaction boundaries are real.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    if not writer:
        cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _configure_sqlite(engine: AsyncEngine, *, writer: bool) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        _sqlite_on_connect(dbapi_connection, writer=writer)

    begin_sql = "BEGIN IMMEDIATE" if writer else "BEGIN"

    @event.listens_for(sync_engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin_sql)


class Database:
    """The engines and session factories of one database.

    Args:
        url: Any SQLAlchemy URL Roost supports (see :func:`normalize_url`).
        pool_size: Connections for readers (and, on PostgreSQL, writers).

    Example:
        >>> import asyncio, tempfile
        >>> from sqlalchemy import text
        >>> async def main(path):
        ...     db = Database(f"sqlite:///{path}/doc.sqlite3")
        ...     async with db.read() as session:
        ...         value = (await session.execute(text("select 1"))).scalar_one()
        ...     await db.dispose()
        ...     return value
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     asyncio.run(main(tmp))
        1
    """

    def __init__(self, url: str | URL, *, pool_size: int = 5) -> None:
        self.url = normalize_url(url)
        self.dialect = self.url.get_backend_name()
        if self.dialect == "sqlite":
            Path(self.url.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = create_async_engine(
                self.url, pool_size=1, max_overflow=0, pool_timeout=600
            )
            _configure_sqlite(self.write_engine, writer=True)
            self.read_engine = create_async_engine(self.url, pool_size=pool_size, max_overflow=4)
            _configure_sqlite(self.read_engine, writer=False)
        else:
            self.write_engine = create_async_engine(
                self.url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
        self._write_sessions = async_sessionmaker(self.write_engine, expire_on_commit=False)
        self._read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        """Whether the backend is SQLite (one writer at a time)."""
        return self.dialect == "sqlite"

    def connect_sqlite_writer(self) -> sqlite3.Connection:
        """A blocking write connection to this SQLite file, set up like the pooled one.

        For a process whose only job is writing (the ingest writer process),
        where a driver thread would only add hand-offs. Transactions are the
        caller's: the connection is in autocommit mode, so send ``BEGIN
        IMMEDIATE`` and ``COMMIT`` yourself.
        """
        if not self.is_sqlite:
            raise DatabaseURLError("connect_sqlite_writer needs a SQLite database")
        connection = sqlite3.connect(
            Path(self.url.database or "").expanduser(), check_same_thread=False
        )
        _sqlite_on_connect(connection, writer=True)
        return connection

    def display_url(self) -> str:
        """The URL as a user writes it (``sqlite:///...``), password masked."""
        return self.url.set(drivername=self.dialect).render_as_string(hide_password=True)

    @contextlib.asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session inside one write transaction, committed on normal exit."""
        async with self._write_sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session inside one read-only transaction (a consistent snapshot)."""
        async with self._read_sessions() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        """Close every pooled connection."""
        await self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            await self.read_engine.dispose()
