from __future__ import annotations

import collections
import datetime
import decimal
import doctest
import enum
import fractions
import ipaddress
import json
import math
import pathlib
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
import pydantic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roost.capture
from roost.capture import (
    CaptureLimits,
    CaptureStats,
    Converter,
    encoded_size,
    exception_message,
    qualified_type_name,
    safe_repr,
    to_json_object,
    to_jsonable,
)
from roost.redaction import REDACTED, Redactor


def test_doctests() -> None:
    assert doctest.testmod(roost.capture).failed == 0


class Colour(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Point(NamedTuple):
    x: int
    y: int


@dataclass
class Address:
    street: str
    zip_code: str


class Card(msgspec.Struct):
    holder: str
    card_number: str


class Customer(pydantic.BaseModel):
    name: str
    balance: decimal.Decimal
    since: datetime.date


class Plain:
    def __init__(self) -> None:
        self.visible = 1
        self._hidden = 2


class Slotted:
    __slots__ = ("a", "_b")

    def __init__(self) -> None:
        self.a = 1
        self._b = 2


class WithRepr:
    def __repr__(self) -> str:
        return "<WithRepr 7>"


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("repr is broken")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str is broken")


def test_scalars_and_stdlib_types() -> None:
    when = datetime.datetime(2026, 8, 1, 12, 30, tzinfo=datetime.UTC)
    value = {
        "when": when,
        "day": datetime.date(2026, 8, 1),
        "at": datetime.time(9, 5),
        "wait": datetime.timedelta(seconds=90, milliseconds=500),
        "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "amount": decimal.Decimal("19.990"),
        "ratio": fractions.Fraction(1, 3),
        "z": complex(1, 2),
        "path": pathlib.PurePosixPath("/tmp/x"),
        "ip": ipaddress.ip_address("10.0.0.1"),
        "colour": Colour.RED,
        "level": Level.HIGH,
        "big": 2**80,
        "nan": math.nan,
        "inf": math.inf,
        "-inf": -math.inf,
        "flag": True,
        "nothing": None,
    }
    assert to_jsonable(value) == {
        "when": "2026-08-01T12:30:00+00:00",
        "day": "2026-08-01",
        "at": "09:05:00",
        "wait": 90.5,
        "id": "12345678-1234-5678-1234-567812345678",
        "amount": "19.990",
        "ratio": "1/3",
        "z": "(1+2j)",
        "path": "/tmp/x",
        "ip": "10.0.0.1",
        "colour": "red",
        "level": 3,
        "big": 2**80,
        "nan": "NaN",
        "inf": "Infinity",
        "-inf": "-Infinity",
        "flag": True,
        "nothing": None,
    }


def test_bytes() -> None:
    assert to_jsonable(b"hello") == "hello"
    assert to_jsonable(bytearray(b"hi")) == "hi"
    assert to_jsonable(memoryview(b"hey")) == "hey"
    assert to_jsonable(b"\xff\x00") == "base64:/wA="
    long = to_jsonable(b"\xff" * 20, limits=CaptureLimits(max_string=4))
    assert long == "base64://///w==…[truncated 16 bytes]"
    text = to_jsonable(
        b"card 4111111111111111 " + b"z" * 100,
        limits=CaptureLimits(max_string=30),
        redactor=Redactor(),
    )
    assert text.startswith("card [REDACTED] zzz") and text.endswith("…[truncated 92 chars]")
    huge = to_jsonable(b"z" * 100_000, limits=CaptureLimits(max_string=10))
    assert huge == "zzzzzzzzzz…[truncated 99990 bytes]"


def test_structured_objects_become_objects() -> None:
    value = [
        Point(1, 2),
        Address("1 Main St", "94105"),
        Card(holder="Ada", card_number="4111111111111111"),
        Customer(name="Ada", balance=decimal.Decimal("10.50"), since=datetime.date(2020, 1, 2)),
        Plain(),
        Slotted(),
        WithRepr(),
    ]
    assert to_jsonable(value, redactor=Redactor()) == [
        {"x": 1, "y": 2},
        {"street": "1 Main St", "zip_code": "94105"},
        {"holder": "Ada", "card_number": REDACTED},
        {"name": "Ada", "balance": "10.50", "since": "2020-01-02"},
        {"visible": 1},
        {"a": 1},
        "<WithRepr 7>",
    ]


def test_collections() -> None:
    assert to_jsonable({3, 1, 2}) == [1, 2, 3]
    assert sorted(map(str, to_jsonable(frozenset({"a", 1})))) == ["1", "a"]  # unsortable: any order
    assert to_jsonable(collections.OrderedDict(a=1)) == {"a": 1}
    assert to_jsonable(collections.defaultdict(list, a=[1])) == {"a": [1]}
    assert to_jsonable(collections.deque([1, 2])) == "deque([1, 2])"
    assert to_jsonable((1, (2, 3))) == [1, [2, 3]]


def test_keys_become_text_without_losing_entries() -> None:
    value = {1: "int", "1": "str", None: "none", Colour.RED: "enum", (1, 2): "tuple", 2.5: "f"}
    assert to_jsonable(value) == {
        "1": "int",
        "1#2": "str",
        "null": "none",
        "red": "enum",
        "(1, 2)": "tuple",
        "2.5": "f",
    }
    assert to_jsonable({False: 0}) == {"false": 0}


def test_generators_and_iterators_are_not_consumed() -> None:
    def numbers() -> Iterator[int]:
        yield 1

    gen = numbers()
    converted = to_jsonable({"gen": gen, "it": iter([1, 2])})
    assert converted["gen"].startswith("<generator object")
    assert next(gen) == 1


def test_types_functions_modules_and_exceptions() -> None:
    assert to_jsonable(Address) == "tests.test_capture.Address"
    assert to_jsonable(len) == "len"
    assert to_jsonable(json) == "<module json>"
    assert to_jsonable(ValueError("bad")) == "ValueError: bad"
    assert to_jsonable(BadStr()).startswith("tests.test_capture.BadStr: <str() raised")


def test_cycles_are_broken_visibly() -> None:
    loop: dict[str, Any] = {"name": "a"}
    loop["self"] = loop
    items: list[Any] = [1]
    items.append(items)
    stats = CaptureStats()
    assert to_jsonable([loop, items], stats=stats) == [
        {"name": "a", "self": "…[cycle]"},
        [1, "…[cycle]"],
    ]
    assert stats.cycles == 2
    # A value shared twice (not a cycle) is converted twice.
    shared = {"k": 1}
    assert to_jsonable([shared, shared]) == [{"k": 1}, {"k": 1}]


def test_failing_reprs_and_dumps_never_raise() -> None:
    class BrokenModel:
        def model_dump(self, **kwargs: Any) -> Any:
            raise RuntimeError("dump failed")

    class ExplodingMapping(Mapping[str, int]):
        def __getitem__(self, key: str) -> int:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("dictionary changed size during iteration")

        def __len__(self) -> int:
            return 1

    stats = CaptureStats()
    value = to_jsonable([BadRepr(), BrokenModel(), ExplodingMapping()], stats=stats)
    assert value[0].endswith("BadRepr object; repr raised RuntimeError>")
    assert value[1].startswith("…[unserialisable tests.test_capture.")
    assert value[1].endswith("BrokenModel: RuntimeError]")
    assert value[2].startswith("…[unserialisable")
    assert stats.errors == 2
    assert safe_repr(BadRepr()).endswith("repr raised RuntimeError>")


def test_lone_surrogates_become_escapes() -> None:
    value = to_jsonable({"bad\ud800key": "x\udfffy"})
    assert value == {"bad\\ud800key": "x\\udfffy"}
    json.loads(msgspec.json.encode(value))


def test_string_cap_marks_the_cut() -> None:
    stats = CaptureStats()
    assert to_jsonable("a" * 10, limits=CaptureLimits(max_string=4), stats=stats) == (
        "aaaa…[truncated 6 chars]"
    )
    assert stats.strings == 1


def test_collection_caps_mark_the_cut() -> None:
    limits = CaptureLimits(max_items=2)
    assert to_jsonable(list(range(5)), limits=limits) == [0, 1, "…[truncated 3 items]"]
    assert to_jsonable({"a": 1, "b": 2, "c": 3}, limits=limits) == {
        "a": 1,
        "b": 2,
        "…": "[truncated 1 keys]",
    }
    assert to_jsonable(set(range(5)), limits=limits) == [0, 1, "…[truncated 3 items]"]


def test_depth_cap() -> None:
    value: Any = "leaf"
    for _ in range(10):
        value = [value]
    converted = to_jsonable(value, limits=CaptureLimits(max_depth=3))
    assert converted == [[["…[truncated: depth limit, list]"]]]


def test_node_budget_bounds_the_work() -> None:
    stats = CaptureStats()
    wide = [[i, i] for i in range(100)]
    converted = to_jsonable(wide, limits=CaptureLimits(max_nodes=50), stats=stats)
    assert stats.nodes >= 1
    # 100 outer items take the budget down to 0 after the first 50 items.
    assert converted[-1] == "…[truncated 50 items]"
    inner = converted[0]
    assert inner == ["…[truncated 2 items]"]


def test_per_value_cap_keeps_a_visible_head() -> None:
    stats = CaptureStats()
    value = {"rows": ["x" * 100 for _ in range(50)]}
    converted = to_jsonable(value, limits=CaptureLimits(max_value_bytes=200), stats=stats)
    assert isinstance(converted, str)
    assert converted.startswith('{"rows":["xxxx')
    assert converted.endswith(f"…[truncated value: {encoded_size(value)} bytes]")
    assert stats.values == 1


def test_redaction_runs_before_truncation() -> None:
    # The card number straddles the cut: it must still be found and masked.
    text = "x" * 10 + " 4111 1111 1111 1111 tail"
    converted = to_jsonable(text, limits=CaptureLimits(max_string=15), redactor=Redactor())
    assert "4111" not in converted
    assert "1111" not in converted


def test_redaction_applies_to_keys_at_every_level_and_counts() -> None:
    stats = CaptureStats()
    value = {"user": {"Password": "x", "cards": [{"CVV": 123}]}, "note": "SSN 078-05-1120"}
    converted = to_jsonable(value, redactor=Redactor(), stats=stats)
    assert converted == {
        "user": {"Password": REDACTED, "cards": [{"CVV": REDACTED}]},
        "note": f"SSN {REDACTED}",
    }
    assert stats.redacted == 3  # two keys, one SSN inside a string


def test_to_json_object_caps_each_value_on_its_own() -> None:
    limits = CaptureLimits(max_value_bytes=64)
    converted = to_json_object(
        {"small": 1, "big": "y" * 500, "token": "t", 7: "seven"},
        limits=limits,
        redactor=Redactor(),
    )
    assert converted["small"] == 1
    assert converted["big"].endswith("…[truncated value: 502 bytes]")
    assert converted["token"] == REDACTED
    assert converted["7"] == "seven"


def test_converter_text_without_redaction() -> None:
    converter = Converter(redactor=Redactor())
    assert converter.text("card 4111111111111111") == f"card {REDACTED}"
    assert converter.text("card 4111111111111111", redact=False) == "card 4111111111111111"


def test_helpers() -> None:
    assert qualified_type_name(ValueError) == "ValueError"
    assert qualified_type_name(Address) == "tests.test_capture.Address"
    assert exception_message(BadStr()) == "<str() raised RuntimeError>"


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="max_string must be an integer >= 1"):
        CaptureLimits(max_string=0)
    with pytest.raises(ValueError, match="max_payload_bytes must be an integer >= 1024"):
        CaptureLimits(max_payload_bytes=10)
    with pytest.raises(ValueError, match="max_items"):
        CaptureLimits(max_items=2.5)  # type: ignore[arg-type]
    assert CaptureLimits(snapshot_nodes=0).snapshot_nodes == 0


