"""Helpers shared by the CLI command modules."""

from __future__ import annotations

import importlib
from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print ``message`` in red on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def require_extra(module: str, extra: str) -> None:
    """Exit with a clear message when an optional dependency is missing."""
    try:
        importlib.import_module(module)
    except ImportError:
        fail(f"this command needs the '{extra}' extra: pip install 'roost[{extra}]'")
