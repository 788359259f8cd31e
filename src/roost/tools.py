"""The ``@roost.tool`` decorator and the context variable naming the current call.

:func:`tool` wraps a function so that, when it runs inside a call (a
:class:`~roost.recorder.CallRecorder` is current in this context), the call is
recorded: name, description, arguments, output or exception, start and duration.
Outside any call the wrapper only checks the context variable and calls through.

The wrapper is chosen once, at decoration time, from the function's kind: plain,
coroutine, generator or async generator. Each keeps its kind, so frameworks that
dispatch on ``inspect.iscoroutinefunction`` and friends, or read the signature
(``inspect.signature`` follows ``__wrapped__``), see the original function.

Generator tools are recorded from the first ``next()`` to exhaustion or
``close()``, with the yielded items (up to ``max_items``) as output; ``send``,
``throw`` and ``close`` reach the generator exactly as they would unwrapped.
Like a coroutine's body, a generator's body looks up the current call when it
starts running, not when the generator object is created.

Example:
    >>> import roost
    >>> class Bank:
    ...     @roost.tool
    ...     def balance(self, account_id: str) -> float:
    ...         \'\'\'Current balance of an account.\'\'\'
    ...         return 12.5
    >>> with roost.CallRecorder("1", auto_submit=False) as rec:
    ...     Bank().balance("acc-1")
    12.5
    >>> call = rec.build_request().tool_calls[0]
    >>> call.name, call.parameters, call.description
    ('balance', {'account_id': 'acc-1'}, 'Current balance of an account.')
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterable
from contextvars import ContextVar
from types import CoroutineType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from roost.capture import CaptureLimits
from roost.payload import NO_OUTPUT, T_END, T_OUTPUT, ToolSpec
from roost.snapshot import SNAPSHOT_TYPES, Truncated, snapshot

if TYPE_CHECKING:
    from roost.recorder import CallRecorder

__all__ = ["current_recorder", "tool"]

_F = TypeVar("_F", bound=Callable[..., Any])

_CURRENT: ContextVar[CallRecorder | None] = ContextVar("roost_current_recorder", default=None)


def current_recorder() -> CallRecorder | None:
    """The recorder of the call this code runs in, or None outside any call.

    Example:
        >>> import roost
        >>> roost.current_recorder() is None
        True
        >>> with roost.CallRecorder("720488", auto_submit=False) as recorder:
        ...     roost.current_recorder() is recorder
        True
    """
    return _CURRENT.get()


# -- the @tool decorator ----------------------------------------------------------


@overload
def tool(fn: _F, /) -> _F: ...


@overload
def tool(
    fn: None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    exclude: Iterable[str] = (),
    capture_output: bool = True,
) -> Callable[[_F], _F]: ...


def tool(
    fn: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    exclude: Iterable[str] = (),
    capture_output: bool = True,
) -> Any:
    """Record every call of a tool made during a call; a plain call otherwise.

    Works on functions, methods (``self``/``cls`` are not recorded), class and
    static methods, coroutine functions, and sync and async generators (their
    output is the list of yielded items; the call ends when the generator is
    exhausted or closed). The wrapper keeps the function's name, docstring,
    signature and kind (``inspect.iscoroutinefunction`` etc.), so frameworks that
    inspect tools see the original; put ``@roost.tool`` closest to the function.

    Args:
        fn: The function (when used without parentheses).
        name: Tool name on the wire; default the function's ``__name__``.
        description: Default: the first paragraph of the docstring.
        exclude: Parameter names never captured (framework context objects...).
        capture_output: Capture the return value (default True).

    Example:
        >>> import asyncio, roost
        >>> @roost.tool(name="get_balance", exclude=["session"])
        ... async def balance(session: object, account_id: str) -> float:
        ...     return 12.5
        >>> async def call() -> list[tuple[str, dict[str, str]]]:
        ...     async with roost.CallRecorder("1", auto_submit=False) as rec:
        ...         await balance(object(), "acc-1")
        ...     return [(c.name, c.parameters) for c in rec.build_request().tool_calls]
        >>> asyncio.run(call())
        [('get_balance', {'account_id': 'acc-1'})]
    """

    excluded = frozenset([exclude] if isinstance(exclude, str) else exclude)

    def decorate(target: Any) -> Any:
        return _decorate(target, name, description, excluded, capture_output)

    return decorate if fn is None else decorate(fn)


def _decorate(
    target: Any, name: str | None, description: str | None, exclude: frozenset[str], capture: bool
) -> Any:
    if isinstance(target, classmethod | staticmethod):
        return type(target)(_decorate(target.__func__, name, description, exclude, capture))
    if not callable(target):
        raise TypeError(f"@roost.tool decorates functions and methods, not {target!r}")
    if isinstance(getattr(target, "__roost_tool__", None), ToolSpec):
        target = target.__wrapped__  # re-decorating replaces the options, never nests
    inner = target.func if isinstance(target, functools.partial) else target
    tool_name = name or getattr(inner, "__name__", None) or type(inner).__name__
    if description is None:
        description = _first_paragraph(inspect.getdoc(inner))
    spec = ToolSpec(tool_name, description, target, exclude=exclude, capture_output=capture)
    if inspect.isasyncgenfunction(target):
        wrapper: Any = _async_generator_wrapper(target, spec)
    elif inspect.isgeneratorfunction(target):
        wrapper = _generator_wrapper(target, spec)
    elif inspect.iscoroutinefunction(target) or _has_async_call(target):
        wrapper = _async_wrapper(target, spec)
    else:
        wrapper = _sync_wrapper(target, spec)
    functools.update_wrapper(wrapper, target)
    wrapper.__roost_tool__ = spec
    return wrapper


def _has_async_call(target: Any) -> bool:
    # A callable object whose __call__ is `async def` (not a function itself).
    try:
        call = type(target).__call__
    except AttributeError:
        return False
    return inspect.iscoroutinefunction(call)


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split()) or None


# The sync and async wrappers inline CallRecorder._begin_tool and _end_tool: two
# method calls cost more than everything else the hot path does. Keep the three
# copies in step; entry layout is roost.payload.T_*.


def _sync_wrapper(fn: Callable[..., Any], spec: ToolSpec) -> Callable[..., Any]:
    get = _CURRENT.get
    copied = SNAPSHOT_TYPES
    capture = spec.capture_output

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        recorder = get()
        if recorder is None:
            return fn(*args, **kwargs)
        entry: list[Any] | None = None
        tools = recorder._tools
        if len(tools) < recorder._room:
            try:
                saved_args, saved_kwargs = args, kwargs
                for arg in args:
                    if type(arg) in copied:
                        saved_args = snapshot(args, recorder._limits)
                        break
                if kwargs:
                    for arg in kwargs.values():
                        if type(arg) in copied:
                            saved_kwargs = snapshot(kwargs, recorder._limits)
                            break
                entry = [
                    spec,
                    saved_args,
                    saved_kwargs,
                    recorder._clock(),
                    None,
                    NO_OUTPUT,
                    None,
                    None,
                    None,
                ]
                tools.append(entry)
            except Exception as exc:
                recorder._internal_error("record a tool call", exc)
                entry = None
        else:
            recorder._no_room()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if entry is not None:
                recorder._fail_tool(entry, exc)
            raise
        if entry is not None:
            if type(result) is CoroutineType:
                # A sync-looking function that returns a coroutine (a decorator
                # hid `async`): the tool call ends when the coroutine does.
                return _await_later(recorder, entry, result)
            try:
                end = recorder._clock()
                if capture:
                    entry[T_OUTPUT] = (
                        snapshot(result, recorder._limits) if type(result) in copied else result
                    )
                entry[T_END] = end
            except Exception as exc:
                recorder._internal_error("record a tool result", exc)
        return result

    return wrapper


async def _await_later(
    recorder: CallRecorder, entry: list[Any], awaitable: Coroutine[Any, Any, Any]
) -> Any:
    try:
        result = await awaitable
    except BaseException as exc:
        recorder._fail_tool(entry, exc)
        raise
    recorder._end_tool(entry, result)
    return result


def _async_wrapper(fn: Callable[..., Any], spec: ToolSpec) -> Callable[..., Any]:
    get = _CURRENT.get
    copied = SNAPSHOT_TYPES
    capture = spec.capture_output

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        recorder = get()
        if recorder is None:
            return await fn(*args, **kwargs)
        entry: list[Any] | None = None
        tools = recorder._tools
        if len(tools) < recorder._room:
            try:
                saved_args, saved_kwargs = args, kwargs
                for arg in args:
                    if type(arg) in copied:
                        saved_args = snapshot(args, recorder._limits)
                        break
                if kwargs:
                    for arg in kwargs.values():
                        if type(arg) in copied:
                            saved_kwargs = snapshot(kwargs, recorder._limits)
                            break
                entry = [
                    spec,
                    saved_args,
                    saved_kwargs,
                    recorder._clock(),
                    None,
                    NO_OUTPUT,
                    None,
                    None,
                    None,
                ]
                tools.append(entry)
            except Exception as exc:
                recorder._internal_error("record a tool call", exc)
                entry = None
        else:
            recorder._no_room()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            if entry is not None:
                recorder._fail_tool(entry, exc)
            raise
        if entry is not None:
            try:
                end = recorder._clock()
                if capture:
                    entry[T_OUTPUT] = (
                        snapshot(result, recorder._limits) if type(result) in copied else result
                    )
                entry[T_END] = end
            except Exception as exc:
                recorder._internal_error("record a tool result", exc)
        return result

    return wrapper


class _Yields:
    """The items a generator tool yielded, snapshotted, up to ``max_items``."""

    __slots__ = ("_limits", "extra", "items")

    def __init__(self, limits: CaptureLimits) -> None:
        self._limits = limits
        self.items: list[Any] = []
        self.extra = 0

    def keep(self, item: Any) -> Any:
        if len(self.items) < self._limits.max_items:
            try:
                self.items.append(
                    snapshot(item, self._limits) if type(item) in SNAPSHOT_TYPES else item
                )
            except Exception:
                self.extra += 1
        else:
            self.extra += 1
        return item

    def output(self, returned: Any = None) -> Any:
        items: list[Any] = list(self.items)
        if self.extra:
            items.append(Truncated(self.extra, "items"))
        if returned is None:
            return items
        if type(returned) in SNAPSHOT_TYPES:
            returned = snapshot(returned, self._limits)
        return {"yielded": items, "returned": returned}


class _Tap(_Yields):
    """Sits between ``yield from`` and a tool's generator and keeps what it yields.

    ``yield from`` forwards ``send``, ``throw`` and ``close`` to it, so the
    generator sees exactly the calls it would see unwrapped.
    """

    __slots__ = ("_gen",)

    def __init__(self, gen: Generator[Any, Any, Any], limits: CaptureLimits) -> None:
        super().__init__(limits)
        self._gen = gen

    def __iter__(self) -> _Tap:
        return self

    def __next__(self) -> Any:
        return self.keep(next(self._gen))

    def send(self, value: Any) -> Any:
        return self.keep(self._gen.send(value))

    def throw(self, kind: Any, value: Any = None, tb: Any = None) -> Any:
        error = value if isinstance(value, BaseException) else kind
        return self.keep(self._gen.throw(error))

    def close(self) -> None:
        self._gen.close()


def _generator_wrapper(fn: Callable[..., Any], spec: ToolSpec) -> Callable[..., Any]:
    get = _CURRENT.get

    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        # A generator function: the recorder is looked up when iteration starts,
        # like a coroutine's body runs when it is first awaited.
        recorder = get()
        if recorder is None:
            return (yield from fn(*args, **kwargs))
        entry = recorder._begin_tool(spec, args, kwargs)
        tap = _Tap(fn(*args, **kwargs), recorder._limits)
        try:
            returned = yield from tap
        except GeneratorExit:
            recorder._end_tool(entry, tap.output(), frozen=True)
            raise
        except BaseException as exc:
            recorder._fail_tool(entry, exc)
            raise
        recorder._end_tool(entry, tap.output(returned), frozen=True)
        return returned

    return wrapper


def _async_generator_wrapper(fn: Callable[..., Any], spec: ToolSpec) -> Callable[..., Any]:
    get = _CURRENT.get

    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        recorder = get()
        inner: AsyncGenerator[Any, Any] = fn(*args, **kwargs)
        entry = None if recorder is None else recorder._begin_tool(spec, args, kwargs)
        tap = None if recorder is None else _Yields(recorder._limits)
        try:
            # Async generators have no `yield from`; delegate asend/athrow/aclose
            # by hand so the tool sees what it would see unwrapped.
            try:
                item = await inner.__anext__()
            except StopAsyncIteration:
                item = _DONE
            while item is not _DONE:
                if tap is not None:
                    tap.keep(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    await inner.aclose()
                    raise
                except BaseException as exc:
                    try:
                        item = await inner.athrow(exc)
                    except StopAsyncIteration:
                        item = _DONE
                else:
                    try:
                        item = await inner.asend(sent)
                    except StopAsyncIteration:
                        item = _DONE
        except GeneratorExit:
            if recorder is not None and tap is not None:
                recorder._end_tool(entry, tap.output(), frozen=True)
            raise
        except BaseException as exc:
            if recorder is not None:
                recorder._fail_tool(entry, exc)
            raise
        if recorder is not None and tap is not None:
            recorder._end_tool(entry, tap.output(), frozen=True)

    return wrapper


_DONE = object()
