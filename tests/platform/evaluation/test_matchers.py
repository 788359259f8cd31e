from __future__ import annotations

from typing import Any

import pytest

from roost.platform.evaluation import MISSING, ExpectationError, parse_matcher
from roost.platform.evaluation.matchers import OPERATORS, nested_quantifier


def passes(spec: Any, value: Any, default: Any = MISSING) -> bool:
    return parse_matcher(spec, default=default).check(value).passed


CASES: list[tuple[Any, Any, bool]] = [
    # equals / exact
    ({"equals": {"a": [1, 2]}}, {"a": [1.0, 2]}, True),
    ({"equals": {"a": 1}}, {"a": 1, "b": 2}, False),
    ({"exact": 1}, True, False),
    ({"equals": None}, None, True),
    ({"equals": None}, MISSING, False),
    # subset / superset
    ({"subset": {"a": 1}}, {"a": 1, "b": 2}, True),
    ({"subset": {"a": 1, "c": 3}}, {"a": 1, "b": 2}, False),
    ({"subset": ["x"]}, ["y", "x"], True),
    ({"superset": {"a": 1, "b": 2}}, {"a": 1}, True),
    ({"superset": {"a": 1}}, {"a": 1, "b": 2}, False),
    ({"superset": [1, 2, 3]}, [3, 1], True),
    # regex
    ({"regex": "^9\\d{4}$"}, "94107", True),
    ({"regex": "^9\\d{4}$"}, 94107, True),
    ({"regex": "^9\\d{4}$"}, "04107", False),
    ({"regex": "main st"}, "12 Main St", False),
    ({"regex": "main st", "flags": "i"}, "12 Main St", True),
    ({"regex": "^1\\.5$"}, 1.5, True),
    ({"regex": "true"}, True, False),
    ({"regex": "."}, None, False),
    ({"regex": "."}, MISSING, False),
    # approx
    ({"approx": 10.0, "abs": 0.5}, 10.4, True),
    ({"approx": 10.0, "abs": 0.5}, 10.6, False),
    ({"approx": 100, "rel": 0.05}, 104, True),
    ({"approx": 100, "rel": 0.05}, 106, False),
    ({"approx": 0.3}, 0.1 + 0.2, True),
    ({"approx": 4}, "4", True),
    ({"approx": 4}, " 4.0 ", True),
    ({"approx": 4}, "four", False),
    ({"approx": 1}, True, False),
    ({"approx": 1}, "nan", False),
    # range
    ({"range": {"min": 1, "max": 8}}, 8, True),
    ({"range": {"min": 1, "max": 8}}, 9, False),
    ({"range": {"min": 1}}, 1e9, True),
    ({"range": {"max": 0}}, "-3", True),
    ({"range": {"max": 0}}, [], False),
    # one_of
    ({"one_of": ["card", "cash"]}, "cash", True),
    ({"one_of": ["card", "cash"]}, "Cash", False),
    ({"one_of": ["card", "cash"], "ignore_case": True}, "Cash", True),
    ({"one_of": [1, 2]}, 2.0, True),
    # text
    ({"text": "12 Main  Street"}, " 12 main street\n", True),
    ({"text": "Main Street"}, "Main St", False),
    ({"text": "Main Street", "ignore_case": False}, "main street", False),
    ({"text": "a  b", "normalize_whitespace": False}, "a b", False),
    ({"text": "1"}, 1, False),
    # similar
    ({"similar": "Your table for 4 is booked"}, "your table for four is booked", True),
    ({"similar": "Your table for 4 is booked"}, "Sorry, we are closed tonight", False),
    ({"similar": "abc", "min_ratio": 1}, "ABC", True),
    ({"similar": "abc", "ignore_case": False, "min_ratio": 1}, "ABC", False),
    ({"similar": "abc"}, 5, False),
    ({"similar": "abc"}, MISSING, False),
    # contains
    ({"contains": "refund"}, "Customer wants a refund.", True),
    ({"contains": "REFUND"}, "wants a refund", False),
    ({"contains": "REFUND", "ignore_case": True}, "wants a refund", True),
    ({"contains": {"sku": "A"}}, [{"sku": "B"}, {"sku": "A"}], True),
    ({"contains": 3}, [1, 2], False),
    ({"contains": "x"}, 5, False),
    # datetime
    ({"datetime": "2026-01-02T10:00:00Z"}, "2026-01-02T12:00:00+02:00", True),
    ({"datetime": "2026-01-02T10:00:00Z"}, "2026-01-02T10:00:00", True),
    ({"datetime": "2026-01-02T10:00:00Z"}, "2026-01-02 10:00", True),
    ({"datetime": "2026-01-02T10:00:00Z"}, "20260102T100000Z", True),
    ({"datetime": "2026-01-02T10:00:00Z"}, "2026-01-02T10:00:01Z", False),
    ({"datetime": "2026-01-02T10:00:00Z", "tolerance_s": 60}, "2026-01-02T10:00:59Z", True),
    ({"datetime": "2026-01-02"}, "2026-01-02T00:00:00", True),
    ({"datetime": "2026-01-02T10:00", "timezone": "+02:00"}, "2026-01-02T08:00:00Z", True),
    ({"datetime": "2026-01-02T10:00"}, "tomorrow", False),
    ({"datetime": "2026-01-02T10:00"}, 1767348000, False),
    # date
    ({"date": "2026-01-02"}, "2026-01-02T23:30:00-05:00", True),
    ({"date": "2026-01-02"}, "2026-01-03", False),
    ({"date": "2026-01-02T08:00:00"}, "20260102", True),
    ({"date": "2026-01-02"}, "02/01/2026", False),
    # time
    ({"time": "14:30"}, "14:30:00", True),
    ({"time": "14:30"}, "2026-01-02T14:30:00Z", True),
    ({"time": "14:30"}, "14:31", False),
    ({"time": "23:59:59", "tolerance_s": 5}, "00:00:02", True),
    ({"time": "14:30"}, "half past two", False),
    # type
    ({"type": "integer"}, 3.0, True),
    ({"type": "integer"}, 3.5, False),
    ({"type": "number"}, True, False),
    ({"type": ["string", "null"]}, None, True),
    ({"type": "object"}, [], False),
    # presence
    ("any", None, True),
    ("any", MISSING, False),
    ({"any": True}, 0, True),
    ("absent", MISSING, True),
    ("absent", None, False),
    ({"absent": True}, "x", False),
    ("ignore", MISSING, True),
    ({"ignore": True}, 42, True),
    # judge: never decided by the matcher alone (the engine asks a judge)
    ({"judge": "a date in any format"}, "Jan 2", False),
    ({"judge": "a date in any format"}, MISSING, False),
]


