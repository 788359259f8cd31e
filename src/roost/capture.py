"""Turning arbitrary Python values into bounded, valid JSON values.

A tool's parameters and output can be anything: datetimes, Decimals, dataclasses,
pydantic models, msgspec structs, objects that refer to themselves, objects whose
``__repr__`` raises. :func:`to_jsonable` converts any of them to plain JSON values
(``dict`` with ``str`` keys, ``list``, ``str``, ``int``, ``float``, ``bool``,
``None``) and never raises. While it converts it applies the
:class:`~roost.redaction.Redactor` and the size caps of :class:`CaptureLimits`,
every cut leaving a visible marker:

- a string longer than ``max_string`` keeps its head and ends with
  ``"…[truncated 12345 chars]"``;
- a list, tuple or set longer than ``max_items`` keeps its head and ends with the
  sentinel item ``"…[truncated 678 items]"``; a mapping keeps its first
  ``max_items`` keys plus the key ``"…"`` whose value says how many were cut;
- nesting deeper than ``max_depth``, and anything past ``max_nodes`` values in
  one conversion, becomes a marker string naming what was cut;
- a whole value whose JSON exceeds ``max_value_bytes`` becomes a string holding
  the head of its JSON text and ``"…[truncated value: 98765 bytes]"``.

Conversion rules: ``Enum`` members become their value; ``datetime``, ``date`` and
``time`` ISO 8601 text; ``timedelta`` seconds; ``UUID``, ``Decimal`` (exact, so
amounts keep every digit), ``Fraction``, ``complex``, paths and IP addresses their
``str``; ``bytes`` UTF-8 text when they decode, else ``"base64:<data>"``; NaN and
the infinities the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``; sets sorted
lists when their items sort; named tuples, dataclasses, msgspec structs, attrs
classes and objects with a ``model_dump`` method (pydantic) objects of their
fields; other objects their ``repr`` when they define one, else their public
attributes. Iterators and generators are never consumed (that would change the
agent's state); they appear as their ``repr``. A reference cycle becomes
``"…[cycle]"``.

Conversion runs once, when the call ends. The only capture work on the hot path
is ``roost.snapshot`` (copying mutable containers).

Written by hand because no library does conversion, redaction and visible
truncation in one bounded pass without raising: ``msgspec.to_builtins`` and
``json.dumps(default=...)`` stop at the first cycle or odd object.

Example:
    >>> import datetime, decimal
    >>> from roost.capture import CaptureLimits, to_jsonable
    >>> to_jsonable({"at": datetime.date(2026, 8, 1), "amount": decimal.Decimal("19.99")})
    {'at': '2026-08-01', 'amount': '19.99'}
    >>> to_jsonable(["x" * 12], limits=CaptureLimits(max_string=4))
    ['xxxx…[truncated 8 chars]']
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import fractions
import ipaddress
import math
import pathlib
import uuid
from collections.abc import Iterable, Mapping
from types import BuiltinFunctionType, FunctionType, MethodType, ModuleType
from typing import TYPE_CHECKING, Any, Final

import msgspec

from roost.snapshot import Truncated

if TYPE_CHECKING:
    from roost.redaction import Redactor

__all__ = [
    "DEFAULT_LIMITS",
    "TRUNCATED_KEY",
    "CaptureLimits",
    "CaptureStats",
    "Converter",
    "encoded_size",
    "exception_message",
    "qualified_type_name",
    "safe_repr",
    "to_json_object",
    "to_jsonable",
]

TRUNCATED_KEY: Final = "…"
"""Key that a truncated mapping gains; its value says how many keys were cut."""

_JSON_OVERHEAD = 26  # upper bound of the bytes one scalar or separator adds
_CHAR_BOUND = 6  # a char costs at most 6 bytes in JSON (a \u00XX escape)
_SCRUB_MARGIN = 256  # chars past the cut that value rules still see


@dataclasses.dataclass(frozen=True, slots=True)
class CaptureLimits:
    """Size caps applied when a call's record is converted to JSON.

    Every cap leaves a visible marker where it cut (see the module docstring).

    Attributes:
        max_string: Characters kept of one string.
        max_items: Items kept of one list, tuple, set or mapping.
        max_depth: Levels of nesting kept below a captured value.
        max_nodes: Values converted for one captured value; the rest become
            markers. Bounds the work at call end for huge object graphs.
        max_value_bytes: JSON bytes of one captured value (one parameter, one
            output, one event's metadata, one call metadata entry).
        max_payload_bytes: JSON bytes of the whole request; when over, the
            largest parameters and outputs are dropped first (``roost.budget``).
        max_entries: Tool calls, events and transcript entries (each) kept per
            call; later ones are counted, not stored, so a runaway loop cannot
            exhaust the agent's memory.
        snapshot_nodes: Container items copied on the hot path per argument or
            output so later mutation does not alter the record; 0 keeps plain
            references (cheapest, but a mutated argument is recorded as it is at
            call end). Beyond the budget, references are kept.

    Raises:
        ValueError: A cap is not a positive integer (``snapshot_nodes`` may be 0),
            or ``max_payload_bytes`` is under 1024.

    Example:
        >>> CaptureLimits(max_string=1024).max_items
        256
    """

    max_string: int = 8_192
    max_items: int = 256
    max_depth: int = 16
    max_nodes: int = 10_000
    max_value_bytes: int = 65_536
    max_payload_bytes: int = 1_048_576
    max_entries: int = 10_000
    snapshot_nodes: int = 1_000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            minimum = 0 if field.name == "snapshot_nodes" else 1
            if field.name == "max_payload_bytes":
                minimum = 1024
            if type(value) is not int or value < minimum:
                raise ValueError(
                    f"CaptureLimits.{field.name} must be an integer >= {minimum}, got {value!r}"
                )


DEFAULT_LIMITS: Final = CaptureLimits()
"""The limits a recorder uses unless given others."""


@dataclasses.dataclass(slots=True)
class CaptureStats:
    """What conversions cut or masked; the recorder reports it in metadata.

    Attributes:
        strings: Strings truncated.
        collections: Lists, sets and mappings truncated.
        values: Whole values over ``max_value_bytes`` replaced by their head.
        depth: Containers cut at ``max_depth``.
        nodes: Values cut at ``max_nodes``.
        cycles: Reference cycles broken.
        redacted: Values masked by key rules, and strings changed by value rules.
        errors: Objects that could not be converted (their ``repr`` or
            conversion raised) and became a marker.
    """

    strings: int = 0
    collections: int = 0
    values: int = 0
    depth: int = 0
    nodes: int = 0
    cycles: int = 0
    redacted: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, int]:
        """Non-zero counters by name."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
            if getattr(self, field.name)
        }


