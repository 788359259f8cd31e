"""Freezing a tool's arguments and output on the hot path, cheaply.

The recorder keeps what a tool was called with by reference and converts it to
JSON only when the call ends. That is cheap, but a reference to a mutable
container records what the container holds at the *end* of the call: an agent
that passes its running ``state`` dict to a tool, or that edits the dict a tool
returned, would rewrite history. :func:`snapshot` closes that gap for the
containers JSON is made of: ``dict``, ``list``, ``tuple``, ``set`` and
``bytearray`` are copied, recursively, when the tool is called (arguments) and
when it returns (output).

The copy is bounded so that the hot path stays cheap whatever the agent passes:
at most ``max_items`` items per container (the rest become a :class:`Truncated`
placeholder that conversion renders as the usual marker), ``max_depth`` levels,
and ``snapshot_nodes`` items per argument or output; past that budget the
original objects are kept by reference. Other objects (dataclasses, pydantic
models, framework context objects) are always kept by reference and read at call
end: copying them is neither cheap nor always possible.

Measured cost, and the alternative of converting to JSON eagerly, are in
``BENCHMARKS.md`` (``benchmarks/sdk_overhead.py``).

Example:
    >>> from roost.capture import DEFAULT_LIMITS
    >>> state = {"cart": ["A-17"]}
    >>> frozen = snapshot(state, DEFAULT_LIMITS)
    >>> state["cart"].append("B-2")
    >>> frozen
    {'cart': ['A-17']}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from roost.capture import CaptureLimits

__all__ = ["SNAPSHOT_TYPES", "Truncated", "snapshot"]

SNAPSHOT_TYPES: Final[frozenset[type]] = frozenset({dict, list, tuple, set, bytearray})
"""Types :func:`snapshot` copies; the hot path tests ``type(x) in SNAPSHOT_TYPES``."""


class Truncated:
    """Placeholder for the items a snapshot or conversion cut from a container.

    Example:
        >>> Truncated(12, "items")
        …[truncated 12 items]
    """

    __slots__ = ("count", "unit")

    def __init__(self, count: int, unit: str) -> None:
        self.count = count
        self.unit = unit

    def __repr__(self) -> str:
        return f"…[truncated {self.count} {self.unit}]"


def snapshot(value: Any, limits: CaptureLimits) -> Any:
    """Copy the mutable containers in ``value``, within ``limits``.

    Returns ``value`` itself when there is nothing to copy (immutable values,
    other objects, ``limits.snapshot_nodes == 0``). A mapping cut at
    ``max_items`` gains the key :class:`Truncated` (the class) holding a
    :class:`Truncated` count.
    """
    budget = limits.snapshot_nodes
    if budget <= 0 or type(value) not in SNAPSHOT_TYPES:
        return value
    return _copy(value, [budget], limits.max_items, limits.max_depth)


def _copy(value: Any, budget: list[int], max_items: int, depth: int) -> Any:
    # The common case (a small flat dict or list) costs one C-level copy plus one
    # type test per item; recursion only for nested containers.
    if depth <= 0 or budget[0] <= 0:
        return value
    kind = type(value)
    size = len(value)
    if size > max_items:
        return _head(value, kind, size, budget, max_items, depth)
    budget[0] -= size
    if kind is dict:
        out = value.copy()
        for key, item in value.items():
            if type(item) in SNAPSHOT_TYPES:
                out[key] = _copy(item, budget, max_items, depth - 1)
        return out
    if kind is list or kind is tuple:
        copied: list[Any] | None = None
        for index, item in enumerate(value):
            if type(item) in SNAPSHOT_TYPES:
                if copied is None:
                    copied = list(value)
                copied[index] = _copy(item, budget, max_items, depth - 1)
        if copied is None:
            return value if kind is tuple else value.copy()
        return copied if kind is list else tuple(copied)
    if kind is set:
        return frozenset(value)  # set items are hashable, so already immutable-ish
    return bytes(value)  # bytearray


def _head(value: Any, kind: type, size: int, budget: list[int], max_items: int, depth: int) -> Any:
    budget[0] -= max_items
    cut = Truncated(size - max_items, "keys" if kind is dict else "items")
    if kind is dict:
        out: dict[Any, Any] = {}
        for index, (key, item) in enumerate(value.items()):
            if index >= max_items:
                break
            out[key] = (
                _copy(item, budget, max_items, depth - 1) if type(item) in SNAPSHOT_TYPES else item
            )
        out[Truncated] = cut
        return out
    if kind is bytearray:
        return bytes(value)
    items: list[Any] = []
    for index, item in enumerate(value):
        if index >= max_items:
            break
        items.append(
            _copy(item, budget, max_items, depth - 1) if type(item) in SNAPSHOT_TYPES else item
        )
    items.append(cut)
    return tuple(items) if kind is tuple else items
