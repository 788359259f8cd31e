"""A batch's events and transcript are kept in the batch, as two JSON documents.

Revision ID: 0004_batch_documents
Revises: 0003_pg_batch_rows
Create Date: 2026-12-07

Events and transcript entries were rows of their own (``events``,
``transcript_entries``): 50 of the 70 rows a realistic
``update-simulation-result`` writes. Nothing ever read one of them alone:
every reader (result retrieval, evaluation, webhooks, the dashboard) loads
all of a result's batches and orders the entries by offset. So each batch now
keeps them as it received them, as ``enrichment_batches.events`` and
``enrichment_batches.transcript`` (JSON arrays of the wire objects, written
once with the batch). Tool calls stay rows: they are deduplicated by
``(result_id, call_id)`` through a unique index.

Measured with ``benchmarks/ingest.py`` (BENCHMARKS.md): per request, the
database's CPU fell by about a third and the writer's by about 40 %.

On PostgreSQL the two columns are compressed with lz4 when the server was
built with it (PostgreSQL 14+): a 40-entry transcript is about 6.7 KB, above
the 2 KB at which PostgreSQL compresses a row, and its default ``pglz`` cost
the database about 55 us per batch where lz4 costs about 17 us.

The upgrade moves existing rows into the documents, in batch id order, a
thousand batches at a time; the downgrade moves them back.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any

import msgspec
import sqlalchemy as sa
from alembic import op

revision: str = "0004_batch_documents"
down_revision: str | None = "0003_pg_batch_rows"
branch_labels: str | None = None
depends_on: str | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

# Column names of the old tables, after (batch_id, seq); JSON-valued columns
# were stored as JSON text.
_EVENT_FIELDS = ("title", "start_offset_ms", "end_offset_ms", "description", "tags", "metadata")
_EVENT_JSON = frozenset({"tags", "metadata"})
_ENTRY_FIELDS = ("start_offset_ms", "end_offset_ms", "speaker", "utterance", "filler_utterance")
_CHUNK = 1000
_NULL = msgspec.Raw(b"null")


# An event of a document, its JSON values kept as the text they are. Built
# with defstruct: this module is loaded by Alembic outside sys.modules, where
# msgspec cannot resolve postponed annotations.
_Event = msgspec.defstruct(
    "_Event",
    [
        ("title", str),
        ("start_offset_ms", int),
        ("end_offset_ms", int | None, None),
        ("description", str | None, None),
        ("tags", msgspec.Raw, _NULL),
        ("metadata", msgspec.Raw, _NULL),
    ],
)
_read_events: msgspec.json.Decoder[list[Any]] = msgspec.json.Decoder(list[_Event])  # type: ignore[valid-type]


def _batch_key(*, foreign: bool) -> sa.Column[int]:
    keys = [sa.ForeignKey("enrichment_batches.id", ondelete="CASCADE")] if foreign else []
    return sa.Column("batch_id", ID, *keys, primary_key=True, autoincrement=False)


def _event_columns(*, foreign: bool) -> list[sa.Column[Any]]:
    return [
        _batch_key(foreign=foreign),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("start_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_offset_ms", sa.BigInteger()),
        sa.Column("description", sa.Text()),
        sa.Column("tags", sa.Text()),
        sa.Column("metadata", sa.Text()),
    ]


def _entry_columns(*, foreign: bool) -> list[sa.Column[Any]]:
    return [
        _batch_key(foreign=foreign),
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("start_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("utterance", sa.Text(), nullable=False),
        sa.Column("filler_utterance", sa.Boolean()),
    ]


def _old_tables() -> tuple[sa.Table, sa.Table]:
    """The two tables of 0001 as this module reads and fills them."""
    meta = sa.MetaData()
    return (
        sa.Table("events", meta, *_event_columns(foreign=False)),
        sa.Table("transcript_entries", meta, *_entry_columns(foreign=False)),
    )


_batches = sa.table(
    "enrichment_batches",
    sa.column("id", ID),
    sa.column("events", sa.Text()),
    sa.column("transcript", sa.Text()),
    sa.column("event_count", sa.Integer()),
    sa.column("transcript_count", sa.Integer()),
)


def _is_pg() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _batch_ids(column: sa.ColumnElement[Any]) -> Iterator[list[int]]:
    """The ids of the batches where ``column`` holds something, _CHUNK at a time."""
    bind = op.get_bind()
    last = -1
    while True:
        ids = list(
            bind.scalars(
                sa.select(_batches.c.id)
                .where(column, _batches.c.id > last)
                .order_by(_batches.c.id)
                .limit(_CHUNK)
            )
        )
        if not ids:
            return
        yield ids
        last = ids[-1]


def _document(rows: Sequence[Any], fields: Sequence[str], json_fields: frozenset[str]) -> str:
    items = []
    for row in rows:
        item = {}
        for name in fields:
            value = getattr(row, name)
            if name in json_fields and value is not None:
                # Already JSON text: kept as it is, not decoded and re-encoded.
                value = msgspec.Raw(value.encode())
            item[name] = value
        items.append(item)
    return msgspec.json.encode(items).decode()


def _into_documents(table: sa.Table, column: str, count: str, fields: Sequence[str]) -> None:
    bind = op.get_bind()
    json_fields = _EVENT_JSON if table.name == "events" else frozenset()
    update = (
        sa.update(_batches)
        .where(_batches.c.id == sa.bindparam("batch_id"))
        .values({column: sa.bindparam("document")})
    )
    for ids in _batch_ids(_batches.c[count] > 0):
        rows = bind.execute(
            sa.select(table)
            .where(table.c.batch_id.in_(ids))
            .order_by(table.c.batch_id, table.c.seq)
        ).all()
        documents = [
            {"batch_id": batch_id, "document": _document(list(group), fields, json_fields)}
            for batch_id, group in groupby(rows, key=lambda row: row.batch_id)
        ]
        if documents:
            bind.execute(update, documents)


def _text(raw: msgspec.Raw) -> str | None:
    return None if raw == _NULL else bytes(raw).decode()


def _out_of_documents(table: sa.Table, column: str, fields: Sequence[str]) -> None:
    bind = op.get_bind()
    json_fields = _EVENT_JSON if table.name == "events" else frozenset()
    for ids in _batch_ids(_batches.c[column].is_not(None)):
        documents = bind.execute(
            sa.select(_batches.c.id, _batches.c[column]).where(_batches.c.id.in_(ids))
        ).all()
        rows: list[dict[str, Any]] = []
        for batch_id, document in documents:
            if table.name == "events":
                items = [
                    {
                        name: _text(value) if name in json_fields else value
                        for name in fields
                        for value in (getattr(event, name),)
                    }
                    for event in _read_events.decode(document)
                ]
            else:
                items = msgspec.json.decode(document)
            for seq, item in enumerate(items):
                rows.append({"batch_id": batch_id, "seq": seq, **{n: item.get(n) for n in fields}})
        if rows:
            bind.execute(table.insert(), rows)


def _delete_batch_rows(*tables: str) -> None:
    """(Re)define 0003's trigger function to delete deleted batches' rows from ``tables``."""
    deletes = "".join(
        f"DELETE FROM {table} WHERE batch_id IN (SELECT id FROM deleted_batches); "
        for table in tables
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION roost_delete_batch_rows() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN {deletes}RETURN NULL; END $$"
    )


def upgrade() -> None:
    pg = _is_pg()
    op.add_column("enrichment_batches", sa.Column("events", sa.Text()))
    op.add_column("enrichment_batches", sa.Column("transcript", sa.Text()))
    if pg:
        lz4 = op.get_bind().scalar(
            sa.text(
                "SELECT 'lz4' = ANY(enumvals) FROM pg_settings "
                "WHERE name = 'default_toast_compression'"
            )
        )
        if lz4:
            for column in ("events", "transcript"):
                op.execute(
                    f"ALTER TABLE enrichment_batches ALTER COLUMN {column} SET COMPRESSION lz4"
                )
    events, entries = _old_tables()
    _into_documents(events, "events", "event_count", _EVENT_FIELDS)
    _into_documents(entries, "transcript", "transcript_count", _ENTRY_FIELDS)
    op.drop_table("transcript_entries")
    op.drop_table("events")
    if pg:
        # The statement-level trigger of 0003 keeps deleting a batch's tool
        # calls; the other two tables are gone.
        _delete_batch_rows("tool_calls")


def downgrade() -> None:
    pg = _is_pg()
    # As 0001 made them; on PostgreSQL without the foreign keys 0003 dropped.
    op.create_table("events", *_event_columns(foreign=not pg), sqlite_with_rowid=False)
    op.create_table("transcript_entries", *_entry_columns(foreign=not pg), sqlite_with_rowid=False)
    events, entries = _old_tables()
    _out_of_documents(events, "events", _EVENT_FIELDS)
    _out_of_documents(entries, "transcript", _ENTRY_FIELDS)
    # Plain ALTER TABLE (SQLite 3.35+ too): a batch-mode copy of the table
    # would cascade-delete every tool call on SQLite when it drops the original.
    op.execute("ALTER TABLE enrichment_batches DROP COLUMN transcript")
    op.execute("ALTER TABLE enrichment_batches DROP COLUMN events")
    if pg:
        _delete_batch_rows("tool_calls", "events", "transcript_entries")
