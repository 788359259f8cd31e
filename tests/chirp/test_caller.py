"""ChirpCaller against an agent written directly on websockets (tests/chirp/rawagent.py)."""

from __future__ import annotations

import asyncio
import base64
import socket
from pathlib import Path

import numpy as np
import pytest

from roost.audio import FRAME_BYTES, decode_wav, pcm_to_array
from roost.caller import AgentAudio, AgentEvent, CallDriver, CallFailed, CallStatus, FailureBucket
from roost.chirp import ChirpCaller
from tests.chirp.rawagent import Call, check_spec_envelope, raw_agent, until
from tests.speech import speech_pcm

FrameLog = list[tuple[str, int, float, float]]


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speech_pcm(tmp_path_factory.mktemp("speech"), "Hello, I would like to book a table.")


def caller(url: str, log: FrameLog | None = None, **options: object) -> ChirpCaller:
    options.setdefault("retry_backoff", 0.01)
    return ChirpCaller(
        url,
        on_frame=(lambda *frame: log.append(frame)) if log is not None else None,
        **options,  # type: ignore[arg-type]
    )


async def drain(call: Call) -> None:
    await call.drain()


def agent_event_at(chirp: ChirpCaller, direction: str, kind: str) -> float:
    """Loop time at which the caller logged an event."""
    assert chirp.outcome is not None and chirp.answered_at is not None
    offsets = [o for o, d, t, _ in chirp.outcome.events if d == direction and t == kind]
    assert offsets, (direction, kind)
    return chirp.answered_at + offsets[0] / 1000.0


async def test_upgrade_carries_basic_auth_and_the_simulation_result_id() -> None:
    async with raw_agent(drain) as agent:
        chirp = caller(
            agent.url, simulation_result_id="720488", username="bluejay", password="s3cr:t"
        )
        await chirp.connect()
        outcome = await chirp.hangup()
    headers = agent.requests[0].headers
    assert headers["X-Simulation-Result-Id"] == "720488"
    assert base64.b64decode(headers["Authorization"].split()[1]) == b"bluejay:s3cr:t"
    assert "Sec-WebSocket-Extensions" not in headers  # no deflate on PCM
    assert outcome.status is CallStatus.COMPLETED
    assert outcome.ended_by == "caller"
    assert outcome.close_code == 1000


async def test_no_authorization_header_without_credentials() -> None:
    async with raw_agent(drain) as agent:
        chirp = caller(agent.url)
        await chirp.connect()
        await chirp.hangup()
    assert "Authorization" not in agent.requests[0].headers
    assert "X-Simulation-Result-Id" not in agent.requests[0].headers


async def test_an_utterance_is_bracketed_and_sent_in_20ms_frames_on_the_ticker(
    speech: bytes,
) -> None:
    log: FrameLog = []
    async with raw_agent(drain) as agent:
        chirp = caller(agent.url, log)
        await chirp.connect()
        result = await chirp.play(speech, utterance_id="dh-hello")
        outcome = await chirp.hangup()
    call = agent.calls[0]
    assert not result.interrupted
    assert result.played_ms == pytest.approx(len(speech) / 32)
    kinds = ["audio" if m.binary else m.event["type"] for m in call.received]
    frames = len(speech) // FRAME_BYTES + (1 if len(speech) % FRAME_BYTES else 0)
    assert kinds == ["speech.started"] + ["audio"] * frames + ["speech.completed"]
    for event in call.events():
        check_spec_envelope(event)
        assert event["data"] == {"utterance_id": "dh-hello"}
    assert b"".join(m.payload for m in call.frames()) == speech  # type: ignore[misc]
    assert all(len(m.payload) == FRAME_BYTES for m in call.frames()[:-1])
    # One frame per tick: deadlines exactly 20 ms apart, each sent at or after its deadline.
    deadlines = np.array([deadline for _, _, deadline, _ in log])
    assert np.allclose(np.diff(deadlines), 0.020, atol=1e-6)
    assert all(sent >= deadline for _, _, deadline, sent in log)
    assert outcome.audio_sent_ms == pytest.approx(len(speech) / 32)


