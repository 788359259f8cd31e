"""Decoding the body of ``update-simulation-result`` (the hot path).

The ingest route decodes its body with msgspec instead of FastAPI's pydantic
body handling. On the realistic 15 KB payload of ``benchmarks/ingest.py`` (20
tool calls, 10 events, 40 transcript entries) msgspec decodes and validates in
about 80 µs against about 270 µs for pydantic's ``model_validate_json``, and
that difference alone decides whether ingest keeps half the throughput of a
bare JSON echo. Free-form JSON values (tool ``parameters`` and ``output``,
``metadata``) are not even decoded: they are kept as :class:`msgspec.Raw`
slices of the body, checked for their JSON type, and stored as the text they
arrived as, so the server never decodes and re-encodes them.

The structs are built by :func:`build_wire` from the configured
:class:`~roost.platform.settings.Limits`: string lengths and array sizes are
msgspec constraints, enforced while decoding and published in
``/openapi.json`` (``maxLength``, ``maxItems``) by the same definitions, so
the documentation cannot drift from the validator.

Decoding follows the FastAPI conventions Bluejay clients already handle:

- lax coercion like pydantic's default mode (``"12"`` and ``12.0`` are accepted
  for integers; unknown keys are ignored);
- every failure is a 422 in FastAPI's ``HTTPValidationError`` shape
  (``{"detail": [{"loc": ["body", ...], "msg": ..., "type": ...}]}``). msgspec
  stops at the first problem, so ``detail`` holds one entry where FastAPI may
  list several.

The parser is strict RFC 8259: ``NaN``, ``Infinity``, lone UTF-16 surrogates,
invalid UTF-8 and nesting deeper than msgspec's recursion limit are refused
with 422, never stored. Integers that land in database columns are bounded to
64 bits; JSON values may hold integers of any size. NUL characters are refused
in the fields stored as SQL text (PostgreSQL cannot hold them); inside JSON
values they stay escaped and are kept.

Example:
    >>> from roost.platform.settings import Limits
    >>> wire = build_wire(Limits())
    >>> request = wire.decode(
    ...     b'{"simulation_result_id": 42, "tool_calls": '
    ...     b'[{"name": "lookup", "start_offset_ms": "1520", "parameters": {"id": 7}}]}'
    ... )
    >>> request.simulation_result_id, request.tool_calls[0].start_offset_ms
    (42, 1520)
    >>> json_text(request.tool_calls[0].parameters)
    '{"id": 7}'
    >>> try:
    ...     wire.decode(b'{"tool_calls": []}')
    ... except WireError as error:
    ...     error.detail[0]["loc"], error.detail[0]["type"]
    (['body', 'simulation_result_id'], 'missing')
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from roost.platform.settings import Limits

__all__ = [
    "INT64_MAX",
    "Wire",
    "WireError",
    "build_wire",
    "json_text",
    "validation_detail",
]

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

Offset = Annotated[int, msgspec.Meta(ge=0, le=INT64_MAX)]
SignedOffset = Annotated[int, msgspec.Meta(ge=INT64_MIN, le=INT64_MAX)]

_NULL = msgspec.Raw(b"null")
_OBJECT_OR_NULL = {"anyOf": [{"type": "object", "additionalProperties": True}, {"type": "null"}]}
_ANY = {"anyOf": [{}, {"type": "null"}]}


class WireError(Exception):
    """The body is not acceptable; ``detail`` is FastAPI's 422 ``detail`` list."""

    def __init__(self, detail: list[dict[str, Any]]) -> None:
        super().__init__(detail[0]["msg"] if detail else "invalid request")
        self.detail = detail


def validation_detail(loc: list[str | int], msg: str, type_: str) -> dict[str, Any]:
    """One entry of a FastAPI ``HTTPValidationError.detail`` list."""
    return {"loc": loc, "msg": msg, "type": type_}


def json_text(raw: msgspec.Raw | None) -> str | None:
    """The stored form of a raw JSON value: its text, or ``None`` for ``null``."""
    if raw is None:
        return None
    data = bytes(raw)
    if not data or data == b"null":
        return None
    return data.decode()


def _raw_kind(raw: msgspec.Raw) -> str:
    first = memoryview(raw)[:1].tobytes()
    return {b"{": "object", b"[": "array", b'"': "string", b"n": "null"}.get(first, "scalar")


