"""``roost serve``: flags, ``ROOST_*`` variables, the default database, docs.

The server runs for real: a subprocess on 127.0.0.1 with ``--port 0`` (or
``ROOST_PORT=0``), reporting its bound address on stdout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from typer.testing import CliRunner

from roost.cli import app
from roost.platform import PlatformSettings
from tests.platform.conftest import start_server, stop_server

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bluejay-openapi-subset.json"
NOT_SERVED = {"/v1/evaluate", "/v1/check-queue-simulation-run/{simulation_run_id}"}


def _upgrade(url: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from roost.cli import main; main()", "db", "upgrade"]
        + (["--database-url", url] if url else []),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr


def test_help_lists_the_flags() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in ("--host", "--port", "--database-url", "--migrate", "--max-body-bytes"):
        assert flag in result.output


def test_serves_openapi_with_every_bluejay_operation_and_a_docs_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'serve.sqlite3'}"
    _upgrade(url)
    server = start_server(url)
    try:
        document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
        docs = httpx.get(f"{server.url}/docs", timeout=30)
    finally:
        stop_server(server)
    bluejay = json.loads(FIXTURE.read_text())
    for path, item in bluejay["paths"].items():
        if path in NOT_SERVED:
            continue
        assert path in document["paths"], path
        assert set(item) <= set(document["paths"][path]), path
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()


def test_environment_configures_port_and_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'from-env.sqlite3'}"
    _upgrade(url)
    process = subprocess.Popen(
        [sys.executable, "-c", "from roost.cli import main; main()", "serve", "--no-access-log"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "ROOST_DATABASE_URL": url, "ROOST_PORT": "0", "ROOST_HOST": "127.0.0.1"},
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("roost serve: listening on http://127.0.0.1:"), line
        base = line.split()[-1]
        assert not base.endswith(":8000")
        response = httpx.get(f"{base}/v1/ping", timeout=30)
        assert response.status_code == 401
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    # The database line may be wrapped by the console: compare without whitespace.
    assert "from-env.sqlite3" in "".join(err.split())


def test_bad_settings_are_clear_errors(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["serve", "--port", "70000"])
    assert result.exit_code != 0
    assert "port must be between 0 and 65535" in result.stderr
    result = CliRunner().invoke(app, ["serve", "--port", "0"], env={"ROOST_MAX_BODY_BYTES": "lots"})
    assert result.exit_code != 0
    assert "ROOST_MAX_BODY_BYTES must be an integer" in result.stderr


def test_default_database_is_sqlite_in_the_user_data_dir(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path / "data")}
    default = PlatformSettings.from_env({}).database_url
    assert default.startswith("sqlite:///") and default.endswith("roost.sqlite3")
    # With no flag and no variable, `roost db upgrade` creates that file.
    clean = {k: v for k, v in os.environ.items() if k != "ROOST_DATABASE_URL"}
    done = subprocess.run(
        [sys.executable, "-c", "from roost.cli import main; main()", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**clean, **env},
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "data" / "roost" / "roost.sqlite3").is_file()
