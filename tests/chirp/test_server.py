"""The agent helper on websockets, driven by a raw websockets client that checks every reply."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import roost
from roost.caller import CallStatus
from roost.chirp import CallerAudio, CallerEvent, ChirpCaller, ChirpServer, ChirpSession, serve
from roost.delivery import Delivery, DeliveryConfig
from roost.schema import UpdateSimulationRequest
from tests.chirp.rawagent import check_spec_envelope, until


class ListSink:
    """An in-memory enrichment sink: nothing touches the network."""

    def __init__(self) -> None:
        self.requests: list[UpdateSimulationRequest] = []
        self.arrived = threading.Event()

    def submit(self, request: UpdateSimulationRequest) -> str:
        self.requests.append(request)
        self.arrived.set()
        return f"outbox-{len(self.requests)}"


def recorder_into(sink: ListSink) -> Callable[[str | None], Any]:
    return lambda sid: roost.CallRecorder(sid, sink=sink)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@asynccontextmanager
async def agent(
    handler: Callable[[ChirpSession], Any], **options: Any
) -> AsyncIterator[ChirpServer]:
    options.setdefault("recorder_factory", None)
    async with await serve(handler, **options) as server:
        yield server


async def echo(call: ChirpSession) -> None:
    async for item in call:
        if isinstance(item, CallerAudio):
            call.send_audio(item.pcm)


async def next_text(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = await ws.recv()
        if isinstance(message, str):
            event: dict[str, Any] = json.loads(message)
            check_spec_envelope(event)
            return event


async def test_auth_is_checked_before_the_upgrade() -> None:
    calls: list[ChirpSession] = []

    async def handler(call: ChirpSession) -> None:
        calls.append(call)

    async with agent(handler, auth=("bluejay", "s3cret")) as server:
        for headers in [
            {},
            {"Authorization": basic("bluejay", "wrong")},
            {"Authorization": "Bearer x"},
        ]:
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.url("/voice"), additional_headers=headers)
            response = refused.value.response
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert calls == []
        async with connect(
            server.url("/voice"), additional_headers={"Authorization": basic("bluejay", "s3cret")}
        ) as ws:
            with pytest.raises(ConnectionClosed):
                await ws.recv()
        assert ws.close_code == 1000
    assert len(calls) == 1


async def test_only_the_configured_path_is_served() -> None:
    async with agent(echo, path="/voice") as server:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url("/other"))
        assert refused.value.response.status_code == 404
        async with connect(server.url("/voice?call=1")):
            pass


async def test_every_bad_frame_gets_the_spec_reply_and_the_call_goes_on() -> None:
    seen: list[Any] = []

    async def handler(call: ChirpSession) -> None:
        async for item in call:
            seen.append(item)
            if isinstance(item, CallerAudio):
                call.send_audio(item.pcm)

    async with agent(handler) as server, connect(server.url("/")) as ws:
        await ws.send('{"type":"speech.started","id":"a","ts_ms":1,"data":{"utterance_id":"dh-1"}}')
        await ws.send(b"\x01\x02\x03")
        await ws.send(b"")
        await ws.send('{"type":"call.transfer","id":"b","ts_ms":1,"data":{}}')
        await ws.send('{"type":"speech.completed","data":{}}')
        await ws.send('{"type":"mark","id":"c","ts_ms":1}')
        await ws.send("{oops")
        await ws.send('{"type":"mark","id":"d","ts_ms":"soon","data":{"name":"x"}}')
        await ws.send(bytes(640))
        replies: list[Any] = []
        while True:
            message = await ws.recv()
            if isinstance(message, bytes):
                break
            replies.append(json.loads(message))
    for reply in replies:
        check_spec_envelope(reply)
        assert reply["type"] == "session.error"
    assert [(r["data"]["code"]) for r in replies] == [
        "INVALID_AUDIO_FRAME",
        "INVALID_AUDIO_FRAME",
        "MISSING_FIELD",
        "MISSING_FIELD",
        "INVALID_MESSAGE",
        "INVALID_MESSAGE",
    ]
    assert "3 bytes" in replies[0]["data"]["message"]
    assert "utterance_id" in replies[2]["data"]["message"]
    assert message == bytes(640)
    # Text before any audio and unknown types reach the handler; nothing bad does.
    assert [type(item).__name__ for item in seen] == ["CallerEvent", "CallerEvent", "CallerAudio"]
    assert isinstance(seen[0], CallerEvent) and seen[0].data == {"utterance_id": "dh-1"}
    assert isinstance(seen[1], CallerEvent) and seen[1].type == "call.transfer"


@pytest.mark.parametrize(
    "name", ["X-Simulation-Result-Id", "x-simulation-result-id", "X-SIMULATION-RESULT-ID"]
)
async def test_the_result_id_header_is_read_case_insensitively(name: str) -> None:
    ids: list[str | None] = []

    async def handler(call: ChirpSession) -> None:
        ids.append(call.simulation_result_id)

    async with (
        agent(handler) as server,
        connect(server.url("/"), additional_headers={name: "720488"}) as ws,
    ):
        await ws.wait_closed()
    assert ids == ["720488"]


async def test_the_recorder_is_current_for_the_handler_and_delivers_after_the_close() -> None:
    sink = ListSink()
    seen: list[Any] = []

    async def handler(call: ChirpSession) -> None:
        seen.append(roost.current_recorder() is call.recorder is not None)
        call.recorder.tool_call("lookup_order", order="A-1", output={"status": "shipped"})
        async for _ in call:
            pass
        seen.append(sink.requests == [])  # nothing is delivered before the call ends

    async with agent(handler, recorder_factory=recorder_into(sink)) as server:
        async with connect(
            server.url("/"), additional_headers={"X-Simulation-Result-Id": "720488"}
        ) as ws:
            await ws.send(bytes(640))
        await asyncio.to_thread(sink.arrived.wait, 10)
    assert seen == [True, True]
    request = sink.requests[0]
    assert request.simulation_result_id == "720488"
    assert [tool.name for tool in request.tool_calls or []] == ["lookup_order"]


async def test_without_the_header_the_call_works_and_nothing_is_delivered() -> None:
    sink = ListSink()
    ids: list[str | None] = []

    async def handler(call: ChirpSession) -> None:
        ids.append(call.simulation_result_id)
        call.recorder.tool_call("lookup_order", output="x")
        await echo(call)

    async with agent(handler, recorder_factory=recorder_into(sink)) as server:
        async with connect(server.url("/")) as ws:
            await ws.send(bytes(640))
            assert await ws.recv() == bytes(640)
        await until(lambda: not server.sessions)
    assert ids == [None]
    assert sink.requests == []


async def test_a_malformed_result_id_is_ignored_not_fatal() -> None:
    ids: list[str | None] = []

    async def handler(call: ChirpSession) -> None:
        ids.append(call.simulation_result_id)

    headers = {"X-Simulation-Result-Id": "  "}
    async with agent(handler) as server, connect(server.url("/"), additional_headers=headers) as ws:
        await ws.wait_closed()
    assert ids == [None]
    assert ws.close_code == 1000


async def test_a_failing_handler_sends_internal_error_and_closes_1011() -> None:
    async def handler(call: ChirpSession) -> None:
        call.send_audio(bytes(640 * 50))  # queued, then dropped: the agent is failing
        raise RuntimeError("LLM timed out")

    async with agent(handler) as server, connect(server.url("/")) as ws:
        event = await next_text(ws)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert event["type"] == "session.error"
    assert event["data"]["code"] == "INTERNAL_ERROR"
    assert "LLM" not in event["data"]["message"]  # no internals leak to the caller
    assert ws.close_code == 1011


async def test_a_returning_handler_sends_what_is_queued_then_closes_1000() -> None:
    async def handler(call: ChirpSession) -> None:
        call.start_speech("u_bye")
        call.send_audio(bytes(640 * 20))
        call.complete_speech("u_bye")

    async with agent(handler) as server, connect(server.url("/")) as ws:
        kinds = []
        with pytest.raises(ConnectionClosed):
            while True:
                message = await ws.recv()
                kinds.append("audio" if isinstance(message, bytes) else json.loads(message)["type"])
    assert kinds == ["speech.started"] + ["audio"] * 20 + ["speech.completed"]
    assert ws.close_code == 1000
    assert ws.close_reason == "call ended"


async def test_outgoing_audio_is_paced_at_real_time_after_a_200ms_lead() -> None:
    async def handler(call: ChirpSession) -> None:
        call.send_audio(bytes(32_000))  # one second at once
        call.mark("end")
        async for item in call:
            if isinstance(item, CallerEvent) and item.type == "mark":
                return

    async with agent(handler) as server, connect(server.url("/")) as ws:
        loop = asyncio.get_running_loop()
        arrivals = []
        while len(arrivals) < 50:
            if isinstance(await ws.recv(), bytes):
                arrivals.append(loop.time())
        event = await next_text(ws)
        await ws.send(json.dumps({"type": "mark", "id": "e", "ts_ms": 1, "data": event["data"]}))
        await ws.wait_closed()
    assert event["type"] == "mark" and event["data"] == {"name": "end"}
    # 200 ms may go at once; the other 800 ms cannot arrive faster than real time.
    assert arrivals[-1] - arrivals[0] >= 0.8 - 0.02
    assert arrivals[9] - arrivals[0] < arrivals[-1] - arrivals[10]


async def test_clear_audio_takes_back_what_the_caller_has_not_heard() -> None:
    dropped: list[float] = []

    async def handler(call: ChirpSession) -> None:
        uid = call.start_speech()
        call.send_audio(bytes(640 * 100))  # two seconds
        call.complete_speech(uid)  # stays queued behind the audio...
        async for item in call:
            if isinstance(item, CallerEvent) and item.type == "speech.started":
                dropped.append(call.clear_audio())  # ...and survives the clear
                return

    async with agent(handler) as server, connect(server.url("/")) as ws:
        frames = 0
        while frames < 15:
            if isinstance(await ws.recv(), bytes):
                frames += 1
        await ws.send('{"type":"speech.started","id":"x","ts_ms":1,"data":{"utterance_id":"dh-2"}}')
        kinds = []
        with pytest.raises(ConnectionClosed):
            while True:
                message = await ws.recv()
                kinds.append("audio" if isinstance(message, bytes) else json.loads(message)["type"])
    assert kinds[-1] == "speech.completed"
    assert 15 + kinds.count("audio") < 100
    assert dropped and dropped[0] > 0


async def test_the_caller_hanging_up_ends_the_handlers_iteration() -> None:
    done: list[tuple[bool, int | None]] = []

    async def handler(call: ChirpSession) -> None:
        async for _ in call:
            pass
        call.send_audio(bytes(640))  # too late: ignored, not an error
        done.append((call.closed, call.close_code))

    async with agent(handler) as server:
        async with connect(server.url("/")) as ws:
            await ws.send(bytes(640))
        await until(lambda: not server.sessions)
    assert done == [(True, 1000)]


async def test_session_helpers_validate_and_report() -> None:
    reports: list[Any] = []

    async def handler(call: ChirpSession) -> None:
        with pytest.raises(ValueError, match="even number"):
            call.send_audio(b"\x00")
        call.send_audio(bytes(640 * 5))
        reports.append(call.queued_audio_ms)
        await call.drain()
        reports.append((call.queued_audio_ms, call.audio_sent_ms, call.unplayed_ms > 0))
        item = await call.receive()
        reports.append(type(item).__name__)
        call.send_error("INVALID_MESSAGE", "just checking")
        await call.hangup(4000, "transfer")

    async with agent(handler) as server, connect(server.url("/")) as ws:
        for _ in range(5):
            await ws.recv()
        await ws.send('{"type":"session.error","data":{"code":"INTERNAL_ERROR","message":"x"}}')
        event = await next_text(ws)
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert reports == [100.0, (0.0, 100.0, True), "CallerEvent"]
    assert event["data"]["code"] == "INVALID_MESSAGE"
    assert ws.close_code == 4000


async def test_enrichment_reaches_a_real_platform_endpoint_after_the_call(tmp_path: Path) -> None:
    posts: list[tuple[dict[str, str], dict[str, Any]]] = []
    arrived = threading.Event()

    class Platform(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append(({k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"success": true}')
            arrived.set()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    platform = ThreadingHTTPServer(("127.0.0.1", 0), Platform)
    threading.Thread(target=platform.serve_forever, daemon=True).start()
    config = DeliveryConfig(
        api_key="test-key",
        base_url=f"http://127.0.0.1:{platform.server_address[1]}",
        outbox_path=tmp_path / "outbox.sqlite3",
    )
    posted_during_call: list[bool] = []

    async def handler(call: ChirpSession) -> None:
        call.recorder.tool_call("lookup_order", order="A-1", output={"status": "shipped"})
        async for item in call:
            if isinstance(item, CallerAudio):
                call.send_audio(item.pcm)
        posted_during_call.append(bool(posts))

    try:
        with Delivery(config, register_atexit=False) as delivery:
            factory = lambda sid: roost.CallRecorder(sid, sink=delivery)  # noqa: E731
            async with agent(handler, recorder_factory=factory) as server:
                chirp = ChirpCaller(server.url("/voice"), simulation_result_id="720488")
                await chirp.connect()
                await chirp.play(bytes(640 * 5))
                outcome = await chirp.hangup()
                assert await asyncio.to_thread(arrived.wait, 30)
    finally:
        platform.shutdown()
        platform.server_close()
    assert outcome.status is CallStatus.COMPLETED
    assert posted_during_call == [False]
    headers, body = posts[0]
    assert headers["x-api-key"] == "test-key"
    assert body["simulation_result_id"] == "720488"
    assert [tool["name"] for tool in body["tool_calls"]] == ["lookup_order"]
