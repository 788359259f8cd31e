from __future__ import annotations

from typing import Any

import pytest

from roost.platform.evaluation import (
    ExpectationError,
    ToolExpectations,
    parse_expectations,
)
from roost.platform.evaluation.errors import format_loc
from roost.platform.evaluation.matchers import Equals, Regex
from roost.platform.evaluation.paths import MISSING


def test_bluejay_only_spec() -> None:
    spec = ToolExpectations.from_digital_human(
        {
            "phone_number": "+15550100",
            "intent": "rebook",
            "expected_tool_calls": [
                {"name": "lookup", "parameters": {"id": 7, "region": "eu"}},
                {"name": "rebook", "output": {"ok": True}},
                {"name": "goodbye", "parameters": None, "output": None},
            ],
        }
    )
    lookup, rebook, goodbye = spec.calls
    assert [c.label for c in lookup.checks] == ["parameters.id", "parameters.region"]
    assert all(isinstance(c.matcher, Equals) for c in lookup.checks)
    assert lookup.allowed_keys is None  # subset: extra actual keys are fine
    assert [c.label for c in rebook.checks] == ["output"]
    assert goodbye.checks == ()
    assert goodbye.output is MISSING
    assert spec.order == "unordered"
    assert spec.allow_extra_calls and not spec.no_tool_errors
    assert not spec.is_empty
    assert spec.warnings == ()


def test_empty_specs() -> None:
    assert ToolExpectations.from_digital_human({}).is_empty
    assert ToolExpectations.from_digital_human({"expected_tool_calls": None}).is_empty
    assert parse_expectations([], {}).is_empty
    assert not parse_expectations([], {"no_tool_errors": True}).is_empty
    assert not parse_expectations([], {"order": "strict"}).is_empty


def test_match_overrides_default_checks() -> None:
    (entry,) = parse_expectations(
        [
            {
                "name": "book",
                "parameters": {
                    "date": "2026-01-02",
                    "address": {"zip": "94107", "city": "SF"},
                    "notes": "x",
                },
                "match": {"date": "date", "$.address.zip": {"regex": "^9"}, "notes": "ignore"},
            }
        ]
    ).calls
    labels = [c.label for c in entry.checks]
    # date is checked by its matcher only, address by equality minus zip plus
    # the zip regex, notes not at all.
    assert labels == ["parameters.address", "parameters.date", "parameters.address.zip"]
    address = entry.checks[0].matcher
    assert isinstance(address, Equals) and address.skip == {"zip": None}
    assert isinstance(entry.checks[2].matcher, Regex)


def test_root_match_replaces_all_defaults() -> None:
    (entry,) = parse_expectations(
        [{"name": "x", "parameters": {"a": 1}, "match": {"$": {"subset": {"a": 1}}}}]
    ).calls
    assert [c.label for c in entry.checks] == ["parameters"]


def test_parameters_modes() -> None:
    calls = parse_expectations(
        [
            {
                "name": "a",
                "parameters": {"x": 1},
                "parameters_match": "exact",
                "match": {"y.z": "any"},
            },
            {"name": "b", "parameters": {"x": 1}, "parameters_match": "superset"},
            {
                "name": "c",
                "parameters": {"x": 1},
                "parameters_match": "ignore",
                "match": {"y": "any"},
            },
        ]
    ).calls
    assert calls[0].allowed_keys == {"x", "y"}
    assert calls[1].allowed_keys == {"x"}
    assert calls[1].checks[0].optional
    assert [c.label for c in calls[2].checks] == ["parameters.y"]
    assert calls[2].allowed_keys is None


def test_output_match() -> None:
    (entry,) = parse_expectations(
        [
            {
                "name": "x",
                "output": {"status": "booked", "ref": "R1"},
                "output_match": {"$.ref": {"regex": "^R"}},
            }
        ]
    ).calls
    assert [c.label for c in entry.checks] == ["output", "output.ref"]
    (entry,) = parse_expectations([{"name": "x", "output_match": {"$": {"type": "object"}}}]).calls
    assert [c.label for c in entry.checks] == ["output"]


def test_unknown_entry_keys_are_warnings_not_errors() -> None:
    spec = parse_expectations([{"name": "x", "parameter_match": "exact", "notes": 1}])
    assert spec.warnings == (
        "expected_tool_calls[0]: unknown key 'parameter_match' ignored "
        "(did you mean 'parameters_match'?)",
        "expected_tool_calls[0]: unknown key 'notes' ignored",
    )


