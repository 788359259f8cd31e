from __future__ import annotations

import json
from typing import Any

import pytest

from roost.platform.evaluation import (
    ActualToolCall,
    EvaluationReport,
    ToolExpectations,
    evaluate,
    parse_expectations,
)
from tests.openapi import assert_valid


def run(
    expected: list[dict[str, Any]] | None,
    calls: list[ActualToolCall],
    rules: dict[str, Any] | None = None,
    events: list[Any] = (),  # type: ignore[assignment]
) -> EvaluationReport:
    report = evaluate(parse_expectations(expected, rules), calls, events)
    for group in report.groups:
        assert_valid("ToolCallComparisonGroup", group)
    json.dumps(report.to_dict())  # always JSON-ready
    return report


def call(name: str, at: int, **fields: Any) -> ActualToolCall:
    return ActualToolCall(name, at, **fields)


def verdicts(report: EvaluationReport, check: str) -> list[Any]:
    return [v for v in report.verdicts if v.check == check]


# --- Bluejay semantics -------------------------------------------------------------


def test_bluejay_entry_passes_on_subset_equal_parameters_and_equal_output() -> None:
    report = run(
        [{"name": "lookup", "parameters": {"id": 7}, "output": {"status": "open"}}],
        [call("lookup", 1200, parameters={"id": 7.0, "verbose": True}, output={"status": "open"})],
    )
    assert report.passed and report.score == 1.0
    (verdict,) = report.verdicts
    assert verdict.reason == "lookup (expected #0): called at 1200 ms, 2/2 checks passed"
    assert verdict.actual_indices == (0,)


def test_bluejay_entry_fails_on_a_wrong_value_with_partial_credit() -> None:
    report = run(
        [{"name": "book", "parameters": {"date": "2026-01-02", "party": 4, "time": "19:00"}}],
        [call("book", 500, parameters={"date": "2026-01-02", "party": 5, "time": "19:00"})],
    )
    assert not report.passed
    assert report.score == pytest.approx(2 / 3)
    assert "parameters.party: expected 4, got 5" in report.verdicts[0].reason
    checks = report.verdicts[0].details["checks"]
    assert [c["passed"] for c in checks] == [True, False, True]


def test_nested_values_compare_whole_by_default() -> None:
    report = run(
        [{"name": "ship", "parameters": {"address": {"zip": "94107"}}}],
        [call("ship", 1, parameters={"address": {"zip": "94107", "city": "SF"}})],
    )
    assert not report.passed
    assert "at $.city: expected nothing" in report.verdicts[0].reason


def test_missing_call_and_missing_parameters() -> None:
    report = run(
        [{"name": "refund"}, {"name": "lookup", "parameters": {"id": 1}}],
        [call("lookup", 10)],
    )
    missing, wrong = report.verdicts
    assert missing.reason == "refund (expected #0): never called"
    assert missing.score == 0.0
    assert "parameters.id: missing; expected equal to 1" in wrong.reason
    assert report.score == 0.0


def test_output_equality_and_output_match() -> None:
    expected = [
        {
            "name": "book",
            "output": {"status": "booked", "ref": "R-0000"},
            "output_match": {"$.ref": {"regex": "^R-\\d{4}$"}},
        }
    ]
    good = run(expected, [call("book", 1, output={"status": "booked", "ref": "R-1234"})])
    assert good.passed
    bad = run(expected, [call("book", 1, output={"status": "failed", "ref": "X"})])
    assert bad.score == 0.0
    assert "output: at $.status" in bad.verdicts[0].reason
    assert 'output.ref: "X" does not match' in bad.verdicts[0].reason


def test_no_expectations_passes_and_still_groups_actual_calls() -> None:
    report = run(None, [call("b", 20), call("a", 10)])
    assert report.passed and report.score == 1.0 and report.verdicts == []
    assert [g["name"] for g in report.groups] == ["a", "b"]
    assert report.groups[0] == {
        "name": "a",
        "expected": [],
        "actual": [
            {
                "parameters": None,
                "output": None,
                "start_offset_ms": 10,
                "index": 1,
                "expected_index": None,
            }
        ],
    }