async def test_barge_in_stops_the_utterance_within_one_frame(speech: bytes) -> None:
    log: FrameLog = []

    async def interrupting_agent(call: Call) -> None:
        await call.receive_until(lambda m: len(call.frames()) >= 10)
        await call.send_event("speech.started", {"utterance_id": "agent-1"})
        await call.drain()

    async with raw_agent(interrupting_agent) as agent:
        chirp = caller(agent.url, log)
        await chirp.connect()
        result = await chirp.play(speech * 3)
        await asyncio.sleep(0.1)
        await chirp.hangup()
    barge_in = agent_event_at(chirp, "in", "speech.started")
    after = [frame for frame in log if frame[3] > barge_in]
    assert len(after) <= 1  # proven on the caller's own clock: nothing of it left after the event
    assert result.interrupted
    assert result.played_ms == pytest.approx(len(log) * 20)
    call = agent.calls[0]
    kinds = ["audio" if m.binary else m.event["type"] for m in call.received]
    # speech.completed for the cancelled utterance comes right after its last frame.
    assert kinds == ["speech.started"] + ["audio"] * len(log) + ["speech.completed"]
    assert call.events("speech.completed")[0]["data"]["utterance_id"] == result.utterance_id


async def test_interrupt_stops_within_one_frame(speech: bytes) -> None:
    log: FrameLog = []
    async with raw_agent(drain) as agent:
        chirp = caller(agent.url, log)
        await chirp.connect()
        playing = asyncio.create_task(chirp.play(speech * 3))
        await asyncio.sleep(0.2)
        stop = asyncio.get_running_loop().time()
        chirp.interrupt()
        result = await playing
        await asyncio.sleep(0.1)
        await chirp.hangup()
    assert result.interrupted
    assert len([frame for frame in log if frame[3] > stop]) <= 1
    assert agent.calls[0].received[-1].event["type"] == "speech.completed"


async def test_a_cancelled_play_stops_the_utterance(speech: bytes) -> None:
    log: FrameLog = []
    async with raw_agent(drain) as agent:
        chirp = caller(agent.url, log)
        await chirp.connect()
        playing = asyncio.create_task(chirp.play(speech * 3))
        await asyncio.sleep(0.1)
        playing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await playing
        sent = len(log)
        await asyncio.sleep(0.1)
        assert len(log) == sent
        await chirp.hangup()


async def test_mark_echo_waits_until_the_queued_agent_audio_has_played(speech: bytes) -> None:
    one_second = speech[: 32_000 - 32_000 % FRAME_BYTES]
    times: dict[str, float] = {}

    async def agent_with_mark(call: Call) -> None:
        times["audio"] = call.loop.time()
        for start in range(0, len(one_second), FRAME_BYTES):  # a burst, far ahead of real time
            await call.connection.send(one_second[start : start + FRAME_BYTES])
        times["mark"] = await call.send_event("mark", {"name": "greeting-done"})
        echo = await call.receive_until(lambda m: not m.binary and m.event["type"] == "mark")
        assert echo is not None
        times["echo"] = echo.at
        check_spec_envelope(echo.event)
        assert echo.event["data"] == {"name": "greeting-done"}
        assert echo.event["id"] != "agent-1"  # a fresh id, not the agent's
        await call.drain()

    received: list[AgentAudio | AgentEvent] = []
    async with raw_agent(agent_with_mark) as agent:
        chirp = caller(agent.url)
        await chirp.connect()

        async def listen() -> None:
            async for item in chirp.agent_stream():
                received.append(item)

        listener = asyncio.create_task(listen())
        await until(lambda: "echo" in times)
        await chirp.hangup()
        await listener
    assert agent.calls
    # The echo cannot come before one second of audio, sent at `audio`, has played.
    assert times["echo"] - times["audio"] >= 1.0
    # And on the caller's own clock: real-time playout of what arrived, then the echo.
    playout_end = 0.0
    for item in received:
        if isinstance(item, AgentAudio):
            playout_end = max(playout_end, item.offset_ms) + len(item.pcm) / 32
    echo_at = agent_event_at(chirp, "out", "mark")
    assert (echo_at - chirp.answered_at) * 1000 >= playout_end - 1e-6  # type: ignore[operator]
    assert [type(item).__name__ for item in received][-1] == "AgentEvent"


