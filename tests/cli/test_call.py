"""``roost call`` against a real agent (roost.chirp.serve) on loopback, in a thread of its own."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from roost.audio import decode_wav
from roost.chirp import CallerAudio, ChirpSession, serve
from roost.cli import _common, app
from tests.speech import speech_wav


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.delenv("ROOST_CALL_PASSWORD", raising=False)
    for console in (_common.console, _common.err_console):
        monkeypatch.setattr(console, "_width", 240)
    return CliRunner()


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return speech_wav(tmp_path_factory.mktemp("speech"), "Hello, is this the restaurant?")


@contextmanager
def agent_in_thread(handler: Any, **options: Any) -> Iterator[str]:
    """Serve ``handler`` on a loop in another thread (the CLI runs its own loop)."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        state["loop"] = asyncio.get_running_loop()
        state["stop"] = asyncio.Event()
        async with await serve(handler, recorder_factory=None, **options) as server:
            state["url"] = server.url("/voice")
            ready.set()
            await state["stop"].wait()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield state["url"]
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


async def replying_agent(call: ChirpSession) -> None:
    async for item in call:
        if not isinstance(item, CallerAudio) and item.type == "speech.completed":
            uid = call.start_speech()
            call.send_audio(b"\x10\x20" * 8000)  # half a second of loud audio
            call.complete_speech(uid)
            call.mark("reply")


def test_a_completed_call_prints_the_outcome_and_exits_0(
    runner: CliRunner, hello: Path, tmp_path: Path
) -> None:
    record = tmp_path / "call.wav"
    with agent_in_thread(replying_agent, auth=("bluejay", "pw")) as url:
        result = runner.invoke(
            app,
            [
                "call",
                url,
                "--simulation-result-id",
                "720488",
                "--user",
                "bluejay",
                "--password",
                "pw",
                "--audio",
                str(hello),
                "--record",
                str(record),
                # Generous: a stall on a loaded machine must not end the call early.
                "--quiet",
                "2",
            ],
        )
    assert result.exit_code == 0, result.output
    assert "COMPLETED" in result.output
    assert "close code      1000" in result.output
    assert "audio received  0.50 s" in result.output
    assert "in speech.started ×1" in result.output and "out mark ×1" in result.output
    assert str(record) in result.output
    recording = decode_wav(record.read_bytes())
    assert recording.channels == 2
    sent = decode_wav(hello.read_bytes()).duration_s
    assert recording.duration_s > sent


def test_json_output_and_password_from_the_environment(
    runner: CliRunner, hello: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROOST_CALL_PASSWORD", "pw")
    with agent_in_thread(replying_agent, auth=("bluejay", "pw")) as url:
        result = runner.invoke(
            app,
            ["call", url, "--simulation-result-id", "9", "--user", "bluejay"]
            + ["--audio", str(hello), "--quiet", "2", "--json"],
        )
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.output)
    assert outcome["status"] == "COMPLETED"
    assert outcome["transport"] == "chirp"
    assert outcome["events_seen"]["in mark"] == 1
    assert outcome["audio_received_ms"] == 500.0


def test_an_agent_that_hangs_up_ends_the_probe(runner: CliRunner, hello: Path) -> None:
    async def hangs_up(call: ChirpSession) -> None:
        async for item in call:
            if isinstance(item, CallerAudio):
                return  # first frame heard: hang up

    with agent_in_thread(hangs_up) as url:
        result = runner.invoke(
            app,
            ["call", url, "--simulation-result-id", "1", "--audio", str(hello), "--quiet", "30"],
        )
    assert result.exit_code == 0, result.output
    assert "ended by        agent" in result.output


def test_a_refused_call_exits_1(runner: CliRunner, hello: Path) -> None:
    with agent_in_thread(replying_agent, auth=("bluejay", "pw")) as url:
        result = runner.invoke(
            app,
            ["call", url, "--simulation-result-id", "1", "--user", "bluejay"]
            + ["--password", "guess", "--audio", str(hello)],
        )
    assert result.exit_code == 1
    assert "REJECTED" in result.output
    assert "WEBSOCKET_AUTH_FAILED" in result.output


def test_an_unreachable_agent_exits_1(runner: CliRunner, hello: Path) -> None:
    result = runner.invoke(
        app,
        ["call", "ws://127.0.0.1:9/voice", "--simulation-result-id", "1"]
        + ["--audio", str(hello), "--retries", "0"],
    )
    assert result.exit_code == 1
    assert "INCOMPLETED" in result.output
    assert "connection refused" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["http://x/", "--simulation-result-id", "1"], "must start with ws://, wss://"),
        (["ws://x/", "--simulation-result-id", "1\n2"], "--simulation-result-id"),
        (["ws://x/", "--simulation-result-id", "1", "--password", "p"], "--password needs --user"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason(
    runner: CliRunner, hello: Path, args: list[str], message: str
) -> None:
    result = runner.invoke(app, ["call", *args, "--audio", str(hello)])
    assert result.exit_code == 2
    assert message in result.output


def test_an_unreadable_audio_file_exits_2(runner: CliRunner, tmp_path: Path) -> None:
    not_wav = tmp_path / "notes.txt"
    not_wav.write_text("hello")
    for path, message in [(not_wav, "not a WAV file"), (tmp_path / "missing.wav", "No such file")]:
        result = runner.invoke(
            app, ["call", "ws://127.0.0.1:9/", "--simulation-result-id", "1", "--audio", str(path)]
        )
        assert result.exit_code == 2
        assert message in result.output
