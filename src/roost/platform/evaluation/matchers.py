"""Value matchers: how one expected value is compared with one actual value.

A matcher is written in a spec either as a string shorthand or as an object
with exactly one operator key plus that operator's options:

===============  ==========================================  ==========================
operator         passes when the actual value...             options
===============  ==========================================  ==========================
``equals``       is JSON-equal (``1 == 1.0``, ``true != 1``,  (alias ``exact``)
                 objects by keys, arrays in order)
``subset``       contains the given value: every given key    -
                 present and itself a subset, every given
                 array element matched by a distinct actual
                 element (any order), scalars equal
``superset``     is contained in the given value (the         -
                 reverse of ``subset``)
``regex``        is a string (numbers are matched as their    ``flags``: letters of
                 JSON text) in which the pattern is found     ``imsx``
                 (unanchored, like JSON Schema ``pattern``;
                 write ``^...$`` to anchor)
``approx``       is a number (or numeric string) within       ``abs`` (default 0),
                 ``max(abs, rel * |expected|)`` of the value   ``rel`` (default 1e-9)
``range``        is a number (or numeric string) within       -
                 ``{"min": a, "max": b}`` (inclusive, either
                 bound optional)
``one_of``       equals one of the listed values              ``ignore_case``
``text``         is a string equal after case folding and     ``ignore_case`` (true),
                 collapsing runs of whitespace                ``normalize_whitespace``
                                                              (true)
``similar``      is a string whose similarity to the given    ``min_ratio`` (0.8),
                 one (difflib ratio of the case-folded,       ``ignore_case`` (true)
                 whitespace-collapsed texts, 0..1) is at
                 least ``min_ratio``; for paraphrase-tolerant
                 free text such as a summary or an SMS body
``contains``     is a string containing the given string, or  ``ignore_case`` (strings)
                 an array with an element equal to the value
``datetime``     is an ISO 8601 date or date-time denoting    ``tolerance_s`` (0),
                 the same instant (``Z``, offsets, date-only  ``timezone`` for naive
                 and compact forms all accepted)              values (``"UTC"`` or
                                                              ``"+HH:MM"``)
``date``         is an ISO date or date-time on the same      -
                 calendar date, as written
``time``         is an ISO time (or date-time) with the same  ``tolerance_s`` (0)
                 wall-clock time (``14:30`` == ``14:30:00``)
``type``         has the JSON type (``string``, ``number``,   -
                 ``integer``, ``boolean``, ``object``,
                 ``array``, ``null``) or one of a list
``any``          is present, whatever its value (even null)   -
``absent``       is not present                               -
``ignore``       always; the place is not checked at all      -
``judge``        satisfies the criterion (a sentence) in the  ``expected``, ``threshold``
                 opinion of the configured judge model; see   (0..1)
                 below
===============  ==========================================  ==========================

``judge`` is the one matcher the pure engine cannot decide alone: ``{"judge":
"the date the caller asked for, in any format", "threshold": 0.8}``. The
criterion says in words what the value must be; ``expected`` (default: the
value at the same path in ``parameters``/``output``, else none) is what it is
compared with; ``threshold`` is the score the judge must give for a pass
(default: the judge's own verdict). The engine emits a judgement request and a
driver asks the configured judge (:mod:`roost.platform.evaluation.judging`); a
check no judge answered fails and says why. The string shorthand ``"judge"``
means "has the same meaning as the expected value". ``judge`` is not allowed in
event rules.

String shorthands: ``"any"``, ``"absent"`` and ``"ignore"`` stand for themselves;
any other operator name as a string (``"datetime"``, ``"text"``, ``"regex"``...)
takes its expected value from the same path in the entry's ``parameters`` (or
``output``), so ``{"parameters": {"date": "2026-01-02"}, "match": {"date":
"date"}}`` compares ``date`` as a calendar date.

Regular expressions are compiled when the spec is parsed. Python's ``re`` has no
time limit, so patterns with a repeated group that itself repeats without bound
(``(a+)+``, ``(\\w*)*``, the classic catastrophic-backtracking shape) are refused,
patterns are limited to 1,000 characters and subjects to 20,000 characters.
This is a heuristic: it does not catch every slow pattern (overlapping
alternatives such as ``(a|ab)*`` pass), so the spec author, an authenticated
user of the organisation, still owns pattern cost.

Example:
    >>> from roost.platform.evaluation.matchers import parse_matcher
    >>> zip_code = parse_matcher({"regex": "^9\\\\d{4}$"})
    >>> zip_code.check("94107").passed, zip_code.check(94107).passed
    (True, True)
    >>> parse_matcher({"approx": 10.0, "abs": 0.5}).check(10.4).passed
    True
    >>> parse_matcher("datetime", default="2026-01-02T10:00:00Z").check(
    ...     "2026-01-02T12:00:00+02:00").passed
    True
"""

