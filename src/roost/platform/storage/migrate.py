"""Alembic, driven programmatically on Roost's own :class:`Database`.

``roost db upgrade`` and ``roost db current`` call these functions; so does the
server at start-up (:func:`ensure_current`), which refuses to run on a database
that is not at the latest revision rather than failing later on a missing
column.

Example:
    >>> import asyncio, tempfile
    >>> from roost.platform.storage import Database
    >>> async def main(path):
    ...     db = Database(f"sqlite:///{path}/doc.sqlite3")
    ...     before = await current(db)
    ...     await upgrade(db)
    ...     after = await current(db)
    ...     await db.dispose()
    ...     return before, after == heads()
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     asyncio.run(main(tmp))
    ((), True)
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from roost.platform.storage.database import Database

__all__ = [
    "MIGRATIONS_DIR",
    "SchemaNotCurrentError",
    "alembic_config",
    "current",
    "ensure_current",
    "heads",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


class SchemaNotCurrentError(RuntimeError):
    """The database schema is missing or older than this version of Roost."""


def alembic_config(db: Database | None = None) -> Config:
    """An Alembic ``Config`` pointing at the packaged migrations."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    if db is not None:
        # Offline (--sql) mode renders for this URL.
        config.set_main_option(
            "sqlalchemy.url", db.url.render_as_string(hide_password=False).replace("%", "%%")
        )
    return config


def heads() -> tuple[str, ...]:
    """The latest revision(s) this version of Roost ships."""
    return tuple(sorted(ScriptDirectory.from_config(alembic_config()).get_heads()))


def _current_heads(connection: Connection) -> tuple[str, ...]:
    return tuple(sorted(MigrationContext.configure(connection).get_current_heads()))


async def current(db: Database) -> tuple[str, ...]:
    """The revision(s) the database is at; ``()`` for an unmigrated database."""
    async with db.write_engine.connect() as connection:
        return await connection.run_sync(_current_heads)


async def upgrade(db: Database, revision: str = "head") -> tuple[str, ...]:
    """Migrate the database to ``revision`` (default: latest); return the new heads."""
    config = alembic_config(db)

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with db.write_engine.begin() as connection:
        await connection.run_sync(run)
    return await current(db)


async def ensure_current(db: Database) -> None:
    """Raise :class:`SchemaNotCurrentError` unless the database is at the latest revision."""
    have = await current(db)
    want = heads()
    if have == want:
        return
    target = db.display_url()
    if not have:
        raise SchemaNotCurrentError(
            f"the database {target} has no Roost schema yet; "
            f"run `roost db upgrade --database-url {target}` (or start with --migrate)"
        )
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if not set(have) <= known:
        raise SchemaNotCurrentError(
            f"the database {target} is at revision {', '.join(have)}, which this version "
            "of Roost does not know (was it migrated by a newer Roost?)"
        )
    raise SchemaNotCurrentError(
        f"the database {target} is at revision {', '.join(have)} but this Roost needs "
        f"{', '.join(want)}; run `roost db upgrade --database-url {target}`"
    )


def _main() -> None:
    # Development helper: autogenerate a new revision against a migrated database.
    parser = argparse.ArgumentParser(prog="python -m roost.platform.storage.migrate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="autogenerate a new revision")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--database-url", required=True)
    args = parser.parse_args()

    async def run() -> None:
        db = Database(args.database_url)
        config = alembic_config(db)

        def generate(connection: Connection) -> None:
            config.attributes["connection"] = connection
            command.revision(config, message=args.message, autogenerate=True)

        async with db.write_engine.begin() as connection:
            await connection.run_sync(generate)
        await db.dispose()

    asyncio.run(run())


if __name__ == "__main__":
    _main()