@pytest.mark.parametrize(("spec", "value", "expected"), CASES)
def test_matcher(spec: Any, value: Any, expected: bool) -> None:
    assert passes(spec, value) is expected


def test_every_operator_has_cases() -> None:
    # A guard against adding an operator without tests for it.
    used = {
        spec if isinstance(spec, str) else next(k for k in spec if k in OPERATORS)
        for spec, _, _ in CASES
    }
    assert used == OPERATORS


@pytest.mark.parametrize(
    ("shorthand", "default", "value", "expected"),
    [
        ("date", "2026-01-02", "2026-01-02T09:00:00", True),
        ("datetime", "2026-01-02T10:00:00Z", "2026-01-02T11:00:00+01:00", True),
        ("text", "Main Street", "main   street", True),
        ("regex", "^A-\\d+$", "A-17", True),
        ("approx", 3.0, 3.0000000001, True),
        ("equals", {"a": 1}, {"a": 1}, True),
        ("subset", {"a": 1}, {"a": 1, "b": 0}, True),
        ("one_of", ["x", "y"], "y", True),
        ("time", "09:00", "09:00:00", True),
    ],
)
def test_shorthand_takes_value_from_default(
    shorthand: str, default: Any, value: Any, expected: bool
) -> None:
    assert passes(shorthand, value, default) is expected