from __future__ import annotations

import difflib
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone
from typing import Any, ClassVar, Final

from roost.platform.evaluation.errors import ExpectationError
from roost.platform.evaluation.judging import MAX_JUDGE_TEXT
from roost.platform.evaluation.paths import MISSING, format_path
from roost.platform.evaluation.values import (
    SkipTrie,
    first_difference,
    json_equal,
    json_type,
    preview,
    subset_difference,
)

__all__ = ["OPERATORS", "Judged", "Matcher", "Outcome", "parse_matcher", "reference_value"]

MAX_PATTERN_LENGTH: Final = 1000
MAX_REGEX_SUBJECT: Final = 20_000
MAX_SIMILAR_SUBJECT: Final = 2_000
_FLAG_BITS: Final = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_JSON_TYPES: Final = ("string", "number", "integer", "boolean", "object", "array", "null")


@dataclass(frozen=True, slots=True)
class Outcome:
    """Result of one comparison: whether it passed and a one-line reason."""

    passed: bool
    reason: str


_OK: Final = Outcome(True, "ok")


class Matcher(ABC):
    """One comparison of an actual value (or :data:`MISSING`) with an expectation."""

    op: ClassVar[str]
    options: ClassVar[frozenset[str]] = frozenset()

    @abstractmethod
    def check(self, value: Any) -> Outcome:
        """Compare ``value`` (``MISSING`` when the path leads nowhere)."""

    def test(self, value: Any) -> bool:
        """Whether ``value`` passes, without building a reason (the fast path
        used while scoring every candidate pairing)."""
        return self.check(value).passed

    @abstractmethod
    def describe(self) -> str:
        """Short human description used in reasons, e.g. ``regex '^9\\d{4}$'``."""

    def _missing(self) -> Outcome:
        return Outcome(False, f"missing; expected {self.describe()}")


# --- presence ----------------------------------------------------------------


class AnyValue(Matcher):
    op = "any"

    def check(self, value: Any) -> Outcome:
        return self._missing() if value is MISSING else _OK

    def describe(self) -> str:
        return "any value"


class Absent(Matcher):
    op = "absent"

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return _OK
        return Outcome(False, f"expected absent, got {preview(value)}")

    def describe(self) -> str:
        return "absent"


class Ignore(Matcher):
    op = "ignore"

    def check(self, value: Any) -> Outcome:
        return _OK

    def describe(self) -> str:
        return "ignored"


# --- structural --------------------------------------------------------------


class Equals(Matcher):
    op = "equals"

    def __init__(self, expected: Any, skip: SkipTrie | None = None) -> None:
        self.expected = expected
        self.skip = skip
        """Places inside the value that other matchers check instead."""

    def test(self, value: Any) -> bool:
        return value is not MISSING and first_difference(self.expected, value, self.skip) is None

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        found = first_difference(self.expected, value, self.skip)
        if found is None:
            return _OK
        where, expected, actual = found
        if not where:
            return Outcome(False, f"expected {preview(expected)}, got {preview(actual)}")
        return Outcome(
            False, f"at {format_path(where)}: expected {preview(expected)}, got {preview(actual)}"
        )

    def describe(self) -> str:
        return f"equal to {preview(self.expected)}"


