"""The lossy UDP relay on real sockets: forwards both ways, drops what it says it drops."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from tests.sip.relay import LossyRelay

Address = tuple[str, int]


class Echo(asyncio.DatagramProtocol):
    """Echoes every datagram back to its sender, prefixed with ``echo:``."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.transport.sendto(b"echo:" + data, addr)


class Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.received.append(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set_result(None)


async def run_through(
    loss: float, seed: int, count: int, **force: frozenset[int]
) -> tuple[LossyRelay, list[bytes]]:
    loop = asyncio.get_running_loop()
    echo_transport, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    echo_port = echo_transport.get_extra_info("sockname")[1]
    relay = await LossyRelay.start(("127.0.0.1", echo_port), loss=loss, seed=seed, **force)
    transport, client = await loop.create_datagram_endpoint(
        Client, remote_addr=("127.0.0.1", relay.port)
    )
    try:
        for i in range(count):
            transport.sendto(b"%d" % i)
            await asyncio.sleep(0.001)  # keep the order: the relay's sockets are real
        expected = relay.stats.forwarded_up
        for _ in range(500):
            if relay.stats.forwarded_down + relay.stats.dropped_down >= expected:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
    finally:
        transport.close()
        echo_transport.close()
        await client.closed
        await relay.close()
    return relay, client.received


async def test_without_loss_everything_comes_back_in_order() -> None:
    relay, received = await run_through(0.0, 1, 50)
    assert received == [b"echo:%d" % i for i in range(50)]
    assert relay.dropped == 0


async def test_twenty_percent_loss_is_applied_each_way_and_seeded() -> None:
    relay, received = await run_through(0.2, 7, 400)
    stats = relay.stats
    assert stats.forwarded_up + stats.dropped_up == 400
    # 400 draws at p=0.2: mean 80, sd 8; the seed makes this exact run repeatable.
    assert 40 < stats.dropped_up < 120
    assert stats.forwarded_down + stats.dropped_down == stats.forwarded_up
    assert stats.dropped_down > 0
    assert len(received) == stats.forwarded_down
    again, _ = await run_through(0.2, 7, 400)
    assert again.stats.dropped_up == stats.dropped_up


async def test_forced_drops_hit_the_numbered_datagrams() -> None:
    relay, received = await run_through(
        0.0, 1, 5, force_up=frozenset({0}), force_down=frozenset({1})
    )
    assert relay.stats.dropped_first_lines == ["0", "echo:2"]
    assert received == [b"echo:1", b"echo:3", b"echo:4"]


async def test_loss_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="loss"):
        await LossyRelay.start(("127.0.0.1", 9), loss=1.0)
