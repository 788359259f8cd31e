"""Ingest throughput of ``update-simulation-result`` against a bare JSON echo.

Method (see BENCHMARKS.md, section ``benchmarks/ingest.py``):

1. For each backend (SQLite file in a temp dir; PostgreSQL database created on
   127.0.0.1:5432 and dropped afterwards) the schema is migrated, a key is
   created and ``roost serve`` starts as a separate process (one uvicorn
   worker, access log off, ``ROOST_BENCH_ECHO=1`` to mount ``/_bench/echo``).
2. A run with 1,000 results is queued through the API.
3. The load comes from ``wrk`` (a separate C process; Debian package ``wrk``)
   with a Lua script. Ingest bodies are realistic: 20 tool calls (parameters,
   output, Roost extensions), 10 events and 40 transcript entries, about
   18 KB. Each request targets the next result and carries fresh ``call_id``
   values, so nothing is deduplicated: every 200 is a new batch. Each request
   also carries a fresh ``Idempotency-Key``, as Roost's SDK sends, so each
   200 also stores the key and its response (``--no-idempotency-keys`` sends
   none).
4. In the same run and the same server process, ``wrk`` loads
   ``POST /_bench/echo`` with the same body: it parses the JSON and sends it
   back (no auth, no database). That is the baseline of the ratio. After a
   warm-up of each route, the two are measured in interleaved rounds (echo
   then ingest, ingest then echo, ...; ``--rounds`` x ``--duration`` s each),
   and the ratio is total ingest requests per second over total echo
   requests per second. The machine's speed drifts within a minute, so a
   baseline measured once, before the ingest run, moved the ratio by a third
   from one run to the next. Each round's own ratio is printed too.
5. After the run, the number of stored batches is compared with the number
   of 200s wrk saw: every 200 must correspond to a committed batch.
6. Around each load the CPU time of the server process, of its writer
   process and of the machine's ``postgres`` processes is read from ``/proc``:
   CPU ms per request is steadier than req/s on a shared machine.

Every 200 of the ingest route is sent after the transaction that stored it
has committed (SQLite ``synchronous=FULL`` in WAL mode; PostgreSQL
``synchronous_commit=on``); concurrent requests share a transaction (group
commit), they never skip it.

Run: ``.venv/bin/python benchmarks/ingest.py`` (``--help`` for options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]

WRK_SCRIPT = r"""
local counter = 0
local results = {}
local mode = os.getenv("BENCH_MODE")
local body_parts = {}
local key = os.getenv("BENCH_KEY")
local salt = os.getenv("BENCH_SALT")
local keyed = os.getenv("BENCH_IDEMPOTENCY_KEYS") == "1"

function init(args)
  for id in string.gmatch(os.getenv("BENCH_RESULTS"), "[^,]+") do
    table.insert(results, id)
  end
  local f = io.open(os.getenv("BENCH_BODY"), "r")
  local template = f:read("*a")
  f:close()
  -- The template holds @RID@ once and @CID@ twenty times.
  local pos = 1
  while true do
    local s, e = string.find(template, "@[A-Z]+@", pos)
    if not s then break end
    table.insert(body_parts, string.sub(template, pos, s - 1))
    table.insert(body_parts, string.sub(template, s, e))
    pos = e + 1
  end
  table.insert(body_parts, string.sub(template, pos))
end

