"""The evaluation itself: actual calls and events in, verdicts and groups out.

How a result is judged:

1. Every (expected entry, actual call) pair whose names match is scored: the
   share of the entry's checks that pass (each ``parameters`` key or ``match``
   path, the "no other keys" check of ``exact``/``superset`` mode, the output
   and each ``output_match`` path, the duration budget). An entry with no
   checks scores 1.0 on any call with the right name.
2. Actual calls are assigned to entries one-to-one by an optimal assignment
   (:mod:`.assignment`) that maximises, in this order of priority, the sum of
   pair scores, the number of pairs, and agreement of positions (so that, among
   equally good pairings, identical entries take calls in order).
3. Verdicts, each with a score in [0, 1]:

   - ``expected_call`` per entry: the pair score, or 0 when no call was left
     for it; passes when every check passed;
   - ``order`` (``order: "strict"``): share of matched calls in the longest
     subsequence that follows the expected order (an LCS of the two
     sequences); unmatched entries are not counted twice;
   - ``before`` per constraint, ``count``/``forbidden`` per tool rule and
     ``event`` per event rule: 1 or 0;
   - ``max_duration`` per tool rule with a budget, ``no_extra_calls`` and
     ``no_tool_errors``: share of the calls concerned that comply.

4. ``report.score`` is the unweighted mean of the verdict scores (1.0 when
   there are no verdicts) and ``report.passed`` is true when every verdict
   passed. So one missing call among four expected ones, with nothing else
   configured, scores 0.75 and fails.

Model-judged checks (``judge`` matchers, ``judge_fallback``) are decided from
the ``judgements`` passed in, keyed by :attr:`.judging.JudgementRequest.key`;
the engine lists every question it needed in ``report.judgement_requests``
(those not answered in ``report.pending_judgements``). A driver therefore runs
the engine, answers the pending requests and runs it again, until nothing is
pending (:meth:`roost.platform.judges.JudgeDriver.judgements_for`; at most
three runs: ``judge`` requests are made for every candidate pairing in the
first run, and fallback requests only for the pairs finally assigned, which
the ``judge`` answers can change once). A judged check without an answer fails, its
reason saying why (``unjudged``).

Calls are put in time order by ``start_offset_ms``, ties broken by the order
they were given in. Events are plain dicts (Bluejay ``Event``); those without a
string ``title`` are skipped.

Missing enrichment is not this module's concern: a result whose agent never
posted its tool calls must not be evaluated at all (the platform flags it as
"enrichment missing"), because evaluating it would read as "the agent called
no tools" and fail every expectation for the wrong reason.

Example:
    >>> from roost.platform.evaluation import ActualToolCall, ToolExpectations, evaluate
    >>> spec = ToolExpectations.from_digital_human(
    ...     {"expected_tool_calls": [{"name": "lookup", "parameters": {"id": 7}}]})
    >>> report = evaluate(spec, [ActualToolCall("lookup", 900, parameters={"id": 8})])
    >>> report.passed, report.score
    (False, 0.0)
    >>> report.verdicts[0].reason
    'lookup (expected #0): called at 900 ms, 0/1 checks passed; parameters.id: expected 7, got 8'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from roost.platform.evaluation.assignment import longest_increasing_run, max_weight_matching
from roost.platform.evaluation.judging import MAX_JUDGEMENTS, Judgement, JudgementRequest
from roost.platform.evaluation.matchers import Judged, Outcome, reference_value
from roost.platform.evaluation.paths import MISSING, resolve
from roost.platform.evaluation.report import ActualToolCall, CheckKind, EvaluationReport, Verdict
from roost.platform.evaluation.spec import Check, ExpectedCall, ToolExpectations, ToolRule
from roost.platform.evaluation.values import preview

__all__ = ["evaluate"]

NO_JUDGEMENT = "no judgement was supplied for it"


@dataclass(frozen=True, slots=True)
class _PairResult:
    passed: int
    total: int
    checks: list[dict[str, Any]]

    @property
    def score(self) -> Fraction:
        return Fraction(self.passed, self.total) if self.total else Fraction(1)


def _value(check: Check, call: ActualToolCall) -> Any:
    source = (call.parameters or {}) if check.target == "parameters" else call.output
    return resolve(source, check.path)


def _extra_keys(expected: ExpectedCall, call: ActualToolCall) -> list[str]:
    assert expected.allowed_keys is not None
    given = call.parameters if isinstance(call.parameters, dict) else {}
    return sorted(set(given) - expected.allowed_keys)


def _base_outcome(check: Check, value: Any) -> Outcome:
    if value is MISSING and check.optional:
        return Outcome(True, "omitted (allowed by superset)")
    try:
        return check.matcher.check(value)
    except RecursionError:
        return Outcome(False, "value nested too deeply to compare")


def _base_test(check: Check, value: Any) -> bool:
    if value is MISSING and check.optional:
        return True
    try:
        return check.matcher.test(value)
    except RecursionError:
        return False


def _extra_keys_outcome(expected: ExpectedCall, call: ActualToolCall) -> Outcome:
    extra = _extra_keys(expected, call)
    if not extra:
        return Outcome(True, "ok")
    return Outcome(False, f"unexpected argument{'s' if len(extra) > 1 else ''} {', '.join(extra)}")


def _duration_outcome(call: ActualToolCall, budget: float) -> Outcome:
    elapsed = call.elapsed_ms
    if elapsed is None:
        return Outcome(False, "duration unknown (no duration_ms or end_offset_ms)")
    if elapsed <= budget:
        return Outcome(True, f"took {elapsed:g} ms")
    return Outcome(False, f"took {elapsed:g} ms, budget {budget:g} ms")


class _Evaluation:
    """State of one :func:`evaluate` call (kept off the public API)."""

    def __init__(
        self,
        spec: ToolExpectations,
        calls: Sequence[ActualToolCall],
        events: Sequence[Mapping[str, Any]],
        judgements: Mapping[str, Judgement],
        unjudged: str,
    ) -> None:
        self.spec = spec
        self.judgements = judgements
        self.unjudged = unjudged
        self.requests: dict[str, JudgementRequest] = {}
        """Every question asked, in a deterministic order (``judge`` matchers
        of every candidate pairing first, then fallbacks of assigned pairs)."""
        self.calls = list(calls)
        self.events = [event for event in events if isinstance(event, Mapping)]
        timeline = sorted(range(len(self.calls)), key=lambda i: (self.calls[i].start_offset_ms, i))
        self.timeline = timeline
        self.rank = {index: position for position, index in enumerate(timeline)}
        self.pairs: dict[tuple[int, int], tuple[int, int]] = {
            (entry.index, index): self._count_passing(entry, call)
            for entry in spec.calls
            for index, call in enumerate(self.calls)
            if entry.accepts(call.name)
        }
        self.assigned = self._assign()
        self.owner = {actual: entry for entry, actual in self.assigned.items()}
        self.judged = {
            entry: self._judge_pair(spec.calls[entry], self.calls[actual])
            for entry, actual in sorted(self.assigned.items())
        }
        self.verdicts: list[Verdict] = []
        self.scores: list[Fraction] = []

    # --- checks of one pairing ---------------------------------------------------

    def _ask(self, request: JudgementRequest) -> tuple[Judgement | str, str | None]:
        """The supplied answer to ``request`` (else why there is none), and its
        key if the request was made (it is not over the limit)."""
        key = request.key
        if key not in self.requests:
            if len(self.requests) >= MAX_JUDGEMENTS:
                reason = (
                    f"not judged: over the limit of {MAX_JUDGEMENTS} judge questions per evaluation"
                )
                return reason, None
            self.requests[key] = request
        judgement = self.judgements.get(key)
        if judgement is None:
            return f"not judged: {self.unjudged}", key
        return judgement, key

    def _judged(
        self, check: Check, matcher: Judged, value: Any, call: ActualToolCall
    ) -> tuple[Outcome, str | None]:
        if value is MISSING:
            return _base_outcome(check, value), None
        request = JudgementRequest(
            "judge",
            matcher.criterion,
            matcher.expected,
            value,
            matcher.threshold,
            context=f"{call.name} {check.label}",
        )
        answer, key = self._ask(request)
        if isinstance(answer, str):
            return Outcome(False, answer), key
        verdict = answer.verdict(matcher.threshold)
        if verdict is None:
            return Outcome(False, answer.describe()), key
        bar = "" if matcher.threshold is None else f", threshold {matcher.threshold:g}"
        word = "passed" if verdict else "failed"
        return Outcome(verdict, f"{word}{bar}, {answer.describe()}"), key

    def _fallback(
        self, check: Check, value: Any, call: ActualToolCall, failed: Outcome
    ) -> tuple[Outcome, str | None]:
        criterion = (
            f"{check.label} should be {check.matcher.describe()}; accept a value with the "
            "same meaning written in another format, spelling or wording"
        )
        expected = reference_value(check.matcher)
        request = JudgementRequest(
            "fallback", criterion, expected, value, None, context=f"{call.name} {check.label}"
        )
        answer, key = self._ask(request)
        if isinstance(answer, str):
            return Outcome(False, f"{failed.reason}; judge fallback {answer}"), key
        verdict = answer.verdict(None)
        if verdict is None:
            return Outcome(False, f"{failed.reason}; judge fallback {answer.describe()}"), key
        if verdict:
            reason = (
                f"deterministic check failed ({failed.reason}); passed by the judge "
                f"fallback, {answer.describe()}"
            )
            return Outcome(True, reason), key
        return (
            Outcome(False, f"{failed.reason}; the judge fallback agreed, {answer.describe()}"),
            key,
        )

    def _count_passing(self, expected: ExpectedCall, call: ActualToolCall) -> tuple[int, int]:
        """(checks passed, checks made) for one candidate pairing, without reasons.

        Every candidate pairing is scored, so this skips building the reason
        strings that only the pairs finally chosen need (:meth:`_judge_pair`).
        ``judge`` matchers count with their supplied answers; fallbacks do not
        (they are asked only about the pairs finally chosen).
        """
        passed = 0
        for check in expected.checks:
            value = _value(check, call)
            if isinstance(check.matcher, Judged):
                passed += self._judged(check, check.matcher, value, call)[0].passed
            else:
                passed += _base_test(check, value)
        total = len(expected.checks)
        if expected.allowed_keys is not None:
            total += 1
            passed += not _extra_keys(expected, call)
        if expected.max_duration_ms is not None:
            total += 1
            elapsed = call.elapsed_ms
            passed += elapsed is not None and elapsed <= expected.max_duration_ms
        return passed, total

    def _judge_pair(self, expected: ExpectedCall, call: ActualToolCall) -> _PairResult:
        fallback = self.spec.fallback_for(expected)
        outcomes: list[tuple[str, Outcome, str | None]] = []
        for check in expected.checks:
            value = _value(check, call)
            key: str | None = None
            if isinstance(check.matcher, Judged):
                outcome, key = self._judged(check, check.matcher, value, call)
            else:
                outcome = _base_outcome(check, value)
                if fallback and not outcome.passed and value is not MISSING:
                    outcome, key = self._fallback(check, value, call, outcome)
            outcomes.append((check.label, outcome, key))
        if expected.allowed_keys is not None:
            outcomes.append(
                ("parameters (no other keys)", _extra_keys_outcome(expected, call), None)
            )
        if expected.max_duration_ms is not None:
            outcomes.append(("duration", _duration_outcome(call, expected.max_duration_ms), None))
        checks = []
        for label, outcome, key in outcomes:
            item: dict[str, Any] = {
                "check": label,
                "passed": outcome.passed,
                "reason": outcome.reason,
            }
            if key is not None:
                item["judgement"] = key
            checks.append(item)
        return _PairResult(sum(o.passed for _, o, _ in outcomes), len(outcomes), checks)

    # --- assignment ------------------------------------------------------------

    def _assign(self) -> dict[int, int]:
        if not self.pairs:
            return {}
        n, m = len(self.spec.calls), len(self.calls)
        # Integer weights ordered lexicographically by (total score, number of
        # pairs, -position disagreement): every pair score is a multiple of
        # 1/lcm, so score differences dominate once scaled by lcm * (n + 1),
        # and count differences dominate the position term once scaled by a
        # bound on its total.
        lcm = math.lcm(*(total or 1 for _, total in self.pairs.values()))
        spread = min(n, m) * (n + m) + 1
        weights = {}
        for (entry, actual), (passed, total) in self.pairs.items():
            units = passed * lcm // total if total else lcm
            primary = units * (n + 1) + 1
            position = self.rank[actual]
            # Keyed by time rank, not input position, so that remaining ties
            # resolve the same way whatever order the calls were posted in.
            weights[(entry, position)] = primary * spread - abs(entry - position)
        matching = max_weight_matching(weights)
        return {entry: self.timeline[position] for entry, position in matching.items()}

    # --- verdicts ----------------------------------------------------------------

    def add(
        self,
        check: CheckKind,
        score: Fraction,
        passed: bool,
        reason: str,
        subject: str | None = None,
        expected_index: int | None = None,
        actual: Sequence[int] = (),
        **details: Any,
    ) -> None:
        self.scores.append(score)
        self.verdicts.append(
            Verdict(
                check=check,
                passed=passed,
                score=float(score),
                reason=reason,
                subject=subject,
                expected_index=expected_index,
                actual_indices=tuple(actual),
                details=details,
            )
        )

    def at(self, index: int) -> str:
        call = self.calls[index]
        return f"{call.name} at {call.start_offset_ms} ms"

    def judge_expected(self) -> None:
        for entry in self.spec.calls:
            actual = self.assigned.get(entry.index)
            if actual is None:
                candidates = [i for i, call in enumerate(self.calls) if entry.accepts(call.name)]
                if candidates:
                    reason = (
                        f"{entry.label}: not called; the {len(candidates)} matching call(s) "
                        "fit other expectations better"
                    )
                else:
                    reason = f"{entry.label}: never called"
                self.add("expected_call", Fraction(0), False, reason, entry.name, entry.index)
                continue
            result = self.judged[entry.index]
            passed = result.passed == result.total
            reason = f"{entry.label}: called at {self.calls[actual].start_offset_ms} ms"
            if result.total:
                reason += f", {result.passed}/{result.total} checks passed"
            # Failed checks, and every check a judge decided: a verdict that
            # rests on a model's opinion must say so, and whose.
            noted = [
                f"{c['check']}: {c['reason']}"
                for c in result.checks
                if not c["passed"] or "judgement" in c
            ]
            if noted:
                reason += "; " + "; ".join(noted)
            self.add(
                "expected_call",
                result.score,
                passed,
                reason,
                self.calls[actual].name,
                entry.index,
                (actual,),
                checks=result.checks,
            )

    def judge_order(self) -> None:
        matched = sorted(self.owner, key=self.rank.__getitem__)
        sequence = [self.owner[actual] for actual in matched]
        keep = set(longest_increasing_run(sequence))
        in_order = len(keep)
        total = len(sequence)
        score = Fraction(in_order, total) if total else Fraction(1)
        if in_order == total:
            reason = f"the {total} matched call(s) follow the expected order"
        else:
            late = [
                self.spec.calls[self.owner[actual]].label
                for position, actual in enumerate(matched)
                if position not in keep
            ]
            happened = ", ".join(self.calls[actual].name for actual in matched)
            reason = (
                f"{total - in_order} of {total} matched call(s) out of the expected order "
                f"({', '.join(late)}); they happened as: {happened}"
            )
        self.add("order", score, in_order == total, reason, "strict order", actual=matched)

    def _refs(self, ref: str) -> list[int]:
        for entry in self.spec.calls:
            if entry.id == ref:
                actual = self.assigned.get(entry.index)
                return [] if actual is None else [actual]
        return [i for i, call in enumerate(self.calls) if call.name == ref]

    def judge_before(self) -> None:
        for rule in self.spec.before:
            subject = f"{rule.first} before {rule.then}"
            firsts = sorted(self._refs(rule.first), key=self.rank.__getitem__)
            thens = sorted(self._refs(rule.then), key=self.rank.__getitem__)
            involved = [*firsts, *thens]
            if not thens:
                self.add(
                    "before",
                    Fraction(1),
                    True,
                    f"{rule.then} was not called",
                    subject,
                    actual=involved,
                )
            elif not firsts:
                reason = f"{self.at(thens[0])}, but {rule.first} was never called"
                self.add("before", Fraction(0), False, reason, subject, actual=involved)
            elif self.rank[firsts[0]] < self.rank[thens[0]]:
                reason = f"{self.at(firsts[0])} came before {self.at(thens[0])}"
                self.add("before", Fraction(1), True, reason, subject, actual=involved)
            else:
                reason = f"{self.at(thens[0])} came before the first {self.at(firsts[0])}"
                self.add("before", Fraction(0), False, reason, subject, actual=involved)

    def judge_tools(self) -> None:
        for rule in self.spec.tools:
            hits = [i for i in self.timeline if rule.accepts(self.calls[i].name)]
            if rule.forbidden:
                if hits:
                    times = ", ".join(f"{self.calls[i].start_offset_ms} ms" for i in hits)
                    reason = f"forbidden tool {rule.name} was called {len(hits)} time(s) at {times}"
                else:
                    reason = f"forbidden tool {rule.name} was not called"
                self.add("forbidden", Fraction(not hits), not hits, reason, rule.name, actual=hits)
            if rule.min is not None or rule.max is not None:
                self._judge_count(rule, hits)
            if rule.max_duration_ms is not None:
                self._judge_duration(rule, rule.max_duration_ms, hits)

    def _judge_count(self, rule: ToolRule, hits: list[int]) -> None:
        count = len(hits)
        low_ok = rule.min is None or count >= rule.min
        high_ok = rule.max is None or count <= rule.max
        if rule.min == rule.max:
            wanted = f"exactly {rule.min}"
        elif rule.max is None:
            wanted = f"at least {rule.min}"
        elif rule.min is None:
            wanted = f"at most {rule.max}"
        else:
            wanted = f"between {rule.min} and {rule.max}"
        passed = low_ok and high_ok
        reason = f"{rule.name} was called {count} time(s); expected {wanted}"
        self.add(
            "count",
            Fraction(passed),
            passed,
            reason,
            rule.name,
            actual=hits,
            count=count,
            min=rule.min,
            max=rule.max,
        )

    def _judge_duration(self, rule: ToolRule, budget: float, hits: list[int]) -> None:
        slow = [
            (i, outcome)
            for i in hits
            if not (outcome := _duration_outcome(self.calls[i], budget)).passed
        ]
        score = Fraction(len(hits) - len(slow), len(hits)) if hits else Fraction(1)
        if slow:
            reason = f"{len(slow)} of {len(hits)} {rule.name} call(s) over {budget:g} ms: " + (
                "; ".join(f"{self.at(i)} {outcome.reason}" for i, outcome in slow)
            )
        else:
            reason = f"all {len(hits)} {rule.name} call(s) within {budget:g} ms"
        self.add("max_duration", score, not slow, reason, rule.name, actual=[i for i, _ in slow])

    def judge_extra_calls(self) -> None:
        extra = [i for i in self.timeline if i not in self.owner]
        total = len(self.calls)
        score = Fraction(total - len(extra), total) if total else Fraction(1)
        if extra:
            reason = f"{len(extra)} call(s) not expected: " + ", ".join(map(self.at, extra))
        else:
            reason = "every call was expected"
        self.add("no_extra_calls", score, not extra, reason, actual=extra)

    def judge_errors(self) -> None:
        failed = [i for i in self.timeline if self.calls[i].status == "error"]
        total = len(self.calls)
        score = Fraction(total - len(failed), total) if total else Fraction(1)
        if failed:
            parts = []
            for i in failed:
                call = self.calls[i]
                kind = call.error_type or "error"
                message = f": {preview(call.error_message, 120)}" if call.error_message else ""
                parts.append(f"{self.at(i)} failed with {kind}{message}")
            reason = f"{len(failed)} tool call(s) failed: " + "; ".join(parts)
        else:
            reason = "no tool call failed"
        self.add("no_tool_errors", score, not failed, reason, actual=failed)

    def judge_events(self) -> None:
        for rule in self.spec.events:
            count = sum(1 for event in self.events if rule.accepts(event))
            passed = (rule.min is None or count >= rule.min) and (
                rule.max is None or count <= rule.max
            )
            bounds = []
            if rule.min is not None:
                bounds.append(f"at least {rule.min}")
            if rule.max is not None:
                bounds.append(f"at most {rule.max}")
            reason = (
                f"event {rule.title!r} occurred {count} time(s); expected {' and '.join(bounds)}"
            )
            self.add(
                "event",
                Fraction(passed),
                passed,
                reason,
                rule.title,
                count=count,
                min=rule.min,
                max=rule.max,
            )

    # --- Bluejay groups ----------------------------------------------------------

    def groups(self) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = {}

        def group(name: str) -> dict[str, Any]:
            return groups.setdefault(name, {"name": name, "expected": [], "actual": []})

        verdict_of = {v.expected_index: v for v in self.verdicts if v.check == "expected_call"}
        for entry in self.spec.calls:
            actual = self.assigned.get(entry.index)
            name = entry.name if actual is None else self.calls[actual].name
            verdict = verdict_of[entry.index]
            item: dict[str, Any] = {
                "parameters": entry.parameters,
                "output": None if entry.output is MISSING else entry.output,
                "passed": verdict.passed,
                "score": verdict.score,
                "actual_index": actual,
            }
            if entry.id is not None:
                item["id"] = entry.id
            group(name)["expected"].append(item)
        for index in self.timeline:
            call = self.calls[index]
            detail = call.detail()
            detail["index"] = index
            detail["expected_index"] = self.owner.get(index)
            group(call.name)["actual"].append(detail)
        return list(groups.values())


def evaluate(
    spec: ToolExpectations,
    actual: Sequence[ActualToolCall],
    events: Sequence[Mapping[str, Any]] = (),
    *,
    judgements: Mapping[str, Judgement] | None = None,
    unjudged: str = NO_JUDGEMENT,
) -> EvaluationReport:
    """Judge a result's tool calls and events against a digital human's spec.

    Args:
        spec: From :meth:`ToolExpectations.from_digital_human`.
        actual: The result's tool calls, in any order (deduplicated already).
        events: The result's business events (Bluejay ``Event`` dicts).
        judgements: Answers to judgement requests, by request key.
        unjudged: Why a judged check has no answer, for its reason
            (``"no judge is configured"``...).

    Returns:
        The report: Bluejay groups, verdicts with reasons, score and pass/fail,
        and the judgement requests made. Pure and deterministic: the same
        inputs and judgements give the same report.

    Example:
        >>> spec = ToolExpectations.from_digital_human({"expected_tool_calls": [
        ...     {"name": "verify"}, {"name": "refund"}], "tool_call_rules": {"order": "strict"}})
        >>> calls = [ActualToolCall("refund", 100), ActualToolCall("verify", 200)]
        >>> report = evaluate(spec, calls)
        >>> report.passed, report.score
        (False, 0.8333333333333334)
    """
    answers = judgements or {}
    run = _Evaluation(spec, actual, events, answers, unjudged)
    run.judge_expected()
    if spec.order == "strict":
        run.judge_order()
    run.judge_before()
    run.judge_tools()
    if not spec.allow_extra_calls:
        run.judge_extra_calls()
    if spec.no_tool_errors:
        run.judge_errors()
    run.judge_events()
    score = sum(run.scores, Fraction(0)) / len(run.scores) if run.scores else Fraction(1)
    return EvaluationReport(
        groups=run.groups(),
        passed=all(verdict.passed for verdict in run.verdicts),
        score=float(score),
        verdicts=run.verdicts,
        warnings=list(spec.warnings),
        judgement_requests=list(run.requests.values()),
        judgements={key: answers[key] for key in run.requests if key in answers},
    )
