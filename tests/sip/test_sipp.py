"""The SIPp harness and scenarios checked against SIPp itself.

Before a scenario is trusted to judge our caller or endpoint it has to pass
and fail for the right reasons with SIPp on both ends: the header-requiring
UAS accepts the header-carrying UAC over UDP and TCP and fails a call without
the header; SIPp's own retransmissions survive the lossy relay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sip.relay import LossyRelay
from tests.sip.sipp import SCENARIOS, Sipp, free_port, ulaw_speech

pytestmark = pytest.mark.sipp

SPEECH = "Hello, I would like to check the status of my order please."


@pytest.fixture
async def sipp(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = Sipp(tmp_path)
    yield runner
    await runner.close()


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_header_carrying_uac_passes_the_header_requiring_uas(
    sipp: Sipp, transport: str
) -> None:
    ulaw_speech(sipp.run_folder(), SPEECH)
    uas = await sipp.start(SCENARIOS / "uas_xhdr.xml", transport=transport)
    await uas.ready()
    ulaw_speech(sipp.run_folder(), SPEECH)
    uac = await sipp.start(
        SCENARIOS / "uac_xhdr.xml",
        remote=f"127.0.0.1:{uas.port}",
        transport=transport,
        keys={"simid": "sim-42"},
        extra=["-d", "500"],
    )
    client, server = await uac.wait(), await uas.wait()
    assert client.returncode == 0, client.describe()
    assert server.returncode == 0, server.describe()
    assert (server.successful, server.failed) == (1, 0)
    assert "GOT X-Simulation-Result-Id=sim-42-1 X-Call-Type=SIP" in server.log
    assert f"{transport.upper()} message received" in server.messages


async def test_the_uas_fails_a_call_without_the_header(sipp: Sipp) -> None:
    ulaw_speech(sipp.run_folder(), SPEECH)
    uas = await sipp.start(SCENARIOS / "uas_xhdr.xml")
    await uas.ready()
    # SIPp's built-in UAC sends a plain INVITE: no X-Simulation-Result-Id.
    uac = await sipp.start("uac", remote=f"127.0.0.1:{uas.port}", global_timeout=10)
    await uac.wait()
    server = await uas.wait()
    assert server.returncode == 1, server.describe()
    assert server.failed == 1 and server.successful == 0
    assert server.stats.get("FailedRegexpHdrNotFound(C)") == "1"
    assert "GOT X-Simulation-Result-Id" not in server.log


async def test_sipp_retransmissions_get_a_call_through_the_lossy_relay(sipp: Sipp) -> None:
    ulaw_speech(sipp.run_folder(), SPEECH)
    # SIPp gives up after 5 retransmissions by default; at 20 % loss each way a
    # whole exchange is lost 36 % of the time, so allow as many as our core.
    patient = ["-max_retrans", "10"]
    uas = await sipp.start(SCENARIOS / "uas_xhdr.xml", calls=3, extra=patient)
    await uas.ready()
    relay = await LossyRelay.start(("127.0.0.1", uas.port), loss=0.2, seed=3)
    try:
        ulaw_speech(sipp.run_folder(), SPEECH)
        uac = await sipp.start(
            SCENARIOS / "uac_xhdr.xml",
            remote=f"127.0.0.1:{relay.port}",
            keys={"simid": "lossy"},
            extra=["-d", "300", *patient],
            calls=3,
            rate=10,
        )
        client = await uac.wait()
        await uas.wait()
    finally:
        await relay.close()
    assert client.returncode == 0, client.describe()
    assert client.successful == 3
    assert relay.dropped > 0, relay.stats
    assert relay.stats.forwarded_down > 0, "answers must come back through the relay"


async def test_free_port_is_free_for_udp_and_tcp() -> None:
    import socket

    port = free_port()
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.bind(("127.0.0.1", port))


async def test_a_bad_scenario_is_reported_not_hung(sipp: Sipp, tmp_path: Path) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("<scenario><recv request=</scenario>")
    run = await sipp.start(broken, remote="127.0.0.1:9")
    result = await run.wait(seconds=30)
    assert result.returncode != 0
    assert result.successful == 0
