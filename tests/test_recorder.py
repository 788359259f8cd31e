from __future__ import annotations

import ast
import asyncio
import contextvars
import datetime
import decimal
import doctest
import json
import logging
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import msgspec
import pytest

import roost
import roost.recorder
from roost.capture import CaptureLimits
from roost.delivery import Delivery, DeliveryConfig
from roost.recorder import CallRecorder
from roost.redaction import REDACTED, Redactor
from roost.schema import Speaker, UpdateSimulationRequest, encode_request
from tests.openapi import UPDATE_REQUEST, assert_valid

MS = 1_000_000
ROOT = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.now = 5_000 * MS

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += int(ms * MS)


class ListSink:
    """In-memory EnrichmentSink: an edge double standing in for the outbox."""

    def __init__(self) -> None:
        self.requests: list[UpdateSimulationRequest] = []
        self.threads: list[int] = []

    def submit(self, request: UpdateSimulationRequest) -> str:
        self.requests.append(request)
        self.threads.append(threading.get_ident())
        return f"outbox-{len(self.requests)}"


def body(request: UpdateSimulationRequest | None) -> dict[str, Any]:
    assert request is not None
    decoded: dict[str, Any] = msgspec.json.decode(encode_request(request))
    return decoded


@roost.tool
def lookup(order_id: str) -> dict[str, str]:
    """Find an order."""
    return {"order_id": order_id, "status": "shipped"}


@roost.tool
async def alookup(order_id: str) -> str:
    await asyncio.sleep(0)
    return order_id


def test_doctests() -> None:
    assert doctest.testmod(roost.recorder).failed == 0


def test_names_exported_from_the_package() -> None:
    assert roost.CallRecorder is CallRecorder
    assert roost.tool is roost.recorder.tool
    assert roost.current_recorder is roost.recorder.current_recorder
    assert roost.Redactor is Redactor


