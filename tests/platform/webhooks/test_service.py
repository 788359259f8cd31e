"""Endpoint management, emission and the queue, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, select

from roost.platform.storage import Database, utcnow
from roost.platform.webhooks import (
    WebhookConfigError,
    WebhookDelivery,
    WebhookEndpoint,
    create_endpoint,
    delete_endpoint,
    emit,
    list_deliveries,
    list_endpoints,
    redeliver,
    rotate_secret,
    update_endpoint,
    validate_url,
)
from roost.platform.webhooks.schedule import Decision
from roost.platform.webhooks.service import claim_due, get_endpoint, record_attempt
from tests.platform.conftest import Org, new_org

ENDED = {"type": "simulation_ended", "id": 1, "digital_human_id": 2, "simulation_run_id": 3}


def evaluated(agent_id: int) -> dict[str, Any]:
    return {
        "type": "simulation_result_evaluated",
        "id": 1,
        "digital_human_id": 2,
        "simulation_run_id": 3,
        "simulation_id": 4,
        "agent_id": agent_id,
    }


async def add(db: Database, org: Org, url: str = "https://example.com/hook", **kw: Any) -> int:
    async with db.write() as session:
        endpoint, _ = await create_endpoint(session, org.id, url=url, **kw)
        return endpoint.id


async def deliveries_of(db: Database, org: Org) -> list[WebhookDelivery]:
    async with db.read() as session:
        query = select(WebhookDelivery).where(WebhookDelivery.org_id == org.id)
        return list((await session.execute(query.order_by(WebhookDelivery.id))).scalars())


@pytest.fixture
async def cleanup(db: Database) -> Any:
    """Remove every endpoint made by the test (the PostgreSQL database is shared)."""
    made: list[int] = []
    yield made
    async with db.write() as session:
        await session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.org_id.in_(made)))


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/roost",
        "http://127.0.0.1:8080/a?b=c",
        "http://[::1]:9000/",
        "https://user:pass@example.com/x",
    ],
)
def test_valid_urls(url: str) -> None:
    assert validate_url(url) == url


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "non-empty"),
        ("example.com/hook", "http:// or https://"),
        ("ftp://example.com", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("http://", "host"),
        ("http:///path", "host"),
        ("https://example.com/a b", "spaces"),
        ("https://example.com/\x00", "control"),
        ("https://example.com:99999/", "valid URL"),
        ("https://example.com:0/", "port 0"),
        ("https://example.com/#x", "fragment"),
        ("https://" + "a" * 2050, "at most 2048"),
    ],
)
def test_invalid_urls(url: str, message: str) -> None:
    with pytest.raises(WebhookConfigError) as caught:
        validate_url(url)
    assert caught.value.field == "url"
    assert message in caught.value.message


async def test_endpoint_lifecycle_is_scoped_to_the_organisation(
    db: Database, org: Org, cleanup: list[int]
) -> None:
    other = await new_org(db, "other")
    cleanup += [org.id, other.id]
    async with db.write() as session:
        endpoint, secret = await create_endpoint(
            session,
            org.id,
            url="https://example.com/hook",
            description="ops",
            event_types=["simulation_ended", "simulation_ended"],
            agent_ids=[7, 7, 8],
        )
    assert secret.startswith("whsec_") and endpoint.secret == secret
    assert endpoint.event_types == ["simulation_ended"]  # duplicates dropped
    assert endpoint.agent_ids == [7, 8]
    async with db.read() as session:
        assert [e.id for e in await list_endpoints(session, org.id)] == [endpoint.id]
        assert await list_endpoints(session, other.id) == []
        assert await get_endpoint(session, other.id, endpoint.id) is None
    async with db.write() as session:
        assert await update_endpoint(session, other.id, endpoint.id, enabled=False) is None
        assert await rotate_secret(session, other.id, endpoint.id) is None
        assert not await delete_endpoint(session, other.id, endpoint.id)
        updated = await update_endpoint(
            session, org.id, endpoint.id, event_types=None, enabled=False, description=None
        )
        assert updated is not None
        assert (updated.event_types, updated.enabled, updated.description) == (None, False, None)
        assert updated.agent_ids == [7, 8]  # untouched
    async with db.write() as session:
        assert await delete_endpoint(session, org.id, endpoint.id)
    async with db.read() as session:
        assert await list_endpoints(session, org.id) == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"url": "ftp://x"}, "url"),
        ({"event_types": ["call_started"]}, "event_types"),
        ({"event_types": []}, "event_types"),
        ({"agent_ids": []}, "agent_ids"),
        ({"agent_ids": [0]}, "agent_ids"),
        ({"agent_ids": [True]}, "agent_ids"),
        ({"agent_ids": [2**63]}, "agent_ids"),
        ({"description": "x" * 1001}, "description"),
    ],
)
async def test_bad_settings_are_refused(
    db: Database, org: Org, options: dict[str, Any], field: str
) -> None:
    settings = {"url": "https://example.com/hook", **options}
    with pytest.raises(WebhookConfigError) as caught:
        async with db.write() as session:
            await create_endpoint(session, org.id, **settings)
    assert caught.value.field == field
    async with db.read() as session:
        assert await list_endpoints(session, org.id) == []


async def test_endpoint_limit(db: Database, org: Org, cleanup: list[int]) -> None:
    cleanup.append(org.id)
    async with db.write() as session:
        for _ in range(100):
            await create_endpoint(session, org.id, url="https://example.com/hook")
    with pytest.raises(WebhookConfigError, match="at most 100"):
        async with db.write() as session:
            await create_endpoint(session, org.id, url="https://example.com/hook")


async def test_rotation_keeps_the_previous_secret_for_the_grace_period(
    db: Database, org: Org, cleanup: list[int]
) -> None:
    cleanup.append(org.id)
    now = utcnow()
    async with db.write() as session:
        endpoint, first = await create_endpoint(session, org.id, url="https://example.com/h")
        rotated = await rotate_secret(
            session, org.id, endpoint.id, grace=timedelta(hours=1), now=now
        )
        assert rotated is not None
        endpoint, second = rotated
    assert second != first
    assert endpoint.secrets_at(now) == (first, [second, first])
    assert endpoint.secrets_at(now + timedelta(hours=1)) == (second, [second])
    async with db.write() as session:
        again = await rotate_secret(session, org.id, endpoint.id, grace=timedelta(0), now=now)
        assert again is not None
        endpoint, third = again
    assert endpoint.secrets_at(now) == (third, [third])
    with pytest.raises(WebhookConfigError):
        async with db.write() as session:
            await rotate_secret(session, org.id, endpoint.id, grace=timedelta(days=8))


async def test_emit_queues_one_delivery_per_matching_endpoint(
    db: Database, org: Org, cleanup: list[int]
) -> None:
    other = await new_org(db, "other")
    cleanup += [org.id, other.id]
    every = await add(db, org)
    ended_only = await add(db, org, event_types=["simulation_ended"])
    agent_5 = await add(db, org, agent_ids=[5])
    disabled = await add(db, org, enabled=False)
    await add(db, other)  # another organisation's endpoint never receives it
    async with db.write() as session:
        ids = await emit(session, org.id, "simulation_result_evaluated", evaluated(agent_id=5))
        assert len(ids) == 2
        ids += await emit(session, org.id, "simulation_result_evaluated", evaluated(agent_id=6))
    rows = await deliveries_of(db, org)
    assert [r.id for r in rows] == ids
    assert [r.endpoint_id for r in rows] == [every, agent_5, every]
    assert rows[0].event_id == rows[1].event_id != rows[2].event_id
    assert {r.status for r in rows} == {"pending"} and {r.attempts for r in rows} == {0}
    assert (
        rows[0].body == '{"type":"simulation_result_evaluated","id":1,"digital_human_id":2,'
        '"simulation_run_id":3,"simulation_id":4,"agent_id":5}'
    )
    assert rows[0].expires_at - rows[0].created_at == timedelta(days=3)
    assert ended_only not in [r.endpoint_id for r in rows]
    assert disabled not in [r.endpoint_id for r in rows]
    async with db.read() as session:
        assert await list_deliveries(session, other.id, every) == []


async def test_emit_finds_the_agent_of_a_simulation_ended_event(
    db: Database, client: Any, org: Org, cleanup: list[int]
) -> None:
    from tests.platform.seed import seed_run

    cleanup.append(org.id)
    seeded = await seed_run(client)
    # The app's worker sends what is queued: point it at a closed local port,
    # never at the internet.
    url = "http://127.0.0.1:9/hook"
    mine = await add(db, org, url, agent_ids=[seeded.agent_id])
    theirs = await add(db, org, url, agent_ids=[seeded.agent_id + 1000])
    body = {**ENDED, "simulation_run_id": int(seeded.run_id)}
    async with db.write() as session:
        await emit(session, org.id, "simulation_ended", body)
        # An explicit agent id wins over the lookup.
        await emit(session, org.id, "simulation_ended", body, agent_id=seeded.agent_id + 1000)
    assert [r.endpoint_id for r in await deliveries_of(db, org)] == [mine, theirs]


async def test_emit_commits_with_the_callers_transaction(
    db: Database, org: Org, cleanup: list[int]
) -> None:
    cleanup.append(org.id)
    await add(db, org)
    with pytest.raises(RuntimeError):
        async with db.write() as session:
            await emit(session, org.id, "simulation_ended", ENDED)
            raise RuntimeError("the status change failed")
    assert await deliveries_of(db, org) == []
    with pytest.raises(ValueError, match="differs"):
        async with db.write() as session:
            await emit(session, org.id, "simulation_result_evaluated", ENDED)
    async with db.write() as session:
        assert await emit(session, org.id, "simulation_ended", ENDED)
    assert len(await deliveries_of(db, org)) == 1


async def test_emit_without_endpoints_queues_nothing(db: Database, org: Org) -> None:
    async with db.write() as session:
        assert await emit(session, org.id, "simulation_ended", ENDED) == []


async def test_claims_lease_rows_and_lost_leases_are_detected(
    db: Database, org: Org, cleanup: list[int]
) -> None:
    cleanup.append(org.id)
    endpoint = await add(db, org)
    now = utcnow()
    async with db.write() as session:
        await emit(session, org.id, "simulation_ended", ENDED, now=now - timedelta(seconds=1))
    (wanted,) = [row.id for row in await deliveries_of(db, org)]
    lease = timedelta(seconds=60)
    claims = await asyncio.gather(
        *(claim_due(db, owner=f"w{i}", now=now, lease=lease, limit=1000) for i in range(4))
    )
    owners = [f"w{i}" for i, batch in enumerate(claims) for c in batch if c.id == wanted]
    assert len(owners) == 1, "a delivery was leased by two workers"
    owner = owners[0]
    claimed = next(c for batch in claims for c in batch if c.id == wanted)
    # While leased, nobody else gets it; once the lease lapses, another does.
    again = await claim_due(db, owner="x", now=now, lease=lease, limit=1000)
    assert wanted not in [c.id for c in again]
    later = now + lease
    retaken = await claim_due(db, owner="y", now=later, lease=lease, limit=1000)
    assert claimed.id in [c.id for c in retaken]
    decision = Decision("delivered", None, "HTTP 200")
    assert not await record_attempt(
        db, claimed, owner=owner, decision=decision, now=later, status_code=200, response=None
    )
    assert await record_attempt(
        db, claimed, owner="y", decision=decision, now=later, status_code=200, response="ok"
    )
    (row,) = await deliveries_of(db, org)
    assert (row.status, row.attempts, row.last_status_code, row.lease_owner) == (
        "delivered",
        1,
        200,
        None,
    )
    assert row.endpoint_id == endpoint


async def test_redeliver_restarts_the_schedule(db: Database, org: Org, cleanup: list[int]) -> None:
    cleanup.append(org.id)
    endpoint = await add(db, org)
    async with db.write() as session:
        (delivery_id,) = await emit(session, org.id, "simulation_ended", ENDED)
        row = await session.get(WebhookDelivery, delivery_id)
        assert row is not None
        row.status, row.attempts, row.last_error = "failed", 16, "HTTP 500; gave up"
    now = utcnow()
    async with db.write() as session:
        assert await redeliver(session, org.id + 10**9, endpoint, delivery_id) is None
        assert await redeliver(session, org.id, endpoint + 1, delivery_id) is None
        row = await redeliver(session, org.id, endpoint, delivery_id, now=now)
        assert row is not None
        assert (row.status, row.attempts, row.next_attempt_at) == ("pending", 0, now)
        assert row.expires_at == now + timedelta(days=3)
        assert row.last_error == "HTTP 500; gave up"  # history kept until the next attempt
