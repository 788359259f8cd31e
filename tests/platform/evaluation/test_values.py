from __future__ import annotations

from typing import Any

import pytest

from roost.platform.evaluation.paths import MISSING
from roost.platform.evaluation.values import (
    first_difference,
    json_equal,
    json_type,
    preview,
    skip_trie,
    subset_difference,
)


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (1, 1.0, True),
        (True, 1, False),
        (False, 0, False),
        (True, True, True),
        (None, None, True),
        (None, 0, False),
        ("1", 1, False),
        ([1, 2], [1, 2], True),
        ([1, 2], [2, 1], False),
        ([1, 2], (1, 2), True),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": [1, {"b": None}]}, {"a": [1, {"b": None}]}, True),
        ({"a": 1}, [1], False),
        ("x", "x", True),
    ],
)
def test_json_equal(a: Any, b: Any, equal: bool) -> None:
    assert json_equal(a, b) is equal
    assert json_equal(b, a) is equal


def test_first_difference_points_at_the_place() -> None:
    assert first_difference({"a": [1, 2]}, {"a": [1, 3]}) == (("a", 1), 2, 3)
    assert first_difference({"a": 1}, {}) == (("a",), 1, MISSING)
    assert first_difference({}, {"b": 1}) == (("b",), MISSING, 1)
    assert first_difference([1], [1, 2]) == ((1,), MISSING, 2)
    assert first_difference([1, 2], [1]) == ((1,), 2, MISSING)


def test_first_difference_skips_paths() -> None:
    expected = {"address": {"zip": "00000", "city": "Paris"}, "items": [{"sku": "A", "q": 1}]}
    actual = {"address": {"zip": "75001", "city": "Paris"}, "items": [{"sku": "A", "q": 9}]}
    assert first_difference(expected, actual) == (("address", "zip"), "00000", "75001")
    skip = skip_trie([("address", "zip"), ("items", -1, "q")])
    assert first_difference(expected, actual, skip) is None
    # A skipped key may also be absent on either side.
    assert first_difference({"a": 1, "b": 2}, {"a": 1}, skip_trie([("b",)])) is None


def test_skip_trie_keeps_the_widest_skip() -> None:
    assert skip_trie([("a",), ("a", "b")]) == {"a": None}
    assert skip_trie([("a", "b"), ()]) == {"a": {"b": None}}


def test_subset_objects_and_scalars() -> None:
    assert subset_difference({"a": 1}, {"a": 1, "b": 2}) is None
    assert subset_difference({"a": {"b": 1}}, {"a": {"b": 1, "c": 2}}) is None
    assert subset_difference({"a": 1}, {"b": 1}) == "$.a: missing"
    assert subset_difference({"a": 1}, [1]) == "$: expected an object, got array"
    assert subset_difference([1], {"a": 1}) == "$: expected an array, got object"
    assert subset_difference(1, 2) == "$: expected 1, got 2"


def test_subset_arrays_use_a_real_matching() -> None:
    # First-fit would give [0] the first actual element and then fail [1].
    expected = [{"a": 1}, {"a": 1, "b": 2}]
    actual = [{"a": 1, "b": 2}, {"a": 1}]
    assert subset_difference(expected, actual) is None
    # Each actual element serves one expected element only.
    assert subset_difference([1, 1], [1, 2]) == "$: no element matches [1] 1"
    assert subset_difference([1, 2, 3], [1, 2]) == "$: expected at least 3 elements, got 2"


def test_subset_refuses_huge_arrays() -> None:
    assert "too large" in str(subset_difference(list(range(400)), list(range(400))))


def test_json_type_and_preview() -> None:
    assert json_type(2) == ("integer", "number")
    assert json_type(2.0) == ("integer", "number")
    assert json_type(2.5) == ("number",)
    assert json_type(True) == ("boolean",)
    assert json_type(None) == ("null",)
    assert json_type(object())[0] == "object"
    assert preview(MISSING) == "nothing"
    assert preview({"a": "é"}) == '{"a":"é"}'
    assert len(preview("x" * 500)) == 80
    circular: list[Any] = []
    circular.append(circular)
    assert preview(circular).startswith("[")
    deep: Any = 1
    for _ in range(5000):
        deep = [deep]
    assert preview(deep) == "<array nested too deeply to show>"
