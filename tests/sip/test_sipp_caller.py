"""Acceptance: our SIP caller calls real SIPp UAS scenarios (issue 5, "SIPp in CI").

- ``uas_xhdr.xml`` fails the call unless the INVITE carries
  ``X-Simulation-Result-Id`` and ``X-Call-Type`` and logs both; it streams
  speech back over RTP until our BYE. Over UDP and TCP, and through a lossy
  relay dropping 20 % of the signalling (plus, for certain, our first INVITE
  and SIPp's first 200 OK, so both retransmission paths run).
- ``uas_auth.xml`` challenges with a digest 401 and only answers a retry whose
  Authorization verifies; a wrong password gets 403.
- ``uas_busy.xml`` answers 486 (-> REJECTED / CALL_REJECTED).
- ``uas_ring.xml`` rings forever, so our ringing timeout CANCELs (-> NO_ANSWER).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from roost.audio import EnergyVad, read_wav
from roost.audio.pcm import duration_ms
from roost.caller import AgentAudio, CallDriver, CallFailed, CallStatus
from roost.sip import CoreConfig
from roost.sip.caller import SipCallConfig, SipCaller
from roost.sip.transport import SipTransport
from tests.sip.relay import LossyRelay
from tests.sip.sipp import SCENARIOS, Sipp, SippProcess, ulaw_speech
from tests.speech import speech_pcm

pytestmark = pytest.mark.sipp

AGENT_SPEECH = "Thank you for calling. How can I help you today?"
CALLER_SPEECH = "Hi, I am calling about my last invoice."
WAIT = 60.0


@pytest.fixture
async def sipp(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = Sipp(tmp_path)
    yield runner
    await runner.close()


@pytest.fixture
async def shared():  # type: ignore[no-untyped-def]
    """One SIP transport for the test's calls, closed after SIPp has finished.

    A caller that owns its transport closes its TCP connection right after
    the 200 to its BYE; SIPp 3.6.1 races that close against the end of its
    own scenario and may count the call as FailedTcpClosed. The platform keeps
    its transport open across calls, which is what this mirrors.
    """
    transport = await SipTransport(CoreConfig(host="127.0.0.1", port=0)).start()
    yield transport
    await transport.close()


async def start_uas(sipp: Sipp, scenario: str, transport: str = "udp", **kw: object) -> SippProcess:
    ulaw_speech(sipp.run_folder(), AGENT_SPEECH)
    uas = await sipp.start(SCENARIOS / scenario, transport=transport, **kw)  # type: ignore[arg-type]
    await uas.ready()
    return uas


def speech_ms(pcm: bytes) -> float:
    total, start = 0.0, None
    for event in EnergyVad(threshold_dbfs=-35.0).push(pcm + bytes(32000)):
        if event.speaking:
            start = event.offset_ms
        elif start is not None:
            total += event.offset_ms - start
    return total


async def converse(caller: SipCaller, pcm: bytes) -> tuple[bytes, list[str]]:
    """Connect, say ``pcm`` while collecting the agent's audio, hang up."""
    assert isinstance(caller, CallDriver)
    await asyncio.wait_for(caller.connect(), WAIT)
    heard = bytearray()
    events: list[str] = []

    async def listen() -> None:
        async for item in caller.agent_stream():
            if isinstance(item, AgentAudio):
                heard.extend(item.pcm)
            else:
                events.append(item.type)

    listener = asyncio.create_task(listen())
    result = await asyncio.wait_for(caller.play(pcm), WAIT)
    assert not result.interrupted and result.played_ms == pytest.approx(duration_ms(pcm), abs=25)
    await asyncio.wait_for(caller.hangup(), WAIT)
    await asyncio.wait_for(listener, WAIT)
    return bytes(heard), events


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_caller_reaches_a_uas_that_requires_the_header(
    sipp: Sipp, shared: SipTransport, tmp_path: Path, transport: str
) -> None:
    uas = await start_uas(sipp, "uas_xhdr.xml", transport)
    recording = tmp_path / "call.wav"
    caller = SipCaller(
        SipCallConfig(
            uas.uri("agent"),
            simulation_result_id="720488",
            headers={"X-Agent-Config": "support-v2"},
            record_path=recording,
        ),
        transport=shared,
    )
    pcm = speech_pcm(tmp_path, CALLER_SPEECH)
    heard, _ = await converse(caller, pcm)
    outcome = caller.outcome
    assert outcome is not None and outcome.status is CallStatus.COMPLETED, outcome
    assert outcome.ended_by == "caller" and outcome.sip_status == 200

    result = await uas.wait(seconds=WAIT)
    assert result.returncode == 0, result.describe()
    assert (result.successful, result.failed) == (1, 0)
    # SIPp saw the header (its scenario fails the call without it) and logged it.
    assert "GOT X-Simulation-Result-Id=720488 X-Call-Type=SIP" in result.log
    assert "X-Agent-Config: support-v2" in result.messages
    assert f"{transport.upper()} message received" in result.messages

    # SIPp's speech reached us while we talked; the recording holds both sides.
    assert speech_ms(heard) > 500, duration_ms(heard)
    assert outcome.audio_sent_ms == pytest.approx(duration_ms(pcm), abs=25)
    assert recording.exists() and duration_ms(read_wav(recording)) > 0


