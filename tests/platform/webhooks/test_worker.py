"""The delivery worker against a real receiver on 127.0.0.1.

Time is driven through the worker's clock: a retry scheduled "in 40 s" is
reached by moving the clock, not by sleeping.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from roost.platform.storage import Database, utcnow
from roost.platform.webhooks import (
    RetryPolicy,
    WebhookDelivery,
    WebhookWorker,
    create_endpoint,
    emit,
    rotate_secret,
    sign,
    update_endpoint,
    verify_signature,
    verify_timestamped,
)
from roost.platform.webhooks.worker import send_test
from tests.platform.conftest import Org, new_org
from tests.platform.webhooks.receiver import Receiver, Reply, running_receiver

ENDED = {
    "type": "simulation_ended",
    "id": 720488,
    "digital_human_id": 3,
    "status": "CONVERSATION_ENDED",
    "simulation_run_id": 41,
}


class Clock:
    """A settable clock for the worker."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with running_receiver() as running:
        yield running


@pytest.fixture
async def org(own_db: Database) -> Org:
    return await new_org(own_db, "hooks")


def make_worker(db: Database, clock: Clock, **options: Any) -> WebhookWorker:
    options.setdefault("policy", RetryPolicy(timeout=5.0))
    return WebhookWorker(db, clock=clock, rand=lambda: 0.5, **options)


async def register(db: Database, org: Org, receiver: Receiver, **options: Any) -> int:
    async with db.write() as session:
        endpoint, secret = await create_endpoint(session, org.id, url=receiver.url, **options)
    receiver.secrets.append(secret)
    return endpoint.id


async def queue(db: Database, org: Org, clock: Clock, body: dict[str, Any] = ENDED) -> list[int]:
    async with db.write() as session:
        return await emit(session, org.id, body["type"], body, now=clock.now)


async def rows(db: Database) -> list[WebhookDelivery]:
    async with db.read() as session:
        query = select(WebhookDelivery).order_by(WebhookDelivery.id)
        return list((await session.execute(query)).scalars())


async def run_until_settled(db: Database, worker: WebhookWorker, clock: Clock) -> int:
    """Run the worker, jumping the clock to each retry, until nothing is pending."""
    for rounds in range(1, 50):
        await worker.run_once()
        pending = [row for row in await rows(db) if row.status == "pending"]
        if not pending:
            return rounds
        clock.now = max(clock.now, min(row.next_attempt_at for row in pending))
    raise AssertionError("deliveries did not settle")


