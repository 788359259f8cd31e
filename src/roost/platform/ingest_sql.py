"""The SQL of the ingest hot path and the two ways its steps are run.

:mod:`roost.platform.ingest` decides what a group of requests stores as a
generator of *steps* (:class:`Fetch`, :class:`Many`, :class:`Copy`): it yields
a step, gets the step's rows back, and returns its decisions at the end. No
I/O happens in it. This module turns steps into statements and runs them:

- on SQLite, :meth:`IngestSql.run_sqlite` drives the whole generator, BEGIN
  IMMEDIATE to COMMIT, in one call on the driver's own thread. Each statement
  sent from the event loop would be one trip to that thread and one wait for
  a loop busy parsing the next requests; under load those waits, not SQLite,
  set the pace (about ten trips per group before, one now);
- on PostgreSQL, :meth:`IngestSql.run_async` sends each step with asyncpg
  (``executemany``, and ``COPY`` for the bulk rows) inside one transaction.

Statements are written here, not with SQLAlchemy Core, because the hot path
sends a few fixed multi-row statements per group straight to the driver:
skipping per-row ORM and compiler work is what keeps 70 rows per request cheap.

Example:
    >>> from sqlalchemy.dialects import sqlite
    >>> sql = IngestSql(sqlite.dialect())
    >>> rows = [(1,) * 8] * 3  # three event rows, padded to the smallest size
    >>> [(text.count("?"), len(params)) for text, params in sql.sqlite_statements(
    ...     Many(sql.insert_event, rows))]
    [(64, 64)]
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from roost.platform.storage import UTCDateTime, dumps_json

__all__ = [
    "BATCH_COLUMNS",
    "EVENT_COLUMNS",
    "TOOL_COLUMNS",
    "TRANSCRIPT_COLUMNS",
    "Copy",
    "Fetch",
    "IngestSql",
    "Many",
    "RowsInsert",
    "Steps",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetch:
    """Run one statement; the step's answer is its rows."""

    sql: str
    params: Sequence[Any]


@dataclass(frozen=True, slots=True)
class Many:
    """Run a multi-row statement of :class:`IngestSql` over ``rows``; no answer."""

    statement: str | RowsInsert
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Copy:
    """Bulk-load ``rows`` into ``table`` (PostgreSQL ``COPY``); no answer."""

    table: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


Step = Fetch | Many | Copy
Steps = Generator[Step, Any, T]
"""What :mod:`roost.platform.ingest` yields: steps in, rows back, a result at the end."""


TOOL_COLUMNS = (
    "batch_id",
    "seq",
    "result_id",
    "name",
    "start_offset_ms",
    "description",
    "parameters",
    "output",
    "call_id",
    "end_offset_ms",
    "duration_ms",
    "status",
    "error_type",
    "error_message",
)
EVENT_COLUMNS = (
    "batch_id",
    "seq",
    "title",
    "start_offset_ms",
    "end_offset_ms",
    "description",
    "tags",
    "metadata",
)
TRANSCRIPT_COLUMNS = (
    "batch_id",
    "seq",
    "start_offset_ms",
    "end_offset_ms",
    "speaker",
    "utterance",
    "filler_utterance",
)


BATCH_COLUMNS = (
    "id",
    "org_id",
    "result_id",
    "received_at",
    "idempotency_key",
    "body_sha256",
    "api_key_id",
    "source",
    "tags",
    "metadata",
    "trace_ids",
    "tool_call_count",
    "duplicate_tool_calls",
    "event_count",
    "transcript_count",
    "late",
)


#: Rows in one SQLite multi-row INSERT (padded up to a power of two, at least
#: the minimum), also kept under the library's bound-variable limit.
MAX_ROWS_PER_INSERT = 1024
MIN_ROWS_PER_INSERT = 8


@dataclass(frozen=True, slots=True)
class RowsInsert:
    """A SQLite ``INSERT ... SELECT * FROM (VALUES ...)`` sized per call."""

    template: str
    width: int


