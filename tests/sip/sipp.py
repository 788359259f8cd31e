"""Run real SIPp scenarios from tests and benchmarks.

SIPp is the reference SIP tester every interop claim here rests on, so the
harness runs the real binary (Debian ``sip-tester``) as a subprocess: it finds
``sipp`` on PATH and installs the package with apt-get when it is missing,
binds SIPp only to 127.0.0.1 on ports picked free by the kernel, keeps every
trace file (messages, scenario logs, errors, statistics) in a per-run folder,
and kills the process group on the way out whatever happened.

Ports: SIPp needs to be told its SIP port up front (it has no "port 0 and
report it"), so :func:`free_port` asks the kernel for a port that is free for
both UDP and TCP and the harness retries on the rare race where another
process grabs it first (SIPp then exits at once with a bind error).

Readiness: a SIPp UAS must be listening before our caller sends its INVITE
(over TCP an early connect is refused outright), so :meth:`SippProcess.ready`
waits until the port can no longer be bound, i.e. SIPp holds it.

Example (needs SIPp)::

    sipp = Sipp(tmp_path)
    uas = await sipp.start(SCENARIOS / "uas_xhdr.xml", calls=1)
    await uas.ready()
    ...  # place a call to uas.uri("agent")
    result = await uas.wait()
    assert result.returncode == 0 and result.successful == 1
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import errno
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = [
    "SCENARIOS",
    "Sipp",
    "SippProcess",
    "SippResult",
    "free_port",
    "sipp_binary",
    "ulaw_speech",
]

SCENARIOS = Path(__file__).parent.parent / "fixtures" / "sip" / "scenarios"
"""The scenario XML files the tests run."""

_BIND_FAILURE_MARKERS = ("Address already in use", "Unable to bind", "bind failed")


def sipp_binary() -> str:
    """Path of ``sipp``, installing Debian ``sip-tester`` first when it is missing.

    Fails the test (rather than skipping it) when it cannot be installed: the
    SIPp interop tests are acceptance criteria and must not vanish silently.
    """
    found = shutil.which("sipp")
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail("sipp is missing and apt-get is not available to install sip-tester")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "sip-tester"]):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}): {done.stderr[-2000:]}")
    found = shutil.which("sipp")
    if found is None:
        pytest.fail("sip-tester was installed but there is still no sipp on PATH")
    return found


def free_port() -> int:
    """A 127.0.0.1 port the kernel reports free for both UDP and TCP right now."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP after 100 tries")


def _port_taken(port: int, transport: str) -> bool:
    kind = socket.SOCK_STREAM if transport == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def ulaw_speech(directory: Path, text: str) -> Path:
    """Raw 8 kHz mono G.711 u-law of ``text`` spoken by espeak-ng, as SIPp's rtp_stream wants.

    SIPp's ``rtp_stream`` reads raw u-law (a WAV header would be played as
    noise), so sox converts espeak-ng's 22.05 kHz WAV. The file lands in
    ``directory`` as ``audio.ulaw`` because SIPp resolves ``rtp_stream``
    paths relative to its working directory when it parses the scenario.
    """
    from tests.speech import speech_wav

    sox = shutil.which("sox")
    if sox is None:
        pytest.skip("sox is not installed (Debian package sox)")
    wav = speech_wav(directory, text)
    target = directory / "audio.ulaw"
    subprocess.run(
        [sox, str(wav), "-r", "8000", "-c", "1", "-e", "u-law", "-t", "raw", str(target)],
        check=True,
        timeout=60,
    )
    return target


