"""``roost example``: the SDK example, end to end, on one machine and offline.

It shows the agent's half of the Bluejay contract working against a real
Roost platform:

1. a fresh SQLite database in a scratch folder, migrated, with one organisation
   and an API key;
2. ``roost serve`` started as a separate process on a free loopback port;
3. an agent, a simulation and a digital human whose ``expected_tool_calls``
   describe what a good agent does, and a queued run, all created through the
   Bluejay-compatible API;
4. the instrumented agent of :mod:`roost.examples.support_agent` serving the
   call with the run's simulation result id in its headers;
5. its enrichment posted by the SDK's durable outbox to
   ``/v1/update-simulation-result``, exactly as it would be to Bluejay;
6. the result read back with ``retrieve-simulation-result`` and its tool-call
   evaluation printed.

No caller places a real call here (SIP and CHIRP calls are ``roost call``), so
the example reports the call's start and end to the platform itself, through
Roost's ``call-started``/``call-ended`` additions, the way the platform's own
caller does.

Example:
    >>> from typer.testing import CliRunner
    >>> from roost.cli import app
    >>> CliRunner().invoke(app, ["example", "--help"]).exit_code
    0
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from roost.cli._common import console, err_console, fail, require_extra

__all__ = ["register"]

# What a good agent does on this call, in Bluejay's format plus Roost's rules.
EXPECTATIONS: dict[str, Any] = {
    "expected_tool_calls": [
        {"name": "lookup_account", "parameters": {"phone": "+15550100"}},
        {"name": "verify_identity", "id": "verify", "parameters": {"account_id": "AC-1042"}},
        {
            "name": "book_appointment",
            "id": "booking",
            "parameters": {"account_id": "AC-1042", "day": "2026-12-01"},
            "output_match": {"$.status": {"one_of": ["booked", "confirmed"]}},
            "max_duration_ms": 2000,
        },
    ],
    "tool_call_rules": {
        "order": "strict",
        "before": [["verify", "booking"]],
        "tools": [{"name": "transfer_to_human", "forbidden": True}],
        "events": [{"title": "identity_verified"}],
    },
}

_READY_PREFIX = "roost serve: listening on "


def example(
    keep: Annotated[
        Path | None,
        typer.Option(
            "--keep",
            help="Keep the database, outbox and server log in this folder "
            "(default: a temporary folder, removed at the end).",
            file_okay=False,
        ),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds to wait for each step.", min=1)
    ] = 30.0,
) -> None:
    """Run the SDK example end to end against a local Roost platform."""
    require_extra("sqlalchemy", "platform")
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        _run(keep.resolve(), timeout)
        console.print(f"kept the database, outbox and server log in [bold]{keep}[/]")
        return
    folder = Path(tempfile.mkdtemp(prefix="roost-example-"))
    try:
        _run(folder, timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _run(folder: Path, timeout: float) -> None:
    database_url = f"sqlite:///{folder / 'roost.sqlite3'}"
    console.rule("[bold]Roost example[/]: an instrumented agent against a local platform")
    api_key = _prepare_database(database_url)
    console.print(f"1. database {database_url} migrated; API key created for org 'example'")
    with _server(database_url, folder / "serve.log", timeout) as base_url:
        console.print(f"2. roost serve is listening on {base_url}")
        import httpx

        headers = {"X-API-Key": api_key}
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as api:
            result_id = _seed(api)
            console.print(f"3. simulation run queued; simulation result id {result_id}")
            _check(api.post(f"/v1/roost/simulation-results/{result_id}/call-started", json={}))
            outbox = folder / "outbox.sqlite3"
            status = _agent_call(result_id, base_url, api_key, outbox, timeout)
            _check(api.post(f"/v1/roost/simulation-results/{result_id}/call-ended", json={}))
            console.print(
                f"4. the agent served the call ({status}); its enrichment was delivered "
                f"from the outbox {outbox.name}"
            )
            result = _wait_for_evaluation(api, result_id, timeout)
    _show(result)


def _prepare_database(database_url: str) -> str:
    from roost.platform.keys import create_key
    from roost.platform.storage import Database, migrate

    async def prepare() -> str:
        db = Database(database_url)
        try:
            await migrate.upgrade(db)
            async with db.write() as session:
                created = await create_key(session, "example", name="example")
            return created.key
        finally:
            await db.dispose()

    return asyncio.run(prepare())


@contextmanager
def _server(database_url: str, log_path: Path, timeout: float) -> Iterator[str]:
    """Run ``roost serve`` in its own process; yield its base URL."""
    command = [
        sys.executable,
        "-c",
        "from roost.cli import main; main()",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--database-url",
        database_url,
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=env)
        try:
            yield _wait_ready(process, log_path, timeout)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> str:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode(errors="replace").strip()
        if line.startswith(_READY_PREFIX):
            return line.removeprefix(_READY_PREFIX)
        if not line and process.poll() is not None:
            break
    log = log_path.read_text(errors="replace").strip().splitlines()[-15:]
    fail("roost serve did not start:\n" + "\n".join(log))


def _check(response: Any) -> dict[str, Any]:
    if response.status_code != 200:
        fail(
            f"{response.request.method} {response.request.url.path}: "
            f"{response.status_code} {response.text}"
        )
    data: dict[str, Any] = response.json()
    return data


def _seed(api: Any) -> str:
    agent = _check(
        api.post(
            "/v1/add-agent",
            json={
                "name": "Northwind support",
                "system_prompt": "Book advisor meetings for verified customers.",
                "knowledge_base": "",
                "goals": ["verify the caller", "book a meeting"],
            },
        )
    )
    simulation = _check(
        api.post(
            "/v1/create-simulation",
            json={"agent_id": str(agent["agent_id"]), "name": "mortgage advice booking"},
        )
    )
    _check(
        api.post(
            "/v1/create-digital-human",
            json={
                "simulation_ids": [simulation["simulation_id"]],
                "digital_human": {
                    "name": "Dana",
                    "phone_number": "+15550100",
                    "num_runs": 1,
                    **EXPECTATIONS,
                },
            },
        )
    )
    run = _check(
        api.post(
            "/v1/queue-simulation-run", json={"simulation_id": str(simulation["simulation_id"])}
        )
    )
    return str(run["simulation_result_ids"][0])


def _agent_call(result_id: str, base_url: str, api_key: str, outbox: Path, timeout: float) -> str:
    from roost.delivery import Delivery, DeliveryConfig, EntryState
    from roost.examples.support_agent import handle_call

    config = DeliveryConfig(api_key=api_key, base_url=base_url, outbox_path=outbox)
    with Delivery(config, register_atexit=False) as delivery:
        # The id arrives as a SIP header of the INVITE (or of the WebSocket upgrade).
        status = asyncio.run(handle_call({"X-Simulation-Result-Id": result_id}, sink=delivery))
        delivery.flush(timeout)
        entries = delivery.outbox.entries()
        if not entries or any(entry.state is not EntryState.DELIVERED for entry in entries):
            states = ", ".join(f"{e.id}: {e.state.value} {e.last_error or ''}" for e in entries)
            fail(f"the enrichment was not delivered ({states or 'outbox empty'})")
    return status


def _wait_for_evaluation(api: Any, result_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        data = _check(api.get(f"/v1/retrieve-simulation-result/{result_id}"))
        result: dict[str, Any] = data["simulation_result"]
        if (result.get("roost") or {}).get("evaluation"):
            return result
        if time.monotonic() > deadline:
            fail(f"no evaluation after {timeout:.0f} s; status {result.get('status')}")
        time.sleep(0.2)


def _show(result: dict[str, Any]) -> None:
    calls = Table(title="Tool calls as retrieve-simulation-result returns them (Roost fields kept)")
    for column in ("name", "status", "start ms", "duration ms", "parameters", "output / error"):
        calls.add_column(column)
    actual = [
        call | {"name": group["name"]}
        for group in result.get("tool_calls") or []
        for call in group.get("actual") or []
    ]
    for call in sorted(actual, key=lambda call: call.get("start_offset_ms") or 0):
        outcome = (
            f"{call.get('error_type')}: {call.get('error_message')}"
            if call.get("status") == "error"
            else json.dumps(call.get("output"), ensure_ascii=False)
        )
        calls.add_row(
            str(call["name"]),
            str(call.get("status")),
            str(call.get("start_offset_ms")),
            str(call.get("duration_ms")),
            json.dumps(call.get("parameters"), ensure_ascii=False),
            outcome,
        )
    console.print(calls)
    roost = result["roost"]
    evaluation = roost["evaluation"]
    verdicts = Table(title="Tool-call evaluation against the digital human's expectations")
    for column in ("check", "subject", "verdict", "reason"):
        verdicts.add_column(column)
    for verdict in (evaluation.get("tool_calls") or {}).get("verdicts") or []:
        verdicts.add_row(
            str(verdict.get("check")),
            str(verdict.get("subject")),
            "[green]pass[/]" if verdict.get("passed") else "[red]fail[/]",
            str(verdict.get("reason") or ""),
        )
    console.print(verdicts)
    passed = evaluation.get("passed")
    console.print(
        f"result {result.get('status')}, enrichment {roost['enrichment']['state']}, "
        f"score {evaluation.get('score')}: "
        + ("[bold green]PASSED[/]" if passed else "[bold red]FAILED[/]")
    )
    if not passed:
        err_console.print("the example's agent should pass its own expectations")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the ``example`` command to the root command."""
    app.command("example")(example)
