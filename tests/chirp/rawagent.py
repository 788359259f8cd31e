"""A CHIRP agent written directly on ``websockets``, independent of roost.chirp's helpers.

Tests script its behaviour with a handler coroutine; it records what the caller
sent with loop timestamps, so the caller's timing can be checked against it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

ENVELOPE_KEYS = {"type", "id", "ts_ms", "data"}
ERROR_CODES = {"INVALID_MESSAGE", "MISSING_FIELD", "INVALID_AUDIO_FRAME", "INTERNAL_ERROR"}


@dataclass
class Received:
    """One message from the caller, as the agent saw it."""

    at: float
    binary: bool
    payload: bytes | str

    @property
    def event(self) -> dict[str, Any]:
        assert isinstance(self.payload, str)
        parsed: dict[str, Any] = json.loads(self.payload)
        return parsed


@dataclass
class Call:
    """One call as the raw agent saw it."""

    connection: ServerConnection
    headers: Headers
    received: list[Received] = field(default_factory=list)
    closed_at: float | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def frames(self) -> list[Received]:
        return [m for m in self.received if m.binary]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        events = [m.event for m in self.received if not m.binary]
        return [e for e in events if kind is None or e["type"] == kind]

    async def send_event(self, kind: str, data: dict[str, Any], **extra: Any) -> float:
        await self.connection.send(
            json.dumps({"type": kind, "id": "agent-1", "ts_ms": 1, "data": data, **extra})
        )
        return self.loop.time()

    async def receive(self) -> Received | None:
        try:
            message = await self.connection.recv()
        except ConnectionClosed:
            self.closed_at = self.loop.time()
            return None
        item = Received(self.loop.time(), isinstance(message, bytes), message)
        self.received.append(item)
        return item

    async def receive_until(self, predicate: Callable[[Received], bool]) -> Received | None:
        while True:
            item = await self.receive()
            if item is None or predicate(item):
                return item

    async def drain(self) -> None:
        while await self.receive() is not None:
            pass


Script = Callable[[Call], Awaitable[None]]


@dataclass
class RawAgent:
    url: str
    calls: list[Call]
    requests: list[Request]


def check_spec_envelope(event: dict[str, Any]) -> None:
    """Every text frame must be a full envelope (§4.5)."""
    assert set(event) == ENVELOPE_KEYS, event
    assert isinstance(event["id"], str) and event["id"]
    assert isinstance(event["ts_ms"], int) and event["ts_ms"] > 1_600_000_000_000
    assert isinstance(event["data"], dict)
    if event["type"] == "session.error":
        assert event["data"]["code"] in ERROR_CODES
        assert isinstance(event["data"]["message"], str) and event["data"]["message"]


@asynccontextmanager
async def raw_agent(
    script: Script,
    *,
    status: int | None = None,
    **options: Any,
) -> AsyncIterator[RawAgent]:
    """Run ``script`` for every call; answer every upgrade with ``status`` instead, if given."""
    calls: list[Call] = []
    requests: list[Request] = []

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        requests.append(request)
        if status is not None:
            return connection.respond(HTTPStatus(status), "refused\n")
        return None

    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        call = Call(connection, connection.request.headers)
        calls.append(call)
        await script(call)

    options.setdefault("compression", None)
    async with serve(handler, "127.0.0.1", 0, process_request=process_request, **options) as server:
        port = server.sockets[0].getsockname()[1]
        yield RawAgent(f"ws://127.0.0.1:{port}/voice", calls, requests)


async def until(predicate: Callable[[], object], within: float = 10.0) -> None:
    """Wait until ``predicate()`` is true (state owned by other tasks, polled)."""
    async with asyncio.timeout(within):
        while not predicate():  # noqa: ASYNC110 - the state lives in other objects, no event to wait on
            await asyncio.sleep(0.005)