@dataclass
class SippResult:
    """What one SIPp run left behind.

    Attributes:
        returncode: SIPp's exit code: 0 all calls succeeded, 1 some failed,
            97 internal exit, 99 no call processed (-9 when we killed it).
        stdout: Its final screen (it prints one on exit even with ``-nostdin``).
        stderr: Errors it printed.
        messages: Every SIP message sent and received (``-trace_msg``).
        log: Lines the scenario's ``<log>`` actions wrote (``-trace_logs``).
        errors: Unexpected messages and failures (``-trace_err``).
        stats: The last row of the statistics CSV (``-trace_stat``), by column.
    """

    returncode: int
    stdout: str
    stderr: str
    messages: str
    log: str
    errors: str
    stats: dict[str, str] = field(default_factory=dict)

    def _count(self, column: str) -> int:
        value = self.stats.get(column, "")
        return int(value) if value.strip().isdigit() else 0

    @property
    def successful(self) -> int:
        """Calls the scenario completed."""
        return self._count("SuccessfulCall(C)")

    @property
    def failed(self) -> int:
        """Calls the scenario failed."""
        return self._count("FailedCall(C)")

    @property
    def created(self) -> int:
        """Calls SIPp started (UAC) or accepted (UAS)."""
        return self._count("TotalCallCreated")

    def describe(self) -> str:
        """Everything useful in one string, for assertion messages."""
        return (
            f"sipp exited {self.returncode}; stats={self.stats}\n--- stderr\n{self.stderr[-3000:]}"
            f"\n--- errors\n{self.errors[-3000:]}\n--- log\n{self.log[-2000:]}"
            f"\n--- messages\n{self.messages[-6000:]}"
        )