async def test_mark_with_nothing_queued_is_echoed_at_once() -> None:
    async def agent(call: Call) -> None:
        await call.send_event("mark", {"name": "ping"})
        await call.receive_until(lambda m: not m.binary)
        await call.drain()

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        await until(lambda: raw.calls and raw.calls[0].events("mark"))
        await chirp.hangup()
    assert raw.calls[0].events("mark")[0]["data"] == {"name": "ping"}


async def test_agent_session_error_goes_to_agent_errors_and_the_call_goes_on() -> None:
    async def agent(call: Call) -> None:
        await call.send_event(
            "session.error", {"code": "MISSING_FIELD", "message": "no utterance_id"}
        )
        await call.connection.send(bytes(640))
        await call.drain()

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        items = []
        async for item in chirp.agent_stream():
            items.append(item)
            if isinstance(item, AgentAudio):
                break
        outcome = await chirp.hangup()
    assert isinstance(items[0], AgentEvent) and items[0].type == "session.error"
    assert outcome.status is CallStatus.COMPLETED
    assert outcome.agent_errors[0]["code"] == "MISSING_FIELD"
    assert outcome.agent_errors[0]["message"] == "no utterance_id"
    assert outcome.audio_received_ms == 20.0


async def test_malformed_agent_frames_are_answered_and_the_call_goes_on() -> None:
    async def agent(call: Call) -> None:
        await call.connection.send(b"\x01\x02\x03")
        await call.connection.send(b"")
        await call.connection.send("{not json")
        await call.connection.send('{"type":"speech.started","data":{}}')
        await call.connection.send('{"type":"call.transfer","data":{"to":"+1"}}')
        await call.connection.send('{"type":"mark"}')
        await call.connection.send(bytes(640))
        await call.send_event("mark", {"name": "still-here"})
        await call.receive_until(lambda m: m.event["type"] == "mark")
        await call.drain()

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        await until(lambda: raw.calls and raw.calls[0].events("mark"))
        outcome = await chirp.hangup()
    errors = raw.calls[0].events("session.error")
    for error in errors:
        check_spec_envelope(error)
    assert [e["data"]["code"] for e in errors] == [
        "INVALID_AUDIO_FRAME",
        "INVALID_AUDIO_FRAME",
        "INVALID_MESSAGE",
        "MISSING_FIELD",
        "INVALID_MESSAGE",
        "MISSING_FIELD",
    ]
    assert "call.transfer" in errors[4]["data"]["message"]
    assert outcome.status is CallStatus.COMPLETED
    assert outcome.audio_received_ms == 20.0


async def test_agent_hangup_is_a_normal_end(speech: bytes) -> None:
    async def agent(call: Call) -> None:
        await call.receive_until(lambda m: len(call.frames()) >= 5)
        await call.connection.close(1000, "goodbye")

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        result = await chirp.play(speech * 3)
        outcome = await chirp.wait_closed()
    assert raw.calls
    assert result.interrupted
    assert outcome.status is CallStatus.COMPLETED
    assert outcome.ended_by == "agent"
    assert outcome.close_code == 1000
    assert "goodbye" in outcome.detail
    assert await chirp.hangup() is outcome


async def test_close_right_after_accept_is_incompleted_and_keeps_the_code() -> None:
    async def agent(call: Call) -> None:
        await call.connection.close(1008, "unauthorized")

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        outcome = await chirp.wait_closed()
    assert raw.calls
    assert outcome.status is CallStatus.INCOMPLETED
    assert outcome.error_code == "WEBSOCKET_CLOSED_ON_CONNECT"
    assert outcome.bucket is FailureBucket.NO_CONNECTION
    assert outcome.close_code == 1008
    assert "unauthorized" in outcome.detail


async def test_internal_error_and_1011_is_a_dropped_call() -> None:
    async def agent(call: Call) -> None:
        await call.connection.send(bytes(640))
        await asyncio.sleep(0.05)
        await call.send_event("session.error", {"code": "INTERNAL_ERROR", "message": "LLM down"})
        await call.connection.close(1011, "internal error")

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        outcome = await chirp.wait_closed()
    assert raw.calls
    assert outcome.status is CallStatus.INCOMPLETED
    assert outcome.error_code == "WEBSOCKET_AGENT_ERROR"
    assert outcome.bucket is FailureBucket.CALL_DROPPED
    assert outcome.close_code == 1011
    assert outcome.agent_errors[0]["code"] == "INTERNAL_ERROR"