class Subset(Matcher):
    op = "subset"

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def test(self, value: Any) -> bool:
        return value is not MISSING and subset_difference(self.expected, value) is None

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        problem = subset_difference(self.expected, value)
        return _OK if problem is None else Outcome(False, problem)

    def describe(self) -> str:
        return f"containing {preview(self.expected)}"


class Superset(Matcher):
    op = "superset"

    def __init__(self, expected: Any) -> None:
        self.expected = expected

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        problem = subset_difference(value, self.expected)
        if problem is None:
            return _OK
        return Outcome(False, f"{preview(value)} is not within {preview(self.expected)}")

    def describe(self) -> str:
        return f"within {preview(self.expected)}"


class TypeIs(Matcher):
    op = "type"

    def __init__(self, types: tuple[str, ...]) -> None:
        self.types = types

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        kinds = json_type(value)
        if any(kind in self.types for kind in kinds):
            return _OK
        return Outcome(False, f"expected type {' or '.join(self.types)}, got {kinds[0]}")

    def describe(self) -> str:
        return f"of type {' or '.join(self.types)}"


# --- strings -----------------------------------------------------------------


class Regex(Matcher):
    op = "regex"
    options = frozenset({"flags"})

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            subject = repr(value) if isinstance(value, float) else str(value)
        elif isinstance(value, str):
            subject = value
        else:
            return Outcome(
                False,
                f"expected a string matching /{self.pattern.pattern}/, got {json_type(value)[0]}",
            )
        if len(subject) > MAX_REGEX_SUBJECT:
            return Outcome(
                False,
                f"string of {len(subject)} characters is longer than the "
                f"{MAX_REGEX_SUBJECT} a regex is applied to",
            )
        if self.pattern.search(subject):
            return _OK
        return Outcome(False, f"{preview(value)} does not match /{self.pattern.pattern}/")

    def describe(self) -> str:
        return f"matching /{self.pattern.pattern}/"


def _fold(text: str, ignore_case: bool, normalize_whitespace: bool) -> str:
    if normalize_whitespace:
        text = " ".join(text.split())
    return text.casefold() if ignore_case else text


class Text(Matcher):
    op = "text"
    options = frozenset({"ignore_case", "normalize_whitespace"})

    def __init__(self, expected: str, ignore_case: bool, normalize_whitespace: bool) -> None:
        self.expected = expected
        self.ignore_case = ignore_case
        self.normalize_whitespace = normalize_whitespace

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        if not isinstance(value, str):
            return Outcome(False, f"expected a string, got {json_type(value)[0]}")
        if _fold(value, self.ignore_case, self.normalize_whitespace) == _fold(
            self.expected, self.ignore_case, self.normalize_whitespace
        ):
            return _OK
        return Outcome(False, f"expected text {preview(self.expected)}, got {preview(value)}")

    def describe(self) -> str:
        return f"text {preview(self.expected)}"


class Similar(Matcher):
    op = "similar"
    options = frozenset({"min_ratio", "ignore_case"})

    def __init__(self, expected: str, min_ratio: float, ignore_case: bool) -> None:
        self.expected = expected
        self.min_ratio = min_ratio
        self.ignore_case = ignore_case
        self._folded = _fold(expected, ignore_case, True)

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        if not isinstance(value, str):
            return Outcome(False, f"expected a string, got {json_type(value)[0]}")
        if len(value) > MAX_SIMILAR_SUBJECT:
            # SequenceMatcher is quadratic in the worst case: refuse rather than stall.
            return Outcome(
                False, f"text of {len(value)} characters is over {MAX_SIMILAR_SUBJECT} to compare"
            )
        matcher = difflib.SequenceMatcher(None, _fold(value, self.ignore_case, True), self._folded)
        ratio = matcher.ratio()
        if ratio >= self.min_ratio:
            return _OK
        return Outcome(
            False,
            f"{preview(value)} is {ratio:.2f} similar to {preview(self.expected)}, "
            f"below {self.min_ratio:g}",
        )

    def describe(self) -> str:
        return f"text similar to {preview(self.expected)} (ratio >= {self.min_ratio:g})"


