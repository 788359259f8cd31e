"""``roost db``: create or migrate the platform's database schema.

``roost db upgrade`` applies every Alembic migration shipped with this Roost
(safe to run repeatedly); ``roost db current`` shows where a database stands.

Example:
    >>> from typer.testing import CliRunner
    >>> from roost.cli import app
    >>> CliRunner().invoke(app, ["db", "--help"]).exit_code
    0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from roost.cli._common import console
from roost.cli._platform import database_option_help, run_with_database

if TYPE_CHECKING:
    from roost.platform.storage import Database

__all__ = ["register"]

db_app = typer.Typer(
    name="db",
    help="Create or migrate the platform database (SQLite by default, or PostgreSQL).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help=database_option_help(), show_default=False)
]


@db_app.command("upgrade")
def upgrade(database_url: DatabaseOption = None) -> None:
    """Apply all migrations (creates the schema on an empty database)."""
    from roost.platform.storage import migrate

    async def action(db: Database) -> tuple[tuple[str, ...], tuple[str, ...]]:
        before = await migrate.current(db)
        after = await migrate.upgrade(db)
        return before, after

    before, after = run_with_database(database_url, action, need_schema=False)
    label = ", ".join(after) or "none"
    if before == after:
        console.print(f"database already at the latest revision ({label})")
    else:
        console.print(f"database upgraded from {', '.join(before) or 'empty'} to {label}")


@db_app.command("current")
def current(database_url: DatabaseOption = None) -> None:
    """Show the database's revision and whether it is the latest."""
    from roost.platform.storage import migrate

    async def action(db: Database) -> tuple[str, tuple[str, ...]]:
        return db.display_url(), await migrate.current(db)

    url, have = run_with_database(database_url, action, need_schema=False)
    want = migrate.heads()
    console.print(f"database: {url}")
    console.print(f"revision: {', '.join(have) or 'none (run `roost db upgrade`)'}")
    console.print(f"latest:   {', '.join(want)}")
    if have != want:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``db`` group to the root command."""
    app.add_typer(db_app)
