"""Serve a CHIRP v2 agent as an ASGI WebSocket endpoint (Starlette, FastAPI, uvicorn).

For agents that already run a web app, :class:`ChirpASGIApp` is a plain ASGI
application handling one CHIRP call per WebSocket connection, with the same
behaviour as :func:`roost.chirp.serve`: Basic auth checked before accepting
(HTTP 401 with ``WWW-Authenticate`` through the ASGI WebSocket Denial Response
extension, which uvicorn supports; servers without it answer 403), a
:class:`roost.CallRecorder` entered at accept and exited after the close,
malformed frames answered with ``session.error``.

It is raw ASGI, so it needs no framework at all; :func:`chirp_route` wraps it in
a Starlette ``WebSocketRoute`` and is the only place Starlette is imported.

Example:
    >>> from roost.chirp import CallerAudio, ChirpSession
    >>> from roost.chirp.asgi import chirp_route
    >>> async def echo(call: ChirpSession) -> None:
    ...     async for item in call:
    ...         if isinstance(item, CallerAudio):
    ...             call.send_audio(item.pcm)
    >>> from fastapi import FastAPI
    >>> app = FastAPI()
    >>> app.router.routes.append(chirp_route("/voice", echo, auth=("bluejay", "s3cret")))
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from roost.chirp.auth import BasicAuth
from roost.chirp.session import ChirpHandler, RecorderFactory, default_recorder, run_agent_call
from roost.media.ticker import MediaTicker

if TYPE_CHECKING:
    from starlette.routing import WebSocketRoute

__all__ = ["ChirpASGIApp", "chirp_route"]

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_DENIAL_EXTENSION = "websocket.http.response"


class _AsgiTransport:
    """:class:`~roost.chirp.session.ChirpTransport` over ASGI WebSocket messages."""

    __slots__ = ("_close_code", "_closed", "_receive", "_send")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self._closed = False
        self._close_code: int | None = None

    async def receive(self) -> str | bytes | None:
        while not self._closed:
            message = await self._receive()
            kind = message.get("type")
            if kind == "websocket.receive":
                data = message.get("bytes")
                if data is not None:
                    return bytes(data)
                text = message.get("text")
                if text is not None:
                    return str(text)
            elif kind == "websocket.disconnect":
                self._closed = True
                self._close_code = int(message.get("code", 1005))
        return None

    async def send(self, message: str | bytes) -> None:
        if self._closed:
            raise ConnectionError("the WebSocket is closed")
        event: Message = {"type": "websocket.send"}
        event["bytes" if isinstance(message, bytes) else "text"] = message
        try:
            await self._send(event)
        except (OSError, RuntimeError) as exc:
            # Servers raise these for a send after the client went away.
            self._closed = True
            raise ConnectionError(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        if self._closed:
            return
        self._closed = True
        self._close_code = code
        try:
            await self._send({"type": "websocket.close", "code": code, "reason": reason})
        except (OSError, RuntimeError):
            pass

    @property
    def close_code(self) -> int | None:
        return self._close_code if self._closed else None


class ChirpASGIApp:
    """ASGI application serving ``handler`` for CHIRP calls.

    Args:
        handler: ``async def handler(call: ChirpSession)``, run once per call.
        auth: Expected Basic-auth credentials; ``None`` accepts every caller.
        recorder_factory: Makes each call's recorder; ``None`` runs without one.
        lead_ms: How far ahead of real time agent audio may be sent.
        ticker: Media clock; the running loop's shared ticker by default.
    """

    def __init__(
        self,
        handler: ChirpHandler,
        *,
        auth: BasicAuth | tuple[str, str] | None = None,
        recorder_factory: RecorderFactory | None = default_recorder,
        lead_ms: float = 200.0,
        ticker: MediaTicker | None = None,
    ) -> None:
        self.handler = handler
        self.auth = BasicAuth(*auth) if isinstance(auth, tuple) else auth
        self.recorder_factory = recorder_factory
        self.lead_ms = lead_ms
        self.ticker = ticker

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "http":
            await _plain_response(send, 426, b"this is a CHIRP WebSocket endpoint\n", upgrade=True)
            return
        if kind != "websocket":
            return
        message = await receive()
        if message.get("type") != "websocket.connect":
            return
        headers = _headers(scope)
        if self.auth is not None and not self.auth.check(headers.get("authorization")):
            await self._deny(scope, send)
            return
        await send({"type": "websocket.accept"})
        await run_agent_call(
            _AsgiTransport(receive, send),
            self.handler,
            headers=headers,
            id_carrier=scope,
            path=str(scope.get("path", "/")),
            recorder_factory=self.recorder_factory,
            lead_ms=self.lead_ms,
            ticker=self.ticker,
        )

    async def _deny(self, scope: Scope, send: Send) -> None:
        assert self.auth is not None
        if _DENIAL_EXTENSION in scope.get("extensions", {}):
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [
                        (b"www-authenticate", self.auth.challenge.encode()),
                        (b"content-type", b"text/plain; charset=utf-8"),
                    ],
                }
            )
            await send(
                {"type": "websocket.http.response.body", "body": b"authentication required\n"}
            )
        else:
            # Without the extension the only refusal ASGI offers is a 403.
            await send({"type": "websocket.close", "code": 1008})


def chirp_route(
    path: str,
    handler: ChirpHandler,
    *,
    auth: BasicAuth | tuple[str, str] | None = None,
    recorder_factory: RecorderFactory | None = default_recorder,
    lead_ms: float = 200.0,
) -> WebSocketRoute:
    """A Starlette/FastAPI WebSocket route serving ``handler`` at ``path``.

    Add it with ``app.router.routes.append(chirp_route("/voice", handler))``.
    """
    from starlette.routing import WebSocketRoute

    app = ChirpASGIApp(handler, auth=auth, recorder_factory=recorder_factory, lead_ms=lead_ms)
    return WebSocketRoute(path, app)


def _headers(scope: Scope) -> dict[str, str]:
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = bytes(raw_name).decode("latin-1").lower()
        value = bytes(raw_value).decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _plain_response(send: Send, status: int, body: bytes, *, upgrade: bool = False) -> None:
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    if upgrade:
        headers.append((b"upgrade", b"websocket"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
