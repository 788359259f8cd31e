"""Recording what an agent does during one simulated call.

A voice agent wraps each call in a :class:`CallRecorder` and decorates its tools
with :func:`tool`. While the call runs, every tool call, event and transcript line
is appended to the recorder; after hang-up the recorder assembles one
:class:`~roost.schema.UpdateSimulationRequest` and hands it to delivery, which
makes it durable and posts it to the platform.

**The zero point.** Every offset is in milliseconds on a monotonic clock, counted
from the moment the call was answered:

- SIP: the moment the agent sends ``200 OK`` to the ``INVITE``;
- CHIRP (WebSocket): the moment the ``101 Switching Protocols`` response is sent,
  that is, when the server accepts the WebSocket.

By default the clock starts at ``__enter__``, so enter the recorder right where
the agent answers. An agent that creates it earlier passes ``answered_at`` (a
``time.monotonic_ns()`` reading) or calls :meth:`CallRecorder.mark_answered`.

**Which call a tool belongs to.** The active recorder lives in a
:class:`contextvars.ContextVar`, so concurrent calls in one process never mix:

- asyncio tasks created inside ``async with recorder:`` inherit it;
- ``asyncio.to_thread`` and ``loop.run_in_executor`` under asyncio's default
  context handling copy it too (``to_thread`` always does);
- a plain ``threading.Thread`` or a ``ThreadPoolExecutor.submit`` does **not**
  copy context. Submit ``recorder.bind(fn)`` instead of ``fn``, or run the target
  through ``contextvars.copy_context().run`` (one fresh copy per submission: one
  context object cannot be entered by two threads at once).

A decorated tool called outside any call runs unchanged and records nothing.

**The hot path.** Recording a tool call appends one list to the recorder and does
nothing else: no I/O, no JSON, no locks. Arguments and outputs are kept by
reference, except that mutable containers (dicts, lists, sets...) are copied up
to ``CaptureLimits.snapshot_nodes`` items, so an agent that later mutates an
argument or a returned dict does not rewrite what the tool was called with.
Custom objects (dataclasses, pydantic models) are kept by reference and read at
call end. Parameter binding, conversion to JSON, redaction and size caps all
happen once, when the call ends (``roost.payload``). Exceptions are reduced to
their type and message when they are raised, so a recorded failure does not keep
the failing frames alive.

**Failure policy.** Recording never raises into agent code. An internal failure
is swallowed, counted in :attr:`CallRecorder.stats` and in the payload's
``metadata["roost"]``, and logged once per recorder on the ``roost`` logger. A
tool's own exception is re-raised unchanged: same object, same traceback.

Example:
    >>> import roost
    >>> @roost.tool
    ... def lookup_order(order_id: str, verbose: bool = False) -> dict[str, str]:
    ...     '''Find an order by its number.'''
    ...     return {"status": "shipped"}
    >>> with roost.CallRecorder("720488", auto_submit=False) as recorder:
    ...     order = lookup_order("A-17")
    ...     _ = recorder.event("verified caller")
    >>> call = recorder.build_request().tool_calls[0]
    >>> call.name, call.description, call.parameters, call.output, call.status
    ('lookup_order', 'Find an order by its number.', {'order_id': 'A-17', 'verbose': False}, {'status': 'shipped'}, 'ok')
"""  # noqa: E501

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from contextvars import Token
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ParamSpec, Protocol, TypeVar

from roost._idvalue import InvalidSimulationResultId, validate_simulation_result_id
from roost.capture import DEFAULT_LIMITS, CaptureLimits, exception_message
from roost.handles import EventHandle, ToolCallHandle
from roost.payload import (
    NO_OUTPUT,
    T_END,
    T_ERROR,
    T_OUTPUT,
    T_SPEC,
    T_START_MS,
    Recording,
    ToolSpec,
    assemble,
)
from roost.redaction import Redactor
from roost.schema import UpdateSimulationRequest
from roost.snapshot import SNAPSHOT_TYPES, snapshot
from roost.tools import _CURRENT, current_recorder, tool

__all__ = [
    "CallRecorder",
    "EnrichmentSink",
    "EventHandle",
    "RecorderStats",
    "ToolCallHandle",
    "current_recorder",
    "tool",
]

