from __future__ import annotations

import doctest
from dataclasses import dataclass, field

import roost.snapshot
from roost.capture import DEFAULT_LIMITS, CaptureLimits, to_jsonable
from roost.snapshot import Truncated, snapshot


def test_doctests() -> None:
    assert doctest.testmod(roost.snapshot).failed == 0


def test_nested_containers_are_copied() -> None:
    value = {"cart": [{"sku": "A", "qty": 1}], "tags": {"x"}, "raw": bytearray(b"ab")}
    frozen = snapshot(value, DEFAULT_LIMITS)
    value["cart"][0]["qty"] = 99
    value["cart"].append({"sku": "B"})
    value["tags"].add("y")
    value["raw"] += b"c"
    value["new"] = 1
    assert frozen == {"cart": [{"sku": "A", "qty": 1}], "tags": frozenset({"x"}), "raw": b"ab"}


def test_immutable_values_and_objects_are_kept_by_reference() -> None:
    @dataclass
    class Order:
        items: list[int] = field(default_factory=list)

    order = Order()
    assert snapshot(order, DEFAULT_LIMITS) is order
    flat = (1, "a", None)
    assert snapshot(flat, DEFAULT_LIMITS) is flat
    assert snapshot("text", DEFAULT_LIMITS) == "text"


def test_a_tuple_holding_a_list_is_copied() -> None:
    inner = [1]
    frozen = snapshot((inner, 2), DEFAULT_LIMITS)
    inner.append(2)
    assert frozen == ([1], 2)
    assert isinstance(frozen, tuple)


def test_long_containers_keep_their_head_and_a_placeholder() -> None:
    limits = CaptureLimits(max_items=3)
    frozen = snapshot(list(range(10)), limits)
    assert frozen[:3] == [0, 1, 2]
    assert isinstance(frozen[3], Truncated)
    assert frozen[3].count == 7
    mapping = snapshot({f"k{i}": i for i in range(5)}, limits)
    assert list(mapping)[:3] == ["k0", "k1", "k2"]
    assert mapping[Truncated].count == 2
    # Conversion renders both placeholders as the usual visible markers.
    assert to_jsonable(frozen, limits=limits) == [0, 1, 2, "…[truncated 7 items]"]
    assert to_jsonable(mapping, limits=limits) == {
        "k0": 0,
        "k1": 1,
        "k2": 2,
        "…": "[truncated 2 keys]",
    }


def test_budget_and_depth_bound_the_copy() -> None:
    deep: list[object] = [0]
    node = deep
    for _ in range(50):
        child: list[object] = [0]
        node.append(child)
        node = child
    frozen = snapshot(deep, CaptureLimits(max_depth=4))
    # Four levels are copies; below that the original lists are referenced.
    assert frozen is not deep
    level = frozen
    for _ in range(3):
        level = level[1]  # type: ignore[assignment]
    assert level[1] is deep[1][1][1][1]  # type: ignore[index]

    # The budget is spent outermost first: the list itself is copied, its
    # items (past the budget) are referenced.
    big = [[i] for i in range(100)]
    frozen_big = snapshot(big, CaptureLimits(snapshot_nodes=10))
    assert frozen_big is not big
    assert frozen_big[0] is big[0]
    small = [[i] for i in range(3)]
    frozen_small = snapshot(small, CaptureLimits(snapshot_nodes=10))
    assert frozen_small == small and frozen_small[0] is not small[0]


def test_zero_budget_keeps_references() -> None:
    value = {"a": [1]}
    assert snapshot(value, CaptureLimits(snapshot_nodes=0)) is value


def test_long_sets_and_bytearrays() -> None:
    limits = CaptureLimits(max_items=2)
    frozen = snapshot({1, 2, 3, 4}, limits)
    assert len(frozen) == 3 and isinstance(frozen[-1], Truncated)
    assert snapshot(bytearray(b"xyz"), limits) == b"xyz"
    assert repr(Truncated(3, "keys")) == "…[truncated 3 keys]"
