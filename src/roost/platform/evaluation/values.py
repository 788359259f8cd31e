"""JSON value semantics shared by the matchers: equality, containment, previews.

Tool arguments arrive as decoded JSON, so Python's ``==`` is close to right but
not quite: ``True == 1`` in Python while ``true`` and ``1`` differ in JSON, and
tuples may appear where arrays were meant. These helpers compare as JSON does,
and report *where* two values first differ so a verdict can point at it.

Example:
    >>> from roost.platform.evaluation.values import json_equal, first_difference
    >>> json_equal({"n": 1}, {"n": 1.0}), json_equal(True, 1)
    (True, False)
    >>> first_difference({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}})
    (('a', 'c'), 2, 3)
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, Final

from roost.platform.evaluation.paths import MISSING

__all__ = [
    "SkipTrie",
    "first_difference",
    "json_equal",
    "json_type",
    "preview",
    "skip_trie",
    "subset_difference",
]

PREVIEW_LENGTH: Final = 80
MAX_SUBSET_PAIRS: Final = 100_000
"""Most element pairs a ``subset`` comparison of two arrays will try."""

SkipTrie = dict[str | int, "SkipTrie | None"]
"""Places to leave out of an equality check: ``None`` skips a whole subtree."""


def json_equal(a: Any, b: Any) -> bool:
    """Equality with JSON semantics (booleans are not numbers; ``1 == 1.0``)."""
    return first_difference(a, b) is None


def json_type(value: Any) -> tuple[str, ...]:
    """JSON Schema type names of ``value``, most specific first."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("boolean",)
    if isinstance(value, int):
        return ("integer", "number")
    if isinstance(value, float):
        return ("integer", "number") if value.is_integer() else ("number",)
    if isinstance(value, str):
        return ("string",)
    if isinstance(value, dict):
        return ("object",)
    if isinstance(value, (list, tuple)):
        return ("array",)
    return (type(value).__name__,)


def preview(value: Any, limit: int = PREVIEW_LENGTH) -> str:
    """Compact JSON text of ``value`` for a reason, cut at ``limit`` characters."""
    if value is MISSING:
        return "nothing"
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    except (TypeError, ValueError):  # circular structures
        text = repr(value)
    except RecursionError:
        text = f"<{json_type(value)[0]} nested too deeply to show>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def skip_trie(paths: Iterable[tuple[str | int, ...]]) -> SkipTrie:
    """Build the structure :func:`first_difference` uses to leave paths out."""
    root: SkipTrie = {}
    for parts in paths:
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            child = node.get(part, {})
            if child is None:  # an ancestor is already skipped entirely
                break
            node[part] = child
            node = child
        else:
            node[parts[-1]] = None
    return root


def _is_array(value: Any) -> bool:
    return isinstance(value, (list, tuple))


def first_difference(
    expected: Any,
    actual: Any,
    skip: SkipTrie | None = None,
    where: tuple[str | int, ...] = (),
) -> tuple[tuple[str | int, ...], Any, Any] | None:
    """Where ``actual`` first differs from ``expected``, or ``None`` when equal.

    Args:
        expected: The reference value.
        actual: The value to compare.
        skip: Paths to leave out (see :func:`skip_trie`).
        where: Prefix for the returned path.

    Returns:
        ``(path, expected_part, actual_part)``; a side lacking a key shows
        :data:`~roost.platform.evaluation.paths.MISSING`.
    """
    skip = skip or {}
    if isinstance(expected, dict) and isinstance(actual, dict):
        for key in [*expected, *(k for k in actual if k not in expected)]:
            if key in skip and skip[key] is None:
                continue
            here = (*where, key)
            if key not in actual:
                return here, expected[key], MISSING
            if key not in expected:
                return here, MISSING, actual[key]
            found = first_difference(expected[key], actual[key], skip.get(key), here)
            if found is not None:
                return found
        return None
    if _is_array(expected) and _is_array(actual):
        size = len(expected)
        normalised = {(k + size if isinstance(k, int) and k < 0 else k): v for k, v in skip.items()}
        for index in range(max(size, len(actual))):
            if index in normalised and normalised[index] is None:
                continue
            here = (*where, index)
            if index >= len(actual):
                return here, expected[index], MISSING
            if index >= size:
                return here, MISSING, actual[index]
            found = first_difference(expected[index], actual[index], normalised.get(index), here)
            if found is not None:
                return found
        return None
    if _scalar_equal(expected, actual):
        return None
    return where, expected, actual


def _scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    if a is None or b is None:
        return a is None and b is None
    # Containers of different kinds (object vs array) or foreign types.
    return False


def subset_difference(expected: Any, actual: Any, where: str = "$") -> str | None:
    """Why ``expected`` is not contained in ``actual``, or ``None`` when it is.

    Objects: every expected key is present and its value contained. Arrays:
    every expected element is contained in a *distinct* actual element, in any
    order (a maximum bipartite matching, so the answer does not depend on which
    element is tried first). Scalars: JSON-equal.

    Example:
        >>> subset_difference({"a": 1}, {"a": 1, "b": 2}) is None
        True
        >>> subset_difference([{"sku": "A"}], [{"sku": "B", "qty": 1}])
        '$: no element matches [0] {"sku":"A"}'
    """
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where}: expected an object, got {json_type(actual)[0]}"
        for key, value in expected.items():
            here = f"{where}.{key}"
            if key not in actual:
                return f"{here}: missing"
            problem = subset_difference(value, actual[key], here)
            if problem is not None:
                return problem
        return None
    if _is_array(expected):
        if not _is_array(actual):
            return f"{where}: expected an array, got {json_type(actual)[0]}"
        return _array_subset(list(expected), list(actual), where)
    if first_difference(expected, actual) is None:
        return None
    return f"{where}: expected {preview(expected)}, got {preview(actual)}"


def _array_subset(expected: list[Any], actual: list[Any], where: str) -> str | None:
    if len(expected) > len(actual):
        return f"{where}: expected at least {len(expected)} elements, got {len(actual)}"
    if len(expected) * len(actual) > MAX_SUBSET_PAIRS:
        return f"{where}: arrays too large to compare as subsets"
    fits = [
        [j for j, candidate in enumerate(actual) if subset_difference(item, candidate) is None]
        for item in expected
    ]
    owner: dict[int, int] = {}  # actual index -> expected index

    def augment(i: int, seen: set[int]) -> bool:
        # Kuhn's augmenting path: take a free candidate, or evict its owner
        # if the owner can move elsewhere.
        for j in fits[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or augment(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        if not augment(i, set()):
            return f"{where}: no element matches [{i}] {preview(expected[i])}"
    return None
