"""A scriptable platform stand-in for delivery tests: real HTTP/1.1 on loopback.

It speaks HTTP through h11 on an asyncio server running in a background thread,
so tests can make it do what a real platform and a real network do: answer any
status with any headers, stall, reset the connection, or be down (the port is
bound but not listening, so connections are refused) and come up later on the
same port.

Like Roost's platform it stores payloads by ``Idempotency-Key``: a repeated key
with the same body replays the first answer and stores nothing new; the same key
with a different body is a 409. Every raw request is recorded too, so tests can
report both "distinct payloads stored" and "requests received".
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import h11


@dataclass(frozen=True)
class Respond:
    """Answer with ``status``; a 2xx stores the payload."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""


@dataclass(frozen=True)
class Stall:
    """Read the request, optionally store it, then say nothing for ``seconds`` and close."""

    seconds: float
    store_first: bool = False


@dataclass(frozen=True)
class Reset:
    """Read the request, optionally store it, then reset the connection (TCP RST)."""

    store_first: bool = False


Action = Respond | Stall | Reset


@dataclass
class RecordedRequest:
    """One request as received."""

    received_at: float
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    action: str
    responded_at: float | None = None
    # Taken just before the response is written: the earliest moment the client
    # can have seen it (responded_at comes after the drain, when the client may
    # already have read it and acted).
    responding_at: float | None = None

    @property
    def idempotency_key(self) -> str | None:
        return self.headers.get("idempotency-key")


@dataclass
class _State:
    script: list[Action] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    payloads: dict[str, bytes] = field(default_factory=dict)


class PlatformServer:
    """The test platform; use as a context manager.

    Args:
        up: Start listening immediately. With ``False`` the port is reserved
            (bound, not listening: connections are refused) until :meth:`come_up`.
    """

    def __init__(self, *, up: bool = True) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._state = _State()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self.response_delay = 0.0
        """Seconds every response waits (after storing), to keep requests in flight."""
        self._tasks: set[asyncio.Task[None]] = set()
        if up:
            self.come_up()

    # -- control -----------------------------------------------------------

    def come_up(self) -> None:
        """Start accepting connections on the reserved port."""

        async def start() -> asyncio.Server:
            self._sock.listen(64)
            return await asyncio.start_server(self._handle, sock=self._sock)

        self._server = asyncio.run_coroutine_threadsafe(start(), self._loop).result(10)

    def script(self, actions: Iterable[Action]) -> None:
        """Queue actions for the next requests; after them every request gets a 200."""
        with self._lock:
            self._state.script.extend(actions)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._state.requests)

    @property
    def payloads(self) -> dict[str, bytes]:
        """Stored payloads by Idempotency-Key."""
        with self._lock:
            return dict(self._state.payloads)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._sock.close()

    def __enter__(self) -> PlatformServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- serving -----------------------------------------------------------

    def _next_action(self) -> Action:
        with self._lock:
            if self._state.script:
                return self._state.script.pop(0)
        return Respond(200)

    def _store(self, key: str | None, body: bytes) -> tuple[int, bytes]:
        """Apply the platform's idempotency rule; returns the status and body to send."""
        with self._lock:
            if key is None:
                self._state.payloads[f"no-key-{len(self._state.payloads)}"] = body
                return 200, b'{"status": "success"}'
            stored = self._state.payloads.get(key)
            if stored is None:
                self._state.payloads[key] = body
                return 200, b'{"status": "success", "message": "stored"}'
            if stored == body:
                return 200, b'{"status": "success", "message": "replayed"}'
            return 409, b'{"detail": "Idempotency-Key reused with a different body"}'

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = h11.Connection(h11.SERVER)
        # asyncio enables TCP_NODELAY only for sockets created with proto=IPPROTO_TCP;
        # without it every keep-alive response waits ~40 ms for a delayed ACK.
        writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                action = self._next_action()
                record = RecordedRequest(
                    received_at=time.time(),
                    method=request.method.decode(),
                    target=request.target.decode(),
                    headers=headers,
                    body=body,
                    action=type(action).__name__,
                )
                with self._lock:
                    self._state.requests.append(record)
                key = headers.get("idempotency-key")
                if isinstance(action, Stall):
                    if action.store_first:
                        self._store(key, body)
                    await asyncio.sleep(action.seconds)
                    return
                if isinstance(action, Reset):
                    if action.store_first:
                        self._store(key, body)
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                if 200 <= action.status < 300:
                    status, payload = self._store(key, body)
                    if self.response_delay:
                        await asyncio.sleep(self.response_delay)
                else:
                    status, payload = (
                        action.status,
                        action.body or json.dumps({"detail": f"scripted {action.status}"}).encode(),
                    )
                response_headers = [
                    ("content-type", "application/json"),
                    ("content-length", str(len(payload))),
                    *action.headers,
                ]
                record.responding_at = time.time()
                writer.write(
                    conn.send(h11.Response(status_code=status, headers=response_headers))
                    + conn.send(h11.Data(data=payload))
                    + conn.send(h11.EndOfMessage())
                )
                await writer.drain()
                record.responded_at = time.time()
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.CancelledError):
            return
        finally:
            self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                return None, b""
