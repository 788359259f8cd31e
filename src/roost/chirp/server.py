"""Serve a CHIRP v2 agent on the ``websockets`` asyncio server.

:func:`serve` is what an agent developer puts in front of their audio pipeline
when they do not already run a web framework. For each call it:

1. checks the request path and Basic auth *before* upgrading (HTTP 404, or 401
   with ``WWW-Authenticate``; the comparison is constant-time);
2. reads ``X-Simulation-Result-Id`` case-insensitively and enters a
   :class:`roost.CallRecorder` for it as the upgrade is accepted, current for
   the handler through contextvars (without the header the call still works
   and nothing is delivered);
3. runs the handler with a :class:`~roost.chirp.session.ChirpSession`;
4. closes the call and exits the recorder, which starts delivery.

Compression is off by default: PCM barely compresses and permessage-deflate
would cost CPU on every frame.

Example:
    >>> import asyncio
    >>> from roost.chirp import CallerAudio, ChirpSession, serve
    >>> async def echo(call: ChirpSession) -> None:
    ...     async for item in call:
    ...         if isinstance(item, CallerAudio):
    ...             call.send_audio(item.pcm)
    >>> async def main() -> bool:
    ...     async with await serve(echo, port=0, recorder_factory=None) as server:
    ...         return server.port > 0
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as ws_serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.protocol import State

from roost.chirp.auth import BasicAuth
from roost.chirp.session import (
    ChirpHandler,
    ChirpSession,
    RecorderFactory,
    default_recorder,
    run_agent_call,
)
from roost.media.ticker import MediaTicker

__all__ = ["ChirpServer", "serve"]

logger = logging.getLogger(__name__)


class _WebsocketsTransport:
    """:class:`~roost.chirp.session.ChirpTransport` over a websockets connection."""

    __slots__ = ("_connection",)

    def __init__(self, connection: ServerConnection) -> None:
        self._connection = connection

    async def receive(self) -> str | bytes | None:
        try:
            return await self._connection.recv()
        except ConnectionClosed:
            return None

    async def send(self, message: str | bytes) -> None:
        connection = self._connection
        protocol = connection.protocol
        # Hot path, one call per 20 ms frame per call: while the socket takes
        # writes without pushing back, hand the frame to websockets' sans-I/O
        # protocol and flush it, skipping send()'s per-message context manager
        # and drain (measured: about 8% less CPU for an echo agent at 300 calls).
        # Backpressure and closing take websockets' own path.
        if protocol.state is State.OPEN and not connection.paused:
            if isinstance(message, bytes):
                protocol.send_binary(message)
            else:
                protocol.send_text(message.encode())
            connection.send_data()
            return
        try:
            await connection.send(message)
        except ConnectionClosed as exc:
            raise ConnectionError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        await self._connection.close(code, reason)

    @property
    def close_code(self) -> int | None:
        return self._connection.close_code


class ChirpServer:
    """A running CHIRP agent server; use as an async context manager.

    Attributes:
        sessions: Calls in progress.
    """

    def __init__(self, server: Server) -> None:
        self._server = server
        self.sessions: set[ChirpSession] = set()

    @property
    def port(self) -> int:
        """The TCP port listened on (useful with ``port=0``)."""
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def host(self) -> str:
        """The address listened on."""
        return str(self._server.sockets[0].getsockname()[0])

    def url(self, path: str = "/") -> str:
        """``ws://`` URL of this server for ``path``."""
        return f"ws://{self.host}:{self.port}{path}"

    def close(self) -> None:
        """Stop accepting calls and close the ones in progress."""
        self._server.close()

    async def wait_closed(self) -> None:
        """Wait until the server and every call have closed."""
        await self._server.wait_closed()

    async def serve_forever(self) -> None:
        """Serve until cancelled."""
        await self._server.serve_forever()

    async def __aenter__(self) -> ChirpServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()


async def serve(
    handler: ChirpHandler,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    path: str | None = None,
    auth: BasicAuth | tuple[str, str] | None = None,
    recorder_factory: RecorderFactory | None = default_recorder,
    lead_ms: float = 200.0,
    max_message_size: int = 2**20,
    ticker: MediaTicker | None = None,
    **server_options: Any,
) -> ChirpServer:
    """Start serving ``handler`` for CHIRP calls on ``host:port``.

    Args:
        handler: ``async def handler(call: ChirpSession)``, run once per call.
        host: Address to listen on.
        port: TCP port; 0 picks a free one (see :attr:`ChirpServer.port`).
        path: Accept upgrades only on this path (any path when ``None``).
        auth: Expected Basic-auth credentials; ``None`` accepts every caller.
        recorder_factory: Makes each call's recorder from its simulation result
            id; ``None`` runs calls without one.
        lead_ms: How far ahead of real time agent audio may be sent.
        max_message_size: Largest message accepted from the caller.
        ticker: Media clock; the running loop's shared ticker by default.
        **server_options: Passed to :func:`websockets.asyncio.server.serve`
            (``ssl``, ``ping_interval``, ``compression``...).
    """
    checker = BasicAuth(*auth) if isinstance(auth, tuple) else auth
    chirp_server: ChirpServer | None = None

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        request_path = request.path.partition("?")[0]
        if path is not None and request_path != path:
            return connection.respond(
                HTTPStatus.NOT_FOUND, f"no CHIRP endpoint at {request_path}\n"
            )
        if checker is not None and not checker.check(request.headers.get("Authorization")):
            response = connection.respond(HTTPStatus.UNAUTHORIZED, "authentication required\n")
            response.headers["WWW-Authenticate"] = checker.challenge
            return response
        return None

    async def on_connection(connection: ServerConnection) -> None:
        owner = chirp_server
        assert owner is not None
        request = connection.request
        assert request is not None
        headers = _lower_headers(request.headers.raw_items())
        session_holder: list[ChirpSession] = []

        async def tracked(call: ChirpSession) -> None:
            session_holder.append(call)
            owner.sessions.add(call)
            await handler(call)

        try:
            await run_agent_call(
                _WebsocketsTransport(connection),
                tracked,
                headers=headers,
                id_carrier=request.headers,
                path=request.path,
                recorder_factory=recorder_factory,
                lead_ms=lead_ms,
                ticker=ticker,
            )
        finally:
            for call in session_holder:
                owner.sessions.discard(call)

    server_options.setdefault("compression", None)
    server_options.setdefault("max_size", max_message_size)
    server = await ws_serve(
        on_connection, host, port, process_request=process_request, **server_options
    )
    chirp_server = ChirpServer(server)
    return chirp_server


def _lower_headers(items: Any) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in items:
        key = str(name).lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else str(value)
    return headers
