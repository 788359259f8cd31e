"""ASGI middleware: authentication first, then a streaming body-size cap.

Both are plain ASGI (not Starlette's ``BaseHTTPMiddleware``) so they cost a
function call per request and never buffer a body.

:class:`AuthMiddleware` authenticates every request under ``/v1/`` from its
``X-API-Key`` header before anything reads the body, and answers 401 with a
JSON ``detail`` otherwise. The caller is stored in ``scope["state"]["caller"]``
for :func:`roost.platform.auth.current_org`.

:class:`BodyLimitMiddleware` answers 413 when ``Content-Length`` announces a
body over the limit (without reading it) and, for bodies without a length
(chunked), counts bytes as the application receives them and aborts with 413
as soon as the limit is crossed, so a client can never make the server hold
more than the limit in memory.

Example:
    >>> from starlette.applications import Starlette
    >>> app = BodyLimitMiddleware(Starlette(), max_bytes=1024)
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from roost.platform.auth import API_KEY_HEADER, Authenticator, AuthError
from roost.platform.storage import dumps_json

__all__ = ["AuthMiddleware", "BodyLimitMiddleware", "BodyTooLarge", "send_json"]

log = logging.getLogger(__name__)

_API_KEY = API_KEY_HEADER.lower().encode()


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a complete JSON response on a raw ASGI channel."""
    body = dumps_json(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class AuthMiddleware:
    """Require a valid ``X-API-Key`` on every path under ``prefix``."""

    def __init__(self, app: ASGIApp, *, prefix: str = "/v1/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        presented: str | None = None
        for name, value in scope["headers"]:
            if name == _API_KEY:
                presented = value.decode("latin-1")
                break
        authenticator: Authenticator = scope["app"].state.authenticator
        try:
            caller = await authenticator.authenticate(presented)
        except AuthError as exc:
            await send_json(send, 401, {"detail": str(exc)})
            return
        scope.setdefault("state", {})["caller"] = caller
        await self.app(scope, receive, send)


class BodyTooLarge(HTTPException):
    """Raised inside ``receive`` once a body crosses the limit (answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=413,
            detail=f"request body is larger than the limit of {limit} bytes (ROOST_MAX_BODY_BYTES)",
        )


class BodyLimitMiddleware:
    """Cap request bodies at ``max_bytes``; 413 otherwise."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    await send_json(send, 400, {"detail": "malformed Content-Length header"})
                    return
                if announced > limit:
                    await send_json(send, 413, {"detail": BodyTooLarge(limit).detail})
                    return
                break
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await send_json(send, 413, {"detail": exc.detail})
