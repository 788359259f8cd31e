"""N concurrent CHIRP calls for a fixed window: send lateness, frames lost, CPU per process.

Two processes per run, on loopback:

- the **agent**: :func:`roost.chirp.serve` with an echo handler (every caller
  frame is sent straight back through the session's paced outbox) that counts
  the frames it receives per call, keyed by ``X-Simulation-Result-Id``;
- the **caller**: N :class:`roost.chirp.ChirpCaller` calls, each playing one
  long utterance of real speech-band audio paced by the shared 20 ms
  :class:`~roost.media.MediaTicker`, reading the echoed audio, and hanging up
  (close 1000) at the end of the window.

Send lateness is ``sent_at - deadline`` of every frame whose deadline falls in
the window (write time minus the frame's ideal send time, both on the loop's
monotonic clock). Frames lost are frames the caller sent that the agent never
counted. CPU share is read from ``/proc/<pid>/stat`` (user + system) at the
start and end of the window, per process, as a percentage of one core.

The machine is shared, so a third, nearly idle process measures how late the
kernel wakes a plain ``time.sleep(5 ms)`` during the window ("stall" columns).
When its p99 is high, another workload was taking the cores, and the caller's
lateness says more about the machine than about the code.

The baseline, measured in the same run, is the straightforward design the
caller replaces: websockets' high-level asyncio client with one task per call
that sleeps to each frame's deadline and ``await ws.send(frame)``s it. Ratios
are ours divided by the baseline (lower is better for CPU and lateness).

Usage::

    .venv/bin/python benchmarks/chirp_concurrency.py                 # N = 100, 250, 500; 30 s
    .venv/bin/python benchmarks/chirp_concurrency.py --calls 50 --duration 5 --no-baseline
    .venv/bin/python benchmarks/chirp_concurrency.py --uvloop        # both processes on uvloop
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from roost.audio import FRAME_BYTES, samples_to_pcm  # noqa: E402
from roost.chirp import CallerAudio, ChirpCaller, ChirpSession, serve  # noqa: E402

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _install_loop(use_uvloop: bool) -> None:
    if use_uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def _test_audio(seconds: float) -> bytes:
    # A speech-band signal (three partials and a slow envelope), not silence:
    # the cost of moving it must not depend on zeros.
    t = np.arange(int(seconds * 16_000)) / 16_000.0
    wave = (
        np.sin(2 * np.pi * 220 * t)
        + 0.5 * np.sin(2 * np.pi * 660 * t)
        + 0.25 * np.sin(2 * np.pi * 1320 * t)
    )
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)
    return samples_to_pcm(6000 * wave * envelope)


# --- agent process ----------------------------------------------------------------


async def _agent_main() -> None:
    counts: dict[str, int] = {}

    async def echo(call: ChirpSession) -> None:
        frames = 0
        async for item in call:
            if isinstance(item, CallerAudio):
                frames += 1
                call.send_audio(item.pcm)
        counts[call.simulation_result_id or "?"] = frames

    async with await serve(echo, "127.0.0.1", 0, recorder_factory=None, backlog=1024) as server:
        print(f"PORT {server.port}", flush=True)
        # The orchestrator closes our stdin when the caller is done.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        for _ in range(100):  # let the last closing handshakes finish
            if not server.sessions:
                break
            await asyncio.sleep(0.05)
    print(json.dumps({"counts": counts}), flush=True)


class _RawEchoProtocol(asyncio.Protocol):
    """Echo agent on websockets' sans-I/O server, synchronous per frame: the cheapest agent.

    It isolates the caller's cost from the agent helper's (task-based, on the
    websockets asyncio server) when the two share the machine's two cores.
    """

    def __init__(self, counts: dict[str, int]) -> None:
        from websockets.server import ServerProtocol

        self.protocol = ServerProtocol(max_size=2**20)
        self.counts = counts
        self.key = "?"
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        from websockets.frames import Frame, Opcode
        from websockets.http11 import Request
        from websockets.protocol import State

        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Request):
                self.key = event.headers.get("X-Simulation-Result-Id", "?")
                self.counts[self.key] = 0
                protocol.send_response(protocol.accept(event))
            elif isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                self.counts[self.key] += 1
                if protocol.state is State.OPEN:
                    protocol.send_binary(event.data)
        self._flush()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self._flush()
        return None

    def _flush(self) -> None:
        assert self.transport is not None
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.transport.write(chunk)
            else:
                self.transport.close()


async def _raw_agent_main() -> None:
    counts: dict[str, int] = {}
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _RawEchoProtocol(counts), "127.0.0.1", 0, backlog=1024
    )
    async with server:
        print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
        await loop.run_in_executor(None, sys.stdin.read)
        await asyncio.sleep(1.0)
    print(json.dumps({"counts": counts}), flush=True)


# --- caller processes -------------------------------------------------------------


class _Window:
    def __init__(self) -> None:
        self.start = float("inf")
        self.end = float("inf")
        self.lateness = array.array("d")

    def frame_hook(self) -> Callable[[str, int, float, float], None]:
        lateness = self.lateness

        def on_frame(utterance_id: str, offset: int, deadline: float, sent_at: float) -> None:
            if self.start <= deadline < self.end:
                lateness.append(sent_at - deadline)

        return on_frame


async def _connect_all(make: Callable[[int], Any], calls: int, parallel: int = 50) -> list[Any]:
    gate = asyncio.Semaphore(parallel)

    async def one(index: int) -> Any:
        async with gate:
            return await make(index)

    return list(await asyncio.gather(*(one(i) for i in range(calls))))


async def _caller_main(port: int, calls: int, duration: float) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}/voice"
    window = _Window()
    hook = window.frame_hook()
    audio = _test_audio(duration + 5.0)

    async def make(index: int) -> ChirpCaller:
        caller = ChirpCaller(
            url,
            simulation_result_id=f"bench-{index}",
            buffer_agent_media=True,
            on_frame=hook,
            retries=0,
            # A backlogged agent must get the time to read everything before
            # the close, or an abort would discard frames it already received.
            close_timeout=60.0,
        )
        await caller.connect()
        return caller

    callers: list[ChirpCaller] = await _connect_all(make, calls)
    received = [0] * calls

    async def drain(index: int, caller: ChirpCaller) -> None:
        async for _item in caller.agent_stream():
            received[index] += 1

    readers = [asyncio.create_task(drain(i, c)) for i, c in enumerate(callers)]
    loop = asyncio.get_running_loop()
    plays = [asyncio.create_task(c.play(audio)) for c in callers]
    await asyncio.sleep(1.0)  # warm-up: every call is sending
    window.start = loop.time()
    window.end = window.start + duration
    print("WINDOW_START", flush=True)
    await asyncio.sleep(duration)
    print("WINDOW_END", flush=True)
    outcomes = await asyncio.gather(*(c.hangup() for c in callers))
    await asyncio.gather(*plays)
    await asyncio.gather(*readers)
    sent = {f"bench-{i}": round(o.audio_sent_ms / 20) for i, o in enumerate(outcomes)}
    return {
        "lateness": window.lateness,
        "sent": sent,
        "echo_frames": sum(received),
        "statuses": sorted({str(o.status) for o in outcomes}),
    }


async def _baseline_main(port: int, calls: int, duration: float) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    url = f"ws://127.0.0.1:{port}/voice"
    window = _Window()
    audio = _test_audio(duration + 5.0)
    frames = [audio[i : i + FRAME_BYTES] for i in range(0, len(audio), FRAME_BYTES)]
    loop = asyncio.get_running_loop()
    sent: dict[str, int] = {}
    received = [0]

    async def make(index: int) -> Any:
        return await connect(
            url,
            additional_headers={"X-Simulation-Result-Id": f"bench-{index}"},
            compression=None,
        )

    sockets = await _connect_all(make, calls)
    stop = asyncio.Event()

    async def speak(index: int, ws: Any) -> None:
        deadline = loop.time() + 0.02
        count = 0
        for frame in frames:
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set():
                break
            await ws.send(frame)
            now = loop.time()
            if window.start <= deadline < window.end:
                window.lateness.append(now - deadline)
            count += 1
            deadline += 0.02
        sent[f"bench-{index}"] = count

    async def listen(ws: Any) -> None:
        try:
            async for _message in ws:
                received[0] += 1
        except Exception:
            pass

    speakers = [asyncio.create_task(speak(i, ws)) for i, ws in enumerate(sockets)]
    listeners = [asyncio.create_task(listen(ws)) for ws in sockets]
    await asyncio.sleep(1.0)
    window.start = loop.time()
    window.end = window.start + duration
    print("WINDOW_START", flush=True)
    await asyncio.sleep(duration)
    print("WINDOW_END", flush=True)
    stop.set()
    await asyncio.gather(*speakers)
    await asyncio.gather(*(ws.close() for ws in sockets))
    await asyncio.gather(*listeners)
    return {"lateness": window.lateness, "sent": sent, "echo_frames": received[0], "statuses": []}


def _run_caller(args: argparse.Namespace) -> None:
    _install_loop(args.uvloop)
    main = _baseline_main if args.role == "baseline" else _caller_main
    result = asyncio.run(main(args.port, args.calls, args.duration))
    lateness = np.frombuffer(result.pop("lateness"), dtype=np.float64) * 1000.0
    result["frames_in_window"] = int(lateness.size)
    result["p50_ms"] = float(np.percentile(lateness, 50)) if lateness.size else 0.0
    result["p99_ms"] = float(np.percentile(lateness, 99)) if lateness.size else 0.0
    result["max_ms"] = float(lateness.max()) if lateness.size else 0.0
    print("RESULT " + json.dumps(result), flush=True)


def _run_stall_probe(duration: float) -> None:
    """Oversleep of a 5 ms sleep, in ms, over ``duration`` seconds: the machine's own jitter."""
    end = time.monotonic() + duration
    oversleep = array.array("d")
    while time.monotonic() < end:
        before = time.monotonic()
        time.sleep(0.005)
        oversleep.append((time.monotonic() - before - 0.005) * 1000.0)
    data = np.frombuffer(oversleep, dtype=np.float64)
    print(json.dumps({"p99_ms": float(np.percentile(data, 99)), "max_ms": float(data.max())}))


