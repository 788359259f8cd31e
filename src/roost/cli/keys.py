"""``roost keys``: create, list and revoke the platform's API keys.

These commands work on the database directly, so the first key can be created
before the server has ever run. ``create`` prints the new key alone on its last
line (scripts can take ``tail -n 1``); it is shown only this once.

Example:
    >>> from typer.testing import CliRunner
    >>> from roost.cli import app
    >>> CliRunner().invoke(app, ["keys", "--help"]).exit_code
    0
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from roost.cli._common import console, err_console, fail
from roost.cli._platform import database_option_help, run_with_database

if TYPE_CHECKING:
    from roost.platform.keys import CreatedKey, KeyInfo
    from roost.platform.storage import Database

__all__ = ["register"]

keys_app = typer.Typer(
    name="keys",
    help="Create, list and revoke API keys (each key belongs to one organisation).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help=database_option_help(), show_default=False)
]


@keys_app.command("create")
def create(
    org: Annotated[
        str, typer.Option("--org", help="Organisation name (created if it does not exist).")
    ] = "default",
    name: Annotated[
        str | None, typer.Option("--name", help="A label for the key, e.g. 'ci' or 'agent-eu'.")
    ] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create an API key and print it (last line; shown only once)."""
    from roost.platform.keys import create_key

    async def action(db: Database) -> CreatedKey:
        async with db.write() as session:
            return await create_key(session, org, name=name)

    try:
        created = run_with_database(database_url, action)
    except ValueError as exc:
        fail(str(exc))
    info = created.info
    err_console.print(
        f"created key [bold]{info.key_id}[/] for organisation [bold]{info.org_name}[/] "
        "(store it now: it is not shown again)"
    )
    typer.echo(created.key)


@keys_app.command("list")
def list_(
    org: Annotated[str | None, typer.Option("--org", help="Only this organisation.")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """List keys (ids, organisations, dates; never secrets)."""
    from roost.platform.keys import list_keys

    async def action(db: Database) -> list[KeyInfo]:
        async with db.read() as session:
            return await list_keys(session)

    keys = [k for k in run_with_database(database_url, action) if org is None or k.org_name == org]
    table = Table("key id", "organisation", "name", "created", "revoked")
    for info in keys:
        table.add_row(
            info.key_id,
            info.org_name,
            info.name or "",
            info.created_at.isoformat(timespec="seconds"),
            info.revoked_at.isoformat(timespec="seconds") if info.revoked_at else "",
        )
    console.print(table)


@keys_app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (the part after 'roost_').")],
    database_url: DatabaseOption = None,
) -> None:
    """Revoke a key for good (a running server notices within a few seconds)."""
    from roost.platform.auth import parse_api_key
    from roost.platform.keys import revoke_key

    parsed = parse_api_key(key_id)
    if parsed is not None:
        # A full key was pasted: revoke it by its id, never echo the secret.
        key_id = parsed[0]

    async def action(db: Database) -> KeyInfo | None:
        async with db.write() as session:
            return await revoke_key(session, key_id)

    info = run_with_database(database_url, action)
    if info is None:
        fail(f"no API key with id {key_id!r}")
    console.print(f"revoked key {info.key_id} of organisation {info.org_name}")


def register(app: typer.Typer) -> None:
    """Add the ``keys`` group to the root command."""
    app.add_typer(keys_app)
