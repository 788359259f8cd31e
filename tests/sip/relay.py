"""A lossy UDP relay for SIP retransmission tests (real sockets, seeded loss).

It sits between a SIP client and a server on 127.0.0.1: the client sends to
:attr:`LossyRelay.port`, the relay forwards each datagram to the target from a
socket of its own for that client (so the server's answers come back to that
socket and are forwarded to the client), and it drops a fixed fraction of the
datagrams in both directions with a seeded RNG so a failure can be replayed.
Only the signalling goes through it; RTP addresses come from SDP and bypass it.

Example::

    relay = await LossyRelay.start(("127.0.0.1", sipp_port), loss=0.2, seed=7)
    ...  # call sip:agent@127.0.0.1:{relay.port}
    assert relay.dropped > 0
    await relay.close()
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import cast

__all__ = ["LossyRelay", "RelayStats"]

Address = tuple[str, int]


@dataclass
class RelayStats:
    """Datagram counts, per direction (``up`` = client to server)."""

    forwarded_up: int = 0
    forwarded_down: int = 0
    dropped_up: int = 0
    dropped_down: int = 0
    dropped_first_lines: list[str] = field(default_factory=list)


class _Side(asyncio.DatagramProtocol):
    def __init__(self, relay: LossyRelay, client: Address | None) -> None:
        self.relay = relay
        self.client = client  # None for the client-facing socket
        self.transport: asyncio.DatagramTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if self.client is None:
            self.relay._from_client(data, addr)
        else:
            self.relay._from_server(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # ICMP port-unreachable after the far end exits: loss is the point here.
        pass


class LossyRelay:
    """Forward UDP both ways between clients and ``target``, dropping ``loss`` of it.

    Use :meth:`start`; call :meth:`close` when done.
    """

    def __init__(
        self,
        target: Address,
        loss: float,
        seed: int,
        force_up: frozenset[int] = frozenset(),
        force_down: frozenset[int] = frozenset(),
    ) -> None:
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"loss must be in [0, 1), not {loss}")
        self.target = target
        self.loss = loss
        self.force_up = force_up
        self.force_down = force_down
        self._seen_up = 0
        self._seen_down = 0
        self.stats = RelayStats()
        # One RNG per direction: each direction's drop pattern then depends only
        # on its own datagram sequence, not on how the two interleave in time.
        self._rng_up = random.Random(f"{seed}-up")
        self._rng_down = random.Random(f"{seed}-down")
        self._front: _Side | None = None
        self._upstream: dict[Address, _Side] = {}
        self._pending: dict[Address, list[bytes]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def start(
        cls,
        target: Address,
        *,
        loss: float = 0.2,
        seed: int = 0,
        force_up: frozenset[int] = frozenset(),
        force_down: frozenset[int] = frozenset(),
    ) -> LossyRelay:
        """Open the client-facing socket on a free 127.0.0.1 port.

        Args:
            target: Where client datagrams go.
            loss: Fraction dropped at random, each way.
            seed: Seed of the drop RNG.
            force_up: Datagram numbers (0-based, client to server) dropped
                whatever the RNG says, so that a test is sure to exercise
                a given retransmission (e.g. ``{0}``: the first INVITE).
            force_down: The same for server-to-client datagrams.
        """
        relay = cls(target, loss, seed, force_up, force_down)
        loop = asyncio.get_running_loop()
        _, front = await loop.create_datagram_endpoint(
            lambda: _Side(relay, None), local_addr=("127.0.0.1", 0)
        )
        relay._front = front
        return relay

    @property
    def port(self) -> int:
        """The port clients send to."""
        assert self._front is not None and self._front.transport is not None
        return int(self._front.transport.get_extra_info("sockname")[1])

    @property
    def dropped(self) -> int:
        """Datagrams dropped in both directions."""
        return self.stats.dropped_up + self.stats.dropped_down

    def _drop(self, rng: random.Random, data: bytes, forced: bool) -> bool:
        # Draw even when forced so the random pattern does not shift.
        if rng.random() >= self.loss and not forced:
            return False
        self.stats.dropped_first_lines.append(data.split(b"\r\n", 1)[0].decode(errors="replace"))
        return True

    def _from_client(self, data: bytes, client: Address) -> None:
        index, self._seen_up = self._seen_up, self._seen_up + 1
        if self._drop(self._rng_up, data, index in self.force_up):
            self.stats.dropped_up += 1
            return
        self.stats.forwarded_up += 1
        side = self._upstream.get(client)
        if side is not None and side.transport is not None:
            side.transport.sendto(data, self.target)
            return
        # The first datagram from a client opens its upstream socket; queue
        # whatever arrives while that is in progress so nothing is reordered.
        queue = self._pending.get(client)
        if queue is not None:
            queue.append(data)
            return
        self._pending[client] = [data]
        task = asyncio.get_running_loop().create_task(self._open_upstream(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_upstream(self, client: Address) -> None:
        loop = asyncio.get_running_loop()
        _, side = await loop.create_datagram_endpoint(
            lambda: _Side(self, client), local_addr=("127.0.0.1", 0)
        )
        self._upstream[client] = side
        assert side.transport is not None
        for data in self._pending.pop(client, []):
            side.transport.sendto(data, self.target)

    def _from_server(self, data: bytes, client: Address) -> None:
        index, self._seen_down = self._seen_down, self._seen_down + 1
        if self._drop(self._rng_down, data, index in self.force_down):
            self.stats.dropped_down += 1
            return
        self.stats.forwarded_down += 1
        if self._front is not None and self._front.transport is not None:
            self._front.transport.sendto(data, client)

    async def close(self) -> None:
        """Close every socket of the relay and wait until they are released."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        sides = [side for side in [self._front, *self._upstream.values()] if side is not None]
        for side in sides:
            if side.transport is not None:
                side.transport.close()
        await asyncio.wait_for(asyncio.gather(*(side.closed for side in sides)), 10.0)
        self._upstream.clear()
