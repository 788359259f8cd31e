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
    >>> rows = [(1,) * 8] * 3  # three event rows: one statement of 2 rows, one of 1
    >>> [(text.count("?"), len(params)) for text, params in sql.sqlite_statements(
    ...     Many(sql.insert_event, rows))]
    [(16, 16), (8, 8)]
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy.engine import Dialect

from roost.platform.storage import UTCDateTime, dumps_json
from roost.platform.wire import json_text

__all__ = [
    "BATCH_COLUMNS",
    "EVENT_COLUMNS",
    "TOOL_COLUMNS",
    "TRANSCRIPT_COLUMNS",
    "Copy",
    "Fetch",
    "IngestSql",
    "Many",
    "PreparedUpdate",
    "RowsInsert",
    "Steps",
    "commit_sqlite",
    "prepare_update",
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


#: Where ``call_id`` sits in a row of :attr:`PreparedUpdate.tool_rows`.
TOOL_CALL_ID = TOOL_COLUMNS.index("call_id") - 3


class PreparedUpdate(msgspec.Struct, array_like=True, frozen=True):
    """A validated update as the values its rows will hold.

    Built where the request is decoded (the server's event loop), so the
    writer only adds keys: tool rows are ``TOOL_COLUMNS`` without ``batch_id,
    seq, result_id``; event and transcript rows are their columns without
    ``batch_id, seq``. It is also what crosses to the writer process
    (msgpack, see :mod:`roost.platform.ingest_process`).
    """

    tool_rows: list[tuple[Any, ...]]
    event_rows: list[tuple[Any, ...]]
    transcript_rows: list[tuple[Any, ...]]
    tags: str | None
    metadata: str | None
    trace_ids: str | None


def prepare_update(update: Any) -> PreparedUpdate:
    """The rows of a decoded ``UpdateSimulationRequest`` (see :mod:`roost.platform.wire`)."""
    return PreparedUpdate(
        tool_rows=[
            (
                call.name,
                call.start_offset_ms,
                call.description,
                json_text(call.parameters),
                json_text(call.output),
                call.call_id,
                call.end_offset_ms,
                call.duration_ms,
                call.status,
                call.error_type,
                call.error_message,
            )
            for call in update.tool_calls or ()
        ],
        event_rows=[
            (
                event.title,
                event.start_offset_ms,
                event.end_offset_ms,
                event.description,
                None if event.tags is None else dumps_json(event.tags),
                json_text(event.metadata),
            )
            for event in update.events or ()
        ],
        transcript_rows=[
            (
                entry.start_offset_ms,
                entry.end_offset_ms,
                entry.speaker,
                entry.utterance,
                entry.filler_utterance,
            )
            for entry in update.recorded_transcript or ()
        ],
        tags=None if update.tags is None else dumps_json(update.tags),
        metadata=json_text(update.metadata),
        trace_ids=None if update.trace_ids is None else dumps_json(update.trace_ids),
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


#: Most rows in one SQLite multi-row INSERT (also kept under the library's
#: bound-variable limit).
MAX_ROWS_PER_INSERT = 128


@dataclass(frozen=True, slots=True)
class RowsInsert:
    """A SQLite multi-row ``INSERT ... VALUES (...), (...)``, sized per call."""

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
        return RowsInsert(f"INSERT INTO {table} ({names}) VALUES {{}}{suffix}", len(columns))

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
        # A few statements per table, each one step in SQLite with every value
        # bound in C: executemany steps once per row, and a JSON array of
        # rows makes SQLite parse each row's text again for every column.
        # Chunks are powers of two (43 rows: 32 + 8 + 2 + 1), so that few
        # statement texts exist and the driver's statement cache keeps them
        # compiled. Padding one statement to a fixed size with NULL rows that
        # a WHERE filters out (INSERT ... SELECT * FROM (VALUES ...)) was
        # measured slower: 320 against 200 us of SQLite time per 70-row request.
        width = statement.width
        cap = min(1 << ((self.max_variables // width).bit_length() - 1), MAX_ROWS_PER_INSERT)
        out: list[tuple[str, Sequence[Any]]] = []
        start, total = 0, len(rows)
        while start < total:
            size = min(cap, 1 << ((total - start).bit_length() - 1))
            chunk = rows[start : start + size]
            start += size
            out.append(
                (self._values_sql(statement, size), [value for row in chunk for value in row])
            )
        return out

    def run_sqlite(self, conn: sqlite3.Connection, steps: Steps[T], *, commit: bool = True) -> T:
        """Drive ``steps`` in one write transaction on a SQLite connection.

        Blocking. The connection must be in autocommit mode (``isolation_level
        = None``), as Roost's engines set it. With ``commit=False`` the
        transaction is left open for the caller to finish with
        :func:`commit_sqlite`; it is rolled back if a step fails either way.
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
                        conn.execute(text, params)
                    answer = None
                else:
                    raise TypeError("COPY is PostgreSQL only")
            if commit:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcome

    async def run_pg_transaction(self, pg: Any, steps: Steps[T]) -> T:
        """Drive ``steps`` in one transaction on ``pg``, an asyncpg connection.

        The transaction plans every statement for its own parameters
        (``plan_cache_mode = force_custom_plan``): the tables grow from empty
        under load, and a generic plan that a connection settled on while
        ``tool_calls`` was tiny (a sequential scan in the call-id lookup) was
        kept by that connection, and cost one writer lane about 1.2 ms of
        database CPU per request in a benchmark run. Planning each statement
        of a group costs far less. BEGIN and the setting go in one round trip.
        """
        if pg.is_in_transaction():
            # Left open by a failed ROLLBACK below; SQLAlchemy's pool cannot
            # see transactions it did not start, so it would not end this one.
            await pg.execute("ROLLBACK")
        await pg.execute("BEGIN; SET LOCAL plan_cache_mode = force_custom_plan")
        try:
            result = await self.run_async(pg, steps)
            await pg.execute("COMMIT")
        except BaseException:
            # A broken connection cannot roll back; the database does.
            with contextlib.suppress(Exception):
                await pg.execute("ROLLBACK")
            raise
        return result

    async def run_async(self, pg: Any, steps: Steps[T]) -> T:
        """Drive ``steps`` inside the open transaction of ``pg``, an asyncpg connection.

        Straight to asyncpg rather than through SQLAlchemy's adapter: the
        statements are already in asyncpg's parameter style with driver-level
        values, and the adapter's per-call work was a measurable share of the
        writer's CPU per group.
        """
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as done:
                result: T = done.value
                return result
            answer = None
            if isinstance(step, Fetch):
                answer = await pg.fetch(step.sql, *step.params)
            elif isinstance(step, Many):
                if step.rows:
                    assert isinstance(step.statement, str)
                    await pg.executemany(step.statement, step.rows)
            elif step.rows:
                # COPY is PostgreSQL's bulk path (about twice as fast as
                # executemany here).
                await pg.copy_records_to_table(step.table, records=step.rows, columns=step.columns)


def commit_sqlite(conn: sqlite3.Connection) -> None:
    """``COMMIT`` the open transaction of ``conn``, or roll it back if that fails."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
