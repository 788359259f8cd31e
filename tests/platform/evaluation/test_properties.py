"""Properties of the engine that must hold for every input."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from roost.platform.evaluation import ActualToolCall, evaluate, parse_expectations
from tests.openapi import assert_valid

NAMES = st.sampled_from(["lookup", "book", "cancel", "transfer"])
KEYS = st.sampled_from(["id", "date", "party", "address", "zip", "note"])

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3)
    ),
    max_leaves=6,
)
parameters = st.dictionaries(KEYS, json_values, max_size=4)


@st.composite
def bluejay_entries(draw: st.DrawFn) -> list[dict[str, Any]]:
    entries = []
    for _ in range(draw(st.integers(0, 5))):
        entry: dict[str, Any] = {"name": draw(NAMES)}
        if draw(st.booleans()):
            entry["parameters"] = draw(parameters)
        if draw(st.booleans()):
            entry["output"] = draw(json_values)
        entries.append(entry)
    return entries


def calls_for(entries: list[dict[str, Any]]) -> list[ActualToolCall]:
    """The calls an agent that did exactly what was expected would report."""
    return [
        ActualToolCall(
            entry["name"],
            100 * (position + 1),
            parameters=entry.get("parameters"),
            output=entry.get("output"),
        )
        for position, entry in enumerate(entries)
    ]


@settings(max_examples=200, deadline=None)
@given(bluejay_entries(), st.booleans())
def test_doing_exactly_what_was_expected_passes_with_full_score(
    entries: list[dict[str, Any]], strict: bool
) -> None:
    rules = (
        {"order": "strict", "allow_extra_calls": False, "no_tool_errors": True} if strict else {}
    )
    report = evaluate(parse_expectations(entries, rules), calls_for(entries))
    assert report.passed, [v.reason for v in report.failures()]
    assert report.score == 1.0


@settings(max_examples=100, deadline=None)
@given(bluejay_entries())
def test_roost_matchers_built_from_the_values_themselves_pass(
    entries: list[dict[str, Any]],
) -> None:
    # "equals" and "subset" shorthands over every given key, "any" elsewhere.
    for entry in entries:
        given_keys = list(entry.get("parameters") or {})
        entry["match"] = {
            key: ("subset" if i % 2 else "equals") for i, key in enumerate(given_keys)
        }
        entry["match"]["$.never_there"] = "absent"
        entry["parameters_match"] = "exact"
    report = evaluate(parse_expectations(entries), calls_for(entries))
    assert report.passed, [v.reason for v in report.failures()]


@st.composite
def actual_calls(draw: st.DrawFn) -> list[ActualToolCall]:
    offsets = draw(st.lists(st.integers(0, 10_000), unique=True, max_size=6))
    return [
        ActualToolCall(
            draw(NAMES),
            offset,
            parameters=draw(st.none() | parameters),
            output=draw(json_values),
            duration_ms=draw(st.none() | st.floats(0, 5000)),
            status=draw(st.sampled_from([None, "ok", "error"])),
        )
        for offset in offsets
    ]


rule_sets = st.fixed_dictionaries(
    {},
    optional={
        "order": st.sampled_from(["strict", "unordered"]),
        "allow_extra_calls": st.booleans(),
        "no_tool_errors": st.booleans(),
        "before": st.lists(
            st.tuples(NAMES, NAMES).filter(lambda p: p[0] != p[1]).map(list), max_size=2
        ),
        "tools": st.lists(
            st.fixed_dictionaries(
                {"name": NAMES},
                optional={"max": st.integers(0, 3), "max_duration_ms": st.floats(0, 5000)},
            ).filter(lambda rule: len(rule) > 1),
            max_size=3,
        ),
        "events": st.lists(
            st.fixed_dictionaries({"title": st.sampled_from(["hold", "escalation"])}), max_size=2
        ),
    },
)
events = st.lists(
    st.fixed_dictionaries(
        {
            "title": st.sampled_from(["hold", "escalation", "other"]),
            "start_offset_ms": st.integers(0),
        }
    ),
    max_size=3,
)


@settings(max_examples=100, deadline=None)
@given(bluejay_entries(), actual_calls(), rule_sets, events)
def test_scores_stay_in_range_and_agree_with_passed(
    entries: list[dict[str, Any]],
    calls: list[ActualToolCall],
    rules: dict[str, Any],
    happened: list[dict[str, Any]],
) -> None:
    report = evaluate(parse_expectations(entries, rules), calls, happened)
    assert 0.0 <= report.score <= 1.0
    assert all(0.0 <= v.score <= 1.0 for v in report.verdicts)
    assert all(v.score == 1.0 for v in report.verdicts if v.passed)
    assert all(v.score < 1.0 for v in report.verdicts if not v.passed)
    assert report.passed == (report.score == 1.0)
    # Every call appears in exactly one group, every entry too.
    assert sorted(item["index"] for g in report.groups for item in g["actual"]) == list(
        range(len(calls))
    )
    assert sum(len(g["expected"]) for g in report.groups) == len(entries)
    for group in report.groups:
        assert_valid("ToolCallComparisonGroup", group)


@settings(max_examples=100, deadline=None)
@given(bluejay_entries(), actual_calls(), rule_sets, st.randoms(use_true_random=False))
def test_input_order_of_calls_does_not_matter(
    entries: list[dict[str, Any]],
    calls: list[ActualToolCall],
    rules: dict[str, Any],
    random: Any,
) -> None:
    spec = parse_expectations(entries, rules)
    shuffled = list(calls)
    random.shuffle(shuffled)
    first, second = evaluate(spec, calls), evaluate(spec, shuffled)
    assert (first.passed, first.score) == (second.passed, second.score)
    assert [v.reason for v in first.verdicts] == [v.reason for v in second.verdicts]


@st.composite
def rich_entries(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Entries using Roost matchers, modes and budgets."""
    matchers = st.sampled_from(
        [
            "any",
            "absent",
            "ignore",
            {"type": "string"},
            {"regex": "^a"},
            {"approx": 1, "abs": 1},
            {"one_of": [1, "a", None]},
            {"text": "A  b"},
            {"contains": "a"},
            {"subset": {"x": 1}},
        ]
    )
    entries = draw(bluejay_entries())
    for entry in entries:
        entry["match"] = draw(st.dictionaries(KEYS, matchers, max_size=3))
        entry["parameters_match"] = draw(st.sampled_from(["subset", "exact", "superset", "ignore"]))
        if draw(st.booleans()):
            entry["max_duration_ms"] = draw(st.floats(0, 5000))
    return entries


@settings(max_examples=150, deadline=None)
@given(rich_entries(), actual_calls())
def test_fast_scoring_agrees_with_explained_scoring(
    entries: list[dict[str, Any]], calls: list[ActualToolCall]
) -> None:
    # Candidate pairings are scored without reasons; the chosen ones are then
    # judged again with reasons. Both must count the same checks the same way.
    from roost.platform.evaluation.engine import NO_JUDGEMENT, _Evaluation

    spec = parse_expectations(entries)
    run = _Evaluation(spec, calls, [], {}, NO_JUDGEMENT)
    for expected in spec.calls:
        for actual in calls:
            judged = run._judge_pair(expected, actual)
            assert run._count_passing(expected, actual) == (judged.passed, judged.total)
    report = evaluate(spec, calls)
    assert 0.0 <= report.score <= 1.0