logger = logging.getLogger("roost")

_P = ParamSpec("_P")
_R = TypeVar("_R")

_NS_PER_MS = 1_000_000


class EnrichmentSink(Protocol):
    """Where a finished call's payload goes; ``roost.delivery.Delivery`` is one.

    ``submit`` blocks until the payload is durable (written to the outbox) and
    returns its outbox id; sending happens later, elsewhere.
    """

    def submit(self, request: UpdateSimulationRequest) -> str:
        """Make ``request`` durable for delivery and return its outbox id."""
        ...


@dataclass(slots=True)
class RecorderStats:
    """Counters of what a recorder could not do; all zero on a healthy call.

    Attributes:
        internal_errors: Failures inside the recorder, swallowed.
        late_records: Records made after the call finished (not in the payload).
        dropped_records: Records over ``CaptureLimits.max_entries`` (counted only).
        rejected: Inputs that could not be used (bad speaker, bad trace id...);
            listed in ``metadata["roost"]["rejected"]``.
        submit_failures: Hand-offs to delivery that raised.
    """

    internal_errors: int = 0
    late_records: int = 0
    dropped_records: int = 0
    rejected: int = 0
    submit_failures: int = 0


@functools.cache
def _default_redactor() -> Redactor:
    return Redactor()


def _default_sink() -> EnrichmentSink:
    # Imported on first use so that `import roost` never loads SQLite or httpx.
    from roost.delivery import default_delivery

    return default_delivery()


