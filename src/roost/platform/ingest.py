"""Group commit for ``update-simulation-result``: one writer, many waiters.

Every accepted POST must be durably committed before its 200 is sent. Doing a
transaction (and, on SQLite with ``synchronous=FULL``, an fsync) per request
would cap ingest at the disk's sync rate, so requests are handed to a writer
coroutine instead (one on SQLite; on PostgreSQL a few *lanes*, each owning a
share of the results, see :class:`IngestWriter`). It takes everything queued,
writes it in one transaction and, only after ``COMMIT`` returns, resolves each
waiter with its own outcome. While one transaction commits, the next group
accumulates.

The hot path sends a few fixed multi-row statements per group straight to the
driver (aiosqlite, or asyncpg's ``executemany`` and ``COPY``) rather than ORM
objects: skipping per-row ORM bookkeeping is what keeps 70 rows per request
cheap. Timestamps go through :class:`UTCDateTime`'s own bind
processor and JSON values are stored as the text they arrived as (see
:mod:`roost.platform.wire`), so rows written here read back exactly like rows
written through the ORM (:class:`~roost.platform.storage.JSONText`).

Semantics, per request:

- unknown result, or a result of another organisation: 404, nothing stored;
- ``Idempotency-Key`` seen before for this organisation: the first response
  is replayed if the operation and raw body are identical, otherwise 422;
  nothing new is stored either way. The key is claimed with
  ``INSERT ... ON CONFLICT DO NOTHING`` inside the transaction, so two server
  processes sharing a PostgreSQL database cannot both store the same key;
- otherwise one enrichment batch plus its rows. Tool calls carrying a
  ``call_id`` already stored for the result (or repeated in the request) are
  skipped and counted as duplicates;
- a batch reaching a result that was already evaluated is stored, flagged
  ``late``, and marks the result's evaluation stale.

Example:
    >>> plan_message(tool_calls=20, duplicates=2, events=10, transcript=40, late=False)
    'stored 18 tool calls (2 duplicates skipped), 10 events, 40 transcript entries'
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection

from roost.platform.auth import Caller
from roost.platform.settings import Limits
from roost.platform.storage import Database, UTCDateTime, dumps_json, utcnow
from roost.platform.wire import json_text, validation_detail

__all__ = [
    "INGEST_OPERATION",
    "IngestOutcome",
    "IngestWriter",
    "plan_message",
    "request_fingerprint",
]

log = logging.getLogger(__name__)

INGEST_OPERATION = "update-simulation-result"

#: Writer lanes on PostgreSQL (see :class:`IngestWriter`).
PG_LANES = 3


def request_fingerprint(operation: str, body: bytes) -> str:
    """SHA-256 identifying a request for idempotency (operation + raw body)."""
    digest = hashlib.sha256(operation.encode())
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def plan_message(
    *, tool_calls: int, duplicates: int, events: int, transcript: int, late: bool
) -> str:
    """The human-readable ``message`` of a successful update."""
    text = (
        f"stored {tool_calls - duplicates} tool calls ({duplicates} duplicates skipped), "
        f"{events} events, {transcript} transcript entries"
    )
    if late:
        text += "; the result had already been evaluated, so its evaluation is now stale"
    return text


@dataclass(frozen=True, slots=True)
class IngestOutcome:
    """What the route answers: status, JSON body bytes, replay flag."""

    status_code: int
    body: bytes
    replayed: bool = False


@dataclass(slots=True)
class _Item:
    caller: Caller
    request: Any
    result_id: int
    fingerprint: str
    body_sha256: str
    idempotency_key: str | None
    source: str | None
    received_at: datetime
    future: asyncio.Future[IngestOutcome]
    attempts: int = 0


@dataclass(slots=True)
class _Lane:
    """One writer coroutine, its queue and the items it put off to its next group."""

    queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    deferred: list[_Item] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class _Plan:
    item: _Item
    late: bool
    tool_calls: list[Any] = field(default_factory=list)
    duplicates: int = 0
    outcome: IngestOutcome | None = None


def _json_outcome(status_code: int, payload: dict[str, Any]) -> IngestOutcome:
    return IngestOutcome(status_code, dumps_json(payload).encode())


def _not_found(result_id: int) -> IngestOutcome:
    return _json_outcome(404, {"detail": f"simulation result {result_id} not found"})


def _idempotency_conflict() -> IngestOutcome:
    return _json_outcome(
        422,
        {
            "detail": [
                validation_detail(
                    ["header", "Idempotency-Key"],
                    "this Idempotency-Key was already used with a different request; "
                    "use a new key for a new request",
                    "idempotency_key_reused",
                )
            ]
        },
    )


# A batch reaching a result in one of these states gives the lifecycle worker
# work (evaluate, or re-evaluate a stale evaluation), as in ``update_result``;
# before hang-up, the call end itself wakes the worker.
_ENDED = frozenset({"CONVERSATION_ENDED", "EVALUATING", "COMPLETED"})


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
class _RowsInsert:
    """A SQLite ``INSERT ... SELECT * FROM (VALUES ...)`` sized per call."""

    template: str
    width: int


class _Sql:
    """The hot path's statements in the dialect's parameter style."""

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
    ) -> str | _RowsInsert:
        names = ", ".join(columns)
        if self.is_pg:
            return (
                f"INSERT INTO {table} ({names}) VALUES ({self.placeholders(len(columns))}){suffix}"
            )
        # The first column (a batch id) is never NULL in a real row, so the
        # NULL rows that pad the VALUES list to its size are filtered out.
        # WHERE also keeps ON CONFLICT from being parsed as a join clause.
        return _RowsInsert(
            f"INSERT INTO {table} ({names}) SELECT * FROM (VALUES {{}}) "
            f"WHERE column1 IS NOT NULL{suffix}",
            len(columns),
        )

    def _values_sql(self, insert: _RowsInsert, rows: int) -> str:
        key = (insert.template, rows)
        text = self._values_cache.get(key)
        if text is None:
            row = "(" + ", ".join("?" * insert.width) + ")"
            text = self._values_cache[key] = insert.template.format(", ".join([row] * rows))
        return text

    async def run_many(
        self, conn: AsyncConnection, statement: str | _RowsInsert, rows: list[tuple[Any, ...]]
    ) -> None:
        """Execute a multi-row statement built by this class."""
        if isinstance(statement, str):
            if self.is_pg:
                await conn.exec_driver_sql(statement, rows)
            else:
                await self.fetch(conn, statement, (dumps_json(rows),))
            return
        # One statement, so one step in SQLite and one GIL hand-off in the
        # driver, with every value bound in C: executemany steps (and gives
        # up the GIL) once per row, and a JSON array of rows makes SQLite
        # parse each row's text again for every column it picks.
        width = statement.width
        cap = 1 << ((self.max_variables // width).bit_length() - 1)
        cap = min(cap, MAX_ROWS_PER_INSERT)
        for start in range(0, len(rows), cap):
            chunk = rows[start : start + cap]
            # Sizes are powers of two so that few statement texts exist and
            # the driver's statement cache keeps them compiled.
            size = max(MIN_ROWS_PER_INSERT, 1 << (len(chunk) - 1).bit_length())
            params = [value for row in chunk for value in row]
            params += [None] * ((size - len(chunk)) * width)
            await self.fetch(conn, self._values_sql(statement, size), params)

    async def fetch(
        self, conn: AsyncConnection, statement: str, params: Iterable[Any]
    ) -> list[Any]:
        """Execute one statement inside the open transaction; all its rows."""
        if self.is_pg:
            result = await conn.exec_driver_sql(statement, tuple(params))
            return list(result.all())
        # Straight to aiosqlite: one trip to its thread per statement, where
        # SQLAlchemy's adapter makes several (cursor, execute, fetch, close).
        # Each trip back waits for the event loop to come round, which under
        # load is busy with HTTP, so trips, not SQLite, set the group's pace.
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        return list(await driver.execute_fetchall(statement, tuple(params)))

    def _q(self, sql: str) -> str:
        if not self.is_pg:
            return sql
        parts = sql.split("?")
        return "".join(f"{part}${i}" for i, part in enumerate(parts[:-1], 1)) + parts[-1]

    def placeholders(self, count: int, start: int = 1) -> str:
        if self.is_pg:
            return ", ".join(f"${i}" for i in range(start, start + count))
        return ", ".join("?" * count)

    def rows_placeholders(self, rows: int, width: int) -> str:
        groups = []
        for r in range(rows):
            groups.append(f"({self.placeholders(width, 1 + r * width)})")
        return ", ".join(groups)


class IngestWriter:
    """The writer coroutines behind ``update-simulation-result``.

    Requests are spread over *lanes* by result id, one writer coroutine and
    one transaction at a time per lane, so everything about one result (its
    known call ids, its batch count) is decided by one lane in arrival
    order. SQLite has one write connection, so one lane; on PostgreSQL a
    single writer spends most of its time waiting for round trips and the
    commit, so several lanes overlap those waits. Lanes share idempotency
    keys through the database: a key claimed by another lane's open
    transaction makes ``INSERT ... ON CONFLICT DO NOTHING`` wait for it, and
    the request is then decided against the stored first response.

    Args:
        db: The platform database.
        limits: Input caps (``max_batches_per_result`` is enforced here).
        max_group: Most requests written in one transaction.
        on_committed: Called after a commit with the ids of results that
            received data and now have lifecycle work (their call has ended),
            so that the lifecycle worker evaluates them promptly.
        lanes: Concurrent writer transactions (default: 1 on SQLite, 3 on
            PostgreSQL).

    Example:
        >>> writer = IngestWriter.__new__(IngestWriter)  # built by the app; see create_app
    """

    def __init__(
        self,
        db: Database,
        limits: Limits,
        *,
        max_group: int = 256,
        on_committed: Callable[[Sequence[int]], None] | None = None,
        lanes: int | None = None,
    ) -> None:
        self._db = db
        self._limits = limits
        self._max_group = max_group
        self._on_committed = on_committed
        self._sql = _Sql(db.write_engine.dialect)
        if lanes is None:
            lanes = PG_LANES if self._sql.is_pg else 1
        if lanes < 1 or (lanes > 1 and not self._sql.is_pg):
            raise ValueError("lanes must be 1 on SQLite and at least 1 on PostgreSQL")
        self._lanes = [_Lane() for _ in range(lanes)]
        self._running = False
        self._pg_batch_sequence: str | None = None
        self.groups_written = 0
        self.items_written = 0

    async def start(self) -> None:
        """Start the writer task (idempotent)."""
        if self._sql.is_pg and self._pg_batch_sequence is None:
            async with self._db.write_engine.connect() as conn:
                result = await conn.exec_driver_sql(
                    "SELECT pg_get_serial_sequence('enrichment_batches', 'id')"
                )
                self._pg_batch_sequence = result.scalar_one()
        for number, lane in enumerate(self._lanes):
            if lane.task is None:
                lane.task = asyncio.create_task(
                    self._run(lane), name=f"roost-ingest-writer-{number}"
                )
        self._running = True

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        self._running = False
        for lane in self._lanes:
            task, lane.task = lane.task, None
            if task is None:
                continue
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for lane in self._lanes:
            pending: list[_Item] = list(lane.deferred)
            lane.deferred.clear()
            while not lane.queue.empty():
                pending.append(lane.queue.get_nowait())
            while pending:
                group, pending = pending[: self._max_group], pending[self._max_group :]
                await self._write_safely(lane, group)
                pending = lane.deferred + pending
                lane.deferred = []

    async def submit(
        self,
        caller: Caller,
        request: Any,
        result_id: int,
        body: bytes,
        *,
        idempotency_key: str | None,
        source: str | None,
    ) -> IngestOutcome:
        """Queue one request and wait until it is committed (or refused)."""
        if not self._running:
            raise RuntimeError("IngestWriter is not running")
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self._lanes[result_id % len(self._lanes)].queue.put_nowait(
            _Item(
                caller=caller,
                request=request,
                result_id=result_id,
                # Only a keyed request is ever compared with a stored one.
                fingerprint=""
                if idempotency_key is None
                else request_fingerprint(INGEST_OPERATION, body),
                body_sha256=hashlib.sha256(body).hexdigest(),
                idempotency_key=idempotency_key,
                source=source,
                received_at=utcnow(),
                future=future,
            )
        )
        # shield: a client that disconnects must not cancel the shared future;
        # its data is committed anyway and a retry replays the outcome.
        return await asyncio.shield(future)

    async def _run(self, lane: _Lane) -> None:
        while True:
            group = lane.deferred[: self._max_group]
            lane.deferred = lane.deferred[self._max_group :]
            if not group:
                group.append(await lane.queue.get())
            while len(group) < self._max_group and not lane.queue.empty():
                group.append(lane.queue.get_nowait())
            await self._write_safely(lane, group)

    async def _write_safely(self, lane: _Lane, group: list[_Item]) -> None:
        try:
            touched = await self._write_group(lane, group)
        except Exception as exc:
            # Whatever failed (database, driver, a bug), every waiter gets an
            # answer and the writer keeps running.
            if len(group) > 1:
                # One bad row must not fail its neighbours: retry one by one.
                log.warning(
                    "group commit of %d requests failed (%s); retrying singly", len(group), exc
                )
                for item in group:
                    if not item.future.done():
                        await self._write_safely(lane, [item])
                return
            log.exception("storing an enrichment batch failed")
            item = group[0]
            if not item.future.done():
                item.future.set_result(
                    _json_outcome(503, {"detail": "storage is unavailable; retry later"})
                )
            return
        self.groups_written += 1
        if touched and self._on_committed is not None:
            self._on_committed(touched)

    async def _write_group(self, lane: _Lane, group: list[_Item]) -> list[int]:
        """Write one group; returns the results that now have lifecycle work."""
        plans: list[_Plan] = []
        outcomes: list[tuple[_Item, IngestOutcome]] = []
        deferred: list[_Item] = []
        async with self._db.write_engine.connect() as conn, conn.begin():
            results, last_batch_id = await self._load_results(conn, {i.result_id for i in group})
            records = await self._load_keys(conn, group)
            call_ids = await self._load_call_ids(conn, group)
            claimed_in_group: set[tuple[int, str]] = set()
            batches_added: dict[int, int] = {}
            attention: set[int] = set()
            for item in group:
                org_id = item.caller.org_id
                row = results.get(item.result_id)
                if row is None or row[0] != org_id:
                    outcomes.append((item, _not_found(item.result_id)))
                    continue
                if item.idempotency_key is not None:
                    scope = (org_id, item.idempotency_key)
                    record = records.get(scope)
                    if record is not None:
                        outcomes.append((item, self._replay(item, record)))
                        continue
                    if scope in claimed_in_group:
                        # The same key twice in one group: decide it after
                        # this commit, against the stored first response.
                        deferred.append(item)
                        continue
                    claimed_in_group.add(scope)
                evaluated_at, batch_count = row[1], row[2]
                added = batches_added.get(item.result_id, 0)
                if batch_count + added >= self._limits.max_batches_per_result:
                    outcomes.append((item, self._too_many_batches()))
                    continue
                batches_added[item.result_id] = added + 1
                if row[3] in _ENDED:
                    attention.add(item.result_id)
                seen = call_ids.setdefault(item.result_id, set())
                plans.append(self._plan(item, late=evaluated_at is not None, seen=seen))
            plans = await self._claim_keys(conn, plans, deferred)
            if plans:
                await self._insert(conn, plans, last_batch_id)
        for item, outcome in outcomes:
            if not item.future.done():
                item.future.set_result(outcome)
        for plan in plans:
            assert plan.outcome is not None
            if not plan.item.future.done():
                plan.item.future.set_result(plan.outcome)
        self.items_written += len(plans)
        for item in deferred:
            item.attempts += 1
        lane.deferred.extend(deferred)
        return sorted(attention.intersection(plan.item.result_id for plan in plans))

    async def _load_results(
        self, conn: AsyncConnection, ids: set[int]
    ) -> tuple[dict[int, tuple[int, Any, int, str]], int]:
        sql = self._sql
        rows = await self._sql.fetch(
            conn, sql.select_results.format(sql.placeholders(len(ids))), ids
        )
        last_batch_id = rows[0][5] if rows and not sql.is_pg else 0
        return {row[0]: (row[1], row[2], row[3], row[4]) for row in rows}, last_batch_id

    async def _load_keys(
        self, conn: AsyncConnection, group: Iterable[_Item]
    ) -> dict[tuple[int, str], tuple[str, int, str]]:
        keys = sorted({item.idempotency_key for item in group if item.idempotency_key is not None})
        if not keys:
            return {}
        sql = self._sql
        rows = await self._sql.fetch(
            conn, sql.select_keys.format(sql.placeholders(len(keys))), keys
        )
        return {(row[0], row[1]): (row[2], row[3], row[4]) for row in rows}

    async def _load_call_ids(
        self, conn: AsyncConnection, group: list[_Item]
    ) -> dict[int, set[str]]:
        pairs = sorted(
            {
                (item.result_id, call.call_id)
                for item in group
                for call in item.request.tool_calls or ()
                if call.call_id is not None
            }
        )
        seen: dict[int, set[str]] = {}
        if not pairs:
            return seen
        sql = self._sql
        params: tuple[Any, ...]
        if sql.is_pg:
            params = ([pair[0] for pair in pairs], [pair[1] for pair in pairs])
        else:
            params = (dumps_json(pairs),)
        rows = await self._sql.fetch(conn, sql.select_call_ids, params)
        for result_id, call_id in rows:
            seen.setdefault(result_id, set()).add(call_id)
        return seen

    def _replay(self, item: _Item, record: tuple[str, int, str]) -> IngestOutcome:
        fingerprint, status_code, body = record
        if fingerprint != item.fingerprint:
            return _idempotency_conflict()
        return IngestOutcome(status_code, body.encode(), replayed=True)

    def _too_many_batches(self) -> IngestOutcome:
        limit = self._limits.max_batches_per_result
        return _json_outcome(
            422,
            {
                "detail": [
                    validation_detail(
                        ["body", "simulation_result_id"],
                        f"this simulation result already holds {limit} enrichment batches, "
                        "the most one result accepts",
                        "too_many_batches",
                    )
                ]
            },
        )

    def _plan(self, item: _Item, *, late: bool, seen: set[str]) -> _Plan:
        request = item.request
        plan = _Plan(item=item, late=late)
        tool_calls = request.tool_calls or []
        for call in tool_calls:
            call_id = call.call_id
            if call_id is not None:
                if call_id in seen:
                    plan.duplicates += 1
                    continue
                seen.add(call_id)
            plan.tool_calls.append(call)
        message = plan_message(
            tool_calls=len(tool_calls),
            duplicates=plan.duplicates,
            events=len(request.events or ()),
            transcript=len(request.recorded_transcript or ()),
            late=late,
        )
        plan.outcome = _json_outcome(200, {"status": "success", "message": message})
        return plan

    async def _claim_keys(
        self, conn: AsyncConnection, plans: list[_Plan], deferred: list[_Item]
    ) -> list[_Plan]:
        # Claimed in one global order, so two lanes claiming overlapping keys
        # wait for each other instead of deadlocking.
        keyed = sorted(
            (plan for plan in plans if plan.item.idempotency_key is not None),
            key=lambda plan: (plan.item.caller.org_id, plan.item.idempotency_key or ""),
        )
        if not keyed:
            return plans
        sql = self._sql
        params: list[Any] = []
        for plan in keyed:
            assert plan.outcome is not None
            item = plan.item
            params += [
                item.caller.org_id,
                item.idempotency_key,
                INGEST_OPERATION,
                item.fingerprint,
                plan.outcome.status_code,
                plan.outcome.body.decode(),
                sql.ts(item.received_at),
            ]
        won: set[tuple[int, str]] = set()
        # Chunked to stay far below the drivers' bound-parameter limits.
        for start in range(0, len(keyed), 500):
            chunk = keyed[start : start + 500]
            rows = await self._sql.fetch(
                conn,
                sql.claim_keys.format(sql.rows_placeholders(len(chunk), 7)),
                params[start * 7 : (start + len(chunk)) * 7],
            )
            won.update((row[0], row[1]) for row in rows)
        kept = []
        for plan in plans:
            key = plan.item.idempotency_key
            if key is not None and (plan.item.caller.org_id, key) not in won:
                # Another server process stored this key meanwhile.
                deferred.append(plan.item)
                continue
            kept.append(plan)
        return kept

    async def _allocate_batch_ids(
        self, conn: AsyncConnection, count: int, last_batch_id: int
    ) -> list[int]:
        if self._sql.is_pg:
            rows = await self._sql.fetch(
                conn,
                "SELECT nextval($1::regclass) FROM generate_series(1, $2)",
                (self._pg_batch_sequence, count),
            )
            return [row[0] for row in rows]
        return list(range(last_batch_id + 1, last_batch_id + 1 + count))

    async def _insert(self, conn: AsyncConnection, plans: list[_Plan], last_batch_id: int) -> None:
        sql = self._sql
        ids = await self._allocate_batch_ids(conn, len(plans), last_batch_id)
        batch_rows: list[tuple[Any, ...]] = []
        tool_rows: list[tuple[Any, ...]] = []
        event_rows: list[tuple[Any, ...]] = []
        transcript_rows: list[tuple[Any, ...]] = []
        per_result: dict[int, list[Any]] = {}
        for batch_id, plan in zip(ids, plans, strict=True):
            item = plan.item
            request = item.request
            result_id = item.result_id
            stamp = sql.ts(item.received_at)
            tool_rows.extend(
                (
                    batch_id,
                    seq,
                    result_id,
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
                for seq, call in enumerate(plan.tool_calls)
            )
            event_rows.extend(
                (
                    batch_id,
                    seq,
                    event.title,
                    event.start_offset_ms,
                    event.end_offset_ms,
                    event.description,
                    None if event.tags is None else dumps_json(event.tags),
                    json_text(event.metadata),
                )
                for seq, event in enumerate(request.events or ())
            )
            transcript_rows.extend(
                (
                    batch_id,
                    seq,
                    entry.start_offset_ms,
                    entry.end_offset_ms,
                    entry.speaker,
                    entry.utterance,
                    entry.filler_utterance,
                )
                for seq, entry in enumerate(request.recorded_transcript or ())
            )
            batch_rows.append(
                (
                    batch_id,
                    item.caller.org_id,
                    result_id,
                    stamp,
                    item.idempotency_key,
                    item.body_sha256,
                    item.caller.key_id,
                    item.source,
                    None if request.tags is None else dumps_json(request.tags),
                    json_text(request.metadata),
                    None if request.trace_ids is None else dumps_json(request.trace_ids),
                    len(request.tool_calls or ()),
                    plan.duplicates,
                    len(request.events or ()),
                    len(request.recorded_transcript or ()),
                    plan.late,
                )
            )
            summary = per_result.setdefault(result_id, [result_id, 0, 0, stamp, stamp])
            summary[1] += 1
            summary[2] += len(plan.tool_calls)
            summary[4] = stamp
        updates = [tuple(v) for v in per_result.values()]
        if not sql.is_pg:
            # Batches before the rows that reference them.
            for statement, rows in (
                (sql.insert_batch, batch_rows),
                (sql.insert_tool, tool_rows),
                (sql.insert_event, event_rows),
                (sql.insert_transcript, transcript_rows),
                (sql.update_result, updates),
            ):
                if rows:
                    await sql.run_many(conn, statement, rows)
            return
        await sql.run_many(conn, sql.insert_batch, batch_rows)
        if sql.is_pg:
            # COPY is PostgreSQL's bulk path (about twice as fast as
            # executemany here). It cannot skip conflicts, so a call_id that
            # another server process stored since our pre-check fails the
            # group, which is then retried request by request, and the
            # retry's pre-check skips it.
            pg = (await conn.get_raw_connection()).driver_connection
            assert pg is not None
            for table, columns, rows in (
                ("tool_calls", TOOL_COLUMNS, tool_rows),
                ("events", EVENT_COLUMNS, event_rows),
                ("transcript_entries", TRANSCRIPT_COLUMNS, transcript_rows),
            ):
                if rows:
                    await pg.copy_records_to_table(table, records=rows, columns=columns)
        await sql.run_many(conn, sql.update_result, updates)
