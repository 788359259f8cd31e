"""The agent helper as a FastAPI/Starlette route, served by a real uvicorn on loopback."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from roost.caller import AgentAudio, CallStatus
from roost.chirp import CallerAudio, ChirpASGIApp, ChirpCaller, ChirpSession, chirp_route
from tests.chirp.rawagent import check_spec_envelope, until
from tests.chirp.test_server import ListSink, recorder_into


@asynccontextmanager
async def uvicorn_app(app: Any) -> AsyncIterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def echo(call: ChirpSession) -> None:
    async for item in call:
        if isinstance(item, CallerAudio):
            call.send_audio(item.pcm)


async def test_our_caller_talks_to_a_fastapi_route() -> None:
    app = FastAPI()
    app.router.routes.append(
        chirp_route("/voice", echo, auth=("bluejay", "pw"), recorder_factory=None)
    )
    async with uvicorn_app(app) as host:
        chirp = ChirpCaller(f"ws://{host}/voice", username="bluejay", password="pw")
        await chirp.connect()
        audio: list[bytes] = []

        async def listen() -> None:
            async for item in chirp.agent_stream():
                if isinstance(item, AgentAudio):
                    audio.append(item.pcm)

        listener = asyncio.create_task(listen())
        pcm = bytes(range(256)) * 10
        await chirp.play(pcm)
        await until(lambda: sum(map(len, audio)) >= len(pcm))
        outcome = await chirp.hangup()
        await listener
    assert outcome.status is CallStatus.COMPLETED
    assert b"".join(audio) == pcm


async def test_auth_is_refused_with_401_before_accepting() -> None:
    app = FastAPI()
    app.router.routes.append(
        chirp_route("/voice", echo, auth=("bluejay", "pw"), recorder_factory=None)
    )
    async with uvicorn_app(app) as host:
        wrong = "Basic " + base64.b64encode(b"bluejay:nope").decode()
        for headers in [{}, {"Authorization": wrong}]:
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"ws://{host}/voice", additional_headers=headers)
            assert refused.value.response.status_code == 401
            assert refused.value.response.headers["WWW-Authenticate"].startswith("Basic")
        chirp = ChirpCaller(f"ws://{host}/voice", username="bluejay", password="nope", retries=0)
        with pytest.raises(Exception) as failed:
            await chirp.connect()
        assert chirp.outcome is not None and chirp.outcome.status is CallStatus.REJECTED
        assert "401" in str(failed.value)


async def test_bad_frames_are_answered_and_the_id_comes_from_the_scope() -> None:
    sink = ListSink()
    ids: list[str | None] = []

    async def handler(call: ChirpSession) -> None:
        ids.append(call.simulation_result_id)
        call.recorder.tool_call("book_table", people=2, output="ok")
        await echo(call)

    app = ChirpASGIApp(handler, recorder_factory=recorder_into(sink))
    async with uvicorn_app(app) as host:
        async with connect(
            f"ws://{host}/", additional_headers={"x-simulation-result-id": "13062"}
        ) as ws:
            await ws.send(b"\x00")
            await ws.send('{"type":"mark","data":{}}')
            await ws.send(bytes(640))
            replies = [json.loads(await ws.recv()), json.loads(await ws.recv())]
            assert await ws.recv() == bytes(640)
        await asyncio.to_thread(sink.arrived.wait, 10)
    for reply in replies:
        check_spec_envelope(reply)
    assert [r["data"]["code"] for r in replies] == ["INVALID_AUDIO_FRAME", "MISSING_FIELD"]
    assert ids == ["13062"]
    assert sink.requests[0].simulation_result_id == "13062"


async def test_handler_failure_closes_1011_and_plain_http_is_told_to_upgrade() -> None:
    async def failing(call: ChirpSession) -> None:
        raise ValueError("boom")

    app = ChirpASGIApp(failing, recorder_factory=None)
    async with uvicorn_app(app) as host:
        async with connect(f"ws://{host}/") as ws:
            event = json.loads(await ws.recv())
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://{host}/")
    assert event["data"]["code"] == "INTERNAL_ERROR"
    assert ws.close_code == 1011
    assert response.status_code == 426


async def test_servers_without_the_denial_extension_refuse_with_403() -> None:
    sent: list[dict[str, Any]] = []
    messages = iter([{"type": "websocket.connect"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    app = ChirpASGIApp(echo, auth=("u", "p"), recorder_factory=None)
    await app({"type": "websocket", "path": "/", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
