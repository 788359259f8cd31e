"""``roost webhooks``: register, list, remove and re-key webhook endpoints.

Like ``roost keys``, these commands work on the database directly (no server
or API key needed), so an operator can set up endpoints before the first run.
``add`` and ``rotate-secret`` print the signing secret alone on their last
line (``tail -n 1`` in scripts); it is not shown again. A running server picks
up changes at once: it reads endpoints from the database for every event.

Example:
    >>> from typer.testing import CliRunner
    >>> from roost.cli import app
    >>> CliRunner().invoke(app, ["webhooks", "--help"]).exit_code
    0
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from roost.cli._common import console, err_console, fail
from roost.cli._platform import database_option_help, run_with_database

if TYPE_CHECKING:
    from roost.platform.storage import Database

__all__ = ["register"]

webhooks_app = typer.Typer(
    name="webhooks",
    help="Register, list, remove and re-key webhook endpoints (signed, retried deliveries).",
    no_args_is_help=True,
    rich_markup_mode="rich",
)

DatabaseOption = Annotated[
    str | None, typer.Option("--database-url", help=database_option_help(), show_default=False)
]
OrgOption = Annotated[
    str | None,
    typer.Option("--org", help="Organisation name (default: all for list, 'default' for add)."),
]


@webhooks_app.command("add")
def add(
    url: Annotated[str, typer.Argument(help="http(s) URL that receives the events.")],
    org: OrgOption = None,
    event: Annotated[
        list[str] | None,
        typer.Option(
            "--event",
            help="Only this event type (repeatable): simulation_ended, "
            "simulation_result_evaluated. Default: all.",
        ),
    ] = None,
    agent: Annotated[
        list[int] | None,
        typer.Option("--agent", help="Only events of this agent id (repeatable). Default: all."),
    ] = None,
    description: Annotated[str | None, typer.Option("--description", help="A note.")] = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="Register it switched off.")] = False,
    database_url: DatabaseOption = None,
) -> None:
    """Register an endpoint and print its signing secret (last line; shown once)."""
    from roost.platform.keys import ensure_organisation
    from roost.platform.webhooks.service import WebhookConfigError, create_endpoint

    async def action(db: Database) -> tuple[int, str, str]:
        async with db.write() as session:
            organisation = await ensure_organisation(session, org or "default")
            endpoint, secret = await create_endpoint(
                session,
                organisation.id,
                url=url,
                description=description,
                event_types=event or None,
                agent_ids=agent or None,
                enabled=not disabled,
            )
            return endpoint.id, organisation.name, secret

    try:
        endpoint_id, org_name, secret = run_with_database(database_url, action)
    except WebhookConfigError as exc:
        fail(str(exc))
    except ValueError as exc:  # organisation name
        fail(str(exc))
    err_console.print(
        f"registered webhook [bold]{endpoint_id}[/] for organisation [bold]{org_name}[/]; "
        "its signing secret follows (store it now: it is not shown again)"
    )
    typer.echo(secret)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(rows: list[dict[str, Any]]) -> None:
    from roost.platform.storage import dumps_json

    typer.echo(dumps_json(rows))


@webhooks_app.command("list")
def list_(
    org: OrgOption = None, as_json: JsonOption = False, database_url: DatabaseOption = None
) -> None:
    """List endpoints (never their secrets)."""
    from sqlalchemy import select

    from roost.platform.storage import Organisation
    from roost.platform.webhooks.service import endpoint_summary, list_endpoints

    async def action(db: Database) -> list[tuple[str, dict[str, Any]]]:
        async with db.read() as session:
            names = dict((await session.execute(select(Organisation.id, Organisation.name))).all())
            org_id = _org_id(names, org) if org is not None else None
            return [
                (names[e.org_id], endpoint_summary(e))
                for e in await list_endpoints(session, org_id)
            ]

    rows = run_with_database(database_url, action)
    if as_json:
        _print_json([{**info, "organisation": org_name} for org_name, info in rows])
        return
    table = Table("id", "organisation")
    # URLs are what people look for: fold them rather than cut them.
    table.add_column("url", overflow="fold", min_width=20)
    for title in ("events", "agents", "enabled", "secret rotated"):
        table.add_column(title, overflow="fold")
    for org_name, info in rows:
        rotated = info["secret_rotated_at"]
        table.add_row(
            str(info["id"]),
            org_name,
            info["url"],
            ", ".join(info["event_types"] or ["all"]),
            ", ".join(map(str, info["agent_ids"] or [])) or "all",
            "yes" if info["enabled"] else "no",
            rotated.isoformat(timespec="seconds") if rotated else "",
        )
    console.print(table)


def _org_id(names: dict[int, str], org: str) -> int:
    for org_id, name in names.items():
        if name == org:
            return org_id
    raise typer.BadParameter(f"no organisation named {org!r}", param_hint="--org")


@webhooks_app.command("remove")
def remove(
    webhook_id: Annotated[int, typer.Argument(help="The endpoint id (see `roost webhooks list`).")],
    database_url: DatabaseOption = None,
) -> None:
    """Remove an endpoint; its queued deliveries are dropped with it."""
    from roost.platform.webhooks.service import delete_endpoint

    async def action(db: Database) -> bool:
        async with db.write() as session:
            return await delete_endpoint(session, None, webhook_id)

    if not _valid_id(webhook_id) or not run_with_database(database_url, action):
        fail(f"no webhook with id {webhook_id}")
    console.print(f"removed webhook {webhook_id}")


@webhooks_app.command("rotate-secret")
def rotate(
    webhook_id: Annotated[int, typer.Argument(help="The endpoint id.")],
    grace: Annotated[
        int,
        typer.Option(
            "--grace",
            min=0,
            max=7 * 86400,
            help="Seconds the previous secret stays valid (0: revoke it now).",
        ),
    ] = 86400,
    database_url: DatabaseOption = None,
) -> None:
    """Issue a new signing secret and print it (last line; shown once)."""
    from roost.platform.webhooks.service import rotate_secret

    async def action(db: Database) -> str | None:
        async with db.write() as session:
            rotated = await rotate_secret(session, None, webhook_id, grace=timedelta(seconds=grace))
            return None if rotated is None else rotated[1]

    secret = run_with_database(database_url, action) if _valid_id(webhook_id) else None
    if secret is None:
        fail(f"no webhook with id {webhook_id}")
    until = f"for {grace} s" if grace else "no longer (revoked now)"
    err_console.print(
        f"new secret for webhook [bold]{webhook_id}[/]; the previous one stays valid {until}"
    )
    typer.echo(secret)


@webhooks_app.command("deliveries")
def deliveries(
    webhook_id: Annotated[int, typer.Argument(help="The endpoint id.")],
    status: Annotated[
        str | None, typer.Option("--status", help="pending, delivered or failed.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=500)] = 20,
    as_json: JsonOption = False,
    database_url: DatabaseOption = None,
) -> None:
    """Show an endpoint's recent deliveries, newest first."""
    from roost.platform.webhooks.service import list_deliveries

    if status not in (None, "pending", "delivered", "failed"):
        fail("--status must be pending, delivered or failed")

    async def action(db: Database) -> list[dict[str, Any]]:
        async with db.read() as session:
            rows = await list_deliveries(session, None, webhook_id, status=status, limit=limit)
            return [row.summary() for row in rows]

    rows = run_with_database(database_url, action) if _valid_id(webhook_id) else []
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "event", "status", "attempts", "last answer", "created")
    for row in rows:
        answer = (
            str(row["last_status_code"] or "")
            if row["status"] == "delivered"
            else (row["last_error"] or "")
        )
        table.add_row(
            str(row["id"]),
            row["event_type"],
            row["status"],
            str(row["attempts"]),
            answer,
            row["created_at"].isoformat(timespec="seconds"),
        )
    console.print(table)


def _valid_id(value: int) -> bool:
    return 0 < value < 2**63


def register(app: typer.Typer) -> None:
    """Add the ``webhooks`` group to the root command."""
    app.add_typer(webhooks_app)
