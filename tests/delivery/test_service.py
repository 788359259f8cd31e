from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import roost
from roost.delivery import (
    Delivery,
    DeliveryConfig,
    DeliveryConfigError,
    DeliveryError,
    EntryState,
    OutboxCorruptError,
    default_delivery,
)
from roost.delivery import service as service_module
from roost.schema import ToolCall, UpdateSimulationRequest

BASE = "http://platform.test"


def request(result: str = "720488", **fields: object) -> UpdateSimulationRequest:
    return UpdateSimulationRequest(simulation_result_id=result, **fields)  # type: ignore[arg-type]


class Recorder:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, req: httpx.Request) -> httpx.Response:
        self.requests.append(req)
        return httpx.Response(self.status, json={"status": "success"})


@pytest.fixture
def config(tmp_path: Path) -> DeliveryConfig:
    return DeliveryConfig(
        api_key="rk_test",
        base_url=BASE,
        outbox_path=tmp_path / "outbox.sqlite3",
        backoff_base=0.01,
        backoff_cap=0.05,
        poll_interval=0.2,
    )


@pytest.fixture
def server() -> Recorder:
    return Recorder()


@pytest.fixture
def delivery(config: DeliveryConfig, server: Recorder) -> Iterator[Delivery]:
    with Delivery(config, transport=httpx.MockTransport(server)) as d:
        yield d


def test_submit_commits_and_the_sender_delivers(delivery: Delivery, server: Recorder) -> None:
    entry_id = delivery.submit(request(tool_calls=[ToolCall(name="lookup", start_offset_ms=5)]))
    assert delivery.flush(timeout=30) == 0
    entry = delivery.outbox.find(entry_id)
    assert entry.state is EntryState.DELIVERED
    [sent] = server.requests
    assert (
        sent.content
        == b'{"simulation_result_id":"720488","tool_calls":[{"name":"lookup","start_offset_ms":5}]}'
    )
    assert sent.headers["Idempotency-Key"] == entry.idempotency_key
    assert delivery.stats.delivered == 1


def test_submit_rejects_other_types(delivery: Delivery) -> None:
    with pytest.raises(TypeError, match="UpdateSimulationRequest"):
        delivery.submit({"simulation_result_id": "1"})  # type: ignore[arg-type]


def test_unserialisable_payload_is_a_clear_error(delivery: Delivery) -> None:
    with pytest.raises(DeliveryError, match="cannot serialise the enrichment of result '9'"):
        delivery.submit(request("9", metadata={"handle": object()}))
    assert delivery.outbox.counts() == {"pending": 0, "delivered": 0, "failed": 0}


