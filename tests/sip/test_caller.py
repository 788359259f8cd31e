"""SipCaller against our SipEndpoint over real UDP and TCP sockets, with espeak-ng speech."""

from __future__ import annotations

import asyncio
import socket
import sys
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roost.audio import iter_frames, rms_dbfs
from roost.caller import AgentAudio, AgentEvent, CallDriver, CallFailed, CallStatus, FailureBucket
from roost.sip import (
    CoreConfig,
    SipCall,
    SipCallConfig,
    SipCaller,
    SipEndpoint,
    SipTransport,
    TimerConfig,
)
from tests.speech import speech_pcm, speech_wav

WAIT = 60.0
SPEECH = "Hello, I would like to check the status of my order, number four two seven."


def loud_ms(pcm: bytes) -> float:
    """Milliseconds of 20 ms frames louder than -45 dBFS: speech, not line silence."""
    return 20.0 * sum(1 for frame in iter_frames(pcm) if rms_dbfs(frame) > -45.0)


@pytest.fixture(scope="module")
def speech_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("speech")


@pytest.fixture(scope="module")
def speech(speech_dir: Path) -> bytes:
    return speech_pcm(speech_dir, SPEECH)


class EchoAgent:
    """Echoes the caller's audio back and remembers what it saw."""

    def __init__(self) -> None:
        self.calls: list[SipCall] = []
        self.heard = bytearray()

    async def __call__(self, call: SipCall) -> None:
        self.calls.append(call)
        async for pcm in call.audio_in():
            self.heard += pcm
            await call.send_audio(pcm)


@pytest.fixture
async def echo() -> AsyncIterator[tuple[SipEndpoint, EchoAgent]]:
    agent = EchoAgent()
    async with SipEndpoint(agent, recorder_factory=None) as endpoint:
        yield endpoint, agent


async def collect(caller: SipCaller) -> tuple[bytearray, list[AgentEvent]]:
    audio = bytearray()
    events: list[AgentEvent] = []
    async for item in caller.agent_stream():
        if isinstance(item, AgentAudio):
            audio += item.pcm
        else:
            events.append(item)
    return audio, events


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_a_call_carries_the_headers_and_real_speech_both_ways(
    echo: tuple[SipEndpoint, EchoAgent], speech: bytes, transport: str, tmp_path: Path
) -> None:
    endpoint, agent = echo
    recording = tmp_path / "call.wav"
    caller = SipCaller(
        SipCallConfig(
            endpoint.uri(transport),
            simulation_result_id="sim-720488",
            headers={"X-Agent-Config": "voice=alloy", "X-Tenant": "acme"},
            record_path=recording,
        )
    )
    assert isinstance(caller, CallDriver)
    await asyncio.wait_for(caller.connect(), WAIT)
    listener = asyncio.create_task(collect(caller))
    result = await asyncio.wait_for(caller.play(speech), WAIT)
    assert not result.interrupted
    assert result.played_ms == pytest.approx(len(speech) / 32, abs=20)
    await asyncio.sleep(0.3)  # let the echo of the last frames come back
    outcome = await asyncio.wait_for(caller.hangup(), WAIT)
    echoed, _ = await listener

    (call,) = agent.calls
    assert call.simulation_result_id == "sim-720488"
    assert call.header("X-Call-Type") == "SIP"
    assert call.header("x-agent-config") == "voice=alloy"
    names = [name for name, _ in call.headers]
    assert names.index("X-Agent-Config") < names.index("X-Tenant")  # order kept
    assert call.call.peer.transport == transport.upper()
    # The speech crossed 16k -> 8k G.711 -> 16k: its loud part keeps its length.
    assert loud_ms(bytes(agent.heard)) == pytest.approx(loud_ms(speech), rel=0.15)
    assert loud_ms(bytes(echoed)) == pytest.approx(loud_ms(speech), rel=0.15)

    assert outcome.status is CallStatus.COMPLETED
    assert outcome.ended_by == "caller" and outcome.transport == "sip"
    assert outcome.sip_status == 200
    # Sent G.711 includes the resampler's tail: within a frame of the source.
    assert outcome.audio_sent_ms == pytest.approx(result.played_ms, abs=20)
    assert outcome.audio_received_ms > 0.9 * result.played_ms
    assert outcome.setup_ms is not None and outcome.duration_ms is not None
    kinds = [kind for _, _, kind, _ in outcome.events]
    assert kinds[:1] == ["invite"] and "answered" in kinds and "speech.completed" in kinds
    assert outcome.recording_path == recording
    with wave.open(str(recording)) as wav:
        assert (wav.getnchannels(), wav.getframerate()) == (2, 16000)
        frames = wav.readframes(wav.getnframes())
    left = b"".join(frames[i : i + 2] for i in range(0, len(frames), 4))
    right = b"".join(frames[i + 2 : i + 4] for i in range(0, len(frames), 4))
    assert loud_ms(left) == pytest.approx(loud_ms(speech), rel=0.15)
    assert loud_ms(right) == pytest.approx(loud_ms(speech), rel=0.15)
    assert await caller.hangup() is outcome  # idempotent