class CallRecorder:
    """Records one call and hands its enrichment to delivery when the call ends.

    Use one recorder per call, as a context manager (sync or async). On exit it
    assembles the payload (redacted, capped) and, unless ``auto_submit=False``,
    submits it: directly in ``__exit__``, through ``asyncio.to_thread`` in
    ``__aexit__`` so the event loop never waits on disk.

    Args:
        simulation_result_id: The ``X-Simulation-Result-Id`` the call carried.
            None, empty or blank (a call that is not a simulation): everything
            still works, nothing is submitted, and that is logged once. A
            malformed id (over 128 characters, control characters) never raises
            here: it is logged as a warning saying what is wrong, counted in
            ``stats.rejected``, and still submitted, so the platform's refusal is
            kept in the outbox with the payload rather than the call lost.
        sink: Where to submit; default ``roost.delivery.default_delivery()``,
            imported at the first submit.
        auto_submit: Submit on exit. With False, take the payload from
            :meth:`build_request` (or the return of :meth:`finish`).
        answered_at: The zero point as a ``clock()`` reading (by default
            ``time.monotonic_ns()``), when the call was answered before the
            recorder was entered.
        redactor: Redaction rules; default :class:`~roost.redaction.Redactor`.
            ``Redactor.disabled()`` turns redaction off.
        limits: Size caps; default :data:`~roost.capture.DEFAULT_LIMITS`.
        clock: Monotonic nanosecond clock; inject one to drive time in tests.
        tags: Initial tags of the call.
        metadata: Initial call metadata.

    Example:
        >>> sent = []
        >>> class ListSink:
        ...     def submit(self, request):
        ...         sent.append(request)
        ...         return "outbox-1"
        >>> with CallRecorder("720488", sink=ListSink()) as recorder:
        ...     recorder.tag("smoke")
        >>> sent[0].tags, recorder.outbox_id
        (['smoke'], 'outbox-1')
    """

    __slots__ = (
        "__weakref__",
        "_auto_submit",
        "_clock",
        "_closed",
        "_created_ns",
        "_events",
        "_exit_error",
        "_limits",
        "_logged",
        "_prefix",
        "_redactor",
        "_rejected",
        "_request",
        "_room",
        "_sink",
        "_submitted",
        "_tags",
        "_tokens",
        "_tools",
        "_trace_ids",
        "_transcript",
        "_zero_explicit",
        "_zero_ns",
        "metadata",
        "outbox_id",
        "simulation_result_id",
        "stats",
    )

    def __init__(
        self,
        simulation_result_id: str | int | None,
        *,
        sink: EnrichmentSink | None = None,
        auto_submit: bool = True,
        answered_at: int | None = None,
        redactor: Redactor | None = None,
        limits: CaptureLimits | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
        tags: Iterable[str] = (),
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.simulation_result_id = _normalise_id(simulation_result_id)
        """The id the payload is for, stripped; None when the call carried none."""
        self.metadata: dict[str, Any] = dict(metadata) if metadata else {}
        """Call metadata; set keys directly or through :meth:`set_metadata`."""
        self.stats = RecorderStats()
        """What the recorder could not do (see :class:`RecorderStats`)."""
        self.outbox_id: str | None = None
        """The delivery outbox id once the payload was submitted."""
        self._sink = sink
        self._auto_submit = auto_submit
        self._redactor = redactor if redactor is not None else _default_redactor()
        self._limits = limits if limits is not None else DEFAULT_LIMITS
        # Tool entries still accepted; -1 once the call is finished, so the hot
        # path tests "closed" and "full" with one comparison.
        self._room = self._limits.max_entries
        self._clock = clock
        self._created_ns = clock()
        self._zero_ns: int | None = answered_at
        self._zero_explicit = answered_at is not None
        self._prefix = os.urandom(4).hex()
        self._tools: list[list[Any]] = []
        self._events: list[list[Any]] = []
        self._transcript: list[tuple[Any, ...]] = []
        self._tags: list[Any] = list(tags)
        self._trace_ids: list[Any] = []
        self._rejected: list[tuple[str, str, Any]] = []
        self._tokens: list[Token[CallRecorder | None]] = []
        self._logged: set[str] = set()
        self._closed = False
        self._submitted = False
        self._request: UpdateSimulationRequest | None = None
        self._exit_error: str | None = None
        if self.simulation_result_id is not None:
            self._check_id(self.simulation_result_id)

    # -- lifecycle ---------------------------------------------------------------

    def __enter__(self) -> CallRecorder:
        self._activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._deactivate(exc):
            self.finish()

    async def __aenter__(self) -> CallRecorder:
        self._activate()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._deactivate(exc):
            await self.afinish()

    def mark_answered(self, at_ns: int | None = None) -> None:
        """Set the zero point: the call was answered now, or at ``at_ns``.

        Call it where the agent sends SIP ``200 OK`` or accepts the WebSocket,
        when the recorder was created or entered before that. The first explicit
        zero point wins; later calls are ignored and logged once.

        Example:
            >>> ticks = iter([0, 5_000_000, 9_000_000])
            >>> rec = CallRecorder("1", auto_submit=False, clock=lambda: next(ticks))
            >>> rec.mark_answered()
            >>> rec.now_ms()
            4
        """
        try:
            if self._zero_explicit:
                self._log_once("mark", logging.WARNING, "mark_answered() called again; ignored")
                return
            self._zero_ns = self._clock() if at_ns is None else int(at_ns)
            self._zero_explicit = True
        except Exception as exc:
            self._internal_error("mark the answer time", exc)

    @property
    def answered_at(self) -> int | None:
        """The zero point on the recorder's clock (ns), once known."""
        return self._zero_ns

    def now_ms(self) -> int:
        """Milliseconds since the zero point (or since creation, if not yet set).

        Handy for transcript offsets. Never raises (returns 0 on a clock failure).

        Example:
            >>> ticks = iter([0, 2_500_000_000])
            >>> rec = CallRecorder("1", auto_submit=False, clock=lambda: next(ticks))
            >>> rec.now_ms()
            2500
        """
        try:
            zero = self._zero_ns if self._zero_ns is not None else self._created_ns
            return (self._clock() - zero) // _NS_PER_MS
        except Exception as exc:
            self._internal_error("read the clock", exc)
            return 0

    def finish(self) -> UpdateSimulationRequest | None:
        """End recording, assemble the payload and submit it (if ``auto_submit``).

        Idempotent: later calls return the same payload without resubmitting.
        Returns None when there is no simulation result id.

        Example:
            >>> rec = CallRecorder("720488", auto_submit=False)
            >>> _ = rec.tool_call("lookup_order", order_id="A-17")
            >>> [c.name for c in rec.finish().tool_calls]
            ['lookup_order']
            >>> rec.finish() is rec.finish()
            True
        """
        if not self._closed:
            self._complete(self._seal())
        return self._request

    async def afinish(self) -> UpdateSimulationRequest | None:
        """:meth:`finish` for coroutines: assembly and submit run in a thread.

        Recording stops on the loop; converting, redacting and the blocking
        durable write happen in a worker thread, so a heavy call's finish never
        stalls other calls sharing the loop. The thread completes even if this
        task is cancelled meanwhile.

        Example:
            >>> import asyncio
            >>> rec = CallRecorder("720488", auto_submit=False)
            >>> _ = rec.event("caller verified")
            >>> [e.title for e in asyncio.run(rec.afinish()).events]
            ['caller verified']
        """
        if not self._closed:
            recording = self._seal()
            try:
                await asyncio.to_thread(self._complete, recording)
            except RuntimeError:
                # The loop's executor is already shut down (interpreter exit):
                # finish here rather than lose the call.
                self._complete(recording)
        return self._request

    def build_request(self) -> UpdateSimulationRequest | None:
        """The payload as it stands: redacted, capped, ready to send.

        After the call finished, the payload that was (or would be) submitted.
        Returns None when there is no simulation result id.

        Example:
            >>> rec = CallRecorder("720488", auto_submit=False)
            >>> rec.set_metadata(model="gpt-x")
            >>> rec.build_request().metadata
            {'model': 'gpt-x'}
        """
        if self._closed:
            return self._request
        return self._assemble(self._recording())

    @property
    def finished(self) -> bool:
        """Whether the call has ended for this recorder."""
        return self._closed

    def bind(self, fn: Callable[_P, _R]) -> Callable[_P, _R]:
        """Wrap ``fn`` so it runs with this recorder current, in any thread.

        For plain threads and executors, which do not copy context variables.

        Example:
            >>> from concurrent.futures import ThreadPoolExecutor
            >>> rec = CallRecorder("1", auto_submit=False)
            >>> with ThreadPoolExecutor() as pool:
            ...     pool.submit(rec.bind(current_recorder)).result() is rec
            True
        """

        @functools.wraps(fn)
        def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            token = _CURRENT.set(self)
            try:
                return fn(*args, **kwargs)
            finally:
                _CURRENT.reset(token)

        return run

    # -- recording ---------------------------------------------------------------

    def tool_call(
        self,
        name: str,
        /,
        *,
        output: Any = NO_OUTPUT,
        error: BaseException | str | None = None,
        start_ms: float | None = None,
        end_ms: float | None = None,
        description: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        **params: Any,
    ) -> ToolCallHandle:
        """Record a tool call by hand; returns a handle to finish it later.

        Parameters come as keywords (or as ``parameters=`` when a name clashes
        with an option of this method). Given ``output``, ``error`` or ``end_ms``,
        the call is recorded as finished at once; otherwise finish the handle,
        or use it as a context manager (an exception inside records the failure
        and propagates). ``start_ms``/``end_ms`` are offsets from the zero point
        for calls that happened elsewhere (default: now).

        Example:
            >>> with CallRecorder("1", auto_submit=False) as rec:
            ...     rec.tool_call("refund", amount=10, output={"ok": True})
            ...     with rec.tool_call("transfer", queue="billing") as call:
            ...         call.output = "queued"
            ToolCallHandle('refund', finished=True)
            >>> [(c.name, c.parameters, c.output) for c in rec.build_request().tool_calls]
            [('refund', {'amount': 10}, {'ok': True}), ('transfer', {'queue': 'billing'}, 'queued')]
        """
        try:
            if parameters:
                params = {**parameters, **params}
            spec = ToolSpec(str(name), None if description is None else str(description))
            entry = self._begin_tool(spec, (), params)
            handle = ToolCallHandle(self, entry, spec.name)
            if entry is not None and start_ms is not None:
                entry[T_START_MS] = self._ms(start_ms, "tool_call start_ms")
            if output is not NO_OUTPUT or error is not None or end_ms is not None:
                handle._complete(output, error, end_ms)
            return handle
        except Exception as exc:
            self._internal_error("record a tool call", exc)
            return ToolCallHandle(self, None, str(name))

    def event(
        self,
        title: str,
        /,
        *,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        start_ms: float | None = None,
        end_ms: float | None = None,
    ) -> EventHandle:
        """Record a business event (hold, transfer, verification...).

        Called plainly it records an instant. Used as a context manager, or
        ended with :meth:`EventHandle.end`, it also records ``end_offset_ms``.

        Example:
            >>> ticks = iter(range(0, 10**10, 1_000_000))
            >>> with CallRecorder("1", auto_submit=False, clock=lambda: next(ticks)) as rec:
            ...     rec.event("identity verified", tags=["kyc"])
            ...     with rec.event("hold", metadata={"reason": "lookup"}):
            ...         pass
            EventHandle('identity verified', ended=False)
            >>> [(e.title, e.start_offset_ms, e.end_offset_ms) for e in rec.build_request().events]
            [('identity verified', 1, None), ('hold', 2, 3)]
        """
        try:
            if self._closed:
                self._note_late()
                return EventHandle(self, None, str(title))
            if len(self._events) >= self._limits.max_entries:
                self._note_dropped()
                return EventHandle(self, None, str(title))
            if tags is None:
                tag_list = None
            elif isinstance(tags, str) or not isinstance(tags, Iterable):
                tag_list = [tags]  # a single tag given bare: keep it, not its letters
            else:
                tag_list = list(tags) or None
            entry: list[Any] = [
                title,
                description,
                tag_list,
                None if metadata is None else snapshot(metadata, self._limits),
                self._clock(),
                None,
                None if start_ms is None else self._ms(start_ms, "event start_ms"),
                None if end_ms is None else self._ms(end_ms, "event end_ms"),
            ]
            self._events.append(entry)
            return EventHandle(self, entry, str(title))
        except Exception as exc:
            self._internal_error("record an event", exc)
            return EventHandle(self, None, str(title))

    def transcript(
        self,
        speaker: str,
        utterance: str,
        start_ms: float | None = None,
        end_ms: float | None = None,
        *,
        filler: bool | None = None,
    ) -> None:
        """Record one utterance of the agent's own transcript.

        ``speaker`` is ``"AGENT"`` or ``"USER"`` (any case; ``assistant``/``bot``
        and ``customer``/``caller`` are accepted too). Offsets default to now.

        Example:
            >>> rec = CallRecorder("1", auto_submit=False)
            >>> rec.transcript("agent", "How can I help?", 0, 900)
            >>> rec.build_request().recorded_transcript[0].speaker
            <Speaker.AGENT: 'AGENT'>
        """
        try:
            if self._closed:
                self._note_late()
                return
            if len(self._transcript) >= self._limits.max_entries:
                self._note_dropped()
                return
            self._transcript.append(
                (
                    speaker,
                    utterance,
                    None if start_ms is None else self._ms(start_ms, "transcript start_ms"),
                    None if end_ms is None else self._ms(end_ms, "transcript end_ms"),
                    filler,
                    self._clock(),
                )
            )
        except Exception as exc:
            self._internal_error("record a transcript entry", exc)

    def tag(self, *tags: str) -> None:
        """Add tags to the call (duplicates are sent once).

        Example:
            >>> rec = CallRecorder("1", auto_submit=False)
            >>> rec.tag("billing", "escalated", "billing")
            >>> rec.build_request().tags
            ['billing', 'escalated']
        """
        if self._closed:
            self._note_late()
            return
        self._tags.extend(tags)

    def set_metadata(self, values: Mapping[str, Any] | None = None, /, **more: Any) -> None:
        """Merge keys into the call metadata (same as assigning ``metadata[key]``).

        Example:
            >>> rec = CallRecorder("1", auto_submit=False)
            >>> rec.set_metadata({"model": "gpt-x"}, region="eu")
            >>> rec.metadata
            {'model': 'gpt-x', 'region': 'eu'}
        """
        try:
            if values:
                self.metadata.update(values)
            self.metadata.update(more)
        except Exception as exc:
            self._internal_error("set metadata", exc)

    def trace_id(self, trace_id: Any) -> None:
        """Link an OpenTelemetry trace: 32-hex text, the int OTel uses, or a span.

        Example:
            >>> rec = CallRecorder("1", auto_submit=False)
            >>> rec.trace_id("0AF7651916CD43DD8448EB211C80319C")
            >>> rec.build_request().trace_ids
            ['0af7651916cd43dd8448eb211c80319c']
        """
        if self._closed:
            self._note_late()
            return
        self._trace_ids.append(trace_id)

    # -- hot path (called by the @tool wrappers) ------------------------------------

    def _begin_tool(
        self, spec: ToolSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> list[Any] | None:
        # roost.tools inlines this in its sync and async wrappers (the hot path);
        # keep the two in step.
        tools = self._tools
        if len(tools) >= self._room:
            self._no_room()
            return None
        try:
            for arg in args:
                if type(arg) in SNAPSHOT_TYPES:
                    args = snapshot(args, self._limits)
                    break
            for arg in kwargs.values():
                if type(arg) in SNAPSHOT_TYPES:
                    kwargs = snapshot(kwargs, self._limits)
                    break
            # Layout: roost.payload.T_*. The clock is read last so that the
            # snapshot is not counted in the tool's duration.
            entry = [spec, args, kwargs, self._clock(), None, NO_OUTPUT, None, None, None]
            tools.append(entry)
            return entry
        except Exception as exc:
            self._internal_error("record a tool call", exc)
            return None

    def _end_tool(self, entry: list[Any] | None, result: Any, *, frozen: bool = False) -> None:
        """Finish a tool entry with its output (``frozen``: already snapshotted)."""
        if entry is None:
            return
        try:
            end = self._clock()
            if entry[T_SPEC].capture_output and result is not NO_OUTPUT:
                if not frozen and type(result) in SNAPSHOT_TYPES:
                    result = snapshot(result, self._limits)
                entry[T_OUTPUT] = result
            entry[T_END] = end
        except Exception as exc:
            self._internal_error("record a tool result", exc)

    def _fail_tool(self, entry: list[Any] | None, exc: BaseException) -> None:
        if entry is None:
            return
        try:
            end = self._clock()
            entry[T_ERROR] = (type(exc), exception_message(exc))
            entry[T_END] = end
        except Exception as error:
            self._internal_error("record a tool failure", error)

    # -- internals ---------------------------------------------------------------

    def _activate(self) -> None:
        try:
            if self._zero_ns is None:
                self._zero_ns = self._clock()
            self._tokens.append(_CURRENT.set(self))
        except Exception as exc:
            self._internal_error("enter the call", exc)

    def _deactivate(self, exc: BaseException | None) -> bool:
        """Leave the context; True when this was the outermost ``with``."""
        if self._tokens:
            token = self._tokens.pop()
            try:
                _CURRENT.reset(token)
            except ValueError:
                # Exited in another context than entered (a different task):
                # make sure this context stops attributing to the ended call.
                _CURRENT.set(None)
        if exc is not None and self._exit_error is None:
            self._exit_error = type(exc).__name__
        return not self._tokens

    def _seal(self) -> Recording | None:
        """Stop recording; the state to assemble, None without an id."""
        self._closed = True
        self._room = -1
        return self._recording()

    def _complete(self, recording: Recording | None) -> None:
        request = self._assemble(recording)
        self._request = request
        if request is not None and self._auto_submit and not self._submitted:
            self._submitted = True
            self._submit(request)

    def _assemble(self, recording: Recording | None) -> UpdateSimulationRequest | None:
        if recording is None:
            return None
        try:
            return assemble(recording)
        except Exception as exc:
            self._internal_error("assemble the payload", exc)
        try:
            # Second chance without agent values: names, timings, counts survive.
            recording.safe = True
            recording.notes["internal_errors"] = self.stats.internal_errors
            return assemble(recording)
        except Exception as exc:
            logger.error(
                "roost: could not assemble the payload of %s",
                self.simulation_result_id,
                exc_info=exc,
            )
            return None

    def _recording(self) -> Recording | None:
        if self.simulation_result_id is None:
            self._log_once(
                "no-id",
                logging.INFO,
                "no simulation result id: %d tool calls recorded, nothing is submitted",
                len(self._tools),
            )
            return None
        notes: dict[str, Any] = {}
        stats = self.stats
        if stats.internal_errors:
            notes["internal_errors"] = stats.internal_errors
        if stats.late_records:
            notes["late_records"] = stats.late_records
        if stats.dropped_records:
            notes["dropped_records"] = stats.dropped_records
        if self._exit_error is not None:
            notes["call_ended_by_exception"] = self._exit_error
        given: object = self.metadata
        if not isinstance(given, Mapping):  # the agent replaced the attribute
            given = {"metadata": given}
        try:
            metadata = dict(given)
        except Exception as exc:
            self._internal_error("copy the call metadata", exc)
            metadata = {}
        return Recording(
            simulation_result_id=self.simulation_result_id,
            zero_ns=self._zero_ns if self._zero_ns is not None else self._created_ns,
            call_id_prefix=self._prefix,
            tools=list(self._tools),
            events=list(self._events),
            transcript=list(self._transcript),
            tags=list(self._tags),
            metadata=metadata,
            trace_ids=list(self._trace_ids),
            notes=notes,
            rejected=list(self._rejected),
            redactor=self._redactor,
            limits=self._limits,
        )

    def _submit(self, request: UpdateSimulationRequest) -> None:
        try:
            sink = self._sink if self._sink is not None else _default_sink()
            self.outbox_id = sink.submit(request)
        except Exception as exc:
            self.stats.submit_failures += 1
            logger.error(
                "roost: could not hand the payload of simulation result %s to delivery; "
                "it is kept in memory (recorder.build_request())",
                request.simulation_result_id,
                exc_info=exc,
            )

    def _ms(self, value: Any, what: str) -> int | None:
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 1e15:
            return int(value)
        self._reject(what, "not a finite number of milliseconds; the current time is used", value)
        return None

    def _check_id(self, value: str) -> None:
        # An id that did not come through extract_simulation_result_id may be
        # malformed. Raising here would break the agent's call, and dropping it
        # would lose the recording, so it is kept and sent as given: the platform
        # refuses it, and the outbox keeps the entry as failed with that answer
        # (`roost outbox list`), while the log says what was wrong right now.
        try:
            validate_simulation_result_id(value, source="CallRecorder(simulation_result_id)")
        except InvalidSimulationResultId as exc:
            self._reject("simulation_result_id", str(exc), value[:200])

    def _reject(self, kind: str, reason: str, value: Any) -> None:
        self.stats.rejected += 1
        if len(self._rejected) < 100:
            self._rejected.append((kind, reason, value))
        self._log_once(f"reject:{kind}", logging.WARNING, "%s: %s (%r)", kind, reason, value)

    def _no_room(self) -> None:
        if self._closed:
            self._note_late()
        else:
            self._note_dropped()

    def _note_late(self) -> None:
        self.stats.late_records += 1
        self._log_once(
            "late", logging.WARNING, "a record was made after the call finished; not sent"
        )

    def _note_dropped(self) -> None:
        self.stats.dropped_records += 1
        self._log_once(
            "dropped",
            logging.WARNING,
            "more than %d records of one kind in this call; the rest are counted, not kept",
            self._limits.max_entries,
        )

    def _internal_error(self, doing: str, exc: BaseException) -> None:
        try:
            self.stats.internal_errors += 1
            if f"error:{doing}" not in self._logged:
                self._logged.add(f"error:{doing}")
                logger.error("roost: failed to %s (recording continues)", doing, exc_info=exc)
        except Exception:
            pass

    def _log_once(self, key: str, level: int, message: str, *args: Any) -> None:
        if key not in self._logged:
            self._logged.add(key)
            logger.log(
                level, f"roost: simulation result %r: {message}", self.simulation_result_id, *args
            )

    def __repr__(self) -> str:
        state = "finished" if self._closed else "recording"
        return (
            f"<CallRecorder {self.simulation_result_id!r} {state}: {len(self._tools)} tool calls, "
            f"{len(self._events)} events, {len(self._transcript)} transcript entries>"
        )


def _normalise_id(value: str | int | None) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None