# --- Roost matchers in entries ---------------------------------------------------


def test_json_path_matchers_and_shorthands() -> None:
    expected = [
        {
            "name": "book",
            "parameters": {"date": "2026-01-02", "party": 4, "address": {"zip": "0", "city": "SF"}},
            "match": {
                "date": "date",
                "party": {"approx": 4, "abs": 1},
                "$.address.zip": {"regex": "^9\\d{4}$"},
                "items[0].sku": {"one_of": ["A", "B"]},
                "notes": "any",
                "coupon": "absent",
            },
        }
    ]
    actual = {
        "date": "2026-01-02T19:00:00",
        "party": "5",
        "address": {"zip": "94107", "city": "SF"},
        "items": [{"sku": "B", "qty": 2}],
        "notes": None,
    }
    assert run(expected, [call("book", 1, parameters=actual)]).passed
    actual["coupon"] = "SAVE10"
    actual["address"] = {"zip": "94107", "city": "LA"}
    report = run(expected, [call("book", 1, parameters=actual)])
    assert report.score == pytest.approx(5 / 7)
    assert 'parameters.coupon: expected absent, got "SAVE10"' in report.verdicts[0].reason
    assert 'parameters.address: at $.city: expected "SF", got "LA"' in report.verdicts[0].reason


def test_similar_text_in_parameters_and_output() -> None:
    expected = [
        {
            "name": "send_sms",
            "parameters": {"body": "Your table for 4 is booked for Friday at 7pm"},
            "match": {"body": "similar"},
            "output_match": {"$.note": {"similar": "message queued", "min_ratio": 0.7}},
        }
    ]
    close = call(
        "send_sms",
        1,
        parameters={"body": "your table for four is booked for friday at 7 pm"},
        output={"note": "Message queued."},
    )
    assert run(expected, [close]).passed
    far = call("send_sms", 1, parameters={"body": "We are closed on Friday"}, output={})
    report = run(expected, [far])
    assert not report.passed and report.score == 0.0
    assert "below 0.8" in report.verdicts[0].reason


def test_parameters_match_exact_rejects_extra_keys() -> None:
    expected = [
        {"name": "x", "parameters": {"a": 1}, "parameters_match": "exact", "match": {"b": "ignore"}}
    ]
    assert run(expected, [call("x", 1, parameters={"a": 1, "b": 2})]).passed
    report = run(expected, [call("x", 1, parameters={"a": 1, "c": 2, "d": 3})])
    assert "parameters (no other keys): unexpected arguments c, d" in report.verdicts[0].reason
    assert report.score == 0.5


def test_parameters_match_superset_allows_omissions_only() -> None:
    expected = [{"name": "x", "parameters": {"a": 1, "b": 2}, "parameters_match": "superset"}]
    assert run(expected, [call("x", 1, parameters={"a": 1})]).passed
    assert run(expected, [call("x", 1, parameters={})]).passed
    assert not run(expected, [call("x", 1, parameters={"a": 2})]).passed
    assert not run(expected, [call("x", 1, parameters={"a": 1, "z": 0})]).passed


def test_parameters_match_ignore_is_name_only() -> None:
    expected = [
        {
            "name": "search",
            "parameters": {"query": "two tickets to Paris"},
            "parameters_match": "ignore",
        }
    ]
    report = run(expected, [call("search", 1, parameters={"query": "Paris, 2 tickets"})])
    assert report.passed


def test_name_regex_groups_under_the_actual_name() -> None:
    report = run(
        [{"name": "^book_", "name_match": "regex"}, {"name": "^cancel_", "name_match": "regex"}],
        [call("book_table", 1)],
    )
    assert [g["name"] for g in report.groups] == ["book_table", "^cancel_"]
    assert report.groups[0]["expected"][0]["actual_index"] == 0
    assert report.groups[1]["expected"][0]["passed"] is False