_SCALAR_TEXT_TYPES = (
    uuid.UUID,
    decimal.Decimal,
    fractions.Fraction,
    complex,
    pathlib.PurePath,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
)
_INT64_MIN = -(1 << 63)
_UINT64_END = 1 << 64

_encoder = msgspec.json.Encoder()


def to_jsonable(
    value: Any,
    *,
    limits: CaptureLimits = DEFAULT_LIMITS,
    redactor: Redactor | None = None,
    stats: CaptureStats | None = None,
) -> Any:
    """Convert any value to a bounded, redacted JSON value; never raises.

    Args:
        value: Anything.
        limits: Size caps (``max_value_bytes`` applies to ``value`` as a whole).
        redactor: Applied while converting: values under sensitive keys become its
            marker, value rules rewrite every string before it is truncated.
        stats: Counters to add this conversion's cuts to.

    Returns:
        A value :mod:`msgspec` (or :mod:`json`) encodes to valid JSON.

    Example:
        >>> class Loop:
        ...     def __init__(self) -> None:
        ...         self.me = self
        >>> to_jsonable({"n": float("nan"), "loop": Loop()})
        {'n': 'NaN', 'loop': {'me': '…[cycle]'}}
    """
    return Converter(limits, redactor, stats).value(value)


def to_json_object(
    mapping: Mapping[Any, Any],
    *,
    limits: CaptureLimits = DEFAULT_LIMITS,
    redactor: Redactor | None = None,
    stats: CaptureStats | None = None,
) -> dict[str, Any]:
    """Convert a mapping whose values are capped one by one (parameters, metadata).

    Keys become strings, values under sensitive keys become the redactor's marker,
    and each other value is converted with its own ``max_value_bytes`` budget.
    Never raises.

    Example:
        >>> to_json_object({"pin": 1234, "amount": 10, 7: None})
        {'pin': 1234, 'amount': 10, '7': None}
        >>> from roost.redaction import Redactor
        >>> to_json_object({"pin": 1234, "amount": 10}, redactor=Redactor())
        {'pin': '[REDACTED]', 'amount': 10}
    """
    return Converter(limits, redactor, stats).mapping(mapping)


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (a value from :func:`to_jsonable`).

    Example:
        >>> encoded_size({"a": [1, 2]})
        11
    """
    return len(_encoder.encode(value))


def safe_repr(value: Any, limit: int = DEFAULT_LIMITS.max_string) -> str:
    """``repr(value)`` cut to ``limit`` characters, or a marker if it raises.

    Example:
        >>> class Bad:
        ...     def __repr__(self) -> str:
        ...         raise RuntimeError("no")
        >>> safe_repr(Bad()).endswith("Bad object; repr raised RuntimeError>")
        True
    """
    try:
        text = repr(value)
    except Exception as exc:
        return f"<{_type_name(value)} object; repr raised {type(exc).__name__}>"
    if type(text) is not str:
        return f"<{_type_name(value)} object>"
    if len(text) > limit:
        text = f"{text[:limit]}…[truncated {len(text) - limit} chars]"
    return _valid_text(text)


def qualified_type_name(kind: type) -> str:
    """``module.QualName`` of a class, or just ``QualName`` for builtins.

    Example:
        >>> import asyncio
        >>> qualified_type_name(TimeoutError), qualified_type_name(asyncio.CancelledError)
        ('TimeoutError', 'asyncio.exceptions.CancelledError')
    """
    try:
        module = kind.__module__
        name = kind.__qualname__
        return name if module == "builtins" else f"{module}.{name}"
    except Exception:
        return "object"


def exception_message(exc: BaseException) -> str:
    """``str(exc)``, or a marker when that raises; never raises itself.

    Example:
        >>> exception_message(ValueError("bad card"))
        'bad card'
    """
    try:
        text = str(exc)
    except Exception as error:
        return f"<str() raised {type(error).__name__}>"
    return text if type(text) is str else safe_repr(text)


def _type_name(value: Any) -> str:
    return qualified_type_name(type(value))


def _valid_text(text: str) -> str:
    # Lone surrogates (from bad decoding upstream) are not valid UTF-8 and would
    # make the JSON encoder raise; keep them visible as escapes instead.
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


class Converter:
    """Converts the values of one payload with shared limits, redactor and counters.

    :func:`to_jsonable` and :func:`to_json_object` are one-shot shortcuts; the
    recorder keeps one converter for a whole payload. ``max_nodes`` and
    ``max_value_bytes`` apply per :meth:`value` call.

    Args:
        limits: Size caps.
        redactor: Redaction rules, or None for none.
        stats: Counters to add to (a fresh :class:`CaptureStats` by default).

    Example:
        >>> converter = Converter(CaptureLimits(max_items=2))
        >>> converter.value([1, 2, 3, 4])
        [1, 2, '…[truncated 2 items]']
        >>> converter.stats.collections
        1
    """

    __slots__ = (
        "_budget",
        "_max_depth",
        "_max_items",
        "_max_string",
        "bound",
        "limits",
        "marker",
        "path",
        "redactor",
        "stats",
    )

    def __init__(
        self,
        limits: CaptureLimits = DEFAULT_LIMITS,
        redactor: Redactor | None = None,
        stats: CaptureStats | None = None,
    ) -> None:
        self.limits = limits
        self.redactor = redactor if redactor is not None and redactor.active else None
        self.marker = redactor.marker if redactor is not None else ""
        self.stats = stats if stats is not None else CaptureStats()
        self._max_string = limits.max_string
        self._max_items = limits.max_items
        self._max_depth = limits.max_depth
        self._budget = limits.max_nodes  # items still allowed in the current value
        self.bound = 0  # upper bound of the JSON bytes of the current value
        self.path: set[int] = set()  # ids of the containers being converted

    # -- entry points --------------------------------------------------------------

    def value(self, value: Any) -> Any:
        """One captured value, converted, redacted and capped; never raises."""
        self._budget = self.limits.max_nodes
        self.bound = _JSON_OVERHEAD
        self.path.clear()
        try:
            result = self.convert(value, 0)
        except Exception as exc:
            # Objects can change under us (another thread mutating a dict) or
            # blow the recursion limit; never let that reach the agent.
            self.stats.errors += 1
            return f"…[unserialisable {_type_name(value)}: {type(exc).__name__}]"
        if self.bound <= self.limits.max_value_bytes:
            return result
        return self._cap(result)

    def mapping(self, mapping: Mapping[Any, Any]) -> dict[str, Any]:
        """A mapping whose values are converted (and capped) one by one."""
        out: dict[str, Any] = {}
        try:
            for count, (key, item) in enumerate(mapping.items()):
                if count >= self._max_items:
                    out[TRUNCATED_KEY] = f"[truncated {len(mapping) - count} keys]"
                    self.stats.collections += 1
                    break
                name = self.key(key)
                if name in out:
                    name = _unique_key(out, name)
                out[name] = self.marker if self.redacts(name, item) else self.value(item)
        except Exception as exc:
            self.stats.errors += 1
            out[TRUNCATED_KEY] = f"[unserialisable rest: {type(exc).__name__}]"
        return out

    def text(self, text: str, *, redact: bool = True) -> str:
        """A string, scrubbed by value rules (unless ``redact=False``) and cut."""
        if redact or self.redactor is None:
            return self._text(text)
        redactor, self.redactor = self.redactor, None
        try:
            return self._text(text)
        finally:
            self.redactor = redactor

    def redacts(self, key: str, value: Any) -> bool:
        """Whether ``value`` under ``key`` becomes the marker (and count it)."""
        if (
            self.redactor is None
            or value is None
            or type(value) is bool
            or not self.redactor.is_sensitive_key(key)
        ):
            return False
        self.stats.redacted += 1
        return True

    def key(self, key: Any) -> str:
        """A mapping key as JSON object key text."""
        if type(key) is str:
            return key if key.isascii() else _valid_text(key)
        if key is None or isinstance(key, bool):
            return "null" if key is None else ("true" if key else "false")
        if isinstance(key, enum.Enum):
            key = key.value
        if isinstance(key, int | float | str):
            return _valid_text(str(key))
        return safe_repr(key, self._max_string)

    # -- the walk ------------------------------------------------------------------

    def convert(self, value: Any, depth: int) -> Any:
        """Convert one value found at nesting ``depth``."""
        kind = type(value)
        if kind is str:
            return self._text(value)
        if kind is int:
            return value if _INT64_MIN <= value < _UINT64_END else self._big_int(value)
        if value is None or kind is bool:
            return value
        if kind is float:
            return value if math.isfinite(value) else _float_text(value)
        if kind is dict:
            return self._container(value, depth, self._mapping, value.items(), len(value))
        if kind is list or kind is tuple:
            return self._container(value, depth, self._sequence, value, len(value))
        try:
            return self._other(value, depth)
        except Exception as exc:
            self.stats.errors += 1
            return f"…[unserialisable {_type_name(value)}: {type(exc).__name__}]"

    def _text(self, text: str) -> str:
        limit = self._max_string
        redactor = self.redactor
        size = len(text)
        if redactor is not None:
            # Scrub before cutting, so a card number across the cut is still found.
            head = text if size <= limit + _SCRUB_MARGIN else text[: limit + _SCRUB_MARGIN]
            text = redactor.scrub(head)
            if text is not head and text != head:
                self.stats.redacted += 1
        if size > limit or len(text) > limit:
            cut = size - limit if size > limit else len(text) - limit
            self.stats.strings += 1
            text = f"{text[:limit]}…[truncated {cut} chars]"
        self.bound += _CHAR_BOUND * len(text) + 2
        return text if text.isascii() else _valid_text(text)

    def _big_int(self, value: int) -> int:
        self.bound += value.bit_length() // 3 + 2
        return value

    def _container(self, value: Any, depth: int, walk: Any, items: Any, size: int) -> Any:
        if depth >= self._max_depth:
            self.stats.depth += 1
            return f"…[truncated: depth limit, {_type_name(value)}]"
        ident = id(value)
        if ident in self.path:
            self.stats.cycles += 1
            return "…[cycle]"
        # The node budget bounds the work for one value; items past it are cut
        # like items past max_items.
        limit = self._max_items
        if self._budget < limit:
            limit = self._budget if self._budget > 0 else 0
            if limit < size:
                self.stats.nodes += 1
        taken = size if size < limit else limit
        self._budget -= taken
        self.bound += _JSON_OVERHEAD * taken
        self.path.add(ident)
        try:
            result: Any = walk(items, depth + 1, size, limit)
            return result
        finally:
            self.path.discard(ident)

    def _mapping(
        self, pairs: Iterable[tuple[Any, Any]], depth: int, size: int, limit: int
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        redactor = self.redactor
        count = 0
        for key, item in pairs:
            if key is Truncated:  # a snapshot already cut this mapping
                out[TRUNCATED_KEY] = f"[truncated {item.count} keys]"
                self.stats.collections += 1
                continue
            if count >= limit:
                out[TRUNCATED_KEY] = f"[truncated {size - count} keys]"
                self.stats.collections += 1
                break
            count += 1
            name = key if type(key) is str and key.isascii() else self.key(key)
            if name in out:
                name = _unique_key(out, name)
            self.bound += _CHAR_BOUND * len(name) + 4
            if redactor is not None and self.redacts(name, item):
                self.bound += _CHAR_BOUND * len(self.marker)
                out[name] = self.marker
            else:
                out[name] = self.convert(item, depth)
        return out

    def _sequence(self, items: Iterable[Any], depth: int, size: int, limit: int) -> list[Any]:
        out: list[Any] = []
        append = out.append
        for count, item in enumerate(items):
            kind = type(item)
            if kind is Truncated:  # a snapshot already cut this sequence
                self.stats.collections += 1
                append(repr(item))
            elif count >= limit:
                append(f"…[truncated {size - count} items]")
                self.stats.collections += 1
                break
            elif (kind is int and _INT64_MIN <= item < _UINT64_END) or item is None or kind is bool:
                append(item)
            elif kind is str:
                append(self._text(item))
            else:
                append(self.convert(item, depth))
        return out

    def _other(self, value: Any, depth: int) -> Any:
        if isinstance(value, Truncated):
            self.stats.collections += 1
            return repr(value)
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth)
        if isinstance(value, str):
            return self._text(str.__str__(value))
        if isinstance(value, int):
            return self.convert(int(value), depth)
        if isinstance(value, float):
            return self.convert(float(value), depth)
        if isinstance(value, datetime.date | datetime.time):
            return self._text(value.isoformat())
        if isinstance(value, datetime.timedelta):
            return value.total_seconds()
        if isinstance(value, _SCALAR_TEXT_TYPES):
            return self._text(str(value))
        if isinstance(value, bytes | bytearray | memoryview):
            return self._bytes(value)
        kind: Any = type(value)
        if isinstance(value, Mapping):
            return self._container(value, depth, self._mapping, value.items(), len(value))
        if isinstance(value, tuple) and hasattr(kind, "_fields"):  # a named tuple
            named = list(zip(kind._fields, value, strict=False))
            return self._container(value, depth, self._mapping, named, len(named))
        if isinstance(value, list | tuple):
            return self._container(value, depth, self._sequence, value, len(value))
        if isinstance(value, set | frozenset):
            ordered = _ordered(value)
            return self._container(value, depth, self._sequence, ordered, len(ordered))
        if isinstance(value, type | FunctionType | BuiltinFunctionType | MethodType | ModuleType):
            return self._text(_qualified_name(value))
        fields = _fields(value, kind)
        if fields is not None:
            return self._container(value, depth, self._mapping, fields, len(fields))
        if callable(getattr(kind, "model_dump", None)):  # pydantic, duck-typed
            return self._container(value, depth, self._model, value, 1)
        if isinstance(value, BaseException):
            return self._text(f"{_type_name(value)}: {exception_message(value)}")
        if kind.__repr__ is object.__repr__:
            public = _public_attributes(value)
            if public:
                return self._container(value, depth, self._mapping, public, len(public))
        return self._text(safe_repr(value, self._max_string))

    def _model(self, model: Any, depth: int, size: int, limit: int) -> Any:
        try:
            dumped = model.model_dump(mode="json")
        except Exception:
            dumped = model.model_dump()
        # The dump is a fresh object graph: converted (and redacted) like any
        # other value, in place of the model.
        return self.convert(dumped, depth - 1)

    def _bytes(self, data: bytes | bytearray | memoryview) -> str:
        limit = self._max_string
        # Text as text (scrubbed and cut like any string); binary as base64.
        raw = bytes(data[: limit * 4 + _SCRUB_MARGIN])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if len(raw) == len(data):
                return self._text(text)
            self.stats.strings += 1
            head = self._text(text[:limit])
            return f"{head}…[truncated {len(data) - len(text[:limit].encode())} bytes]"
        encoded = "base64:" + base64.b64encode(raw[:limit]).decode("ascii")
        self.bound += len(encoded) + 2
        if len(data) > limit:
            self.stats.strings += 1
            return f"{encoded}…[truncated {len(data) - limit} bytes]"
        return encoded

    def _cap(self, value: Any) -> Any:
        try:
            encoded = _encoder.encode(value)
        except Exception as exc:
            self.stats.errors += 1
            return f"…[unserialisable value: {type(exc).__name__}]"
        max_bytes = self.limits.max_value_bytes
        if len(encoded) <= max_bytes:
            return value
        self.stats.values += 1
        head = encoded[:max_bytes].decode("utf-8", "ignore")
        return f"{head}…[truncated value: {len(encoded)} bytes]"


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _unique_key(out: dict[str, Any], name: str) -> str:
    # Distinct keys can convert to the same text (1 and "1"); keep both.
    suffix = 2
    while f"{name}#{suffix}" in out:
        suffix += 1
    return f"{name}#{suffix}"


def _ordered(items: set[Any] | frozenset[Any]) -> list[Any]:
    try:
        return sorted(items)
    except Exception:
        return list(items)


def _fields(value: Any, kind: Any) -> list[tuple[str, Any]] | None:
    """Fields of a msgspec struct, dataclass or attrs instance, else None."""
    if isinstance(value, msgspec.Struct):
        return [(name, getattr(value, name)) for name in value.__struct_fields__]
    if dataclasses.is_dataclass(value):
        return [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)]
    attrs = getattr(kind, "__attrs_attrs__", None)
    if attrs is not None:
        return [(a.name, getattr(value, a.name)) for a in attrs]
    return None


def _qualified_name(value: Any) -> str:
    if isinstance(value, ModuleType):
        return f"<module {value.__name__}>"
    module = getattr(value, "__module__", None)
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
    if not isinstance(name, str):
        return safe_repr(value)
    return name if module in (None, "builtins") else f"{module}.{name}"


def _public_attributes(value: Any) -> list[tuple[str, Any]]:
    try:
        namespace = dict(vars(value))
    except TypeError:
        namespace = {}
        for cls in type(value).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                if isinstance(slot, str) and hasattr(value, slot):
                    namespace[slot] = getattr(value, slot)
    return [(k, v) for k, v in namespace.items() if isinstance(k, str) and not k.startswith("_")]
