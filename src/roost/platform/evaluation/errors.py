"""The one error a malformed expectation spec raises.

The API turns it into a FastAPI-shaped 422 (``loc`` is ready to be appended to
``("body", "digital_human")``), the CLI prints ``str(error)``; both say exactly
which part of the spec is wrong.

Example:
    >>> from roost.platform.evaluation.errors import ExpectationError
    >>> error = ExpectationError(("expected_tool_calls", 0, "name"), "must be a non-empty string")
    >>> str(error)
    'expected_tool_calls[0].name: must be a non-empty string'
"""

from __future__ import annotations

from typing import Final

__all__ = ["ExpectationError", "format_loc"]

Loc = tuple[str | int, ...]

_SIMPLE_KEY_CHARS: Final = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
)


def format_loc(loc: Loc) -> str:
    """Render a location as a readable path: ``a.b[0]['$.c']``."""
    out: list[str] = []
    for part in loc:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif part and set(part) <= _SIMPLE_KEY_CHARS and not part[0].isdigit():
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{part!r}]")
    return "".join(out) or "$"


class ExpectationError(ValueError):
    """A tool-call expectation spec that cannot be evaluated.

    Attributes:
        loc: Where the problem is, as keys and indices from the digital human's
            data (for example ``("tool_call_rules", "tools", 1, "max")``).
        message: What is wrong there, in one sentence.
    """

    def __init__(self, loc: Loc, message: str) -> None:
        self.loc: Loc = tuple(loc)
        self.message = message
        super().__init__(f"{format_loc(self.loc)}: {message}")

    def within(self, *prefix: str | int) -> ExpectationError:
        """The same error located under ``prefix``."""
        return ExpectationError((*prefix, *self.loc), self.message)
