"""The tool-call expectation spec: parsing and validation.

A digital human carries Bluejay's ``expected_tool_calls`` and, optionally,
Roost's ``tool_call_rules``. Both are read from the digital human's data::

    {
      "expected_tool_calls": [
        {"name": "lookup_order", "parameters": {"order_id": "A-17"}},
        {"name": "book_.*", "name_match": "regex", "id": "booking",
         "parameters": {"date": "2026-01-02", "party": 4, "notes": "window"},
         "match": {"date": "date", "notes": "any", "$.address.zip": {"regex": "^9\\\\d{4}$"},
                   "party": {"approx": 4, "abs": 1}},
         "parameters_match": "subset",
         "output_match": {"$.status": {"one_of": ["booked", "confirmed"]}},
         "max_duration_ms": 2000}
      ],
      "tool_call_rules": {
        "order": "strict",
        "allow_extra_calls": true,
        "no_tool_errors": true,
        "before": [["verify_identity", "booking"]],
        "tools": [{"name": "transfer_call", "forbidden": true},
                  {"name": "lookup_.*", "name_match": "regex", "max": 3, "max_duration_ms": 1500}],
        "events": [{"title": "identity_verified"},
                   {"title": "^hold", "title_match": "regex", "max": 1}]
      }
    }

**Plain Bluejay entries** (``{name, parameters?, output?}``) mean: the tool name
is equal; every key given in ``parameters`` is present in the actual call with
a JSON-equal value (extra actual keys are fine; nested objects and arrays are
compared whole); ``output``, when given, is JSON-equal to the actual output.
``null`` for ``parameters`` or ``output`` means "no expectation", because
Bluejay's own model cannot tell ``null`` from absent.

**Roost keys on an entry** (all optional):

- ``id``: a name for the entry, unique in the list, used by ``before``;
- ``name_match``: ``"exact"`` (default) or ``"regex"`` (unanchored search);
- ``parameters_match``: ``"subset"`` (default, as above), ``"exact"`` (also no
  actual keys beyond those named in ``parameters``/``match``), ``"superset"``
  (given keys may be omitted, but no other keys may appear) or ``"ignore"``
  (``parameters`` is not checked; only ``match`` entries are);
- ``match``: JSON path (relative to the arguments, see :mod:`.paths`) to a
  matcher (see :mod:`.matchers`). A matcher on a path replaces the default
  equality check of that path; a path inside a ``parameters`` key narrows the
  default check of that key to everything else;
- ``output_match``: the same for the output (``"$"`` is the whole output);
- ``max_duration_ms``: the matched call must take at most this long
  (``duration_ms``, else ``end_offset_ms - start_offset_ms``; unknown fails);
- ``judge_fallback``: ``true`` to ask the configured judge model about each
  ``parameters``/``output`` check that failed deterministically on the matched
  call (a value that is present but not equal, not matching...); the judge's
  pass turns the check into a pass and the reason says the judge decided, with
  its stated reason. A missing value is never sent to the judge. Default: the
  ``judge_fallback`` of ``tool_call_rules``. The assignment of calls to entries
  uses the deterministic scores (and ``judge`` matchers), not fallback answers.
  Fallbacks need an LLM judge: the offline semantic judge declines them
  (:mod:`roost.platform.judges.semantic`).

Model-judged values are written with the ``judge`` matcher (see
:mod:`.matchers`): ``"match": {"notes": {"judge": "asks for a window seat"}}``.
The engine never calls a model: it lists judgement requests, a driver answers
them (see :mod:`.judging`); a judged check that got no answer fails with the
reason (no judge configured, timeout...), it never passes silently.

Unknown keys on an entry are ignored, as Bluejay ignores them, but reported in
:attr:`ToolExpectations.warnings` (with a did-you-mean) so a typo is visible.

**``tool_call_rules``** (a Roost key next to ``expected_tool_calls``; every key
optional; unknown keys are errors since the object is Roost's own):

- ``order``: ``"unordered"`` (default) or ``"strict"`` (the matched calls must
  occur in the order of ``expected_tool_calls``; scored by the longest in-order
  subsequence);
- ``allow_extra_calls``: ``true`` (default); ``false`` fails on any actual call
  not matched to an expected entry (with strict order: exactly this sequence);
- ``no_tool_errors``: ``false`` (default); ``true`` fails on any actual call
  whose ``status`` is ``"error"``;
- ``before``: ``[first, then]`` pairs or ``{"first": ..., "then": ...}``
  objects; each side is an entry ``id`` or else a tool name. It holds when every
  call of ``then`` comes after some call of ``first``; when ``then`` was never
  called it holds trivially (presence is what ``expected_tool_calls`` and
  ``tools`` check);
- ``tools``: per-tool rules ``{name, name_match?, min?, max?, count?,
  forbidden?, max_duration_ms?}`` (``count`` sets min and max; ``forbidden``
  means max 0 and is reported as such);
- ``events``: business-event expectations ``{title, title_match?, min?, max?,
  count?, match?}``; without bounds an event must occur at least once;
  ``match`` applies matchers to the event object (``$.metadata.queue``...) and
  only events passing them are counted (``judge`` is not allowed there);
- ``judge_fallback``: ``false`` (default); the default for entries that do not
  set their own.

Limits, so that a spec cannot make evaluation expensive: 256 expected entries,
128 ``match``/``output_match`` entries per entry, 128 tool rules, 128 event
rules, 128 ``before`` constraints, names of at most 256 characters, 32
``judge`` matchers per spec (and at most 64 judge questions per evaluation, see
:mod:`.judging`); regex limits are in :mod:`.matchers`.

Example:
    >>> from roost.platform.evaluation.spec import ToolExpectations
    >>> spec = ToolExpectations.from_digital_human(
    ...     {"expected_tool_calls": [{"name": "lookup_order", "parameters": {"id": 7}}]})
    >>> [call.name for call in spec.calls], spec.order
    (['lookup_order'], 'unordered')
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from roost.platform.evaluation.errors import ExpectationError
from roost.platform.evaluation.judging import MAX_JUDGE_MATCHERS
from roost.platform.evaluation.matchers import (
    Equals,
    Ignore,
    Judged,
    Matcher,
    nested_quantifier,
    parse_matcher,
)
from roost.platform.evaluation.paths import (
    MISSING,
    JsonPath,
    PathSyntaxError,
    format_path,
    parse_path,
    resolve,
)
from roost.platform.evaluation.values import skip_trie

__all__ = [
    "Check",
    "EventRule",
    "ExpectedCall",
    "OrderConstraint",
    "ToolExpectations",
    "ToolRule",
    "parse_expectations",
]

MAX_EXPECTED_CALLS: Final = 256
MAX_MATCH_ENTRIES: Final = 128
MAX_RULES: Final = 128
MAX_NAME_LENGTH: Final = 256

ParametersMode = Literal["subset", "exact", "superset", "ignore"]
OrderMode = Literal["unordered", "strict"]

_ENTRY_KEYS: Final = frozenset(
    {
        "name",
        "parameters",
        "output",
        "description",
        "id",
        "name_match",
        "parameters_match",
        "match",
        "output_match",
        "max_duration_ms",
        "judge_fallback",
    }
)
_RULE_KEYS: Final = frozenset(
    {"order", "allow_extra_calls", "no_tool_errors", "before", "tools", "events", "judge_fallback"}
)
_TOOL_RULE_KEYS: Final = frozenset(
    {"name", "name_match", "min", "max", "count", "forbidden", "max_duration_ms"}
)
_EVENT_RULE_KEYS: Final = frozenset({"title", "title_match", "min", "max", "count", "match"})


@dataclass(frozen=True, slots=True)
class Check:
    """One comparison made on a matched call.

    Attributes:
        target: ``"parameters"`` or ``"output"``.
        path: Where inside the target.
        matcher: How to compare.
        optional: A missing value passes (``parameters_match: "superset"``).
    """

    target: Literal["parameters", "output"]
    path: JsonPath
    matcher: Matcher
    optional: bool = False

    @property
    def label(self) -> str:
        """``parameters.address.zip``-style name of the place checked."""
        return format_path(self.path.parts, root=self.target)


@dataclass(frozen=True, slots=True)
class ExpectedCall:
    """One parsed entry of ``expected_tool_calls``."""

    index: int
    name: str
    parameters: dict[str, Any] | None
    output: Any
    """The expected output as given, or ``MISSING``."""
    id: str | None = None
    name_pattern: re.Pattern[str] | None = None
    parameters_mode: ParametersMode = "subset"
    checks: tuple[Check, ...] = ()
    allowed_keys: frozenset[str] | None = None
    """Argument names allowed at the top level (``exact``/``superset``), else None."""
    max_duration_ms: float | None = None
    judge_fallback: bool | None = None
    """Ask a judge about failed checks; ``None``: as ``tool_call_rules`` says."""

    @property
    def label(self) -> str:
        """How verdicts refer to the entry: its id, else name and position."""
        return self.id if self.id is not None else f"{self.name} (expected #{self.index})"

    def accepts(self, name: str) -> bool:
        """Whether an actual call named ``name`` can satisfy this entry."""
        if self.name_pattern is not None:
            return self.name_pattern.search(name) is not None
        return name == self.name


@dataclass(frozen=True, slots=True)
class ToolRule:
    """One entry of ``tool_call_rules.tools``."""

    index: int
    name: str
    name_pattern: re.Pattern[str] | None
    min: int | None = None
    max: int | None = None
    forbidden: bool = False
    max_duration_ms: float | None = None

    def accepts(self, name: str) -> bool:
        """Whether the rule applies to calls named ``name``."""
        if self.name_pattern is not None:
            return self.name_pattern.search(name) is not None
        return name == self.name


@dataclass(frozen=True, slots=True)
class EventRule:
    """One entry of ``tool_call_rules.events``."""

    index: int
    title: str
    title_pattern: re.Pattern[str] | None
    min: int | None
    max: int | None
    checks: tuple[tuple[JsonPath, Matcher], ...] = ()

    def accepts(self, event: Mapping[str, Any]) -> bool:
        """Whether ``event`` counts toward this rule."""
        title = event.get("title")
        if not isinstance(title, str):
            return False
        if self.title_pattern is not None:
            if self.title_pattern.search(title) is None:
                return False
        elif title != self.title:
            return False
        return all(matcher.check(resolve(event, path)).passed for path, matcher in self.checks)


@dataclass(frozen=True, slots=True)
class OrderConstraint:
    """``first`` must happen before ``then`` (entry ids or tool names)."""

    index: int
    first: str
    then: str


@dataclass(frozen=True, slots=True)
class ToolExpectations:
    """A validated expectation spec, ready for :func:`~.engine.evaluate`.

    Build it with :meth:`from_digital_human` or :func:`parse_expectations`.
    """

    calls: tuple[ExpectedCall, ...] = ()
    order: OrderMode = "unordered"
    allow_extra_calls: bool = True
    no_tool_errors: bool = False
    before: tuple[OrderConstraint, ...] = ()
    tools: tuple[ToolRule, ...] = ()
    events: tuple[EventRule, ...] = ()
    judge_fallback: bool = False
    warnings: tuple[str, ...] = field(default=(), compare=False)

    def fallback_for(self, entry: ExpectedCall) -> bool:
        """Whether failed checks of ``entry`` go to the judge."""
        return self.judge_fallback if entry.judge_fallback is None else entry.judge_fallback

    @property
    def uses_judge(self) -> bool:
        """Whether evaluating may need a judge model (``judge`` or fallback).

        Example:
            >>> ToolExpectations.from_digital_human({"expected_tool_calls": [
            ...     {"name": "x", "parameters": {"a": "b"}, "judge_fallback": True}]}).uses_judge
            True
        """
        return any(
            self.fallback_for(entry) or any(isinstance(c.matcher, Judged) for c in entry.checks)
            for entry in self.calls
        )

    @classmethod
    def from_digital_human(cls, data: Mapping[str, Any]) -> ToolExpectations:
        """Read ``expected_tool_calls`` and ``tool_call_rules`` from a digital human.

        Args:
            data: ``DigitalHumanRequestData`` as a dict; other keys are ignored.

        Raises:
            ExpectationError: located from the digital human's data, e.g.
                ``expected_tool_calls[1].match['$.zip'].regex``.

        Example:
            >>> ToolExpectations.from_digital_human({"phone_number": "+1555"}).is_empty
            True
        """
        if not isinstance(data, Mapping):
            raise ExpectationError((), "the digital human must be an object")
        return parse_expectations(data.get("expected_tool_calls"), data.get("tool_call_rules"))

    @property
    def is_empty(self) -> bool:
        """True when nothing is expected: evaluation can only pass."""
        return not (
            self.calls
            or self.before
            or self.tools
            or self.events
            or self.order == "strict"
            or not self.allow_extra_calls
            or self.no_tool_errors
        )


def parse_expectations(expected_tool_calls: Any = None, rules: Any = None) -> ToolExpectations:
    """Validate and parse an expectation spec.

    Args:
        expected_tool_calls: Bluejay's list (``None`` for none).
        rules: Roost's ``tool_call_rules`` object (``None`` for defaults).

    Raises:
        ExpectationError: for the first problem found, with its location.

    Example:
        >>> parse_expectations([{"name": "x", "match": {"a": {"regex": "("}}}])
        Traceback (most recent call last):
        ...
        roost.platform.evaluation.errors.ExpectationError: expected_tool_calls[0].match.a.regex: \