# -- property: anything converts to valid JSON, never raising -----------------------


def _odd_leaves() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(),
        st.binary(max_size=40),
        st.datetimes(),
        st.dates(),
        st.decimals(allow_nan=True),
        st.uuids(),
        st.fractions(),
        st.complex_numbers(),
        st.sampled_from([Colour.RED, Level.HIGH]),
        st.builds(BadRepr),
        st.builds(WithRepr),
        st.builds(Plain),
        st.builds(Slotted),
        st.builds(Address, st.text(), st.text()),
        st.builds(Point, st.integers(), st.integers()),
        st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
    )


_values = st.recursive(
    _odd_leaves(),
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.tuples(children, children),
        st.dictionaries(st.one_of(st.text(), st.integers(), st.none()), children, max_size=6),
        st.frozensets(st.one_of(st.integers(), st.text()), max_size=5),
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(_values, st.integers(min_value=1, max_value=50), st.integers(min_value=1, max_value=8))
def test_any_value_converts_to_valid_json(value: Any, max_items: int, max_depth: int) -> None:
    limits = CaptureLimits(max_items=max_items, max_depth=max_depth, max_string=64)
    converted = to_jsonable(value, limits=limits, redactor=Redactor())
    encoded = msgspec.json.encode(converted)
    assert json.loads(encoded) == json.loads(json.dumps(converted, allow_nan=False))


@settings(max_examples=100, deadline=None)
@given(_values)
def test_cyclic_structures_convert(value: Any) -> None:
    holder: list[Any] = [value]
    holder.append(holder)
    converted = to_jsonable({"v": holder, "me": holder})
    json.loads(msgspec.json.encode(converted))