# --- assignment --------------------------------------------------------------------


def test_assignment_is_optimal_where_greedy_is_not() -> None:
    # First-fit would pair the loose entry #0 with the first call and leave
    # entry #1 with the wrong region.
    expected = [
        {"name": "lookup", "parameters": {"id": 1}},
        {"name": "lookup", "parameters": {"id": 1, "region": "eu"}},
    ]
    calls = [
        call("lookup", 100, parameters={"id": 1, "region": "eu"}),
        call("lookup", 200, parameters={"id": 1, "region": "us"}),
    ]
    report = run(expected, calls)
    assert report.passed and report.score == 1.0
    assert [v.actual_indices for v in report.verdicts] == [(1,), (0,)]


def test_assignment_prefers_a_perfect_call_over_an_earlier_partial_one() -> None:
    expected = [{"name": "pay", "parameters": {"amount": 10, "currency": "EUR"}}]
    calls = [
        call("pay", 100, parameters={"amount": 10, "currency": "USD"}),
        call("pay", 200, parameters={"amount": 10, "currency": "EUR"}),
    ]
    report = run(expected, calls)
    assert report.passed
    assert report.groups[0]["actual"][1]["expected_index"] == 0


def test_unmatched_candidate_reason() -> None:
    report = run(
        [{"name": "a", "parameters": {"x": 1}}, {"name": "a", "parameters": {"x": 2}}],
        [call("a", 1, parameters={"x": 2})],
    )
    first, second = report.verdicts
    assert second.passed
    assert "not called; the 1 matching call(s) fit other expectations better" in first.reason


# --- order -------------------------------------------------------------------------


def test_unordered_ignores_order() -> None:
    report = run([{"name": "a"}, {"name": "b"}], [call("b", 1), call("a", 2)])
    assert report.passed


def test_strict_order() -> None:
    expected = [{"name": "verify"}, {"name": "lookup"}, {"name": "refund"}]
    rules = {"order": "strict"}
    assert run(expected, [call("verify", 1), call("lookup", 2), call("refund", 3)], rules).passed
    # Extra calls in between are allowed unless allow_extra_calls is false.
    assert run(
        expected,
        [call("verify", 1), call("smalltalk", 2), call("lookup", 3), call("refund", 4)],
        rules,
    ).passed
    report = run(expected, [call("refund", 1), call("verify", 2), call("lookup", 3)], rules)
    (order,) = verdicts(report, "order")
    assert not order.passed
    assert order.score == pytest.approx(2 / 3)
    assert order.reason == (
        "1 of 3 matched call(s) out of the expected order (refund (expected #2)); "
        "they happened as: refund, verify, lookup"
    )
    assert report.score == pytest.approx((1 + 1 + 1 + 2 / 3) / 4)


def test_strict_order_uses_input_order_for_equal_offsets() -> None:
    expected = [{"name": "a"}, {"name": "b"}]
    rules = {"order": "strict"}
    assert run(expected, [call("a", 5), call("b", 5)], rules).passed
    assert not run(expected, [call("b", 5), call("a", 5)], rules).passed


def test_strict_order_with_repeated_identical_entries() -> None:
    # Identical entries must take the calls in order, or the order check would
    # see a crossing that is not there.
    expected = [{"name": "ask"}, {"name": "lookup"}, {"name": "ask"}, {"name": "lookup"}]
    calls = [call("ask", 1), call("lookup", 2), call("ask", 3), call("lookup", 4)]
    report = run(expected, calls, {"order": "strict"})
    assert report.passed
    assert [v.actual_indices for v in verdicts(report, "expected_call")] == [(0,), (1,), (2,), (3,)]


