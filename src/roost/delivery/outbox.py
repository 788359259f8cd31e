"""The durable outbox: one SQLite file of payloads waiting for (or done with) delivery.

Why SQLite and not a spool directory of files: several agent worker processes on
one host share the outbox, and they must not send the same entry at the same
time. A claim (``claimed_until`` lease) taken in a ``BEGIN IMMEDIATE`` transaction
gives that for free, together with atomic state changes and cheap listing; a
directory of files would need its own locking and rename protocol to match.

Durability rules:

* The database runs in WAL mode. :meth:`Outbox.add` commits with
  ``synchronous=FULL``: it returns only after the row is committed and fsynced,
  so neither a SIGKILL nor a power cut right after ``submit()`` loses the
  payload. The sender's bookkeeping (claims, attempt outcomes) commits with
  ``synchronous=NORMAL``, which survives any process crash; a power cut can only
  roll the last few of those back, and the worst outcome is a re-send under the
  same Idempotency-Key, which the platform stores once.
* Nothing is ever deleted unless it was delivered, or a user purges it
  explicitly (``roost outbox purge --failed`` / ``--all``).
* A file that is not a Roost outbox (garbage, another application's database, a
  newer schema) raises :class:`OutboxCorruptError` naming the file; the file is
  never modified, truncated or replaced.

Concurrency: every sharing process claims due rows in one write transaction, so a
row is in flight in at most one process. A lease that outlives its process (the
sender was SIGKILLed mid-attempt) is void as soon as that process is gone, which
is checked by pid for claims made on this host; otherwise it expires after the
lease time. The file must live on a local disk (WAL does not work over network
file systems), so all sharers are on one host.

Example:
    >>> import tempfile, pathlib
    >>> from roost.delivery import Outbox
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "outbox.sqlite3"
    >>> with Outbox(path) as outbox:
    ...     entry = outbox.add(
    ...         body=b'{"simulation_result_id":"720488"}',
    ...         simulation_result_id="720488",
    ...         base_url="http://127.0.0.1:8000",
    ...         key_fingerprint=None,
    ...         now=1000.0,
    ...     )
    ...     outbox.counts()
    {'pending': 1, 'delivered': 0, 'failed': 0}
"""

from __future__ import annotations

import os
import socket
import sqlite3
import threading
import uuid
import weakref
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "Claim",
    "EntryState",
    "Outbox",
    "OutboxCorruptError",
    "OutboxEntry",
    "OutboxError",
]

# PRAGMA application_id marks the file as ours ("Rost" in ASCII), so a random
# SQLite database passed as the outbox path is refused instead of altered.
APPLICATION_ID = 0x526F7374
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id TEXT PRIMARY KEY,
    simulation_result_id TEXT NOT NULL,
    base_url TEXT NOT NULL,
    key_fingerprint TEXT,
    idempotency_key TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    retry_since REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
    last_status INTEGER,
    last_error TEXT,
    last_attempt_at REAL,
    delivered_at REAL,
    claimed_until REAL,
    claim_token TEXT,
    claim_pid INTEGER,
    claim_host TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX IF NOT EXISTS outbox_created ON outbox (created_at);
"""

_COLUMNS = (
    "id, simulation_result_id, base_url, key_fingerprint, idempotency_key, created_at, "
    "retry_since, attempts, next_attempt_at, state, last_status, last_error, last_attempt_at, "
    "delivered_at, claimed_until, length(body)"
)


class OutboxError(Exception):
    """The outbox file could not be used (locked too long, unwritable, ...)."""


class OutboxCorruptError(OutboxError):
    """The outbox file is damaged or is not a Roost outbox; it was left untouched."""


class EntryState(StrEnum):
    """Where an entry stands."""

    PENDING = "pending"
    """Not delivered yet; the sender will try (again) at ``next_attempt_at``."""
    DELIVERED = "delivered"
    """The platform answered 2xx."""
    FAILED = "failed"
    """The platform refused it, or transient failures outlasted ``max_age``. Kept."""


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One row of the outbox (without the body; see :meth:`Outbox.body`).

    Attributes:
        id: Outbox id (32 hex characters); ``roost outbox show`` accepts a prefix.
        simulation_result_id: The result the payload enriches.
        base_url: Platform the payload is for.
        key_fingerprint: Fingerprint of the API key it was submitted under, if any.
        idempotency_key: UUID sent as ``Idempotency-Key`` on every attempt.
        created_at: Submission time (seconds since the epoch).
        retry_since: Start of the max-age retry window: the submission time, or
            the time the entry was last requeued after failing.
        attempts: Attempts started so far.
        next_attempt_at: When the next attempt is due (pending entries).
        state: ``pending``, ``delivered`` or ``failed``.
        last_status: HTTP status of the last attempt, if it got one.
        last_error: Why the last attempt failed, or the server's final message.
        last_attempt_at: When the last attempt started.
        delivered_at: When the platform accepted it.
        claimed_until: End of the lease while an attempt is in flight.
        body_size: Size of the JSON body in bytes.
    """

    id: str
    simulation_result_id: str
    base_url: str
    key_fingerprint: str | None
    idempotency_key: str
    created_at: float
    retry_since: float
    attempts: int
    next_attempt_at: float
    state: EntryState
    last_status: int | None
    last_error: str | None
    last_attempt_at: float | None
    delivered_at: float | None
    claimed_until: float | None
    body_size: int

    @classmethod
    def _from_row(cls, row: tuple[Any, ...]) -> OutboxEntry:
        values = list(row)
        values[9] = EntryState(values[9])
        return cls(*values)