def test_import_roost_loads_no_delivery_sqlite_or_http() -> None:
    code = (
        "import sys, roost; roost.CallRecorder; roost.tool; roost.Redactor; "
        "print(sorted(m for m in ('roost.delivery', 'sqlite3', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_recording_does_no_io_until_the_call_ends() -> None:
    # Audit hooks see every open, socket, SQLite and subprocess operation in the
    # process; a fresh interpreter, because a hook cannot be removed.
    code = """
import asyncio, sys, roost
seen, watching = [], [False]
def hook(event, args):
    if watching[0] and event.split(".")[0] in ("open", "socket", "sqlite3", "subprocess", "os"):
        seen.append(event)
sys.addaudithook(hook)

@roost.tool
def lookup(order_id, card_number=None):
    return {"order_id": order_id, "items": [1, 2, 3]}

@roost.tool
async def refund(amount):
    raise ValueError(f"refund of {amount} declined")

class Sink:
    def submit(self, request):
        seen.append(f"submit with {len(request.tool_calls)} tool calls")
        return "outbox-1"

async def call():
    async with roost.CallRecorder("720488", sink=Sink()) as rec:
        watching[0] = True
        for i in range(200):
            lookup(f"A-{i}", card_number="4111111111111111")
            try:
                await refund(i)
            except ValueError:
                pass
            rec.event("step", metadata={"i": i}).end()
            rec.transcript("AGENT", "one moment", i, i + 1)
            rec.tag("t")
            rec.tool_call("manual", i=i).finish(output=i)
        seen.append("hang-up")
    watching[0] = False

asyncio.run(call())
print(seen)
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    seen = ast.literal_eval(out.stdout.strip())
    # Nothing before hang-up; after it, the hand-off (the first to_thread may
    # import concurrent.futures, which opens its module files).
    assert seen[0] == "hang-up", seen
    assert seen[-1] == "submit with 600 tool calls", seen
    assert set(seen[1:-1]) <= {"open"}, seen


# -- the zero point --------------------------------------------------------------


def test_clock_starts_at_enter_by_default() -> None:
    clock = Clock()
    rec = CallRecorder("1", auto_submit=False, clock=clock)
    clock.advance(10_000)  # created long before the call is answered
    with rec:
        clock.advance(250)
        lookup("A")
        rec.event("greeted")
    request = rec.build_request()
    assert request is not None and request.tool_calls and request.events
    assert request.tool_calls[0].start_offset_ms == 250
    assert request.events[0].start_offset_ms == 250
    assert rec.answered_at == 15_000 * MS


def test_explicit_answer_time_and_mark_answered(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    answered = clock()
    clock.advance(100)
    with CallRecorder("1", auto_submit=False, clock=clock, answered_at=answered) as rec:
        lookup("A")
    assert body(rec.build_request())["tool_calls"][0]["start_offset_ms"] == 100

    clock = Clock()
    late = CallRecorder("2", auto_submit=False, clock=clock)
    with caplog.at_level(logging.WARNING, logger="roost"), late:
        clock.advance(300)  # ringing: entered before the answer
        late.mark_answered()
        clock.advance(20)
        lookup("B")
        late.mark_answered()  # ignored, logged once
        late.mark_answered()
    assert body(late.build_request())["tool_calls"][0]["start_offset_ms"] == 20
    assert caplog.text.count("mark_answered() called again") == 1


def test_tool_calls_before_the_answer_are_clamped_and_counted() -> None:
    clock = Clock()
    rec = CallRecorder("1", auto_submit=False, clock=clock)
    with rec:
        lookup("early")
        clock.advance(50)
        rec.mark_answered()
        clock.advance(5)
        rec.event("after answer")
    data = body(rec.build_request())
    assert data["tool_calls"][0]["start_offset_ms"] == 0
    assert data["tool_calls"][0]["duration_ms"] == 0.0
    assert data["events"][0]["start_offset_ms"] == 5
    assert data["metadata"]["roost"]["clamped_offsets"] == 2


def test_now_ms() -> None:
    clock = Clock()
    with CallRecorder("1", auto_submit=False, clock=clock) as rec:
        clock.advance(1234.9)
        assert rec.now_ms() == 1234


# -- everything that can be recorded ---------------------------------------------


def test_full_payload_is_valid_against_the_openapi_subset() -> None:
    clock = Clock()
    sink = ListSink()

    @roost.tool
    def charge(card_number: str, amount: decimal.Decimal) -> dict[str, Any]:
        clock.advance(80)
        raise ConnectionError(f"gateway refused card {card_number}")

    with CallRecorder(
        "720488",
        sink=sink,
        clock=clock,
        tags=["smoke"],
        metadata={"model": "gpt-x", "api_key": "sk-live-123"},
        limits=CaptureLimits(max_string=40),
    ) as rec:
        rec.transcript("AGENT", "Hello, how can I help?", 0, 900)
        rec.transcript("user", "My card is 4111 1111 1111 1111", 1000, 2500, filler=False)
        clock.advance(2600)
        lookup("A-17")
        with pytest.raises(ConnectionError):
            charge("4111111111111111", decimal.Decimal("10.00"))
        with rec.event("hold", tags=["hold"], metadata={"reason": "x" * 100, "pin": "1234"}):
            clock.advance(4000)
        rec.tool_call("note", text="y" * 100, output=datetime.date(2026, 8, 1))
        rec.tag("billing", "smoke")
        rec.trace_id("0AF7651916CD43DD8448EB211C80319C")
        rec.set_metadata(at=datetime.datetime(2026, 8, 1, tzinfo=datetime.UTC))
    (request,) = sink.requests
    data = body(request)
    assert_valid(UPDATE_REQUEST, data)
    assert rec.outbox_id == "outbox-1"

    ok, failed, note = data["tool_calls"]
    assert ok["name"] == "lookup" and ok["status"] == "ok"
    assert failed["status"] == "error"
    assert failed["error_type"] == "ConnectionError"
    assert failed["error_message"] == "gateway refused card [REDACTED]"
    assert failed["parameters"] == {"card_number": REDACTED, "amount": "10.00"}
    assert failed["duration_ms"] == 80.0
    assert note["parameters"]["text"].endswith("…[truncated 60 chars]")
    assert note["output"] == "2026-08-01"
    (hold,) = data["events"]
    assert hold["end_offset_ms"] - hold["start_offset_ms"] == 4000
    assert hold["metadata"]["pin"] == REDACTED
    assert hold["metadata"]["reason"].endswith("…[truncated 60 chars]")
    assert data["tags"] == ["smoke", "billing"]
    assert data["trace_ids"] == ["0af7651916cd43dd8448eb211c80319c"]
    assert data["metadata"]["api_key"] == REDACTED
    assert data["metadata"]["at"] == "2026-08-01T00:00:00+00:00"
    assert data["metadata"]["roost"]["redacted"] >= 4
    assert data["metadata"]["roost"]["truncated"]["strings"] == 2
    # The transcript is left alone unless configured (speech-to-text scoring).
    assert data["recorded_transcript"][1]["utterance"] == "My card is 4111 1111 1111 1111"
    assert data["recorded_transcript"][1]["speaker"] == "USER"
    assert {c["call_id"] for c in data["tool_calls"]} == {
        f"{request.tool_calls[0].call_id[:-2]}-{n}"  # type: ignore[index]
        for n in (1, 2, 3)
    }


def test_transcript_redaction_when_configured() -> None:
    with CallRecorder("1", auto_submit=False, redactor=Redactor(transcript=True)) as rec:
        rec.transcript("USER", "card 4111-1111-1111-1111 please", 0, 10)
    data = body(rec.build_request())
    assert data["recorded_transcript"][0]["utterance"] == "card [REDACTED] please"
    assert_valid(UPDATE_REQUEST, data)


def test_redaction_can_be_turned_off() -> None:
    with CallRecorder("1", auto_submit=False, redactor=Redactor.disabled()) as rec:
        rec.set_metadata(password="hunter2")
    assert body(rec.build_request())["metadata"] == {"password": "hunter2"}


def test_huge_payload_is_cut_to_the_budget_and_still_valid() -> None:
    @roost.tool
    def dump(n: int) -> str:
        return "z" * 50_000

    limits = CaptureLimits(max_string=100_000, max_value_bytes=100_000, max_payload_bytes=64_000)
    with CallRecorder("1", auto_submit=False, limits=limits) as rec:
        for i in range(10):
            dump(i)
    request = rec.build_request()
    assert request is not None
    data = body(request)
    assert len(encode_request(request)) <= 64_000
    assert_valid(UPDATE_REQUEST, data)
    assert [c["name"] for c in data["tool_calls"]] == ["dump"] * 10
    assert data["metadata"]["roost"]["cut"]["limit_bytes"] == 64_000


def test_speakers_and_rejected_inputs(caplog: pytest.LogCaptureFixture) -> None:
    rec = CallRecorder("1", auto_submit=False)
    with caplog.at_level(logging.WARNING, logger="roost"), rec:
        rec.transcript(Speaker.AGENT, "a", 0, 1)
        rec.transcript("assistant", "b", 1, 2)
        rec.transcript("Customer", "c", 2, 3)
        rec.transcript("robot", "d", 3, 4)
        rec.transcript("AGENT", "e", "soon", 5)  # type: ignore[arg-type]
        rec.trace_id("not-a-trace")
        rec.trace_id(0)
        rec.trace_id(0x0AF7651916CD43DD8448EB211C80319C)
    data = body(rec.build_request())
    assert_valid(UPDATE_REQUEST, data)
    speakers = {e["utterance"]: e["speaker"] for e in data["recorded_transcript"]}
    assert speakers == {"a": "AGENT", "b": "AGENT", "c": "USER", "e": "AGENT"}
    rejected = data["metadata"]["roost"]["rejected"]
    assert {r["kind"] for r in rejected} == {"transcript", "trace_id", "transcript start_ms"}
    assert any("unknown speaker 'robot'" in r["reason"] for r in rejected)
    assert data["trace_ids"] == ["0af7651916cd43dd8448eb211c80319c"]
    assert rec.stats.rejected == 1  # the start_ms; speaker/trace id are rejected at assembly
    assert "not a finite number of milliseconds" in caplog.text


def test_metadata_key_roost_of_the_agent_is_kept() -> None:
    with CallRecorder("1", auto_submit=False, metadata={"roost": "mine"}) as rec:
        pass
    assert body(rec.build_request())["metadata"] == {"roost_user": "mine"}


# -- lifecycle, submission and failure handling -----------------------------------


def test_sync_exit_submits_once_and_finish_is_idempotent() -> None:
    sink = ListSink()
    with CallRecorder(720488, sink=sink) as rec:
        lookup("A")
    assert [r.simulation_result_id for r in sink.requests] == ["720488"]
    assert rec.finish() is sink.requests[0]
    assert rec.build_request() is sink.requests[0]
    assert len(sink.requests) == 1
    assert rec.finished


def test_auto_submit_false_hands_the_payload_to_the_caller() -> None:
    sink = ListSink()
    with CallRecorder("1", sink=sink, auto_submit=False) as rec:
        lookup("A")
    assert sink.requests == []
    request = rec.finish()
    assert request is not None and request.tool_calls is not None
    assert sink.requests == []


async def test_async_exit_submits_off_the_event_loop_thread() -> None:
    sink = ListSink()
    loop_thread = threading.get_ident()
    async with CallRecorder("1", sink=sink) as rec:
        await alookup("A")
    assert len(sink.requests) == 1
    assert sink.threads[0] != loop_thread
    assert rec.outbox_id == "outbox-1"


def test_exception_in_the_call_still_submits_and_propagates() -> None:
    sink = ListSink()
    with pytest.raises(KeyError), CallRecorder("1", sink=sink):
        lookup("A")
        raise KeyError("agent crashed")
    data = body(sink.requests[0])
    assert data["tool_calls"][0]["name"] == "lookup"
    assert data["metadata"]["roost"]["call_ended_by_exception"] == "KeyError"


async def test_cancelled_call_task_still_submits() -> None:
    sink = ListSink()
    started = asyncio.Event()

    async def handle_call() -> None:
        async with CallRecorder("1", sink=sink):
            await alookup("A")
            started.set()
            await asyncio.sleep(3600)  # the caller hangs up: the task is cancelled

    task = asyncio.create_task(handle_call())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(sink.requests) == 1
    assert body(sink.requests[0])["metadata"]["roost"]["call_ended_by_exception"] == (
        "CancelledError"
    )


def test_a_failing_sink_never_raises_into_the_agent(caplog: pytest.LogCaptureFixture) -> None:
    class BrokenSink:
        def submit(self, request: UpdateSimulationRequest) -> str:
            raise OSError("disk full")

    rec = CallRecorder("1", sink=BrokenSink())
    with caplog.at_level(logging.ERROR, logger="roost"), rec:
        lookup("A")
    assert rec.stats.submit_failures == 1
    assert rec.outbox_id is None
    assert "could not hand the payload" in caplog.text
    assert rec.build_request() is not None  # kept in memory


def test_missing_id_runs_tools_submits_nothing_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = ListSink()
    for missing in (None, "", "   "):
        with caplog.at_level(logging.INFO, logger="roost"):
            with CallRecorder(missing, sink=sink) as rec:
                assert lookup("A") == {"order_id": "A", "status": "shipped"}
            assert rec.build_request() is None
            assert rec.finish() is None
    assert sink.requests == []
    assert caplog.text.count("no simulation result id") == 3  # once per recorder


@pytest.mark.parametrize(
    ("bad_id", "what"),
    [("9" * 129, "129 characters long"), ("72\x000488", "control character '\\x00'")],
)
def test_a_malformed_id_is_reported_and_still_submitted(
    bad_id: str, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    sink = ListSink()
    with caplog.at_level(logging.WARNING, logger="roost"), CallRecorder(bad_id, sink=sink) as rec:
        assert lookup("A") == {"order_id": "A", "status": "shipped"}
    assert rec.stats.rejected == 1
    assert what in caplog.text and "CallRecorder(simulation_result_id)" in caplog.text
    [request] = sink.requests
    assert request.simulation_result_id == bad_id
    assert request.tool_calls is not None and request.tool_calls[0].name == "lookup"
    assert request.metadata is not None
    [rejected] = request.metadata["roost"]["rejected"]
    assert rejected["kind"] == "simulation_result_id" and what in rejected["reason"]


def test_a_broken_entry_keeps_the_others(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink()
    rec = CallRecorder("1", sink=sink)
    with rec:
        lookup("A")
        lookup("B")
        rec._tools[0][0] = object()  # corrupt entries, as only a bug could
        rec._tools.append(("not", "an", "entry"))  # type: ignore[arg-type]
    data = body(sink.requests[0])
    assert_valid(UPDATE_REQUEST, data)
    names = [c["name"] for c in data["tool_calls"]]
    assert sorted(names) == ["lookup", "unknown", "unknown"]
    (good,) = [c for c in data["tool_calls"] if c["name"] == "lookup"]
    assert good["parameters"] == {"order_id": "B"}
    assert data["metadata"]["roost"]["capture_errors"] == 2


def test_assembly_failure_falls_back_to_a_safe_payload(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fault injection at the edge: the first assembly raises (a bug), the
    # second (safe) one must still deliver names and timings.
    real = roost.recorder.assemble
    attempts: list[bool] = []

    def failing_once(recording: Any) -> UpdateSimulationRequest:
        attempts.append(recording.safe)
        if len(attempts) == 1:
            raise RuntimeError("bug in assembly")
        return real(recording)

    monkeypatch.setattr(roost.recorder, "assemble", failing_once)
    sink = ListSink()
    with caplog.at_level(logging.ERROR, logger="roost"), CallRecorder("1", sink=sink) as rec:
        lookup("A")
        rec.set_metadata(model="gpt-x")
    assert attempts == [False, True]
    data = body(sink.requests[0])
    assert_valid(UPDATE_REQUEST, data)
    assert data["tool_calls"][0]["name"] == "lookup"
    assert data["tool_calls"][0]["output"] == "…[not captured: recorder error]"
    assert data["metadata"]["roost"]["internal_errors"] == 1
    assert "failed to assemble the payload" in caplog.text


def test_records_after_the_call_finished_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="roost"):
        with CallRecorder("1", auto_submit=False) as rec:
            lookup("in call")
        rec.event("late")
        rec.transcript("AGENT", "late", 0, 1)
        rec.tag("late")
        rec.trace_id("0af7651916cd43dd8448eb211c80319c")
        with rec.tool_call("late"):
            pass
    assert rec.stats.late_records == 5
    assert caplog.text.count("after the call finished") == 1
    request = rec.build_request()
    assert request is not None and request.events is None


def test_nested_enter_finishes_at_the_outermost_exit() -> None:
    sink = ListSink()
    rec = CallRecorder("1", sink=sink)
    with rec:
        with rec:
            lookup("A")
        assert sink.requests == [] and roost.current_recorder() is rec
    assert len(sink.requests) == 1
    assert roost.current_recorder() is None


async def test_exit_in_another_task_does_not_crash() -> None:
    sink = ListSink()
    rec = CallRecorder("1", sink=sink)
    await rec.__aenter__()
    await asyncio.create_task(rec.__aexit__(None, None, None))
    assert len(sink.requests) == 1


# -- which call a tool belongs to ----------------------------------------------------


async def test_two_concurrent_calls_keep_their_tools_apart() -> None:
    @roost.tool
    def sync_tool(call: str, step: int) -> str:
        return f"{call}:{step}"

    @roost.tool
    async def async_tool(call: str, step: int) -> str:
        await asyncio.sleep(0)
        return f"{call}:{step}"

    both_started = asyncio.Barrier(2)
    executor = ThreadPoolExecutor(max_workers=4)

    async def one_call(name: str) -> CallRecorder:
        async with CallRecorder(name, auto_submit=False) as rec:
            await both_started.wait()
            loop = asyncio.get_running_loop()
            for step in range(5):
                await async_tool(name, step)
                await asyncio.sleep(0)  # let the other call interleave
                await asyncio.to_thread(sync_tool, name, step)
                await asyncio.gather(
                    asyncio.create_task(async_tool(name, 100 + step)),
                    loop.run_in_executor(executor, rec.bind(sync_tool), name, 200 + step),
                    loop.run_in_executor(
                        executor, contextvars.copy_context().run, sync_tool, name, 300 + step
                    ),
                )
            # A plain thread does not inherit context: it needs bind().
            worker = threading.Thread(target=rec.bind(sync_tool), args=(name, 999))
            worker.start()
            worker.join()
            unbound = threading.Thread(target=sync_tool, args=(name, -1))
            unbound.start()
            unbound.join()
        return rec

    try:
        first, second = await asyncio.gather(one_call("call-a"), one_call("call-b"))
    finally:
        executor.shutdown()
    for rec in (first, second):
        request = rec.build_request()
        assert request is not None and request.tool_calls is not None
        owners = {c.parameters["call"] for c in request.tool_calls if c.parameters}
        assert owners == {rec.simulation_result_id}
        steps = sorted(c.parameters["step"] for c in request.tool_calls if c.parameters)
        expected = sorted(
            [s for step in range(5) for s in (step, step, 100 + step, 200 + step, 300 + step)]
            + [999]
        )
        assert steps == expected  # -1 (the unbound thread) was recorded nowhere
        assert len({c.call_id for c in request.tool_calls}) == len(request.tool_calls)


def test_threads_recording_into_one_call_lose_nothing() -> None:
    @roost.tool
    def work(n: int) -> int:
        return n

    with CallRecorder("1", auto_submit=False) as rec, ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(rec.bind(work), range(2000)))
    request = rec.build_request()
    assert request is not None and request.tool_calls is not None
    assert sorted(c.output for c in request.tool_calls) == list(range(2000))
    assert len({c.call_id for c in request.tool_calls}) == 2000


# -- the real delivery ------------------------------------------------------------------


def test_payload_lands_in_the_real_outbox(tmp_path: Path) -> None:
    delivery = Delivery(
        DeliveryConfig(outbox_path=tmp_path / "outbox.sqlite3"),
        start=False,
        register_atexit=False,
    )
    try:
        with CallRecorder("720488", sink=delivery) as rec:
            lookup("A-17")
            rec.set_metadata(password="hunter2")
        assert rec.outbox_id is not None
        stored = delivery.outbox.body(rec.outbox_id)
    finally:
        delivery.close(timeout=0)
    data = json.loads(stored)
    assert_valid(UPDATE_REQUEST, data)
    assert data == body(rec.build_request())
    assert data["metadata"]["password"] == REDACTED


async def test_async_call_end_to_end_over_http(tmp_path: Path) -> None:
    received: list[tuple[str, dict[str, str], bytes]] = []

    class Platform(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append((self.path, dict(self.headers), self.rfile.read(length)))
            answer = b'{"status":"success","message":null}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Platform)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    delivery = Delivery(
        DeliveryConfig(
            api_key="rk_test_key",
            base_url=f"http://127.0.0.1:{server.server_port}",
            outbox_path=tmp_path / "outbox.sqlite3",
        ),
        register_atexit=False,
    )
    try:
        async with CallRecorder("720488", sink=delivery) as rec:
            await alookup("A-17")
            rec.transcript("AGENT", "Your order shipped.", 100, 900)
        assert await asyncio.to_thread(delivery.flush, 10.0) == 0
    finally:
        delivery.close(timeout=1)
        server.shutdown()
        server.server_close()
    ((path, headers, raw),) = received
    assert path == "/v1/update-simulation-result"
    assert headers["X-API-Key"] == "rk_test_key"
    data = json.loads(raw)
    assert_valid(UPDATE_REQUEST, data)
    assert data["simulation_result_id"] == "720488"
    assert data["tool_calls"][0]["name"] == "alookup"


def test_default_sink_is_the_process_delivery(tmp_path: Path) -> None:
    # A fresh interpreter, so the process-wide delivery is created from this env.
    outbox = tmp_path / "outbox.sqlite3"
    code = (
        "import roost\n"
        "with roost.CallRecorder('720488') as rec:\n"
        "    rec.tag('default-sink')\n"
        "print(rec.outbox_id)\n"
    )
    env = {"ROOST_OUTBOX_PATH": str(outbox), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr
    outbox_id = out.stdout.strip()
    assert len(outbox_id) == 32
    delivery = Delivery(DeliveryConfig(outbox_path=outbox), start=False, register_atexit=False)
    try:
        data = json.loads(delivery.outbox.body(outbox_id))
    finally:
        delivery.close(timeout=0)
    assert data == {"simulation_result_id": "720488", "tags": ["default-sink"]}


async def test_tools_still_running_at_hang_up_are_reported_unfinished() -> None:
    release = asyncio.Event()

    @roost.tool
    async def transfer(queue: str) -> str:
        await release.wait()
        await lookup_later()
        return "done"

    @roost.tool
    async def lookup_later() -> None:
        return None

    async with CallRecorder("1", auto_submit=False) as rec:
        task = asyncio.create_task(transfer("billing"))
        await asyncio.sleep(0)
    release.set()
    assert await task == "done"  # the tool itself is never disturbed
    data = body(rec.build_request())
    assert_valid(UPDATE_REQUEST, data)
    (call,) = data["tool_calls"]
    assert call["name"] == "transfer" and "status" not in call and "end_offset_ms" not in call
    assert data["metadata"]["roost"]["unfinished_tool_calls"] == [call["call_id"]]
    assert rec.stats.late_records == 1  # lookup_later started after the end


def test_agent_mistakes_with_recorder_attributes_never_raise() -> None:
    sink = ListSink()
    with CallRecorder("1", sink=sink) as rec:
        rec.metadata = ["not", "a", "dict"]  # type: ignore[assignment]
        rec.tag(None, 42)  # type: ignore[arg-type]
        rec.event(None)  # type: ignore[arg-type]
        rec.tool_call(123)  # type: ignore[arg-type]
        rec.transcript("AGENT", None, 0, 1)  # type: ignore[arg-type]
    data = body(sink.requests[0])
    assert_valid(UPDATE_REQUEST, data)
    assert data["metadata"]["metadata"] == ["not", "a", "dict"]
    assert data["tags"] == ["None", "42"]
    assert data["events"][0]["title"] == "None"
    assert data["tool_calls"][0]["name"] == "123"
    assert data["recorded_transcript"][0]["utterance"] == "None"
