"""Sender logic against httpx.MockTransport with a fake clock (no sockets, no sleeps)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from roost import __version__
from roost.delivery import (
    DeliveryConfig,
    EntryState,
    Outbox,
    Sender,
)

T0 = 1_800_000_000.0
BASE = "http://platform.test"


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Script:
    """A MockTransport handler answering from a list, recording every request."""

    def __init__(
        self, *answers: httpx.Response | Exception | Callable[[httpx.Request], httpx.Response]
    ) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = (
            self.answers.pop(0) if self.answers else httpx.Response(200, json={"status": "success"})
        )
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "o.sqlite3") as box:
        yield box


def make_sender(outbox: Outbox, script: Script, clock: Clock, **changes: object) -> Sender:
    settings: dict[str, object] = {
        "api_key": "rk_test_key",
        "base_url": BASE,
        "outbox_path": outbox.path,
        "backoff_base": 2.0,
        "backoff_cap": 60.0,
        "max_age": 3_600.0,
    }
    settings.update(changes)
    config = DeliveryConfig(**settings)  # type: ignore[arg-type]
    return Sender(
        outbox, config, transport=httpx.MockTransport(script), clock=clock, rand=lambda: 0.5
    )


def submit(outbox: Outbox, clock: Clock, result: str = "720488", fp: str | None = None) -> str:
    body = b'{"simulation_result_id":"%s"}' % result.encode()
    return outbox.add(
        body=body, simulation_result_id=result, base_url=BASE, key_fingerprint=fp, now=clock()
    ).id


def test_posts_with_the_contract_headers(outbox: Outbox) -> None:
    clock, script = Clock(), Script()
    sender = make_sender(outbox, script, clock)
    entry_id = submit(outbox, clock)
    assert sender.step() is None
    [request] = script.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/v1/update-simulation-result"
    assert request.headers["X-API-Key"] == "rk_test_key"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["User-Agent"] == f"roost-sdk/{__version__}"
    assert request.headers["Idempotency-Key"] == outbox.find(entry_id).idempotency_key
    assert request.content == b'{"simulation_result_id":"720488"}'
    entry = outbox.find(entry_id)
    assert entry.state is EntryState.DELIVERED and entry.delivered_at == T0
    assert sender.stats.delivered == 1 and sender.stats.attempts == 1
    sender.stop()


def test_500_503_then_200_reuses_the_idempotency_key_and_backs_off(outbox: Outbox) -> None:
    clock = Clock()
    script = Script(httpx.Response(500), httpx.Response(503, text="overloaded"))
    sender = make_sender(outbox, script, clock)
    entry_id = submit(outbox, clock)

    # Attempt 1 -> 500; full jitter with rand 0.5 and base 2 -> 1 s.
    assert sender.step() == T0 + 1.0
    entry = outbox.find(entry_id)
    assert (entry.state, entry.attempts, entry.last_status) == (EntryState.PENDING, 1, 500)
    assert entry.next_attempt_at == T0 + 1.0

    clock.now = T0 + 0.5  # not due yet: no request
    assert sender.step() == T0 + 1.0
    assert len(script.requests) == 1

    clock.now = T0 + 1.0  # attempt 2 -> 503; bound 4 s -> 2 s
    assert sender.step() == T0 + 3.0
    assert outbox.find(entry_id).last_error == "HTTP 503: overloaded"

    clock.now = T0 + 3.0  # attempt 3 -> 200
    assert sender.step() is None
    assert outbox.find(entry_id).state is EntryState.DELIVERED
    keys = {r.headers["Idempotency-Key"] for r in script.requests}
    assert len(script.requests) == 3 and len(keys) == 1
    sender.stop()


@pytest.mark.parametrize("kind", ["seconds", "date"])
def test_429_retry_after_is_honoured(outbox: Outbox, kind: str) -> None:
    clock = Clock()
    if kind == "seconds":
        header = "42"
    else:
        header = format_datetime(datetime.fromtimestamp(T0 + 42, tz=UTC), usegmt=True)
    script = Script(httpx.Response(429, headers={"Retry-After": header}))
    sender = make_sender(outbox, script, clock)
    entry_id = submit(outbox, clock)
    assert sender.step() == T0 + 42
    clock.now = T0 + 41.9
    sender.step()
    assert len(script.requests) == 1
    clock.now = T0 + 42
    sender.step()
    assert len(script.requests) == 2
    assert outbox.find(entry_id).state is EntryState.DELIVERED
    sender.stop()


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (httpx.ConnectError("refused"), "connect"),
        (httpx.ConnectTimeout("slow"), "timeout"),
        (httpx.ReadTimeout("stalled"), "timeout"),
        (httpx.ReadError("connection reset by peer"), "network"),
        (httpx.RemoteProtocolError("server hung up"), "network"),
        (RuntimeError("transport bug"), "network"),
    ],
)
def test_transport_errors_are_retried(
    outbox: Outbox, error: Exception, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    sender = make_sender(outbox, Script(error), clock)
    entry_id = submit(outbox, clock)
    with caplog.at_level(logging.WARNING, logger="roost.delivery"):
        assert sender.step() == T0 + 1.0
    entry = outbox.find(entry_id)
    assert entry.state is EntryState.PENDING
    assert entry.last_error is not None and entry.last_error.startswith(f"{kind} error:")
    assert entry.last_status is None
    clock.now = T0 + 1.0
    sender.step()
    assert outbox.find(entry_id).state is EntryState.DELIVERED
    sender.stop()


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 413, 422])
def test_permanent_errors_fail_but_keep_the_payload(
    outbox: Outbox, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    script = Script(httpx.Response(status, json={"detail": "Simulation result not found"}))
    sender = make_sender(outbox, script, clock)
    entry_id = submit(outbox, clock)
    with caplog.at_level(logging.ERROR, logger="roost.delivery"):
        assert sender.step() is None
    entry = outbox.find(entry_id)
    assert entry.state is EntryState.FAILED
    assert entry.last_status == status
    assert entry.last_error == f"HTTP {status}: Simulation result not found"
    assert outbox.body(entry_id) == b'{"simulation_result_id":"720488"}'
    assert "roost outbox flush --retry-failed" in caplog.text
    clock.now += 10_000
    sender.step()
    assert len(script.requests) == 1  # never retried on its own
    sender.stop()


def test_redirects_are_not_followed(outbox: Outbox) -> None:
    clock = Clock()
    script = Script(httpx.Response(307, headers={"Location": "https://evil.example/"}))
    sender = make_sender(outbox, script, clock)
    entry_id = submit(outbox, clock)
    sender.step()
    assert len(script.requests) == 1
    entry = outbox.find(entry_id)
    assert entry.state is EntryState.FAILED and "https://evil.example/" in (entry.last_error or "")
    sender.stop()


def test_gives_up_after_max_age_but_keeps(outbox: Outbox) -> None:
    clock = Clock()
    sender = make_sender(
        outbox,
        Script(*[httpx.Response(503)] * 100),
        clock,
        backoff_base=600.0,
        backoff_cap=600.0,
        max_age=1_000.0,
    )
    entry_id = submit(outbox, clock)
    deadlines = []
    while (deadline := sender.step()) is not None:
        deadlines.append(deadline)
        clock.now = deadline
    # 300 s, 300 s, 300 s (rand 0.5 of 600), then the last try exactly at the age limit.
    assert deadlines == [T0 + 300, T0 + 600, T0 + 900, T0 + 1000]
    entry = outbox.find(entry_id)
    assert entry.state is EntryState.FAILED and entry.attempts == 5
    assert "gave up after 5 attempts" in (entry.last_error or "")
    sender.stop()


def test_without_api_key_nothing_is_sent(outbox: Outbox) -> None:
    clock, script = Clock(), Script()
    sender = make_sender(outbox, script, clock, api_key=None)
    entry_id = submit(outbox, clock)
    assert sender.step() is None
    assert script.requests == []
    assert outbox.find(entry_id).state is EntryState.PENDING
    sender.stop()


def test_entries_of_another_key_are_left_alone(outbox: Outbox) -> None:
    clock, script = Clock(), Script()
    sender = make_sender(outbox, script, clock)
    foreign = submit(outbox, clock, fp="0123456789abcdef")
    keyless = submit(outbox, clock, fp=None)
    sender.step()
    assert outbox.find(foreign).state is EntryState.PENDING
    assert outbox.find(keyless).state is EntryState.DELIVERED
    assert len(script.requests) == 1
    sender.stop()


def test_huge_error_body_is_read_only_in_part(outbox: Outbox) -> None:
    clock = Clock()
    script = Script(httpx.Response(400, content=b"E" * 5_000_000))
    sender = make_sender(outbox, script, clock)
    entry_id = submit(outbox, clock)
    sender.step()
    error = outbox.find(entry_id).last_error or ""
    assert error.startswith("HTTP 400: EEEE") and len(error) < 1_000
    sender.stop()


def test_delivered_rows_are_purged_after_retention(outbox: Outbox) -> None:
    clock = Clock()
    sender = make_sender(outbox, Script(), clock, retention=100.0)
    entry_id = submit(outbox, clock)
    sender.step()
    assert outbox.find(entry_id).state is EntryState.DELIVERED
    clock.now = T0 + 4_000  # past retention and past the hourly purge
    sender.step()
    with pytest.raises(KeyError):
        outbox.find(entry_id)
    sender.stop()


def test_zero_retention_deletes_at_delivery(outbox: Outbox) -> None:
    clock = Clock()
    sender = make_sender(outbox, Script(), clock, retention=0)
    submit(outbox, clock)
    sender.step()
    assert outbox.counts() == {"pending": 0, "delivered": 0, "failed": 0}
    sender.stop()


def test_many_entries_drain_in_order(outbox: Outbox) -> None:
    clock, script = Clock(), Script()
    sender = make_sender(outbox, script, clock)
    for i in range(25):
        clock.now = T0 + i
        submit(outbox, clock, result=f"r{i}")
    sender.step()
    sent = [r.content.decode() for r in script.requests]
    assert sent == [f'{{"simulation_result_id":"r{i}"}}' for i in range(25)]
    assert outbox.counts()["delivered"] == 25
    sender.stop()


def test_thread_delivers_on_wake(outbox: Outbox) -> None:
    script = Script()
    config = DeliveryConfig(api_key="k", base_url=BASE, outbox_path=outbox.path, poll_interval=60)
    sender = Sender(outbox, config, transport=httpx.MockTransport(script))
    sender.start()
    try:
        entry_id = outbox.add(
            body=b'{"simulation_result_id":"1"}',
            simulation_result_id="1",
            base_url=BASE,
            key_fingerprint=None,
            now=0.0,
        ).id
        sender.wake()
        for _ in range(600):
            if outbox.find(entry_id).state is EntryState.DELIVERED:
                break
            sender.wait_progress(0.1)
        assert outbox.find(entry_id).state is EntryState.DELIVERED
    finally:
        assert sender.stop(timeout=10)
    assert not sender.running