def test_strict_order_without_extras_is_an_exact_sequence() -> None:
    expected = [{"name": "a"}, {"name": "b"}]
    rules = {"order": "strict", "allow_extra_calls": False}
    assert run(expected, [call("a", 1), call("b", 2)], rules).passed
    report = run(expected, [call("a", 1), call("x", 2), call("b", 3), call("a", 4)], rules)
    (extra,) = verdicts(report, "no_extra_calls")
    assert not extra.passed
    assert extra.score == 0.5
    assert extra.reason == "2 call(s) not expected: x at 2 ms, a at 4 ms"
    assert extra.actual_indices == (1, 3)


def test_before_constraints() -> None:
    expected = [{"name": "verify_identity", "id": "verified"}, {"name": "update_address"}]
    rules = {"before": [["verified", "update_address"], {"first": "lookup", "then": "refund"}]}
    report = run(expected, [call("verify_identity", 1), call("update_address", 2)], rules)
    first, second = verdicts(report, "before")
    assert first.passed and first.reason == (
        "verify_identity at 1 ms came before update_address at 2 ms"
    )
    assert second.passed and second.reason == "refund was not called"
    report = run(expected, [call("update_address", 1), call("verify_identity", 2)], rules)
    assert verdicts(report, "before")[0].reason == (
        "update_address at 1 ms came before the first verify_identity at 2 ms"
    )
    report = run(None, [call("refund", 3)], rules)
    assert verdicts(report, "before")[1].reason == "refund at 3 ms, but lookup was never called"


# --- tool rules --------------------------------------------------------------------


def test_count_bounds_and_forbidden_tools() -> None:
    rules = {
        "tools": [
            {"name": "transfer_call", "forbidden": True},
            {"name": "lookup_.*", "name_match": "regex", "max": 2},
            {"name": "confirm", "count": 1},
            {"name": "greet", "min": 1, "max": 3},
        ]
    }
    calls = [
        call("lookup_order", 1),
        call("lookup_user", 2),
        call("confirm", 3),
        call("greet", 0),
    ]
    report = run(None, calls, rules)
    assert report.passed
    assert [v.check for v in report.verdicts] == ["forbidden", "count", "count", "count"]
    calls += [call("lookup_order", 4), call("transfer_call", 5), call("transfer_call", 9)]
    report = run(None, calls, rules)
    forbidden, lookups, confirm, greet = report.verdicts
    assert forbidden.reason == "forbidden tool transfer_call was called 2 time(s) at 5 ms, 9 ms"
    assert lookups.reason == "lookup_.* was called 3 time(s); expected at most 2"
    assert confirm.passed and confirm.reason == "confirm was called 1 time(s); expected exactly 1"
    assert greet.reason == "greet was called 1 time(s); expected between 1 and 3"
    assert report.score == 0.5


def test_max_duration_per_entry_and_per_tool() -> None:
    expected = [{"name": "search", "max_duration_ms": 1000}]
    rules = {"tools": [{"name": "search", "max_duration_ms": 1000}]}
    calls = [
        call("search", 100, end_offset_ms=600),
        call("search", 700, duration_ms=1500.5),
        call("search", 3000),
    ]
    report = run(expected, calls, rules)
    entry, budget = report.verdicts
    assert entry.passed  # the assignment picks the fast call
    assert not budget.passed
    assert budget.score == pytest.approx(1 / 3)
    assert "search at 700 ms took 1500.5 ms, budget 1000 ms" in budget.reason
    assert "search at 3000 ms duration unknown" in budget.reason
    slow = run(expected, [call("search", 0, duration_ms=2000)])
    assert "duration: took 2000 ms, budget 1000 ms" in slow.verdicts[0].reason


