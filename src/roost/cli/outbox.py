"""``roost outbox``: inspect and operate the agent SDK's delivery outbox.

``list`` and ``show`` read the SQLite file; ``flush`` sends what is pending now
(ignoring backoff) with the API key from the environment; ``purge`` deletes
delivered entries, and failed or pending ones only when asked twice (``--failed``
or ``--all`` plus ``--yes``). Read-only commands never create the file.

Example:
    >>> from typer.testing import CliRunner
    >>> from roost.cli import app
    >>> result = CliRunner().invoke(app, ["outbox", "list", "--path", "/nonexistent/o.sqlite3"])
    >>> result.exit_code
    0
"""

from __future__ import annotations

import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from roost.cli._common import console, err_console, fail

if TYPE_CHECKING:
    from roost.delivery import EntryState, Outbox, OutboxEntry

__all__ = ["register"]

outbox_app = typer.Typer(
    name="outbox",
    help=(
        "Inspect and operate the delivery outbox: the SQLite file where the agent SDK keeps "
        "each call's enrichment until the platform has accepted it.\n\n"
        "The file is ROOST_OUTBOX_PATH, or outbox.sqlite3 in the user data directory."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)

PathOption = Annotated[
    Path | None,
    typer.Option(
        "--path",
        "-p",
        help="Outbox file. Default: $ROOST_OUTBOX_PATH, else outbox.sqlite3 in the user data dir.",
        show_default=False,
    ),
]

_STATE_STYLE = {"pending": "yellow", "delivered": "green", "failed": "bold red"}


def _resolve_path(path: Path | None) -> Path:
    from roost.delivery import DeliveryConfigError
    from roost.delivery.config import DeliveryConfig

    try:
        return DeliveryConfig.from_env(outbox_path=path).outbox_path
    except DeliveryConfigError as exc:
        fail(str(exc))


def _open(path: Path | None, *, create: bool = False) -> Outbox | None:
    """The outbox at ``path``, or ``None`` when it does not exist and ``create`` is false."""
    from roost.delivery import Outbox, OutboxError

    resolved = _resolve_path(path)
    if not create and not resolved.exists():
        return None
    try:
        return Outbox(resolved)
    except OutboxError as exc:
        fail(str(exc))


def _interactive() -> bool:
    return sys.stdin.isatty()


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _relative(timestamp: float, now: float) -> str:
    delta = timestamp - now
    if delta <= 0:
        return "due now"
    seconds = int(delta)
    if seconds < 60:
        return f"in {max(seconds, 1)}s"
    if seconds < 3600:
        return f"in {seconds // 60}m {seconds % 60}s"
    if seconds < 86_400:
        return f"in {seconds // 3600}h {seconds % 3600 // 60}m"
    return f"in {seconds // 86_400}d {seconds % 86_400 // 3600}h"


def _state_text(state: str) -> str:
    return f"[{_STATE_STYLE.get(state, 'white')}]{state}[/]"


def _status_column(entry: OutboxEntry, now: float) -> str:
    if entry.state == "delivered":
        return _when(entry.delivered_at)
    if entry.state == "failed":
        return "needs attention"
    if entry.claimed_until is not None and entry.claimed_until > now:
        return "sending"
    return _relative(entry.next_attempt_at, now)


def _short(text: str | None, limit: int = 70) -> str:
    if not text:
        return ""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _entry_dict(entry: OutboxEntry) -> dict[str, object]:
    return {
        "id": entry.id,
        "simulation_result_id": entry.simulation_result_id,
        "state": entry.state.value,
        "base_url": entry.base_url,
        "idempotency_key": entry.idempotency_key,
        "created_at": entry.created_at,
        "attempts": entry.attempts,
        "next_attempt_at": entry.next_attempt_at,
        "last_attempt_at": entry.last_attempt_at,
        "delivered_at": entry.delivered_at,
        "last_status": entry.last_status,
        "last_error": entry.last_error,
        "body_size": entry.body_size,
    }


def _parse_state(value: str | None) -> EntryState | None:
    from roost.delivery import EntryState

    if value is None or value == "all":
        return None
    try:
        return EntryState(value.lower())
    except ValueError:
        fail(f"unknown state {value!r}; use pending, delivered, failed or all")


@outbox_app.command("list")
def list_entries(
    path: PathOption = None,
    state: Annotated[
        str | None,
        typer.Option("--state", "-s", help="Only this state: pending, delivered, failed or all."),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, help="Show at most this many, newest first.")
    ] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines instead of a table.")
    ] = False,
) -> None:
    """List outbox entries, newest first, with their state and last error."""
    wanted = _parse_state(state)
    outbox = _open(path)
    if outbox is None:
        if not as_json:
            console.print(
                f"No outbox at {_resolve_path(path)} (nothing has been submitted from here yet)."
            )
        return
    with outbox:
        entries = outbox.entries(state=wanted, limit=limit)
        counts = outbox.counts()
    if as_json:
        for entry in entries:
            sys.stdout.write(json.dumps(_entry_dict(entry)) + "\n")
        return
    now = time.time()
    table = Table(title=f"Outbox {outbox.path}", title_justify="left")
    table.add_column("ID", style="cyan", no_wrap=True)
    table.add_column("Result", no_wrap=True)
    table.add_column("State", no_wrap=True)
    table.add_column("Tries", justify="right")
    table.add_column("Created", no_wrap=True)
    table.add_column("Next try / delivered", no_wrap=True)
    table.add_column("Target", overflow="fold")
    table.add_column("Last error / message", overflow="fold")
    for entry in entries:
        table.add_row(
            entry.id[:12],
            entry.simulation_result_id,
            _state_text(entry.state.value),
            str(entry.attempts),
            _when(entry.created_at),
            _status_column(entry, now),
            entry.base_url,
            _short(entry.last_error),
        )
    console.print(table)
    shown = f"showing {len(entries)}" if len(entries) < sum(counts.values()) else "all shown"
    console.print(
        f"{counts['pending']} pending, {counts['delivered']} delivered, "
        f"{counts['failed']} failed ({shown}). Details: roost outbox show ID"
    )


