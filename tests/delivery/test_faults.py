"""Acceptance: the fault matrix against a real HTTP server on loopback.

Every test counts at the server both the distinct payloads stored (the server
deduplicates on Idempotency-Key, as Roost's platform does) and the raw requests,
and asserts nothing was lost and nothing stored twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import roost
from roost.delivery import Delivery, DeliveryConfig, EntryState, Outbox
from roost.redaction import REDACTED
from roost.schema import ToolCall, UpdateSimulationRequest
from tests.delivery.server import PlatformServer, Reset, Respond, Stall
from tests.openapi import UPDATE_REQUEST, assert_valid

FAST = {
    "api_key": "rk_fault_matrix",
    "backoff_base": 0.05,
    "backoff_cap": 0.2,
    "timeout": 1.0,
    "lease": 10.0,
    "poll_interval": 0.2,
}


def config_for(server: PlatformServer, path: Path, **changes: object) -> DeliveryConfig:
    settings: dict[str, object] = {**FAST, "base_url": server.url, "outbox_path": path}
    settings.update(changes)
    return DeliveryConfig(**settings)  # type: ignore[arg-type]


def payload(result: str) -> UpdateSimulationRequest:
    return UpdateSimulationRequest(
        simulation_result_id=result,
        tool_calls=[ToolCall(name="lookup_order", start_offset_ms=1520, parameters={"id": 7})],
    )


def report(name: str, server: PlatformServer) -> tuple[int, int]:
    distinct, raw = len(server.payloads), len(server.requests)
    print(f"\n[fault matrix] {name}: distinct payloads stored={distinct}, raw requests={raw}")
    return distinct, raw


def wait_for(predicate: object, what: str, limit: float = 60.0) -> None:
    """Poll until ``predicate()`` holds; the limit only guards against hangs."""
    give_up = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def server() -> Iterator[PlatformServer]:
    with PlatformServer() as srv:
        yield srv


@pytest.fixture
def down_server() -> Iterator[PlatformServer]:
    with PlatformServer(up=False) as srv:
        yield srv


def test_server_down_for_the_whole_call_then_up(
    down_server: PlatformServer, tmp_path: Path
) -> None:
    with Delivery(config_for(down_server, tmp_path / "o.sqlite3")) as delivery:
        entry_id = delivery.submit(payload("down-then-up"))
        wait_for(lambda: delivery.outbox.find(entry_id).attempts >= 3, "three refused attempts")
        entry = delivery.outbox.find(entry_id)
        assert entry.state is EntryState.PENDING
        assert (entry.last_error or "").startswith("connect error")
        down_server.come_up()  # same port
        assert delivery.flush(timeout=60) == 0
        assert delivery.outbox.find(entry_id).state is EntryState.DELIVERED
    assert report("server down, then up", down_server) == (1, 1)
    [body] = down_server.payloads.values()
    assert json.loads(body)["simulation_result_id"] == "down-then-up"


def test_500_then_503_then_200_is_delivered_once(server: PlatformServer, tmp_path: Path) -> None:
    server.script([Respond(500), Respond(503)])
    with Delivery(config_for(server, tmp_path / "o.sqlite3")) as delivery:
        entry_id = delivery.submit(payload("flaky"))
        assert delivery.flush(timeout=60) == 0
        entry = delivery.outbox.find(entry_id)
    assert entry.state is EntryState.DELIVERED and entry.attempts == 3
    assert report("500, 503, 200", server) == (1, 3)
    assert [r.action for r in server.requests] == ["Respond"] * 3
    assert len({r.idempotency_key for r in server.requests}) == 1


def test_429_retry_after_is_waited_out(server: PlatformServer, tmp_path: Path) -> None:
    server.script([Respond(429, headers=(("retry-after", "1"),))])
    with Delivery(config_for(server, tmp_path / "o.sqlite3")) as delivery:
        delivery.submit(payload("throttled"))
        assert delivery.flush(timeout=60) == 0
    first, second = server.requests
    assert first.responding_at is not None
    # Lower bound from the server's own clock: the retry came no sooner than asked
    # after the client could first have seen the 429.
    assert second.received_at - first.responding_at >= 1.0
    assert report("429 Retry-After: 1", server) == (1, 2)


@pytest.mark.parametrize("processed", [False, True], ids=["lost-request", "lost-response"])
def test_stall_past_the_timeout_is_retried(
    server: PlatformServer, tmp_path: Path, processed: bool
) -> None:
    server.script([Stall(seconds=30, store_first=processed)])
    config = config_for(server, tmp_path / "o.sqlite3", timeout=0.3)
    with Delivery(config) as delivery:
        entry_id = delivery.submit(payload("stalled"))
        assert delivery.flush(timeout=60) == 0
        entry = delivery.outbox.find(entry_id)
    assert entry.state is EntryState.DELIVERED and entry.attempts == 2
    assert report(f"stall ({'stored first' if processed else 'not stored'})", server) == (1, 2)
    assert [r.action for r in server.requests] == ["Stall", "Respond"]


@pytest.mark.parametrize("processed", [False, True], ids=["lost-request", "lost-response"])
def test_connection_reset_is_retried(
    server: PlatformServer, tmp_path: Path, processed: bool
) -> None:
    server.script([Reset(store_first=processed)])
    with Delivery(config_for(server, tmp_path / "o.sqlite3")) as delivery:
        entry_id = delivery.submit(payload("reset"))
        assert delivery.flush(timeout=60) == 0
        entry = delivery.outbox.find(entry_id)
    assert entry.state is EntryState.DELIVERED and entry.attempts == 2
    assert report(f"reset ({'stored first' if processed else 'not stored'})", server) == (1, 2)


def test_404_unknown_result_is_failed_and_kept(server: PlatformServer, tmp_path: Path) -> None:
    server.script([Respond(404, body=b'{"detail": "Simulation result not found"}')])
    with Delivery(config_for(server, tmp_path / "o.sqlite3")) as delivery:
        entry_id = delivery.submit(payload("unknown"))
        assert delivery.flush(timeout=60) == 0
        entry = delivery.outbox.find(entry_id)
        assert entry.state is EntryState.FAILED
        assert entry.last_error == "HTTP 404: Simulation result not found"
        assert json.loads(delivery.outbox.body(entry_id))["simulation_result_id"] == "unknown"
        # After the cause is fixed, a requeue delivers it with the same key.
        delivery.outbox.requeue_failed(now=time.time(), ids=[entry_id])
        assert delivery.flush(timeout=60) == 0
        assert delivery.outbox.find(entry_id).state is EntryState.DELIVERED
    assert report("404 then requeue", server) == (1, 2)


_AGENT = textwrap.dedent(
    """
    import json, sys, time
    from roost.delivery import Delivery, DeliveryConfig
    from roost.schema import ToolCall, UpdateSimulationRequest

    settings = json.loads(sys.argv[1])
    mode = sys.argv[2]
    delivery = Delivery(DeliveryConfig(**settings))
    if mode == "submit-and-hang":
        import roost

        @roost.tool
        def lookup(order_id):
            return {"status": "shipped"}

        ids = []
        for i in range(3):
            # Three calls end (each recorder exit makes its payload durable),
            # then the agent hangs until it is killed.
            with roost.CallRecorder(f"killed-{i}", sink=delivery) as recorder:
                lookup(f"A-{i}")
            ids.append(recorder.outbox_id)
        print(" ".join(ids), flush=True)
        time.sleep(3600)
    elif mode == "restart":
        print(delivery.flush(timeout=120), flush=True)
        delivery.close()
    elif mode == "submit-many":
        for i in range(int(sys.argv[3])):
            delivery.submit(UpdateSimulationRequest(simulation_result_id=f"{sys.argv[4]}-{i}"))
        print(delivery.flush(timeout=120), flush=True)
        delivery.close()
    """
)


def run_agent(settings: dict[str, object], mode: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _AGENT, json.dumps(settings), mode, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def settings_for(server: PlatformServer, path: Path) -> dict[str, object]:
    return {**FAST, "base_url": server.url, "outbox_path": str(path)}


def test_sigkill_after_the_call_then_restart(down_server: PlatformServer, tmp_path: Path) -> None:
    path = tmp_path / "agent-outbox.sqlite3"
    settings = settings_for(down_server, path)
    agent = run_agent(settings, "submit-and-hang")
    try:
        assert agent.stdout is not None
        ids = agent.stdout.readline().split()
        assert len(ids) == 3, agent.stderr.read() if agent.stderr else ""
        with Outbox(path) as box:
            wait_for(lambda: all(box.find(i).attempts >= 1 for i in ids), "first attempts")
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=30)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
        for stream in (agent.stdout, agent.stderr):
            if stream is not None:
                stream.close()
    assert agent.returncode == -signal.SIGKILL
    assert down_server.requests == []  # it never got through

    down_server.come_up()
    restarted = run_agent(settings, "restart")
    out, err = restarted.communicate(timeout=180)
    assert restarted.returncode == 0, err
    assert out.strip() == "0"
    with Outbox(path) as box:
        assert {box.find(i).state for i in ids} == {EntryState.DELIVERED}
    assert report("SIGKILL, restart", down_server) == (3, 3)
    sent = sorted(
        (json.loads(b) for b in down_server.payloads.values()),
        key=lambda p: str(p["simulation_result_id"]),
    )
    assert [p["simulation_result_id"] for p in sent] == ["killed-0", "killed-1", "killed-2"]
    assert [p["tool_calls"][0]["parameters"] for p in sent] == [
        {"order_id": f"A-{i}"} for i in range(3)
    ]


def test_processes_sharing_an_outbox_never_double_send(
    server: PlatformServer, tmp_path: Path
) -> None:
    server.response_delay = 0.02  # keep requests in flight while the others poll
    settings = settings_for(server, tmp_path / "shared.sqlite3")
    agents = [run_agent(settings, "submit-many", "15", f"worker{n}") for n in range(3)]
    # Every agent is waited for before any is judged: one failing must not
    # leave the others' pipes open for a later test to trip over.
    finished = [(agent, *agent.communicate(timeout=180)) for agent in agents]
    for agent, out, err in finished:
        assert agent.returncode == 0, err
        assert out.strip() == "0"
    distinct, raw = report("3 processes x 15 payloads, one outbox", server)
    assert distinct == raw == 45


def test_normal_exit_without_close_flushes_via_atexit(
    server: PlatformServer, tmp_path: Path
) -> None:
    path = tmp_path / "o.sqlite3"
    env = {
        **os.environ,
        "ROOST_API_KEY": "rk_atexit",
        "ROOST_BASE_URL": server.url,
        "ROOST_OUTBOX_PATH": str(path),
    }
    code = (
        "from roost.delivery import default_delivery\n"
        "from roost.schema import UpdateSimulationRequest\n"
        "default_delivery().submit(UpdateSimulationRequest(simulation_result_id='bye'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert report("exit without close (atexit)", server) == (1, 1)
    assert server.requests[0].headers["x-api-key"] == "rk_atexit"
    with Outbox(path) as box:
        assert box.counts()["delivered"] == 1


class _Declined(Exception):
    pass


@roost.tool
def lookup_order(order_id: str, card_number: str | None = None) -> dict[str, str]:
    """Find an order by its number."""
    return {"order_id": order_id, "status": "shipped"}


@roost.tool
async def refund(order_id: str, amount: float) -> str:
    """Refund part of an order."""
    raise _Declined(f"refund of {amount} declined for {order_id}")


async def place_call(sink: Delivery, result_id: str | None, mode: str) -> roost.CallRecorder:
    """One call as an agent makes it: tools, an event, a transcript line."""

    async def during(recorder: roost.CallRecorder) -> None:
        await asyncio.to_thread(lookup_order, "A-17", card_number="4111 1111 1111 1111")
        with contextlib.suppress(_Declined):
            await refund("A-17", 12.5)
        recorder.event("caller verified")
        recorder.transcript("AGENT", "Your order has shipped.", 1200, 2400)

    recorder = roost.CallRecorder(result_id, sink=sink)
    if mode == "async":
        async with recorder:
            await during(recorder)
    else:
        # The sync context manager, entered in a worker thread like a
        # thread-per-call agent would; the tools run inside it.
        def sync_call() -> None:
            with recorder:
                asyncio.run(during(recorder))

        await asyncio.to_thread(sync_call)
    return recorder


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_recorder_to_platform_end_to_end(
    server: PlatformServer, tmp_path: Path, mode: str
) -> None:
    delivery = Delivery(config_for(server, tmp_path / "o.sqlite3"))
    try:
        recorder = await place_call(delivery, f"e2e-{mode}", mode)
        assert recorder.outbox_id is not None  # durable before the exit returned
        assert await asyncio.to_thread(delivery.flush, 60) == 0
    finally:
        await asyncio.to_thread(delivery.close)
    assert report(f"recorder end to end ({mode})", server) == (1, 1)
    [request] = server.requests
    assert request.target == "/v1/update-simulation-result"
    assert request.headers["x-api-key"] == FAST["api_key"]
    assert request.idempotency_key is not None
    sent = json.loads(request.body)
    assert_valid(UPDATE_REQUEST, sent)
    assert sent["simulation_result_id"] == f"e2e-{mode}"
    found, failed = sent["tool_calls"]
    assert found["name"] == "lookup_order"
    assert found["description"] == "Find an order by its number."
    assert found["parameters"] == {"order_id": "A-17", "card_number": REDACTED}
    assert found["output"] == {"order_id": "A-17", "status": "shipped"}
    assert failed["name"] == "refund" and failed["parameters"] == {
        "order_id": "A-17",
        "amount": 12.5,
    }
    # Roost's extensions: a call id, the end, the duration, status and error.
    for call in (found, failed):
        assert call["call_id"] and call["end_offset_ms"] >= call["start_offset_ms"] >= 0
        assert call["duration_ms"] >= 0
    assert found["status"] == "ok" and "error_type" not in found
    assert failed["status"] == "error"
    assert failed["error_type"].endswith("_Declined")
    assert failed["error_message"] == "refund of 12.5 declined for A-17"
    assert [e["title"] for e in sent["events"]] == ["caller verified"]
    assert sent["recorded_transcript"][0]["utterance"] == "Your order has shipped."


async def test_a_call_without_an_id_sends_nothing(server: PlatformServer, tmp_path: Path) -> None:
    delivery = Delivery(config_for(server, tmp_path / "o.sqlite3"))
    try:
        recorder = await place_call(delivery, None, "async")
        assert recorder.outbox_id is None
        assert await asyncio.to_thread(delivery.flush, 60) == 0
        assert delivery.outbox.counts() == dict.fromkeys(delivery.outbox.counts(), 0)
    finally:
        await asyncio.to_thread(delivery.close)
    assert report("call without an id", server) == (0, 0)
