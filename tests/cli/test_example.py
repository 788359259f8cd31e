"""`roost example` runs the SDK example end to end: a real server process, real delivery."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_roost_example_passes_end_to_end(tmp_path) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from roost.cli import main; main()",
            "example",
            "--keep",
            str(tmp_path),
            "--timeout",
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    out = completed.stdout
    assert "PASSED" in out
    assert "roost.examples.support_agent.SlotTaken" in out  # the failed attempt is kept
    assert "[REDACTED]" in out and "4111111111114242" not in out
    # The outbox holds the delivered payload; the server wrote its log.
    assert (tmp_path / "outbox.sqlite3").exists()
    assert (tmp_path / "roost.sqlite3").exists()