async def test_a_dropped_connection_mid_call_is_incompleted(speech: bytes) -> None:
    async def agent(call: Call) -> None:
        await call.receive_until(lambda m: len(call.frames()) >= 5)
        call.connection.transport.abort()

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        result = await chirp.play(speech * 3)
        outcome = await chirp.hangup()
    assert raw.calls
    assert result.interrupted
    assert outcome.status is CallStatus.INCOMPLETED
    assert outcome.error_code == "BRIDGE_DISCONNECTED"
    assert outcome.bucket is FailureBucket.CALL_DROPPED
    assert outcome.close_code == 1006


@pytest.mark.parametrize("status", [401, 403])
async def test_auth_refusal_is_rejected_without_retrying(status: int) -> None:
    async with raw_agent(drain, status=status) as raw:
        chirp = caller(raw.url, username="u", password="wrong")
        with pytest.raises(CallFailed) as failed:
            await chirp.connect()
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.REJECTED
    assert outcome.error_code == "WEBSOCKET_AUTH_FAILED"
    assert str(status) in outcome.detail
    assert len(raw.requests) == 1
    assert chirp.outcome is outcome
    assert await chirp.hangup() is outcome


@pytest.mark.parametrize(("status", "attempts"), [(404, 1), (500, 1), (503, 4)])
async def test_other_statuses_fail_and_gateway_errors_are_retried(
    status: int, attempts: int
) -> None:
    async with raw_agent(drain, status=status) as raw:
        chirp = caller(raw.url)
        with pytest.raises(CallFailed) as failed:
            await chirp.connect()
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.INCOMPLETED
    assert outcome.bucket is FailureBucket.NO_CONNECTION
    assert str(status) in outcome.detail
    assert len(raw.requests) == attempts
    expected = "WEBSOCKET_CONNECT_FAILED" if attempts > 1 else "WEBSOCKET_HANDSHAKE_FAILED"
    assert outcome.error_code == expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_refused_connections_are_retried_three_times_then_incompleted() -> None:
    chirp = caller(f"ws://127.0.0.1:{free_port()}/voice")
    with pytest.raises(CallFailed) as failed:
        await chirp.connect()
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.INCOMPLETED
    assert outcome.error_code == "WEBSOCKET_CONNECT_FAILED"
    assert "connection refused" in outcome.detail
    assert "after 4 attempts" in outcome.detail


async def tcp_server(reply: bytes | None) -> tuple[asyncio.Server, list[int]]:
    """A plain TCP server that counts connections and answers ``reply`` (or nothing)."""
    accepted: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(1)
        try:
            await reader.read(1)
            if reply is None:
                await reader.read()  # silent until the caller gives up
            else:
                writer.write(reply)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, accepted


async def test_tls_failures_are_retried_then_incompleted() -> None:
    server, accepted = await tcp_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    async with server:
        port = server.sockets[0].getsockname()[1]
        chirp = caller(f"wss://127.0.0.1:{port}/voice")
        with pytest.raises(CallFailed) as failed:
            await chirp.connect()
    assert failed.value.outcome.error_code == "WEBSOCKET_CONNECT_FAILED"
    assert "TLS failure" in failed.value.outcome.detail
    assert len(accepted) == 4


async def test_a_silent_server_times_out_and_is_retried() -> None:
    server, accepted = await tcp_server(None)
    async with server:
        port = server.sockets[0].getsockname()[1]
        chirp = caller(f"ws://127.0.0.1:{port}/voice", connect_timeout=0.2, retries=1)
        with pytest.raises(CallFailed) as failed:
            await chirp.connect()
    assert "no answer within 0.2 s" in failed.value.outcome.detail
    assert "after 2 attempts" in failed.value.outcome.detail
    assert len(accepted) == 2


