"""Fixtures for platform tests: real SQLite files and a real PostgreSQL.

- ``database_url``: parametrized over ``sqlite`` (a migrated file in
  ``tmp_path``) and ``postgresql`` (a database created for this test session
  on 127.0.0.1:5432 as user ``postgres``, migrated once, dropped at the end).
  PostgreSQL tests never skip: when the server is down the fixture tries to
  start the local cluster and fails with a clear message if it still cannot.
- ``db``: a :class:`Database` on that URL.
- ``org``: a fresh organisation with an API key (tests share the PostgreSQL
  database, so each test works in its own organisation).
- ``make_app`` / ``client``: the ASGI app with its lifespan running, and an
  httpx client on it authenticated as ``org``.
- ``live_server``: ``roost serve`` in a subprocess on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from roost.platform import PlatformSettings, create_app
from roost.platform.keys import create_key
from roost.platform.storage import Database, migrate

PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_ADMIN_URL = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/postgres"


def _pg_reachable() -> bool:
    import socket

    with contextlib.closing(socket.socket()) as sock:
        sock.settimeout(1)
        return sock.connect_ex((PG_HOST, PG_PORT)) == 0


def _start_postgres() -> None:
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions or shutil.which("pg_ctlcluster") is None:
        return
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "start"],
        check=False,
        capture_output=True,
        timeout=60,
    )
    for _ in range(60):
        if _pg_reachable():
            return
        time.sleep(0.5)


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user="postgres", database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _migrate(url: str) -> None:
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()


@pytest.fixture(scope="session")
def pg_database_url() -> Iterator[str]:
    """A migrated PostgreSQL database for this test session (dropped afterwards)."""
    if not _pg_reachable():
        _start_postgres()
    if not _pg_reachable():
        pytest.fail(
            f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT} and could not be started; "
            "start it (scripts/bootstrap test does) or install the postgresql package",
            pytrace=False,
        )
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    name = f"roost_test_{worker}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    url = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/{name}"
    try:
        asyncio.run(_migrate(url))
        yield url
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that tests copy (migrating once is faster)."""
    path = tmp_path_factory.mktemp("template") / "roost.sqlite3"
    asyncio.run(_migrate(f"sqlite:///{path}"))
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated database URL: a fresh SQLite file, or the session's PostgreSQL database."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("pg_database_url")
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "roost.sqlite3"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A :class:`Database` on ``database_url``."""
    database = Database(database_url)
    try:
        yield database
    finally:
        await database.dispose()


@dataclass(frozen=True)
class Org:
    """An organisation made for one test, with an API key."""

    id: int
    name: str
    key: str
    key_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"X-API-Key": self.key}


async def new_org(db: Database, prefix: str = "org") -> Org:
    """Create a uniquely named organisation with one API key."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    async with db.write() as session:
        created = await create_key(session, name)
    return Org(id=created.info.org_id, name=name, key=created.key, key_id=created.info.key_id)


@pytest.fixture
async def org(db: Database) -> Org:
    """A fresh organisation with an API key."""
    return await new_org(db)


AppFactory = Callable[..., contextlib.AbstractAsyncContextManager[Any]]


@pytest.fixture
def make_app(database_url: str, db: Database) -> AppFactory:
    """``async with make_app(**settings) as app:`` runs an app with its lifespan."""

    @contextlib.asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[Any]:
        dispatcher = overrides.pop("dispatcher", None)
        # The writer runs in the server's process unless a test asks for the
        # child process (tests/platform/test_ingest_process.py does).
        overrides.setdefault("ingest_process", False)
        settings = PlatformSettings.from_env({}, database_url=database_url, **overrides)
        app = create_app(settings, db=db, dispatcher=dispatcher)
        async with app.router.lifespan_context(app):
            yield app

    return factory


def client_for(app: Any, headers: dict[str, str] | None = None) -> httpx.AsyncClient:
    """An httpx client talking to ``app`` in process."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://roost.test", headers=headers
    )


@pytest.fixture
async def client(make_app: AppFactory, org: Org) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on a running app, authenticated as ``org``."""
    async with make_app() as app, client_for(app, org.headers) as http:
        http.app = app  # type: ignore[attr-defined]
        yield http


@dataclass
class LiveServer:
    """A ``roost serve`` subprocess."""

    url: str
    process: subprocess.Popen[str]
    database_url: str
    log: Any = None


def start_server(database_url: str, *extra: str, env: dict[str, str] | None = None) -> LiveServer:
    """Start ``roost serve --port 0`` and wait for its "listening on" line."""
    command = [
        sys.executable,
        "-c",
        "from roost.cli import main; main()",
        "serve",
        "--port",
        "0",
        "--database-url",
        database_url,
        "--no-access-log",
        "--log-level",
        "warning",
        *extra,
    ]
    # stderr goes to a file: a pipe nobody reads would block a chatty server
    # once its buffer fills.
    log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by stop_server)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    # readline() blocks: a server stuck at start-up is killed by this timer,
    # which ends the read with EOF and fails the test with stderr shown.
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        while True:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("roost serve: listening on "):
                return LiveServer(line.split()[-1], process, database_url, log)
    finally:
        watchdog.cancel()
    process.kill()
    process.communicate(timeout=10)
    log.seek(0)
    err = log.read()
    log.close()
    raise AssertionError(f"roost serve did not start: {err}")


def stop_server(server: LiveServer) -> None:
    """Stop the subprocess (SIGTERM, then SIGKILL)."""
    server.process.terminate()
    try:
        server.process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.communicate(timeout=10)
    if server.log is not None:
        server.log.close()


@pytest.fixture
def live_server(database_url: str) -> Iterator[LiveServer]:
    """``roost serve`` on a free port of 127.0.0.1, on ``database_url``."""
    server = start_server(database_url)
    try:
        yield server
    finally:
        stop_server(server)
