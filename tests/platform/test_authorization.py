"""The authorisation matrix: keys, and organisations that never see each other.

Every ``/v1`` operation of the app (taken from its OpenAPI document, so a new
route cannot be forgotten) answers 401 without a key, with an unknown key
and with a revoked key. A key of organisation A can neither read nor write
organisation B's agents, simulations, digital humans, runs, results or keys:
it gets the same 404 as for an id that does not exist, and B's data is
unchanged afterwards.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from roost.platform.storage import Database
from tests.platform.conftest import AppFactory, Org, client_for, new_org
from tests.platform.seed import Seeded, check, seed_run

MISSING_ID = "987654321"


def _operations(app: Any) -> list[tuple[str, str]]:
    operations = []
    for path, item in app.openapi()["paths"].items():
        if path.startswith("/v1/"):
            for method in item:
                operations.append((method.upper(), re.sub(r"\{[^}]+\}", "1", path)))
    return operations


async def test_every_operation_needs_a_valid_unrevoked_key(
    make_app: AppFactory, db: Database, org: Org
) -> None:
    async with make_app(auth_cache_seconds=0) as app:
        operations = _operations(app)
        assert len(operations) >= 15
        async with client_for(app, org.headers) as http:
            created = check(await http.post("/v1/roost/keys", json={"name": "to revoke"}))
            check(await http.delete(f"/v1/roost/keys/{created['key_id']}"))
        bad_keys: dict[str, dict[str, str]] = {
            "missing": {},
            "empty": {"X-API-Key": ""},
            "malformed": {"X-API-Key": "not-a-roost-key"},
            "unknown": {"X-API-Key": org.key[:-4] + "abcd"},
            "revoked": {"X-API-Key": created["key"]},
        }
        for label, headers in bad_keys.items():
            async with client_for(app, headers) as http:
                for method, path in operations:
                    response = await http.request(method, path, json={})
                    assert response.status_code == 401, (label, method, path, response.text)
                    assert isinstance(response.json()["detail"], str)


async def _seed_b(app: Any, b: Org) -> tuple[Seeded, str]:
    async with client_for(app, b.headers) as http:
        seeded = await seed_run(http, expected_tool_calls=[{"name": "lookup"}])
        rid = seeded.result_ids[0]
        check(
            await http.post(
                "/v1/update-simulation-result",
                json={
                    "simulation_result_id": rid,
                    "tool_calls": [{"name": "lookup", "start_offset_ms": 5}],
                },
            )
        )
        snapshot = await _snapshot(http, seeded)
    return seeded, snapshot


async def _snapshot(http: httpx.AsyncClient, seeded: Seeded) -> str:
    parts = [
        (await http.get(f"/v1/agents/{seeded.agent_id}")).text,
        (await http.get(f"/v1/simulation/{seeded.simulation_id}")).text,
        (await http.get(f"/v1/digital-human/{seeded.digital_human_ids[0]}")).text,
        (await http.get(f"/v1/retrieve-simulation-results/{seeded.run_id}")).text,
        (await http.get(f"/v1/roost/simulation-results/{seeded.result_ids[0]}/enrichment")).text,
        (await http.get("/v1/roost/keys")).text,
    ]
    return "\n".join(parts)


def _requests(seeded: Seeded, key_id: str, target: str | None) -> list[tuple[str, str, Any]]:
    """Every operation that names an object, aimed at B's object or a missing id."""

    def pick(real: object) -> str:
        return MISSING_ID if target is None else str(real)

    rid = pick(seeded.result_ids[0])
    return [
        ("GET", f"/v1/agents/{pick(seeded.agent_id)}", None),
        ("POST", "/v1/update-agent", {"agent_id": pick(seeded.agent_id), "name": "stolen"}),
        ("POST", "/v1/create-simulation", {"agent_id": pick(seeded.agent_id)}),
        ("GET", f"/v1/simulation/{pick(seeded.simulation_id)}", None),
        (
            "POST",
            "/v1/create-digital-human",
            {
                "simulation_ids": [int(pick(seeded.simulation_id))],
                "digital_human": {"phone_number": "+15550100"},
            },
        ),
        ("GET", f"/v1/digital-human/{pick(seeded.digital_human_ids[0])}", None),
        ("POST", "/v1/queue-simulation-run", {"simulation_id": pick(seeded.simulation_id)}),
        (
            "POST",
            "/v1/queue-simulation-run",
            {"simulation_id": "OWN", "digital_human_ids": [pick(seeded.digital_human_ids[0])]},
        ),
        ("GET", f"/v1/retrieve-simulation-results/{pick(seeded.run_id)}", None),
        ("GET", f"/v1/retrieve-simulation-result/{rid}", None),
        (
            "POST",
            "/v1/update-simulation-result",
            {"simulation_result_id": rid, "tool_calls": [{"name": "x", "start_offset_ms": 1}]},
        ),
        ("POST", f"/v1/re-evaluate-simulation-result/{rid}", None),
        ("POST", f"/v1/roost/simulation-results/{rid}/call-started", {}),
        ("POST", f"/v1/roost/simulation-results/{rid}/call-ended", {}),
        ("GET", f"/v1/roost/simulation-results/{rid}/enrichment", None),
        ("DELETE", f"/v1/roost/keys/{key_id if target else 'k' + MISSING_ID}", None),
    ]


def _masked(text: str, ids: list[str]) -> str:
    for raw in sorted(ids, key=len, reverse=True):
        text = re.sub(rf"(?<![\w]){re.escape(raw)}(?![\w])", "<id>", text)
    return text


async def test_a_key_of_one_organisation_never_reaches_anothers_data(
    make_app: AppFactory, db: Database
) -> None:
    a = await new_org(db, "a")
    b = await new_org(db, "b")
    async with make_app() as app:
        seeded, before = await _seed_b(app, b)
        async with client_for(app, a.headers) as http:
            # A needs a simulation of its own for the digital_human_ids case.
            own = await seed_run(http)
            foreign = _requests(seeded, b.key_id, "b")
            missing = _requests(seeded, b.key_id, None)
            foreign_ids = [
                b.key_id,
                str(seeded.agent_id),
                str(seeded.simulation_id),
                str(seeded.digital_human_ids[0]),
                seeded.run_id,
                seeded.result_ids[0],
            ]
            for (method, path, body), (_, missing_path, missing_body) in zip(
                foreign, missing, strict=True
            ):
                if body and body.get("simulation_id") == "OWN":
                    body = {**body, "simulation_id": str(own.simulation_id)}
                    missing_body = {**missing_body, "simulation_id": str(own.simulation_id)}
                response = await http.request(method, path, json=body)
                unknown = await http.request(method, missing_path, json=missing_body)
                assert response.status_code == 404, (method, path, response.text)
                assert unknown.status_code == 404, (method, missing_path, unknown.text)
                # The message names the id asked for and nothing else: with the
                # ids masked it reads exactly like the one for a missing id.
                assert _masked(response.json()["detail"], foreign_ids) == _masked(
                    unknown.json()["detail"], [MISSING_ID, "k" + MISSING_ID]
                ), (method, path)
            assert all(key["key_id"] != b.key_id for key in check(await http.get("/v1/roost/keys")))
        async with client_for(app, b.headers) as http:
            after = await _snapshot(http, seeded)
    assert after == before