def test_rules() -> None:
    spec = parse_expectations(
        [{"name": "verify", "id": "v"}],
        {
            "order": "strict",
            "allow_extra_calls": False,
            "no_tool_errors": True,
            "before": [["v", "refund"], {"first": "lookup", "then": "refund"}],
            "tools": [
                {"name": "transfer", "forbidden": True},
                {"name": "lookup_.*", "name_match": "regex", "count": 2},
                {"name": "refund", "max_duration_ms": 500},
            ],
            "events": [
                {"title": "verified"},
                {"title": "^hold", "title_match": "regex", "max": 1},
                {"title": "transfer", "match": {"$.metadata.queue": {"equals": "billing"}}},
            ],
        },
    )
    assert spec.order == "strict" and not spec.allow_extra_calls and spec.no_tool_errors
    assert [(b.first, b.then) for b in spec.before] == [("v", "refund"), ("lookup", "refund")]
    forbidden, counted, timed = spec.tools
    assert forbidden.forbidden and (counted.min, counted.max) == (2, 2)
    assert counted.accepts("lookup_order") and not counted.accepts("order")
    assert timed.max_duration_ms == 500
    verified, hold, transfer = spec.events
    assert (verified.min, verified.max) == (1, None)
    assert (hold.min, hold.max) == (None, 1)
    assert transfer.accepts({"title": "transfer", "metadata": {"queue": "billing"}})
    assert not transfer.accepts({"title": "transfer", "metadata": {"queue": "sales"}})
    assert not transfer.accepts({"title": 5})


def _error(expected: Any = None, rules: Any = None) -> ExpectationError:
    with pytest.raises(ExpectationError) as caught:
        parse_expectations(expected, rules)
    return caught.value