@pytest.mark.parametrize(
    ("status", "error_code"), [(486, "CALL_REJECTED"), (603, "CALL_REJECTED"), (404, None)]
)
async def test_a_refused_call_maps_to_the_bluejay_outcome(status: int, error_code: str) -> None:
    async def screen(call: SipCall) -> int:
        return status

    async def never(call: SipCall) -> None:
        raise AssertionError("a refused call must not reach the handler")

    async with SipEndpoint(never, screen=screen, recorder_factory=None) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri("udp"), simulation_result_id="1"))
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(caller.connect(), WAIT)
    outcome = failed.value.outcome
    assert caller.outcome is outcome
    assert outcome.sip_status == status
    if error_code == "CALL_REJECTED":
        assert outcome.status is CallStatus.REJECTED
        assert outcome.error_code == "CALL_REJECTED"
    else:
        assert outcome.status is CallStatus.INCOMPLETED
        assert outcome.error_code == "INVALID_SIP_DESTINATION"
        assert outcome.bucket is FailureBucket.NO_CONNECTION
    assert outcome.ended_by is None


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_the_ringing_timeout_cancels_the_invite(transport: str) -> None:
    ringing = asyncio.Event()
    cancelled: list[bool] = []

    async def slow(call: SipCall) -> int:
        ringing.set()
        await call.wait_ended()  # keeps ringing until the CANCEL ends it
        cancelled.append(call.ended)
        return 200

    async def never(call: SipCall) -> None:
        raise AssertionError("a cancelled call must not reach the handler")

    async with SipEndpoint(never, screen=slow, recorder_factory=None) as endpoint:
        config = SipCallConfig(endpoint.uri(transport), ringing_timeout=0.5)
        caller = SipCaller(config)
        with pytest.raises(CallFailed) as failed:
            await asyncio.wait_for(caller.connect(), WAIT)
        await asyncio.wait_for(ringing.wait(), WAIT)
        for _ in range(500):
            if cancelled:
                break
            await asyncio.sleep(0.01)
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.NO_ANSWER
    assert outcome.error_code == "NO_ANSWER"
    assert outcome.sip_status == 487  # the INVITE was answered 487 after our CANCEL
    assert cancelled == [True]


@pytest.mark.parametrize(
    ("user", "password", "connects"),
    [("bluejay", "s3cret", True), ("bluejay", "wrong", False), (None, None, False)],
)
async def test_digest_credentials_from_the_config_answer_a_401(
    user: str | None, password: str | None, connects: bool
) -> None:
    answered: list[SipCall] = []

    async def agent(call: SipCall) -> None:
        answered.append(call)
        await call.hangup()

    async with SipEndpoint(
        agent, credentials={"bluejay": "s3cret"}, realm="sim.test", recorder_factory=None
    ) as endpoint:
        config = SipCallConfig(endpoint.uri("tcp"), auth_user=user, auth_password=password)
        caller = SipCaller(config)
        if connects:
            await asyncio.wait_for(caller.connect(), WAIT)
            outcome = await asyncio.wait_for(caller.wait_closed(), WAIT)
            assert outcome.status is CallStatus.COMPLETED and outcome.ended_by == "agent"
            assert caller.call is not None and caller.call.auth_attempts == 1
            assert len(answered) == 1
        else:
            with pytest.raises(CallFailed) as failed:
                await asyncio.wait_for(caller.connect(), WAIT)
            outcome = failed.value.outcome
            assert outcome.status is CallStatus.REJECTED
            assert outcome.error_code == "SIP_AUTH_FAILED"
            assert outcome.sip_status == 401
            assert answered == []


async def test_a_bye_from_the_agent_ends_the_call_as_completed(speech: bytes) -> None:
    async def brief(call: SipCall) -> None:
        await call.play(speech[: 32 * 600])  # 600 ms of its own voice, then hang up
        await call.hangup()

    async with SipEndpoint(brief, recorder_factory=None) as endpoint:
        caller = SipCaller(SipCallConfig(endpoint.uri("udp"), simulation_result_id="9"))
        await asyncio.wait_for(caller.connect(), WAIT)
        audio, events = await asyncio.wait_for(collect(caller), WAIT)
        outcome = await asyncio.wait_for(caller.hangup(), WAIT)
    assert [e.type for e in events] == ["bye"]
    assert outcome.status is CallStatus.COMPLETED
    assert outcome.ended_by == "agent"
    assert loud_ms(bytes(audio)) == pytest.approx(loud_ms(speech[: 32 * 600]), abs=60)
    # Playing after the end is refused politely, not with an exception.
    late = await caller.play(speech[:640])
    assert late.interrupted and late.played_ms == 0.0