async def test_recording_holds_both_directions_at_their_times(
    speech: bytes, tmp_path: Path
) -> None:
    async def echo(call: Call) -> None:
        while (item := await call.receive()) is not None:
            if item.binary:
                await call.connection.send(item.payload)

    path = tmp_path / "call.wav"
    async with raw_agent(echo) as raw:
        chirp = caller(raw.url, record_path=path)
        await chirp.connect()
        await asyncio.sleep(0.2)  # half a second of nothing first
        await chirp.play(speech)
        await asyncio.sleep(0.3)
        outcome = await chirp.hangup()
    assert raw.calls
    assert outcome.recording_path == path
    recording = decode_wav(path.read_bytes())
    assert recording.channels == 2 and recording.sample_rate == 16_000
    left = np.rint(recording.samples[:, 0] * 32768).astype(np.int16)
    right = np.rint(recording.samples[:, 1] * 32768).astype(np.int16)
    original = pcm_to_array(speech)
    start = int(np.flatnonzero(left)[0])
    first = int(np.flatnonzero(original)[0])
    begin = start - first
    # The caller track is the utterance itself, placed where its first frame was due.
    assert np.array_equal(left[begin : begin + original.size], original)
    assert begin / 16 >= 190  # after the 200 ms pause, give or take the first tick
    # The agent track is the echo: every frame, in order, never before what it echoes
    # (arrival jitter may open gaps between frames, so look for each one).
    track = right.tobytes()
    cursor = begin * 2
    for index in range(0, original.size - 320, 320):
        frame = original[index : index + 320]
        if not frame.any():
            continue
        found = track.find(frame.tobytes(), cursor)
        while found % 2:  # only whole samples count
            found = track.find(frame.tobytes(), found + 1)
        assert found >= 0, f"echoed frame {index // 320} missing from the agent track"
        assert found // 2 >= begin + index
        cursor = found + 640


async def test_fragments_and_pings_from_the_agent_are_handled() -> None:
    async def agent(call: Call) -> None:
        await call.connection.send([bytes(320), bytes(320)])  # one message in two frames
        await asyncio.sleep(0.15)  # a few keepalive pings go by
        await call.connection.send(bytes(640))
        await call.drain()

    async with raw_agent(agent, ping_interval=0.03, ping_timeout=1) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        chunks = []
        async for item in chirp.agent_stream():
            if isinstance(item, AgentAudio):
                chunks.append(len(item.pcm))
            if len(chunks) == 2:
                break
        outcome = await chirp.hangup()
    assert raw.calls
    assert chunks == [640, 640]
    assert outcome.status is CallStatus.COMPLETED


async def test_a_greeting_sent_with_the_handshake_is_not_lost() -> None:
    async def agent(call: Call) -> None:
        # Written straight after the 101, typically in the same TCP segment.
        call.connection.protocol.send_binary(bytes(640))
        call.connection.protocol.send_text(b'{"type":"mark","data":{"name":"hello"}}')
        call.connection.send_data()
        await call.drain()

    async with raw_agent(agent) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        items = []
        async for item in chirp.agent_stream():
            items.append(item)
            if len(items) == 2:
                break
        await chirp.hangup()
    assert raw.calls
    assert isinstance(items[0], AgentAudio) and isinstance(items[1], AgentEvent)


async def test_misuse_gets_clear_errors(speech: bytes) -> None:
    with pytest.raises(ValueError, match="ws:// or wss://"):
        ChirpCaller("http://example.com/")
    with pytest.raises(ValueError, match="needs a username"):
        ChirpCaller("ws://127.0.0.1/", password="x")
    with pytest.raises(ValueError, match="header-safe"):
        ChirpCaller("ws://127.0.0.1/", simulation_result_id="1\r\nX-Evil: 1")
    chirp = ChirpCaller("ws://127.0.0.1/")
    assert isinstance(chirp, CallDriver)
    with pytest.raises(RuntimeError, match="connect"):
        await chirp.play(speech)
    with pytest.raises(RuntimeError, match="connect"):
        await chirp.hangup()
    async with raw_agent(drain) as raw:
        chirp = caller(raw.url)
        await chirp.connect()
        with pytest.raises(RuntimeError, match="once"):
            await chirp.connect()
        with pytest.raises(ValueError, match="even number"):
            await chirp.play(b"\x00")
        playing = asyncio.create_task(chirp.play(speech))
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="already playing"):
            await chirp.play(speech)
        chirp.interrupt()
        await playing
        assert (await chirp.play(b"")).played_ms == 0
        await chirp.hangup()
        after = await chirp.play(speech)
        assert after.interrupted and after.played_ms == 0
