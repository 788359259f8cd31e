"""SIP load: setups/s, concurrent calls held, failed calls and RTP send lateness.

Two directions, each at rising call rates, everything on loopback with real
SIPp processes (Debian ``sip-tester``) and real RTP:

- **agent side**: SIPp places ``--calls`` calls (``uac_xhdr.xml``: INVITE with
  ``X-Simulation-Result-Id``, espeak-ng speech streamed over RTP with
  ``rtp_stream``) at rate R to one :class:`roost.sip.SipEndpoint` in this
  process, whose handler echoes every 20 ms of caller audio back (so every
  call sends and receives RTP the whole time). Each call is held long enough
  (``calls / R + --hold`` seconds) for all of them to be up at once.
- **caller side**: this process starts ``--calls`` :class:`roost.sip.caller.SipCaller`
  calls at rate R (sharing one SIP transport) to a SIPp UAS
  (``uas_xhdr.xml``, which requires the header and streams speech back), each
  playing real speech for the hold time, then hanging up.

Measured per step:

- **setups/s**: calls answered divided by the time from the first answer to
  the last (the rate the system actually sustained; SIPp offers R);
- **held**: the most calls up at the same time in our process (sampled every
  100 ms);
- **failed**: calls SIPp failed plus calls our side did not complete;
- **RTP lateness p50/p99/max**: for every RTP packet our process sent,
  ``sent_at - deadline`` on the loop's monotonic clock (the packet's ideal send
  time is its 20 ms tick of the shared :class:`~roost.media.MediaTicker`);
- **CPU**: this process's user+system CPU over the step, in % of one core;
  the 1-minute load average before and after (the machine is shared).

Baselines, measured in the same run:

- setups/s: **SIPp against SIPp** (the same UAC and UAS scenarios, same rate,
  calls, hold and RTP), the fastest pairing the tester itself achieves on this
  machine; the ratio is ours divided by SIPp's (1.0 = as fast as SIPp);
- lateness: the p99 lateness of an idle :class:`MediaTicker` subscriber in this
  process for 3 s just before each step (how late the machine wakes us up with
  no calls at all); the ratio is the loaded p99 over the idle p99.

The machine is shared, so a separate, nearly idle process measures how late
``time.sleep(5 ms)`` wakes up during each step (the "stall probe"): when its
p99 is high, other workloads held the cores.

Usage::

    .venv/bin/python benchmarks/sip_load.py                       # 300 calls at 25, 50, 100, 200/s
    .venv/bin/python benchmarks/sip_load.py --calls 50 --rates 50 --hold 2
    .venv/bin/python benchmarks/sip_load.py --gc-freeze            # startup objects frozen
"""

from __future__ import annotations

import argparse
import array
import asyncio
import gc
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.sip.sipp import SCENARIOS, Sipp, SippProcess, ulaw_speech  # noqa: E402
from tests.speech import speech_pcm  # noqa: E402

from roost.caller import CallFailed, CallStatus  # noqa: E402
from roost.media import MediaTicker  # noqa: E402
from roost.sip import CoreConfig, SipEndpoint  # noqa: E402
from roost.sip.caller import SipCallConfig, SipCaller  # noqa: E402
from roost.sip.endpoint import SipCall  # noqa: E402
from roost.sip.transport import SipTransport  # noqa: E402

SPEECH = (
    "Hello, I am calling about my order. It was supposed to arrive on Tuesday "
    "but nothing came, and the tracking page has not changed for three days."
)


class Lateness:
    """RTP send lateness samples in milliseconds (preallocated-friendly array)."""

    def __init__(self) -> None:
        self.samples = array.array("d")

    def __call__(self, deadline: float, sent_at: float) -> None:
        self.samples.append((sent_at - deadline) * 1000.0)

    def percentile(self, q: float) -> float:
        if not self.samples:
            return float("nan")
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q / 100.0 * len(ordered)))]


class Step:
    """CPU, load average and garbage-collector pauses around one step."""

    def __init__(self) -> None:
        self.load_before = os.getloadavg()[0]
        self.cpu_before = self._cpu()
        self.wall_before = time.monotonic()
        self.gc_pauses: list[float] = []
        self._gc_start = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.gc_pauses.append((time.perf_counter() - self._gc_start) * 1000.0)

    @staticmethod
    def _cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    def finish(self) -> dict[str, float]:
        gc.callbacks.remove(self._on_gc)
        wall = time.monotonic() - self.wall_before
        return {
            "gc_max_ms": max(self.gc_pauses, default=0.0),
            "gc_total_ms": sum(self.gc_pauses),
            "cpu_pct": 100.0 * (self._cpu() - self.cpu_before) / wall if wall else 0.0,
            "load_before": self.load_before,
            "load_after": os.getloadavg()[0],
        }


def rate_of(times: list[float]) -> float:
    """Setups per second over a list of setup times (seconds)."""
    if len(times) < 2 or times[-1] == times[0]:
        return float("nan")
    return (len(times) - 1) / (times[-1] - times[0])