async def test_caller_answers_a_digest_challenge(sipp: Sipp, shared: SipTransport) -> None:
    uas = await start_uas(sipp, "uas_auth.xml")
    caller = SipCaller(
        SipCallConfig(
            uas.uri("agent"),
            simulation_result_id="auth-1",
            auth_user="agent",
            auth_password="secret",
        ),
        transport=shared,
    )
    await asyncio.wait_for(caller.connect(), WAIT)
    outcome = await asyncio.wait_for(caller.hangup(), WAIT)
    assert outcome.status is CallStatus.COMPLETED, outcome

    result = await uas.wait(seconds=WAIT)
    assert result.returncode == 0, result.describe()
    assert "AUTH valid=true X-Simulation-Result-Id=auth-1" in result.log
    assert result.messages.count("SIP/2.0 401 Unauthorized") == 1


async def test_a_wrong_password_ends_as_an_auth_failure(sipp: Sipp, shared: SipTransport) -> None:
    uas = await start_uas(sipp, "uas_auth.xml")
    caller = SipCaller(
        SipCallConfig(
            uas.uri("agent"), simulation_result_id="auth-2", auth_user="agent", auth_password="no"
        ),
        transport=shared,
    )
    with pytest.raises(CallFailed) as failed:
        await asyncio.wait_for(caller.connect(), WAIT)
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.REJECTED, outcome
    assert outcome.error_code == "SIP_AUTH_FAILED" and outcome.sip_status == 403
    result = await uas.wait(seconds=WAIT)
    assert "AUTH valid=false" in result.log
    assert result.failed == 1  # the scenario fails the call on purpose


async def test_a_busy_agent_is_call_rejected(sipp: Sipp, shared: SipTransport) -> None:
    uas = await start_uas(sipp, "uas_busy.xml")
    caller = SipCaller(
        SipCallConfig(uas.uri("agent"), simulation_result_id="busy-1"), transport=shared
    )
    with pytest.raises(CallFailed) as failed:
        await asyncio.wait_for(caller.connect(), WAIT)
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.REJECTED, outcome
    assert outcome.error_code == "CALL_REJECTED" and outcome.sip_status == 486
    assert caller.outcome is outcome
    result = await uas.wait(seconds=WAIT)
    # SIPp only completes the call once our ACK of the 486 arrived.
    assert result.returncode == 0, result.describe()


async def test_ringing_timeout_cancels_the_call(sipp: Sipp, shared: SipTransport) -> None:
    uas = await start_uas(sipp, "uas_ring.xml")
    caller = SipCaller(
        SipCallConfig(uas.uri("agent"), simulation_result_id="ring-1", ringing_timeout=1.5),
        transport=shared,
    )
    with pytest.raises(CallFailed) as failed:
        await asyncio.wait_for(caller.connect(), WAIT)
    outcome = failed.value.outcome
    assert outcome.status is CallStatus.NO_ANSWER, outcome
    assert outcome.error_code == "NO_ANSWER"
    result = await uas.wait(seconds=WAIT)
    # SIPp got our CANCEL, answered it, sent 487 and got our ACK of the 487.
    assert result.returncode == 0, result.describe()
    assert "GOT CANCEL" in result.log
    assert "SIP/2.0 487 Request Terminated" in result.messages


async def test_call_completes_through_a_lossy_relay(
    sipp: Sipp, shared: SipTransport, tmp_path: Path
) -> None:
    uas = await start_uas(sipp, "uas_xhdr.xml", extra=["-max_retrans", "10"])
    # 20 % random loss each way, and certainly our first INVITE and SIPp's
    # first 200 OK (the second datagram it sends, after 100 Trying).
    relay = await LossyRelay.start(
        ("127.0.0.1", uas.port),
        loss=0.2,
        seed=5,
        force_up=frozenset({0}),
        force_down=frozenset({1}),
    )
    try:
        caller = SipCaller(
            SipCallConfig(f"sip:agent@127.0.0.1:{relay.port}", simulation_result_id="lossy-1"),
            transport=shared,
        )
        heard, _ = await converse(caller, speech_pcm(tmp_path, CALLER_SPEECH))
        result = await uas.wait(seconds=WAIT)
    finally:
        await relay.close()
    outcome = caller.outcome
    assert outcome is not None and outcome.status is CallStatus.COMPLETED, outcome
    assert result.returncode == 0, result.describe()
    assert "GOT X-Simulation-Result-Id=lossy-1" in result.log
    lost = relay.stats.dropped_first_lines
    assert lost[0].startswith("INVITE ") and "SIP/2.0 200 OK" in lost, relay.stats
    # Both sides retransmitted: SIPp saw our INVITE again, we saw its 200 again.
    assert result.messages.count("INVITE sip:agent@") >= 1
    assert int(result.stats.get("Retransmissions(C)", "0")) >= 1
    assert speech_ms(heard) > 500