@outbox_app.command("show")
def show(
    entry_id: Annotated[str, typer.Argument(help="Entry id, or a unique prefix of 4+ characters.")],
    path: PathOption = None,
    body: Annotated[
        bool, typer.Option("--body/--no-body", help="Also print the JSON payload.")
    ] = True,
    raw: Annotated[
        bool,
        typer.Option("--raw", help="Print only the payload bytes, exactly as they will be sent."),
    ] = False,
) -> None:
    """Show one entry: every field, the last error and the payload."""
    outbox = _open(path)
    if outbox is None:
        fail(f"no outbox at {_resolve_path(path)}")
    with outbox:
        try:
            entry = outbox.find(entry_id)
        except KeyError as exc:
            fail(str(exc.args[0]))
        payload = outbox.body(entry.id)
    if raw:
        sys.stdout.buffer.write(payload)
        sys.stdout.buffer.flush()
        return
    now = time.time()
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("id", entry.id)
    table.add_row("result", entry.simulation_result_id)
    table.add_row("state", _state_text(entry.state.value))
    table.add_row("target", entry.base_url + "/v1/update-simulation-result")
    table.add_row("idempotency key", entry.idempotency_key)
    table.add_row("created", _when(entry.created_at))
    table.add_row("attempts", str(entry.attempts))
    table.add_row("last attempt", _when(entry.last_attempt_at))
    if entry.state == "pending":
        table.add_row(
            "next attempt",
            f"{_when(entry.next_attempt_at)} ({_status_column(entry, now)})",
        )
    if entry.delivered_at is not None:
        table.add_row("delivered", _when(entry.delivered_at))
    table.add_row("last status", "-" if entry.last_status is None else str(entry.last_status))
    table.add_row(
        "last error" if entry.state != "delivered" else "message", entry.last_error or "-"
    )
    table.add_row("payload", f"{entry.body_size} bytes")
    console.print(table)
    if body:
        try:
            console.print_json(payload.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            console.print(repr(payload[:2000]))
    if entry.state == "failed":
        console.print(
            "\nFix the cause, then resend with: [bold]roost outbox flush --retry-failed[/]"
        )


@outbox_app.command(
    "flush",
    help=(
        "Send pending entries now, ignoring backoff, and wait for the outcome.\n\n"
        "The API key comes from ROOST_API_KEY (or BLUEJAY_API_KEY). Only entries for the "
        "chosen base URL, submitted under the same key or under none, are sent. Exits with "
        "status 1 when anything is still pending or failed."
    ),
)
def flush(
    path: PathOption = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", "-t", min=0, help="Give up waiting after this many seconds."),
    ] = 30.0,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed", help="Also resend failed entries (after fixing the key, id, ...)."
        ),
    ] = False,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="Platform root. Default: $ROOST_BASE_URL, else https://api.getbluejay.ai.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Send pending entries now and report what happened."""
    from roost.delivery import (
        Delivery,
        DeliveryConfig,
        DeliveryConfigError,
        EntryState,
        OutboxError,
    )

    try:
        config = DeliveryConfig.from_env(outbox_path=path, base_url=base_url)
    except DeliveryConfigError as exc:
        fail(str(exc))
    if config.api_key is None:
        fail("no API key: set ROOST_API_KEY (or BLUEJAY_API_KEY) and run this again")
    try:
        delivery = Delivery(config, register_atexit=False, start=False)
    except OutboxError as exc:
        fail(str(exc))
    try:
        outbox = delivery.outbox
        requeued = 0
        if retry_failed:
            requeued = outbox.requeue_failed(now=time.time(), base_url=config.base_url)
        to_send = delivery.pending()
        started = time.time()
        left = 0
        if to_send == 0:
            console.print(f"Nothing pending for {config.base_url} in {outbox.path}.")
        else:
            extra = f" ({requeued} requeued from failed)" if requeued else ""
            plural = "y" if to_send == 1 else "ies"
            console.print(f"Sending {to_send} entr{plural}{extra} to {config.endpoint} …")
            left = delivery.flush(timeout, force=True)
        stats = delivery.stats
        others = outbox.counts()["pending"] - delivery.pending()
        failed_now = [
            entry
            for entry in outbox.entries(state=EntryState.FAILED)
            if entry.base_url == config.base_url and (entry.last_attempt_at or 0) >= started
        ]
    finally:
        delivery.close(timeout=0)
    if to_send:
        console.print(
            f"[green]{stats.delivered} delivered[/], {left} still pending, "
            f"[red]{stats.failed} failed[/] ({stats.attempts} attempt(s))."
        )
    for entry in failed_now:
        err_console.print(
            f"[red]failed[/] {entry.id[:12]} result {entry.simulation_result_id}: "
            f"{entry.last_error}"
        )
    if left:
        err_console.print(
            f"{left} entr{'y' if left == 1 else 'ies'} still pending (platform unreachable or "
            "throttling); run this again later, or leave it to the agent's sender."
        )
    if others > 0:
        console.print(
            f"{others} pending entr{'y' if others == 1 else 'ies'} belong to another base URL or "
            "API key and were not sent (see roost outbox list)."
        )
    if left or stats.failed:
        raise typer.Exit(1)


