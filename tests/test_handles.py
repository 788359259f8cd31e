from __future__ import annotations

import doctest
from typing import Any

import msgspec
import pytest

import roost.handles
from roost.recorder import CallRecorder
from roost.schema import encode_request
from tests.openapi import UPDATE_REQUEST, assert_valid

MS = 1_000_000


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms * MS


def payload(rec: CallRecorder) -> dict[str, Any]:
    request = rec.build_request()
    assert request is not None
    data: dict[str, Any] = msgspec.json.decode(encode_request(request))
    assert_valid(UPDATE_REQUEST, data)
    return data


def test_doctests() -> None:
    assert doctest.testmod(roost.handles).failed == 0


def test_immediate_tool_calls() -> None:
    with CallRecorder("1", auto_submit=False) as rec:
        rec.tool_call("refund", amount=10, output={"ok": True})
        rec.tool_call("charge", amount=5, error=TimeoutError("gateway"))
        rec.tool_call("verify", error="pin mismatch")
        rec.tool_call("log", output=None)
    refund, charge, verify, log = payload(rec)["tool_calls"]
    assert (refund["parameters"], refund["output"], refund["status"]) == (
        {"amount": 10},
        {"ok": True},
        "ok",
    )
    assert (charge["status"], charge["error_type"], charge["error_message"]) == (
        "error",
        "TimeoutError",
        "gateway",
    )
    assert verify["status"] == "error" and "error_type" not in verify
    assert verify["error_message"] == "pin mismatch"
    assert log["status"] == "ok" and "output" not in log


def test_explicit_offsets_for_calls_that_happened_elsewhere() -> None:
    clock = Clock()
    with CallRecorder("1", auto_submit=False, clock=clock) as rec:
        clock.advance(10_000)
        rec.tool_call("from_framework", start_ms=1200, end_ms=1450.7, output="x")
        rec.tool_call("early", start_ms=100)
    early, framework = payload(rec)["tool_calls"]  # sorted by start
    assert (framework["start_offset_ms"], framework["end_offset_ms"]) == (1200, 1450)
    assert framework["duration_ms"] == 250.0
    assert early["start_offset_ms"] == 100 and "status" not in early


def test_handle_context_manager_and_late_finish() -> None:
    clock = Clock()
    with CallRecorder("1", auto_submit=False, clock=clock) as rec:
        with rec.tool_call("transfer", queue="billing") as call:
            clock.advance(30)
            call.output = "queued"
        with pytest.raises(ConnectionError), rec.tool_call("dial") as failing:
            raise ConnectionError("busy")
        later = rec.tool_call("lookup", order_id="A")
        assert not later.finished
        clock.advance(5)
        later.finish({"status": "shipped"})
        later.finish("ignored: first finish wins")
        later.fail(RuntimeError("ignored too"))
        assert later.finished and failing.finished
        assert call.call_id is not None and call.call_id.endswith("-1")
    transfer, dial, lookup = payload(rec)["tool_calls"]
    assert (transfer["output"], transfer["duration_ms"]) == ("queued", 30.0)
    assert (dial["status"], dial["error_type"]) == ("error", "ConnectionError")
    assert lookup["output"] == {"status": "shipped"} and lookup["status"] == "ok"


def test_parameters_that_clash_with_options() -> None:
    with CallRecorder("1", auto_submit=False) as rec:
        rec.tool_call("search", parameters={"output": "csv", "description": "d"}, limit=3)
    (call,) = payload(rec)["tool_calls"]
    assert call["parameters"] == {"output": "csv", "description": "d", "limit": 3}
    assert "output" not in call


def test_mutable_parameters_are_frozen() -> None:
    filters = ["red"]
    with CallRecorder("1", auto_submit=False) as rec:
        rec.tool_call("search", filters=filters, output=[])
        filters.append("cheap")
    assert payload(rec)["tool_calls"][0]["parameters"] == {"filters": ["red"]}


def test_events() -> None:
    clock = Clock()
    with CallRecorder("1", auto_submit=False, clock=clock) as rec:
        clock.advance(100)
        rec.event("verified", description="KBA passed", tags="kyc")
        with rec.event("hold", metadata={"reason": "lookup"}) as hold:
            clock.advance(2000)
        hold.end()  # second end ignored
        assert hold.ended
        rec.event("explicit", start_ms=50, end_ms=75)
        open_event = rec.event("left open")
        assert not open_event.ended
    explicit, verified, held, left_open = payload(rec)["events"]
    assert explicit == {"title": "explicit", "start_offset_ms": 50, "end_offset_ms": 75}
    assert verified == {
        "title": "verified",
        "start_offset_ms": 100,
        "description": "KBA passed",
        "tags": ["kyc"],
    }
    assert (held["start_offset_ms"], held["end_offset_ms"]) == (100, 2100)
    assert held["metadata"] == {"reason": "lookup"}
    assert "end_offset_ms" not in left_open


def test_event_metadata_and_tags_given_oddly_are_kept() -> None:
    with CallRecorder("1", auto_submit=False) as rec:
        rec.event("odd", metadata=[1, 2])  # type: ignore[arg-type]
        rec.event("bare tag", tags=7)  # type: ignore[arg-type]
    odd, bare = payload(rec)["events"]
    assert odd["metadata"] == {"value": [1, 2]}
    assert bare["tags"] == ["7"]


def test_handles_of_unrecorded_calls_are_harmless() -> None:
    rec = CallRecorder("1", auto_submit=False)
    rec.finish()
    call = rec.tool_call("late", x=1)
    assert call.call_id is None and call.finished
    call.finish("x")
    event = rec.event("late")
    event.end()
    assert event.ended
    assert repr(call) == "ToolCallHandle('late', finished=True)"
    assert repr(event) == "EventHandle('late', ended=True)"