@pytest.mark.parametrize(
    ("expected", "rules", "loc", "message"),
    [
        ({"name": "x"}, None, ("expected_tool_calls",), "array"),
        ([{"name": "x"}] * 257, None, ("expected_tool_calls",), "at most 256"),
        (["x"], None, ("expected_tool_calls", 0), "object"),
        ([{}], None, ("expected_tool_calls", 0, "name"), "non-empty string"),
        ([{"name": ""}], None, ("expected_tool_calls", 0, "name"), "non-empty string"),
        ([{"name": "x" * 300}], None, ("expected_tool_calls", 0, "name"), "at most 256"),
        (
            [{"name": "x", "parameters": [1]}],
            None,
            ("expected_tool_calls", 0, "parameters"),
            "object or null",
        ),
        (
            [{"name": "x"}, {"name": "(", "name_match": "regex"}],
            None,
            ("expected_tool_calls", 1, "name"),
            "invalid regular expression",
        ),
        (
            [{"name": "(a*)*", "name_match": "regex"}],
            None,
            ("expected_tool_calls", 0, "name"),
            "exponential",
        ),
        (
            [{"name": "x", "name_match": "glob"}],
            None,
            ("expected_tool_calls", 0, "name_match"),
            '"exact" or "regex"',
        ),
        ([{"name": "x", "id": 3}], None, ("expected_tool_calls", 0, "id"), "non-empty string"),
        (
            [{"name": "x", "id": "a"}, {"name": "y", "id": "a"}],
            None,
            ("expected_tool_calls", 0, "id"),
            "used twice",
        ),
        (
            [{"name": "x", "parameters_match": "loose"}],
            None,
            ("expected_tool_calls", 0, "parameters_match"),
            '"subset", "exact"',
        ),
        (
            [{"name": "x", "match": []}],
            None,
            ("expected_tool_calls", 0, "match"),
            "mapping JSON paths",
        ),
        (
            [{"name": "x", "match": {"a[": "any"}}],
            None,
            ("expected_tool_calls", 0, "match", "a["),
            "invalid JSON path",
        ),
        (
            [{"name": "x", "match": {"a": "any", "$.a": "any"}}],
            None,
            ("expected_tool_calls", 0, "match", "$.a"),
            "same path as 'a'",
        ),
        (
            [{"name": "x", "match": {"$.address.zip": {"regex": "("}}}],
            None,
            ("expected_tool_calls", 0, "match", "$.address.zip", "regex"),
            "invalid regular",
        ),
        (
            [{"name": "x", "match": {"a": "date"}}],
            None,
            ("expected_tool_calls", 0, "match", "a"),
            "compares with the value",
        ),
        (
            [{"name": "x", "parameters": {"a": "soon"}, "match": {"a": "date"}}],
            None,
            ("expected_tool_calls", 0, "match", "a", "date"),
            "ISO 8601",
        ),
        (
            [{"name": "x", "match": {f"k{i}": "any" for i in range(129)}}],
            None,
            ("expected_tool_calls", 0, "match"),
            "at most 128",
        ),
        (
            [{"name": "x", "output_match": {"$": "regex"}}],
            None,
            ("expected_tool_calls", 0, "output_match", "$"),
            "compares with the value",
        ),
        (
            [{"name": "x", "max_duration_ms": "1s"}],
            None,
            ("expected_tool_calls", 0, "max_duration_ms"),
            "number",
        ),
        (
            [{"name": "x", "max_duration_ms": -1}],
            None,
            ("expected_tool_calls", 0, "max_duration_ms"),
            ">= 0",
        ),
        (None, [], ("tool_call_rules",), "object or null"),
        (None, {"ordering": "strict"}, ("tool_call_rules", "ordering"), "unknown key"),
        (None, {"order": "sorted"}, ("tool_call_rules", "order"), '"unordered" or "strict"'),
        (
            None,
            {"allow_extra_calls": "no"},
            ("tool_call_rules", "allow_extra_calls"),
            "true or false",
        ),
        (None, {"before": [["a"]]}, ("tool_call_rules", "before", 0), "[first, then]"),
        (None, {"before": [["a", 1]]}, ("tool_call_rules", "before", 0), "strings"),
        (None, {"before": [["a", "a"]]}, ("tool_call_rules", "before", 0), "before itself"),
        (None, {"before": {"a": "b"}}, ("tool_call_rules", "before"), "array"),
        (None, {"tools": [{"name": "x"}]}, ("tool_call_rules", "tools", 0), "needs min"),
        (None, {"tools": ["x"]}, ("tool_call_rules", "tools", 0), "object"),
        (
            None,
            {"tools": [{"name": "x", "maximum": 1}]},
            ("tool_call_rules", "tools", 0, "maximum"),
            "unknown key",
        ),
        (
            None,
            {"tools": [{"name": "x", "min": 2, "max": 1}]},
            ("tool_call_rules", "tools", 0, "min"),
            "greater than max",
        ),
        (
            None,
            {"tools": [{"name": "x", "min": -1}]},
            ("tool_call_rules", "tools", 0, "min"),
            ">= 0",
        ),
        (
            None,
            {"tools": [{"name": "x", "max": 1.5}]},
            ("tool_call_rules", "tools", 0, "max"),
            "integer",
        ),
        (
            None,
            {"tools": [{"name": "x", "count": 1, "max": 1}]},
            ("tool_call_rules", "tools", 0, "count"),
            "not both",
        ),
        (
            None,
            {"tools": [{"name": "x", "forbidden": True, "min": 1}]},
            ("tool_call_rules", "tools", 0, "forbidden"),
            "cannot have a count",
        ),
        (
            None,
            {"tools": [{"name": "x", "forbidden": 1}]},
            ("tool_call_rules", "tools", 0, "forbidden"),
            "true or false",
        ),
        (
            None,
            {"tools": [{"forbidden": True}]},
            ("tool_call_rules", "tools", 0, "name"),
            "non-empty",
        ),
        (
            None,
            {"tools": [{"name": "x", "forbidden": True}] * 129},
            ("tool_call_rules", "tools"),
            "at most 128",
        ),
        (
            None,
            {"events": [{"title": "x", "match": {"a": "date"}}]},
            ("tool_call_rules", "events", 0, "match", "a"),
            "compares with the value",
        ),
        (
            None,
            {"events": [{"name": "x"}]},
            ("tool_call_rules", "events", 0, "name"),
            "unknown key",
        ),
        (None, {"events": [5]}, ("tool_call_rules", "events", 0), "object"),
        (
            None,
            {"events": [{"title": "[", "title_match": "regex"}]},
            ("tool_call_rules", "events", 0, "title"),
            "invalid regular",
        ),
    ],
)
def test_malformed_specs_raise_located_errors(
    expected: Any, rules: Any, loc: tuple[Any, ...], message: str
) -> None:
    error = _error(expected, rules)
    assert error.loc == loc
    assert message in error.message
    assert str(error).startswith(format_loc(loc) + ": ")


def test_from_digital_human_needs_an_object() -> None:
    with pytest.raises(ExpectationError):
        ToolExpectations.from_digital_human([])  # type: ignore[arg-type]


def test_error_location_rendering() -> None:
    error = ExpectationError(("expected_tool_calls", 1, "match", "$.a.b", "regex"), "bad")
    assert str(error) == "expected_tool_calls[1].match['$.a.b'].regex: bad"
    assert error.within("digital_human").loc[0] == "digital_human"
    assert format_loc(()) == "$"
    assert format_loc(("1a",)) == "['1a']"
