"""Optimal assignment of actual calls to expected ones, and in-order scoring.

Greedy first-fit matching gives wrong answers as soon as two expectations can
be satisfied by the same call: expecting ``lookup(id=1)`` and ``lookup(id=1,
region="eu")`` against calls ``lookup(id=1, region="eu")`` then
``lookup(id=1, region="us")`` pairs the loose expectation with the first call
and leaves the strict one half-satisfied, though a perfect pairing exists. So
the engine solves the assignment problem exactly with the Hungarian method
(Kuhn-Munkres with potentials, O(n²m)), run separately on each connected
component of the "could match" graph, which keeps the matrices as small as the
number of calls of one tool.

Weights are integers so that ties are broken exactly and deterministically;
:mod:`.engine` builds them so that a higher total score always wins, then more
matched pairs, then pairs whose positions cross least (so identical
expectations pair with calls in order, which the order check relies on).

No library in the standard library solves assignment; scipy's
``linear_sum_assignment`` would, but the engine must stay dependency-free and
the sizes are tiny.

Example:
    >>> from roost.platform.evaluation.assignment import max_weight_matching
    >>> max_weight_matching({(0, 0): 1, (0, 1): 2, (1, 1): 2})
    {0: 0, 1: 1}
    >>> longest_increasing_run([0, 2, 1, 3])
    [0, 2, 3]
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence

__all__ = ["longest_increasing_run", "max_weight_matching"]


def max_weight_matching(weights: Mapping[tuple[int, int], int]) -> dict[int, int]:
    """A maximum-weight matching of a bipartite graph.

    Args:
        weights: ``(row, column) -> weight`` for every allowed pair; weights
            must be positive. Pairs not listed are not allowed.

    Returns:
        ``row -> column`` for the matched pairs.
    """
    parent: dict[tuple[str, int], tuple[str, int]] = {}

    def find(node: tuple[str, int]) -> tuple[str, int]:
        root = node
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    for row, column in weights:
        parent[find(("r", row))] = find(("c", column))
    components: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for pair in weights:
        components.setdefault(find(("r", pair[0])), []).append(pair)
    matching: dict[int, int] = {}
    for pairs in components.values():
        matching.update(_solve_component({pair: weights[pair] for pair in pairs}))
    return matching


def _solve_component(weights: Mapping[tuple[int, int], int]) -> dict[int, int]:
    rows = sorted({row for row, _ in weights})
    columns = sorted({column for _, column in weights})
    transpose = len(rows) > len(columns)
    if transpose:
        rows, columns = columns, rows
        weights = {(column, row): weight for (row, column), weight in weights.items()}
    # Some optimal matching uses only each row's len(rows) best columns: a row
    # matched elsewhere can always move to one of them that no other row uses
    # without losing weight. Dropping the rest keeps the matrix near-square
    # when many calls compete for few expectations.
    by_row: dict[int, list[tuple[int, int]]] = {}
    for (row, column), weight in weights.items():
        by_row.setdefault(row, []).append((-weight, column))
    keep: set[int] = set()
    for options in by_row.values():
        options.sort()
        keep.update(column for _, column in options[: len(rows)])
    columns = [column for column in columns if column in keep]
    # Minimise cost = -weight; disallowed pairs cost 0, the same as leaving
    # the row unmatched, so a full assignment of rows is a best partial one.
    cost = [[-weights.get((row, column), 0) for column in columns] for row in rows]
    assigned = _hungarian(cost)
    result: dict[int, int] = {}
    for row_index, column_index in enumerate(assigned):
        row, column = rows[row_index], columns[column_index]
        if (row, column) in weights:
            if transpose:
                result[column] = row
            else:
                result[row] = column
    return result


def _hungarian(cost: Sequence[Sequence[int]]) -> list[int]:
    """Column assigned to each row, minimising total cost (rows <= columns).

    The shortest-augmenting-path form with row and column potentials: each
    row is added in turn and an alternating path is grown along zero reduced
    cost edges, adjusting potentials by the smallest slack, until a free
    column is reached.
    """
    n, m = len(cost), len(cost[0])
    infinity = float("inf")
    u = [0] * (n + 1)  # row potentials (1-based; 0 is a sentinel)
    v = [0] * (m + 1)  # column potentials
    owner = [0] * (m + 1)  # owner[j]: row matched to column j (0 = free)
    way = [0] * (m + 1)  # previous column on the alternating path
    for row in range(1, n + 1):
        owner[0] = row
        column = 0
        slack: list[float] = [infinity] * (m + 1)
        used = [False] * (m + 1)
        while True:
            used[column] = True
            current_row = owner[column]
            delta = infinity
            next_column = 0
            for j in range(1, m + 1):
                if used[j]:
                    continue
                reduced = cost[current_row - 1][j - 1] - u[current_row] - v[j]
                if reduced < slack[j]:
                    slack[j] = reduced
                    way[j] = column
                if slack[j] < delta:
                    delta = slack[j]
                    next_column = j
            step = int(delta)
            for j in range(m + 1):
                if used[j]:
                    u[owner[j]] += step
                    v[j] -= step
                else:
                    slack[j] -= step
            column = next_column
            if owner[column] == 0:
                break
        while column:  # flip the alternating path
            previous = way[column]
            owner[column] = owner[previous]
            column = previous
    assignment = [0] * n
    for j in range(1, m + 1):
        if owner[j]:
            assignment[owner[j] - 1] = j - 1
    return assignment


def longest_increasing_run(values: Sequence[int]) -> list[int]:
    """Positions of a longest strictly increasing subsequence of ``values``.

    Used as the order score: ``values`` are the expected positions of the
    matched calls, read in the order the calls happened; the calls outside the
    returned positions are the ones out of order.
    """
    tails: list[int] = []  # tails[k]: smallest last value of a run of length k+1
    tail_at: list[int] = []  # position of that value
    previous = [-1] * len(values)
    for position, value in enumerate(values):
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_at.append(position)
        else:
            tails[k] = value
            tail_at[k] = position
        previous[position] = tail_at[k - 1] if k else -1
    run: list[int] = []
    position = tail_at[-1] if tail_at else -1
    while position != -1:
        run.append(position)
        position = previous[position]
    return run[::-1]