class Contains(Matcher):
    op = "contains"
    options = frozenset({"ignore_case"})

    def __init__(self, expected: Any, ignore_case: bool) -> None:
        self.expected = expected
        self.ignore_case = ignore_case

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        if isinstance(self.expected, str) and isinstance(value, str):
            needle, haystack = self.expected, value
            if self.ignore_case:
                needle, haystack = needle.casefold(), haystack.casefold()
            if needle in haystack:
                return _OK
        elif isinstance(value, list):
            if any(json_equal(self.expected, item) for item in value):
                return _OK
        else:
            return Outcome(False, f"expected a string or an array, got {json_type(value)[0]}")
        return Outcome(False, f"{preview(value)} does not contain {preview(self.expected)}")

    def describe(self) -> str:
        return f"containing {preview(self.expected)}"


class OneOf(Matcher):
    op = "one_of"
    options = frozenset({"ignore_case"})

    def __init__(self, choices: list[Any], ignore_case: bool) -> None:
        self.choices = choices
        self.ignore_case = ignore_case

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        for choice in self.choices:
            if json_equal(choice, value):
                return _OK
            if (
                self.ignore_case
                and isinstance(choice, str)
                and isinstance(value, str)
                and choice.casefold() == value.casefold()
            ):
                return _OK
        return Outcome(False, f"{preview(value)} is not one of {preview(self.choices)}")

    def describe(self) -> str:
        return f"one of {preview(self.choices)}"


# --- model-judged ----------------------------------------------------------------

DEFAULT_JUDGE_CRITERION: Final = "has the same meaning as the expected value"


class Judged(Matcher):
    """A value a judge model decides on; the engine asks, this only records what.

    :meth:`check` alone cannot decide and fails; :mod:`.engine` turns the
    check into a judgement request and reads the answer it is given.
    """

    op = "judge"
    options = frozenset({"expected", "threshold"})

    def __init__(self, criterion: str, expected: Any, threshold: float | None) -> None:
        self.criterion = criterion
        self.expected = expected
        """The reference value, or ``None`` when the criterion says it all."""
        self.threshold = threshold

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        return Outcome(False, "not judged: needs a judge model")

    def describe(self) -> str:
        return f"judged: {preview(self.criterion)}"


def reference_value(matcher: Matcher) -> Any:
    """The expected value a deterministic matcher compares with, for a judge.

    ``None`` when the matcher has no single reference value (``regex``,
    ``type``, ``range``...): the judge then has only the criterion.

    Example:
        >>> reference_value(parse_matcher({"date": "2026-01-02"}))
        '2026-01-02'
    """
    if isinstance(matcher, (Equals, Subset, Superset, Text, Similar, Contains, Approx)):
        return matcher.expected
    if isinstance(matcher, (DateTime, Date, TimeOfDay)):
        return matcher.text
    if isinstance(matcher, OneOf):
        return matcher.choices
    return None


# --- numbers -----------------------------------------------------------------