class IngestSql:
    """The hot path's statements in the dialect's parameter style, and how to run steps."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.is_pg = dialect.name == "postgresql"
        self.max_variables = 0
        self._values_cache: dict[tuple[str, int], str] = {}
        if not self.is_pg:
            # 999 in SQLite before 3.32, 32766 by default since; read it
            # from the library the driver uses.
            with contextlib.closing(sqlite3.connect(":memory:")) as probe:
                self.max_variables = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        ts = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        assert ts is not None
        self.ts: Callable[[datetime | None], Any] = ts

        # On SQLite the highest batch id comes along: BEGIN IMMEDIATE holds
        # the write lock, so ids from it on are ours for this transaction.
        self.select_results = (
            "SELECT id, org_id, evaluated_at, batch_count, status"
            + ("" if self.is_pg else ", (SELECT COALESCE(MAX(id), 0) FROM enrichment_batches)")
            + " FROM simulation_results WHERE id IN ({})"
        )
        self.select_keys = (
            "SELECT org_id, key, request_sha256, status_code, response_body "
            "FROM idempotency_records WHERE key IN ({})"
        )
        # Only the (result, call id) pairs this group carries, looked up
        # through the unique index: a result's earlier calls are not read.
        if self.is_pg:
            self.select_call_ids = (
                "SELECT t.result_id, t.call_id FROM tool_calls AS t "
                "JOIN unnest($1::bigint[], $2::varchar[]) AS p (result_id, call_id) "
                "ON t.result_id = p.result_id AND t.call_id = p.call_id"
            )
        else:
            self.select_call_ids = (
                "SELECT t.result_id, t.call_id FROM json_each(?) AS p "
                "JOIN tool_calls AS t "
                "ON t.result_id = p.value ->> 0 AND t.call_id = p.value ->> 1"
            )
        self.claim_keys = (
            "INSERT INTO idempotency_records "
            "(org_id, key, operation, request_sha256, status_code, response_body, created_at) "
            "VALUES {} ON CONFLICT (org_id, key) DO NOTHING RETURNING org_id, key"
        )
        self.insert_batch = self._insert_sql("enrichment_batches", BATCH_COLUMNS)
        self.insert_tool = self._insert_sql(
            "tool_calls", TOOL_COLUMNS, " ON CONFLICT (result_id, call_id) DO NOTHING"
        )
        self.insert_event = self._insert_sql("events", EVENT_COLUMNS)
        self.insert_transcript = self._insert_sql("transcript_entries", TRANSCRIPT_COLUMNS)
        # Per result: (id, batches, tool calls, first arrival, last arrival).
        changes = (
            "batch_count = batch_count + {batches}, "
            "tool_call_count = tool_call_count + {calls}, enrichment_state = 'received', "
            "first_enrichment_at = COALESCE(first_enrichment_at, {first}), "
            "last_enrichment_at = {last}, "
            "evaluation_stale = "
            "CASE WHEN evaluated_at IS NULL THEN evaluation_stale ELSE TRUE END, "
            # Only results whose call has ended have lifecycle work to do
            # (evaluate, or re-evaluate a stale evaluation); before hang-up
            # the call end itself raises the flag.
            "needs_attention = CASE WHEN status IN ('CONVERSATION_ENDED', 'EVALUATING', "
            "'COMPLETED') THEN TRUE ELSE needs_attention END, "
            "wake_at = CASE WHEN status IN ('CONVERSATION_ENDED', 'EVALUATING', 'COMPLETED') "
            "THEN NULL ELSE wake_at END"
        )
        if self.is_pg:
            self.update_result = (
                "UPDATE simulation_results SET "
                + changes.format(batches="$2", calls="$3", first="$4", last="$5")
                + " WHERE id = $1"
            )
        else:
            self.update_result = (
                "UPDATE simulation_results SET "
                + changes.format(
                    batches="u.value ->> 1",
                    calls="u.value ->> 2",
                    first="u.value ->> 3",
                    last="u.value ->> 4",
                )
                + " FROM json_each(?) AS u WHERE simulation_results.id = u.value ->> 0"
            )

    def _insert_sql(
        self, table: str, columns: tuple[str, ...], suffix: str = ""
    ) -> str | RowsInsert:
        names = ", ".join(columns)
        if self.is_pg:
            return (
                f"INSERT INTO {table} ({names}) VALUES ({self.placeholders(len(columns))}){suffix}"
            )
        # The first column (a batch id) is never NULL in a real row, so the
        # NULL rows that pad the VALUES list to its size are filtered out.
        # WHERE also keeps ON CONFLICT from being parsed as a join clause.
        return RowsInsert(
            f"INSERT INTO {table} ({names}) SELECT * FROM (VALUES {{}}) "
            f"WHERE column1 IS NOT NULL{suffix}",
            len(columns),
        )

    def _values_sql(self, insert: RowsInsert, rows: int) -> str:
        key = (insert.template, rows)
        text = self._values_cache.get(key)
        if text is None:
            row = "(" + ", ".join("?" * insert.width) + ")"
            text = self._values_cache[key] = insert.template.format(", ".join([row] * rows))
        return text

    def placeholders(self, count: int, start: int = 1) -> str:
        if self.is_pg:
            return ", ".join(f"${i}" for i in range(start, start + count))
        return ", ".join("?" * count)

    def rows_placeholders(self, rows: int, width: int) -> str:
        groups = []
        for r in range(rows):
            groups.append(f"({self.placeholders(width, 1 + r * width)})")
        return ", ".join(groups)

    # --- running steps ------------------------------------------------------

    def sqlite_statements(self, step: Many) -> list[tuple[str, Sequence[Any]]]:
        """The SQLite statements (text, parameters) that carry out ``step``."""
        statement, rows = step.statement, step.rows
        if not rows:
            return []
        if isinstance(statement, str):
            # A JSON array of rows unpacked by json_each (the per-result update).
            return [(statement, (dumps_json(rows),))]
        # One statement per chunk, so one step in SQLite, with every value
        # bound in C: executemany steps once per row, and a JSON array of rows
        # makes SQLite parse each row's text again for every column it picks.
        width = statement.width
        cap = min(1 << ((self.max_variables // width).bit_length() - 1), MAX_ROWS_PER_INSERT)
        out: list[tuple[str, Sequence[Any]]] = []
        for start in range(0, len(rows), cap):
            chunk = rows[start : start + cap]
            # Sizes are powers of two so that few statement texts exist and
            # the driver's statement cache keeps them compiled.
            size = max(MIN_ROWS_PER_INSERT, 1 << (len(chunk) - 1).bit_length())
            params = [value for row in chunk for value in row]
            params += [None] * ((size - len(chunk)) * width)
            out.append((self._values_sql(statement, size), params))
        return out

    def run_sqlite(self, conn: sqlite3.Connection, steps: Steps[T]) -> T:
        """Drive ``steps`` in one write transaction on a SQLite connection.

        Blocking: called on the driver's thread. The connection must be in
        autocommit mode (``isolation_level = None``), as Roost's engines set it.
        """
        conn.execute("BEGIN IMMEDIATE")
        try:
            answer: Any = None
            while True:
                try:
                    step = steps.send(answer)
                except StopIteration as done:
                    outcome: T = done.value
                    break
                if isinstance(step, Fetch):
                    answer = conn.execute(step.sql, tuple(step.params)).fetchall()
                elif isinstance(step, Many):
                    for text, params in self.sqlite_statements(step):
                        conn.execute(text, tuple(params))
                    answer = None
                else:
                    raise TypeError("COPY is PostgreSQL only")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcome

    async def run_async(self, conn: AsyncConnection, steps: Steps[T]) -> T:
        """Drive ``steps`` inside the open transaction of ``conn`` (PostgreSQL)."""
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as done:
                result: T = done.value
                return result
            answer = None
            if isinstance(step, Fetch):
                answer = list((await conn.exec_driver_sql(step.sql, tuple(step.params))).all())
            elif isinstance(step, Many):
                if step.rows:
                    assert isinstance(step.statement, str)
                    await conn.exec_driver_sql(step.statement, step.rows)
            elif step.rows:
                # COPY is PostgreSQL's bulk path (about twice as fast as
                # executemany here).
                pg = (await conn.get_raw_connection()).driver_connection
                assert pg is not None
                await pg.copy_records_to_table(step.table, records=step.rows, columns=step.columns)