@dataclass(frozen=True, slots=True)
class Claim:
    """An entry this process holds the lease on, with its body.

    Attributes:
        entry: The row as it was when claimed (``attempts`` already counts this one).
        body: The JSON body to post.
        token: Proves the lease when recording the outcome.
    """

    entry: OutboxEntry
    body: bytes
    token: str


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return True
    return True


# Connections inherited across fork() are parked here instead of being closed or
# garbage-collected in the child, which SQLite forbids.
_ABANDONED: list[sqlite3.Connection] = []


class Outbox:
    """A handle on one outbox file, safe to share between threads of a process.

    Args:
        path: The SQLite file; created (mode 0600, parent directories 0700) if missing.
        busy_timeout: Seconds a write waits for another process's lock.

    Raises:
        OutboxCorruptError: The file exists but is not a readable Roost outbox.
        OutboxError: The file cannot be created or opened.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 30.0) -> None:
        self.path = Path(path)
        self._busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._host = socket.gethostname()
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = None
        self._durable = True
        self._conn = self._open()
        _INSTANCES.add(self)

    # -- opening -----------------------------------------------------------

    def _corrupt(self, detail: object) -> OutboxCorruptError:
        return OutboxCorruptError(
            f"outbox file {self.path} is not a readable Roost outbox ({detail}). It was left "
            f"untouched: move it aside (e.g. mv '{self.path}' '{self.path}.broken') to start a "
            "new outbox, or point ROOST_OUTBOX_PATH elsewhere; inspect the old one with sqlite3."
        )

    def _create_file(self) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Payloads hold transcripts and tool arguments: owner-only from the
            # first byte. SQLite gives the -wal and -shm files the same mode.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            os.close(fd)
        except OSError as exc:
            raise OutboxError(f"cannot create outbox file {self.path}: {exc}") from exc

    def _open(self) -> sqlite3.Connection:
        if self.path.is_dir():
            raise OutboxError(f"outbox path {self.path} is a directory; give a file name")
        self._create_file()
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise OutboxError(f"cannot open outbox file {self.path}: {exc}") from exc
        try:
            self._init_schema(conn)
        except OutboxError:
            conn.close()
            raise
        except sqlite3.OperationalError as exc:
            # Locked, read-only, disk full, permissions: the file may be fine.
            conn.close()
            raise OutboxError(f"cannot use outbox file {self.path}: {exc}") from exc
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise self._corrupt(exc) from exc
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        # Reading the header first turns "file is not a database" into a clear
        # error before anything is written. One read transaction: another
        # process creating the same new outbox could otherwise commit between
        # the reads, and its tables seen with the empty header read before
        # looked like another application's database.
        conn.execute("BEGIN")
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {
                row[0]
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        finally:
            conn.execute("COMMIT")
        if app_id not in (0, APPLICATION_ID) or (app_id == 0 and tables):
            raise self._corrupt("it is an SQLite database of another application")
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"outbox file {self.path} was written by a newer Roost (schema {version}, "
                f"this one knows {SCHEMA_VERSION}); upgrade roost or use another ROOST_OUTBOX_PATH"
            )
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise OutboxError(
                f"outbox file {self.path} cannot use WAL mode (got {mode!r}); put it on a "
                "local disk"
            )
        conn.execute("PRAGMA synchronous=FULL")
        if app_id == APPLICATION_ID and version == SCHEMA_VERSION:
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _after_fork(self) -> None:
        # A forked child must not use its parent's SQLite connection (the lock
        # was already replaced by the at-fork hook at the end of this module).
        with self._lock:
            if os.getpid() == self._pid:
                return
            self._pid = os.getpid()
            if self._conn is not None:
                _ABANDONED.append(self._conn)
                self._durable = True
                self._conn = self._open()

    @contextmanager
    def _transaction(
        self, *, write: bool = True, durable: bool = True
    ) -> Iterator[sqlite3.Connection]:
        if os.getpid() != self._pid:
            self._after_fork()
        with self._lock:
            conn = self._conn
            if conn is None:
                raise OutboxError(f"outbox {self.path} is closed")
            try:
                if write and durable != self._durable:
                    conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                    self._durable = durable
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise OutboxError(
                        f"outbox file {self.path} stayed locked by another process for more "
                        f"than {self._busy_timeout:g} s: {exc}"
                    ) from exc
                raise OutboxError(f"outbox file {self.path}: {exc}") from exc
            except sqlite3.DatabaseError as exc:
                raise self._corrupt(exc) from exc

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if self._conn is not None:
                if os.getpid() == self._pid:
                    self._conn.close()
                else:
                    # Inherited across fork: the parent's connection is not ours to close.
                    _ABANDONED.append(self._conn)
            self._conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- writing -----------------------------------------------------------

    def add(
        self,
        *,
        body: bytes,
        simulation_result_id: str,
        base_url: str,
        key_fingerprint: str | None,
        now: float,
        state: EntryState = EntryState.PENDING,
        error: str | None = None,
    ) -> OutboxEntry:
        """Store a payload durably; returns the committed entry.

        A new Idempotency-Key (UUID4) is generated here, once; every later attempt,
        from any process, reuses it.
        """
        entry_id = uuid.uuid4().hex
        key = str(uuid.uuid4())
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO outbox (id, simulation_result_id, base_url, key_fingerprint, "
                "idempotency_key, body, created_at, retry_since, next_attempt_at, state, "
                "last_error) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry_id,
                    simulation_result_id,
                    base_url,
                    key_fingerprint,
                    key,
                    body,
                    now,
                    now,
                    now,
                    state.value,
                    error,
                ),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE id = ?", (entry_id,)
            ).fetchone()
        return OutboxEntry._from_row(row)

    def claim(
        self,
        *,
        now: float,
        base_url: str,
        key_fingerprint: str | None,
        lease: float,
        limit: int = 1,
    ) -> list[Claim]:
        """Take the lease on up to ``limit`` due pending entries for this target.

        An entry is eligible when it is pending, due, addressed to ``base_url`` and
        was submitted under ``key_fingerprint`` or under no key, and nobody holds a
        live lease on it. Claiming counts the attempt.
        """
        token = uuid.uuid4().hex
        with self._transaction(durable=False) as conn:
            # Live leases of other hosts are skipped in SQL; those of this host
            # are checked for a dead owner here. The cursor is read lazily and
            # left as soon as enough rows are chosen, so a large backlog is not
            # scanned on every claim.
            cursor = conn.execute(
                "SELECT id, claimed_until, claim_pid, claim_host FROM outbox "
                "WHERE state = 'pending' AND next_attempt_at <= :now AND base_url = :url "
                "AND (key_fingerprint IS NULL OR key_fingerprint = :fp) "
                "AND (claimed_until IS NULL OR claimed_until <= :now OR claim_host = :host) "
                "ORDER BY next_attempt_at, created_at",
                {"now": now, "url": base_url, "fp": key_fingerprint, "host": self._host},
            )
            chosen: list[str] = []
            try:
                for entry_id, claimed_until, pid, host in cursor:
                    if claimed_until is not None and claimed_until > now:
                        lease_is_dead = (
                            host == self._host and pid != os.getpid() and not _pid_alive(pid)
                        )
                        if not lease_is_dead:
                            continue
                    chosen.append(entry_id)
                    if len(chosen) >= limit:
                        break
            finally:
                cursor.close()
            claims: list[Claim] = []
            for entry_id in chosen:
                row = conn.execute(
                    "UPDATE outbox SET claimed_until = ?, claim_token = ?, claim_pid = ?, "
                    "claim_host = ?, attempts = attempts + 1, last_attempt_at = ? "
                    f"WHERE id = ? RETURNING {_COLUMNS}, body",
                    (now + lease, token, os.getpid(), self._host, now, entry_id),
                ).fetchone()
                claims.append(Claim(OutboxEntry._from_row(row[:-1]), bytes(row[-1]), token))
        return claims

    def record_delivered(
        self, claim: Claim, *, now: float, status: int, message: str, keep: bool = True
    ) -> bool:
        """Mark a claimed entry delivered (or delete it when ``keep`` is false).

        Delivery is a fact, so this applies even if the lease was lost meanwhile;
        it only refuses to touch an entry that is no longer pending.
        """
        with self._transaction(durable=False) as conn:
            if keep:
                cursor = conn.execute(
                    "UPDATE outbox SET state = 'delivered', delivered_at = ?, last_status = ?, "
                    "last_error = ?, claimed_until = NULL, claim_token = NULL, claim_pid = NULL, "
                    "claim_host = NULL WHERE id = ? AND state = 'pending'",
                    (now, status, message or None, claim.entry.id),
                )
            else:
                cursor = conn.execute(
                    "DELETE FROM outbox WHERE id = ? AND state = 'pending'", (claim.entry.id,)
                )
            return cursor.rowcount == 1

    def record_retry(
        self, claim: Claim, *, deadline: float, error: str, status: int | None
    ) -> bool:
        """Release the lease and schedule the next attempt at ``deadline``."""
        with self._transaction(durable=False) as conn:
            cursor = conn.execute(
                "UPDATE outbox SET next_attempt_at = ?, last_error = ?, last_status = ?, "
                "claimed_until = NULL, claim_token = NULL, claim_pid = NULL, claim_host = NULL "
                "WHERE id = ? AND state = 'pending' AND claim_token = ?",
                (deadline, error, status, claim.entry.id, claim.token),
            )
            return cursor.rowcount == 1

    def record_failed(self, claim: Claim, *, error: str, status: int | None) -> bool:
        """Mark a claimed entry failed; it stays in the outbox with ``error``."""
        with self._transaction(durable=False) as conn:
            cursor = conn.execute(
                "UPDATE outbox SET state = 'failed', last_error = ?, last_status = ?, "
                "claimed_until = NULL, claim_token = NULL, claim_pid = NULL, claim_host = NULL "
                "WHERE id = ? AND state = 'pending' AND claim_token = ?",
                (error, status, claim.entry.id, claim.token),
            )
            return cursor.rowcount == 1

    def release(self, claim: Claim) -> None:
        """Give a lease back without an attempt outcome (the attempt is not counted)."""
        with self._transaction(durable=False) as conn:
            conn.execute(
                "UPDATE outbox SET attempts = max(attempts - 1, 0), claimed_until = NULL, "
                "claim_token = NULL, claim_pid = NULL, claim_host = NULL "
                "WHERE id = ? AND claim_token = ?",
                (claim.entry.id, claim.token),
            )

    def make_due(self, *, now: float, base_url: str | None = None) -> int:
        """Make every pending entry (for ``base_url``, or all) due now; returns how many."""
        with self._transaction() as conn:
            sql = (
                "UPDATE outbox SET next_attempt_at = ? "
                "WHERE state = 'pending' AND next_attempt_at > ?"
            )
            params: tuple[Any, ...] = (now, now)
            if base_url is not None:
                sql += " AND base_url = ?"
                params += (base_url,)
            return conn.execute(sql, params).rowcount

    def requeue_failed(
        self, *, now: float, ids: Collection[str] | None = None, base_url: str | None = None
    ) -> int:
        """Turn failed entries (all, those in ``ids``, or those for ``base_url``) back
        into due pending ones.

        The attempt count and the max-age window (``retry_since``) restart; the
        submission time and the Idempotency-Key stay.
        """
        with self._transaction() as conn:
            sql = (
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?, attempts = 0, "
                "retry_since = ? WHERE state = 'failed'"
            )
            params: tuple[Any, ...] = (now, now)
            if base_url is not None:
                sql += " AND base_url = ?"
                params += (base_url,)
            if ids is not None:
                id_list = list(ids)
                if not id_list:
                    return 0
                sql += f" AND id IN ({', '.join('?' * len(id_list))})"
                params += tuple(id_list)
            return conn.execute(sql, params).rowcount

    def purge(
        self,
        *,
        states: Collection[EntryState] = (EntryState.DELIVERED,),
        before: float | None = None,
    ) -> int:
        """Delete entries in ``states`` (older than ``before``, if given); returns how many.

        For delivered entries ``before`` compares with the delivery time, for the
        others with the submission time.
        """
        if not states:
            return 0
        with self._transaction() as conn:
            total = 0
            for state in set(states):
                sql = "DELETE FROM outbox WHERE state = ?"
                params: tuple[Any, ...] = (EntryState(state).value,)
                if before is not None:
                    column = "delivered_at" if state == EntryState.DELIVERED else "created_at"
                    sql += f" AND {column} < ?"
                    params += (before,)
                total += conn.execute(sql, params).rowcount
            return total

    # -- reading -----------------------------------------------------------

    def counts(self, *, base_url: str | None = None) -> dict[str, int]:
        """Number of entries per state (optionally for one target)."""
        result = {state.value: 0 for state in EntryState}
        sql = "SELECT state, count(*) FROM outbox"
        params: tuple[Any, ...] = ()
        if base_url is not None:
            sql += " WHERE base_url = ?"
            params = (base_url,)
        with self._transaction(write=False) as conn:
            for state, count in conn.execute(sql + " GROUP BY state", params):
                result[state] = count
        return result

    def pending_for(self, *, base_url: str, key_fingerprint: str | None) -> int:
        """Pending entries a sender for this target and key can deliver."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT count(*) FROM outbox WHERE state = 'pending' AND base_url = ? "
                "AND (key_fingerprint IS NULL OR key_fingerprint = ?)",
                (base_url, key_fingerprint),
            ).fetchone()
        return int(row[0])

    def pending_summary(
        self, *, base_url: str, key_fingerprint: str | None, now: float
    ) -> tuple[int, int, float | None]:
        """``(pending, in_flight, next_attempt_at)`` for one target.

        ``in_flight`` counts entries under a live lease; ``next_attempt_at`` is the
        earliest due time among the others (``None`` when there are none).
        """
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT count(*), coalesce(sum(claimed_until > :now), 0), "
                "min(CASE WHEN claimed_until IS NULL OR claimed_until <= :now "
                "THEN next_attempt_at END) FROM outbox "
                "WHERE state = 'pending' AND base_url = :url "
                "AND (key_fingerprint IS NULL OR key_fingerprint = :fp)",
                {"now": now, "url": base_url, "fp": key_fingerprint},
            ).fetchone()
        return int(row[0]), int(row[1]), None if row[2] is None else float(row[2])

    def next_due(self, *, base_url: str, key_fingerprint: str | None) -> float | None:
        """Earliest time a pending entry for this target may be attempted, if any."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT min(max(next_attempt_at, coalesce(claimed_until, 0))) FROM outbox "
                "WHERE state = 'pending' AND base_url = ? "
                "AND (key_fingerprint IS NULL OR key_fingerprint = ?)",
                (base_url, key_fingerprint),
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def entries(
        self, *, state: EntryState | None = None, limit: int | None = None
    ) -> list[OutboxEntry]:
        """Entries, newest first (optionally one state, at most ``limit``)."""
        sql = f"SELECT {_COLUMNS} FROM outbox"
        params: tuple[Any, ...] = ()
        if state is not None:
            sql += " WHERE state = ?"
            params = (EntryState(state).value,)
        sql += " ORDER BY created_at DESC, id"
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        with self._transaction(write=False) as conn:
            return [OutboxEntry._from_row(row) for row in conn.execute(sql, params)]

    def find(self, id_or_prefix: str) -> OutboxEntry:
        """The entry whose id (or unique id prefix, 4+ characters) matches.

        Raises:
            KeyError: No entry, or the prefix is ambiguous or too short; the
                message says which.
        """
        text = id_or_prefix.strip().lower()
        if len(text) < 4 or any(ch not in "0123456789abcdef" for ch in text):
            raise KeyError(
                f"{id_or_prefix!r} is not an outbox id (32 hex characters, or 4+ as a prefix)"
            )
        with self._transaction(write=False) as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE id >= ? AND id < ? ORDER BY id LIMIT 2",
                (text, text + "g"),
            ).fetchall()
        if not rows:
            raise KeyError(f"no outbox entry with id {id_or_prefix!r} in {self.path}")
        if len(rows) > 1:
            raise KeyError(
                f"id prefix {id_or_prefix!r} matches several entries; give more characters"
            )
        return OutboxEntry._from_row(rows[0])

    def body(self, entry_id: str) -> bytes:
        """The JSON body of an entry.

        Raises:
            KeyError: No such entry.
        """
        with self._transaction(write=False) as conn:
            row = conn.execute("SELECT body FROM outbox WHERE id = ?", (entry_id,)).fetchone()
        if row is None:
            raise KeyError(f"no outbox entry with id {entry_id!r} in {self.path}")
        return bytes(row[0])


_INSTANCES: weakref.WeakSet[Outbox] = weakref.WeakSet()


def _reset_locks_in_child() -> None:
    # A lock held by a parent thread at fork time would stay held forever in the
    # child; the child is single-threaded right now, so swapping them is safe.
    for outbox in list(_INSTANCES):
        outbox._lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_locks_in_child)
