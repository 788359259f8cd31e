"""The SQL of the ingest hot path and the two ways a group's steps are run.

:mod:`roost.platform.ingest` decides what a group of requests stores as a
generator of two *steps*, with no I/O in it: it yields a :class:`Lookup` (what
its decisions depend on) and gets a :class:`Found` back, decides, then yields
one :class:`Store` (every row the group writes) as its last step. This module
turns the steps into statements and runs them:

- on SQLite, :meth:`IngestSql.run_sqlite` drives the generator inside one
  ``BEGIN IMMEDIATE`` transaction, in one call on the writer's thread: a few
  statements per step, multi-row ``INSERT ... VALUES`` for the rows;
- on PostgreSQL, :meth:`IngestSql.run_pg` sends the lookup as one ``UNION
  ALL`` query, outside any transaction, and the store as one transaction:
  ``BEGIN``, a ``COPY`` of the tool calls, one statement of data-modifying
  CTEs for keys, batches and result counters, ``COMMIT``. About six round trips
  per group, against fourteen for the earlier step-per-read form; with the
  writer and the database on one machine each round trip costs both
  processes a wake-up (see BENCHMARKS.md). Doing the whole store as one
  statement over ``unnest`` arrays made two round trips but cost both
  processes more CPU than ``COPY`` saves.

The store is sent only after the generator has returned: a decision that
fails after building its rows leaves nothing written, on both backends.

Statements are written here, not with SQLAlchemy Core, because the hot path
sends a few fixed multi-row statements per group straight to the driver:
skipping per-row ORM and compiler work is what keeps a request's rows cheap.

Example:
    >>> from sqlalchemy.dialects import sqlite
    >>> sql = IngestSql(sqlite.dialect())
    >>> rows = [(1,) * 14] * 3  # three tool-call rows: one statement of 2 rows, one of 1
    >>> [(text.count("?"), len(params)) for text, params in sql.sqlite_rows(
    ...     sql.insert_tool, rows)]
    [(28, 28), (14, 14)]
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import msgspec
from sqlalchemy.engine import Dialect

from roost.platform.storage import Base, UTCDateTime, dumps_json
from roost.platform.wire import json_text

__all__ = [
    "BATCH_COLUMNS",
    "CLAIM_COLUMNS",
    "TOOL_COLUMNS",
    "ClaimLost",
    "Found",
    "IngestSql",
    "Lookup",
    "PreparedUpdate",
    "RowsInsert",
    "Steps",
    "Store",
    "commit_sqlite",
    "prepare_update",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Lookup:
    """Read what a group's decisions depend on; the answer is a :class:`Found`.

    Attributes:
        result_ids: The results the group's requests name.
        keys: The ``(org_id, Idempotency-Key)`` pairs it carries; both are
            given so that the lookup uses the ``(org_id, key)`` unique index
            (by key alone it scanned every stored key).
        call_pairs: Its ``(result id, call id)`` pairs, looked up through the
            unique index: a result's other calls are not read. Empty when the
            writer lets the index refuse a repeated call id instead
            (PostgreSQL, see ``IngestWriter._write_group``).
        new_ids: How many enrichment batch ids to reserve.
    """

    result_ids: tuple[int, ...]
    keys: tuple[tuple[int, str], ...]
    call_pairs: tuple[tuple[int, str], ...]
    new_ids: int


@dataclass(slots=True)
class Found:
    """The answer to a :class:`Lookup`.

    Attributes:
        results: Per result id: ``(org_id, evaluated_at, batch_count, status)``.
        keys: Per ``(org_id, key)``: ``(request_sha256, status_code, response_body)``.
        call_ids: Per result id, the looked-up call ids already stored.
        batch_ids: ``new_ids`` unused enrichment batch ids.
    """

    results: dict[int, tuple[int, Any, int, str]] = field(default_factory=dict)
    keys: dict[tuple[int, str], tuple[str, int, str]] = field(default_factory=dict)
    call_ids: dict[int, set[str]] = field(default_factory=dict)
    batch_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Store:
    """Every row a group writes, as driver-level values; a group's last step.

    Attributes:
        claims: Idempotency records (:data:`CLAIM_COLUMNS`).
        batches: Enrichment batches (:data:`BATCH_COLUMNS`).
        tool_rows: Tool calls (:data:`TOOL_COLUMNS`).
        updates: Per result: ``(id, batches, tool calls, first arrival, last arrival)``.
    """

    claims: list[tuple[Any, ...]]
    batches: list[tuple[Any, ...]]
    tool_rows: list[tuple[Any, ...]]
    updates: list[tuple[Any, ...]]


Step = Lookup | Store
Steps = Generator[Step, Any, T]
"""What :mod:`roost.platform.ingest` yields: steps in, answers back, a result at the end."""


class ClaimLost(Exception):
    """PostgreSQL: the store met what the group's lookup did not see.

    Another writer stored one of the group's idempotency keys or call ids
    after the lookup (several server processes or lanes), a request repeats a
    call id the lookup was not asked about, or one of the group's results was
    deleted in between.

    Nothing of the group was written; deciding it again against a new lookup
    gives each request its right answer (a replay, a duplicate).

    Attributes:
        table: The table whose unique index refused the store, if one did.
    """

    def __init__(self, message: str, *, table: str | None = None) -> None:
        super().__init__(message)
        self.table = table


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
#: Where ``call_id`` sits in a row of :attr:`PreparedUpdate.tool_rows`.
TOOL_CALL_ID = TOOL_COLUMNS.index("call_id") - 3


class PreparedUpdate(msgspec.Struct, array_like=True, frozen=True):
    """A validated update as the values its rows will hold.

    Built where the request is decoded (the server's event loop), so the
    writer only adds keys: tool rows are ``TOOL_COLUMNS`` without ``batch_id,
    seq, result_id``. Events and transcript entries are the batch's two JSON
    documents (see migration 0004), encoded from the validated structs in
    one C call each, with their counts. It is also what crosses to the
    writer process (msgpack, see :mod:`roost.platform.ingest_process`).
    """

    tool_rows: list[tuple[Any, ...]]
    events: str | None
    event_count: int
    transcript: str | None
    transcript_count: int
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
        # Raw JSON values (event metadata) are encoded as the text they
        # arrived as; a missing one is its default, null.
        events=_document(update.events),
        event_count=len(update.events or ()),
        transcript=_document(update.recorded_transcript),
        transcript_count=len(update.recorded_transcript or ()),
        tags=None if update.tags is None else dumps_json(update.tags),
        metadata=json_text(update.metadata),
        trace_ids=None if update.trace_ids is None else dumps_json(update.trace_ids),
    )


def _document(items: list[Any] | None) -> str | None:
    return msgspec.json.encode(items).decode() if items else None


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
    "events",
    "transcript",
    "tool_call_count",
    "duplicate_tool_calls",
    "event_count",
    "transcript_count",
    "late",
)


CLAIM_COLUMNS = (
    "org_id",
    "key",
    "operation",
    "request_sha256",
    "status_code",
    "response_body",
    "created_at",
)

#: Most rows in one SQLite multi-row INSERT (also kept under the library's
#: bound-variable limit).
MAX_ROWS_PER_INSERT = 128

# The unique indexes another writer can fill between a group's lookup and its
# store (see ClaimLost).
_CLAIMED_TABLES = frozenset({"idempotency_records", "tool_calls"})
_UNIQUE_VIOLATION = "23505"


@dataclass(frozen=True, slots=True)
class RowsInsert:
    """A SQLite multi-row ``INSERT ... VALUES (...), (...)``, sized per call."""

    template: str
    width: int


class IngestSql:
    """The hot path's statements for one dialect, and how to run a group's steps."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.is_pg = dialect.name == "postgresql"
        self.max_variables = 0
        self._values_cache: dict[tuple[str, int], str] = {}
        ts = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
        assert ts is not None
        self.ts: Callable[[datetime | None], Any] = ts
        # Per result: the counters and arrival times of its new batches.
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
            self._init_pg(changes)
        else:
            self._init_sqlite(changes)

    # --- PostgreSQL -----------------------------------------------------------

    def _init_pg(self, changes: str) -> None:
        # One row shape for four answers, told apart by the first column:
        # 0 result, 1 idempotency record, 2 stored call id, 3 new batch id.
        # The call-id pairs travel as one JSON text: asyncpg encodes array
        # elements one by one, about 1 us each, and a group carries hundreds.
        self.lookup = (
            "SELECT 0, id, org_id, batch_count, status::text, NULL::text, NULL::text, "
            "evaluated_at FROM simulation_results WHERE id = ANY($1::bigint[]) "
            "UNION ALL SELECT 1, org_id, NULL, status_code, key, request_sha256, "
            "response_body, NULL FROM idempotency_records "
            "WHERE org_id = ANY($2::bigint[]) AND key = ANY($3::varchar[]) "
            "UNION ALL SELECT 2, t.result_id, NULL, NULL, t.call_id, NULL, NULL, NULL "
            "FROM json_array_elements($4::json) AS p JOIN tool_calls AS t "
            "ON t.result_id = (p.value ->> 0)::bigint AND t.call_id = p.value ->> 1 "
            "UNION ALL SELECT 3, nextval($5::regclass), NULL, NULL, NULL, NULL, NULL, NULL "
            "FROM generate_series(1, $6)"
        )
        inserts = []
        first = 1
        for number, (table, columns) in enumerate(
            (("idempotency_records", CLAIM_COLUMNS), ("enrichment_batches", BATCH_COLUMNS))
        ):
            arrays = ", ".join(
                f"${first + index}::{_sql_type(table, column, self.dialect)}[]"
                for index, column in enumerate(columns)
            )
            first += len(columns)
            inserts.append(
                f"w{number} AS (INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT * FROM unnest({arrays}))"
            )
        update_arrays = (
            f"${first}::bigint[], ${first + 1}::integer[], ${first + 2}::integer[], "
            f"${first + 3}::timestamptz[], ${first + 4}::timestamptz[]"
        )
        # A group's few rows per request (key, batch, result counters) in one
        # statement of data-modifying CTEs, which all run whatever the main
        # statement reads; its tool calls go by COPY.
        self.store_heads = (
            f"WITH {', '.join(inserts)} UPDATE simulation_results SET "
            + changes.format(batches="u.batches", calls="u.calls", first="u.first", last="u.last")
            + f" FROM unnest({update_arrays}) AS u (id, batches, calls, first, last) "
            "WHERE simulation_results.id = u.id RETURNING simulation_results.id"
        )

    async def run_pg(self, pg: Any, steps: Steps[T], batch_sequence: str) -> T:
        """Drive ``steps`` on ``pg``, an asyncpg connection.

        The lookup is one statement outside any transaction (it reads
        committed data; ``nextval`` is not transactional anyway). The store
        is one transaction: the tool calls by ``COPY`` (PostgreSQL's bulk
        path; ``unnest`` arrays cost both processes more CPU per row), then
        one statement for keys, batches and result counters, then ``COMMIT``.
        The statements go straight to asyncpg rather than through
        SQLAlchemy's adapter: they are already in asyncpg's parameter style
        with driver-level values, and the adapter's per-call work was a
        measurable share of the writer's CPU.

        Raises:
            ClaimLost: another writer stored one of the group's keys or call
                ids since the lookup, or one of its results was deleted;
                nothing was written.
        """
        if pg.is_in_transaction():
            # Left open by someone else's failed ROLLBACK on this pooled
            # connection; the group must not become part of it.
            await pg.execute("ROLLBACK")
        answer: Any = None
        while True:
            try:
                step = steps.send(answer)
            except StopIteration as done:
                result: T = done.value
                return result
            if isinstance(step, Lookup):
                answer = _found_pg(
                    await pg.fetch(
                        self.lookup,
                        step.result_ids,
                        sorted({org_id for org_id, _ in step.keys}),
                        [key for _, key in step.keys],
                        msgspec.json.encode(step.call_pairs).decode(),
                        batch_sequence,
                        step.new_ids,
                    )
                )
                continue
            result = _finish(steps)
            try:
                await self._store_pg(pg, step)
            except Exception as exc:
                if (
                    getattr(exc, "sqlstate", None) == _UNIQUE_VIOLATION
                    and getattr(exc, "table_name", None) in _CLAIMED_TABLES
                ):
                    raise ClaimLost(str(exc), table=getattr(exc, "table_name", None)) from exc
                raise
            return result

    async def _store_pg(self, pg: Any, step: Store) -> None:
        await pg.execute("BEGIN")
        try:
            # No foreign keys from tool calls to their batch on PostgreSQL
            # (migration 0003), so they may go before it.
            if step.tool_rows:
                await pg.copy_records_to_table(
                    "tool_calls", records=step.tool_rows, columns=TOOL_COLUMNS
                )
            params: list[Any] = []
            for rows, width in (
                (step.claims, len(CLAIM_COLUMNS)),
                (step.batches, len(BATCH_COLUMNS)),
                (step.updates, 5),
            ):
                params += list(zip(*rows, strict=True)) if rows else [()] * width
            updated = await pg.fetch(self.store_heads, *params)
            if len(updated) != len(step.updates):
                # A result was deleted since the lookup. Its batches have no
                # foreign key on PostgreSQL (migration 0005): the UPDATE's row
                # lock and this check are what keep them from being orphaned.
                raise ClaimLost("a result of the group was deleted before its store")
            await pg.execute("COMMIT")
        except BaseException:
            # A broken connection cannot roll back; the database does.
            with contextlib.suppress(Exception):
                await pg.execute("ROLLBACK")
            raise

    # --- SQLite ---------------------------------------------------------------

    def _init_sqlite(self, changes: str) -> None:
        # 999 in SQLite before 3.32, 32766 by default since; read it from the
        # library the driver uses.
        with contextlib.closing(sqlite3.connect(":memory:")) as probe:
            self.max_variables = probe.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        # The highest batch id comes along: BEGIN IMMEDIATE holds the write
        # lock, so ids from it on are this transaction's.
        self.select_results = (
            "SELECT id, org_id, evaluated_at, batch_count, status, "
            "(SELECT COALESCE(MAX(id), 0) FROM enrichment_batches) "
            "FROM simulation_results WHERE id IN ({})"
        )
        self.select_keys = (
            "SELECT org_id, key, request_sha256, status_code, response_body "
            "FROM idempotency_records WHERE org_id IN ({}) AND key IN ({})"
        )
        self.select_call_ids = (
            "SELECT t.result_id, t.call_id FROM json_each(?) AS p "
            "JOIN tool_calls AS t "
            "ON t.result_id = p.value ->> 0 AND t.call_id = p.value ->> 1"
        )
        self.insert_claim = self._rows_insert("idempotency_records", CLAIM_COLUMNS)
        self.insert_batch = self._rows_insert("enrichment_batches", BATCH_COLUMNS)
        self.insert_tool = self._rows_insert(
            "tool_calls", TOOL_COLUMNS, " ON CONFLICT (result_id, call_id) DO NOTHING"
        )
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

    @staticmethod
    def _rows_insert(table: str, columns: tuple[str, ...], suffix: str = "") -> RowsInsert:
        return RowsInsert(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES {{}}{suffix}", len(columns)
        )

    def _values_sql(self, insert: RowsInsert, rows: int) -> str:
        key = (insert.template, rows)
        text = self._values_cache.get(key)
        if text is None:
            row = "(" + ", ".join("?" * insert.width) + ")"
            text = self._values_cache[key] = insert.template.format(", ".join([row] * rows))
        return text

    def sqlite_rows(
        self, insert: RowsInsert, rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[str, Sequence[Any]]]:
        """The SQLite statements (text, parameters) that insert ``rows``."""
        # A few statements per table, each one step in SQLite with every value
        # bound in C: executemany steps once per row, and a JSON array of
        # rows makes SQLite parse each row's text again for every column.
        # Chunks are powers of two (43 rows: 32 + 8 + 2 + 1), so that few
        # statement texts exist and the driver's statement cache keeps them
        # compiled. Padding one statement to a fixed size with NULL rows that
        # a WHERE filters out (INSERT ... SELECT * FROM (VALUES ...)) was
        # measured slower: 320 against 200 us of SQLite time per 70-row request.
        width = insert.width
        cap = min(1 << ((self.max_variables // width).bit_length() - 1), MAX_ROWS_PER_INSERT)
        out: list[tuple[str, Sequence[Any]]] = []
        start, total = 0, len(rows)
        while start < total:
            size = min(cap, 1 << ((total - start).bit_length() - 1))
            chunk = rows[start : start + size]
            start += size
            out.append((self._values_sql(insert, size), [value for row in chunk for value in row]))
        return out

    def run_sqlite(self, conn: sqlite3.Connection, steps: Steps[T], *, commit: bool = True) -> T:
        """Drive ``steps`` in one write transaction on a SQLite connection.

        Blocking. The connection must be in autocommit mode (``isolation_level
        = None``), as Roost's engines set it. With ``commit=False`` the
        transaction is left open for the caller to finish with
        :func:`commit_sqlite`; it is rolled back if a step fails either way.
        Lookup and store share the write lock, so no other writer can claim
        a key or a call id in between (:class:`ClaimLost` is PostgreSQL's).
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
                if isinstance(step, Lookup):
                    answer = self._found_sqlite(conn, step)
                    continue
                outcome = _finish(steps)
                self._store_sqlite(conn, step)
                break
            if commit:
                conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return outcome

    def _found_sqlite(self, conn: sqlite3.Connection, step: Lookup) -> Found:
        found = Found()
        if not step.result_ids:
            return found
        marks = ", ".join("?" * len(step.result_ids))
        rows = conn.execute(self.select_results.format(marks), step.result_ids).fetchall()
        for row in rows:
            found.results[row[0]] = (row[1], row[2], row[3], row[4])
        if rows:
            last = rows[0][5]
            found.batch_ids = list(range(last + 1, last + 1 + step.new_ids))
        if step.keys:
            orgs = sorted({org_id for org_id, _ in step.keys})
            keys = [key for _, key in step.keys]
            text = self.select_keys.format(", ".join("?" * len(orgs)), ", ".join("?" * len(keys)))
            for row in conn.execute(text, [*orgs, *keys]):
                found.keys[(row[0], row[1])] = (row[2], row[3], row[4])
        if step.call_pairs:
            for result_id, call_id in conn.execute(
                self.select_call_ids, (dumps_json(step.call_pairs),)
            ):
                found.call_ids.setdefault(result_id, set()).add(call_id)
        return found

    def _store_sqlite(self, conn: sqlite3.Connection, step: Store) -> None:
        # Batches before the rows that reference them (foreign keys on SQLite).
        for insert, rows in (
            (self.insert_claim, step.claims),
            (self.insert_batch, step.batches),
            (self.insert_tool, step.tool_rows),
        ):
            for text, params in self.sqlite_rows(insert, rows):
                conn.execute(text, params)
        if step.updates:
            conn.execute(self.update_result, (dumps_json(step.updates),))


def _sql_type(table: str, column: str, dialect: Dialect) -> str:
    return str(Base.metadata.tables[table].c[column].type.compile(dialect=dialect))


def _found_pg(rows: Sequence[Any]) -> Found:
    found = Found()
    for row in rows:
        kind = row[0]
        if kind == 0:
            found.results[row[1]] = (row[2], row[7], row[3], row[4])
        elif kind == 1:
            found.keys[(row[1], row[4])] = (row[5], row[3], row[6])
        elif kind == 2:
            found.call_ids.setdefault(row[1], set()).add(row[4])
        else:
            found.batch_ids.append(row[1])
    found.batch_ids.sort()
    return found


def _finish(steps: Steps[T]) -> T:
    """Run the generator past its :class:`Store` to its result."""
    try:
        steps.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    raise RuntimeError("a Store must be the last step of a group")


def commit_sqlite(conn: sqlite3.Connection) -> None:
    """``COMMIT`` the open transaction of ``conn``, or roll it back if that fails."""
    try:
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
