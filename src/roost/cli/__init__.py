"""The ``roost`` command line.

Each command group lives in its own module and imports its heavy dependencies
inside the command functions, so ``roost --help`` starts fast and a command whose
extra is not installed says which extra to install instead of failing on import.
"""

from __future__ import annotations

import typer

from roost import __version__

app = typer.Typer(
    name="roost",
    help=(
        "Roost: test voice agents by calling them, the open and self-hostable way.\n\n"
        "Agent SDK tools (outbox), the Bluejay-compatible platform (serve, keys, db, "
        "webhooks) and call probes (call)."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"roost {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Roost command line."""


def _register() -> None:
    # Each command module exposes register(app); add one import and one call
    # per module, in the order the groups should appear in --help.
    from roost.cli import call, db, example, keys, outbox, serve, webhooks

    example.register(app)
    outbox.register(app)
    serve.register(app)
    keys.register(app)
    db.register(app)
    webhooks.register(app)
    call.register(app)


_register()


def main() -> None:
    """Entry point of the ``roost`` console script."""
    app()
