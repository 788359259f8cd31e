from __future__ import annotations

import doctest
from typing import Any

import pytest

import roost.payload
from roost.payload import NO_OUTPUT, Recording, ToolSpec, assemble, normalise_trace_id
from roost.redaction import Redactor

MS = 1_000_000


def test_doctests() -> None:
    assert doctest.testmod(roost.payload).failed == 0


def entry(spec: ToolSpec, start: int, end: int | None, **more: Any) -> list[Any]:
    kwargs = more.pop("kwargs", {})
    args = more.pop("args", ())
    return [spec, args, kwargs, start, end, more.pop("output", NO_OUTPUT), None, None, None]


def test_offsets_order_and_call_ids() -> None:
    spec = ToolSpec("t")
    rec = Recording(simulation_result_id="1", zero_ns=1_000 * MS, call_id_prefix="abcd")
    rec.tools.extend(
        [
            entry(spec, 1_500 * MS, 1_600 * MS, output=1),  # appended first, started later
            entry(spec, 1_200 * MS + 999_999, 1_300 * MS, output=2),
        ]
    )
    request = assemble(rec)
    assert request.tool_calls is not None
    first, second = request.tool_calls
    assert (first.call_id, first.start_offset_ms, first.output) == ("abcd-2", 200, 2)
    assert (second.call_id, second.start_offset_ms, second.duration_ms) == ("abcd-1", 500, 100.0)
    assert first.duration_ms == 99.0


def test_signature_binding() -> None:
    def method(self: object, a: int, /, b: int = 2, *rest: int, c: int = 3, **kw: int) -> None:
        pass

    spec = ToolSpec("m", fn=method)
    assert spec.parameters((object(), 1), {}) == {"a": 1, "b": 2, "rest": [], "c": 3}
    assert spec.parameters((object(), 1, 5, 6, 7), {"c": 4, "z": 9}) == {
        "a": 1,
        "b": 5,
        "rest": [6, 7],
        "c": 4,
        "z": 9,
    }
    excluded = ToolSpec("m", fn=method, exclude=frozenset({"b", "rest"}))
    assert excluded.parameters((object(), 1), {}) == {"a": 1, "c": 3}
    # Builtins without a signature fall back to positional names.
    assert ToolSpec("len", fn=len).parameters(([1],), {}) == {"obj": [1]}
    assert ToolSpec("max", fn=max).parameters((1, 2), {}) == {"arg0": 1, "arg1": 2}


def test_safe_mode_keeps_names_and_timings_only() -> None:
    rec = Recording(simulation_result_id="1", zero_ns=0, call_id_prefix="p", safe=True)
    rec.tools.append(entry(ToolSpec("t"), 5 * MS, 6 * MS, kwargs={"x": 1}, output="secret"))
    rec.metadata["model"] = "m"
    request = assemble(rec)
    assert request.tool_calls is not None
    call = request.tool_calls[0]
    assert (call.name, call.start_offset_ms, call.parameters) == ("t", 5, {})
    assert call.output == "…[not captured: recorder error]"


def test_notes_and_rejections_are_converted_and_redacted() -> None:
    rec = Recording(
        simulation_result_id="1",
        zero_ns=0,
        call_id_prefix="p",
        notes={"internal_errors": 2},
        rejected=[("transcript", "bad", {"password": "x"})],
        redactor=Redactor(),
    )
    request = assemble(rec)
    assert request.metadata == {
        "roost": {
            "internal_errors": 2,
            "redacted": 1,
            "rejected": [
                {"kind": "transcript", "reason": "bad", "value": {"password": "[REDACTED]"}}
            ],
        }
    }


class FakeSpanContext:
    trace_id = 0x0AF7651916CD43DD8448EB211C80319C


class FakeSpan:
    def get_span_context(self) -> FakeSpanContext:
        return FakeSpanContext()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0af7651916cd43dd8448eb211c80319c", "0af7651916cd43dd8448eb211c80319c"),
        (" 0X0AF7651916CD43DD8448EB211C80319C ", "0af7651916cd43dd8448eb211c80319c"),
        ("0af76519-16cd-43dd-8448-eb211c80319c", "0af7651916cd43dd8448eb211c80319c"),
        (0x0AF7651916CD43DD8448EB211C80319C, "0af7651916cd43dd8448eb211c80319c"),
        (bytes.fromhex("0af7651916cd43dd8448eb211c80319c"), "0af7651916cd43dd8448eb211c80319c"),
        (FakeSpan(), "0af7651916cd43dd8448eb211c80319c"),
        (FakeSpanContext(), "0af7651916cd43dd8448eb211c80319c"),
        ("0" * 32, None),
        (0, None),
        (1 << 128, None),
        (True, None),
        (b"\x00" * 16, None),
        ("xyz", None),
        ("0af7651916cd43dd8448eb211c80319", None),
        (None, None),
        (3.5, None),
    ],
)
def test_normalise_trace_id(value: Any, expected: str | None) -> None:
    assert normalise_trace_id(value) == expected


def test_a_real_otel_span_links_its_trace() -> None:
    from opentelemetry.sdk.trace import TracerProvider

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("voice.call") as span:
        expected = f"{span.get_span_context().trace_id:032x}"
        assert normalise_trace_id(span) == expected
