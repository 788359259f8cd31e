"""Both of Roost's ends together: ChirpCaller against the agent helper (roost.chirp.serve)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

import roost
from roost.caller import AgentAudio, AgentEvent, CallStatus
from roost.chirp import CallerAudio, CallerEvent, ChirpCaller, ChirpSession, serve
from tests.chirp.rawagent import until
from tests.chirp.test_server import ListSink, recorder_into
from tests.speech import speech_pcm


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speech_pcm(tmp_path_factory.mktemp("speech"), "I need to change my delivery address.")


async def test_a_full_call_with_enrichment(speech: bytes, tmp_path: Path) -> None:
    sink = ListSink()
    heard: list[bytes] = []

    async def agent(call: ChirpSession) -> None:
        uid = call.start_speech()
        call.send_audio(speech[:16_000])  # a half-second greeting
        call.complete_speech(uid)
        call.mark("greeting")
        async for item in call:
            if isinstance(item, CallerAudio):
                heard.append(item.pcm)
            elif item.type == "speech.completed":
                assert call.recorder is roost.current_recorder()
                call.recorder.tool_call("update_address", street="Main St 1", output="ok")
                call.send_audio(speech[:6400])
                await call.hangup()

    path = tmp_path / "call.wav"
    async with await serve(
        agent, auth=("bluejay", "pw"), recorder_factory=recorder_into(sink)
    ) as server:
        chirp = ChirpCaller(
            server.url("/voice"),
            simulation_result_id="720488",
            username="bluejay",
            password="pw",
            record_path=path,
        )
        await chirp.connect()
        seen: list[AgentAudio | AgentEvent] = []

        async def listen() -> None:
            async for item in chirp.agent_stream():
                seen.append(item)

        listener = asyncio.create_task(listen())
        await until(
            lambda: any(isinstance(i, AgentEvent) and i.type == "speech.completed" for i in seen)
        )
        result = await chirp.play(speech)
        outcome = await chirp.wait_closed()
        await listener
        await asyncio.to_thread(sink.arrived.wait, 10)
    assert not result.interrupted
    assert b"".join(heard) == speech
    assert outcome.status is CallStatus.COMPLETED
    assert outcome.ended_by == "agent" and outcome.close_code == 1000
    assert outcome.audio_sent_ms == pytest.approx(len(speech) / 32)
    assert outcome.audio_received_ms == pytest.approx(700)
    assert outcome.recording_path == path and path.stat().st_size > 44
    kinds = [(direction, kind) for _, direction, kind, _ in outcome.events]
    assert kinds[:3] == [("in", "speech.started"), ("in", "speech.completed"), ("in", "mark")]
    assert ("out", "mark") in kinds  # the greeting mark was echoed
    assert sink.requests[0].simulation_result_id == "720488"
    assert [t.name for t in sink.requests[0].tool_calls or []] == ["update_address"]


async def test_the_agent_barges_in_through_the_helper(speech: bytes) -> None:
    log: list[tuple[str, int, float, float]] = []
    barge_in: list[float] = []

    async def agent(call: ChirpSession) -> None:
        frames = 0
        async for item in call:
            if isinstance(item, CallerAudio):
                frames += 1
                if frames == 10:
                    barge_in.append(asyncio.get_running_loop().time())
                    call.start_speech()
            elif isinstance(item, CallerEvent) and item.type == "speech.completed":
                return

    async with await serve(agent, recorder_factory=None) as server:
        chirp = ChirpCaller(server.url("/"), on_frame=lambda *f: log.append(f))
        await chirp.connect()
        result = await chirp.play(speech * 2)
        await chirp.wait_closed()
    assert result.interrupted
    received = [o for o, d, k, _ in chirp.outcome.events if (d, k) == ("in", "speech.started")]  # type: ignore[union-attr]
    arrived = chirp.answered_at + received[0] / 1000  # type: ignore[operator]
    assert arrived >= barge_in[0]
    assert len([f for f in log if f[3] > arrived]) <= 1


async def test_mark_echo_through_the_helper_waits_for_playout(speech: bytes) -> None:
    times: dict[str, float] = {}

    async def agent(call: ChirpSession) -> None:
        loop = asyncio.get_running_loop()
        times["sent"] = loop.time()
        call.send_audio(speech[:16_000])  # 500 ms, paced with 200 ms lead
        call.mark("half-second")
        async for item in call:
            if isinstance(item, CallerEvent) and item.type == "mark":
                times["echo"] = loop.time()
                return

    async with await serve(agent, recorder_factory=None) as server:
        chirp = ChirpCaller(server.url("/"))
        await chirp.connect()
        outcome = await chirp.wait_closed()
    assert outcome.status is CallStatus.COMPLETED
    assert times["echo"] - times["sent"] >= 0.5
