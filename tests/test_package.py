"""`import roost` stays light: the SDK's public names load no server, audio or database stack."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "sqlalchemy",
    "alembic",
    "numpy",
    "soxr",
    "websockets",
    "httpx",
    "sqlite3",
    "roost.platform",
    "roost.chirp",
    "roost.sip",
    "roost.audio",
    "roost.delivery",
)


def test_import_roost_and_record_a_call_loads_nothing_heavy() -> None:
    script = (
        "import json, sys, roost\n"
        "@roost.tool\n"
        "def f(x):\n"
        "    return x\n"
        "f(1)\n"
        "roost.extract_simulation_result_id({'X-Simulation-Result-Id': '7'})\n"
        "with roost.CallRecorder('7', auto_submit=False) as call:\n"
        "    f(2)\n"
        "call.build_request()\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout) == []


def test_public_names_are_re_exported() -> None:
    import roost

    for name in roost.__all__:
        assert getattr(roost, name) is not None, name
