"""End to end: the SDK records a call and delivers it to a running ``roost serve``.

The agent side is the real SDK (``roost.CallRecorder``, ``@roost.tool``,
``roost.delivery.Delivery`` with its SQLite outbox in a temporary folder);
the platform side is ``roost serve`` in a subprocess on 127.0.0.1:0 with a
temporary SQLite database. Nothing between them is mocked.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

import roost
from roost.delivery import Delivery, DeliveryConfig
from roost.platform.storage import Database
from tests.openapi import assert_valid
from tests.platform.conftest import new_org, start_server, stop_server
from tests.platform.seed import check, seed_run


class OutOfStock(Exception):
    pass


@roost.tool
def check_stock(sku: str, quantity: int) -> dict[str, Any]:
    """Look up how many items are in stock."""
    return {"sku": sku, "available": quantity + 3}


@roost.tool(name="place_order")
async def order(sku: str, quantity: int) -> str:
    """Place an order."""
    raise OutOfStock(f"{sku} sold out")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'platform.sqlite3'}"


async def test_sdk_recording_reaches_roost_serve_with_roost_extensions_intact(
    sqlite_url: str, tmp_path: Path
) -> None:
    from roost.platform.storage import migrate

    db = Database(sqlite_url)
    try:
        await migrate.upgrade(db)
        org = await new_org(db, "e2e")
    finally:
        await db.dispose()
    server = await asyncio.to_thread(start_server, sqlite_url)
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=org.headers, timeout=60) as http:
            seeded = await seed_run(http, expected_tool_calls=[{"name": "check_stock"}])
            result_id = seeded.result_ids[0]

            config = DeliveryConfig(
                api_key=org.key,
                base_url=server.url,
                outbox_path=tmp_path / "outbox.sqlite3",
                backoff_base=0.05,
                backoff_cap=0.5,
            )
            delivery = Delivery(config, register_atexit=False)
            try:
                async with roost.CallRecorder(result_id, sink=delivery) as recorder:
                    recorder.tag("e2e")
                    check_stock("SKU-1", 2)
                    with pytest.raises(OutOfStock):
                        await order("SKU-1", 5)
                    recorder.event("customer asked for delivery date")
                pending = await asyncio.to_thread(delivery.flush, 60.0)
                assert pending == 0
            finally:
                delivery.close()

            data = check(await http.get(f"/v1/retrieve-simulation-result/{result_id}"))
            batches = check(await http.get(f"/v1/roost/simulation-results/{result_id}/enrichment"))
    finally:
        await asyncio.to_thread(stop_server, server)

    assert_valid("SingleSimulationResultResponse", data)
    result = data["simulation_result"]
    assert result["roost"]["enrichment"]["state"] == "received"
    assert result["roost"]["tags"] == ["e2e"]
    assert [event["title"] for event in result["events"]] == ["customer asked for delivery date"]
    assert len(batches["batches"]) == 1
    assert batches["batches"][0]["idempotency_key"]  # the SDK sends one per payload
    assert (batches["batches"][0]["source"] or "").startswith("roost")

    groups = {group["name"]: group for group in result["tool_calls"]}
    assert set(groups) == {"check_stock", "place_order"}
    [ok] = groups["check_stock"]["actual"]
    [failed] = groups["place_order"]["actual"]
    assert ok["parameters"] == {"sku": "SKU-1", "quantity": 2}
    assert ok["output"] == {"sku": "SKU-1", "available": 5}
    assert ok["status"] == "ok"
    assert ok["error_type"] is None
    assert failed["parameters"] == {"sku": "SKU-1", "quantity": 5}
    assert failed["status"] == "error"
    assert failed["error_type"].endswith("OutOfStock")
    assert failed["error_message"] == "SKU-1 sold out"
    for call in (ok, failed):
        assert isinstance(call["call_id"], str) and call["call_id"]
        assert isinstance(call["duration_ms"], int | float) and call["duration_ms"] >= 0
        assert isinstance(call["start_offset_ms"], int) and call["start_offset_ms"] >= 0
    assert ok["call_id"] != failed["call_id"]
    assert groups["check_stock"]["expected"], "the expected call is paired with the actual one"
