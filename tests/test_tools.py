from __future__ import annotations

import asyncio
import doctest
import functools
import inspect
import logging
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

import roost
import roost.tools
from roost.capture import CaptureLimits
from roost.recorder import CallRecorder
from roost.schema import ToolCall

MS = 1_000_000


class Clock:
    """A monotonic nanosecond clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1_000 * MS

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: float) -> None:
        self.now += int(ms * MS)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def recorder(clock: Clock | None = None, **options: Any) -> CallRecorder:
    if clock is not None:
        options["clock"] = clock
    return CallRecorder("720488", auto_submit=False, **options)


def calls(rec: CallRecorder) -> list[ToolCall]:
    request = rec.build_request()
    assert request is not None
    return request.tool_calls or []


def test_doctests() -> None:
    assert doctest.testmod(roost.tools).failed == 0


def test_sync_tool_records_everything(clock: Clock) -> None:
    @roost.tool
    def lookup_order(order_id: str, include_items: bool = False, *, region: str = "eu") -> dict:
        """Find an order by its number.

        Looks in the order database; the second paragraph is not the description.
        """
        clock.advance(42.5)
        return {"status": "shipped"}

    with recorder(clock) as rec:
        clock.advance(1500)
        assert lookup_order("A-17") == {"status": "shipped"}
    (call,) = calls(rec)
    assert call.name == "lookup_order"
    assert call.description == "Find an order by its number."
    assert call.parameters == {"order_id": "A-17", "include_items": False, "region": "eu"}
    assert call.output == {"status": "shipped"}
    assert call.start_offset_ms == 1500
    assert call.end_offset_ms == 1542
    assert call.duration_ms == 42.5
    assert call.status == "ok"
    assert call.call_id is not None and call.call_id.endswith("-1")


def test_options_name_description_exclude_and_capture_output() -> None:
    @roost.tool(
        name="get_balance", description="Balance.", exclude=["session"], capture_output=False
    )
    def balance(session: object, account_id: str) -> float:
        return 12.5

    with recorder() as rec:
        balance(object(), "acc-1")
    (call,) = calls(rec)
    assert (call.name, call.description, call.parameters, call.output) == (
        "get_balance",
        "Balance.",
        {"account_id": "acc-1"},
        None,
    )


def test_a_single_excluded_name_may_be_given_bare() -> None:
    @roost.tool(exclude="ctx")  # type: ignore[arg-type]
    def greet(ctx: object, name: str) -> str:
        return name

    with recorder() as rec:
        greet(object(), "Ada")
    assert calls(rec)[0].parameters == {"name": "Ada"}


def test_wrapper_keeps_metadata_and_kind() -> None:
    def plain(a: int, b: str = "x") -> str:
        """Doc."""
        return b * a

    async def coro(a: int) -> int:
        return a

    def gen(n: int) -> Iterator[int]:
        yield n

    async def agen(n: int) -> AsyncIterator[int]:
        yield n

    for fn in (plain, coro, gen, agen):
        wrapped = roost.tool(fn)
        assert wrapped.__name__ == fn.__name__
        assert wrapped.__doc__ == fn.__doc__
        assert wrapped.__wrapped__ is fn  # type: ignore[attr-defined]
        assert inspect.signature(wrapped) == inspect.signature(fn)
        assert inspect.iscoroutinefunction(wrapped) == inspect.iscoroutinefunction(fn)
        assert inspect.isgeneratorfunction(wrapped) == inspect.isgeneratorfunction(fn)
        assert inspect.isasyncgenfunction(wrapped) == inspect.isasyncgenfunction(fn)


def test_methods_class_and_static_methods() -> None:
    class Bank:
        rate = 2

        @roost.tool
        def deposit(self, amount: int) -> int:
            return amount

        @classmethod
        @roost.tool
        def rate_for(cls, tier: str) -> int:
            return cls.rate

        @roost.tool
        @classmethod
        def rate_outer(cls, tier: str) -> int:
            return cls.rate

        @roost.tool
        @staticmethod
        def fee(amount: int) -> int:
            return 1

    with recorder() as rec:
        assert Bank().deposit(5) == 5
        assert Bank.rate_for("gold") == 2
        assert Bank.rate_outer("gold") == 2
        assert Bank.fee(3) == 1
    assert [(c.name, c.parameters) for c in calls(rec)] == [
        ("deposit", {"amount": 5}),
        ("rate_for", {"tier": "gold"}),
        ("rate_outer", {"tier": "gold"}),
        ("fee", {"amount": 3}),
    ]


def test_var_args_and_kwargs_are_named() -> None:
    @roost.tool
    def search(query: str, *filters: str, limit: int = 5, **extra: Any) -> None:
        return None

    with recorder() as rec:
        search("shoes", "red", "cheap", page=2)
    (call,) = calls(rec)
    assert call.parameters == {
        "query": "shoes",
        "filters": ["red", "cheap"],
        "limit": 5,
        "page": 2,
    }
    assert call.output is None and call.status == "ok"


def test_calls_that_do_not_fit_the_signature_keep_their_arguments() -> None:
    @roost.tool
    def two(a: int, b: int) -> int:
        return a + b

    with recorder() as rec, pytest.raises(TypeError):
        two(1, 2, 3)  # type: ignore[call-arg]
    (call,) = calls(rec)
    assert call.parameters == {"arg0": 1, "arg1": 2, "arg2": 3}
    assert call.status == "error" and call.error_type == "TypeError"


def test_exceptions_are_reraised_unchanged(clock: Clock) -> None:
    original = ValueError("card declined")
    cause = KeyError("gateway")
    original.__cause__ = cause

    @roost.tool
    def charge(amount: int) -> None:
        clock.advance(7)
        raise original

    with recorder(clock) as rec:
        with pytest.raises(ValueError) as caught:
            charge(10)
        assert caught.value is original
        assert caught.value.__cause__ is cause
        frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
        assert "charge" in frames  # the tool's own frame is still in the traceback
    (call,) = calls(rec)
    assert call.status == "error"
    assert call.error_type == "ValueError"
    assert call.error_message == "card declined"
    assert call.duration_ms == 7.0
    assert call.output is None


def test_error_messages_are_redacted() -> None:
    @roost.tool
    def pay(card: str) -> None:
        raise RuntimeError(f"card {card} declined")

    with recorder() as rec, pytest.raises(RuntimeError, match="4111111111111111"):
        pay("4111111111111111")
    (call,) = calls(rec)
    assert call.error_message == "card [REDACTED] declined"
    assert call.parameters == {"card": "[REDACTED]"}


def test_outside_a_call_the_tool_is_a_passthrough() -> None:
    seen: list[int] = []

    @roost.tool
    def record(x: int) -> int:
        seen.append(x)
        return x * 2

    @roost.tool
    def fail() -> None:
        raise LookupError("nope")

    assert roost.current_recorder() is None
    assert record(4) == 8
    with pytest.raises(LookupError):
        fail()
    assert seen == [4]


async def test_async_tool(clock: Clock) -> None:
    @roost.tool
    async def fetch(order_id: str) -> str:
        await asyncio.sleep(0)
        clock.advance(12)
        return "ok"

    @roost.tool
    async def boom() -> None:
        await asyncio.sleep(0)
        raise TimeoutError("upstream")

    async with recorder(clock) as rec:
        assert await fetch("A") == "ok"
        with pytest.raises(TimeoutError):
            await boom()
    first, second = calls(rec)
    assert (first.name, first.output, first.duration_ms) == ("fetch", "ok", 12.0)
    assert (second.status, second.error_type) == ("error", "TimeoutError")


async def test_cancelled_async_tool_is_recorded_and_cancellation_propagates() -> None:
    started = asyncio.Event()

    @roost.tool
    async def slow() -> None:
        started.set()
        await asyncio.sleep(3600)

    async with recorder() as rec:
        task = asyncio.create_task(slow())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    (call,) = calls(rec)
    assert call.status == "error"
    assert call.error_type == "asyncio.exceptions.CancelledError"


async def test_sync_function_returning_a_coroutine_is_timed_until_awaited(clock: Clock) -> None:
    async def real(x: int) -> int:
        await asyncio.sleep(0)
        clock.advance(30)
        return x

    def hides_async(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], Awaitable[int]]:
        def call(x: int) -> Awaitable[int]:
            return fn(x)

        return call

    tool = roost.tool(hides_async(real))
    async with recorder(clock) as rec:
        assert await tool(3) == 3
    (call,) = calls(rec)
    assert call.output == 3
    assert call.duration_ms == 30.0


async def test_callable_object_with_async_call() -> None:
    class Lookup:
        async def __call__(self, key: str) -> str:
            return key.upper()

    tool = roost.tool(name="lookup")(Lookup())
    async with recorder() as rec:
        assert await tool("a") == "A"
    assert [(c.name, c.output) for c in calls(rec)] == [("lookup", "A")]


def test_partial() -> None:
    def power(base: int, exp: int) -> int:
        """Raise base to exp."""
        return base**exp

    square = roost.tool(functools.partial(power, exp=2), name="square")
    with recorder() as rec:
        assert square(3) == 9
    (call,) = calls(rec)
    assert (call.name, call.parameters, call.output) == ("square", {"base": 3, "exp": 2}, 9)
    assert call.description == "Raise base to exp."


def test_decorating_twice_records_once() -> None:
    @roost.tool(name="outer")
    @roost.tool(name="inner")
    def f() -> int:
        return 1

    with recorder() as rec:
        f()
    assert [c.name for c in calls(rec)] == ["outer"]


def test_non_callables_are_refused_at_decoration() -> None:
    with pytest.raises(TypeError, match="decorates functions"):
        roost.tool(42)  # type: ignore[call-overload]


def test_generator_tool(clock: Clock) -> None:
    @roost.tool
    def stream(n: int) -> Iterator[int]:
        for i in range(n):
            clock.advance(1)
            yield i
        return "done"  # type: ignore[misc]

    with recorder(clock) as rec:
        assert list(stream(3)) == [0, 1, 2]
    (call,) = calls(rec)
    assert call.output == {"yielded": [0, 1, 2], "returned": "done"}
    assert call.duration_ms == 3.0


def test_generator_send_throw_and_close_reach_the_tool() -> None:
    log: list[Any] = []

    @roost.tool
    def echo() -> Iterator[Any]:
        received = None
        try:
            while True:
                try:
                    received = yield received
                    log.append(received)
                except KeyError as exc:
                    log.append(f"caught {exc}")
                    received = "recovered"
        finally:
            log.append("closed")

    with recorder() as rec:
        gen = echo()
        assert next(gen) is None
        assert gen.send("a") == "a"
        assert gen.throw(KeyError("k")) == "recovered"
        gen.close()
    assert log == ["a", "caught 'k'", "closed"]
    (call,) = calls(rec)
    assert call.status == "ok"  # closed early is not an error
    assert call.output == [None, "a", "recovered"]


def test_generator_that_raises_is_an_error() -> None:
    @roost.tool
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("mid-stream")

    with recorder() as rec, pytest.raises(ValueError, match="mid-stream"):
        list(broken())
    (call,) = calls(rec)
    assert (call.status, call.error_type) == ("error", "ValueError")


def test_generator_output_is_capped() -> None:
    @roost.tool
    def many() -> Iterator[int]:
        yield from range(10)

    with recorder(limits=CaptureLimits(max_items=3)) as rec:
        assert sum(many()) == 45
    (call,) = calls(rec)
    assert call.output == [0, 1, 2, "…[truncated 7 items]"]


async def test_async_generator_tool_delegates_asend_athrow_aclose() -> None:
    log: list[Any] = []

    @roost.tool
    async def echo(prefix: str) -> AsyncIterator[str]:
        received = "start"
        try:
            while True:
                try:
                    received = yield f"{prefix}{received}"
                except KeyError:
                    received = "recovered"
        finally:
            log.append("closed")

    async with recorder() as rec:
        agen = echo(">")
        assert await agen.__anext__() == ">start"
        assert await agen.asend("x") == ">x"
        assert await agen.athrow(KeyError("k")) == ">recovered"
        await agen.aclose()
    assert log == ["closed"]
    (call,) = calls(rec)
    assert call.parameters == {"prefix": ">"}
    assert call.output == [">start", ">x", ">recovered"]
    assert call.status == "ok"


async def test_async_generator_exhaustion_and_errors() -> None:
    @roost.tool
    async def count(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @roost.tool
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise OSError("disk")

    async with recorder() as rec:
        assert [i async for i in count(3)] == [0, 1, 2]
        with pytest.raises(OSError):
            async for _ in broken():
                pass
    assert [(c.name, c.status, c.output) for c in calls(rec)] == [
        ("count", "ok", [0, 1, 2]),
        ("broken", "error", None),
    ]
    # Outside a call the async generator still works and records nothing.
    assert [i async for i in count(2)] == [0, 1]


def test_arguments_and_outputs_are_frozen_at_call_time() -> None:
    state = {"cart": ["A-17"]}

    @roost.tool
    def checkout(session: dict[str, Any]) -> dict[str, Any]:
        return {"items": list(session["cart"])}

    with recorder() as rec:
        receipt = checkout(state)
        state["cart"].append("B-2")
        receipt["items"].append("tampered")
    (call,) = calls(rec)
    assert call.parameters == {"session": {"cart": ["A-17"]}}
    assert call.output == {"items": ["A-17"]}


def test_internal_failures_never_reach_the_tool(caplog: pytest.LogCaptureFixture) -> None:
    def broken_clock() -> int:
        raise OSError("clock is gone")

    rec = CallRecorder("1", auto_submit=False)

    @roost.tool
    def add(a: int, b: int) -> int:
        return a + b

    with caplog.at_level(logging.ERROR, logger="roost"), rec:
        rec._clock = broken_clock
        assert add(1, 2) == 3
        assert add(2, 3) == 5
    assert rec.stats.internal_errors == 2
    assert caplog.text.count("failed to record a tool call") == 1  # logged once


def test_entries_beyond_the_cap_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    @roost.tool
    def ping() -> str:
        return "pong"

    with caplog.at_level(logging.WARNING, logger="roost"):
        with recorder(limits=CaptureLimits(max_entries=3)) as rec:
            for _ in range(5):
                assert ping() == "pong"
        assert len(calls(rec)) == 3
        assert rec.stats.dropped_records == 2
        request = rec.build_request()
        assert request is not None and request.metadata is not None
        assert request.metadata["roost"]["dropped_records"] == 2
    assert caplog.text.count("more than 3 records") == 1
