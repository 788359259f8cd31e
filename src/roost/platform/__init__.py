"""Roost's platform: the Bluejay-compatible API behind ``roost serve``.

Needs the ``platform`` extra (FastAPI, uvicorn, SQLAlchemy, Alembic, aiosqlite,
asyncpg). Main entry points:

- :func:`create_app` builds the ASGI app; :class:`PlatformSettings` configures it;
- :mod:`roost.platform.storage` holds the tables, :class:`Database` and the
  Alembic migrations;
- :mod:`roost.platform.progress` records call progress
  (:func:`mark_call_started`, :func:`mark_call_ended`) for callers, and
  :class:`Dispatcher` is how queued results reach them;
- :mod:`roost.platform.evaluation` and :mod:`roost.platform.webhooks` judge
  tool calls and notify the world.

Example:
    >>> from roost.platform import PlatformSettings, create_app
    >>> app = create_app(PlatformSettings(database_url="sqlite:////tmp/roost-doc.sqlite3"))
    >>> app.title
    'Roost'
"""

from __future__ import annotations

from roost.platform.app import create_app
from roost.platform.auth import Caller, current_org
from roost.platform.dispatch import Dispatcher, QueueOnlyDispatcher
from roost.platform.lifecycle import EnrichmentState, LifecyclePolicy, ResultStatus
from roost.platform.progress import (
    InvalidTransition,
    mark_call_ended,
    mark_call_started,
    mark_dispatched,
    reevaluate,
)
from roost.platform.settings import Limits, PlatformSettings, SettingsError
from roost.platform.storage import Database

__all__ = [
    "Caller",
    "Database",
    "Dispatcher",
    "EnrichmentState",
    "InvalidTransition",
    "LifecyclePolicy",
    "Limits",
    "PlatformSettings",
    "QueueOnlyDispatcher",
    "ResultStatus",
    "SettingsError",
    "create_app",
    "current_org",
    "mark_call_ended",
    "mark_call_started",
    "mark_dispatched",
    "reevaluate",
]