def _as_number(value: Any) -> float | None:
    """A finite number from a JSON number or a numeric string (LLMs often quote them)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


class Approx(Matcher):
    op = "approx"
    options = frozenset({"abs", "rel"})

    def __init__(self, expected: float, abs_tol: float, rel_tol: float) -> None:
        self.expected = expected
        self.abs_tol = abs_tol
        self.rel_tol = rel_tol

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        number = _as_number(value)
        if number is None:
            return Outcome(False, f"expected a number, got {preview(value)}")
        allowed = max(self.abs_tol, self.rel_tol * abs(self.expected))
        if abs(number - self.expected) <= allowed:
            return _OK
        return Outcome(False, f"{preview(value)} is not within {allowed:g} of {self.expected:g}")

    def describe(self) -> str:
        return f"about {self.expected:g} (abs {self.abs_tol:g}, rel {self.rel_tol:g})"


class Range(Matcher):
    op = "range"

    def __init__(self, low: float | None, high: float | None) -> None:
        self.low = low
        self.high = high

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        number = _as_number(value)
        if number is None:
            return Outcome(False, f"expected a number, got {preview(value)}")
        if (self.low is None or number >= self.low) and (self.high is None or number <= self.high):
            return _OK
        return Outcome(False, f"{preview(value)} is not {self.describe()}")

    def describe(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"in [{low}, {high}]"


# --- dates and times -----------------------------------------------------------


def _parse_datetime(text: Any) -> datetime | None:
    if not isinstance(text, str) or len(text) > 64:
        return None
    candidate = text.strip()
    try:
        return datetime.fromisoformat(candidate)
    except ValueError:
        pass
    try:
        return datetime.combine(date.fromisoformat(candidate), time())
    except ValueError:
        return None


def _parse_time(text: Any) -> time | None:
    if not isinstance(text, str) or len(text) > 64:
        return None
    candidate = text.strip()
    try:
        return time.fromisoformat(candidate)
    except ValueError:
        parsed = _parse_datetime(candidate)
        return None if parsed is None else parsed.timetz()


def _parse_zone(text: Any) -> timezone | None:
    if text in ("UTC", "Z", "utc"):
        return UTC
    if isinstance(text, str):
        match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
        if match and int(match.group(2)) < 24 and int(match.group(3)) < 60:
            sign = 1 if match.group(1) == "+" else -1
            return timezone(
                sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
            )
    return None


class DateTime(Matcher):
    op = "datetime"
    options = frozenset({"tolerance_s", "timezone"})

    def __init__(self, text: str, tolerance_s: float, zone: timezone) -> None:
        self.text = text
        self.tolerance_s = tolerance_s
        self.zone = zone
        parsed = _parse_datetime(text)
        assert parsed is not None  # validated by the parser
        self.instant = self._aware(parsed)

    def _aware(self, moment: datetime) -> datetime:
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self.zone)

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        parsed = _parse_datetime(value)
        if parsed is None:
            return Outcome(False, f"expected an ISO 8601 date-time, got {preview(value)}")
        delta = abs((self._aware(parsed) - self.instant).total_seconds())
        if delta <= self.tolerance_s:
            return _OK
        return Outcome(False, f"{preview(value)} is {delta:g} s away from {self.text}")

    def describe(self) -> str:
        return f"the instant {self.text}"


class Date(Matcher):
    op = "date"

    def __init__(self, text: str) -> None:
        self.text = text
        parsed = _parse_datetime(text)
        assert parsed is not None  # validated by the parser
        self.day = parsed.date()

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        parsed = _parse_datetime(value)
        if parsed is None:
            return Outcome(False, f"expected an ISO 8601 date, got {preview(value)}")
        if parsed.date() == self.day:
            return _OK
        return Outcome(False, f"{preview(value)} is not on {self.day.isoformat()}")

    def describe(self) -> str:
        return f"on {self.day.isoformat()}"


class TimeOfDay(Matcher):
    op = "time"
    options = frozenset({"tolerance_s"})

    def __init__(self, text: str, tolerance_s: float) -> None:
        self.text = text
        self.tolerance_s = tolerance_s
        parsed = _parse_time(text)
        assert parsed is not None  # validated by the parser
        self.seconds = _seconds(parsed)

    def check(self, value: Any) -> Outcome:
        if value is MISSING:
            return self._missing()
        parsed = _parse_time(value)
        if parsed is None:
            return Outcome(False, f"expected an ISO 8601 time, got {preview(value)}")
        delta = abs(_seconds(parsed) - self.seconds)
        delta = min(delta, 86400 - delta)  # 23:59:59 and 00:00:01 are 2 s apart
        if delta <= self.tolerance_s:
            return _OK
        return Outcome(False, f"{preview(value)} is not {self.text}")

    def describe(self) -> str:
        return f"the time {self.text}"


def _seconds(moment: time) -> float:
    # Wall-clock time as written; offsets are ignored on purpose (a spoken
    # "half past two" has no zone).
    return moment.hour * 3600 + moment.minute * 60 + moment.second + moment.microsecond / 1e6


# --- parsing -------------------------------------------------------------------

_ARGLESS: Final[dict[str, type[Matcher]]] = {"any": AnyValue, "absent": Absent, "ignore": Ignore}


def _bool_option(raw: Mapping[str, Any], key: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ExpectationError((key,), "must be true or false")
    return value


def _number_option(raw: Mapping[str, Any], key: str, default: float) -> float:
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExpectationError((key,), "must be a number")
    if not math.isfinite(value) or value < 0:
        raise ExpectationError((key,), "must be a finite number >= 0")
    return float(value)


def _compile(pattern: Any, flags_text: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise ExpectationError(("regex",), "the pattern must be a string")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ExpectationError(
            ("regex",), f"patterns may have at most {MAX_PATTERN_LENGTH} characters"
        )
    flags = 0
    if flags_text is not None:
        if not isinstance(flags_text, str) or not set(flags_text) <= set(_FLAG_BITS):
            raise ExpectationError(("flags",), "must be a string of the letters i, m, s, x")
        for letter in flags_text:
            flags |= _FLAG_BITS[letter]
    if nested_quantifier(pattern):
        raise ExpectationError(
            ("regex",),
            "a repeated group that itself repeats without bound "
            "(like '(a+)+') can take exponential time; rewrite it",
        )
    try:
        return re.compile(pattern, flags)
    except re.error as exc:
        raise ExpectationError(("regex",), f"invalid regular expression: {exc}") from None


def _make_regex(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    return Regex(_compile(arg, raw.get("flags")))


def _make_approx(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if isinstance(arg, bool) or not isinstance(arg, (int, float)) or not math.isfinite(arg):
        raise ExpectationError(("approx",), "must be a finite number")
    return Approx(float(arg), _number_option(raw, "abs", 0.0), _number_option(raw, "rel", 1e-9))


def _make_range(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if not isinstance(arg, dict) or not arg or not set(arg) <= {"min", "max"}:
        raise ExpectationError(("range",), 'must be an object with "min" and/or "max"')
    bounds: dict[str, float | None] = {"min": None, "max": None}
    for key, bound in arg.items():
        if isinstance(bound, bool) or not isinstance(bound, (int, float)):
            raise ExpectationError(("range", key), "must be a number")
        bounds[key] = float(bound)
    low, high = bounds["min"], bounds["max"]
    if low is not None and high is not None and low > high:
        raise ExpectationError(("range",), "min is greater than max")
    return Range(low, high)


def _make_one_of(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if not isinstance(arg, list) or not arg:
        raise ExpectationError(("one_of",), "must be a non-empty array of values")
    return OneOf(arg, _bool_option(raw, "ignore_case", False))


def _make_text(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if not isinstance(arg, str):
        raise ExpectationError(("text",), "must be a string")
    return Text(
        arg,
        _bool_option(raw, "ignore_case", True),
        _bool_option(raw, "normalize_whitespace", True),
    )


def _make_similar(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if not isinstance(arg, str):
        raise ExpectationError(("similar",), "must be a string")
    if len(arg) > MAX_SIMILAR_SUBJECT:
        raise ExpectationError(("similar",), f"may have at most {MAX_SIMILAR_SUBJECT} characters")
    ratio = _number_option(raw, "min_ratio", 0.8)
    if ratio > 1:
        raise ExpectationError(("min_ratio",), "must be between 0 and 1")
    return Similar(arg, ratio, _bool_option(raw, "ignore_case", True))


def _make_contains(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    return Contains(arg, _bool_option(raw, "ignore_case", False))


def _make_datetime(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if _parse_datetime(arg) is None:
        raise ExpectationError(("datetime",), "must be an ISO 8601 date or date-time string")
    zone = _parse_zone(raw.get("timezone", "UTC"))
    if zone is None:
        raise ExpectationError(("timezone",), 'must be "UTC" or an offset like "+02:00"')
    return DateTime(arg, _number_option(raw, "tolerance_s", 0.0), zone)


def _make_date(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if _parse_datetime(arg) is None:
        raise ExpectationError(("date",), "must be an ISO 8601 date string")
    return Date(arg)


def _make_time(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    if _parse_time(arg) is None:
        raise ExpectationError(("time",), "must be an ISO 8601 time string")
    return TimeOfDay(arg, _number_option(raw, "tolerance_s", 0.0))


def _make_type(arg: Any, raw: Mapping[str, Any]) -> Matcher:
    names = [arg] if isinstance(arg, str) else arg
    if not isinstance(names, list) or not names or any(n not in _JSON_TYPES for n in names):
        raise ExpectationError(("type",), f"must be one of {', '.join(_JSON_TYPES)} or a list")
    return TypeIs(tuple(names))


def _make_judge(arg: Any, raw: Mapping[str, Any], default: Any) -> Matcher:
    if not isinstance(arg, str) or not arg.strip():
        raise ExpectationError(("judge",), "must be a non-empty criterion (a sentence)")
    if len(arg) > MAX_JUDGE_TEXT:
        raise ExpectationError(("judge",), f"may have at most {MAX_JUDGE_TEXT} characters")
    unknown = sorted(set(raw) - {"judge"} - Judged.options)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(Judged.options), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ExpectationError(
            (unknown[0],), f"unknown option for 'judge' (allowed: expected, threshold){hint}"
        )
    threshold: float | None = None
    if raw.get("threshold") is not None:
        threshold = _number_option(raw, "threshold", 0.0)
        if threshold > 1:
            raise ExpectationError(("threshold",), "must be between 0 and 1")
    expected = raw.get("expected", default)
    return Judged(arg.strip(), None if expected is MISSING else expected, threshold)


_Factory = Callable[[Any, Mapping[str, Any]], Matcher]

_WITH_ARGUMENT: Final[dict[str, tuple[_Factory, frozenset[str]]]] = {
    "equals": (lambda arg, raw: Equals(arg), frozenset()),
    "exact": (lambda arg, raw: Equals(arg), frozenset()),
    "subset": (lambda arg, raw: Subset(arg), frozenset()),
    "superset": (lambda arg, raw: Superset(arg), frozenset()),
    "regex": (_make_regex, Regex.options),
    "approx": (_make_approx, Approx.options),
    "range": (_make_range, frozenset()),
    "one_of": (_make_one_of, OneOf.options),
    "text": (_make_text, Text.options),
    "similar": (_make_similar, Similar.options),
    "contains": (_make_contains, Contains.options),
    "datetime": (_make_datetime, DateTime.options),
    "date": (_make_date, frozenset()),
    "time": (_make_time, TimeOfDay.options),
    "type": (_make_type, frozenset()),
}

OPERATORS: Final = frozenset(_ARGLESS) | frozenset(_WITH_ARGUMENT) | {"judge"}
"""Every operator name a matcher may use."""


def parse_matcher(raw: Any, *, default: Any = MISSING) -> Matcher:
    """Build a matcher from its spec form.

    Args:
        raw: A string shorthand or an object with one operator key and options.
        default: The expected value a shorthand such as ``"date"`` compares with
            (the value at the same path in ``parameters`` or ``output``).

    Raises:
        ExpectationError: located relative to the matcher (``("regex",)``...).

    Example:
        >>> parse_matcher({"one_of": ["card", "cash"]}).check("cash").passed
        True
    """
    if isinstance(raw, str):
        if raw in _ARGLESS:
            return _ARGLESS[raw]()
        if raw not in _WITH_ARGUMENT and raw != "judge":
            close = difflib.get_close_matches(raw, sorted(OPERATORS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ExpectationError(
                (), f"unknown matcher {raw!r}{hint}; use one of {', '.join(sorted(OPERATORS))}"
            )
        if default is MISSING:
            raise ExpectationError(
                (),
                f"the shorthand {raw!r} compares with the value at the same "
                "path in parameters/output, and there is none; write "
                f'{{"{raw}": <expected value>}} instead',
            )
        if raw == "judge":
            return Judged(DEFAULT_JUDGE_CRITERION, default, None)
        return _build(raw, default, {})
    if not isinstance(raw, dict):
        raise ExpectationError((), "a matcher must be a string shorthand or an object")
    operators = [key for key in raw if key in OPERATORS]
    if len(operators) != 1:
        found = ", ".join(operators) if operators else "none"
        hint = ""
        for key in raw if not operators else ():
            close = difflib.get_close_matches(str(key), sorted(OPERATORS), n=1)
            if close:
                hint = f" (did you mean {close[0]!r} for {key!r}?)"
                break
        raise ExpectationError(
            (),
            "a matcher object needs exactly one operator key "
            f"({', '.join(sorted(OPERATORS))}); found {found}{hint}",
        )
    op = operators[0]
    if op in _ARGLESS:
        if raw[op] is not True or len(raw) != 1:
            raise ExpectationError((op,), f'write {{"{op}": true}} (it takes no options)')
        return _ARGLESS[op]()
    if op == "judge":
        return _make_judge(raw[op], raw, default)
    return _build(op, raw[op], raw)


def _build(op: str, arg: Any, raw: Mapping[str, Any]) -> Matcher:
    factory, allowed = _WITH_ARGUMENT[op]
    unknown = sorted(set(raw) - {op} - allowed)
    if unknown:
        choices = ", ".join(sorted(allowed)) or "none"
        raise ExpectationError((unknown[0],), f"unknown option for {op!r} (allowed: {choices})")
    return factory(arg, raw)


# --- catastrophic backtracking heuristic ------------------------------------------


def nested_quantifier(pattern: str) -> bool:
    """Whether a group containing an unbounded repeat is itself repeated.

    Example:
        >>> nested_quantifier("(a+)+$"), nested_quantifier("^(ab)+c*$")
        (True, False)
    """
    groups: list[bool] = [False]  # per open group: contains an unbounded repeat
    pos, size = 0, len(pattern)
    while pos < size:
        char = pattern[pos]
        if char == "\\":
            pos += 2
            inner = False
        elif char == "[":
            pos = _skip_class(pattern, pos)
            inner = False
        elif char == "(":
            groups.append(False)
            pos += 1
            continue
        elif char == ")" and len(groups) > 1:
            inner = groups.pop()
            pos += 1
        else:
            pos += 1
            inner = False
        repeats, unbounded, pos = _quantifier(pattern, pos)
        if inner and repeats:
            return True
        groups[-1] = groups[-1] or inner or unbounded
    return False


def _skip_class(pattern: str, pos: int) -> int:
    pos += 1
    if pos < len(pattern) and pattern[pos] == "^":
        pos += 1
    if pos < len(pattern) and pattern[pos] == "]":
        pos += 1
    while pos < len(pattern) and pattern[pos] != "]":
        pos += 2 if pattern[pos] == "\\" else 1
    return pos + 1


_BRACES = re.compile(r"\{(\d*)(,?)(\d*)\}")


def _quantifier(pattern: str, pos: int) -> tuple[bool, bool, int]:
    """(repeats many times, repeats without bound, position after it)."""
    if pos >= len(pattern):
        return False, False, pos
    char = pattern[pos]
    if char in "*+":
        repeats = unbounded = True
        pos += 1
    elif char == "?":
        return False, False, pos + 1
    elif (
        char == "{"
        and (match := _BRACES.match(pattern, pos))
        and (match.group(1) or match.group(3))
    ):
        low, comma, high = match.groups()
        unbounded = bool(comma) and not high
        # A small fixed count such as {2} is polynomial, not exponential.
        repeats = unbounded or int(high or low or "0") > 10
        pos = match.end()
    else:
        return False, False, pos
    if pos < len(pattern) and pattern[pos] in "?+":
        pos += 1  # lazy or possessive modifier
    return repeats, unbounded, pos
