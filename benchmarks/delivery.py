"""Cost of durable delivery: ``Delivery.submit`` and the sender's drain rate.

Two measurements, each as a ratio against a baseline taken in the same run:

1. **submit latency** (the call-end cost an agent pays): ``Delivery.submit`` of a
   realistic payload (20 tool calls, 10 events, 40 transcript entries), against
   the cheapest durable alternative, writing the same bytes to a new file with
   ``fsync`` and an atomic rename (a LangSmith-style spool file). Both include
   JSON encoding of the request.
2. **drain throughput**: the background sender delivering N stored payloads to a
   loopback HTTP server, against a plain ``httpx.Client`` loop posting the same
   N bodies to the same server (no outbox, no retries, nothing durable).

Run from the repository root:  ``.venv/bin/python benchmarks/delivery.py``
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

# The loopback platform stand-in lives with the delivery tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.delivery.server import PlatformServer  # noqa: E402

from roost.delivery import Delivery, DeliveryConfig  # noqa: E402
from roost.schema import (  # noqa: E402
    Event,
    Speaker,
    ToolCall,
    TranscriptEntry,
    UpdateSimulationRequest,
    encode_request,
)

SUBMITS = 300
DRAIN = 300
ROUNDS = 3


def realistic_payload(result_id: str) -> UpdateSimulationRequest:
    return UpdateSimulationRequest(
        simulation_result_id=result_id,
        tool_calls=[
            ToolCall(
                name=f"tool_{i}",
                start_offset_ms=1000 * i,
                end_offset_ms=1000 * i + 350,
                duration_ms=350.25,
                status="ok",
                description="Look up an order by its number and return its status.",
                parameters={"order_id": f"A-{i:04d}", "verbose": False, "fields": ["status"]},
                output={"status": "shipped", "eta": "2026-12-01", "items": [1, 2, 3]},
                call_id=f"call-{i}",
            )
            for i in range(20)
        ],
        events=[
            Event(title=f"event {i}", start_offset_ms=500 * i, tags=["flow"], metadata={"n": i})
            for i in range(10)
        ],
        recorded_transcript=[
            TranscriptEntry(
                start_offset_ms=800 * i,
                end_offset_ms=800 * i + 700,
                speaker=Speaker.AGENT if i % 2 else Speaker.USER,
                utterance="I can help you with that order, one moment while I check.",
            )
            for i in range(40)
        ],
        metadata={"agent": "bench", "build": "1.2.3"},
    )


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def submit_round(workdir: Path, n: int) -> tuple[list[float], list[float], int]:
    """One round: the spool-file baseline, then Delivery.submit, same payloads."""
    config = DeliveryConfig(api_key="k", outbox_path=workdir / "submit.sqlite3")
    requests = [realistic_payload(f"r{i}") for i in range(n)]
    spool = Path(tempfile.mkdtemp(dir=workdir))
    baseline: list[float] = []
    for i, request in enumerate(requests):
        started = time.perf_counter()
        body = encode_request(request)
        tmp = spool / f".{i}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, spool / f"{i}.json")
        baseline.append(time.perf_counter() - started)
    # start=False: measure the submit path alone, no sender competing for the file.
    with Delivery(config, start=False, register_atexit=False) as delivery:
        ours: list[float] = []
        for request in requests:
            started = time.perf_counter()
            delivery.submit(request)
            ours.append(time.perf_counter() - started)
    return baseline, ours, len(encode_request(requests[0]))


def bench_submit(workdir: Path) -> None:
    ratios, base_p50, our_p50, base_all, our_all = [], [], [], [], []
    size = 0
    for _ in range(ROUNDS):
        baseline, ours, size = submit_round(workdir, SUBMITS)
        b50, o50 = statistics.median(baseline), statistics.median(ours)
        ratios.append(o50 / b50)
        base_p50.append(b50)
        our_p50.append(o50)
        base_all += baseline
        our_all += ours
    print(f"submit latency, payload {size} bytes, {ROUNDS} rounds x {SUBMITS} calls each")
    print(
        f"  baseline fsync'd spool file: p50 {statistics.median(base_p50) * 1e3:.3f} ms  "
        f"p99 {percentile(base_all, 99) * 1e3:.3f} ms"
    )
    print(
        f"  Delivery.submit: p50 {statistics.median(our_p50) * 1e3:.3f} ms  "
        f"p99 {percentile(our_all, 99) * 1e3:.3f} ms"
    )
    print(
        f"  ratio submit / spool file (p50), median of rounds: {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def drain_round(workdir: Path, n: int, tag: str) -> tuple[float, float]:
    bodies = [encode_request(realistic_payload(f"{tag}-{i}")) for i in range(n)]
    with PlatformServer() as server:
        started = time.perf_counter()
        with httpx.Client() as client:
            for i, body in enumerate(bodies):
                response = client.post(
                    server.url + "/v1/update-simulation-result",
                    content=body,
                    headers={
                        "X-API-Key": "k",
                        "Idempotency-Key": f"{tag}-base-{i}",
                        "Content-Type": "application/json",
                    },
                )
                response.raise_for_status()
        baseline = time.perf_counter() - started

        config = DeliveryConfig(
            api_key="k", base_url=server.url, outbox_path=workdir / f"drain-{tag}.sqlite3"
        )
        with Delivery(config, start=False, register_atexit=False) as delivery:
            for i in range(n):
                delivery.submit(realistic_payload(f"{tag}-{i}"))
            started = time.perf_counter()
            left = delivery.flush(timeout=600)
            drained = time.perf_counter() - started
        assert left == 0, f"{left} not delivered"
        assert len(server.payloads) == 2 * n
    return baseline, drained


def bench_drain(workdir: Path) -> None:
    rounds = [drain_round(workdir, DRAIN, f"round{r}") for r in range(ROUNDS)]
    ratios = [drained / baseline for baseline, drained in rounds]
    baseline = statistics.median(b for b, _ in rounds)
    drained = statistics.median(d for _, d in rounds)
    print(f"drain of {DRAIN} stored payloads to a loopback server, {ROUNDS} rounds")
    print(f"  baseline httpx.Client loop: {DRAIN / baseline:.0f} payloads/s")
    print(f"  Delivery sender (claim + POST + record): {DRAIN / drained:.0f} payloads/s")
    print(
        f"  ratio sender time / baseline time, median of rounds: {statistics.median(ratios):.2f} "
        f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
    )


def main() -> None:
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        bench_submit(workdir)
        bench_drain(workdir)


if __name__ == "__main__":
    main()