async def test_interrupt_stops_an_utterance_mid_way(
    echo: tuple[SipEndpoint, EchoAgent], speech: bytes
) -> None:
    endpoint, _ = echo
    caller = SipCaller(SipCallConfig(endpoint.uri("udp")))
    await asyncio.wait_for(caller.connect(), WAIT)
    playing = asyncio.create_task(caller.play(speech, utterance_id="long-1"))
    await asyncio.sleep(0.4)
    caller.interrupt()
    result = await asyncio.wait_for(playing, WAIT)
    outcome = await asyncio.wait_for(caller.hangup(), WAIT)
    assert result.utterance_id == "long-1"
    assert result.interrupted
    assert 0 < result.played_ms < len(speech) / 32
    assert outcome.audio_sent_ms == pytest.approx(result.played_ms, abs=20)
    # A second utterance can follow an interrupted one (nothing left queued).
    assert caller.rtp is not None and caller.rtp.queued_ms == 0.0


async def test_an_unanswered_udp_invite_gives_up_after_timer_b() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    timers = TimerConfig(t1=0.02, t2=0.08, t4=0.1, timer_d=0.0)
    try:
        async with SipTransport(CoreConfig(host="127.0.0.1", port=0, timers=timers)) as shared:
            caller = SipCaller(SipCallConfig(f"sip:agent@127.0.0.1:{port}"), transport=shared)
            with pytest.raises(CallFailed) as failed:
                await asyncio.wait_for(caller.connect(), WAIT)
    finally:
        silent.close()
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.INCOMPLETED
    assert outcome.error_code == "SIP_DIAL_FAILED"
    assert outcome.bucket is FailureBucket.NO_CONNECTION
    assert outcome.sip_status is None


async def test_calls_can_share_one_transport(echo: tuple[SipEndpoint, EchoAgent]) -> None:
    endpoint, agent = echo
    async with SipTransport(CoreConfig(host="127.0.0.1", port=0)) as shared:
        callers = [
            SipCaller(
                SipCallConfig(endpoint.uri("udp"), simulation_result_id=f"s-{i}"), transport=shared
            )
            for i in range(5)
        ]
        await asyncio.wait_for(asyncio.gather(*(c.connect() for c in callers)), WAIT)
        outcomes = await asyncio.wait_for(asyncio.gather(*(c.hangup() for c in callers)), WAIT)
    assert all(o.status is CallStatus.COMPLETED for o in outcomes)
    assert sorted(c.simulation_result_id or "" for c in agent.calls) == [f"s-{i}" for i in range(5)]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"uri": "http://agent.example"}, "sip"),
        ({"uri": "sip:a@127.0.0.1", "headers": {"Via": "x"}}, "set by the caller"),
        ({"uri": "sip:a@127.0.0.1", "headers": {"X-Bad": "a\r\nInjected: 1"}}, "bad header"),
        ({"uri": "sip:a@127.0.0.1", "auth_password": "p"}, "auth user"),
        ({"uri": "sip:a@127.0.0.1", "simulation_result_id": "a\nb"}, "header-safe"),
        ({"uri": "sip:a@127.0.0.1", "transport": "sctp"}, "udp or tcp"),
    ],
)
def test_bad_configuration_is_refused_with_a_clear_error(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        SipCallConfig(**kwargs)  # type: ignore[arg-type]


async def test_roost_call_places_a_sip_call(
    echo: tuple[SipEndpoint, EchoAgent], speech_dir: Path, tmp_path: Path
) -> None:
    endpoint, agent = echo
    wav = speech_wav(speech_dir, SPEECH)
    record = tmp_path / "cli.wav"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from roost.cli import main; main()",
        "call",
        endpoint.uri("tcp"),
        "--simulation-result-id",
        "cli-42",
        "--header",
        "X-Campaign:spring",
        "--audio",
        str(wav),
        "--record",
        str(record),
        "--quiet",
        "0.5",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    assert b'"status": "COMPLETED"' in out
    (call,) = agent.calls
    assert call.simulation_result_id == "cli-42"
    assert call.header("X-Campaign") == "spring"
    assert record.stat().st_size > 44


async def test_roost_call_rejects_a_malformed_sip_header(speech_dir: Path) -> None:
    wav = speech_wav(speech_dir, SPEECH)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from roost.cli import main; main()",
        "call",
        "sip:agent@127.0.0.1:9",
        "--simulation-result-id",
        "1",
        "--header",
        "no-colon-here",
        "--audio",
        str(wav),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 2
    assert b"X-Name:value" in out + err
