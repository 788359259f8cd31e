"""Group commit for ``update-simulation-result``: one writer, many waiters.

Every accepted POST must be durably committed before its 200 is sent. Doing a
transaction (and, on SQLite with ``synchronous=FULL``, an fsync) per request
would cap ingest at the disk's sync rate, so requests are handed to a writer
coroutine instead (one on SQLite; on PostgreSQL one by default, or several
*lanes*, each owning a share of the results, see :class:`IngestWriter`). It takes everything queued,
writes it in one transaction and, only after ``COMMIT`` returns, resolves each
waiter with its own outcome. While one transaction commits, the next group
accumulates.

What a group stores is decided by :meth:`IngestWriter._decide`, a generator
of two steps with no I/O in it (one lookup, one store);
:mod:`roost.platform.ingest_sql` holds the statements and runs the steps (on
SQLite the whole transaction in one call on the driver's thread, on
PostgreSQL a lookup query and a store transaction on asyncpg). Timestamps go
through :class:`UTCDateTime`'s own bind processor and JSON values are stored
as the text they arrived as (see :mod:`roost.platform.wire`), so rows written
here read back exactly like rows written through the ORM
(:class:`~roost.platform.storage.JSONText`).

Semantics, per request:

- unknown result, or a result of another organisation: 404, nothing stored;
- ``Idempotency-Key`` seen before for this organisation: the first response
  is replayed if the operation and raw body are identical, otherwise 422;
  nothing new is stored either way. The key is stored in the batch's
  transaction under a unique index, so two server processes sharing a
  PostgreSQL database cannot both store it: the second one's group is
  refused whole and decided again (:class:`~roost.platform.ingest_sql.ClaimLost`);
- otherwise one enrichment batch (holding its events and transcript) plus its
  tool-call rows. Tool calls carrying a ``call_id`` already stored for the
  result (or repeated in the request) are skipped and counted as duplicates;
  on PostgreSQL the stored ones are found by the unique index refusing the
  first store (see :meth:`IngestWriter._write_group`);
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from roost.platform.auth import Caller
from roost.platform.ingest_sql import (
    TOOL_CALL_ID,
    ClaimLost,
    Found,
    IngestSql,
    Lookup,
    PreparedUpdate,
    Steps,
    Store,
    commit_sqlite,
)
from roost.platform.settings import Limits
from roost.platform.storage import Database, dumps_json, utcnow
from roost.platform.wire import validation_detail

__all__ = [
    "INGEST_OPERATION",
    "IngestOutcome",
    "IngestWriter",
    "plan_message",
    "request_fingerprint",
]

log = logging.getLogger(__name__)

INGEST_OPERATION = "update-simulation-result"

#: Writer lanes on PostgreSQL by default (see :class:`IngestWriter`).
PG_LANES = 1

# The PostgreSQL writer's session settings. Every statement is planned for
# its own parameters: the tables grow from empty under load, and a generic
# plan a connection settled on while tool_calls was tiny (a sequential scan in
# the call-id lookup) was kept, and once cost a writer about 1.2 ms of
# database CPU per request; planning the two statements of a group costs far
# less. And a group's results are read by primary key: with the default
# random_page_cost (4, priced for disks that seek) the planner scanned all of
# simulation_results while the table was small, about 0.3 ms of database CPU
# per statement at 1,000 results; the writer's rows are in shared buffers.
_PG_WRITER_SETTINGS = {"plan_cache_mode": "force_custom_plan", "random_page_cost": "1.1"}

# Times a group is decided again after losing a key or call id to another
# writer before it is written request by request instead.
_MAX_ATTEMPTS = 3

# Groups a PostgreSQL lane looks up call ids for after a store lost to a
# stored call id, so that a client re-posting its calls costs one failed
# store per hundred groups, not one per group.
_PROBE_GROUPS_AFTER_CONFLICT = 100


def request_fingerprint(operation: str, body: bytes) -> str:
    """SHA-256 identifying a request for idempotency (operation + raw body)."""
    digest = hashlib.sha256(operation.encode())
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def request_fingerprint_for(idempotency_key: str | None, body: bytes) -> str:
    """The fingerprint stored with a keyed request; ``""`` without a key (never compared)."""
    return "" if idempotency_key is None else request_fingerprint(INGEST_OPERATION, body)


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
    update: PreparedUpdate
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
    # The group being written, shielded from the task's cancellation so that
    # stop() can let it finish and answer its waiters.
    writing: asyncio.Future[None] | None = None
    # PostgreSQL: the SQLAlchemy connection this lane checked out and keeps,
    # and its asyncpg connection.
    connection: Any = None
    pg: Any = None
    # PostgreSQL: groups left that look up their call ids before storing
    # (see _write_group); set when a store lost to a stored call id.
    probe_calls: int = 0


@dataclass(slots=True)
class _Plan:
    item: _Item
    late: bool
    tool_rows: list[tuple[Any, ...]] = field(default_factory=list)
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


_Decided: TypeAlias = tuple[list[_Plan], list[tuple[_Item, IngestOutcome]], list[_Item], set[int]]
"""A group's stored plans, other answers, requests put off, results to wake."""