def test_invalid_payload_is_kept_as_failed_not_sent(
    delivery: Delivery, server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    bad = request(tool_calls=[ToolCall(name="lookup", start_offset_ms=-3)])
    with caplog.at_level(logging.ERROR, logger="roost.delivery"):
        entry_id = delivery.submit(bad)
    entry = delivery.outbox.find(entry_id)
    assert entry.state is EntryState.FAILED
    assert "invalid payload" in (entry.last_error or "") and "start_offset_ms" in (
        entry.last_error or ""
    )
    assert b'"start_offset_ms":-3' in delivery.outbox.body(entry_id)
    assert delivery.flush(timeout=5) == 0
    assert server.requests == []
    assert "will not be sent" in caplog.text


def test_missing_api_key_stores_warns_once_and_keeps_pending(
    config: DeliveryConfig, server: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    keyless = config.with_changes(api_key=None)
    with (
        caplog.at_level(logging.WARNING, logger="roost.delivery"),
        Delivery(keyless, transport=httpx.MockTransport(server)) as d,
    ):
        first = d.submit(request("1"))
        d.submit(request("2"))
        assert d.flush(timeout=30) == 2  # returns at once: nothing can be sent
        assert d.close() == 2
    warnings = [r for r in caplog.records if "no API key" in r.getMessage()]
    assert len(warnings) == 1
    assert "ROOST_API_KEY" in warnings[0].getMessage()
    assert server.requests == []
    # A process with a key picks them up later.
    with Delivery(config, transport=httpx.MockTransport(server)) as d:
        assert d.flush(timeout=30) == 0
        assert d.outbox.find(first).state is EntryState.DELIVERED
    assert len(server.requests) == 2


def test_flush_returns_what_is_left_when_the_next_try_is_later(config: DeliveryConfig) -> None:
    def throttled(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"})

    with Delivery(config, transport=httpx.MockTransport(throttled)) as d:
        entry_id = d.submit(request())
        assert d.flush(timeout=60) == 1
        entry = d.outbox.find(entry_id)
        assert entry.attempts == 1 and entry.next_attempt_at >= (entry.last_attempt_at or 0) + 3600
        assert d.close(timeout=0.5) == 1
    assert entry.state is EntryState.PENDING


def test_forced_flush_ignores_backoff(config: DeliveryConfig) -> None:
    answers = [httpx.Response(503, headers={"Retry-After": "3600"})]

    def handler(req: httpx.Request) -> httpx.Response:
        return answers.pop(0) if answers else httpx.Response(200)

    with Delivery(config, transport=httpx.MockTransport(handler)) as d:
        d.submit(request())
        assert d.flush(timeout=30) == 1
        assert d.flush(timeout=30, force=True) == 0


def test_close_is_idempotent_and_submit_after_close_fails(
    config: DeliveryConfig, server: Recorder
) -> None:
    d = Delivery(config, transport=httpx.MockTransport(server))
    d.submit(request())
    assert d.close() == 0
    assert d.close() == 0
    assert d.closed and not d.sender.running
    with pytest.raises(DeliveryError, match="closed"):
        d.submit(request())


def test_not_started_delivery_starts_on_flush(config: DeliveryConfig, server: Recorder) -> None:
    with Delivery(config, transport=httpx.MockTransport(server), start=False) as d:
        d.submit(request())
        assert not d.sender.running
        assert d.flush(timeout=30) == 0
    assert len(server.requests) == 1


async def test_aflush_does_not_block_the_loop(delivery: Delivery) -> None:
    await asyncio.to_thread(delivery.submit, request())
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    left = await delivery.aflush(timeout=30)
    task.cancel()
    assert left == 0
    assert ticks > 0


def test_corrupt_outbox_is_a_clear_error_at_construction(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(OutboxCorruptError, match=str(path)):
        Delivery(DeliveryConfig(outbox_path=path))
    assert path.read_bytes() == b"\x00garbage" * 1000


def test_atexit_hook_is_registered_and_removed(
    config: DeliveryConfig, server: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    registered: list[object] = []
    monkeypatch.setattr(service_module.atexit, "register", registered.append)
    monkeypatch.setattr(service_module.atexit, "unregister", registered.remove)
    d = Delivery(config, transport=httpx.MockTransport(server))
    assert len(registered) == 1
    d.close()
    assert registered == []


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = tmp_path / "env-outbox.sqlite3"
    for name in ("ROOST_API_KEY", "BLUEJAY_API_KEY", "ROOST_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ROOST_OUTBOX_PATH", str(path))
    monkeypatch.setattr(service_module, "_default", None)
    yield path
    current = service_module._default
    if current is not None:
        current.close(timeout=0)


def test_default_delivery_is_process_wide_and_from_env(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BLUEJAY_API_KEY", "bj_key")
    monkeypatch.setenv("ROOST_BASE_URL", "http://127.0.0.1:9/")
    first = default_delivery()
    assert default_delivery() is first
    assert first.config.outbox_path == env
    assert first.config.api_key == "bj_key"
    assert first.config.base_url == "http://127.0.0.1:9"
    assert first.sender.running
    first.close(timeout=0)
    second = default_delivery()
    assert second is not first


def test_default_delivery_reports_malformed_env(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOST_BASE_URL", "not a url")
    with pytest.raises(DeliveryConfigError, match="base_url"):
        default_delivery()


def test_roost_package_exports_lazily() -> None:
    assert roost.Delivery is Delivery
    assert roost.DeliveryConfig is DeliveryConfig


def test_import_roost_does_not_load_delivery() -> None:
    import subprocess
    import sys

    code = "import sys, roost; print('roost.delivery' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_forked_child_gets_its_own_sender(config: DeliveryConfig, server: Recorder) -> None:
    with Delivery(config, transport=httpx.MockTransport(server)) as d:
        d.submit(request("parent"))
        assert d.flush(timeout=30) == 0
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            code = 1
            try:
                d.submit(request("child"))
                code = 0 if d.flush(timeout=30) == 0 and d.sender.running else 2
                d.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert d.outbox.counts() == {"pending": 0, "delivered": 2, "failed": 0}
        assert d.sender.running  # the parent's sender is untouched