def test_reasons_say_what_differed() -> None:
    reason = parse_matcher({"equals": {"a": {"b": 1}}}).check({"a": {"b": 2}}).reason
    assert reason == "at $.a.b: expected 1, got 2"
    assert parse_matcher({"regex": "^9"}).check("1").reason == '"1" does not match /^9/'
    assert parse_matcher("any").check(MISSING).reason == "missing; expected any value"
    reason = parse_matcher({"approx": 10, "abs": 0.5}).check(11).reason
    assert reason == "11 is not within 0.5 of 10"
    assert (
        "is 3600 s away"
        in parse_matcher({"datetime": "2026-01-02T10:00:00Z"}).check("2026-01-02T11:00:00Z").reason
    )


def test_similar_reports_the_ratio_and_refuses_huge_texts() -> None:
    reason = parse_matcher({"similar": "booked for friday"}).check("cancelled").reason
    assert "similar to" in reason and "below 0.8" in reason
    outcome = parse_matcher({"similar": "x"}).check("x" * 2001)
    assert not outcome.passed and "over 2000" in outcome.reason


def test_regex_limits_subject_length() -> None:
    outcome = parse_matcher({"regex": "x"}).check("a" * 30_000 + "x")
    assert not outcome.passed
    assert "longer than" in outcome.reason


@pytest.mark.parametrize(
    ("spec", "loc", "message"),
    [
        ({"regex": "("}, ("regex",), "invalid regular expression"),
        ({"regex": 5}, ("regex",), "must be a string"),
        ({"regex": "x" * 1001}, ("regex",), "at most 1000"),
        ({"regex": "(a+)+$"}, ("regex",), "exponential"),
        ({"regex": "x", "flags": "q"}, ("flags",), "letters i, m, s, x"),
        ({"approx": "ten"}, ("approx",), "finite number"),
        ({"approx": 1, "abs": -1}, ("abs",), ">= 0"),
        ({"approx": 1, "abs": True}, ("abs",), "must be a number"),
        ({"approx": 1, "tolerance": 1}, ("tolerance",), "unknown option"),
        ({"range": {"low": 1}}, ("range",), '"min" and/or "max"'),
        ({"range": {"min": "1"}}, ("range", "min"), "must be a number"),
        ({"range": {"min": 2, "max": 1}}, ("range",), "greater than max"),
        ({"one_of": []}, ("one_of",), "non-empty array"),
        ({"one_of": ["a"], "ignore_case": "yes"}, ("ignore_case",), "true or false"),
        ({"text": 5}, ("text",), "must be a string"),
        ({"similar": 5}, ("similar",), "must be a string"),
        ({"similar": "a", "min_ratio": 1.5}, ("min_ratio",), "between 0 and 1"),
        ({"similar": "a" * 2001}, ("similar",), "at most 2000"),
        ({"datetime": "soon"}, ("datetime",), "ISO 8601"),
        ({"datetime": "2026-01-02", "timezone": "Europe/Paris"}, ("timezone",), "offset"),
        ({"date": "01/02/2026"}, ("date",), "ISO 8601"),
        ({"time": "2pm"}, ("time",), "ISO 8601"),
        ({"type": "float"}, ("type",), "must be one of"),
        ({"any": False}, ("any",), "takes no options"),
        ({"absent": True, "x": 1}, ("absent",), "takes no options"),
        ({"regex": "a", "equals": "a"}, (), "exactly one operator"),
        ({"flags": "i"}, (), "found none"),
        ("fuzzy", (), "unknown matcher"),
        ("date", (), "no"),
        (5, (), "string shorthand or an object"),
    ],
)
def test_bad_matchers_raise_located_errors(spec: Any, loc: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ExpectationError) as caught:
        parse_matcher(spec)
    assert caught.value.loc == loc
    assert message in caught.value.message


@pytest.mark.parametrize(
    ("pattern", "nested"),
    [
        ("(a+)+", True),
        ("(a*)*b", True),
        ("(?:\\w+\\s?)*$", True),
        ("((ab)+c)+", True),
        ("(a+){20}", True),
        ("(a+){2}", False),
        ("(ab)+", False),
        ("^\\d+(\\.\\d+)?$", False),
        ("[(a+)]+", False),
        ("\\(a+\\)+", False),
        ("a{2,}b", False),
        ("(a{1,})+", True),
        ("x+y+z+", False),
    ],
)
def test_nested_quantifier(pattern: str, nested: bool) -> None:
    assert nested_quantifier(pattern) is nested
