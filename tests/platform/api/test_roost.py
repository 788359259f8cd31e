"""Roost's own operations: organisation, API keys, enrichment batches, docs."""

from __future__ import annotations

import httpx

from tests.platform.conftest import Org, client_for
from tests.platform.seed import check, seed_run


async def test_organisation_is_the_keys_own(client: httpx.AsyncClient, org: Org) -> None:
    assert check(await client.get("/v1/roost/organisation")) == {"id": org.id, "name": org.name}


async def test_keys_are_created_shown_once_listed_without_secret_and_revoked(
    client: httpx.AsyncClient, org: Org
) -> None:
    created = check(await client.post("/v1/roost/keys", json={"name": "ci"}))
    assert created["key"].startswith(f"roost_{created['key_id']}_")
    assert created["name"] == "ci"
    assert created["revoked_at"] is None

    listed = check(await client.get("/v1/roost/keys"))
    assert {item["key_id"] for item in listed} == {org.key_id, created["key_id"]}
    assert all("key" not in item for item in listed)
    assert created["key"] not in str(listed)

    app = client.app  # type: ignore[attr-defined]
    async with client_for(app, {"X-API-Key": created["key"]}) as other:
        assert check(await other.get("/v1/ping"))["organization"] == org.name
        revoked = check(await client.delete(f"/v1/roost/keys/{created['key_id']}"))
        assert revoked["revoked_at"] is not None
        # Revoked through this server: refused at once, despite the key cache.
        response = await other.get("/v1/ping")
        assert response.status_code == 401
        assert "revoked" in response.json()["detail"]
    listed = check(await client.get("/v1/roost/keys"))
    assert [item["revoked_at"] is not None for item in listed if item["key_id"] != org.key_id] == [
        True
    ]
    missing = await client.delete("/v1/roost/keys/0123456789abcdef")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "API key 0123456789abcdef not found"}


async def test_key_names_are_checked(client: httpx.AsyncClient) -> None:
    for name in ("", "x" * 201, "tab\there"):
        response = await client.post("/v1/roost/keys", json={"name": name})
        assert response.status_code == 422, name
        assert response.json()["detail"][0]["loc"] == ["body", "name"]


async def test_enrichment_lists_batches_with_key_arrival_and_source(
    client: httpx.AsyncClient, org: Org
) -> None:
    rid = (await seed_run(client)).result_ids[0]
    empty = check(await client.get(f"/v1/roost/simulation-results/{rid}/enrichment"))
    assert empty == {"simulation_result_id": int(rid), "state": "pending", "batches": []}
    check(
        await client.post(
            "/v1/update-simulation-result",
            json={
                "simulation_result_id": rid,
                "tool_calls": [{"name": "a", "start_offset_ms": 1}],
                "events": [{"title": "e", "start_offset_ms": 2}],
            },
            headers={"Idempotency-Key": "k-1", "User-Agent": "agent-sdk/9.9"},
        )
    )
    data = check(await client.get(f"/v1/roost/simulation-results/{rid}/enrichment"))
    assert data["state"] == "received"
    [batch] = data["batches"]
    assert batch["idempotency_key"] == "k-1"
    assert batch["api_key_id"] == org.key_id
    assert batch["source"] == "agent-sdk/9.9"
    assert (batch["tool_calls"], batch["events"], batch["transcript_entries"]) == (1, 1, 0)
    assert batch["late"] is False
    assert batch["received_at"]


async def test_openapi_and_docs_are_served_without_a_key(client: httpx.AsyncClient) -> None:
    async with client_for(client.app) as anonymous:  # type: ignore[attr-defined]
        document = check(await anonymous.get("/openapi.json"))
        docs = await anonymous.get("/docs")
    assert document["info"]["title"] == "Roost"
    assert "/v1/update-simulation-result" in document["paths"]
    assert "UpdateSimulationRequest" in document["components"]["schemas"]
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
