"""SipEndpoint: recorder, handler lifecycle and delivery, driven by our caller on real sockets."""

from __future__ import annotations

import asyncio
import wave
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import pytest

import roost
from roost.caller import CallStatus
from roost.schema import UpdateSimulationRequest
from roost.sip import SipCall, SipCallConfig, SipCaller, SipEndpoint
from tests.speech import speech_pcm

WAIT = 60.0


class ListSink:
    """Collects submitted payloads (what delivery would make durable)."""

    def __init__(self) -> None:
        self.requests: list[UpdateSimulationRequest] = []
        self.submitted = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def submit(self, request: UpdateSimulationRequest) -> str:
        # afinish() submits from a worker thread.
        self.requests.append(request)
        self._loop.call_soon_threadsafe(self.submitted.set)
        return f"outbox-{len(self.requests)}"

    def factory(self) -> Callable[[str | None], AbstractAsyncContextManager[Any]]:
        def make(sid: str | None) -> AbstractAsyncContextManager[Any]:
            return roost.CallRecorder(sid, sink=self)

        return make


@roost.tool
def lookup_order(order_id: str) -> dict[str, str]:
    """Find an order."""
    return {"order_id": order_id, "status": "shipped"}


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return speech_pcm(tmp_path_factory.mktemp("speech"), "Where is my order?")


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_the_callers_bye_ends_the_call_and_starts_delivery(
    transport: str, speech: bytes
) -> None:
    sink = ListSink()
    seen: dict[str, Any] = {}

    async def agent(call: SipCall) -> None:
        seen["recorder"] = call.recorder
        seen["current"] = roost.current_recorder()
        lookup_order("A-17")
        heard = 0
        async for pcm in call.audio_in():
            heard += len(pcm)
        seen["heard_ms"] = heard / 32
        seen["end"] = call.end_reason

    async with SipEndpoint(agent, recorder_factory=sink.factory()) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri(transport), simulation_result_id="720488"))
        await asyncio.wait_for(caller.connect(), WAIT)
        await asyncio.wait_for(caller.play(speech), WAIT)
        outcome = await asyncio.wait_for(caller.hangup(), WAIT)
        await asyncio.wait_for(sink.submitted.wait(), WAIT)
        assert endpoint.stats.answered == 1
    assert outcome.status is CallStatus.COMPLETED
    (request,) = sink.requests
    assert request.simulation_result_id == "720488"
    assert request.tool_calls is not None
    assert [t.name for t in request.tool_calls] == ["lookup_order"]
    assert isinstance(seen["recorder"], roost.CallRecorder)
    assert seen["current"] is seen["recorder"]  # tools record into this call's recorder
    # The BYE follows the last packet at once: allow the frames still in flight.
    assert seen["heard_ms"] >= 0.9 * len(speech) / 32
    assert seen["end"].ended_by == "remote"
    assert endpoint.stats.ended == 1 and endpoint.calls == []


async def test_the_agents_hangup_ends_the_call_and_starts_delivery() -> None:
    sink = ListSink()

    async def agent(call: SipCall) -> None:
        call.recorder.event("greeted")
        await call.hangup()
        assert call.ended and call.end_reason is not None
        assert call.end_reason.ended_by == "local"

    async with SipEndpoint(agent, recorder_factory=sink.factory()) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri("tcp"), simulation_result_id="sim-9"))
        await asyncio.wait_for(caller.connect(), WAIT)
        outcome = await asyncio.wait_for(caller.wait_closed(), WAIT)
        await asyncio.wait_for(sink.submitted.wait(), WAIT)
    assert outcome.ended_by == "agent"
    (request,) = sink.requests
    assert request.simulation_result_id == "sim-9"
    assert request.events is not None and len(request.events) == 1


async def test_a_call_without_the_header_works_and_delivers_nothing() -> None:
    sink = ListSink()
    ids: list[str | None] = []

    async def agent(call: SipCall) -> None:
        ids.append(call.simulation_result_id)
        await call.hangup()

    async with SipEndpoint(agent, recorder_factory=sink.factory()) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri("udp")))
        await asyncio.wait_for(caller.connect(), WAIT)
        await asyncio.wait_for(caller.wait_closed(), WAIT)
    assert ids == [None]
    assert sink.requests == []
    assert endpoint.stats.ended == 1


async def test_a_handler_that_ignores_the_end_is_cancelled_after_the_grace() -> None:
    cancelled = asyncio.Event()

    async def stubborn(call: SipCall) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async with SipEndpoint(stubborn, recorder_factory=None, handler_grace=0.2) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri("udp")))
        await asyncio.wait_for(caller.connect(), WAIT)
        await asyncio.wait_for(caller.hangup(), WAIT)
        await asyncio.wait_for(cancelled.wait(), WAIT)
        assert endpoint.stats.handler_errors == 0


async def test_a_failing_handler_hangs_up_and_is_counted() -> None:
    async def broken(call: SipCall) -> None:
        raise RuntimeError("agent bug")

    async with SipEndpoint(broken, recorder_factory=None) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri("udp")))
        await asyncio.wait_for(caller.connect(), WAIT)
        outcome = await asyncio.wait_for(caller.wait_closed(), WAIT)
        assert endpoint.stats.handler_errors == 1
    assert outcome.ended_by == "agent"


async def test_record_dir_gets_a_stereo_wav_of_both_directions(
    tmp_path: Path, speech: bytes
) -> None:
    async def greeter(call: SipCall) -> None:
        await call.play(speech)
        async for _ in call.audio_in():
            pass

    async with SipEndpoint(greeter, recorder_factory=None, record_dir=tmp_path) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri("udp")))
        await asyncio.wait_for(caller.connect(), WAIT)
        await asyncio.wait_for(caller.play(speech), WAIT)
        await asyncio.wait_for(caller.hangup(), WAIT)
    (path,) = await asyncio.to_thread(lambda: list(tmp_path.glob("*.wav")))
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 16000)
        assert wav.getnframes() >= len(speech) // 2


async def test_closing_the_endpoint_hangs_up_calls_in_progress() -> None:
    answered = asyncio.Event()

    async def agent(call: SipCall) -> None:
        answered.set()
        async for _ in call.audio_in():
            pass

    endpoint = await SipEndpoint(agent, recorder_factory=None).start()
    try:
        caller = SipCaller(SipCallConfig(endpoint.uri("tcp")))
        await asyncio.wait_for(caller.connect(), WAIT)
        await asyncio.wait_for(answered.wait(), WAIT)
    finally:
        await asyncio.wait_for(endpoint.close(), WAIT)
    outcome = await asyncio.wait_for(caller.wait_closed(), WAIT)
    assert outcome.status is CallStatus.COMPLETED and outcome.ended_by == "agent"


async def test_the_handler_sees_every_invite_header() -> None:
    got: list[list[tuple[str, str]]] = []

    async def agent(call: SipCall) -> None:
        got.append(call.headers)
        await call.hangup()

    async with SipEndpoint(agent, recorder_factory=None) as endpoint:
        config = SipCallConfig(
            endpoint.uri("udp"),
            simulation_result_id="h-1",
            headers={"X-One": "1", "X-Two": "two words"},
        )
        caller = SipCaller(config)
        await asyncio.wait_for(caller.connect(), WAIT)
        await asyncio.wait_for(caller.wait_closed(), WAIT)
    (headers,) = got
    names = [name.lower() for name, _ in headers]
    for expected in ("via", "from", "to", "call-id", "cseq", "contact", "x-call-type"):
        assert expected in names
    assert ("X-Two", "two words") in headers
    assert ("X-Simulation-Result-Id", "h-1") in headers
