"""The README's "Instrument your agent" example runs as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_instrument_example_records_and_stores_a_payload(tmp_path: Path) -> None:
    (example,) = _python_blocks()
    script = (
        example
        + "\nimport asyncio\n"
        + "asyncio.run(on_call({'X-Simulation-Result-Id': '720488'}))\n"
        + "from roost.delivery import default_delivery\n"
        + "entries = default_delivery().outbox.entries()\n"
        + "print(len(entries), entries[0].simulation_result_id, entries[0].state.value)\n"
        + "body = default_delivery().outbox.body(entries[0].id).decode()\n"
        + "assert '4111111111114242' not in body and 'identity_verified' in body, body\n"
        + "assert 'verify_identity' in body and 'lookup_account' in body, body\n"
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("ROOST_API_KEY", "BLUEJAY_API_KEY", "ROOST_BASE_URL")
    }
    env["ROOST_OUTBOX_PATH"] = str(tmp_path / "outbox.sqlite3")
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert completed.returncode == 0, completed.stderr
    # Without an API key the payload is kept in the outbox, not sent.
    assert completed.stdout.split() == ["1", "720488", "pending"]
