"""Keeping a whole enrichment payload under a byte budget.

Each captured value is already capped on its own (``roost.capture``), but a call
with hundreds of tool calls can still add up to more than the platform accepts.
:func:`fit_payload` shrinks an :class:`~roost.schema.UpdateSimulationRequest` in
place until its JSON fits, cutting what matters least for evaluation first and
saying what it cut in ``metadata["roost"]["cut"]``:

1. The largest tool-call outputs and parameters, tool descriptions and error
   messages, event metadata and descriptions, and call metadata entries, biggest
   first. Names, call ids, timings and statuses are kept, so the platform still
   sees every tool that was called and when. A dropped value becomes a marker
   (``"…[dropped 40213 bytes: payload limit]"``; an object field becomes
   ``{"…": "<that marker>"}`` so it stays an object).
2. Transcript utterances, biggest first.
3. Whole entries, last first: transcript entries, then events, then tool calls,
   then tags and trace ids. Only reached when the names and timings alone exceed
   the budget.

Example:
    >>> from roost.schema import ToolCall, UpdateSimulationRequest
    >>> request = UpdateSimulationRequest(
    ...     simulation_result_id="720488",
    ...     tool_calls=[ToolCall(name="search", start_offset_ms=5, output="x" * 5000)],
    ... )
    >>> fit_payload(request, 2048)
    True
    >>> request.tool_calls[0].output
    '…[dropped 5002 bytes: payload limit]'
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from roost.schema import UpdateSimulationRequest

__all__ = ["NOTE_KEY", "fit_payload"]

NOTE_KEY: Final = "roost"
"""Metadata key under which the SDK reports what it cut or could not record."""

_MAX_LISTED = 50  # cut items listed by name; the rest are counted
_LABEL_CHARS = 64  # of a name or title quoted in the note
_RESERVE = 8_192  # bytes kept free for the note itself

_encoder = msgspec.json.Encoder()


def _size(value: Any) -> int:
    return len(_encoder.encode(value))


def _marker(size: int) -> str:
    return f"…[dropped {size} bytes: payload limit]"


class _Cut:
    """One value that can be replaced by a marker."""

    __slots__ = ("label", "replace", "size")

    def __init__(self, size: int, label: dict[str, Any], replace: Callable[[Any], None]):
        self.size = size
        self.label = label
        self.replace = replace


def fit_payload(request: UpdateSimulationRequest, max_bytes: int) -> bool:
    """Shrink ``request`` in place until its JSON is at most ``max_bytes``.

    Args:
        request: A request built from converted (JSON-safe) values.
        max_bytes: The budget, at least 1024.

    Returns:
        True if anything was cut (and ``metadata["roost"]["cut"]`` says what).
    """
    before = _size(request)
    if before <= max_bytes:
        return False
    notes = _notes(request)
    dropped: list[dict[str, Any]] = []
    counts: dict[str, int] = {}
    target = max(max_bytes - _RESERVE, max_bytes // 2)
    size = before
    for stage in (_value_cuts, _utterance_cuts):
        if size <= target:
            break
        for cut in sorted(stage(request), key=lambda c: c.size, reverse=True):
            if size <= target:
                break
            marker = _marker(cut.size)
            cut.replace(marker)
            size -= cut.size - len(marker) - 2
            dropped.append({**cut.label, "bytes": cut.size})
    cut_note: dict[str, Any] = {"limit_bytes": max_bytes, "bytes_before": before}
    notes["cut"] = cut_note
    _describe(cut_note, dropped, counts)
    size = _size(request)
    while size > max_bytes and _drop_entries(request, size - max_bytes + _RESERVE, counts):
        _describe(cut_note, dropped, counts)
        size = _size(request)
    return True


def _notes(request: UpdateSimulationRequest) -> dict[str, Any]:
    if request.metadata is None:
        request.metadata = {}
    notes = request.metadata.get(NOTE_KEY)
    if not isinstance(notes, dict):
        notes = {}
        request.metadata[NOTE_KEY] = notes
    return notes


def _describe(note: dict[str, Any], dropped: list[dict[str, Any]], counts: dict[str, int]) -> None:
    note["dropped_values"] = dropped[:_MAX_LISTED]
    if len(dropped) > _MAX_LISTED:
        note["dropped_values_not_listed"] = len(dropped) - _MAX_LISTED
    for name, count in counts.items():
        note[f"dropped_{name}"] = count


def _value_cuts(request: UpdateSimulationRequest) -> list[_Cut]:
    cuts: list[_Cut] = []
    for index, call in enumerate(request.tool_calls or ()):
        ident = call.call_id if call.call_id is not None else index
        label = {"tool_call": ident, "name": call.name[:_LABEL_CHARS]}
        if call.output is not None:
            cuts.append(
                _Cut(_size(call.output), {**label, "field": "output"}, _setter(call, "output"))
            )
        if call.parameters:
            cuts.append(
                _Cut(
                    _size(call.parameters),
                    {**label, "field": "parameters"},
                    _setter(call, "parameters", wrap=True),
                )
            )
        for field in ("error_message", "description"):
            value = getattr(call, field)
            if value is not None:
                cuts.append(_Cut(_size(value), {**label, "field": field}, _setter(call, field)))
    for index, event in enumerate(request.events or ()):
        label = {"event": index, "title": event.title[:_LABEL_CHARS]}
        if event.metadata:
            cuts.append(
                _Cut(
                    _size(event.metadata),
                    {**label, "field": "metadata"},
                    _setter(event, "metadata", wrap=True),
                )
            )
        if event.description is not None:
            cuts.append(
                _Cut(
                    _size(event.description),
                    {**label, "field": "description"},
                    _setter(event, "description"),
                )
            )
    metadata = request.metadata or {}
    for key, value in metadata.items():
        if key != NOTE_KEY:
            label = {"metadata": key[:_LABEL_CHARS]}
            cuts.append(_Cut(_size(value), label, _item_setter(metadata, key)))
    return cuts


def _utterance_cuts(request: UpdateSimulationRequest) -> list[_Cut]:
    return [
        _Cut(
            _size(entry.utterance),
            {"transcript": index, "field": "utterance"},
            _setter(entry, "utterance"),
        )
        for index, entry in enumerate(request.recorded_transcript or ())
    ]


def _setter(target: Any, field: str, *, wrap: bool = False) -> Callable[[Any], None]:
    def replace(marker: Any) -> None:
        setattr(target, field, {"…": marker} if wrap else marker)

    return replace


def _item_setter(mapping: dict[str, Any], key: str) -> Callable[[Any], None]:
    def replace(marker: Any) -> None:
        mapping[key] = marker

    return replace


def _drop_entries(request: UpdateSimulationRequest, excess: int, counts: dict[str, int]) -> bool:
    """Drop whole entries from the end of the lists, least important first."""
    for name in ("recorded_transcript", "events", "tool_calls", "tags", "trace_ids"):
        entries: list[Any] | None = getattr(request, name)
        if not entries:
            continue
        removed = 0
        while entries and excess > 0:
            excess -= _size(entries.pop()) + 1
            removed += 1
        counts[name] = counts.get(name, 0) + removed
        if not entries:
            setattr(request, name, None)
        return True
    return False
