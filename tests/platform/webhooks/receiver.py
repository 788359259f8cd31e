"""A real webhook receiver for tests: uvicorn on 127.0.0.1, a free port, this loop.

It verifies ``X-Bluejay-Signature`` on the raw body with the secrets it is
given (the way a customer's receiver would), records every request, and
answers from a script (status, headers, body, delay) so tests can make the
first attempts fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from roost.platform.webhooks import verify_signature


@dataclass
class Reply:
    """One scripted answer."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b'{"ok":true}'
    delay: float = 0.0


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    answered: int

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """Records requests; answers ``script`` in order, then ``default``."""

    def __init__(self) -> None:
        self.secrets: list[str] = []
        self.script: list[Reply] = []
        self.default = Reply()
        self.received: list[Received] = []
        self.url = ""
        self._arrived = asyncio.Condition()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        reply = self.script.pop(0) if self.script else self.default
        ok = bool(self.secrets) and verify_signature(
            self.secrets, body, headers.get("x-bluejay-signature", "")
        )
        # A receiver that checks signatures refuses forged ones.
        status = reply.status if ok else 401
        self.received.append(Received(scope["path"], headers, body, ok, status))
        async with self._arrived:
            self._arrived.notify_all()
        if reply.delay:
            await asyncio.sleep(reply.delay)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    async def wait_for(self, count: int, patience: float = 30.0) -> list[Received]:
        """Wait until ``count`` requests arrived (fails the test after ``patience`` s;
        a guard against hanging, not a speed check)."""
        async with asyncio.timeout(patience), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received


@contextlib.asynccontextmanager
async def running_receiver() -> AsyncIterator[Receiver]:
    """A :class:`Receiver` served by uvicorn on 127.0.0.1 and a free port."""
    receiver = Receiver()
    config = uvicorn.Config(
        receiver,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        access_log=False,
        # Scripted slow answers must not hold up the test's teardown.
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hooks/roost"
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task
