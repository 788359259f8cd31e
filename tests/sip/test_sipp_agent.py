"""Acceptance: a real SIPp UAC calls our agent endpoint (issue 5, "SIPp in CI").

SIPp sends an INVITE carrying ``X-Simulation-Result-Id`` and streams speech
rendered by espeak-ng over RTP (``rtp_stream``, PCMU), then hangs up with BYE.
The test checks what the agent saw (the id, every header in order), that the
audio arrived and is intelligible in length (energy-VAD speech duration close
to that of the file SIPp played), that the BYE was answered (SIPp only exits 0
after the 200 to its BYE), and that the end of the call triggered delivery: the
recorder's payload is in a real SQLite delivery outbox. Over UDP and TCP, and
through a lossy relay dropping 20 % of the signalling.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

import roost
from roost.audio import EnergyVad, read_wav
from roost.audio.pcm import duration_ms
from roost.delivery import Delivery, DeliveryConfig
from roost.sip import SipEndpoint
from roost.sip.endpoint import SipCall
from tests.sip.relay import LossyRelay
from tests.sip.sipp import SCENARIOS, Sipp, ulaw_speech
from tests.speech import speech_wav

pytestmark = pytest.mark.sipp

SPEECH = "Hello, this is a simulated customer. I would like to change my delivery address."
WAIT = 60.0


@roost.tool
def note_caller(headers: int) -> str:
    """Stands in for an agent tool so the payload has something to carry."""
    return f"{headers} headers"


class Agent:
    """An agent that listens to the whole call and records what it saw."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.done = asyncio.Event()

    async def __call__(self, call: SipCall) -> None:
        audio = bytearray()
        note_caller(len(call.headers))
        async for pcm in call.audio_in():
            audio += pcm
        self.calls.append(
            {
                "id": call.simulation_result_id,
                "headers": call.headers,
                "audio": bytes(audio),
                "end": call.end_reason,
                "recorder": call.recorder,
            }
        )
        self.done.set()


def speech_ms(pcm: bytes) -> float:
    """Milliseconds the energy VAD calls speech."""
    vad = EnergyVad(threshold_dbfs=-35.0)
    events = vad.push(pcm + bytes(32000))  # one second of trailing silence closes the last run
    total = 0.0
    start: float | None = None
    for event in events:
        if event.speaking:
            start = event.offset_ms
        elif start is not None:
            total += event.offset_ms - start
            start = None
    return total


@pytest.fixture
async def sipp(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = Sipp(tmp_path)
    yield runner
    await runner.close()


@pytest.fixture
def delivery(tmp_path: Path):  # type: ignore[no-untyped-def]
    # A real durable outbox; no API key, so nothing leaves the machine.
    config = DeliveryConfig(outbox_path=tmp_path / "outbox.sqlite3", api_key=None)
    service = Delivery(config, start=False, register_atexit=False)
    yield service
    service.close(timeout=0)


async def call_agent(
    sipp: Sipp,
    delivery: Delivery,
    *,
    transport: str,
    simid: str,
    relay_loss: float = 0.0,
) -> tuple[Agent, Any, float]:
    agent = Agent()
    folder = sipp.run_folder()
    ulaw = ulaw_speech(folder, SPEECH)
    sent_ms = len(ulaw.read_bytes()) / 8.0
    relay: LossyRelay | None = None
    async with SipEndpoint(
        agent,
        transports=(transport,),
        recorder_factory=lambda sid: roost.CallRecorder(sid, sink=delivery),
    ) as endpoint:
        port = endpoint.tcp_port if transport == "tcp" else endpoint.port
        extra = ["-d", str(int(sent_ms) + 800)]
        if relay_loss:
            # Beyond the random 20 %, always lose the first INVITE (SIPp must
            # retransmit it) and our first 200 OK (we must retransmit it).
            relay = await LossyRelay.start(
                ("127.0.0.1", port),
                loss=relay_loss,
                seed=11,
                force_up=frozenset({0}),
                force_down=frozenset({2}),
            )
            port = relay.port
            extra += ["-max_retrans", "10"]
        try:
            uac = await sipp.start(
                SCENARIOS / "uac_xhdr.xml",
                remote=f"127.0.0.1:{port}",
                transport=transport,
                keys={"simid": simid},
                extra=extra,
            )
            result = await uac.wait(seconds=WAIT)
            assert result.returncode == 0, result.describe()
            assert (result.successful, result.failed) == (1, 0), result.describe()
            await asyncio.wait_for(agent.done.wait(), WAIT)
        finally:
            if relay is not None:
                await relay.close()
    if relay is not None:
        lost = relay.stats.dropped_first_lines
        assert lost[0].startswith("INVITE ") and "SIP/2.0 200 OK" in lost, relay.stats
        assert relay.stats.forwarded_down > 0
    return agent, result, sent_ms


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_uac_reaches_the_agent_with_id_speech_and_bye(
    sipp: Sipp, delivery: Delivery, transport: str, tmp_path: Path
) -> None:
    agent, result, sent_ms = await call_agent(
        sipp, delivery, transport=transport, simid=f"sim-{transport}"
    )
    [seen] = agent.calls
    expected_id = f"sim-{transport}-1"

    # The id, extracted with the SDK, and every header in the order sent.
    assert seen["id"] == expected_id
    names = [name for name, _ in seen["headers"]]
    x_headers = [(n, v) for n, v in seen["headers"] if n.lower().startswith("x-")]
    assert x_headers == [
        ("X-Simulation-Result-Id", expected_id),
        ("X-Call-Type", "SIP"),
        ("X-Test-Order", "first"),
    ]
    assert "Via" in names and "Contact" in names

    # Audio arrived, and as much speech as SIPp played.
    sent_pcm = read_wav(speech_wav(sipp.run_folder(), SPEECH))
    got_ms = duration_ms(seen["audio"])
    assert got_ms >= 0.9 * sent_ms, (got_ms, sent_ms)
    spoken_sent, spoken_got = speech_ms(sent_pcm), speech_ms(seen["audio"])
    assert spoken_sent > 2000
    assert abs(spoken_got - spoken_sent) <= max(300.0, 0.15 * spoken_sent), (
        spoken_got,
        spoken_sent,
    )

    # SIPp's BYE ended the call from the remote side, and the 200 reached it.
    assert seen["end"] is not None and seen["end"].ended_by == "remote"
    assert f"{transport.upper()} message received" in result.messages
    assert "SIP/2.0 200 OK" in result.messages.split("BYE sip:")[-1]

    # The end of the call submitted the recorder's payload to the delivery outbox.
    recorder = seen["recorder"]
    assert isinstance(recorder, roost.CallRecorder)
    for _ in range(200):
        if recorder.outbox_id is not None:
            break
        await asyncio.sleep(0.05)
    [entry] = delivery.outbox.entries()
    body = json.loads(delivery.outbox.body(entry.id))
    assert json.dumps(body).count(expected_id) >= 1
    assert [tool["name"] for tool in body["tool_calls"]] == ["note_caller"]


async def test_sipp_uac_call_completes_through_a_lossy_relay(
    sipp: Sipp, delivery: Delivery
) -> None:
    agent, result, _ = await call_agent(
        sipp, delivery, transport="udp", simid="sim-lossy", relay_loss=0.2
    )
    [seen] = agent.calls
    assert seen["id"] == "sim-lossy-1"
    assert seen["end"] is not None and seen["end"].ended_by == "remote"
    assert duration_ms(seen["audio"]) > 2000