function request()
  counter = counter + 1
  local rid = results[(counter % #results) + 1]
  local prefix = salt .. "-" .. counter .. "-"
  local out = {}
  for i, part in ipairs(body_parts) do
    if part == "@RID@" then out[i] = rid
    elseif part == "@CID@" then out[i] = prefix .. i
    else out[i] = part end
  end
  local path = mode == "echo" and "/_bench/echo" or "/v1/update-simulation-result"
  local headers = {["Content-Type"] = "application/json", ["X-API-Key"] = key}
  if keyed then
    -- A fresh key per request, as Roost's SDK sends one per delivery.
    headers["Idempotency-Key"] = prefix .. "key"
  end
  return wrk.format("POST", path, headers, table.concat(out))
end

function done(summary, latency, requests)
  io.write(string.format(
    "BENCH_JSON {\"requests\": %d, \"duration_us\": %d, \"status_errors\": %d, " ..
    "\"socket_errors\": %d, \"p50_us\": %d, \"p99_us\": %d, \"mean_us\": %f}\n",
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def payload_template() -> dict[str, Any]:
    """The realistic body: 20 tool calls, 10 events, 40 transcript entries."""
    return {
        "simulation_result_id": "@RID@",
        "tool_calls": [
            {
                "name": ["lookup_order", "check_stock", "book_slot", "send_sms", "verify"][i % 5],
                "start_offset_ms": 1500 * i + 200,
                "description": "Look up an order and its shipping status by order id",
                "parameters": {
                    "order_id": f"A-{10000 + i}",
                    "include": ["items", "shipping"],
                    "customer": {"id": 4242, "tier": "gold"},
                    "verbose": False,
                },
                "output": {
                    "status": "shipped",
                    "eta_days": 3,
                    "items": [{"sku": "SKU-1", "qty": 2}, {"sku": "SKU-9", "qty": 1}],
                },
                "call_id": "@CID@",
                "end_offset_ms": 1500 * i + 340,
                "duration_ms": 139.7,
                "status": "ok",
            }
            for i in range(20)
        ],
        "events": [
            {
                "title": ["identity_verified", "hold_started", "hold_ended", "transfer"][i % 4],
                "start_offset_ms": 3000 * i,
                "end_offset_ms": 3000 * i + 800,
                "description": "caller verified with date of birth",
                "tags": ["auth", "voice"],
                "metadata": {"method": "dob", "attempts": 1},
            }
            for i in range(10)
        ],
        "recorded_transcript": [
            {
                "start_offset_ms": 750 * i,
                "end_offset_ms": 750 * i + 700,
                "speaker": "AGENT" if i % 2 else "USER",
                "utterance": "Sure, let me check the status of your order for you right now.",
                "filler_utterance": False,
            }
            for i in range(40)
        ],
        "tags": ["benchmark", "orders"],
        "metadata": {"build": "abc123", "region": "eu-west", "agent_version": "2.4.1"},
        "trace_ids": ["4bf92f3577b34da6a3ce929d0e0e4736"],
    }


@dataclass
class Load:
    """One wrk run."""

    requests: int
    seconds: float
    status_errors: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    server_cpu_s: float = 0.0
    writer_cpu_s: float = 0.0
    database_cpu_s: float = 0.0
    machine_busy: float = 0.0

    @property
    def cpu_ms_per_request(self) -> float:
        """Server process CPU (user + system) per request: steadier than req/s on a
        shared machine, since it does not depend on how much CPU others leave us."""
        return self.server_cpu_s * 1000 / self.requests if self.requests else 0.0

    @property
    def writer_cpu_ms_per_request(self) -> float:
        """The same for the server's child processes (the ingest writer process)."""
        return self.writer_cpu_s * 1000 / self.requests if self.requests else 0.0

    @property
    def database_cpu_ms_per_request(self) -> float:
        """The same for every local ``postgres`` process (0 on SQLite)."""
        return self.database_cpu_s * 1000 / self.requests if self.requests else 0.0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """User + system CPU time of the running children of a process."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except FileNotFoundError:
        return 0.0
    total = 0.0
    for child in children:
        try:
            total += process_cpu_seconds(int(child))
        except FileNotFoundError:
            continue
    return total


def postgres_cpu_seconds() -> float:
    """User + system CPU time of this machine's running ``postgres`` processes.

    The benchmark's PostgreSQL runs on the same machine, so this is the
    database's share of the CPU (backends, WAL writer, checkpointer, autovacuum
    workers alive at both reads).
    """
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if "(postgres)" in text:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)


def run_wrk(
    url: str,
    mode: str,
    env: dict[str, str],
    script: Path,
    seconds: int,
    connections: int,
    server_pid: int | None = None,
) -> Load:
    cpu_before = process_cpu_seconds(server_pid) if server_pid else 0.0
    writer_before = children_cpu_seconds(server_pid) if server_pid else 0.0
    database_before = postgres_cpu_seconds()
    busy_before, total_before = machine_ticks()
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env, "BENCH_MODE": mode, "BENCH_SALT": uuid.uuid4().hex[:8]},
    ).stdout
    cpu_after = process_cpu_seconds(server_pid) if server_pid else 0.0
    writer_after = children_cpu_seconds(server_pid) if server_pid else 0.0
    database_after = postgres_cpu_seconds()
    busy_after, total_after = machine_ticks()
    line = next(item for item in out.splitlines() if item.startswith("BENCH_JSON "))
    data = json.loads(line.removeprefix("BENCH_JSON "))
    return Load(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        status_errors=data["status_errors"],
        socket_errors=data["socket_errors"],
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        server_cpu_s=cpu_after - cpu_before,
        writer_cpu_s=writer_after - writer_before,
        database_cpu_s=max(0.0, database_after - database_before),
        machine_busy=(busy_after - busy_before) / max(1, total_after - total_before),
    )


def combine(loads: list[Load]) -> Load:
    """Rounds of one route as one load: totals, the median p50, the worst p99."""
    p50s = sorted(load.p50_ms for load in loads)
    seconds = sum(load.seconds for load in loads)
    return Load(
        requests=sum(load.requests for load in loads),
        seconds=seconds,
        status_errors=sum(load.status_errors for load in loads),
        socket_errors=sum(load.socket_errors for load in loads),
        p50_ms=p50s[len(p50s) // 2],
        p99_ms=max(load.p99_ms for load in loads),
        server_cpu_s=sum(load.server_cpu_s for load in loads),
        writer_cpu_s=sum(load.writer_cpu_s for load in loads),
        database_cpu_s=sum(load.database_cpu_s for load in loads),
        machine_busy=sum(load.machine_busy * load.seconds for load in loads) / max(seconds, 1e-9),
    )


def start_server(
    database_url: str, log: Path, *, writer_process: bool = True
) -> tuple[subprocess.Popen[str], str]:
    # stderr goes to a file: a pipe nobody drains would fill up with the
    # server's warnings and block its event loop mid-run.
    with log.open("w") as stderr:
        process = _spawn_server(database_url, stderr, writer_process=writer_process)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("roost serve: listening on "):
        process.kill()
        process.wait()
        raise RuntimeError(f"server failed: {line}{log.read_text()}")
    return process, line.split()[-1]


def _spawn_server(database_url: str, stderr: Any, *, writer_process: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from roost.cli import main; main()",
            "serve",
            "--port",
            "0",
            "--database-url",
            database_url,
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={
            **os.environ,
            "ROOST_BENCH_ECHO": "1",
            "ROOST_INGEST_PROCESS": "true" if writer_process else "false",
        },
    )


async def prepare(database_url: str) -> str:
    from roost.platform.keys import create_key
    from roost.platform.storage import Database, migrate

    db = Database(database_url)
    try:
        await migrate.upgrade(db)
        async with db.write() as session:
            created = await create_key(session, f"bench-{uuid.uuid4().hex[:8]}")
    finally:
        await db.dispose()
    return created.key


async def count_batches(database_url: str) -> int:
    from sqlalchemy import func, select

    from roost.platform.storage import Database, EnrichmentBatch

    db = Database(database_url)
    try:
        async with db.read() as session:
            return int(
                (
                    await session.execute(select(func.count()).select_from(EnrichmentBatch))
                ).scalar_one()
            )
    finally:
        await db.dispose()


def seed(url: str, key: str, results: int) -> list[str]:
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as http:
        agent = http.post(
            "/v1/add-agent",
            json={"name": "bench", "system_prompt": "", "knowledge_base": "", "goals": []},
        ).json()
        simulation = http.post(
            "/v1/create-simulation", json={"agent_id": str(agent["agent_id"])}
        ).json()
        http.post(
            "/v1/create-digital-human",
            json={
                "simulation_ids": [simulation["simulation_id"]],
                "digital_human": {"phone_number": "+15550100", "num_runs": results},
            },
        ).raise_for_status()
        run = http.post(
            "/v1/queue-simulation-run", json={"simulation_id": str(simulation["simulation_id"])}
        )
        run.raise_for_status()
        ids: list[str] = run.json()["simulation_result_ids"]
        return ids


def bench_backend(
    name: str, database_url: str, args: argparse.Namespace, workdir: Path
) -> dict[str, Any]:
    key = asyncio.run(prepare(database_url))
    process, url = start_server(
        database_url, workdir / f"server-{name}.log", writer_process=args.writer == "process"
    )
    try:
        result_ids = seed(url, key, 1000)
        body_file = workdir / "body.json"
        body_file.write_text(json.dumps(payload_template()))
        script = workdir / "bench.lua"
        script.write_text(WRK_SCRIPT)
        env = {
            "BENCH_RESULTS": ",".join(result_ids),
            "BENCH_BODY": str(body_file),
            "BENCH_KEY": key,
            "BENCH_IDEMPOTENCY_KEYS": "1" if args.idempotency_keys else "0",
        }
        # Check both routes answer 200 before loading them.
        sample = (
            json.dumps(payload_template()).replace("@RID@", result_ids[0]).replace("@CID@", "probe")
        )
        with httpx.Client(base_url=url, headers={"X-API-Key": key}) as http:
            for path in ("/_bench/echo", "/v1/update-simulation-result"):
                http.post(
                    path, content=sample, headers={"Content-Type": "application/json"}
                ).raise_for_status()
        for mode in ("echo", "ingest"):
            run_wrk(url, mode, env, script, args.warmup, args.connections)
        before = asyncio.run(count_batches(database_url))
        # Interleaved rounds (echo then ingest, then ingest then echo, ...):
        # the machine's speed drifts within a minute, and a baseline measured
        # only before the ingest run moved the ratio by a third between runs.
        rounds: list[dict[str, Load]] = []
        for number in range(args.rounds):
            order = ("echo", "ingest") if number % 2 == 0 else ("ingest", "echo")
            rounds.append(
                {
                    mode: run_wrk(
                        url, mode, env, script, args.duration, args.connections, process.pid
                    )
                    for mode in order
                }
            )
        stored = asyncio.run(count_batches(database_url)) - before
    finally:
        process.terminate()
        process.communicate(timeout=30)
    ingest = combine([r["ingest"] for r in rounds])
    echo = combine([r["echo"] for r in rounds])
    ok = ingest.requests - ingest.status_errors
    return {
        "backend": name,
        "echo": echo,
        "ingest": ingest,
        "ratio": ingest.rps / echo.rps if echo.rps else 0.0,
        "round_ratios": [r["ingest"].rps / r["echo"].rps if r["echo"].rps else 0.0 for r in rounds],
        "ingest_200": ok,
        "stored_batches": stored,
    }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load: {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=int, default=5, help="seconds per measured run of a route in a round"
    )
    parser.add_argument(
        "--rounds", type=int, default=4, help="interleaved rounds (echo and ingest in each)"
    )
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up per route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--writer",
        choices=("process", "inline"),
        default="process",
        help="ingest writer in its own process (the default of roost serve) or in the "
        "server's process (ROOST_INGEST_PROCESS=false)",
    )
    parser.add_argument(
        "--pg", default="postgresql://postgres@127.0.0.1:5432", help="PostgreSQL server"
    )
    parser.add_argument(
        "--idempotency-keys",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="send a fresh Idempotency-Key with every request, as Roost's SDK does "
        "(default; before the fourth 2026-12-07 session the benchmark sent none)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    print(load_average())
    print(f"ingest writer: {args.writer}; idempotency keys: {args.idempotency_keys}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "sqlite":
                rows.append(
                    bench_backend("sqlite", f"sqlite:///{workdir}/bench.sqlite3", args, workdir)
                )
            elif backend == "postgresql":
                name = f"roost_bench_{uuid.uuid4().hex[:10]}"
                admin = f"{args.pg}/postgres"
                subprocess.run(["psql", admin, "-qc", f'CREATE DATABASE "{name}"'], check=True)
                try:
                    rows.append(bench_backend("postgresql", f"{args.pg}/{name}", args, workdir))
                finally:
                    subprocess.run(
                        ["psql", admin, "-qc", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                        check=True,
                    )
            else:
                sys.exit(f"unknown backend {backend}")
    print(load_average())
    print()
    print(
        "| backend | route | req/s | p50 ms | p99 ms | non-2xx | ratio to echo "
        "| server CPU ms/req | writer process CPU ms/req | PostgreSQL CPU ms/req | machine busy |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        for route in ("echo", "ingest"):
            load: Load = row[route]
            ratio = "1.00" if route == "echo" else f"{row['ratio']:.2f}"
            print(
                f"| {row['backend']} | {route} | {load.rps:,.0f} | {load.p50_ms:.2f} "
                f"| {load.p99_ms:.2f} | {load.status_errors + load.socket_errors} | {ratio} "
                f"| {load.cpu_ms_per_request:.2f} | {load.writer_cpu_ms_per_request:.2f} "
                f"| {load.database_cpu_ms_per_request:.2f} | {load.machine_busy:.0%} |"
            )
    print()
    for row in rows:
        verdict = "ok" if row["stored_batches"] >= row["ingest_200"] else "MISSING BATCHES"
        print(
            f"{row['backend']}: {row['ingest_200']} ingest 200s, {row['stored_batches']} batches "
            f"stored during the run ({verdict}); target ratio >= 0.50: "
            f"{'met' if row['ratio'] >= 0.5 else 'NOT met'} ({row['ratio']:.2f}; rounds: "
            f"{', '.join(f'{ratio:.2f}' for ratio in row['round_ratios'])})"
        )


if __name__ == "__main__":
    main()