class SippProcess:
    """A running SIPp scenario (see :meth:`Sipp.start`)."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        folder: Path,
        port: int,
        transport: str,
    ) -> None:
        self.process = process
        self.folder = folder
        self.port = port
        """SIPp's SIP port on 127.0.0.1."""
        self.transport = transport
        """``udp`` or ``tcp``."""
        self._result: SippResult | None = None

    def uri(self, user: str = "agent") -> str:
        """A SIP URI that reaches this SIPp instance."""
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:{user}@127.0.0.1:{self.port}{suffix}"

    async def ready(self, seconds: float = 30.0) -> None:
        """Return once SIPp holds its SIP port (fail if it exits first)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not _port_taken(self.port, self.transport):
            if self.process.returncode is not None:
                result = await self.wait()
                raise RuntimeError(f"SIPp exited before listening:\n{result.describe()}")
            if loop.time() > deadline:
                raise TimeoutError(f"SIPp did not bind 127.0.0.1:{self.port} in {seconds} s")
            await asyncio.sleep(0.02)

    async def wait(self, seconds: float = 60.0) -> SippResult:
        """Wait for SIPp to finish (killing it after ``seconds``) and collect its traces."""
        if self._result is not None:
            return self._result
        try:
            stdout, stderr = await asyncio.wait_for(self.process.communicate(), seconds)
        except TimeoutError:
            self.kill()
            stdout, stderr = await self.process.communicate()
        self._result = self._collect(stdout, stderr)
        return self._result

    def kill(self) -> None:
        """Kill SIPp's process group now (no-op if it already ended)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    async def stop(self) -> SippResult:
        """Ask SIPp to quit (SIGUSR1 = finish and exit), then collect what it left."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGUSR1)
        return await self.wait(seconds=15.0)

    def setup_times_ms(self) -> list[float]:
        """When each call's ``rtd`` ended (a UAC's 200 OK), in ms since SIPp started.

        Needs ``-trace_rtt -rtt_freq 1`` in ``extra``.
        """
        times: list[float] = []
        for path in self.folder.glob("*_rtt.csv"):
            for line in path.read_text(errors="replace").splitlines()[1:]:
                stamp = line.split(";", 1)[0]
                if stamp:
                    times.append(float(stamp))
        return sorted(times)

    def _read(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(errors="replace") if path.exists() else ""

    def _collect(self, stdout: bytes, stderr: bytes) -> SippResult:
        stats: dict[str, str] = {}
        stat_file = self.folder / "stats.csv"
        if stat_file.exists():
            rows = list(
                csv.reader(stat_file.read_text(errors="replace").splitlines(), delimiter=";")
            )
            if len(rows) >= 2:
                stats = dict(zip(rows[0], rows[-1], strict=False))
        return SippResult(
            returncode=self.process.returncode if self.process.returncode is not None else -9,
            stdout=stdout.decode(errors="replace"),
            stderr=stderr.decode(errors="replace"),
            messages=self._read("messages.log"),
            log=self._read("scenario.log"),
            errors=self._read("errors.log"),
            stats=stats,
        )


class Sipp:
    """Starts SIPp processes whose files live under ``workdir`` (see the module docstring).

    Args:
        workdir: A scratch folder (``tmp_path``); each run gets a subfolder
            that is also SIPp's working directory (``rtp_stream`` files go there).
    """

    def __init__(self, workdir: Path) -> None:
        self.binary = sipp_binary()
        self.workdir = workdir
        self._processes: list[SippProcess] = []
        self._runs = 0

    def run_folder(self) -> Path:
        """The folder the next run will use (create files SIPp reads here first)."""
        folder = self.workdir / f"sipp-{self._runs}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    async def start(
        self,
        scenario: Path | str,
        *,
        remote: str | None = None,
        transport: str = "udp",
        calls: int = 1,
        rate: float | None = None,
        limit: int | None = None,
        keys: dict[str, str] | None = None,
        extra: Sequence[str] = (),
        global_timeout: float = 60.0,
        trace_messages: bool = True,
    ) -> SippProcess:
        """Start one SIPp run.

        Args:
            scenario: An XML file, or the name of a built-in (``uac``, ``uas``).
            remote: ``host:port`` to call (UAC scenarios).
            transport: ``udp`` (``-t u1``) or ``tcp`` (``-t t1``).
            calls: Stop after this many calls (``-m``).
            rate: Calls per second (``-r``).
            limit: Most simultaneous calls (``-l``).
            keys: Scenario variables (``-key name value``).
            extra: More command-line options.
            global_timeout: SIPp ends itself after this long (``-timeout``).
            trace_messages: Log every SIP message (``-trace_msg``); load runs
                turn it off, since writing thousands of messages slows SIPp.
        """
        if transport not in ("udp", "tcp"):
            raise ValueError(f"transport must be 'udp' or 'tcp', not {transport!r}")
        folder = self.run_folder()
        self._runs += 1
        for attempt in range(5):
            port = free_port()
            cmd = [self.binary]
            cmd += ["-sf", str(scenario)] if isinstance(scenario, Path) else ["-sn", scenario]
            if remote is not None:
                cmd.append(remote)
            cmd += ["-i", "127.0.0.1", "-mi", "127.0.0.1", "-bind_local"]
            cmd += ["-p", str(port), "-mp", str(free_port()), "-cp", str(free_port())]
            cmd += ["-t", "t1" if transport == "tcp" else "u1", "-m", str(calls), "-nostdin"]
            cmd += ["-timeout", f"{global_timeout:g}s", "-timeout_error"]
            if rate is not None:
                cmd += ["-r", f"{rate:g}"]
            if limit is not None:
                cmd += ["-l", str(limit)]
            for name, value in (keys or {}).items():
                cmd += ["-key", name, value]
            if trace_messages:
                cmd += ["-trace_msg", "-message_file", str(folder / "messages.log")]
            cmd += ["-trace_logs", "-log_file", str(folder / "scenario.log")]
            cmd += ["-trace_err", "-error_file", str(folder / "errors.log")]
            cmd += ["-trace_stat", "-stf", str(folder / "stats.csv"), "-fd", "1"]
            cmd += list(extra)
            process = await asyncio.create_subprocess_exec(
                *cmd,
                cwd=folder,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
            running = SippProcess(process, folder, port, transport)
            self._processes.append(running)
            if attempt < 4 and await self._lost_port_race(running):
                continue
            return running
        raise AssertionError("unreachable")

    @staticmethod
    async def _lost_port_race(running: SippProcess) -> bool:
        # A bind failure makes SIPp exit within milliseconds; give it a moment.
        try:
            await asyncio.wait_for(asyncio.shield(running.process.wait()), 0.3)
        except TimeoutError:
            return False
        result = await running.wait()
        return any(marker in result.stderr for marker in _BIND_FAILURE_MARKERS)

    async def close(self) -> None:
        """Kill every process this instance started that is still running."""
        for running in self._processes:
            running.kill()
            if running.process.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(running.wait(seconds=10.0), 15.0)
