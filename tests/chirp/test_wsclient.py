"""The caller's WebSocket transport on hand-built frames: the fast path and its hand-offs."""

from __future__ import annotations

import asyncio
import os

import pytest

from roost.caller import AgentAudio, AgentEvent, CallStatus
from roost.chirp import ChirpCaller
from roost.chirp.wsclient import HandshakeRejected, open_websocket
from tests.chirp.rawagent import Call, raw_agent, until


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bytes | None = None
) -> bytes:
    """RFC 6455 §5.2 framing, written out by hand for the test."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    size = len(payload)
    flag = 0x80 if mask else 0
    if size < 126:
        head += bytes([flag | size])
    elif size < 1 << 16:
        head += bytes([flag | 126]) + size.to_bytes(2, "big")
    else:
        head += bytes([flag | 127]) + size.to_bytes(8, "big")
    if mask:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        head += mask
    return head + payload


async def collect(chirp: ChirpCaller, count: int) -> list[AgentAudio | AgentEvent]:
    items: list[AgentAudio | AgentEvent] = []
    async for item in chirp.agent_stream():
        items.append(item)
        if len(items) == count:
            break
    return items


async def test_frames_of_every_length_form_survive_any_segmentation() -> None:
    small, medium, large = os.urandom(100), os.urandom(640), os.urandom(70_000)
    stream = (
        frame(2, small)
        + frame(2, medium)
        + frame(2, large)
        + frame(1, b'{"type":"mark","data":{"name":"m"}}')
    )

    async def agent(call: Call) -> None:
        transport = call.connection.transport
        for cut in (1, 2, 3, 5, 9, 100, 4000):  # header, length and payload split every way
            stream_part, rest = stream[:cut], stream[cut:]
            transport.write(stream_part)
            await asyncio.sleep(0.002)
            transport.write(rest[:7])
            await asyncio.sleep(0.002)
            transport.write(rest[7:])
            await asyncio.sleep(0.002)
        await call.drain()

    async with raw_agent(agent) as raw:
        chirp = ChirpCaller(raw.url)
        await chirp.connect()
        items = await collect(chirp, 28)
        outcome = await chirp.hangup()
    assert raw.calls
    for group in range(7):
        a, b, c, d = items[4 * group : 4 * group + 4]
        assert isinstance(a, AgentAudio) and a.pcm == small
        assert isinstance(b, AgentAudio) and b.pcm == medium
        assert isinstance(c, AgentAudio) and c.pcm == large
        assert isinstance(d, AgentEvent) and d.data == {"name": "m"}
    assert outcome.status is CallStatus.COMPLETED


async def test_pings_between_data_frames_are_answered() -> None:
    pongs: list[float] = []

    async def agent(call: Call) -> None:
        waiter = await call.connection.ping(b"are you there")
        # Data on both sides of the ping in one segment.
        call.connection.transport.write(
            frame(2, bytes(640)) + frame(9, b"second") + frame(2, bytes(640))
        )
        pongs.append(await asyncio.wait_for(waiter, 5))
        await call.drain()

    async with raw_agent(agent) as raw:
        chirp = ChirpCaller(raw.url)
        await chirp.connect()
        items = await collect(chirp, 2)
        await until(lambda: bool(pongs))
        outcome = await chirp.hangup()
    assert raw.calls
    assert all(isinstance(item, AgentAudio) for item in items)
    assert outcome.status is CallStatus.COMPLETED


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (frame(2, bytes(64), mask=b"abcd"), 1002),  # servers must not mask
        (frame(2, bytes(64), rsv=4), 1002),  # no extension was negotiated
        (frame(0, bytes(64)), 1002),  # continuation without a start
        (frame(2, bytes(2000)), 1009),  # over max_message_size
    ],
)
async def test_protocol_violations_fail_the_call_through_websockets(bad: bytes, code: int) -> None:
    async def agent(call: Call) -> None:
        call.connection.transport.write(frame(2, bytes(640)) + bad)
        await call.drain()

    async with raw_agent(agent) as raw:
        chirp = ChirpCaller(raw.url, max_message_size=1000)
        await chirp.connect()
        outcome = await chirp.wait_closed()
    assert raw.calls
    assert outcome.status is CallStatus.INCOMPLETED
    assert outcome.error_code == "WEBSOCKET_PROTOCOL_ERROR"
    assert outcome.close_code == code
    assert outcome.audio_received_ms == 20.0  # the good frame before it still counted


async def test_open_websocket_reports_the_refusal_details() -> None:
    async with raw_agent(lambda call: call.drain(), status=401) as raw:
        with pytest.raises(HandshakeRejected) as refused:
            await open_websocket(raw.url, None)
    assert refused.value.status == 401
    assert refused.value.headers["content-type"].startswith("text/plain")