# --- orchestrator -------------------------------------------------------------------


def _cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


def _measure(
    kind: str, calls: int, duration: float, use_uvloop: bool, agent_kind: str
) -> dict[str, Any]:
    python = sys.executable
    script = str(Path(__file__).resolve())
    loop_flag = ["--uvloop"] if use_uvloop else []
    agent = subprocess.Popen(
        [python, script, "--role", f"{agent_kind}-agent", *loop_flag],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert agent.stdout is not None and agent.stdin is not None
    port = int(agent.stdout.readline().split()[1])
    caller = subprocess.Popen(
        [
            python,
            script,
            "--role",
            kind,
            "--port",
            str(port),
            "--calls",
            str(calls),
            "--duration",
            str(duration),
            *loop_flag,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert caller.stdout is not None
    cpu: dict[str, tuple[float, float]] = {}
    wall = [0.0, 0.0]
    result: dict[str, Any] = {}
    probe: subprocess.Popen[str] | None = None
    for line in caller.stdout:
        if line.startswith("WINDOW_START"):
            wall[0] = time.monotonic()
            probe = subprocess.Popen(
                [python, script, "--role", "stall-probe", "--duration", str(duration)],
                stdout=subprocess.PIPE,
                text=True,
            )
            cpu["caller0"], cpu["agent0"] = _cpu_seconds(caller.pid), _cpu_seconds(agent.pid)
        elif line.startswith("WINDOW_END"):
            wall[1] = time.monotonic()
            cpu["caller1"], cpu["agent1"] = _cpu_seconds(caller.pid), _cpu_seconds(agent.pid)
        elif line.startswith("RESULT "):
            result = json.loads(line[7:])
    caller.wait()
    stall = {"p99_ms": float("nan"), "max_ms": float("nan")}
    if probe is not None:
        stall = json.loads(probe.communicate()[0].strip().splitlines()[-1])
    agent.stdin.close()
    counts = json.loads(agent.stdout.read().strip().splitlines()[-1])["counts"]
    agent.wait()
    elapsed = wall[1] - wall[0]

    def share(name: str, part: int | None = None) -> float:
        start, end = cpu[name + "0"], cpu[name + "1"]
        used = (
            (end[0] - start[0]) + (end[1] - start[1]) if part is None else end[part] - start[part]
        )
        return 100.0 * used / elapsed

    sent = result["sent"]
    lost = sum(max(0, frames - counts.get(sid, 0)) for sid, frames in sent.items())
    return {
        "kind": kind,
        "calls": calls,
        "p50_ms": result["p50_ms"],
        "p99_ms": result["p99_ms"],
        "max_ms": result["max_ms"],
        "frames_in_window": result["frames_in_window"],
        "frames_sent": sum(sent.values()),
        "frames_lost": lost,
        "echo_frames": result["echo_frames"],
        "caller_cpu": share("caller"),
        "caller_sys": share("caller", 1),
        "agent_cpu": share("agent"),
        "agent_sys": share("agent", 1),
        "statuses": result["statuses"],
        "stall_p99_ms": stall["p99_ms"],
        "stall_max_ms": stall["max_ms"],
    }


def _print_row(row: dict[str, Any]) -> None:
    print(
        f"{row['kind']:<9}{row['calls']:>6}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
        f"{row['max_ms']:>9.1f}{row['frames_sent']:>11}{row['frames_lost']:>7}"
        f"{row['caller_cpu']:>6.0f}% ({row['caller_sys']:>3.0f}%)"
        f"{row['agent_cpu']:>6.0f}% ({row['agent_sys']:>3.0f}%)"
        f"{row['stall_p99_ms']:>7.1f}{row['stall_max_ms']:>7.1f}  {','.join(row['statuses'])}",
        flush=True,
    )


def _orchestrate(args: argparse.Namespace) -> None:
    print(f"uptime: {os.popen('uptime').read().strip()}")
    print(
        f"loop: {'uvloop' if args.uvloop else 'asyncio'}; agent: {args.agent}; "
        f"window {args.duration:g} s; "
        f"CPU = % of one core over the window (kernel share in brackets)"
    )
    print(
        f"{'variant':<9}{'calls':>6}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'sent':>11}{'lost':>7}{'caller CPU (sys)':>17}{'agent CPU (sys)':>16}"
        f"{'stall':>7}{'':>7}  (stall: p99 / max ms of a 5 ms sleep's oversleep)"
    )
    for calls in args.calls_levels:
        ours = _measure("chirp", calls, args.duration, args.uvloop, args.agent)
        _print_row(ours)
        if args.baseline:
            base = _measure("baseline", calls, args.duration, args.uvloop, args.agent)
            _print_row(base)
            print(
                f"{'ratio':<9}{calls:>6}"
                f"{ours['p50_ms'] / max(base['p50_ms'], 1e-9):>9.2f}"
                f"{ours['p99_ms'] / max(base['p99_ms'], 1e-9):>9.2f}"
                f"{'':>27}{ours['caller_cpu'] / max(base['caller_cpu'], 1e-9):>16.2f}x",
                flush=True,
            )
    print(f"uptime: {os.popen('uptime').read().strip()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--role",
        choices=["orchestrate", "helper-agent", "raw-agent", "chirp", "baseline", "stall-probe"],
        default="orchestrate",
    )
    parser.add_argument(
        "--agent",
        choices=["helper", "raw"],
        default="helper",
        help="echo agent: roost.chirp.serve (helper) or a synchronous sans-I/O echo (raw)",
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--calls", type=int, nargs="+", dest="calls_levels", default=[100, 250, 500]
    )
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false")
    args = parser.parse_args()
    if args.role == "orchestrate":
        _orchestrate(args)
    elif args.role == "helper-agent":
        _install_loop(args.uvloop)
        asyncio.run(_agent_main())
    elif args.role == "stall-probe":
        _run_stall_probe(args.duration)
    elif args.role == "raw-agent":
        _install_loop(args.uvloop)
        asyncio.run(_raw_agent_main())
    else:
        args.calls = args.calls_levels[0]
        _run_caller(args)


if __name__ == "__main__":
    main()
