"""JSON paths into tool-call arguments and outputs.

A deliberately small dialect, enough to point at one value inside a JSON
document, and nothing that could make evaluation expensive:

- ``$`` is the root (the whole ``parameters`` object or the whole ``output``);
  a leading ``$`` is optional, so ``address.zip``, ``$.address.zip`` and
  ``$['address']['zip']`` are the same path;
- ``.name`` selects an object member whose name is an identifier-like run of
  characters other than ``.``, ``[`` and ``]``;
- ``['any key']`` or ``["any key"]`` selects any member, including names with
  dots or brackets (backslash escapes the quote and the backslash);
- ``[3]`` selects an array element, ``[-1]`` counts from the end.

Wildcards, filters and recursive descent are not supported on purpose: a path
names exactly one place, so a verdict can say exactly what was compared.

Example:
    >>> from roost.platform.evaluation.paths import parse_path, resolve, MISSING
    >>> path = parse_path("items[0].sku")
    >>> path.parts
    ('items', 0, 'sku')
    >>> resolve({"items": [{"sku": "A-1"}]}, path)
    'A-1'
    >>> resolve({"items": []}, path) is MISSING
    True
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "MISSING",
    "JsonPath",
    "Missing",
    "PathSyntaxError",
    "format_path",
    "parse_path",
    "resolve",
]

MAX_PATH_LENGTH: Final = 512
"""Longest path string accepted, in characters."""

MAX_PATH_DEPTH: Final = 32
"""Most components one path may have."""


class Missing:
    """Type of :data:`MISSING`, the marker for "no value at this path"."""

    _instance: Missing | None = None

    def __new__(cls) -> Missing:
        # A singleton, so ``value is MISSING`` is the one way to test for it.
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Final = Missing()
"""Returned by :func:`resolve` when the path leads nowhere (distinct from ``None``,
which is JSON ``null``)."""


class PathSyntaxError(ValueError):
    """A path string that is not valid in the dialect described above."""


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A parsed path: object member names (``str``) and array indices (``int``)."""

    parts: tuple[str | int, ...]

    def __str__(self) -> str:
        return format_path(self.parts)

    def child(self, part: str | int) -> JsonPath:
        """The path one level below this one."""
        return JsonPath((*self.parts, part))

    def startswith(self, other: JsonPath) -> bool:
        """Whether ``other`` is this path or one of its ancestors."""
        return self.parts[: len(other.parts)] == other.parts


_IDENT = re.compile(r"[^.\[\]'\"\s]+")
_INDEX = re.compile(r"-?\d+")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def parse_path(text: str) -> JsonPath:
    """Parse a path string.

    Args:
        text: The path, for example ``"$.address.zip"`` or ``"items[0].sku"``.

    Returns:
        The parsed path; ``$`` alone gives the root (no parts).

    Raises:
        PathSyntaxError: with the offending position when the text is not a path.

    Example:
        >>> parse_path("$['a.b'][1]").parts
        ('a.b', 1)
    """
    if not isinstance(text, str):
        raise PathSyntaxError("a path must be a string")
    if not text or text.strip() != text:
        raise PathSyntaxError("a path must be non-empty and have no surrounding spaces")
    if len(text) > MAX_PATH_LENGTH:
        raise PathSyntaxError(f"a path may have at most {MAX_PATH_LENGTH} characters")
    parts: list[str | int] = []
    pos = 0
    if text.startswith("$"):
        pos = 1
    else:
        # A bare first member ("address.zip") reads as "$.address.zip".
        match = _IDENT.match(text, pos)
        if match is None:
            raise PathSyntaxError(f"expected a member name at position {pos}")
        parts.append(match.group())
        pos = match.end()
    while pos < len(text):
        char = text[pos]
        if char == ".":
            match = _IDENT.match(text, pos + 1)
            if match is None:
                raise PathSyntaxError(f"expected a member name after '.' at position {pos}")
            parts.append(match.group())
            pos = match.end()
        elif char == "[":
            pos = _parse_bracket(text, pos + 1, parts)
        else:
            raise PathSyntaxError(f"unexpected {char!r} at position {pos}")
        if len(parts) > MAX_PATH_DEPTH:
            raise PathSyntaxError(f"a path may have at most {MAX_PATH_DEPTH} components")
    return JsonPath(tuple(parts))


def _parse_bracket(text: str, pos: int, parts: list[str | int]) -> int:
    """Parse what follows ``[`` and return the position after the closing ``]``."""
    if pos < len(text) and text[pos] in "'\"":
        quote = text[pos]
        chars: list[str] = []
        pos += 1
        while pos < len(text) and text[pos] != quote:
            if text[pos] == "\\" and pos + 1 < len(text):
                pos += 1
            chars.append(text[pos])
            pos += 1
        if pos >= len(text):
            raise PathSyntaxError("unterminated quoted member name")
        parts.append("".join(chars))
        pos += 1
    else:
        match = _INDEX.match(text, pos)
        if match is None:
            raise PathSyntaxError(
                f"expected an array index or a quoted member name at position {pos}"
            )
        parts.append(int(match.group()))
        pos = match.end()
    if pos >= len(text) or text[pos] != "]":
        raise PathSyntaxError(f"expected ']' at position {pos}")
    return pos + 1


def format_path(parts: tuple[str | int, ...], root: str = "$") -> str:
    """Render path parts in the canonical dialect (dots where possible).

    Example:
        >>> format_path(("address", "zip"), root="parameters")
        'parameters.address.zip'
        >>> format_path(("a.b", 0))
        "$['a.b'][0]"
    """
    out = [root]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.fullmatch(part):
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


def resolve(document: Any, path: JsonPath) -> Any:
    """The value at ``path`` inside ``document``, or :data:`MISSING`.

    Member names only select from objects and indices only from arrays, so
    ``[0]`` on an object or ``.name`` on an array lead nowhere rather than
    guessing.
    """
    value = document
    for part in path.parts:
        if isinstance(part, int):
            if not isinstance(value, list) or not -len(value) <= part < len(value):
                return MISSING
            value = value[part]
        else:
            if not isinstance(value, dict) or part not in value:
                return MISSING
            value = value[part]
    return value
