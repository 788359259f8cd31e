"""An in-memory network that wires SIP cores together with explicit time.

No sockets and no sleeping: :class:`Network` carries the bytes one core sends
to another after a latency, and can drop, duplicate, delay (reorder) or
script-drop datagrams with a seeded RNG. :meth:`Network.run` advances a
virtual clock straight to the next delivery or timer deadline, so a 32-second
Timer B test takes microseconds. Stream ("TCP") links never lose or reorder
and are delivered in random-sized chunks to exercise the framer.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from roost.sip import CoreConfig, Event, Peer, SipCore, TimerConfig, Transmit
from roost.sip.events import Disconnect


@dataclass
class Node:
    """One core on the network and everything it emitted."""

    core: SipCore
    host: str
    port: int
    events: list[Event] = field(default_factory=list)
    sent: list[tuple[float, bytes, Peer]] = field(default_factory=list)
    on_event: Callable[[Node, Event, float], None] | None = None
    disconnects: list[Disconnect] = field(default_factory=list)

    def of(self, kind: type) -> list:
        """Events of one type."""
        return [e for e in self.events if isinstance(e, kind)]

    def sent_lines(self) -> list[str]:
        """First line of every message this node sent (including retransmissions)."""
        return [data.split(b"\r\n", 1)[0].decode() for _, data, _ in self.sent if data.strip()]


Filter = Callable[[Node, bytes, Peer], bool]


class Network:
    """Carries datagrams between :class:`Node` objects on a virtual clock."""

    def __init__(
        self,
        *,
        latency: float = 0.01,
        loss: float = 0.0,
        duplicate: float = 0.0,
        reorder: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.now = 0.0
        self.latency = latency
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.rng = random.Random(seed)
        self.nodes: dict[tuple[str, int], Node] = {}
        self.drop_filters: list[Filter] = []
        self.dropped: list[bytes] = []
        self._queue: list[tuple[float, int, tuple[str, int], Peer, bytes]] = []
        self._actions: list[tuple[float, int, Callable[[float], None]]] = []
        self._seq = itertools.count()

    def add(self, host: str, port: int, *, seed: int | None = None, **config: object) -> Node:
        """Create a core listening at ``host:port`` and attach it."""
        rng = random.Random(seed if seed is not None else self.rng.random())
        config.setdefault("timers", TimerConfig())
        core = SipCore(CoreConfig(host=host, port=port, rng=rng, **config))  # type: ignore[arg-type]
        node = Node(core, host, port)
        self.nodes[(host, port)] = node
        return node

    def at(self, when: float, action: Callable[[float], None]) -> None:
        """Run ``action(now)`` at virtual time ``when``."""
        heapq.heappush(self._actions, (when, next(self._seq), action))

    def drop_matching(self, predicate: Filter) -> None:
        """Drop every datagram for which ``predicate(sender, data, dest)`` is true."""
        self.drop_filters.append(predicate)

    def drop_first(self, marker: bytes, count: int = 1, sender: Node | None = None) -> None:
        """Drop the first ``count`` datagrams whose first line starts with ``marker``."""
        left = [count]

        def predicate(node: Node, data: bytes, peer: Peer) -> bool:
            if left[0] > 0 and data.startswith(marker) and (sender is None or node is sender):
                left[0] -= 1
                return True
            return False

        self.drop_matching(predicate)

    def _collect(self) -> None:
        for node in list(self.nodes.values()):
            while True:
                outputs = node.core.data_to_send()
                events = node.core.events_received()
                if not outputs and not events:
                    break
                for out in outputs:
                    if isinstance(out, Disconnect):
                        node.disconnects.append(out)
                        continue
                    assert isinstance(out, Transmit)
                    self._send(node, out)
                for event in events:
                    node.events.append(event)
                    if node.on_event is not None:
                        node.on_event(node, event, self.now)

    def _send(self, node: Node, out: Transmit) -> None:
        node.sent.append((self.now, out.data, out.peer))
        peer = out.peer
        src = Peer(node.host, node.port, peer.transport)
        if any(f(node, out.data, peer) for f in self.drop_filters):
            self.dropped.append(out.data)
            return
        if peer.reliable:
            self._enqueue(self.now + self.latency, (peer.host, peer.port), src, out.data)
            return
        if self.rng.random() < self.loss:
            self.dropped.append(out.data)
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        for _ in range(copies):
            delay = self.latency
            if self.rng.random() < self.reorder:
                delay += self.rng.uniform(0, 5 * self.latency)
            self._enqueue(self.now + delay, (peer.host, peer.port), src, out.data)

    def _enqueue(self, when: float, dest: tuple[str, int], src: Peer, data: bytes) -> None:
        heapq.heappush(self._queue, (when, next(self._seq), dest, src, data))

    def _deliver(self, dest: tuple[str, int], src: Peer, data: bytes) -> None:
        node = self.nodes.get(dest)
        if node is None:
            return
        if not src.reliable:
            node.core.receive_data(data, src, self.now)
            return
        pos = 0
        while pos < len(data):
            size = self.rng.randint(1, max(1, len(data) // 2))
            node.core.receive_data(data[pos : pos + size], src, self.now)
            pos += size

    def next_time(self) -> float | None:
        times = [d for n in self.nodes.values() if (d := n.core.next_deadline()) is not None]
        if self._queue:
            times.append(self._queue[0][0])
        if self._actions:
            times.append(self._actions[0][0])
        return min(times) if times else None

    def run(self, until: float, stop: Callable[[], bool] | None = None) -> None:
        """Advance virtual time to ``until`` (or until ``stop()`` is true)."""
        for _ in range(200_000):
            self._collect()
            if stop is not None and stop():
                return
            nxt = self.next_time()
            if nxt is None or nxt > until:
                self.now = until
                return
            self.now = max(self.now, nxt)
            while self._actions and self._actions[0][0] <= self.now:
                _, _, action = heapq.heappop(self._actions)
                action(self.now)
            while self._queue and self._queue[0][0] <= self.now:
                _, _, dest, src, data = heapq.heappop(self._queue)
                self._deliver(dest, src, data)
            for node in self.nodes.values():
                deadline = node.core.next_deadline()
                if deadline is not None and deadline <= self.now:
                    node.core.handle_timeout(self.now)
        raise AssertionError("network did not settle")
