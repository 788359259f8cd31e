"""The declarative base every platform table derives from.

All tables of the platform (core tables in :mod:`roost.platform.storage.tables`,
webhook tables in ``roost.platform.webhooks.tables``) share this one
:class:`Base`, so one ``MetaData`` describes the whole schema and Alembic's
autogenerate compares a single model against the database.

The naming convention gives every index and constraint a deterministic name.
Without it SQLite and PostgreSQL invent different names, and a later migration
could not drop or alter a constraint by name on both.

JSON values are stored as text through :class:`JSONText` rather than as
``JSONB``: nothing queries inside them, text round-trips every JSON value the
API accepts (PostgreSQL's ``jsonb`` refuses ``\\u0000`` in strings, which a tool
output may legitimately contain), and it costs no server-side parsing on the
ingest hot path.

Example:
    >>> from sqlalchemy import Column, MetaData, Table
    >>> from roost.platform.storage.base import JSONText
    >>> notes = Table("doc_notes", MetaData(), Column("body", JSONText()))
    >>> notes.c.body.type.python_type is object
    True
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import BigInteger, DateTime, Integer, MetaData, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

__all__ = ["NAMING_CONVENTION", "Base", "BigId", "JSONText", "UTCDateTime", "dumps_json", "utcnow"]

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY is the rowid
# alias that autoincrements, so the variant keeps it INTEGER there.
BigId = BigInteger().with_variant(Integer(), "sqlite")

_encoder = msgspec.json.Encoder()


def dumps_json(value: Any) -> str:
    """Encode a JSON value to compact text.

    msgspec is several times faster than the stdlib on the ingest path; it
    cannot encode integers beyond 64 bits, which JSON allows, so those fall back
    to the stdlib encoder (which handles arbitrary precision).
    """
    try:
        return _encoder.encode(value).decode()
    except (OverflowError, TypeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def utcnow() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class JSONText(TypeDecorator[Any]):
    """Any JSON value stored as compact text; SQL ``NULL`` for ``None``."""

    impl = Text
    cache_ok = True

    @property
    def python_type(self) -> type[Any]:
        return object

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return dumps_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        return json.loads(value)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    SQLite has no timezone type and hands back naive datetimes; this decorator
    normalises on the way in (to UTC) and on the way out (tags UTC), so the API
    always emits ``...+00:00`` whatever the backend.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of every platform table (one shared ``MetaData``)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