invalid regular expression: missing ), unterminated subpattern at position 0
    """
    warnings: list[str] = []
    calls: list[ExpectedCall] = []
    if expected_tool_calls is not None:
        if not isinstance(expected_tool_calls, list):
            raise ExpectationError(("expected_tool_calls",), "must be an array or null")
        if len(expected_tool_calls) > MAX_EXPECTED_CALLS:
            raise ExpectationError(
                ("expected_tool_calls",), f"at most {MAX_EXPECTED_CALLS} entries are allowed"
            )
        for index, raw in enumerate(expected_tool_calls):
            try:
                calls.append(_parse_entry(index, raw, warnings))
            except ExpectationError as exc:
                raise exc.within("expected_tool_calls", index) from None
        judged = sum(isinstance(c.matcher, Judged) for call in calls for c in call.checks)
        if judged > MAX_JUDGE_MATCHERS:
            raise ExpectationError(
                ("expected_tool_calls",),
                f"at most {MAX_JUDGE_MATCHERS} judge matchers are allowed in one spec "
                f"(found {judged}); each one asks a model",
            )
        ids = [call.id for call in calls if call.id is not None]
        for index, call in enumerate(calls):
            if call.id is not None and ids.count(call.id) > 1:
                raise ExpectationError(
                    ("expected_tool_calls", index, "id"), f"id {call.id!r} is used twice"
                )
    if rules is None:
        return ToolExpectations(calls=tuple(calls), warnings=tuple(warnings))
    try:
        return _parse_rules(rules, tuple(calls), tuple(warnings))
    except ExpectationError as exc:
        raise exc.within("tool_call_rules") from None


# --- entries -------------------------------------------------------------------


def _name(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise ExpectationError((key,), "must be a non-empty string")
    if len(value) > MAX_NAME_LENGTH:
        raise ExpectationError((key,), f"may have at most {MAX_NAME_LENGTH} characters")
    return value


def _pattern(raw: Mapping[str, Any], key: str, mode_key: str) -> re.Pattern[str] | None:
    mode = raw.get(mode_key, "exact")
    if mode == "exact":
        return None
    if mode != "regex":
        raise ExpectationError((mode_key,), 'must be "exact" or "regex"')
    text = raw[key]
    if nested_quantifier(text):
        raise ExpectationError(
            (key,),
            "a repeated group that itself repeats without bound "
            "can take exponential time; rewrite it",
        )
    try:
        return re.compile(text)
    except re.error as exc:
        raise ExpectationError((key,), f"invalid regular expression: {exc}") from None


def _duration(raw: Mapping[str, Any]) -> float | None:
    value = raw.get("max_duration_ms")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ExpectationError(("max_duration_ms",), "must be a number")
    if value < 0:
        raise ExpectationError(("max_duration_ms",), "must be >= 0")
    return float(value)


def _unknown_key(key: Any, known: frozenset[str]) -> str:
    close = difflib.get_close_matches(str(key), sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key{hint}; allowed keys are {', '.join(sorted(known))}"


def _warn_unknown(raw: Mapping[str, Any], known: frozenset[str], where: str) -> list[str]:
    notes = []
    for key in raw:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            notes.append(f"{where}: unknown key {key!r} ignored{hint}")
    return notes


def _parse_entry(index: int, raw: Any, warnings: list[str]) -> ExpectedCall:
    if not isinstance(raw, dict):
        raise ExpectationError((), "each expected tool call must be an object")
    warnings.extend(_warn_unknown(raw, _ENTRY_KEYS, f"expected_tool_calls[{index}]"))
    name = _name(raw, "name")
    pattern = _pattern(raw, "name", "name_match")
    entry_id = raw.get("id")
    if entry_id is not None and (not isinstance(entry_id, str) or not entry_id):
        raise ExpectationError(("id",), "must be a non-empty string")
    parameters = raw.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise ExpectationError(("parameters",), "must be an object or null")
    output = raw.get("output", MISSING)
    if output is None:
        output = MISSING
    mode = raw.get("parameters_match", "subset")
    if mode not in ("subset", "exact", "superset", "ignore"):
        raise ExpectationError(
            ("parameters_match",), 'must be "subset", "exact", "superset" or "ignore"'
        )
    param_matchers = _parse_match_map(
        raw.get("match"), "match", MISSING if parameters is None else parameters
    )
    output_matchers = _parse_match_map(raw.get("output_match"), "output_match", output)
    checks = _parameter_checks(parameters or {}, mode, param_matchers)
    checks += _output_checks(output, output_matchers)
    fallback = raw.get("judge_fallback")
    if fallback is not None and not isinstance(fallback, bool):
        raise ExpectationError(("judge_fallback",), "must be true or false")
    allowed: frozenset[str] | None = None
    if mode in ("exact", "superset"):
        allowed = frozenset(parameters or {}) | {
            path.parts[0]
            for path, _ in param_matchers
            if path.parts and isinstance(path.parts[0], str)
        }
    return ExpectedCall(
        index=index,
        name=name,
        parameters=parameters,
        output=output,
        id=entry_id,
        name_pattern=pattern,
        parameters_mode=mode,
        checks=tuple(checks),
        allowed_keys=allowed,
        max_duration_ms=_duration(raw),
        judge_fallback=fallback,
    )


def _parse_match_map(raw: Any, key: str, source: Any) -> list[tuple[JsonPath, Matcher]]:
    """Parse ``match``/``output_match``; shorthands read defaults from ``source``."""
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise ExpectationError((key,), "must be an object mapping JSON paths to matchers")
    if len(raw) > MAX_MATCH_ENTRIES:
        raise ExpectationError((key,), f"at most {MAX_MATCH_ENTRIES} entries are allowed")
    parsed: list[tuple[JsonPath, Matcher]] = []
    seen: dict[tuple[str | int, ...], str] = {}
    for path_text, spec in raw.items():
        try:
            path = parse_path(path_text)
        except PathSyntaxError as exc:
            raise ExpectationError((key, path_text), f"invalid JSON path: {exc}") from None
        if path.parts in seen:
            raise ExpectationError((key, path_text), f"the same path as {seen[path.parts]!r}")
        seen[path.parts] = path_text
        default = MISSING if source is MISSING else resolve(source, path)
        try:
            parsed.append((path, parse_matcher(spec, default=default)))
        except ExpectationError as exc:
            raise exc.within(key, path_text) from None
    return parsed


def _parameter_checks(
    parameters: dict[str, Any], mode: str, matchers: list[tuple[JsonPath, Matcher]]
) -> list[Check]:
    checks: list[Check] = []
    overridden = [path for path, _ in matchers]
    if mode != "ignore" and JsonPath(()) not in overridden:
        for key, value in parameters.items():
            inner = [p.parts[1:] for p in overridden if p.parts[:1] == (key,)]
            if () in inner:
                continue  # a matcher on exactly this key replaces the default
            checks.append(
                Check(
                    "parameters",
                    JsonPath((key,)),
                    Equals(value, skip_trie(inner) or None),
                    optional=mode == "superset",
                )
            )
    checks.extend(
        Check("parameters", path, matcher)
        for path, matcher in matchers
        if not isinstance(matcher, Ignore)
    )
    return checks


def _output_checks(output: Any, matchers: list[tuple[JsonPath, Matcher]]) -> list[Check]:
    checks: list[Check] = []
    overridden = [path.parts for path, _ in matchers]
    if output is not MISSING and () not in overridden:
        checks.append(Check("output", JsonPath(()), Equals(output, skip_trie(overridden) or None)))
    checks.extend(
        Check("output", path, matcher)
        for path, matcher in matchers
        if not isinstance(matcher, Ignore)
    )
    return checks


# --- rules ---------------------------------------------------------------------


def _flag(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ExpectationError((key,), "must be true or false")
    return value


def _bounds(raw: Mapping[str, Any]) -> tuple[int | None, int | None]:
    values: dict[str, int | None] = {}
    for key in ("min", "max", "count"):
        value = raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ExpectationError((key,), "must be an integer")
        if value is not None and value < 0:
            raise ExpectationError((key,), "must be >= 0")
        values[key] = value
    low, high, count = values["min"], values["max"], values["count"]
    if count is not None:
        if low is not None or high is not None:
            raise ExpectationError(("count",), 'use either "count" or "min"/"max", not both')
        return count, count
    if low is not None and high is not None and low > high:
        raise ExpectationError(("min",), "min is greater than max")
    return low, high


def _rule_list(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ExpectationError((key,), "must be an array")
    if len(value) > MAX_RULES:
        raise ExpectationError((key,), f"at most {MAX_RULES} entries are allowed")
    return value


def _parse_rules(
    raw: Any, calls: tuple[ExpectedCall, ...], warnings: tuple[str, ...]
) -> ToolExpectations:
    if not isinstance(raw, dict):
        raise ExpectationError((), "must be an object or null")
    unknown = sorted(set(raw) - _RULE_KEYS, key=str)
    if unknown:
        raise ExpectationError((unknown[0],), _unknown_key(unknown[0], _RULE_KEYS))
    order = raw.get("order", "unordered")
    if order not in ("unordered", "strict"):
        raise ExpectationError(("order",), 'must be "unordered" or "strict"')
    return ToolExpectations(
        calls=calls,
        order=order,
        allow_extra_calls=_flag(raw, "allow_extra_calls", True),
        no_tool_errors=_flag(raw, "no_tool_errors", False),
        before=tuple(_parse_before(raw)),
        tools=tuple(_parse_tool_rules(raw)),
        events=tuple(_parse_event_rules(raw)),
        judge_fallback=_flag(raw, "judge_fallback", False),
        warnings=warnings,
    )


def _parse_before(raw: Mapping[str, Any]) -> list[OrderConstraint]:
    constraints = []
    for index, item in enumerate(_rule_list(raw, "before")):
        if isinstance(item, list) and len(item) == 2:
            first, then = item
        elif isinstance(item, dict) and set(item) == {"first", "then"}:
            first, then = item["first"], item["then"]
        else:
            raise ExpectationError(
                ("before", index), 'must be [first, then] or {"first": ..., "then": ...}'
            )
        for value in (first, then):
            if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
                raise ExpectationError(
                    ("before", index), "both sides must be entry ids or tool names (strings)"
                )
        if first == then:
            raise ExpectationError(("before", index), "a call cannot come before itself")
        constraints.append(OrderConstraint(index, first, then))
    return constraints


def _parse_tool_rules(raw: Mapping[str, Any]) -> list[ToolRule]:
    rules = []
    for index, item in enumerate(_rule_list(raw, "tools")):
        try:
            if not isinstance(item, dict):
                raise ExpectationError((), "each tool rule must be an object")
            unknown = sorted(set(item) - _TOOL_RULE_KEYS, key=str)
            if unknown:
                raise ExpectationError(
                    (unknown[0],),
                    f"unknown key; allowed keys are {', '.join(sorted(_TOOL_RULE_KEYS))}",
                )
            name = _name(item, "name")
            low, high = _bounds(item)
            forbidden = _flag(item, "forbidden", False)
            if forbidden and (low or high):
                raise ExpectationError(("forbidden",), "a forbidden tool cannot have a count")
            duration = _duration(item)
            if not forbidden and low is None and high is None and duration is None:
                raise ExpectationError(
                    (), "a tool rule needs min, max, count, forbidden or max_duration_ms"
                )
            rules.append(
                ToolRule(
                    index,
                    name,
                    _pattern(item, "name", "name_match"),
                    min=low,
                    max=high,
                    forbidden=forbidden,
                    max_duration_ms=duration,
                )
            )
        except ExpectationError as exc:
            raise exc.within("tools", index) from None
    return rules


def _parse_event_rules(raw: Mapping[str, Any]) -> list[EventRule]:
    rules = []
    for index, item in enumerate(_rule_list(raw, "events")):
        try:
            if not isinstance(item, dict):
                raise ExpectationError((), "each event rule must be an object")
            unknown = sorted(set(item) - _EVENT_RULE_KEYS, key=str)
            if unknown:
                raise ExpectationError(
                    (unknown[0],),
                    f"unknown key; allowed keys are {', '.join(sorted(_EVENT_RULE_KEYS))}",
                )
            title = _name(item, "title")
            low, high = _bounds(item)
            if low is None and high is None:
                low = 1
            checks = tuple(
                (path, matcher)
                for path, matcher in _parse_match_map(item.get("match"), "match", MISSING)
                if not isinstance(matcher, Ignore)
            )
            for path, matcher in checks:
                if isinstance(matcher, Judged):
                    raise ExpectationError(
                        ("match", str(path)),
                        "judge is not allowed in event rules (events are counted, "
                        "not judged); use a deterministic matcher",
                    )
            rules.append(
                EventRule(index, title, _pattern(item, "title", "title_match"), low, high, checks)
            )
        except ExpectationError as exc:
            raise exc.within("events", index) from None
    return rules
