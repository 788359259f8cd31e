"""Assembling a call's raw records into the ``update-simulation-result`` body.

The recorder's hot path only appends raw entries (references, monotonic
nanoseconds). :func:`assemble` does all the deferred work once, at call end:

- offsets: ``(t - zero) // 1 ms`` against the call's zero point (answer time);
  tool-call offsets below zero (a tool that ran before the answer) are clamped
  to 0, as the wire schema requires, and counted; ``duration_ms`` keeps the exact
  sub-millisecond duration;
- parameters: bound to the tool's signature by name, defaults applied;
- conversion, redaction and per-value caps (``roost.capture``), then the total
  payload budget (``roost.budget``);
- notes: what was cut, redacted, rejected or lost goes to
  ``metadata["roost"]`` so nothing disappears silently.

Example:
    >>> from roost.payload import Recording, assemble
    >>> from roost.redaction import Redactor
    >>> rec = Recording(simulation_result_id="720488", zero_ns=0, call_id_prefix="c")
    >>> rec.tags.append("smoke")
    >>> assemble(rec)
    UpdateSimulationRequest(simulation_result_id='720488', tool_calls=None, events=None, recorded_transcript=None, tags=['smoke'], metadata=None, trace_ids=None)
"""  # noqa: E501

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Mapping
from typing import Any, Final

from roost.budget import NOTE_KEY, fit_payload
from roost.capture import (
    DEFAULT_LIMITS,
    CaptureLimits,
    CaptureStats,
    Converter,
    qualified_type_name,
)
from roost.redaction import Redactor
from roost.schema import Event, Speaker, ToolCall, TranscriptEntry, UpdateSimulationRequest

__all__ = ["NO_OUTPUT", "Recording", "ToolSpec", "assemble", "normalise_trace_id"]

NO_OUTPUT: Final = object()
"""Output slot of a tool entry whose output is not (yet, or ever) captured."""

# Layout of a tool entry: a plain list, the cheapest record to build and to
# finish in place on the hot path. Its position in the recorder's list (which
# only grows) numbers it: call_id = f"{prefix}-{position + 1}".
T_SPEC, T_ARGS, T_KWARGS, T_START, T_END, T_OUTPUT, T_ERROR, T_START_MS, T_END_MS = range(9)
# Layout of an event entry.
E_TITLE, E_DESCRIPTION, E_TAGS, E_METADATA, E_START, E_END, E_START_MS, E_END_MS = range(8)

_MAX_LISTED = 50  # ids or rejected items listed in the notes; the rest are counted
_NS_PER_MS = 1_000_000
_TRACE_ID = re.compile(r"[0-9a-f]{32}")

_SPEAKERS: dict[str, Speaker] = {
    "agent": Speaker.AGENT,
    "assistant": Speaker.AGENT,
    "bot": Speaker.AGENT,
    "ai": Speaker.AGENT,
    "user": Speaker.USER,
    "customer": Speaker.USER,
    "caller": Speaker.USER,
    "human": Speaker.USER,
}