T = TypeVar("T")


async def _on_sqlite_thread(driver: Any, function: Callable[..., T], *args: Any) -> T:
    """``function(sqlite3_connection, *args)`` on the aiosqlite connection's thread.

    aiosqlite runs every call of a connection on its own thread, fed by a
    queue, and has no public way to run a function there; this uses the entry
    point its own methods use (SQLAlchemy's adapter reaches into the same
    internals). The ingest tests run this path on every SQLite test.
    """
    result: T = await driver._execute(function, driver._conn, *args)
    return result


# A batch reaching a result in one of these states gives the lifecycle worker
# work (evaluate, or re-evaluate a stale evaluation), as in ``update_result``;
# before hang-up, the call end itself wakes the worker.
_ENDED = frozenset({"CONVERSATION_ENDED", "EVALUATING", "COMPLETED"})


class IngestWriter:
    """The writer coroutines behind ``update-simulation-result``.

    Requests are spread over *lanes* by result id, one writer coroutine and
    one transaction at a time per lane, so everything about one result (its
    known call ids, its batch count) is decided by one lane in arrival
    order. SQLite has one write connection, so one lane. On PostgreSQL
    several lanes overlap one lane's round trips and commit with another's
    work, which pays when the database is far away; on one machine a single
    lane measured best (bigger groups, fewer round trips per request: see
    BENCHMARKS.md), so it is the default. Each lane keeps one connection of
    the writer's own pool (one per lane) for its lifetime. Lanes share idempotency keys through the
    database: a key that another lane stored between this group's lookup and
    its store makes the store fail whole, and the group is decided again
    against the stored first response.

    Args:
        db: The platform database.
        limits: Input caps (``max_batches_per_result`` is enforced here).
        max_group: Most requests written in one transaction.
        on_committed: Called after a commit with the ids of results that
            received data and now have lifecycle work (their call has ended),
            so that the lifecycle worker evaluates them promptly.
        lanes: Concurrent writer transactions (1 on SQLite; on PostgreSQL
            default :data:`PG_LANES`).
        sqlite_connection: On SQLite, a write connection of this thread to
            run each transaction on directly, blocking the event loop for its
            length; only for a process that does nothing but write (see
            :mod:`roost.platform.ingest_process`). Default: the database's
            pooled write connection, on its driver thread.

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
        sqlite_connection: sqlite3.Connection | None = None,
    ) -> None:
        self._db = db
        self._limits = limits
        self._max_group = max_group
        self._on_committed = on_committed
        self._sql = IngestSql(db.write_engine.dialect)
        self._sqlite_connection = sqlite_connection
        if lanes is None:
            lanes = PG_LANES if self._sql.is_pg else 1
        if lanes < 1 or (lanes > 1 and not self._sql.is_pg):
            raise ValueError("lanes must be 1 on SQLite and at least 1 on PostgreSQL")
        self._lanes = [_Lane() for _ in range(lanes)]
        self._running = False
        self._pg_batch_sequence: str | None = None
        self._pg_engine: AsyncEngine | None = None
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
            writing, lane.writing = lane.writing, None
            if writing is not None:
                # The group the task was writing finishes and is answered.
                await writing
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
            await self._release(lane, broken=False)
        engine, self._pg_engine = self._pg_engine, None
        if engine is not None:
            await engine.dispose()

    async def submit(
        self,
        caller: Caller,
        update: PreparedUpdate,
        result_id: int,
        body: bytes,
        *,
        idempotency_key: str | None,
        source: str | None,
    ) -> IngestOutcome:
        """Queue one request (its rows, see :func:`prepare_update`) and wait
        until it is committed (or refused)."""
        future = self.enqueue(
            caller,
            update,
            result_id,
            body_sha256=hashlib.sha256(body).hexdigest(),
            fingerprint=request_fingerprint_for(idempotency_key, body),
            idempotency_key=idempotency_key,
            source=source,
        )
        # shield: a client that disconnects must not cancel the shared future;
        # its data is committed anyway and a retry replays the outcome.
        return await asyncio.shield(future)

    def enqueue(
        self,
        caller: Caller,
        update: PreparedUpdate,
        result_id: int,
        *,
        body_sha256: str,
        fingerprint: str,
        idempotency_key: str | None,
        source: str | None,
    ) -> asyncio.Future[IngestOutcome]:
        """Queue one request; the future resolves once it is committed (or refused)."""
        if not self._running:
            raise RuntimeError("IngestWriter is not running")
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self._lanes[result_id % len(self._lanes)].queue.put_nowait(
            _Item(
                caller=caller,
                update=update,
                result_id=result_id,
                fingerprint=fingerprint,
                body_sha256=body_sha256,
                idempotency_key=idempotency_key,
                source=source,
                received_at=utcnow(),
                future=future,
            )
        )
        return future

    async def _run(self, lane: _Lane) -> None:
        while True:
            group = lane.deferred[: self._max_group]
            lane.deferred = lane.deferred[self._max_group :]
            if not group:
                group.append(await lane.queue.get())
            while len(group) < self._max_group and not lane.queue.empty():
                group.append(lane.queue.get_nowait())
            lane.writing = asyncio.ensure_future(self._write_safely(lane, group))
            await asyncio.shield(lane.writing)
            lane.writing = None

    async def _write_safely(self, lane: _Lane, group: list[_Item]) -> None:
        try:
            touched = await self._write_group(lane, group)
        except ClaimLost as exc:
            if exc.table == "tool_calls":
                lane.probe_calls = _PROBE_GROUPS_AFTER_CONFLICT
            if max(item.attempts for item in group) < _MAX_ATTEMPTS:
                # Nothing was written: decide the whole group again, against
                # what the other writer stored (a replay, a duplicate) or
                # without the deleted result (404).
                log.info("the database changed since the lookup (%s); deciding again", exc)
                for item in group:
                    item.attempts += 1
                lane.deferred.extend(group)
                return
            await self._failed(lane, group, exc)
            return
        except Exception as exc:
            await self._failed(lane, group, exc)
            return
        self.groups_written += 1
        if touched and self._on_committed is not None:
            self._on_committed(touched)

    async def _failed(self, lane: _Lane, group: list[_Item], exc: Exception) -> None:
        # Whatever failed (database, driver, a bug), every waiter gets an
        # answer and the writer keeps running.
        if not isinstance(exc, ClaimLost):
            # The connection may be what failed; the next group takes a fresh
            # one from the pool (pre-pinged there).
            await self._release(lane, broken=True)
        if len(group) > 1:
            # One bad row must not fail its neighbours: retry one by one.
            log.warning("group commit of %d requests failed (%s); retrying singly", len(group), exc)
            for item in group:
                if not item.future.done():
                    await self._write_safely(lane, [item])
            return
        log.error("storing an enrichment batch failed", exc_info=exc)
        item = group[0]
        if not item.future.done():
            item.future.set_result(
                _json_outcome(503, {"detail": "storage is unavailable; retry later"})
            )

    async def _pg_connection(self, lane: _Lane) -> Any:
        """The lane's asyncpg connection: checked out once and kept, so a group
        pays no checkout and no pre-ping."""
        if lane.pg is None:
            if self._pg_engine is None:
                self._pg_engine = create_async_engine(
                    self._db.url,
                    # The lanes' own pool: they hold their connections for
                    # their lifetime, so from the shared pool they would take
                    # its capacity from the API (and more lanes than it holds
                    # would wait forever).
                    pool_size=len(self._lanes),
                    max_overflow=0,
                    pool_pre_ping=True,
                    connect_args={"server_settings": _PG_WRITER_SETTINGS},
                )
            conn = await self._pg_engine.connect()
            try:
                pg = (await conn.get_raw_connection()).driver_connection
                assert pg is not None
            except BaseException:
                await conn.close()
                raise
            lane.connection, lane.pg = conn, pg
        return lane.pg

    async def _release(self, lane: _Lane, *, broken: bool) -> None:
        conn = lane.connection
        lane.connection = lane.pg = None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if broken:
                await conn.invalidate()
            await conn.close()

    async def _write_group(self, lane: _Lane, group: list[_Item]) -> list[int]:
        """Write one group; returns the results that now have lifecycle work."""
        # On PostgreSQL a group's call ids are first not looked up: the
        # unique (result_id, call_id) index refuses a store that repeats one
        # (ClaimLost), and the group is then decided again with the lookup,
        # as are the lane's next groups. Re-posted calls are rare (Roost's SDK
        # retries under the same Idempotency-Key, which is always looked up),
        # and the lookup was about a seventh of the database's CPU per group.
        # SQLite always looks them up: its lookup and store share the write
        # lock, and the lookup is cheap there.
        probe_calls = (
            not self._sql.is_pg or lane.probe_calls > 0 or any(item.attempts for item in group)
        )
        if lane.probe_calls > 0:
            lane.probe_calls -= 1
        steps = self._decide(group, probe_calls=probe_calls)
        if self._sql.is_pg:
            assert self._pg_batch_sequence is not None
            pg = await self._pg_connection(lane)
            decided = await self._sql.run_pg(pg, steps, self._pg_batch_sequence)
        elif self._sqlite_connection is not None:
            decided = await self._write_inline(self._sqlite_connection, steps)
        else:
            # The pool's only write connection, so in-process writers still
            # queue on it; the whole transaction runs on its driver thread.
            async with self._db.write_engine.connect() as conn:
                driver = (await conn.get_raw_connection()).driver_connection
                assert driver is not None
                decided = await _on_sqlite_thread(driver, self._sql.run_sqlite, steps)
        plans, outcomes, deferred, attention = decided
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

    async def _write_inline(self, conn: sqlite3.Connection, steps: Steps[_Decided]) -> _Decided:
        """Run the group's transaction on this thread, but wait for its COMMIT on another.

        The statements take CPU, so they run here without a thread hop; the
        COMMIT is mostly an fsync, so it runs on a worker thread while this
        event loop decodes the next requests.
        """
        decided = self._sql.run_sqlite(conn, steps, commit=False)
        commit = asyncio.get_running_loop().run_in_executor(None, commit_sqlite, conn)
        cancelled = False
        # Not cancellable: the connection must be idle again before anything
        # else (stop() writes what is queued) uses it.
        while True:
            try:
                await asyncio.shield(commit)
                break
            except asyncio.CancelledError:
                if commit.done():
                    raise
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        return decided

    def _decide(self, group: list[_Item], *, probe_calls: bool = True) -> Steps[_Decided]:
        """What the group stores and answers, as steps (no I/O here, see
        :mod:`roost.platform.ingest_sql`): one lookup, then one store.

        On SQLite it runs on the driver's thread, so it touches no asyncio
        object (:meth:`_write_group` resolves the futures on the loop) and
        encodes only with msgspec, whose encoders are thread-safe.
        """
        plans: list[_Plan] = []
        outcomes: list[tuple[_Item, IngestOutcome]] = []
        deferred: list[_Item] = []
        found: Found = yield Lookup(
            result_ids=tuple(sorted({item.result_id for item in group})),
            keys=tuple(
                sorted(
                    {
                        (item.caller.org_id, item.idempotency_key)
                        for item in group
                        if item.idempotency_key is not None
                    }
                )
            ),
            call_pairs=tuple(
                sorted(
                    {
                        (item.result_id, row[TOOL_CALL_ID])
                        for item in group
                        for row in item.update.tool_rows
                        if row[TOOL_CALL_ID] is not None
                    }
                )
            )
            if probe_calls
            else (),
            new_ids=len(group),
        )
        claimed_in_group: set[tuple[int, str]] = set()
        batches_added: dict[int, int] = {}
        attention: set[int] = set()
        for item in group:
            org_id = item.caller.org_id
            row = found.results.get(item.result_id)
            if row is None or row[0] != org_id:
                outcomes.append((item, _not_found(item.result_id)))
                continue
            if item.idempotency_key is not None:
                scope = (org_id, item.idempotency_key)
                record = found.keys.get(scope)
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
            seen = found.call_ids.setdefault(item.result_id, set())
            plans.append(self._plan(item, late=evaluated_at is not None, seen=seen))
        if plans:
            yield from self._store(plans, found.batch_ids)
        return plans, outcomes, deferred, attention

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
        update = item.update
        plan = _Plan(item=item, late=late)
        for row in update.tool_rows:
            call_id = row[TOOL_CALL_ID]
            if call_id is not None:
                if call_id in seen:
                    plan.duplicates += 1
                    continue
                seen.add(call_id)
            plan.tool_rows.append(row)
        message = plan_message(
            tool_calls=len(update.tool_rows),
            duplicates=plan.duplicates,
            events=update.event_count,
            transcript=update.transcript_count,
            late=late,
        )
        plan.outcome = _json_outcome(200, {"status": "success", "message": message})
        return plan

    def _store(self, plans: list[_Plan], batch_ids: list[int]) -> Steps[None]:
        sql = self._sql
        claims: list[tuple[Any, ...]] = []
        batch_rows: list[tuple[Any, ...]] = []
        tool_rows: list[tuple[Any, ...]] = []
        per_result: dict[int, list[Any]] = {}
        # The lookup reserved an id per request of the group; fewer were stored.
        for batch_id, plan in zip(batch_ids[: len(plans)], plans, strict=True):
            item = plan.item
            update = item.update
            result_id = item.result_id
            stamp = sql.ts(item.received_at)
            if item.idempotency_key is not None:
                assert plan.outcome is not None
                claims.append(
                    (
                        item.caller.org_id,
                        item.idempotency_key,
                        INGEST_OPERATION,
                        item.fingerprint,
                        plan.outcome.status_code,
                        plan.outcome.body.decode(),
                        stamp,
                    )
                )
            tool_rows.extend(
                (batch_id, seq, result_id, *row) for seq, row in enumerate(plan.tool_rows)
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
                    update.tags,
                    update.metadata,
                    update.trace_ids,
                    update.events,
                    update.transcript,
                    len(update.tool_rows),
                    plan.duplicates,
                    update.event_count,
                    update.transcript_count,
                    plan.late,
                )
            )
            summary = per_result.setdefault(result_id, [result_id, 0, 0, stamp, stamp])
            summary[1] += 1
            summary[2] += len(plan.tool_rows)
            summary[4] = stamp
        yield Store(
            # In one global order, so that two writers storing overlapping
            # keys wait for each other instead of deadlocking.
            claims=sorted(claims, key=lambda claim: (claim[0], claim[1])),
            batches=batch_rows,
            tool_rows=tool_rows,
            updates=[tuple(v) for v in per_result.values()],
        )
