"""Helpers shared by the platform commands (serve, db, keys).

Example:
    >>> database_option_help()[:12]
    'Database URL'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from roost.cli._common import fail, require_extra

if TYPE_CHECKING:
    from roost.platform.storage import Database

__all__ = ["database_option_help", "open_database", "run_with_database"]

T = TypeVar("T")


def database_option_help() -> str:
    """Help text of every ``--database-url`` option."""
    return (
        "Database URL (SQLAlchemy form: sqlite:///path or postgresql://user@host/db). "
        "Default: $ROOST_DATABASE_URL, else roost.sqlite3 in the user data directory."
    )


def open_database(database_url: str | None) -> Database:
    """A :class:`Database` for the flag, the environment or the default."""
    require_extra("sqlalchemy", "platform")
    from roost.platform.settings import PlatformSettings, SettingsError
    from roost.platform.storage import Database, DatabaseURLError

    try:
        settings = PlatformSettings.from_env(database_url=database_url)
        return Database(settings.database_url)
    except (SettingsError, DatabaseURLError) as exc:
        fail(str(exc))


def run_with_database(
    database_url: str | None,
    action: Callable[[Database], Awaitable[T]],
    *,
    need_schema: bool = True,
) -> T:
    """Run ``action`` on the database in an event loop, with clear failures."""
    import asyncio

    from sqlalchemy.exc import DBAPIError, OperationalError

    from roost.platform.storage import migrate

    db = open_database(database_url)

    async def main() -> T:
        try:
            if need_schema:
                await migrate.ensure_current(db)
            return await action(db)
        finally:
            await db.dispose()

    try:
        return asyncio.run(main())
    except migrate.SchemaNotCurrentError as exc:
        fail(str(exc))
    except (OperationalError, DBAPIError, OSError) as exc:
        fail(f"cannot use the database {db.display_url()}: {_first_line(exc)}")


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
