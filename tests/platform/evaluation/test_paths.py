from __future__ import annotations

import pytest

from roost.platform.evaluation.paths import (
    MISSING,
    JsonPath,
    PathSyntaxError,
    format_path,
    parse_path,
    resolve,
)


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("$", ()),
        ("zip", ("zip",)),
        ("$.zip", ("zip",)),
        ("$.address.zip", ("address", "zip")),
        ("address.zip", ("address", "zip")),
        ("items[0].sku", ("items", 0, "sku")),
        ("$.items[-1]", ("items", -1)),
        ("$['a.b']", ("a.b",)),
        ('$["a b"][2]', ("a b", 2)),
        ("$['it\\'s']", ("it's",)),
        ("$[0][1]", (0, 1)),
        ("caller-id", ("caller-id",)),
    ],
)
def test_parse_path(text: str, parts: tuple[str | int, ...]) -> None:
    assert parse_path(text).parts == parts


@pytest.mark.parametrize(
    "text",
    ["", " a", "a.", "a..b", "a[", "a[x]", "a[0", "$x", "a['b", "a]", "$.", "[0]x", "a b"],
)
def test_parse_path_rejects(text: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(text)


def test_parse_path_limits() -> None:
    with pytest.raises(PathSyntaxError, match="at most"):
        parse_path("a" * 600)
    with pytest.raises(PathSyntaxError, match="components"):
        parse_path(".".join(["a"] * 40))


def test_parse_path_rejects_non_string() -> None:
    with pytest.raises(PathSyntaxError):
        parse_path(3)  # type: ignore[arg-type]


def test_resolve() -> None:
    doc = {"a": {"b": [10, {"c": None}]}, "x.y": 1}
    assert resolve(doc, parse_path("a.b[0]")) == 10
    assert resolve(doc, parse_path("a.b[-1].c")) is None
    assert resolve(doc, parse_path("$['x.y']")) == 1
    assert resolve(doc, parse_path("$")) is doc
    # Each wrong turn leads nowhere rather than guessing.
    assert resolve(doc, parse_path("a.b[2]")) is MISSING
    assert resolve(doc, parse_path("a.b.c")) is MISSING
    assert resolve(doc, parse_path("a[0]")) is MISSING
    assert resolve(doc, parse_path("x.y")) is MISSING
    assert resolve(None, parse_path("a")) is MISSING


def test_missing_is_a_falsy_singleton() -> None:
    assert type(MISSING)() is MISSING
    assert not MISSING
    assert repr(MISSING) == "MISSING"


def test_format_round_trips() -> None:
    for text in ["$.a.b[0]", "$['a.b'][1].c", "$['it\\'s']", "$"]:
        path = parse_path(text)
        assert parse_path(str(path)) == path
    assert format_path(("a", 0), root="parameters") == "parameters.a[0]"


def test_path_helpers() -> None:
    path = JsonPath(("a",)).child(0)
    assert path.parts == ("a", 0)
    assert path.startswith(JsonPath(("a",)))
    assert not JsonPath(("a",)).startswith(path)
