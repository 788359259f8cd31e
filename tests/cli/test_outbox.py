from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roost.cli import _common, app
from roost.delivery import EntryState, Outbox
from tests.delivery.server import PlatformServer, Respond

T0 = time.time()


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("ROOST_API_KEY", "BLUEJAY_API_KEY", "ROOST_BASE_URL", "ROOST_OUTBOX_PATH"):
        monkeypatch.delenv(name, raising=False)
    # The shared Rich consoles are created at import time; widen them so long
    # paths are not wrapped in the middle of what the assertions look for.
    for console in (_common.console, _common.err_console):
        monkeypatch.setattr(console, "_width", 240)
    return CliRunner()


@pytest.fixture
def server() -> Iterator[PlatformServer]:
    with PlatformServer() as srv:
        yield srv


def fill(path: Path, base_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    """One entry in each state; returns their ids by state."""
    ids: dict[str, str] = {}
    with Outbox(path) as box:
        for state in ("delivered", "failed", "pending"):
            entry = box.add(
                body=json.dumps({"simulation_result_id": f"res-{state}"}).encode(),
                simulation_result_id=f"res-{state}",
                base_url=base_url,
                key_fingerprint=None,
                now=T0,
            )
            ids[state] = entry.id
            if state == "pending":
                continue
            [claim] = box.claim(now=T0, base_url=base_url, key_fingerprint=None, lease=10)
            if state == "delivered":
                box.record_delivered(claim, now=T0, status=200, message="stored")
            else:
                box.record_failed(claim, error="HTTP 404: Simulation result not found", status=404)
    return ids


def invoke(runner: CliRunner, *args: str, **kwargs: object):
    return runner.invoke(app, ["outbox", *args], **kwargs)  # type: ignore[arg-type]


def test_help_lists_the_commands(runner: CliRunner) -> None:
    result = invoke(runner, "--help")
    assert result.exit_code == 0
    for command in ("list", "show", "flush", "purge"):
        assert command in result.output


def test_list_without_an_outbox_does_not_create_one(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "none.sqlite3"
    result = invoke(runner, "list", "--path", str(path))
    assert result.exit_code == 0
    assert "No outbox" in result.output
    assert not path.exists()


def test_list_shows_every_state_and_totals(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ids = fill(path)
    result = invoke(runner, "list", "--path", str(path))
    assert result.exit_code == 0, result.output
    for state, entry_id in ids.items():
        assert entry_id[:12] in result.output
        assert f"res-{state}" in result.output
    assert "HTTP 404: Simulation result not found" in result.output
    assert "1 pending, 1 delivered, 1 failed" in result.output


def test_list_reads_the_path_from_the_environment(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "env.sqlite3"
    fill(path)
    monkeypatch.setenv("ROOST_OUTBOX_PATH", str(path))
    result = invoke(runner, "list", "--state", "failed")
    assert result.exit_code == 0
    assert "res-failed" in result.output and "res-pending" not in result.output


def test_list_json(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ids = fill(path)
    result = invoke(runner, "list", "--path", str(path), "--json")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert {row["id"] for row in rows} == set(ids.values())
    assert {row["state"] for row in rows} == {"pending", "delivered", "failed"}


def test_list_rejects_an_unknown_state(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "list", "--path", str(tmp_path / "o"), "--state", "lost")
    assert result.exit_code == 1
    assert "unknown state 'lost'" in result.output


def test_show_by_prefix_with_body(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ids = fill(path)
    result = invoke(runner, "show", ids["failed"][:6], "--path", str(path))
    assert result.exit_code == 0, result.output
    assert ids["failed"] in result.output
    assert "HTTP 404: Simulation result not found" in result.output
    assert '"simulation_result_id": "res-failed"' in result.output
    assert "roost outbox flush --retry-failed" in result.output


def test_show_raw_prints_the_exact_bytes(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    ids = fill(path)
    result = invoke(runner, "show", ids["pending"], "--path", str(path), "--raw")
    assert result.exit_code == 0
    assert result.stdout_bytes == b'{"simulation_result_id": "res-pending"}'


def test_show_unknown_id_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path)
    result = invoke(runner, "show", "abcdef0123", "--path", str(path))
    assert result.exit_code == 1
    assert "no outbox entry with id 'abcdef0123'" in result.output
    assert "Traceback" not in result.output


def test_corrupt_outbox_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    path.write_bytes(b"garbage" * 500)
    result = invoke(runner, "list", "--path", str(path))
    assert result.exit_code == 1
    assert str(path) in result.output and "left untouched" in result.output
    assert path.read_bytes() == b"garbage" * 500


def test_flush_needs_an_api_key(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "flush", "--path", str(tmp_path / "o.sqlite3"))
    assert result.exit_code == 1
    assert "no API key" in result.output


def test_flush_delivers_pending_and_retries_failed(
    runner: CliRunner, tmp_path: Path, server: PlatformServer
) -> None:
    path = tmp_path / "o.sqlite3"
    ids = fill(path, base_url=server.url)
    env = {"ROOST_API_KEY": "rk_cli", "ROOST_BASE_URL": server.url}
    # Make the pending one look backed off for an hour: flush ignores that.
    with Outbox(path) as box:
        [claim] = box.claim(now=T0, base_url=server.url, key_fingerprint=None, lease=10)
        box.record_retry(claim, deadline=time.time() + 3600, error="HTTP 503", status=503)

    result = invoke(runner, "flush", "--path", str(path), env=env)
    assert result.exit_code == 0, result.output
    assert "1 delivered" in result.output
    assert len(server.payloads) == 1

    result = invoke(runner, "flush", "--path", str(path), "--retry-failed", env=env)
    assert result.exit_code == 0, result.output
    assert "1 requeued from failed" in result.output
    with Outbox(path) as box:
        assert {box.find(i).state for i in ids.values()} == {EntryState.DELIVERED}
    assert len(server.payloads) == 2 == len(server.requests)
    assert {r.headers["x-api-key"] for r in server.requests} == {"rk_cli"}


def test_flush_reports_failures_with_the_server_message(
    runner: CliRunner, tmp_path: Path, server: PlatformServer
) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path, base_url=server.url)
    server.script([Respond(401, body=b'{"detail": "Invalid API key"}')])
    result = invoke(
        runner,
        "flush",
        "--path",
        str(path),
        env={"ROOST_API_KEY": "rk_bad", "ROOST_BASE_URL": server.url},
    )
    assert result.exit_code == 1
    assert "HTTP 401: Invalid API key" in result.output
    assert "1 failed" in result.output


def test_flush_with_the_platform_down_keeps_everything(runner: CliRunner, tmp_path: Path) -> None:
    with PlatformServer(up=False) as down:
        path = tmp_path / "o.sqlite3"
        fill(path, base_url=down.url)
        result = invoke(
            runner,
            "flush",
            "--path",
            str(path),
            "--timeout",
            "1",
            env={"ROOST_API_KEY": "rk", "ROOST_BASE_URL": down.url},
        )
    assert result.exit_code == 1
    assert "still pending" in result.output
    with Outbox(path) as box:
        assert box.counts() == {"pending": 1, "delivered": 1, "failed": 1}


def test_flush_mentions_entries_for_other_targets(
    runner: CliRunner, tmp_path: Path, server: PlatformServer
) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path, base_url="https://elsewhere.example")
    result = invoke(
        runner,
        "flush",
        "--path",
        str(path),
        env={"ROOST_API_KEY": "rk", "ROOST_BASE_URL": server.url},
    )
    assert result.exit_code == 0
    assert "Nothing pending" in result.output
    assert "1 pending entry belong" in result.output
    assert server.requests == []


def test_purge_defaults_to_delivered_only(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path)
    result = invoke(runner, "purge", "--path", str(path))
    assert result.exit_code == 0, result.output
    assert "Deleted 1 entry (delivered)" in result.output
    with Outbox(path) as box:
        assert box.counts() == {"pending": 1, "delivered": 0, "failed": 1}


def test_purge_failed_needs_confirmation(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path)
    result = invoke(runner, "purge", "--path", str(path), "--failed")
    assert result.exit_code == 1
    assert "without --yes" in result.output
    with Outbox(path) as box:
        assert box.counts() == {"pending": 1, "delivered": 1, "failed": 1}
    result = invoke(runner, "purge", "--path", str(path), "--failed", "--yes")
    assert result.exit_code == 0
    with Outbox(path) as box:
        assert box.counts() == {"pending": 1, "delivered": 0, "failed": 0}


def test_purge_all_with_yes(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path)
    result = invoke(runner, "purge", "--path", str(path), "--all", "-y")
    assert result.exit_code == 0
    assert "Deleted 3 entries" in result.output


def test_purge_older_than(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    fill(path)
    result = invoke(runner, "purge", "--path", str(path), "--older-than", "1")
    assert result.exit_code == 0
    assert "Deleted 0 entries" in result.output


@pytest.mark.parametrize(("answer", "failed_left"), [("n\n", 1), ("y\n", 0)])
def test_purge_failed_asks_interactively(
    runner: CliRunner,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    failed_left: int,
) -> None:
    import roost.cli.outbox as outbox_cli

    monkeypatch.setattr(outbox_cli, "_interactive", lambda: True)
    path = tmp_path / "o.sqlite3"
    fill(path)
    result = invoke(runner, "purge", "--path", str(path), "--failed", input=answer)
    assert "NOT accepted" in result.output
    assert result.exit_code == (1 if failed_left else 0)
    with Outbox(path) as box:
        assert box.counts()["failed"] == failed_left
