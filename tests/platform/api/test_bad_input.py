"""Client mistakes get a specific 4xx, in FastAPI's shape, never a 500.

Malformed JSON, wrong types and missing fields are 422
(``HTTPValidationError``); bodies over ``max_body_bytes`` are 413 whether
``Content-Length`` announces them or they arrive chunked; strings and arrays
over the configured limits are refused with a 422 naming the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.openapi import assert_valid
from tests.platform.conftest import AppFactory, Org, client_for
from tests.platform.seed import check, seed_run

UPDATE = "/v1/update-simulation-result"
TURN = {"speaker": "AGENT", "utterance": "hi", "start_offset_ms": 1, "end_offset_ms": 900}
AGENT = {"name": "a", "system_prompt": "", "knowledge_base": "", "goals": []}


def _assert_422(response: httpx.Response, loc_prefix: list[Any] | None = None) -> list[Any]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert_valid("HTTPValidationError", body)
    assert body["detail"], body
    loc: list[Any] = body["detail"][0]["loc"]
    if loc_prefix is not None:
        assert loc[: len(loc_prefix)] == loc_prefix, body
    return loc


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"not json",
        b"",
        b'{"simulation_result_id": "1",}',
        b"\xff\xfe\x00",
        b'{"simulation_result_id": NaN}',
        b"[" * 10_000 + b"]" * 10_000,
        b'{"simulation_result_id": "1", "tool_calls": [{"name": "\\ud800", "start_offset_ms": 1}]}',
    ],
)
async def test_malformed_json_is_422(client: httpx.AsyncClient, raw: bytes) -> None:
    headers = {"Content-Type": "application/json"}
    _assert_422(await client.post(UPDATE, content=raw, headers=headers), ["body"])
    _assert_422(await client.post("/v1/add-agent", content=raw, headers=headers), ["body"])


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "simulation_result_id"]),
        ([], ["body"]),
        ({"simulation_result_id": None}, ["body", "simulation_result_id"]),
        ({"simulation_result_id": "1", "tool_calls": {}}, ["body", "tool_calls"]),
        ({"simulation_result_id": "1", "tool_calls": [{"name": "x"}]}, ["body", "tool_calls", 0]),
        (
            {"simulation_result_id": "1", "tool_calls": [{"name": 5, "start_offset_ms": 1}]},
            ["body", "tool_calls", 0, "name"],
        ),
        (
            {"simulation_result_id": "1", "tool_calls": [{"name": "x", "start_offset_ms": -1}]},
            ["body", "tool_calls", 0, "start_offset_ms"],
        ),
        ({"simulation_result_id": "1", "tags": "nightly"}, ["body", "tags"]),
        ({"simulation_result_id": "1", "metadata": [1]}, ["body", "metadata"]),
    ],
)
async def test_wrong_types_and_missing_fields_on_ingest_are_422(
    client: httpx.AsyncClient, body: Any, loc: list[Any]
) -> None:
    _assert_422(await client.post(UPDATE, json=body), loc)


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/v1/add-agent", {"name": "a"}, ["body"]),
        ("/v1/add-agent", {**AGENT, "goals": "one"}, ["body", "goals"]),
        ("/v1/update-agent", {}, ["body", "agent_id"]),
        ("/v1/create-simulation", {"agent_id": ["1"]}, ["body", "agent_id"]),
        ("/v1/create-simulation", {"agent_id": "1", "max_concurrent": "many"}, ["body"]),
        ("/v1/create-digital-human", {}, ["body", "digital_human"]),
        ("/v1/create-digital-human", {"digital_human": {}}, ["body", "digital_human"]),
        ("/v1/queue-simulation-run", {}, ["body", "simulation_id"]),
        ("/v1/queue-simulation-run", {"simulation_id": 5}, ["body", "simulation_id"]),
        ("/v1/roost/keys", {"name": 7}, ["body", "name"]),
    ],
)
async def test_wrong_types_and_missing_fields_on_resources_are_422(
    client: httpx.AsyncClient, path: str, body: Any, loc: list[Any]
) -> None:
    _assert_422(await client.post(path, json=body), loc)


async def test_non_json_content_type_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        UPDATE, content=b'{"simulation_result_id": "1"}', headers={"Content-Type": "text/plain"}
    )
    _assert_422(response, ["body"])


async def test_bad_idempotency_key_is_422(client: httpx.AsyncClient) -> None:
    seeded = await seed_run(client)
    body = {"simulation_result_id": seeded.result_ids[0]}
    for key in ("x" * 256, "with space"):
        response = await client.post(UPDATE, json=body, headers={"Idempotency-Key": key})
        _assert_422(response, ["header", "Idempotency-Key"])
        response = await client.post("/v1/add-agent", json=AGENT, headers={"Idempotency-Key": key})
        _assert_422(response, ["header", "Idempotency-Key"])


async def test_body_over_the_limit_is_413_announced_or_chunked(
    make_app: AppFactory, org: Org
) -> None:
    async with make_app(max_body_bytes=2048) as app, client_for(app, org.headers) as http:
        seeded = await seed_run(http)
        big = {"simulation_result_id": seeded.result_ids[0], "tags": ["t" * 100] * 30}
        response = await http.post(UPDATE, json=big)
        assert response.status_code == 413
        assert "2048" in response.json()["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"simulation_result_id": "1", "tags": ['
            for _ in range(100):
                yield b'"' + b"t" * 50 + b'",'
            yield b'"end"]}'

        response = await http.post(
            "/v1/add-agent", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert "ROOST_MAX_BODY_BYTES" in response.json()["detail"]
        # A body under the limit still works on the same app.
        check(await http.post(UPDATE, json={"simulation_result_id": seeded.result_ids[0]}))


async def test_malformed_content_length_is_a_client_error(client: httpx.AsyncClient) -> None:
    request = client.build_request("POST", "/v1/add-agent", json=AGENT)
    request.headers["Content-Length"] = "lots"
    response = await client.send(request)
    assert response.status_code == 400
    assert "Content-Length" in response.json()["detail"]


async def test_arrays_and_strings_over_their_limits_are_refused_naming_them(
    make_app: AppFactory, org: Org
) -> None:
    limits = {
        "max_tool_calls": 3,
        "max_events": 2,
        "max_transcript_entries": 2,
        "max_tags": 2,
        "max_trace_ids": 2,
        "max_name_length": 10,
        "max_text_length": 20,
    }
    async with make_app(**limits) as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        call = {"name": "lookup", "start_offset_ms": 1}
        cases: list[tuple[dict[str, Any], list[Any]]] = [
            ({"tool_calls": [call] * 4}, ["body", "tool_calls"]),
            ({"events": [{"title": "e", "start_offset_ms": 1}] * 3}, ["body", "events"]),
            (
                {"recorded_transcript": [TURN] * 3},
                ["body", "recorded_transcript"],
            ),
            ({"tags": ["a", "b", "c"]}, ["body", "tags"]),
            ({"trace_ids": ["a", "b", "c"]}, ["body", "trace_ids"]),
            ({"tool_calls": [{**call, "name": "n" * 11}]}, ["body", "tool_calls", 0, "name"]),
            (
                {"tool_calls": [{**call, "error_message": "m" * 21}]},
                ["body", "tool_calls", 0, "error_message"],
            ),
        ]
        for extra, loc in cases:
            response = await http.post(UPDATE, json={"simulation_result_id": rid, **extra})
            _assert_422(response, loc)
        # At the limit is fine, and nothing refused was stored.
        check(await http.post(UPDATE, json={"simulation_result_id": rid, "tool_calls": [call] * 3}))
        batches = check(await http.get(f"/v1/roost/simulation-results/{rid}/enrichment"))
        assert [b["tool_calls"] for b in batches["batches"]] == [3]


async def test_batches_per_result_are_capped(make_app: AppFactory, org: Org) -> None:
    async with make_app(max_batches_per_result=2) as app, client_for(app, org.headers) as http:
        rid = (await seed_run(http)).result_ids[0]
        for _ in range(2):
            check(await http.post(UPDATE, json={"simulation_result_id": rid}))
        response = await http.post(UPDATE, json={"simulation_result_id": rid})
        loc = _assert_422(response)
        assert response.json()["detail"][0]["type"] == "too_many_batches", loc


async def test_results_per_run_and_ids_per_request_are_capped(
    make_app: AppFactory, org: Org
) -> None:
    async with (
        make_app(max_results_per_run=3, max_ids_per_request=2) as app,
        client_for(app, org.headers) as http,
    ):
        seeded = await seed_run(http, humans=1, num_runs=3)
        check(await http.post(f"/v1/digital-human/{seeded.digital_human_ids[0]}"), 405)
        dh = str(seeded.digital_human_ids[0])
        response = await http.post(
            "/v1/queue-simulation-run",
            json={"simulation_id": str(seeded.simulation_id), "digital_human_ids": [dh, dh]},
        )
        _assert_422(response, ["body", "digital_human_ids"])
        assert "the limit is 3" in response.json()["detail"][0]["msg"]
        response = await http.post(
            "/v1/queue-simulation-run",
            json={"simulation_id": str(seeded.simulation_id), "digital_human_ids": [dh] * 3},
        )
        _assert_422(response, ["body", "digital_human_ids"])


async def test_odd_headers_ids_and_nul_characters_are_client_errors(
    client: httpx.AsyncClient, org: Org
) -> None:
    body = {"simulation_result_id": "1"}
    for key in ("roost_\xff\xfe_x".encode("latin-1"), "roost_" + "a" * 5000):
        response = await client.post(UPDATE, json=body, headers={"X-API-Key": key})  # type: ignore[dict-item]
        assert response.status_code == 401
        assert "malformed X-API-Key" in response.json()["detail"]
    response = await client.post(UPDATE, json=body, headers={"Idempotency-Key": "é".encode()})  # type: ignore[dict-item]
    _assert_422(response, ["header", "Idempotency-Key"])
    huge = "9" * 25
    for path in (f"/v1/agents/{huge}", f"/v1/retrieve-simulation-result/{huge}"):
        response = await client.get(path)
        assert response.status_code == 404, path
    response = await client.post(f"/v1/re-evaluate-simulation-result/{huge}")
    assert response.status_code == 404
    response = await client.post("/v1/add-agent", json={**AGENT, "name": "a\x00b"})
    _assert_422(response, ["body", "name"])
    response = await client.post(
        UPDATE,
        json={"simulation_result_id": "1", "tool_calls": [{"name": "a\x00", "start_offset_ms": 1}]},
    )
    _assert_422(response, ["body", "tool_calls", 0, "name"])


async def test_a_client_that_leaves_mid_body_gets_a_422_and_nothing_is_stored(
    client: httpx.AsyncClient, org: Org
) -> None:
    seeded = await seed_run(client)
    result_id = seeded.result_ids[0]
    sent: list[dict[str, Any]] = []
    incoming = [
        {"type": "http.request", "body": b'{"simulation_result_id": "', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": UPDATE,
        "raw_path": UPDATE.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"host", b"roost.test"),
            (b"content-type", b"application/json"),
            (b"content-length", b"4000"),
            (b"x-api-key", org.key.encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("roost.test", 80),
    }
    await client.app(scope, receive, send)  # type: ignore[attr-defined]
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 422
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    assert b"body_incomplete" in body
    batches = check(await client.get(f"/v1/roost/simulation-results/{result_id}/enrichment"))
    assert batches["batches"] == []