async def test_failed_attempts_are_retried_until_delivered_exactly_once(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    await register(own_db, org, receiver)
    receiver.script = [Reply(503), Reply(500, body=b"boom"), Reply(200)]
    clock = Clock()
    start = clock.now
    (delivery_id,) = await queue(own_db, org, clock)
    worker = make_worker(own_db, clock)
    try:
        assert await run_until_settled(own_db, worker, clock) == 3
        assert await worker.run_once() == 0  # nothing left: no duplicate send
    finally:
        await worker.stop()
    seen = receiver.received
    assert [r.answered for r in seen] == [503, 500, 200]
    assert all(r.signature_ok for r in seen)
    assert [r.headers["x-roost-attempt"] for r in seen] == ["1", "2", "3"]
    assert len({r.headers["x-bluejay-delivery"] for r in seen}) == 3  # new id per attempt
    assert len({r.headers["x-roost-event-id"] for r in seen}) == 1  # one event
    assert {r.body for r in seen} == {json.dumps(ENDED, separators=(",", ":")).encode()}
    first = seen[0].headers
    assert first["x-bluejay-event"] == "simulation_ended"
    assert first["content-type"] == "application/json"
    assert first["user-agent"].startswith("Roost-Webhooks/")
    assert verify_timestamped(
        receiver.secrets,
        seen[0].body,
        first["x-roost-timestamp"],
        first["x-roost-signature"],
        now=start.timestamp(),
    )
    (row,) = await rows(own_db)
    assert (row.id, row.status, row.attempts, row.last_status_code) == (
        delivery_id,
        "delivered",
        3,
        200,
    )
    assert row.last_error is None and row.delivered_at == clock.now
    # The retries followed the schedule: 10 s, then 20 s (no jitter at rand=0.5).
    assert clock.now - start == timedelta(seconds=30)


async def test_retry_after_is_honoured(own_db: Database, org: Org, receiver: Receiver) -> None:
    await register(own_db, org, receiver)
    receiver.script = [Reply(429, headers={"Retry-After": "120"})]
    clock = Clock()
    await queue(own_db, org, clock)
    worker = make_worker(own_db, clock)
    try:
        await worker.run_once()
        (row,) = await rows(own_db)
        assert row.next_attempt_at == clock.now + timedelta(seconds=120)
        assert row.last_error == "HTTP 429; retry 2 in 120 s"
        clock.now += timedelta(seconds=119)
        assert await worker.run_once() == 0  # not due yet
        clock.now += timedelta(seconds=1)
        assert await worker.run_once() == 1
    finally:
        await worker.stop()
    assert (await rows(own_db))[0].status == "delivered"


async def test_gives_up_and_keeps_the_failure(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    await register(own_db, org, receiver)
    receiver.default = Reply(500, body=b"x" * 5000)
    clock = Clock()
    await queue(own_db, org, clock)
    worker = make_worker(own_db, clock, policy=RetryPolicy(max_attempts=3, timeout=5.0))
    try:
        await run_until_settled(own_db, worker, clock)
    finally:
        await worker.stop()
    (row,) = await rows(own_db)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error == "HTTP 500; gave up after 3 attempts"
    assert row.last_response == "x" * 1024  # only the first KiB of an answer is kept
    assert len(receiver.received) == 3


async def test_gone_endpoint_and_unreachable_or_slow_receivers(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    await register(own_db, org, receiver)
    receiver.script = [Reply(410)]
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    async with own_db.write() as session:
        await create_endpoint(session, org.id, url=f"http://127.0.0.1:{closed}/hook")
    clock = Clock()
    await queue(own_db, org, clock)
    worker = make_worker(own_db, clock)
    try:
        await worker.run_once()
    finally:
        await worker.stop()
    gone, refused = await rows(own_db)
    assert gone.status == "failed" and "gone" in (gone.last_error or "")
    assert refused.status == "pending" and refused.last_status_code is None
    assert (refused.last_error or "").startswith("ConnectError")
    # A receiver slower than the attempt time limit counts as a failure.
    receiver.script = [Reply(200, delay=3.0)]
    async with own_db.write() as session:
        slow = await update_endpoint(session, org.id, refused.endpoint_id, url=receiver.url)
        assert slow is not None
    clock.now = refused.next_attempt_at
    worker = make_worker(own_db, clock, policy=RetryPolicy(timeout=0.5))
    try:
        await worker.run_once()
    finally:
        await worker.stop()
    retried = (await rows(own_db))[1]
    assert retried.status == "pending" and retried.attempts == 2
    assert (retried.last_error or "").startswith("no answer within 0.5 s")


async def test_redirects_are_not_followed(own_db: Database, org: Org, receiver: Receiver) -> None:
    await register(own_db, org, receiver)
    receiver.script = [Reply(302, headers={"Location": receiver.url + "/elsewhere"})]
    clock = Clock()
    await queue(own_db, org, clock)
    worker = make_worker(own_db, clock)
    try:
        await worker.run_once()
    finally:
        await worker.stop()
    assert len(receiver.received) == 1
    assert (await rows(own_db))[0].status == "pending"


async def test_signatures_during_and_after_a_rotation(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    endpoint = await register(own_db, org, receiver)
    old = receiver.secrets[0]
    clock = Clock()
    async with own_db.write() as session:
        rotated = await rotate_secret(
            session, org.id, endpoint, grace=timedelta(hours=1), now=clock.now
        )
        assert rotated is not None
        new = rotated[1]
    await queue(own_db, org, clock)
    worker = make_worker(own_db, clock)
    try:
        await worker.run_once()
        clock.now += timedelta(hours=1)
        await queue(own_db, org, clock)
        await worker.run_once()
    finally:
        await worker.stop()
    during, after = receiver.received
    # During the grace period Bluejay-style receivers still holding the old
    # secret keep working; Roost's header carries both.
    assert verify_signature(old, during.body, during.headers["x-bluejay-signature"])
    assert not verify_signature(new, during.body, during.headers["x-bluejay-signature"])
    assert during.headers["x-roost-signature"].count("v1=") == 2
    for secret in (old, new):
        assert verify_timestamped(
            secret,
            during.body,
            during.headers["x-roost-timestamp"],
            during.headers["x-roost-signature"],
            now=float(during.headers["x-roost-timestamp"]),
        )
    assert after.headers["x-bluejay-signature"] == sign(new, after.body)
    assert after.headers["x-roost-signature"].count("v1=") == 1


async def test_disabled_endpoints_hold_their_deliveries(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    endpoint = await register(own_db, org, receiver)
    clock = Clock()
    await queue(own_db, org, clock)
    async with own_db.write() as session:
        await update_endpoint(session, org.id, endpoint, enabled=False)
    worker = make_worker(own_db, clock)
    try:
        assert await worker.run_once() == 0
        async with own_db.write() as session:
            await update_endpoint(session, org.id, endpoint, enabled=True)
        assert await worker.run_once() == 1
    finally:
        await worker.stop()
    assert [r.answered for r in receiver.received] == [200]


async def test_two_workers_never_send_the_same_attempt(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    await register(own_db, org, receiver)
    clock = Clock()
    for index in range(40):
        await queue(own_db, org, clock, {**ENDED, "id": index + 1})
    # Two databases handles: two server processes as far as leasing goes.
    other = Database(own_db.url)
    first, second = (
        make_worker(own_db, clock, concurrency=8),
        make_worker(other, clock, concurrency=8),
    )
    try:
        for _ in range(20):
            await asyncio.gather(first.run_once(), second.run_once())
            if all(row.status == "delivered" for row in await rows(own_db)):
                break
    finally:
        await first.stop()
        await second.stop()
        await other.dispose()
    ids = sorted(json.loads(r.body)["id"] for r in receiver.received)
    assert ids == list(range(1, 41))  # every event once, none twice
    assert first.attempts > 0 and second.attempts > 0
    assert first.attempts + second.attempts == 40


async def test_the_running_worker_wakes_when_a_delivery_commits(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    await register(own_db, org, receiver)
    # A poll interval of an hour: only the commit hook can explain a delivery.
    worker = WebhookWorker(own_db, interval=3600, policy=RetryPolicy(timeout=5.0))
    worker.start()
    try:
        await asyncio.sleep(0)  # let the first (empty) poll run
        async with own_db.write() as session:
            await emit(session, org.id, "simulation_ended", ENDED)
        await receiver.wait_for(1)
        for _ in range(200):  # the outcome is stored just after the answer
            if (await rows(own_db))[0].status == "delivered":
                break
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()
    assert (await rows(own_db))[0].status == "delivered"
    assert receiver.received[0].signature_ok


async def test_stopping_mid_attempt_leaves_the_delivery_to_retry(
    own_db: Database, org: Org, receiver: Receiver
) -> None:
    await register(own_db, org, receiver)
    receiver.script = [Reply(200, delay=30)]
    worker = WebhookWorker(own_db, interval=3600, policy=RetryPolicy(timeout=60.0))
    worker.start()
    async with own_db.write() as session:
        await emit(session, org.id, "simulation_ended", ENDED)
    await receiver.wait_for(1)
    await worker.stop()
    (row,) = await rows(own_db)
    # Not recorded as delivered: the lease lapses and another attempt follows.
    assert row.status == "pending" and row.attempts == 0 and row.lease_owner == worker.owner


@pytest.mark.parametrize("yields", [0, 1, 2, 3])
async def test_stop_returns_when_a_wake_coincides_with_it(own_db: Database, yields: int) -> None:
    # An attempt finishing (or a commit) wakes the worker just as the app shuts
    # down. Python 3.11's ``wait_for`` turned that cancellation into a normal
    # return, and ``stop()`` then waited forever (a teardown hang on PostgreSQL).
    worker = WebhookWorker(own_db, interval=3600, policy=RetryPolicy(timeout=5.0))
    worker.start()
    for _ in range(50):  # let the first (empty) poll finish so the loop idles
        await asyncio.sleep(0.01)
    worker.notify()
    for _ in range(yields):
        await asyncio.sleep(0)
    stopping = asyncio.create_task(worker.stop())
    done, _ = await asyncio.wait({stopping}, timeout=60)  # a hang guard, not a speed limit
    assert stopping in done, "stop() hung: the worker's loop swallowed its cancellation"
    await stopping


async def test_send_test_pings_the_endpoint(own_db: Database, org: Org, receiver: Receiver) -> None:
    endpoint_id = await register(own_db, org, receiver)
    async with own_db.read() as session:
        from roost.platform.webhooks.service import get_endpoint

        endpoint = await get_endpoint(session, org.id, endpoint_id)
    assert endpoint is not None
    result = await send_test(endpoint)
    assert result["delivered"] is True and result["status_code"] == 200
    (ping,) = receiver.received
    assert ping.signature_ok and ping.headers["x-bluejay-event"] == "ping"
    assert ping.json()["webhook_id"] == endpoint_id
    assert await rows(own_db) == []  # not queued


def test_lease_must_outlast_the_timeout(tmp_path: Any) -> None:
    with pytest.raises(ValueError, match="lease"):
        WebhookWorker(
            Database(f"sqlite:///{tmp_path}/unused.sqlite3"),
            policy=RetryPolicy(timeout=30),
            lease=timedelta(seconds=10),
        )
