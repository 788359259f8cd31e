"""RTP media cost per call: :class:`roost.sip.media.RtpSession` against bare sockets.

One process holds ``--calls`` agent-side RTP sessions on loopback. A feeder
(one ticker subscriber with one plain UDP socket per call, never read) sends
each session a real G.711 packet every 20 ms, so every session receives 50
packets/s, decodes and resamples them to 16 kHz, hands them to ``on_audio``,
which queues them straight back (an echo agent), and sends 50 packets/s.

Baseline, measured in the same run with the same feeder and the same shared
:class:`~roost.media.MediaTicker`: per call, a bare non-blocking UDP socket
whose ticker callback does one ``sendto`` of a prebuilt packet and whose
reader only counts datagrams (the least a Python RTP stack can do).

Printed per step: CPU of the process in % of one core, CPU microseconds per
call per 20 ms tick (send + receive), send lateness p50/p99/max (packet
``sent_at - deadline``) and the ratio of RtpSession CPU to bare-socket CPU;
plus the load average (the machine is shared).

Usage::

    .venv/bin/python benchmarks/sip_media.py                  # 300 calls, 8 s per step
    .venv/bin/python benchmarks/sip_media.py --calls 100 --seconds 4
    .venv/bin/python benchmarks/sip_media.py --profile out.prof   # cProfile the RtpSession step
"""

from __future__ import annotations

import argparse
import array
import asyncio
import cProfile
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402

from roost.media import MediaTicker  # noqa: E402
from roost.sip.g711 import ulaw_encode  # noqa: E402
from roost.sip.media import RtpSession  # noqa: E402
from roost.sip.rtp import pack_rtp  # noqa: E402
from roost.sip.sdp import NegotiatedMedia  # noqa: E402


def tone_payloads(count: int = 50) -> list[bytes]:
    """One second of a 440 Hz tone as 20 ms μ-law payloads (not silence: real work)."""
    t = np.arange(8000 * count // 50) / 8000.0
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2")
    data = ulaw_encode(pcm)
    return [data[i : i + 160] for i in range(0, len(data), 160)]


class Lateness:
    def __init__(self) -> None:
        self.samples = array.array("d")

    def __call__(self, deadline: float, sent_at: float) -> None:
        self.samples.append((sent_at - deadline) * 1000.0)

    def percentile(self, q: float) -> float:
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


class Feeder:
    """Sends every target one RTP packet per tick from its own socket."""

    def __init__(self, targets: list[tuple[str, int]]) -> None:
        self.payloads = tone_payloads()
        self.targets = targets
        self.socks = []
        for _ in targets:
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            sock.setblocking(False)
            self.socks.append(sock)
        self.seq = 0

    def __call__(self, deadline: float) -> None:
        seq = self.seq
        self.seq = seq + 1
        packet = pack_rtp(0, seq, seq * 160, 0x1234, self.payloads[seq % len(self.payloads)])
        for sock, target in zip(self.socks, self.targets, strict=True):
            try:
                sock.sendto(packet, target)
            except OSError:
                pass

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


class Bare:
    """The baseline call: one socket, one prebuilt packet sent per tick, reads counted."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_frame: Lateness) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.loop = loop
        self.on_frame = on_frame
        self.received = 0
        self.target: tuple[str, int] | None = None
        self.packet = pack_rtp(0, 1, 160, 7, b"\xff" * 160)
        loop.add_reader(self.sock.fileno(), self._read)

    def _read(self) -> None:
        try:
            _, source = self.sock.recvfrom(2048)
        except OSError:
            return
        self.received += 1
        self.target = source

    def tick(self, deadline: float) -> None:
        if self.target is not None:
            self.sock.sendto(self.packet, self.target)
            self.on_frame(deadline, self.loop.time())

    def close(self) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()


async def run_step(kind: str, calls: int, seconds: float, profile: str | None) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    ticker = MediaTicker.for_running_loop()
    lateness = Lateness()
    closers = []
    subs = []
    ports: list[int] = []
    if kind == "bare":
        bares = [Bare(loop, lateness) for _ in range(calls)]
        for bare in bares:
            subs.append(ticker.subscribe(bare.tick))
            closers.append(bare.close)
            ports.append(bare.port)
    else:
        sessions = []
        for _ in range(calls):
            session = RtpSession("127.0.0.1", on_frame=lateness, ticker=ticker)
            session.on_audio = lambda pcm, at, s=session: s.queue(pcm)  # type: ignore[misc]
            ports.append(await session.open())
            sessions.append(session)
            closers.append(session.close)
    feeder = Feeder([("127.0.0.1", port) for port in ports])
    if kind != "bare":
        for session, sock in zip(sessions, feeder.socks, strict=True):
            session.start(NegotiatedMedia("PCMU", 0, 8000, sock.getsockname()))
    subs.append(ticker.subscribe(feeder))
    await asyncio.sleep(1.0)  # settle: latch, resampler warm-up
    lateness.samples = array.array("d")
    load_before = os.getloadavg()[0]
    profiler = cProfile.Profile() if profile else None
    cpu0, wall0 = time.process_time(), time.monotonic()
    if profiler is not None:
        profiler.enable()
    await asyncio.sleep(seconds)
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    for sub in subs:
        sub.cancel()
    for close in closers:
        close()
    feeder.close()
    ticks = wall / 0.020
    return {
        "cpu_pct": 100.0 * cpu / wall,
        "us_per_call_tick": cpu / ticks / calls * 1e6,
        "lateness": lateness,
        "load": (load_before, os.getloadavg()[0]),
    }


async def main(args: argparse.Namespace) -> None:
    print(f"{args.calls} calls, {args.seconds:.0f} s per step, cores {os.cpu_count()}")
    print(
        f"{'step':<12}{'cpu%':>6}{'us/call/tick':>14}{'p50ms':>8}{'p99ms':>8}{'maxms':>8}"
        f"{'packets':>9}{'load0':>7}{'load1':>7}"
    )
    results = {}
    for kind in ("bare", "rtpsession"):
        profile = args.profile if kind == "rtpsession" else None
        data = results[kind] = await run_step(kind, args.calls, args.seconds, profile)
        lat: Lateness = data["lateness"]
        print(
            f"{kind:<12}{data['cpu_pct']:>6.0f}{data['us_per_call_tick']:>14.1f}"
            f"{lat.percentile(50):>8.2f}{lat.percentile(99):>8.2f}"
            f"{max(lat.samples, default=0.0):>8.1f}{len(lat.samples):>9}"
            f"{data['load'][0]:>7.2f}{data['load'][1]:>7.2f}",
            flush=True,
        )
    ratio = results["rtpsession"]["us_per_call_tick"] / results["bare"]["us_per_call_tick"]
    print(f"RtpSession CPU / bare-socket CPU per call-tick = {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--profile", help="write a cProfile of the RtpSession step here")
    asyncio.run(main(parser.parse_args()))