def prepare_audio(folder: Path, seconds: float) -> None:
    """``audio.ulaw`` in ``folder``: espeak-ng speech repeated to last ``seconds``."""
    path = ulaw_speech(folder, SPEECH)
    once = path.read_bytes()
    repeats = int(seconds * 8000 / len(once)) + 1
    path.write_bytes(once * repeats)


async def sample_max(count: Callable[[], int], stop: asyncio.Event) -> int:
    best = 0
    while not stop.is_set():
        best = max(best, count())
        try:
            await asyncio.wait_for(stop.wait(), 0.1)
        except TimeoutError:
            pass
    return max(best, count())


async def idle_lateness(seconds: float = 3.0) -> Lateness:
    lateness = Lateness()
    loop = asyncio.get_running_loop()
    subscription = MediaTicker.for_running_loop().subscribe(
        lambda deadline: lateness(deadline, loop.time())
    )
    await asyncio.sleep(seconds)
    subscription.cancel()
    return lateness


_PROBE = """
import sys, threading, time
samples = []
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
while not done.is_set():
    t = time.monotonic()
    time.sleep(0.005)
    samples.append((time.monotonic() - t - 0.005) * 1000)
samples.sort()
print(samples[int(0.99 * len(samples))] if samples else float("nan"))
"""


class StallProbe:
    """A separate, nearly idle process timing how late ``sleep(5 ms)`` wakes up.

    Its p99 says how busy the cores were during the step: when it is high,
    another workload had them, and our lateness says more about the machine
    than about the code.
    """

    async def __aenter__(self) -> StallProbe:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _PROBE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        self.p99_ms = float("nan")
        return self

    async def __aexit__(self, *exc: object) -> None:
        out, _ = await self.process.communicate(b"")
        self.p99_ms = float(out.decode().strip() or "nan")


def hold_for(calls: int, rate: float, extra: float) -> float:
    return calls / rate + extra


async def sipp_vs_sipp(sipp: Sipp, calls: int, rate: float, hold: float) -> dict[str, Any]:
    prepare_audio(sipp.run_folder(), 5.0)
    uas = await sipp.start(
        SCENARIOS / "uas_xhdr.xml",
        calls=calls,
        global_timeout=hold + calls / rate + 120,
        trace_messages=False,
    )
    await uas.ready()
    uac = await start_uac(sipp, f"127.0.0.1:{uas.port}", calls, rate, hold)
    client = await uac.wait(seconds=hold + calls / rate + 180)
    server = await uas.wait(seconds=60)
    setups = [t / 1000.0 for t in uac.setup_times_ms()]
    return {
        "setups_per_s": rate_of(setups),
        "failed": client.failed + server.failed + (calls - client.successful),
    }


async def start_uac(sipp: Sipp, remote: str, calls: int, rate: float, hold: float) -> SippProcess:
    prepare_audio(sipp.run_folder(), hold + 2.0)
    return await sipp.start(
        SCENARIOS / "uac_xhdr.xml",
        remote=remote,
        calls=calls,
        rate=rate,
        limit=calls,
        keys={"simid": "load"},
        extra=["-d", str(int(hold * 1000)), "-trace_rtt", "-rtt_freq", "1"],
        global_timeout=hold + calls / rate + 120,
        trace_messages=False,
    )


async def agent_side(sipp: Sipp, calls: int, rate: float, hold: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    lateness = Lateness()
    answered: list[float] = []
    completed = 0

    async def echo(call: SipCall) -> None:
        nonlocal completed
        call.rtp.on_frame = lateness
        answered.append(loop.time())
        async for pcm in call.audio_in():
            call.rtp.queue(pcm)
        completed += 1

    step = Step()
    async with SipEndpoint(
        echo, transports=("udp",), recorder_factory=None, handler_grace=5.0
    ) as endpoint:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_max(lambda: len(endpoint.calls), stop))
        uac = await start_uac(sipp, f"127.0.0.1:{endpoint.port}", calls, rate, hold)
        result = await uac.wait(seconds=hold + calls / rate + 180)
        for _ in range(100):
            if completed >= result.successful:
                break
            await asyncio.sleep(0.05)
        stop.set()
        held = await sampler
    answered.sort()
    return {
        "setups_per_s": rate_of(answered),
        "held": held,
        "failed": result.failed + (calls - result.successful) + endpoint.stats.handler_errors,
        "sipp_exit": result.returncode,
        "lateness": lateness,
        **step.finish(),
    }


