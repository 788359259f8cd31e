from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.platform.evaluation.assignment import longest_increasing_run, max_weight_matching


def brute_force_best(weights: dict[tuple[int, int], int], rows: int, columns: int) -> int:
    """The best total over every partial matching, by enumeration."""
    best = 0
    column_choices = [None, *range(columns)]
    for choice in itertools.product(column_choices, repeat=rows):
        used = [c for c in choice if c is not None]
        if len(used) != len(set(used)):
            continue
        pairs = [(r, c) for r, c in enumerate(choice) if c is not None]
        if all(pair in weights for pair in pairs):
            best = max(best, sum(weights[pair] for pair in pairs))
    return best


@st.composite
def graphs(draw: st.DrawFn) -> tuple[dict[tuple[int, int], int], int, int]:
    rows = draw(st.integers(1, 5))
    columns = draw(st.integers(1, 5))
    cells = [(r, c) for r in range(rows) for c in range(columns)]
    chosen = draw(st.lists(st.sampled_from(cells), unique=True, max_size=len(cells)))
    weights = {cell: draw(st.integers(1, 50)) for cell in chosen}
    return weights, rows, columns


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_matching_is_optimal(graph: tuple[dict[tuple[int, int], int], int, int]) -> None:
    weights, rows, columns = graph
    matching = max_weight_matching(weights)
    # A valid matching: allowed pairs, each column used once.
    assert all((row, column) in weights for row, column in matching.items())
    assert len(set(matching.values())) == len(matching)
    total = sum(weights[pair] for pair in matching.items())
    assert total == brute_force_best(weights, rows, columns)


def test_matching_beats_greedy() -> None:
    # Greedy by row takes (0, 0) first and strands row 1.
    weights = {(0, 0): 5, (0, 1): 4, (1, 0): 5}
    assert max_weight_matching(weights) == {0: 1, 1: 0}


def test_matching_handles_more_rows_than_columns_and_components() -> None:
    weights = {(0, 7): 1, (1, 7): 3, (2, 7): 2, (5, 9): 1}
    assert max_weight_matching(weights) == {1: 7, 5: 9}
    assert max_weight_matching({}) == {}


def test_matching_with_big_integer_weights() -> None:
    big = 10**40
    assert max_weight_matching({(0, 0): big, (0, 1): big + 1, (1, 1): big}) == {0: 0, 1: 1}


@given(st.lists(st.integers(0, 20), max_size=30))
def test_longest_increasing_run(values: list[int]) -> None:
    run = longest_increasing_run(values)
    picked = [values[p] for p in run]
    assert run == sorted(run)
    assert all(a < b for a, b in itertools.pairwise(picked))
    # Optimal length, checked against an O(n^2) dynamic programme.
    best = [1] * len(values)
    for i, value in enumerate(values):
        for j in range(i):
            if values[j] < value:
                best[i] = max(best[i], best[j] + 1)
    assert len(run) == max(best, default=0)