def test_no_tool_errors() -> None:
    calls = [
        call("lookup", 1, status="ok"),
        call("refund", 2, status="error", error_type="TimeoutError", error_message="gateway slow"),
        call("notify", 3, status="error"),
    ]
    report = run(None, calls, {"no_tool_errors": True})
    (verdict,) = report.verdicts
    assert not verdict.passed
    assert verdict.score == pytest.approx(1 / 3)
    assert verdict.reason == (
        '2 tool call(s) failed: refund at 2 ms failed with TimeoutError: "gateway slow"; '
        "notify at 3 ms failed with error"
    )
    assert run(None, calls[:1], {"no_tool_errors": True}).passed
    assert run(None, calls, {}).passed  # off by default


# --- events ------------------------------------------------------------------------


def test_event_expectations() -> None:
    rules = {
        "events": [
            {"title": "identity_verified"},
            {"title": "^hold", "title_match": "regex", "max": 1},
            {"title": "transfer", "count": 1, "match": {"$.metadata.queue": {"equals": "billing"}}},
        ]
    }
    events = [
        {"title": "identity_verified", "start_offset_ms": 100},
        {"title": "hold_started", "start_offset_ms": 200},
        {"title": "transfer", "start_offset_ms": 300, "metadata": {"queue": "billing"}},
        {"title": "transfer", "start_offset_ms": 400, "metadata": {"queue": "sales"}},
        "not an event",
        {"start_offset_ms": 5},
    ]
    assert run(None, [], rules, events).passed
    events.append({"title": "hold_resumed", "start_offset_ms": 500})
    report = run(None, [], rules, events[2:])
    verified, hold, transfer = report.verdicts
    assert verified.reason == "event 'identity_verified' occurred 0 time(s); expected at least 1"
    assert hold.passed and transfer.passed


# --- robustness --------------------------------------------------------------------


def test_deeply_nested_values_fail_cleanly() -> None:
    deep: Any = 1
    for _ in range(5000):
        deep = {"a": deep}
    # Built in Python: a JSON decoder would refuse this depth before it got here.
    spec = parse_expectations([{"name": "x", "parameters": {"v": deep}}])
    report = evaluate(spec, [call("x", 1, parameters={"v": deep})])
    assert not report.passed
    assert "nested too deeply" in report.verdicts[0].reason


def test_actual_from_dict_and_detail() -> None:
    stored = {
        "name": "lookup",
        "start_offset_ms": 10,
        "parameters": {"id": 1},
        "output": [1],
        "call_id": "c1",
        "end_offset_ms": 30,
        "status": "ok",
        "description": "ignored here",
        "source": "sdk",
    }
    actual = ActualToolCall.from_dict(stored)
    assert actual.elapsed_ms == 20.0
    assert actual.detail() == {
        "parameters": {"id": 1},
        "output": [1],
        "start_offset_ms": 10,
        "call_id": "c1",
        "end_offset_ms": 30,
        "status": "ok",
    }
    assert ActualToolCall("x", 0).elapsed_ms is None


def test_report_to_dict_and_failures() -> None:
    report = run([{"name": "a", "id": "first"}], [], {"no_tool_errors": True})
    data = report.to_dict()
    assert data["version"] == 1
    assert data["passed"] is False
    assert data["score"] == 0.5
    assert data["groups"] == [
        {
            "name": "a",
            "expected": [
                {
                    "parameters": None,
                    "output": None,
                    "passed": False,
                    "score": 0.0,
                    "actual_index": None,
                    "id": "first",
                }
            ],
            "actual": [],
        }
    ]
    assert data["verdicts"][0]["subject"] == "a"
    assert [v.check for v in report.failures()] == ["expected_call"]


def test_warnings_reach_the_report() -> None:
    spec = ToolExpectations.from_digital_human(
        {"expected_tool_calls": [{"name": "a", "paramters": {"x": 1}}]}
    )
    report = evaluate(spec, [call("a", 1)])
    assert report.warnings == [
        "expected_tool_calls[0]: unknown key 'paramters' ignored (did you mean 'parameters'?)"
    ]
