"""Handles for records that finish later: manual tool calls and lasting events.

:meth:`CallRecorder.tool_call <roost.recorder.CallRecorder.tool_call>` and
:meth:`CallRecorder.event <roost.recorder.CallRecorder.event>` append their
record at once and return a handle. Finishing the handle fills in the end time
(and, for a tool call, the output or the failure) in place, exactly as a
decorated tool does when it returns. A handle that is never finished leaves an
unfinished tool call (listed in ``metadata["roost"]["unfinished_tool_calls"]``)
or an instantaneous event. The first finish wins; later ones are ignored.

Example:
    >>> from roost.recorder import CallRecorder
    >>> rec = CallRecorder("1", auto_submit=False)
    >>> with rec.tool_call("transfer", queue="billing") as call:
    ...     call.output = "queued"
    >>> rec.build_request().tool_calls[0].output
    'queued'
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any

from roost.payload import E_END, E_END_MS, NO_OUTPUT, T_END, T_END_MS, T_ERROR

if TYPE_CHECKING:
    from roost.recorder import CallRecorder

__all__ = ["EventHandle", "ToolCallHandle"]


class ToolCallHandle:
    """A manually recorded tool call; finish it with :meth:`finish` or :meth:`fail`.

    As a context manager it finishes on exit: as failed if an exception escapes
    (the exception propagates), otherwise with :attr:`output`.

    Example:
        >>> from roost.recorder import CallRecorder
        >>> rec = CallRecorder("1", auto_submit=False)
        >>> call = rec.tool_call("charge", amount=5)
        >>> call.fail(TimeoutError("gateway"))
        >>> c = rec.build_request().tool_calls[0]
        >>> c.status, c.error_type, c.error_message
        ('error', 'TimeoutError', 'gateway')
    """

    __slots__ = ("_entry", "_name", "_recorder", "output")

    def __init__(self, recorder: CallRecorder, entry: list[Any] | None, name: str) -> None:
        self._recorder = recorder
        self._entry = entry
        self._name = name
        self.output: Any = None
        """Output recorded when the handle finishes without an explicit one."""

    @property
    def call_id(self) -> str | None:
        """The id the payload gives this call (None if it was not recorded)."""
        if self._entry is None:
            return None
        for number, entry in enumerate(self._recorder._tools, 1):
            if entry is self._entry:
                return f"{self._recorder._prefix}-{number}"
        return None

    @property
    def finished(self) -> bool:
        """Whether the call was finished (or not recorded at all)."""
        entry = self._entry
        return entry is None or entry[T_END] is not None or entry[T_ERROR] is not None

    def finish(self, output: Any = NO_OUTPUT, *, end_ms: float | None = None) -> None:
        """Record that the tool returned ``output`` (default: :attr:`output`)."""
        self._complete(self.output if output is NO_OUTPUT else output, None, end_ms)

    def fail(self, error: BaseException | str, *, end_ms: float | None = None) -> None:
        """Record that the tool failed with ``error`` (an exception or a message)."""
        self._complete(NO_OUTPUT, error, end_ms)

    def _complete(
        self, output: Any, error: BaseException | str | None, end_ms: float | None
    ) -> None:
        entry = self._entry
        if entry is None or self.finished:
            return
        recorder = self._recorder
        try:
            if end_ms is not None:
                entry[T_END_MS] = recorder._ms(end_ms, "tool_call end_ms")
            if isinstance(error, BaseException):
                recorder._fail_tool(entry, error)
            elif error is not None:
                entry[T_ERROR] = (None, str(error))
                entry[T_END] = recorder._clock()
            else:
                recorder._end_tool(entry, None if output is NO_OUTPUT else output)
        except Exception as exc:
            recorder._internal_error("finish a tool call", exc)

    def __enter__(self) -> ToolCallHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.fail(exc)
        else:
            self.finish()

    def __repr__(self) -> str:
        return f"ToolCallHandle({self._name!r}, finished={self.finished})"


class EventHandle:
    """A recorded event; :meth:`end` (or leaving the ``with`` block) sets its end.

    Example:
        >>> from roost.recorder import CallRecorder
        >>> rec = CallRecorder("1", auto_submit=False)
        >>> hold = rec.event("hold")
        >>> hold.end()
        >>> rec.build_request().events[0].end_offset_ms is not None
        True
    """

    __slots__ = ("_entry", "_recorder", "_title")

    def __init__(self, recorder: CallRecorder, entry: list[Any] | None, title: str) -> None:
        self._recorder = recorder
        self._entry = entry
        self._title = title

    @property
    def ended(self) -> bool:
        """Whether an end was recorded (or the event was not recorded at all)."""
        entry = self._entry
        return entry is None or entry[E_END] is not None or entry[E_END_MS] is not None

    def end(self, end_ms: float | None = None) -> None:
        """Record the event's end: now, or at the offset ``end_ms``. First call wins."""
        entry = self._entry
        if entry is None or self.ended:
            return
        try:
            if end_ms is not None:
                entry[E_END_MS] = self._recorder._ms(end_ms, "event end_ms")
            entry[E_END] = self._recorder._clock()
        except Exception as exc:
            self._recorder._internal_error("end an event", exc)

    def __enter__(self) -> EventHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.end()

    def __repr__(self) -> str:
        return f"EventHandle({self._title!r}, ended={self.ended})"
