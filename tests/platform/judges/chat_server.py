"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

A real TCP server speaking HTTP/1.1 (one request per connection), so the
judge's actual transport is exercised: connection, request encoding, response
parsing. What the "model" answers is a function of the request's ``<data>``
block, and every request is recorded so tests can count what was asked.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Answer = Callable[[dict[str, Any]], str]
"""From the decoded ``<data>`` object to the assistant message's content."""


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def data(self) -> dict[str, Any]:
        """The JSON inside the user message's ``<data>...</data>`` block."""
        content: str = self.body["messages"][-1]["content"]
        assert content.startswith("<data>") and content.endswith("</data>"), content
        decoded: dict[str, Any] = json.loads(content[len("<data>") : -len("</data>")])
        return decoded


@dataclass
class FakeChatServer:
    """``async with FakeChatServer(answer) as server:`` serves ``server.url``."""

    answer: Answer
    failing: bool = False
    """Answer HTTP 500 instead (a model server that is down)."""
    received: list[Received] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None

    @property
    def chat_requests(self) -> int:
        """Chat completions asked so far."""
        return sum(1 for item in self.received if item.path == "/v1/chat/completions")

    async def __aenter__(self) -> FakeChatServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            request_line, *header_lines = head.split("\r\n")
            method, path, _ = request_line.split(" ", 2)
            headers = {}
            for line in header_lines:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            raw = await reader.readexactly(int(headers.get("content-length", "0")))
            body = json.loads(raw) if raw else {}
            item = Received(method, path, headers, body)
            self.received.append(item)
            if method != "POST" or path != "/v1/chat/completions":
                status, payload = "404 Not Found", {"error": {"message": "not found"}}
            elif self.failing:
                status, payload = "500 Internal Server Error", {"error": {"message": "down"}}
            else:
                status, payload = "200 OK", completion(self.answer(item.data))
            encoded = json.dumps(payload).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(encoded)}\r\nConnection: close\r\n\r\n".encode()
                + encoded
            )
            await writer.drain()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass


def completion(content: str | None) -> dict[str, Any]:
    """A chat-completions response body whose first choice says ``content``."""
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
    }


def verdict(passed: bool, score: float, reason: str) -> str:
    """The JSON verdict the judge asks the model for."""
    return json.dumps({"pass": passed, "score": score, "reason": reason})
