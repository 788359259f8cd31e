"""Cost of the tool-call evaluation engine, against decoding the same result.

The lifecycle evaluates a result once its enrichment arrived. This measures
``evaluate`` on a realistic result (a digital human with 10 expected calls
using Roost matchers, strict order and tool rules; 20 actual tool calls and 10
events) and, as the baseline in the same run, ``json.loads`` of that result's
enrichment payload (what the platform must do with it anyway). It also times
two adversarial cases within the spec limits, to show the worst a tenant can
ask for (the engine is pure CPU: the platform should run it off the event loop).

Run from the repository root:  ``.venv/bin/python benchmarks/evaluation.py``
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from roost.platform.evaluation import ActualToolCall, evaluate, parse_expectations

ROUNDS = 5
REPEAT = 200


def realistic() -> tuple[Any, list[ActualToolCall], list[dict[str, Any]], bytes]:
    expected = []
    calls = []
    for i in range(10):
        expected.append(
            {
                "name": f"tool_{i % 5}",
                "parameters": {"order_id": f"A-{i:04d}", "date": "2026-12-01", "qty": 2},
                "match": {
                    "date": "date",
                    "qty": {"approx": 2, "abs": 0.5},
                    "$.address.zip": {"regex": "^9\\d{4}$"},
                },
                "output_match": {"$.status": {"one_of": ["shipped", "pending"]}},
                "max_duration_ms": 2000,
            }
        )
    for i in range(20):
        calls.append(
            {
                "name": f"tool_{i % 5}",
                "start_offset_ms": 1000 * i,
                "end_offset_ms": 1000 * i + 350,
                "duration_ms": 350.25,
                "status": "ok",
                "call_id": f"c{i}",
                "parameters": {
                    "order_id": f"A-{i % 10:04d}",
                    "date": "2026-12-01T10:00:00Z",
                    "qty": "2",
                    "address": {"zip": "94107", "city": "SF"},
                },
                "output": {"status": "shipped", "eta": "2026-12-01", "items": [1, 2, 3]},
            }
        )
    events = [{"title": f"event_{i % 3}", "start_offset_ms": 500 * i} for i in range(10)]
    rules = {
        "order": "strict",
        "no_tool_errors": True,
        "before": [["tool_0", "tool_4"]],
        "tools": [
            {"name": "transfer", "forbidden": True},
            {"name": "tool_.*", "name_match": "regex", "max": 30},
        ],
        "events": [{"title": "event_1", "min": 1}],
    }
    spec = parse_expectations(expected, rules)
    payload = json.dumps({"simulation_result_id": "1", "tool_calls": calls, "events": events})
    actual = [ActualToolCall.from_dict(call) for call in calls]
    return spec, actual, events, payload.encode()


def per_call_us(action: Callable[[], object], repeat: int) -> float:
    """Median over rounds of the mean time per call, in microseconds."""
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(repeat):
            action()
        rounds.append((time.perf_counter() - start) / repeat * 1e6)
    return statistics.median(rounds)


def adversarial(expected_count: int, actual_count: int) -> float:
    expected = [{"name": "a", "parameters": {"id": i % 7, "q": "x"}} for i in range(expected_count)]
    actual = [
        ActualToolCall("a", 10 * i, parameters={"id": i % 5, "q": "x"}) for i in range(actual_count)
    ]
    spec = parse_expectations(expected, {"order": "strict"})
    start = time.perf_counter()
    evaluate(spec, actual)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    spec, actual, events, payload = realistic()
    report = evaluate(spec, actual, events)
    assert 0 <= report.score <= 1
    baseline = per_call_us(lambda: json.loads(payload), REPEAT)
    engine = per_call_us(lambda: evaluate(spec, actual, events), REPEAT)
    print(f"load average: {os.getloadavg()}")
    print(f"payload: {len(payload)} bytes, 20 tool calls, 10 events; 10 expected calls")
    print(f"json.loads of the payload (baseline): {baseline:9.1f} us")
    print(f"evaluate (realistic):                 {engine:9.1f} us  ratio {engine / baseline:.1f}x")
    for n, m in ((50, 200), (256, 1000)):
        print(
            f"evaluate, {n} identical expected x {m} calls of one tool: {adversarial(n, m):.0f} ms"
        )


if __name__ == "__main__":
    main()