async def caller_side(sipp: Sipp, calls: int, rate: float, hold: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    prepare_audio(sipp.run_folder(), 5.0)
    uas = await sipp.start(
        SCENARIOS / "uas_xhdr.xml",
        calls=calls,
        global_timeout=hold + calls / rate + 120,
        trace_messages=False,
    )
    await uas.ready()
    speech = speech_pcm(sipp.workdir, SPEECH)
    pcm = speech * (int(hold * 32000 / len(speech)) + 1)
    pcm = pcm[: int(hold * 32000) // 2 * 2]
    lateness = Lateness()
    connected: list[float] = []
    up = 0
    failures: list[str] = []
    step = Step()
    transport = await SipTransport(CoreConfig(host="127.0.0.1", port=0)).start()

    async def one(index: int) -> None:
        nonlocal up
        caller = SipCaller(
            SipCallConfig(
                uas.uri("agent"),
                simulation_result_id=f"load-{index}",
                buffer_agent_media=False,
            ),
            transport=transport,
            on_frame=lateness,
        )
        try:
            await caller.connect()
        except CallFailed as failed:
            failures.append(f"{failed.outcome.error_code}: {failed.outcome.detail}")
            return
        connected.append(loop.time())
        up += 1
        try:
            await caller.play(pcm)
        finally:
            outcome = await caller.hangup()
            up -= 1
        if outcome.status is not CallStatus.COMPLETED:
            failures.append(f"{outcome.status}: {outcome.detail}")

    stop = asyncio.Event()
    sampler = asyncio.create_task(sample_max(lambda: up, stop))
    start = loop.time() + 0.1
    tasks = []
    for index in range(calls):
        await asyncio.sleep(max(0.0, start + index / rate - loop.time()))
        tasks.append(asyncio.create_task(one(index)))
    await asyncio.gather(*tasks)
    stop.set()
    held = await sampler
    result = await uas.wait(seconds=60)
    await transport.close()
    connected.sort()
    return {
        "setups_per_s": rate_of(connected),
        "held": held,
        "failed": len(failures) + result.failed,
        "failures": failures[:5],
        "sipp_exit": result.returncode,
        "lateness": lateness,
        **step.finish(),
    }


def row(name: str, rate: float, data: dict[str, Any], baseline: dict[str, Any]) -> str:
    lat: Lateness = data["lateness"]
    ratio = data["setups_per_s"] / baseline["setups_per_s"]
    return (
        f"{name:<7}{rate:>6.0f}{data['setups_per_s']:>9.1f}{baseline['setups_per_s']:>9.1f}"
        f"{ratio:>7.2f}{data['held']:>6}{data['failed']:>6}{baseline['failed']:>6}"
        f"{lat.percentile(50):>8.2f}{lat.percentile(99):>8.2f}{max(lat.samples, default=0):>8.1f}"
        f"{len(lat.samples):>9}{data['cpu_pct']:>6.0f}"
        f"{data['load_before']:>6.2f}{data['load_after']:>6.2f}"
    )


HEADER = (
    f"{'side':<7}{'rate':>6}{'setup/s':>9}{'sipp/s':>9}{'ratio':>7}{'held':>6}{'fail':>6}"
    f"{'bfail':>6}{'p50ms':>8}{'p99ms':>8}{'maxms':>8}{'packets':>9}{'cpu%':>6}"
    f"{'load0':>6}{'load1':>6}"
)


async def main(args: argparse.Namespace) -> int:
    if args.gc_freeze:
        gc.collect()
        gc.freeze()
    with tempfile.TemporaryDirectory(prefix="sip-load-") as scratch:
        sipp = Sipp(Path(scratch))
        try:
            idle = await idle_lateness()
            print(
                f"idle ticker lateness: p50 {idle.percentile(50):.3f} ms, "
                f"p99 {idle.percentile(99):.3f} ms ({len(idle.samples)} ticks); "
                f"cores {os.cpu_count()}, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
            print(HEADER, flush=True)
            worst = 0
            for rate in args.rates:
                hold = hold_for(args.calls, rate, args.hold)
                baseline = await sipp_vs_sipp(sipp, args.calls, rate, hold)
                sides = []
                if not args.caller_only:
                    sides.append(("agent", agent_side))
                if not args.agent_only:
                    sides.append(("caller", caller_side))
                for name, run in sides:
                    idle = await idle_lateness()
                    async with StallProbe() as probe:
                        data = await run(sipp, args.calls, rate, hold)
                    print(row(name, rate, data, baseline), flush=True)
                    lat: Lateness = data["lateness"]
                    print(
                        f"        lateness p99 / idle p99 just before = "
                        f"{lat.percentile(99):.1f} / {idle.percentile(99):.2f} = "
                        f"{lat.percentile(99) / max(idle.percentile(99), 1e-3):.1f}; "
                        f"stall probe p99 during the step {probe.p99_ms:.1f} ms; "
                        f"GC pauses max {data['gc_max_ms']:.1f} ms, "
                        f"total {data['gc_total_ms']:.0f} ms"
                        + (f"; failures: {data['failures']}" if data.get("failures") else ""),
                        flush=True,
                    )
                    worst = max(worst, int(data["failed"]))
        finally:
            await sipp.close()
    return 1 if worst else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per step")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[25, 50, 100, 200], help="calls per second"
    )
    parser.add_argument("--hold", type=float, default=5.0, help="seconds all calls are up")
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() before the steps (startup objects leave the collector's scans)",
    )
    parser.add_argument("--agent-only", action="store_true")
    parser.add_argument("--caller-only", action="store_true")
    sys.exit(asyncio.run(main(parser.parse_args())))