@dataclass(frozen=True)
class Wire:
    """The decoder for one set of limits, and the structs it produces.

    Attributes:
        request_type: The ``UpdateSimulationRequest`` struct (JSON values as
            :class:`msgspec.Raw`).
        schema_types: The same structs with JSON values typed, for
            ``/openapi.json`` and tests.
    """

    request_type: Any
    schema_types: Any
    limits: Limits
    _decoder: msgspec.json.Decoder[Any]

    def decode(self, body: bytes) -> Any:
        """Decode and validate a body.

        Raises:
            WireError: with one FastAPI-shaped entry describing the problem.
        """
        try:
            request = self._decoder.decode(body)
        except msgspec.ValidationError as exc:
            raise WireError([_validation_to_detail(str(exc))]) from None
        except msgspec.DecodeError as exc:
            found = _BYTE_POS.search(str(exc))
            position: list[str | int] = ["body", int(found.group(1))] if found else ["body"]
            reason = str(exc).removeprefix("JSON is malformed: ")
            raise WireError(
                [validation_detail(position, f"JSON decode error: {reason}", "json_invalid")]
            ) from None
        except UnicodeDecodeError:
            raise WireError(
                [
                    validation_detail(
                        ["body"], "JSON decode error: body is not valid UTF-8", "json_invalid"
                    )
                ]
            ) from None
        except RecursionError:
            raise WireError(
                [validation_detail(["body"], "JSON decode error: nesting too deep", "json_invalid")]
            ) from None
        problems = _check_json_kinds(request)
        # A NUL can only be in a decoded string if the body spells \u0000:
        # one scan of the bytes spares the field walk for every normal body.
        if b"\\u0000" in body:
            problems += _check_nul(request)
        if problems:
            raise WireError(problems[:1])
        return request

    def openapi_components(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(request_body_schema, components)`` for ``/openapi.json``."""
        (schema,), components = msgspec.json.schema_components(
            [self.schema_types], ref_template="#/components/schemas/{name}"
        )
        return schema, components


def build_wire(limits: Limits) -> Wire:
    """Build the request structs and decoder for ``limits``."""
    runtime = _structs(limits, raw=True)
    documented = _structs(limits, raw=False)
    return Wire(
        request_type=runtime,
        schema_types=documented,
        limits=limits,
        _decoder=msgspec.json.Decoder(runtime, strict=False),
    )


def _struct(name: str, doc: str, fields: list[tuple[Any, ...]]) -> Any:
    # defstruct with real type objects: class bodies inside a function would
    # have their annotations stringified (PEP 563) and could not see the
    # limit-specific aliases built here.
    struct = msgspec.defstruct(name, fields, kw_only=True, module=__name__)
    struct.__doc__ = doc
    return struct


def _bounded_list(item: Any, limit: int) -> Any:
    return Annotated[list[item], msgspec.Meta(max_length=limit)]


def _structs(limits: Limits, *, raw: bool) -> Any:
    """The four request structs; JSON values as ``Raw`` or as typed values."""
    Name = Annotated[str, msgspec.Meta(max_length=limits.max_name_length)]
    Text = Annotated[str, msgspec.Meta(max_length=limits.max_text_length)]
    Tags = _bounded_list(Name, limits.max_tags)
    if raw:
        JsonObject: Any = Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema=_OBJECT_OR_NULL)]
        JsonAny: Any = Annotated[msgspec.Raw, msgspec.Meta(extra_json_schema=_ANY)]
        json_default: Any = _NULL
    else:
        JsonObject = dict[str, Any] | None
        JsonAny = Any
        json_default = None

    def roost(kind: Any, text: str) -> Any:
        return Annotated[kind, msgspec.Meta(description=f"Roost: {text}")]

    tool_call = _struct(
        "ToolCall",
        "A tool call: Bluejay's ``ToolCall`` plus Roost's optional extensions.",
        [
            ("name", Annotated[Name, msgspec.Meta(title="Name", description="Name of the tool")]),
            (
                "start_offset_ms",
                Annotated[Offset, msgspec.Meta(description="Milliseconds from call start")],
            ),
            ("description", Text | None, None),
            ("parameters", JsonObject, json_default),
            ("output", JsonAny, json_default),
            ("call_id", roost(Name | None, "unique id of this invocation, deduplicated"), None),
            ("end_offset_ms", roost(Offset | None, "when the tool returned or raised"), None),
            (
                "duration_ms",
                roost(Annotated[float, msgspec.Meta(ge=0)] | None, "wall time in milliseconds"),
                None,
            ),
            ("status", roost(Literal["ok", "error"] | None, "ok or error"), None),
            ("error_type", roost(Text | None, "exception class when status is error"), None),
            ("error_message", roost(Text | None, "exception message when status is error"), None),
        ],
    )
    event = _struct(
        "Event",
        "A business event during the call (Bluejay's ``Event``).",
        [
            ("title", Name),
            ("start_offset_ms", SignedOffset),
            ("description", Text | None, None),
            ("end_offset_ms", SignedOffset | None, None),
            ("tags", Tags | None, None),
            ("metadata", JsonObject, json_default),
        ],
    )
    entry = _struct(
        "TranscriptEntryRequest",
        "One utterance of the agent's own transcript.",
        [
            ("start_offset_ms", SignedOffset),
            ("end_offset_ms", SignedOffset),
            ("speaker", Literal["AGENT", "USER"]),
            ("utterance", Text),
            ("filler_utterance", bool | None, None),
        ],
    )
    result_id = Annotated[
        Annotated[str, msgspec.Meta(max_length=64)] | int,
        msgspec.Meta(
            title="Simulation Result Id",
            description="The X-Simulation-Result-Id value (a decimal id, string or integer)",
        ),
    ]
    return _struct(
        "UpdateSimulationRequest",
        "Body of ``POST /v1/update-simulation-result``.",
        [
            ("simulation_result_id", result_id),
            (
                "events",
                _bounded_list(event, limits.max_events) | None,
                None,
            ),
            (
                "tool_calls",
                _bounded_list(tool_call, limits.max_tool_calls) | None,
                None,
            ),
            (
                "recorded_transcript",
                _bounded_list(entry, limits.max_transcript_entries) | None,
                None,
            ),
            ("tags", Tags | None, None),
            ("metadata", JsonObject, json_default),
            (
                "trace_ids",
                roost(
                    _bounded_list(Name, limits.max_trace_ids) | None,
                    "OpenTelemetry trace ids to link (documented by Bluejay, not in its OpenAPI)",
                ),
                None,
            ),
        ],
    )


def _check_json_kinds(request: Any) -> list[dict[str, Any]]:
    problems = []
    for i, call in enumerate(request.tool_calls or ()):
        if _raw_kind(call.parameters) not in ("object", "null"):
            problems.append(
                validation_detail(
                    ["body", "tool_calls", i, "parameters"],
                    "Input should be a valid dictionary or null",
                    "dict_type",
                )
            )
    for i, event in enumerate(request.events or ()):
        if _raw_kind(event.metadata) not in ("object", "null"):
            problems.append(
                validation_detail(
                    ["body", "events", i, "metadata"],
                    "Input should be a valid dictionary or null",
                    "dict_type",
                )
            )
    if _raw_kind(request.metadata) not in ("object", "null"):
        problems.append(
            validation_detail(
                ["body", "metadata"], "Input should be a valid dictionary or null", "dict_type"
            )
        )
    return problems


def _nul(loc: list[str | int]) -> dict[str, Any]:
    return validation_detail(loc, "String must not contain NUL (\\u0000) characters", "string_nul")


def _check_nul(request: Any) -> list[dict[str, Any]]:
    problems = []

    def scan(loc: list[str | int], *values: tuple[str, str | None]) -> None:
        for field, value in values:
            if value is not None and "\x00" in value:
                problems.append(_nul([*loc, field]))

    if isinstance(request.simulation_result_id, str):
        scan(["body"], ("simulation_result_id", request.simulation_result_id))
    for i, call in enumerate(request.tool_calls or ()):
        scan(
            ["body", "tool_calls", i],
            ("name", call.name),
            ("description", call.description),
            ("call_id", call.call_id),
            ("error_type", call.error_type),
            ("error_message", call.error_message),
        )
    for i, event in enumerate(request.events or ()):
        scan(["body", "events", i], ("title", event.title), ("description", event.description))
    for i, entry in enumerate(request.recorded_transcript or ()):
        scan(["body", "recorded_transcript", i], ("utterance", entry.utterance))
    return problems


_PATH_PART = re.compile(r"\.([^.\[\]]+)|\[(\d+)\]")
_BYTE_POS = re.compile(r"\(byte (\d+)\)")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
_EXPECTED = re.compile(r"Expected `([^`]+)`(?:, got `([^`]+)`)?(.*)")
_TYPE_NAMES = {
    "str": "string_type",
    "int": "int_type",
    "float": "float_type",
    "bool": "bool_type",
    "object": "dict_type",
    "array": "list_type",
}


def _loc_from_path(path: str) -> list[str | int]:
    loc: list[str | int] = ["body"]
    for match in _PATH_PART.finditer(path):
        key, index = match.groups()
        loc.append(int(index) if index is not None else key)
    return loc


def _validation_to_detail(message: str) -> dict[str, Any]:
    text, _, path = message.partition(" - at `")
    loc = _loc_from_path(path.rstrip("`").removeprefix("$"))
    missing = _MISSING.fullmatch(text)
    if missing:
        loc.append(missing.group(1))
        return validation_detail(loc, "Field required", "missing")
    expected = _EXPECTED.fullmatch(text)
    if expected:
        wanted, got, constraint = expected.groups()
        constraint = constraint.strip()
        if constraint.startswith("of length"):
            kind = "string_too_long" if wanted == "str" else "too_long"
            what = "String" if wanted == "str" else "List"
            return validation_detail(loc, f"{what} should be {constraint}", kind)
        if constraint:
            kind = "greater_than_equal" if ">=" in constraint else "less_than_equal"
            return validation_detail(loc, f"Input should be {wanted} {constraint}", kind)
        if "'" in wanted:
            return validation_detail(loc, f"Input should be {wanted}", "literal_error")
        first = wanted.split(" | ")[0]
        return validation_detail(
            loc,
            f"Input should be a valid {wanted} (got {got})",
            _TYPE_NAMES.get(first, "type_error"),
        )
    if "out of range" in text:
        return validation_detail(loc, "Number out of range", "finite_number")
    return validation_detail(loc, text, "value_error")