@outbox_app.command(
    "purge",
    help=(
        "Delete delivered entries (the default), or failed/all entries with --failed/--all."
        "\n\nDelivered entries are safe to remove: the platform has them. Failed and pending "
        "entries exist nowhere else, so deleting them needs --yes (or an interactive "
        "confirmation)."
    ),
)
def purge(
    path: PathOption = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Also delete failed entries (needs --yes).")
    ] = False,
    everything: Annotated[
        bool,
        typer.Option("--all", help="Delete every entry, even undelivered ones (needs --yes)."),
    ] = False,
    older_than: Annotated[
        float | None,
        typer.Option(
            "--older-than",
            min=0,
            help="Only entries older than this many days (delivered: by delivery time).",
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Confirm deleting failed or pending entries.")
    ] = False,
) -> None:
    """Delete entries by state, asking before anything undelivered goes."""
    from roost.delivery import EntryState

    states = {EntryState.DELIVERED}
    if failed:
        states.add(EntryState.FAILED)
    if everything:
        states |= {EntryState.FAILED, EntryState.PENDING}
    outbox = _open(path)
    if outbox is None:
        console.print(f"No outbox at {_resolve_path(path)}; nothing to purge.")
        return
    before = None if older_than is None else time.time() - older_than * 86_400
    with outbox:
        counts = outbox.counts()
        risky = {s for s in states if s is not EntryState.DELIVERED and counts[s.value]}
        if risky and not yes:
            what = " and ".join(f"{counts[s.value]} {s.value}" for s in sorted(risky))
            prompt = (
                f"Delete {what} entr{'ies' if sum(counts[s.value] for s in risky) != 1 else 'y'}"
            )
            prompt += " that the platform has NOT accepted? This cannot be undone"
            if not _interactive():
                fail(f"refusing to delete {what} undelivered entries without --yes")
            if not typer.confirm(prompt, default=False):
                fail("nothing deleted", code=1)
        deleted = outbox.purge(states=states, before=before)
        remaining = outbox.counts()
    names = ", ".join(sorted(s.value for s in states))
    console.print(
        f"Deleted {deleted} entr{'y' if deleted == 1 else 'ies'} ({names}). Left: "
        f"{remaining['pending']} pending, {remaining['delivered']} delivered, "
        f"{remaining['failed']} failed."
    )


def register(app: typer.Typer) -> None:
    """Add the ``outbox`` command group to the root app."""
    app.add_typer(outbox_app, name="outbox")