class ToolSpec:
    """What is known about a tool before it is called: name, description, signature.

    Args:
        name: Tool name as sent on the wire.
        description: Text sent as the tool's description, or None.
        fn: The function, to bind positional arguments to parameter names at call
            end; None for manual tool calls (their parameters are already named).
        exclude: Parameter names never captured.
        capture_output: Whether the return value is captured.
    """

    __slots__ = ("_signature", "capture_output", "description", "exclude", "fn", "name")

    def __init__(
        self,
        name: str,
        description: str | None = None,
        fn: Any = None,
        *,
        exclude: frozenset[str] = frozenset(),
        capture_output: bool = True,
    ) -> None:
        self.name = name
        self.description = description
        self.fn = fn
        self.exclude = exclude
        self.capture_output = capture_output
        self._signature: inspect.Signature | None | bool = False  # False: not looked up yet

    def parameters(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, defaults applied, ``self``/``cls`` dropped.

        Arguments that do not fit the signature (the call itself then raised a
        ``TypeError``) are kept as ``arg0``, ``arg1``... plus the keywords.
        """
        params = self._bind(args, kwargs)
        if self.exclude:
            params = {k: v for k, v in params.items() if k not in self.exclude}
        return params

    def _bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if self.fn is None:
            return dict(kwargs)
        signature = self._lookup()
        if signature is None:
            return _positional(args, kwargs)
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return _positional(args, kwargs)
        bound.apply_defaults()
        out: dict[str, Any] = {}
        for index, (name, value) in enumerate(bound.arguments.items()):
            kind = signature.parameters[name].kind
            if (
                index == 0
                and name in ("self", "cls")
                and kind <= inspect.Parameter.POSITIONAL_OR_KEYWORD
            ):
                continue
            if kind is inspect.Parameter.VAR_KEYWORD:
                for key, item in value.items():
                    out.setdefault(key, item)
            elif kind is inspect.Parameter.VAR_POSITIONAL:
                out[name] = list(value)
            else:
                out[name] = value
        return out

    def _lookup(self) -> inspect.Signature | None:
        if self._signature is False:
            try:
                self._signature = inspect.signature(self.fn)
            except (TypeError, ValueError):
                self._signature = None
        return self._signature if isinstance(self._signature, inspect.Signature) else None


def _positional(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {f"arg{index}": value for index, value in enumerate(args)}
    out.update(kwargs)
    return out


@dataclasses.dataclass(slots=True)
class Recording:
    """Everything a recorder collected, as raw entries, ready to assemble.

    Attributes:
        simulation_result_id: The id the payload is for.
        zero_ns: The call's zero point on the recorder's clock, in nanoseconds.
        call_id_prefix: Per-recorder random prefix of tool ``call_id`` values.
        tools: Tool entries (lists laid out as ``T_*``).
        events: Event entries (lists laid out as ``E_*``).
        transcript: ``(speaker, utterance, start_ms, end_ms, filler, at_ns)``.
        tags: Tags in the order given, duplicates allowed.
        metadata: The call metadata as the agent set it.
        trace_ids: Trace ids as given (strings, ints, spans...).
        notes: The recorder's own diagnostics, merged into ``metadata["roost"]``.
        rejected: ``(kind, reason, value)`` of inputs the recorder could not use;
            reported (converted and redacted) under ``metadata["roost"]["rejected"]``.
        redactor: Applied before anything is returned.
        limits: Size caps.
        safe: Skip converting agent values (a second attempt after a failure).
    """

    simulation_result_id: str
    zero_ns: int
    call_id_prefix: str
    tools: list[list[Any]] = dataclasses.field(default_factory=list)
    events: list[list[Any]] = dataclasses.field(default_factory=list)
    transcript: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)
    tags: list[Any] = dataclasses.field(default_factory=list)
    metadata: dict[Any, Any] = dataclasses.field(default_factory=dict)
    trace_ids: list[Any] = dataclasses.field(default_factory=list)
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)
    rejected: list[tuple[str, str, Any]] = dataclasses.field(default_factory=list)
    redactor: Redactor = dataclasses.field(default_factory=Redactor)
    limits: CaptureLimits = DEFAULT_LIMITS
    safe: bool = False


def assemble(recording: Recording) -> UpdateSimulationRequest:
    """Build the wire request from a :class:`Recording`.

    Never returns agent data unredacted. Raises only on a bug in this module;
    the recorder then retries with ``safe=True``, which keeps names and timings
    and leaves agent values out.
    """
    builder = _Builder(recording)
    request = UpdateSimulationRequest(
        simulation_result_id=recording.simulation_result_id,
        tool_calls=builder.tool_calls() or None,
        events=builder.events() or None,
        recorded_transcript=builder.transcript() or None,
        tags=builder.tags() or None,
        trace_ids=builder.trace_ids() or None,
    )
    request.metadata = builder.metadata() or None
    fit_payload(request, recording.limits.max_payload_bytes)
    return request


class _Builder:
    __slots__ = ("clamped", "convert", "notes", "rec", "rejected", "stats")

    def __init__(self, recording: Recording) -> None:
        self.rec = recording
        self.stats = CaptureStats()
        self.convert = Converter(recording.limits, recording.redactor, self.stats)
        self.notes: dict[str, Any] = dict(recording.notes)
        self.rejected: list[dict[str, Any]] = []
        self.clamped = 0
        for kind, reason, value in recording.rejected:
            self.reject(kind, reason, value)

    def offset(self, at_ns: int) -> int:
        return (at_ns - self.rec.zero_ns) // _NS_PER_MS

    def value(self, value: Any) -> Any:
        if self.rec.safe:
            return "…[not captured: recorder error]"
        return self.convert.value(value)

    def mapping(self, value: Mapping[Any, Any]) -> dict[str, Any]:
        if self.rec.safe:
            return {"…": "[not captured: recorder error]"}
        return self.convert.mapping(value)

    def text(self, value: Any, *, redact: bool = True) -> str:
        return self.convert.text(value if isinstance(value, str) else str(value), redact=redact)

    def reject(self, kind: str, reason: str, value: Any) -> None:
        self.rejected.append({"kind": kind, "reason": reason, "value": self.value(value)})

    # -- sections ---------------------------------------------------------------

    def tool_calls(self) -> list[ToolCall]:
        # Copy each entry: tools may still be running and finishing them in place.
        numbered = [(number, list(entry)) for number, entry in enumerate(self.rec.tools, 1)]
        numbered.sort(key=lambda item: self._tool_start(item[1]))
        calls: list[ToolCall] = []
        unfinished: list[str] = []
        for number, entry in numbered:
            call_id = f"{self.rec.call_id_prefix}-{number}"
            try:
                call = self._tool_call(entry, call_id)
            except Exception as exc:
                # One broken entry must not sink the others: keep what is safe.
                call = self._bare_tool_call(entry, call_id, exc)
            calls.append(call)
            if call.status is None:
                unfinished.append(f"{self.rec.call_id_prefix}-{number}")
        if unfinished:
            self.notes["unfinished_tool_calls"] = unfinished[:_MAX_LISTED]
            if len(unfinished) > _MAX_LISTED:
                self.notes["unfinished_tool_calls_not_listed"] = len(unfinished) - _MAX_LISTED
        return calls

    def _tool_start(self, entry: list[Any]) -> int:
        try:
            start_ms = entry[T_START_MS]
            if start_ms is not None:
                return int(start_ms * _NS_PER_MS + self.rec.zero_ns)
            return int(entry[T_START])
        except Exception:
            return self.rec.zero_ns  # a broken entry sorts first; _bare_tool_call reports it

    def _tool_call(self, entry: list[Any], call_id: str) -> ToolCall:
        spec: ToolSpec = entry[T_SPEC]
        start_ns, end_ns = entry[T_START], entry[T_END]
        start = entry[T_START_MS] if entry[T_START_MS] is not None else self.offset(start_ns)
        end = entry[T_END_MS]
        if end is None and end_ns is not None:
            end = self.offset(end_ns)
        duration: float | None = None
        if end_ns is not None and entry[T_START_MS] is None and entry[T_END_MS] is None:
            duration = round(max(0, end_ns - start_ns) / _NS_PER_MS, 3)
        elif end is not None:
            duration = float(max(0, end - start))
        start, end = self._clamp(start), None if end is None else self._clamp(end)
        if end is not None and end < start:
            end = start
        error = entry[T_ERROR]
        finished = end is not None or error is not None
        params = spec.parameters(entry[T_ARGS], entry[T_KWARGS]) if not self.rec.safe else {}
        output = entry[T_OUTPUT]
        return ToolCall(
            name=spec.name,
            start_offset_ms=start,
            description=spec.description,
            parameters=self.mapping(params) if params else {},
            output=None if output is NO_OUTPUT or output is None else self.value(output),
            call_id=call_id,
            end_offset_ms=end,
            duration_ms=duration,
            status=("error" if error is not None else "ok") if finished else None,
            error_type=_error_type(error[0]) if error is not None else None,
            error_message=self.text(error[1]) if error is not None and error[1] else None,
        )

    def _bare_tool_call(self, entry: list[Any], call_id: str, exc: Exception) -> ToolCall:
        self.stats.errors += 1
        try:
            name = getattr(entry[T_SPEC], "name", None)
            start = self._clamp(self.offset(int(entry[T_START])))
        except Exception:
            name, start = None, 0
        return ToolCall(
            name=name if isinstance(name, str) else "unknown",
            start_offset_ms=start,
            call_id=call_id,
            output=f"…[not captured: {type(exc).__name__}]",
        )

    def _clamp(self, offset: int) -> int:
        if offset < 0:
            self.clamped += 1
            return 0
        return int(offset)

    def events(self) -> list[Event]:
        events: list[Event] = []
        for entry in [list(e) for e in self.rec.events]:
            start = (
                entry[E_START_MS] if entry[E_START_MS] is not None else self.offset(entry[E_START])
            )
            end = entry[E_END_MS]
            if end is None and entry[E_END] is not None:
                end = self.offset(entry[E_END])
            metadata = entry[E_METADATA]
            if metadata is not None and not isinstance(metadata, Mapping):
                metadata = {"value": metadata}
            tags = entry[E_TAGS]
            events.append(
                Event(
                    title=self.text(entry[E_TITLE], redact=False),
                    start_offset_ms=int(start),
                    end_offset_ms=None if end is None else int(end),
                    description=None
                    if entry[E_DESCRIPTION] is None
                    else self.text(entry[E_DESCRIPTION]),
                    tags=[self.text(tag, redact=False) for tag in tags] if tags else None,
                    metadata=self.mapping(metadata) if metadata else None,
                )
            )
        events.sort(key=lambda event: event.start_offset_ms)
        return events

    def transcript(self) -> list[TranscriptEntry]:
        entries: list[TranscriptEntry] = []
        scrub = self.rec.redactor.transcript
        for speaker, utterance, start_ms, end_ms, filler, at_ns in self.rec.transcript:
            role = _speaker(speaker)
            if role is None:
                self.reject(
                    "transcript", f"unknown speaker {speaker!r}; use AGENT or USER", utterance
                )
                continue
            now = self.offset(at_ns)
            start = int(start_ms) if start_ms is not None else now
            end = int(end_ms) if end_ms is not None else max(now, start)
            entries.append(
                TranscriptEntry(
                    start_offset_ms=start,
                    end_offset_ms=end,
                    speaker=role,
                    utterance=self.text(utterance, redact=scrub),
                    filler_utterance=None if filler is None else bool(filler),
                )
            )
        entries.sort(key=lambda entry: entry.start_offset_ms)
        return entries

    def tags(self) -> list[str]:
        seen: dict[str, None] = {}
        for tag in self.rec.tags:
            seen.setdefault(self.text(tag, redact=False), None)
        return list(seen)

    def trace_ids(self) -> list[str]:
        seen: dict[str, None] = {}
        for value in self.rec.trace_ids:
            trace_id = normalise_trace_id(value)
            if trace_id is None:
                self.reject("trace_id", "not a non-zero 32-hex OpenTelemetry trace id", value)
            else:
                seen.setdefault(trace_id, None)
        return list(seen)

    def metadata(self) -> dict[str, Any]:
        user = dict(self.rec.metadata)
        if NOTE_KEY in user:
            # The key is the SDK's; keep the agent's value next to it, not lost.
            user[f"{NOTE_KEY}_user"] = user.pop(NOTE_KEY)
        metadata = self.mapping(user) if user else {}
        notes = self.notes
        cut = self.stats.as_dict()
        redacted = cut.pop("redacted", 0)
        errors = cut.pop("errors", 0)
        if cut:
            notes["truncated"] = cut
        if redacted:
            notes["redacted"] = redacted
        if errors:
            notes["capture_errors"] = errors
        if self.clamped:
            notes["clamped_offsets"] = self.clamped
        if self.rejected:
            notes["rejected"] = self.rejected[:_MAX_LISTED]
            if len(self.rejected) > _MAX_LISTED:
                notes["rejected_not_listed"] = len(self.rejected) - _MAX_LISTED
        if notes:
            metadata[NOTE_KEY] = notes
        return metadata


def _error_type(kind: Any) -> str | None:
    if isinstance(kind, type):
        return qualified_type_name(kind)
    return None if kind is None else str(kind)


def _speaker(value: Any) -> Speaker | None:
    if isinstance(value, Speaker):
        return value
    if isinstance(value, str):
        return _SPEAKERS.get(value.strip().lower())
    return None


def normalise_trace_id(value: Any) -> str | None:
    """An OpenTelemetry trace id as 32 lower-case hex digits, or None if invalid.

    Accepts the hex text (any case, optional ``0x`` and dashes), the integer OTel
    keeps in ``SpanContext.trace_id``, 16 raw bytes, a span context, or a span.

    Example:
        >>> normalise_trace_id(0x0AF7651916CD43DD8448EB211C80319C)
        '0af7651916cd43dd8448eb211c80319c'
        >>> normalise_trace_id("not-a-trace") is None
        True
    """
    get_context = getattr(value, "get_span_context", None)
    if callable(get_context):
        try:
            value = get_context()
        except Exception:
            return None
    if not isinstance(value, str | int | bytes):
        value = getattr(value, "trace_id", None)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"{value:032x}" if 0 < value < 1 << 128 else None
    if isinstance(value, bytes):
        return value.hex() if len(value) == 16 and any(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower().replace("-", "")
    if text.startswith("0x"):
        text = text[2:]
    if _TRACE_ID.fullmatch(text) is None or text == "0" * 32:
        return None
    return text
