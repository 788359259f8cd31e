"""The ingest writer in a process of its own, beside the HTTP server.

Why a process: in one CPython process the HTTP side (parsing, validation,
answering) and the writer (deciding a group, building its rows, binding them)
take turns on one interpreter lock, so ``roost serve`` used one core however
many the machine had. With the writer in a child process the two stages run
on two cores and overlap: while the child commits one group, the server
parses the next.

What crosses the process boundary is what the writer needs and no more. The
server authenticates and validates the request, turns it into the values of
its rows (:func:`~roost.platform.ingest_sql.prepare_update`) and hashes the
body, all work the writer would otherwise do; the child runs the same
:class:`~roost.platform.ingest.IngestWriter` (on SQLite with its own blocking
connection, since the child does nothing else) and sends back each request's
outcome only after its transaction has committed. A 200 therefore still means
"durably stored", exactly as in-process.

The channel is a Unix socket pair made by the server and inherited by the
child; messages are tagged msgpack arrays (:mod:`msgspec` structs) behind a
4-byte length.
multiprocessing's queues would pickle each message and feed them through a
helper thread, which is the cost this module exists to remove.

Failure handling:

- the child dies (killed, out of memory): every request it had not answered
  gets 503 "storage is unavailable; retry later" (a 200 is never sent for
  data that might not be stored), new requests get 503 until a new child is
  ready, and one is started again with backoff. A transaction the child had
  not committed is rolled back by the database; one it had committed but not
  yet answered is stored, and the client's retry is deduplicated by its
  ``Idempotency-Key`` (and tool calls by ``call_id``);
- the server stops: it stops taking requests, waits until the child has
  answered the ones in flight, then closes the socket; the child writes what
  it still holds and exits. The child also exits when the server dies (the
  socket closes), and ignores Ctrl-C so that it outlives the server's drain.

Example:
    >>> from roost.platform.settings import PlatformSettings
    >>> writer = IngestProcess(PlatformSettings(database_url="sqlite:////tmp/doc.sqlite3"))
    >>> writer.running
    False
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import hashlib
import json
import logging
import signal
import socket
import sqlite3
import struct
import sys
from collections.abc import Callable, Sequence
from typing import Any, cast

import msgspec

from roost.platform.auth import Caller
from roost.platform.ingest import IngestOutcome, IngestWriter, request_fingerprint_for
from roost.platform.ingest_sql import PreparedUpdate
from roost.platform.settings import Limits, PlatformSettings
from roost.platform.storage import Database

__all__ = ["IngestProcess", "child_main"]

log = logging.getLogger(__name__)


class _Request(msgspec.Struct, array_like=True, tag=1):
    """Server -> child: one validated request, as rows."""

    sequence: int
    result_id: int
    org_id: int
    org_name: str
    key_id: str
    idempotency_key: str | None
    source: str | None
    body_sha256: str
    fingerprint: str
    update: PreparedUpdate


class _Outcome(msgspec.Struct, array_like=True, tag=2):
    """Child -> server: a request's answer, sent after its transaction committed."""

    sequence: int
    status_code: int
    body: bytes
    replayed: bool


class _Committed(msgspec.Struct, array_like=True, tag=3):
    """Child -> server: results that received data and now have lifecycle work."""

    result_ids: list[int]


class _Ready(msgspec.Struct, array_like=True, tag=4):
    """Child -> server: the writer is running."""


class _Fatal(msgspec.Struct, array_like=True, tag=5):
    """Child -> server: why the child cannot run."""

    reason: str


_Message = _Request | _Outcome | _Committed | _Ready | _Fatal

_HEADER = struct.Struct(">I")
#: Longest message accepted on the channel (a request body is capped far lower).
MAX_MESSAGE_BYTES = 1 << 30

_UNAVAILABLE = IngestOutcome(503, b'{"detail":"storage is unavailable; retry later"}')


