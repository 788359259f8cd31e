"""``/v1/roost/webhooks`` through the real app, and lifecycle events end to end."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from roost.platform.storage import Database
from roost.platform.webhooks import WebhookEndpoint, emit, update_endpoint, verify_signature
from tests.platform.conftest import AppFactory, Org, client_for, new_org
from tests.platform.seed import check, seed_run
from tests.platform.webhooks.receiver import Receiver, Reply, running_receiver
from tests.platform.webhooks.test_bodies import (
    SIMULATION_ENDED,
    SIMULATION_RESULT_EVALUATED,
    assert_body,
)

BASE = "/v1/roost/webhooks"


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


@pytest.fixture
async def cleanup(db: Database, org: Org) -> AsyncIterator[list[int]]:
    """Drop the test's endpoints afterwards (the PostgreSQL database is shared)."""
    orgs = [org.id]
    yield orgs
    async with db.write() as session:
        await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.org_id.in_(orgs)))


async def create(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    body.setdefault("url", "https://example.com/hook")
    return check(await client.post(BASE, json=body))


async def test_register_list_update_rotate_delete(
    client: httpx.AsyncClient, cleanup: list[int]
) -> None:
    created = await create(
        client,
        url="https://hooks.example.com/roost",
        description="ops channel",
        event_types=["simulation_result_evaluated"],
        agent_ids=[5],
    )
    secret = created.pop("secret")
    assert secret.startswith("whsec_")
    assert created["url"] == "https://hooks.example.com/roost"
    assert created["event_types"] == ["simulation_result_evaluated"]
    assert created["agent_ids"] == [5] and created["enabled"] is True
    webhook_id = created["id"]
    listed = check(await client.get(BASE))
    assert listed == {"webhooks": [created]}
    assert secret not in json.dumps(listed)  # shown once, at creation
    assert check(await client.get(f"{BASE}/{webhook_id}")) == created

    changed = check(
        await client.patch(f"{BASE}/{webhook_id}", json={"event_types": None, "enabled": False})
    )
    assert changed["event_types"] is None and changed["enabled"] is False
    assert changed["agent_ids"] == [5] and changed["url"] == created["url"]

    rotated = check(
        await client.post(f"{BASE}/{webhook_id}/rotate-secret", json={"grace_seconds": 600})
    )
    assert rotated["id"] == webhook_id and rotated["secret"] not in (secret, None)
    assert rotated["previous_secret_expires_at"] is not None
    shown = check(await client.get(f"{BASE}/{webhook_id}"))["previous_secret_expires_at"]
    assert datetime.fromisoformat(shown) == datetime.fromisoformat(
        rotated["previous_secret_expires_at"]
    )
    revoked = check(await client.post(f"{BASE}/{webhook_id}/rotate-secret"))
    assert revoked["previous_secret_expires_at"] is not None  # default grace: one day
    now = check(await client.post(f"{BASE}/{webhook_id}/rotate-secret", json={"grace_seconds": 0}))
    assert now["previous_secret_expires_at"] is None

    assert check(await client.delete(f"{BASE}/{webhook_id}")) == {"id": webhook_id, "deleted": True}
    assert (await client.get(f"{BASE}/{webhook_id}")).status_code == 404
    assert check(await client.get(BASE)) == {"webhooks": []}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"url": "ftp://example.com"}, ["body", "url"]),
        ({"url": "https://example.com/#x"}, ["body", "url"]),
        ({"url": "not a url"}, ["body", "url"]),
        (
            {"url": "https://example.com", "event_types": ["call_started"]},
            ["body", "event_types", 0],
        ),
        ({"url": "https://example.com", "event_types": []}, ["body", "event_types"]),
        ({"url": "https://example.com", "agent_ids": [0]}, ["body", "agent_ids", 0]),
        ({"url": "https://example.com", "agent_ids": ["x"]}, ["body", "agent_ids", 0]),
        ({"url": "https://example.com", "secret": "mine"}, ["body", "secret"]),
        ({"url": "https://example.com", "enabled": "maybe"}, ["body", "enabled"]),
        ({}, ["body", "url"]),
    ],
)
async def test_bad_registrations_get_422(
    client: httpx.AsyncClient, body: dict[str, Any], loc: list[Any]
) -> None:
    response = await client.post(BASE, json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert loc in [error["loc"] for error in detail], detail
    assert check(await client.get(BASE)) == {"webhooks": []}


async def test_bad_updates_and_rotations_get_422(
    client: httpx.AsyncClient, cleanup: list[int]
) -> None:
    webhook_id = (await create(client))["id"]
    for body, loc in [
        ({"url": None}, ["body", "url"]),
        ({"enabled": None}, ["body", "enabled"]),
        ({"url": "mailto:x@example.com"}, ["body", "url"]),
        ({"colour": "red"}, ["body", "colour"]),
    ]:
        response = await client.patch(f"{BASE}/{webhook_id}", json=body)
        assert response.status_code == 422, (body, response.text)
        assert loc in [error["loc"] for error in response.json()["detail"]]
    for grace in (-1, 7 * 86400 + 1, "soon"):
        response = await client.post(
            f"{BASE}/{webhook_id}/rotate-secret", json={"grace_seconds": grace}
        )
        assert response.status_code == 422, response.text
    response = await client.get(f"{BASE}/{webhook_id}/deliveries", params={"status": "lost"})
    assert response.status_code == 422
    response = await client.get(f"{BASE}/{webhook_id}/deliveries", params={"limit": 0})
    assert response.status_code == 422
    assert (await client.get(f"{BASE}/abc")).status_code == 422


async def test_another_organisation_sees_nothing(
    client: httpx.AsyncClient, db: Database, cleanup: list[int]
) -> None:
    webhook_id = (await create(client))["id"]
    intruder = await new_org(db, "intruder")
    cleanup.append(intruder.id)
    app = client.app  # type: ignore[attr-defined]
    async with client_for(app, intruder.headers) as other:
        assert check(await other.get(BASE)) == {"webhooks": []}
        for method, path, body in [
            ("GET", f"{BASE}/{webhook_id}", None),
            ("PATCH", f"{BASE}/{webhook_id}", {"enabled": False}),
            ("DELETE", f"{BASE}/{webhook_id}", None),
            ("POST", f"{BASE}/{webhook_id}/rotate-secret", {}),
            ("GET", f"{BASE}/{webhook_id}/deliveries", None),
            ("POST", f"{BASE}/{webhook_id}/deliveries/1/redeliver", None),
            ("POST", f"{BASE}/{webhook_id}/test", None),
        ]:
            response = await other.request(method, path, json=body)
            assert response.status_code == 404, (method, path, response.text)
            assert response.json() == {"detail": f"webhook {webhook_id} not found"}
    # Untouched for its owner.
    assert check(await client.get(f"{BASE}/{webhook_id}"))["enabled"] is True


async def test_unknown_and_impossible_ids_get_404(client: httpx.AsyncClient) -> None:
    for webhook_id in (1, 2**63, 10**30, 0, -4):
        response = await client.get(f"{BASE}/{webhook_id}")
        assert response.status_code == 404, (webhook_id, response.text)


async def test_an_api_key_is_required(client: httpx.AsyncClient) -> None:
    app = client.app  # type: ignore[attr-defined]
    async with client_for(app) as anonymous:
        assert (await anonymous.get(BASE)).status_code == 401
        assert (await anonymous.post(BASE, json={"url": "https://example.com"})).status_code == 401
    async with client_for(app, {"X-API-Key": "roost_0123456789abcdef_nope"}) as wrong:
        assert (await wrong.get(BASE)).status_code == 401


async def test_creation_is_idempotent(client: httpx.AsyncClient, cleanup: list[int]) -> None:
    headers = {"Idempotency-Key": "create-hook-1"}
    body = {"url": "https://example.com/once"}
    first = await client.post(BASE, json=body, headers=headers)
    second = await client.post(BASE, json=body, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert len(check(await client.get(BASE))["webhooks"]) == 1


async def test_delivery_log_and_redelivery(
    client: httpx.AsyncClient, db: Database, org: Org, cleanup: list[int]
) -> None:
    webhook_id = (await create(client))["id"]
    async with db.write() as session:
        (delivery_id,) = await emit(
            session,
            org.id,
            "simulation_ended",
            {"type": "simulation_ended", "id": 1, "digital_human_id": 1, "simulation_run_id": 1},
        )
        # Disabled in the same transaction, so the app's worker leaves the
        # delivery alone while we look (a disabled endpoint's queue waits).
        await update_endpoint(session, org.id, webhook_id, enabled=False)
    log = check(await client.get(f"{BASE}/{webhook_id}/deliveries"))["deliveries"]
    assert [(d["id"], d["status"], d["attempts"]) for d in log] == [(delivery_id, "pending", 0)]
    assert check(
        await client.get(f"{BASE}/{webhook_id}/deliveries", params={"status": "failed"})
    ) == {"deliveries": []}
    again = check(await client.post(f"{BASE}/{webhook_id}/deliveries/{delivery_id}/redeliver"))
    assert again["id"] == delivery_id and again["status"] == "pending"
    for missing in (delivery_id + 1000, 2**64):
        response = await client.post(f"{BASE}/{webhook_id}/deliveries/{missing}/redeliver")
        assert response.status_code == 404


async def test_ping_reaches_a_real_receiver(
    client: httpx.AsyncClient, receiver: Receiver, cleanup: list[int]
) -> None:
    created = await create(client, url=receiver.url)
    receiver.secrets.append(created["secret"])
    result = check(await client.post(f"{BASE}/{created['id']}/test"))
    assert result["delivered"] is True and result["status_code"] == 200
    assert result["response"] == '{"ok":true}'
    (ping,) = receiver.received
    assert ping.signature_ok and ping.json()["type"] == "ping"
    receiver.script = [Reply(500, body=b"down")]
    failed = check(await client.post(f"{BASE}/{created['id']}/test"))
    assert (failed["delivered"], failed["status_code"], failed["response"]) == (False, 500, "down")


async def test_lifecycle_events_arrive_signed_with_bluejay_bodies(
    make_app: AppFactory, org: Org, receiver: Receiver, cleanup: list[int]
) -> None:
    async with make_app() as app, client_for(app, org.headers) as client:
        hook = await create(client, url=receiver.url)
        receiver.secrets.append(hook["secret"])
        seeded = await seed_run(client, expected_tool_calls=[{"name": "lookup_order"}])
        result_id = seeded.result_ids[0]
        base = f"/v1/roost/simulation-results/{result_id}"
        check(await client.post(f"{base}/call-started", json={}))
        check(await client.post(f"{base}/call-ended", json={"outcome": "completed"}))
        (ended,) = await receiver.wait_for(1)
        check(
            await client.post(
                "/v1/update-simulation-result",
                json={
                    "simulation_result_id": result_id,
                    "tool_calls": [
                        {"name": "lookup_order", "start_offset_ms": 1200, "call_id": "c1"}
                    ],
                },
            )
        )
        await app.state.lifecycle.run_once()
        _, evaluated = await receiver.wait_for(2)
    for delivery in (ended, evaluated):
        assert delivery.signature_ok
        assert verify_signature(
            hook["secret"], delivery.body, delivery.headers["x-bluejay-signature"]
        )
        assert delivery.headers["x-bluejay-event"] == delivery.json()["type"]
    assert_body(SIMULATION_ENDED, ended.json())
    assert ended.json()["id"] == int(result_id)
    assert_body(SIMULATION_RESULT_EVALUATED, evaluated.json())
    body = evaluated.json()
    assert body["agent_id"] == seeded.agent_id
    assert [call["name"] for call in body["tool_calls"]] == ["lookup_order"]
    assert body["tool_calls"][0]["call_id"] == "c1"  # Roost extension kept


async def test_routes_are_documented(client: httpx.AsyncClient) -> None:
    paths = check(await client.get("/openapi.json"))["paths"]
    assert {
        BASE,
        f"{BASE}/{{webhook_id}}",
        f"{BASE}/{{webhook_id}}/rotate-secret",
        f"{BASE}/{{webhook_id}}/deliveries",
        f"{BASE}/{{webhook_id}}/deliveries/{{delivery_id}}/redeliver",
        f"{BASE}/{{webhook_id}}/test",
    } <= set(paths)
