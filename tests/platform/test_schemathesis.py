"""Schemathesis over every implemented operation: no 5xx, responses match the schemas.

Bluejay's operations are generated from Bluejay's own OpenAPI subset
(``tests/fixtures/bluejay-openapi-subset.json``, minus the two operations Roost
does not serve: ``/v1/evaluate`` and ``/v1/check-queue-simulation-run``);
Roost's additions from the app's ``/openapi.json``. Both run in process
against the ASGI app (schemathesis drives it through its own event loop and
runs the app's lifespan), with a real database: SQLite and PostgreSQL.

Each operation gets positive and negative (schema-violating) cases. A fixed
number of examples per operation and a fixed hypothesis seed keep the run
bounded and reproducible. A few objects are created first, so small ids hit
real rows (200 paths) as well as unknown ones (404).
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from roost.platform import PlatformSettings, create_app
from roost.platform.keys import create_key
from roost.platform.storage import Database
from tests.platform.conftest import client_for
from tests.platform.seed import seed_run

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "bluejay-openapi-subset.json"
NOT_SERVED = {"/v1/evaluate", "/v1/check-queue-simulation-run/{simulation_run_id}"}
EXAMPLES = 25


async def _org_key(database_url: str) -> str:
    db = Database(database_url)
    try:
        async with db.write() as session:
            created = await create_key(session, f"fuzz-{id(db)}")
    finally:
        await db.dispose()
    return created.key


def _bluejay_schema() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(FIXTURE.read_text())
    document["paths"] = {
        path: item for path, item in document["paths"].items() if path not in NOT_SERVED
    }
    return document


def _roost_schema(app: Any) -> dict[str, Any]:
    document: dict[str, Any] = copy.deepcopy(app.openapi())
    document["paths"] = {
        path: item for path, item in document["paths"].items() if path.startswith("/v1/roost/")
    }
    return document


async def _seed_objects(database_url: str, key: str) -> None:
    """Create an agent, a simulation, digital humans and a run (own app, own loop)."""
    app = create_app(PlatformSettings.from_env({}, database_url=database_url))
    async with app.router.lifespan_context(app), client_for(app, {"X-API-Key": key}) as http:
        await seed_run(http, humans=2, num_runs=2)


def _fuzz(document: dict[str, Any], app: Any, key: str) -> list[str]:
    schema = schemathesis.openapi.from_dict(document)
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, "no operations to test"
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)

            @seed(20261125)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                derandomize=False,
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                response = case.call(app=app, headers={"X-API-Key": key})
                case.validate_response(
                    response, checks=[not_a_server_error, response_schema_conformance]
                )

            try:
                run()
            except Exception as exc:
                # Hypothesis re-raises the shrunk failing case; record it and
                # keep fuzzing the other operations.
                failures.append(f"{operation.label} [{mode.value}]: {exc}")
    return failures


def _run(database_url: str, build: Any) -> None:
    key = asyncio.run(_org_key(database_url))
    asyncio.run(_seed_objects(database_url, key))
    app = create_app(PlatformSettings.from_env({}, database_url=database_url))
    try:
        failures = _fuzz(build(app), app, key)
    finally:
        schemathesis.python.asgi.shutdown_lifespans()
    assert not failures, "\n\n".join(failures)


def test_bluejay_operations_never_fail_and_match_bluejays_schema(database_url: str) -> None:
    _run(database_url, lambda app: _bluejay_schema())


def test_roost_operations_never_fail_and_match_their_schema(database_url: str) -> None:
    _run(database_url, _roost_schema)


def test_the_two_documents_cover_every_operation_the_app_serves() -> None:
    app = create_app(PlatformSettings(database_url="sqlite:///unused.sqlite3"))
    served = {
        (path, method)
        for path, item in app.openapi()["paths"].items()
        if path.startswith("/v1/")
        for method in item
    }
    fuzzed = {
        (path, method)
        for document in (_bluejay_schema(), _roost_schema(app))
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    assert served == fuzzed
    assert len(fuzzed) >= 13 + 7