class _Channel(asyncio.Protocol):
    """Length-prefixed msgpack messages over a stream, both directions.

    Messages sent in one turn of the event loop leave in one write: a group's
    31 outcomes cost one system call, not 31.
    """

    def __init__(
        self, on_message: Callable[[_Message], None], on_closed: Callable[[], None]
    ) -> None:
        self._on_message = on_message
        self._on_closed = on_closed
        self._buffer = bytearray()
        self._outgoing: list[bytes] = []
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(_Message)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        end = len(buffer)
        while end - start >= 4:
            (size,) = _HEADER.unpack_from(buffer, start)
            if size > MAX_MESSAGE_BYTES:
                raise ValueError(f"ingest channel message of {size} bytes")
            if end - start - 4 < size:
                break
            message = self._decoder.decode(memoryview(buffer)[start + 4 : start + 4 + size])
            start += 4 + size
            self._on_message(message)
        del buffer[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._on_closed()

    def send(self, message: _Message) -> None:
        if self.transport is None:
            return
        payload = self._encoder.encode(message)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(_HEADER.pack(len(payload)))
        self._outgoing.append(payload)

    def _flush(self) -> None:
        chunks, self._outgoing = self._outgoing, []
        if self.transport is not None and chunks:
            self.transport.write(b"".join(chunks))


class IngestProcess:
    """:class:`~roost.platform.ingest.IngestWriter`'s interface, served by a child process.

    Args:
        settings: The server's settings (database URL, limits, group size).
        on_committed: Called with the ids of results that received data and
            now have lifecycle work, after the child committed them.
        start_timeout: Seconds a new child may take to be ready.
    """

    def __init__(
        self,
        settings: PlatformSettings,
        *,
        on_committed: Callable[[Sequence[int]], None] | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self._settings = settings
        self._on_committed = on_committed
        self._start_timeout = start_timeout
        self._pending: dict[int, asyncio.Future[IngestOutcome]] = {}
        self._sequence = 0
        self._channel: _Channel | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._ready: asyncio.Future[None] | None = None
        self._restart: asyncio.Task[None] | None = None
        self._drained: asyncio.Event = asyncio.Event()
        self._started = False
        self.running = False
        self.restarts = 0

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs."""
        return None if self._process is None else self._process.pid

    async def start(self) -> None:
        """Start the child and wait until it is ready.

        Raises:
            RuntimeError: the child could not start (its reason included).
        """
        self.running = True
        try:
            await self._spawn()
        except BaseException:
            self.running = False
            raise
        self._started = True

    async def stop(self, *, drain_seconds: float = 60.0) -> None:
        """Let the child answer what is in flight (up to ``drain_seconds``), then stop it."""
        self.running = False
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
        if self._pending:
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), drain_seconds)
            except TimeoutError:
                log.error(
                    "the ingest writer process did not answer %d requests in %.0f s; they get 503",
                    len(self._pending),
                    drain_seconds,
                )
        channel, self._channel = self._channel, None
        if channel is not None and channel.transport is not None:
            channel.transport.close()
        await self._reap(grace=30.0)

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
        """Send one validated request to the child; wait for its committed outcome."""
        channel = self._channel
        if not self.running or channel is None:
            return _UNAVAILABLE
        self._sequence += 1
        sequence = self._sequence
        future: asyncio.Future[IngestOutcome] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        channel.send(
            _Request(
                sequence=sequence,
                result_id=result_id,
                org_id=caller.org_id,
                org_name=caller.org_name,
                key_id=caller.key_id,
                idempotency_key=idempotency_key,
                source=source,
                # Hashed here: this process has spare time, the writer has none.
                body_sha256=hashlib.sha256(body).hexdigest(),
                fingerprint=request_fingerprint_for(idempotency_key, body),
                update=update,
            )
        )
        # shield: a client that disconnects must not drop its answer slot;
        # the child stores the data anyway and a retry replays the outcome.
        return await asyncio.shield(future)

    # --- the child's lifetime ---------------------------------------------

    async def _spawn(self) -> None:
        loop = asyncio.get_running_loop()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        config = {
            "database_url": self._settings.database_url,
            "limits": dataclasses.asdict(self._settings.limits),
            "group_commit_max": self._settings.group_commit_max,
            "ingest_lanes": self._settings.ingest_lanes,
        }
        try:
            # The URL may hold a password: it goes through a pipe, not argv.
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                "from roost.platform.ingest_process import child_main; child_main()",
                str(theirs.fileno()),
                stdin=asyncio.subprocess.PIPE,
                pass_fds=[theirs.fileno()],
            )
        finally:
            theirs.close()
        self._process = process
        assert process.stdin is not None
        process.stdin.write(json.dumps(config).encode())
        process.stdin.close()
        self._ready = loop.create_future()
        channel = _Channel(self._on_message, self._on_closed)
        await loop.create_unix_connection(lambda: channel, sock=ours)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), self._start_timeout)
        except BaseException:
            if channel.transport is not None:
                channel.transport.close()
            await self._reap(grace=5.0)
            raise
        # Requests go to the child only once its writer runs.
        if channel.transport is not None:
            self._channel = channel

    def _on_message(self, message: _Message) -> None:
        if isinstance(message, _Outcome):
            future = self._pending.pop(message.sequence, None)
            if future is not None and not future.done():
                future.set_result(
                    IngestOutcome(message.status_code, message.body, message.replayed)
                )
            if not self._pending:
                self._drained.set()
        elif isinstance(message, _Committed):
            if self._on_committed is not None:
                self._on_committed(message.result_ids)
        elif isinstance(message, _Ready):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(message, _Fatal):
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(
                    RuntimeError(f"the ingest writer process cannot start: {message.reason}")
                )
            else:
                log.error("ingest writer process: %s", message.reason)

    def _on_closed(self) -> None:
        self._channel = None
        pending, self._pending = self._pending, {}
        if pending:
            log.error(
                "the ingest writer process stopped with %d requests unanswered; "
                "they get 503 and their clients retry",
                len(pending),
            )
        for future in pending.values():
            if not future.done():
                future.set_result(_UNAVAILABLE)
        self._drained.set()
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                RuntimeError("the ingest writer process exited before it was ready")
            )
        elif self.running and self._started and self._restart is None:
            self._restart = asyncio.get_running_loop().create_task(self._respawn())

    async def _respawn(self) -> None:
        delay = 0.25
        try:
            await self._reap(grace=5.0)
            while self.running:
                try:
                    await self._spawn()
                except Exception as exc:
                    log.error("restarting the ingest writer process failed: %s", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 10.0)
                    continue
                self.restarts += 1
                log.warning("the ingest writer process was restarted")
                return
        finally:
            self._restart = None

    async def _reap(self, *, grace: float) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            log.error("the ingest writer process did not exit; killing it")
            process.kill()
            await process.wait()


# --- the child ------------------------------------------------------------


async def _serve_child(fd: int, config: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    limits = Limits(**config["limits"])
    writer: IngestWriter | None = None

    def on_closed() -> None:
        if not closed.done():
            closed.set_result(None)

    def reply(sequence: int, future: asyncio.Future[IngestOutcome]) -> None:
        outcome = future.result()
        channel.send(_Outcome(sequence, outcome.status_code, outcome.body, outcome.replayed))

    def on_message(message: _Message) -> None:
        if not isinstance(message, _Request):
            return
        assert writer is not None
        sequence = message.sequence
        future = writer.enqueue(
            Caller(org_id=message.org_id, org_name=message.org_name, key_id=message.key_id),
            message.update,
            message.result_id,
            body_sha256=message.body_sha256,
            fingerprint=message.fingerprint,
            idempotency_key=message.idempotency_key,
            source=message.source,
        )
        future.add_done_callback(lambda done: reply(sequence, done))

    channel = _Channel(on_message, on_closed)
    await loop.create_unix_connection(lambda: channel, sock=socket.socket(fileno=fd))
    db: Database | None = None
    connection: sqlite3.Connection | None = None
    try:
        db = Database(config["database_url"])
        connection = db.connect_sqlite_writer() if db.is_sqlite else None
        writer = IngestWriter(
            db,
            limits,
            lanes=1 if db.is_sqlite else config["ingest_lanes"],
            max_group=config["group_commit_max"],
            on_committed=lambda ids: channel.send(_Committed(list(ids))),
            sqlite_connection=connection,
        )
        await writer.start()
    except Exception as exc:
        channel.send(_Fatal(f"{type(exc).__name__}: {exc}"))
        await _flushed(channel)
        if db is not None:
            await db.dispose()
        raise SystemExit(1) from exc
    try:
        # Long-lived objects (SQLAlchemy's metadata, the compiled structs)
        # leave the collector's view; requests allocate many short-lived ones.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        channel.send(_Ready())
        await closed
        await writer.stop()
    finally:
        if connection is not None:
            connection.close()
        await db.dispose()


async def _flushed(channel: _Channel) -> None:
    # Let the scheduled flush run, then wait for the bytes to leave.
    await asyncio.sleep(0)
    transport = channel.transport
    if transport is not None:
        transport.close()
        for _ in range(100):
            if channel.transport is None:
                break
            await asyncio.sleep(0.01)


def child_main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the child process.

    Its one argument is the number of the socket's file descriptor, inherited
    from the server; the configuration (JSON) arrives on stdin.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    # Ctrl-C reaches the whole process group; the server drains through the
    # child, which exits when the server closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    config = json.loads(sys.stdin.buffer.read())
    logging.basicConfig(level=logging.WARNING, format="roost ingest writer: %(message)s")
    asyncio.run(_serve_child(int(args[0]), config))
