"""``roost call``: place one test call to an agent and report how it went.

A probe for agent developers debugging how the platform reaches them: it dials
the agent the way the platform does (Basic auth, ``X-Simulation-Result-Id``),
plays a WAV file as one utterance, listens until the agent has been quiet for
a while (energy VAD on its audio) or hangs up, hangs up itself, and prints the
outcome: status, close code, audio seconds each way and the events seen. The
exit code is 0 for a completed call, 1 for a failed one, 2 for bad arguments.

The transport is chosen by the URL scheme through :data:`DIALERS`; ``ws`` and
``wss`` dial CHIRP. Another transport adds its schemes there with a function
that builds its :class:`~roost.caller.CallDriver`.

Example:
    >>> from typer.testing import CliRunner
    >>> from roost.cli import app
    >>> result = CliRunner().invoke(
    ...     app, ["call", "http://x/", "--simulation-result-id", "1", "--audio", "a.wav"]
    ... )
    >>> result.exit_code
    2
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.table import Table

from roost.cli._common import console, fail, require_extra

if TYPE_CHECKING:
    from roost.caller import CallDriver, CallOutcome

__all__ = ["DIALERS", "CallRequest", "register"]


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What ``roost call`` was asked to do, for a transport's dialer.

    Attributes:
        url: The agent's address as typed.
        simulation_result_id: Sent to the agent with the call.
        username: Basic-auth user, if any.
        password: Basic-auth password, if any.
        record: Where to write the stereo recording, if anywhere.
        connect_timeout: Limit for one connection attempt, in seconds.
        retries: Further attempts after a retryable connection failure.
        headers: Extra ``X-`` headers for the call (SIP).
        auth_user: Digest user for a SIP 401/407 challenge.
        auth_password: Digest password.
    """

    url: str
    simulation_result_id: str
    username: str | None
    password: str | None
    record: Path | None
    connect_timeout: float
    retries: int
    headers: tuple[tuple[str, str], ...] = ()
    auth_user: str | None = None
    auth_password: str | None = None


def _dial_chirp(request: CallRequest) -> CallDriver:
    require_extra("websockets", "caller")
    from roost.chirp import ChirpCaller

    return ChirpCaller(
        request.url,
        simulation_result_id=request.simulation_result_id,
        username=request.username,
        password=request.password,
        record_path=request.record,
        connect_timeout=request.connect_timeout,
        retries=request.retries,
    )


def _dial_sip(request: CallRequest) -> CallDriver:
    require_extra("numpy", "caller")
    from roost.sip.caller import SipCallConfig, SipCaller

    config = SipCallConfig(
        request.url,
        simulation_result_id=request.simulation_result_id,
        headers=dict(request.headers),
        auth_user=request.auth_user or request.username,
        auth_password=request.auth_password or request.password,
        # A phone rings longer than a socket connects: never below 30 s.
        ringing_timeout=max(request.connect_timeout, 30.0),
        record_path=request.record,
    )
    return SipCaller(config)


DIALERS: dict[str, Callable[[CallRequest], CallDriver]] = {
    "ws": _dial_chirp,
    "wss": _dial_chirp,
    "sip": _dial_sip,
}
"""URL scheme -> function building the call driver for it."""


def register(app: typer.Typer) -> None:
    """Add ``roost call`` to the command line."""
    app.command("call", help=_HELP, no_args_is_help=True)(call)


_HELP = (
    "Place one test call to an agent and print how it went.\n\n"
    "Plays --audio as one utterance, listens until the agent is quiet for --quiet seconds "
    "or hangs up, then hangs up. Exit code 0 when the call completed, 1 when it failed, "
    "2 for bad arguments.\n\n"
    "Example: roost call ws://localhost:8765/voice --simulation-result-id 720488 "
    "--user bluejay --password s3cret --audio hello.wav --record call.wav"
)


def call(
    url: Annotated[
        str,
        typer.Argument(
            help="The agent: ws:// or wss:// (CHIRP), or sip:USER@HOST:PORT[;transport=tcp].",
            show_default=False,
        ),
    ],
    simulation_result_id: Annotated[
        str,
        typer.Option(
            "--simulation-result-id", help="Sent as X-Simulation-Result-Id.", show_default=False
        ),
    ],
    audio: Annotated[
        Path,
        typer.Option(
            "--audio",
            help="WAV file to speak (any common WAV; converted to 16 kHz mono).",
            show_default=False,
        ),
    ],
    user: Annotated[str | None, typer.Option("--user", help="Basic-auth user.")] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password",
            envvar="ROOST_CALL_PASSWORD",
            help="Basic-auth password.",
            show_default=False,
        ),
    ] = None,
    record: Annotated[
        Path | None, typer.Option("--record", help="Write both directions to this stereo WAV.")
    ] = None,
    quiet: Annotated[
        float,
        typer.Option(
            "--quiet", min=0.1, help="Hang up after the agent is quiet this many seconds."
        ),
    ] = 3.0,
    max_duration: Annotated[
        float,
        typer.Option("--max-duration", min=1.0, help="Hang up after this many seconds at most."),
    ] = 120.0,
    connect_timeout: Annotated[
        float,
        typer.Option("--connect-timeout", min=0.1, help="Seconds for one connection attempt."),
    ] = 10.0,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retries when the agent is unreachable.")
    ] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")] = False,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", help="Extra SIP header X-Name:value (repeatable)."),
    ] = None,
    auth_user: Annotated[
        str | None, typer.Option("--auth-user", help="SIP digest user.", show_default=False)
    ] = None,
    auth_password: Annotated[
        str | None,
        typer.Option(
            "--auth-password",
            envvar="ROOST_CALL_AUTH_PASSWORD",
            help="SIP digest password.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Place one test call to an agent and print how it went."""
    scheme = urlsplit(url).scheme.lower()
    dial = DIALERS.get(scheme)
    if dial is None:
        known = ", ".join(f"{name}:" if name == "sip" else f"{name}://" for name in DIALERS)
        fail(f"cannot call {url!r}: the address must start with {known}", code=2)
    from roost.ids import InvalidSimulationResultId, validate_simulation_result_id

    try:
        sid = validate_simulation_result_id(simulation_result_id, source="--simulation-result-id")
    except InvalidSimulationResultId as exc:
        fail(str(exc), code=2)
    if password is not None and user is None:
        fail("--password needs --user", code=2)
    require_extra("numpy", "caller")
    from roost.audio import WavError, read_wav

    try:
        pcm = read_wav(audio)
    except (OSError, WavError) as exc:
        fail(f"cannot read {audio}: {exc}", code=2)
    request = CallRequest(url, sid, user, password, record, connect_timeout, retries)
    if scheme == "sip":
        request = _sip_request(request, header or [], auth_user, auth_password)
    elif header or auth_user or auth_password:
        fail("--header, --auth-user and --auth-password are for sip: calls", code=2)
    try:
        driver = dial(request)
    except ValueError as exc:
        fail(str(exc), code=2)
    outcome, seen = asyncio.run(_place(driver, pcm, quiet=quiet, max_duration=max_duration))
    if as_json:
        console.print_json(json.dumps(_as_dict(outcome, seen)))
    else:
        _print(outcome, seen)
    if not outcome.ok:
        raise typer.Exit(1)


def _sip_request(
    request: CallRequest, header: list[str], auth_user: str | None, auth_password: str | None
) -> CallRequest:
    """``request`` with the SIP options checked and added (exits 2 on a bad one)."""
    headers: list[tuple[str, str]] = []
    for item in header:
        name, sep, value = item.partition(":")
        if not sep or not name.strip():
            fail(f"--header {item!r}: expected X-Name:value", code=2)
        headers.append((name.strip(), value.strip()))
    if auth_password is not None and auth_user is None and request.username is None:
        fail("--auth-password needs --auth-user", code=2)
    return replace(
        request, headers=tuple(headers), auth_user=auth_user, auth_password=auth_password
    )


async def _place(
    driver: CallDriver, pcm: bytes, *, quiet: float, max_duration: float
) -> tuple[CallOutcome, Counter[str]]:
    from roost.audio import EnergyVad
    from roost.caller import AgentAudio, CallFailed

    seen: Counter[str] = Counter()
    try:
        await driver.connect()
    except CallFailed as failed:
        return failed.outcome, seen
    started = time.monotonic()
    vad = EnergyVad()
    last_voice = [started]

    async def listen() -> None:
        async for item in driver.agent_stream():
            if isinstance(item, AgentAudio):
                if vad.is_speech(item.pcm):
                    last_voice[0] = time.monotonic()
            else:
                seen[f"in {item.type}"] += 1

    listener = asyncio.create_task(listen())
    try:
        await asyncio.wait_for(asyncio.shield(driver.play(pcm)), max_duration)
        played_at = time.monotonic()
        while not listener.done():
            now = time.monotonic()
            quiet_for = now - max(last_voice[0], played_at)
            left = min(quiet - quiet_for, max_duration - (now - started))
            if left <= 0:
                break
            # The listener ends when the agent hangs up; otherwise re-check quiet.
            await asyncio.wait({listener}, timeout=min(left, 0.25))
    except TimeoutError:
        driver.interrupt()
    outcome = await driver.hangup()
    await listener
    for _, direction, kind, _ in outcome.events:
        if direction == "out":
            seen[f"out {kind}"] += 1
    return outcome, seen


def _print(outcome: CallOutcome, seen: Counter[str]) -> None:
    style = "green" if outcome.ok else "bold red"
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("status", f"[{style}]{outcome.status}[/]")
    if outcome.error_code:
        table.add_row("error", outcome.error_code)
    if outcome.detail:
        table.add_row("detail", outcome.detail)
    if outcome.close_code is not None:
        table.add_row("close code", str(outcome.close_code))
    if outcome.sip_status is not None:
        table.add_row("SIP status", str(outcome.sip_status))
    if outcome.ended_by:
        table.add_row("ended by", outcome.ended_by)
    if outcome.setup_ms is not None:
        table.add_row("connect", f"{outcome.setup_ms:.0f} ms")
    if outcome.duration_ms is not None:
        table.add_row("duration", f"{outcome.duration_ms / 1000:.2f} s")
    table.add_row("audio sent", f"{outcome.audio_sent_ms / 1000:.2f} s")
    table.add_row("audio received", f"{outcome.audio_received_ms / 1000:.2f} s")
    events = ", ".join(f"{name} ×{count}" for name, count in sorted(seen.items())) or "none"
    table.add_row("events", events)
    for error in outcome.agent_errors:
        table.add_row("agent error", f"{error.get('code')}: {error.get('message')}")
    if outcome.recording_path is not None:
        table.add_row("recording", str(outcome.recording_path))
    console.print(table)


def _as_dict(outcome: CallOutcome, seen: Counter[str]) -> dict[str, Any]:
    data = asdict(outcome)
    data["status"] = str(outcome.status)
    data["bucket"] = str(outcome.bucket) if outcome.bucket else None
    data["recording_path"] = str(outcome.recording_path) if outcome.recording_path else None
    data["events_seen"] = dict(seen)
    data.pop("events")
    return data
