"""The ASGI application behind ``roost serve``.

:func:`create_app` assembles the FastAPI app: Bluejay's operations
(:mod:`.api.resources`, :mod:`.api.runs`), Roost's own (:mod:`.api.roost`), the
webhook endpoints when :mod:`roost.platform.webhooks` provides an ``api``
router, authentication and body-size middleware, error handlers that keep
every client mistake out of the 5xx range, and an OpenAPI document that
includes the msgspec-validated ingest body.

At start-up (the ASGI lifespan) the app checks the database schema is at the
latest Alembic revision and refuses to start otherwise, then starts the
ingest group committer, the lifecycle worker and, when present, the webhook
delivery worker. At shutdown it drains the ingest queue before closing.

Example:
    >>> app = create_app(PlatformSettings(database_url="sqlite:////tmp/roost-doc.sqlite3"))
    >>> "/v1/update-simulation-result" in app.openapi()["paths"]
    True
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from roost import __version__
from roost.platform.api.common import Conflict, NotFound, RequestProblem, json_response
from roost.platform.api.resources import router as resources_router
from roost.platform.api.roost import bench_router
from roost.platform.api.roost import router as roost_router
from roost.platform.api.runs import router as runs_router
from roost.platform.auth import Authenticator
from roost.platform.dispatch import Dispatcher, QueueOnlyDispatcher
from roost.platform.ingest import IngestWriter
from roost.platform.ingest_process import IngestProcess
from roost.platform.judges import JudgeSetup, build_judge
from roost.platform.lifecycle import LifecyclePolicy
from roost.platform.middleware import AuthMiddleware, BodyLimitMiddleware
from roost.platform.settings import PlatformSettings, SettingsError
from roost.platform.storage import Database, migrate
from roost.platform.wire import build_wire, validation_detail
from roost.platform.worker import LifecycleWorker

__all__ = ["create_app"]

log = logging.getLogger(__name__)

DESCRIPTION = """\
Roost's self-hostable platform, wire-compatible with Bluejay's simulation API:
agents, simulations, digital humans, runs and results, the agent's tool-call
enrichment (`update-simulation-result`), evaluation and signed webhooks.

Authenticate every `/v1` call with `X-API-Key` (create one with
`roost keys create`). Writes accept `Idempotency-Key`. Operations under
`/v1/roost/` are Roost additions.
"""


def _webhooks_module(name: str) -> Any | None:
    full = f"roost.platform.webhooks.{name}" if name else "roost.platform.webhooks"
    if importlib.util.find_spec("roost.platform.webhooks") is None:
        return None
    if name and importlib.util.find_spec(full) is None:
        return None
    return importlib.import_module(full)


def _clean_errors(errors: Any) -> list[dict[str, Any]]:
    # Only loc/msg/type: the raw "input" may be undecodable bytes, and the
    # error shape must never itself fail to serialise.
    cleaned = []
    for error in errors:
        loc = [part if isinstance(part, int | str) else str(part) for part in error.get("loc", ())]
        cleaned.append(
            validation_detail(loc, str(error.get("msg", "")), str(error.get("type", "")))
        )
    return cleaned


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return json_response(422, {"detail": _clean_errors(exc.errors())})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        # FastAPI answers a body it cannot decode at all (invalid UTF-8, JSON
        # nested past the recursion limit) with a bare 400, while every other
        # malformed JSON body is a 422; Bluejay clients expect the 422 shape.
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            return json_response(
                422,
                {"detail": [validation_detail(["body"], "invalid JSON body", "json_invalid")]},
            )
        return json_response(
            exc.status_code, {"detail": exc.detail}, headers=dict(exc.headers or {})
        )

    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # Any route that reads the body itself: the client left before the body
        # was complete. Nothing was stored and nobody reads the answer, but it
        # must not surface as a server error with a traceback.
        return json_response(
            422,
            {
                "detail": [
                    validation_detail(
                        ["body"],
                        "the client disconnected before sending the whole body",
                        "body_incomplete",
                    )
                ]
            },
        )

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> Response:
        return json_response(404, {"detail": str(exc)})

    @app.exception_handler(Conflict)
    async def _conflict(request: Request, exc: Conflict) -> Response:
        return json_response(409, {"detail": str(exc)})

    @app.exception_handler(RequestProblem)
    async def _problem(request: Request, exc: RequestProblem) -> Response:
        return json_response(422, {"detail": [validation_detail(exc.loc, exc.msg, exc.type)]})

    @app.exception_handler(OperationalError)
    async def _storage(request: Request, exc: OperationalError) -> Response:
        log.error("storage error: %s", exc)
        return json_response(503, {"detail": "storage is unavailable; retry later"})

    @app.exception_handler(DBAPIError)
    async def _dbapi(request: Request, exc: DBAPIError) -> Response:
        log.error("storage error: %s", exc)
        return json_response(503, {"detail": "storage is unavailable; retry later"})


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        _, components = app.state.wire.openapi_components()
        existing = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, component in components.items():
            if name in existing and existing[name] != component:
                raise RuntimeError(f"OpenAPI component {name!r} defined twice")
            existing[name] = component
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: PlatformSettings | None = None,
    *,
    dispatcher: Dispatcher | None = None,
    db: Database | None = None,
) -> FastAPI:
    """Build the platform's ASGI app.

    Args:
        settings: Configuration (default: from ``ROOST_*`` variables).
        dispatcher: Receives newly queued results (default: they stay QUEUED).
        db: An existing database handle (default: one from
            ``settings.database_url``, closed at shutdown).

    Returns:
        A FastAPI app; serve it with uvicorn (``roost serve`` does).
    """
    settings = settings or PlatformSettings.from_env()
    owns_db = db is None

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or Database(settings.database_url)
        try:
            await migrate.ensure_current(database)
            app.state.db = database
            app.state.authenticator = Authenticator(
                database, cache_seconds=settings.auth_cache_seconds
            )
            judging = _build_judging(settings)
            app.state.judging = judging
            lifecycle = LifecycleWorker(
                database,
                LifecyclePolicy(
                    grace=timedelta(seconds=settings.enrichment_grace_seconds),
                    reevaluate_late=settings.reevaluate_late,
                ),
                interval=settings.lifecycle_interval_seconds,
                judging=judging,
            )
            ingest: IngestWriter | IngestProcess
            if settings.ingest_process:
                ingest = IngestProcess(settings, on_committed=lifecycle.notify)
            else:
                ingest = IngestWriter(
                    database,
                    settings.limits,
                    max_group=settings.group_commit_max,
                    on_committed=lifecycle.notify,
                    lanes=1 if database.is_sqlite else settings.ingest_lanes,
                )
            app.state.lifecycle = lifecycle
            app.state.ingest = ingest
            await ingest.start()
            lifecycle.start()
            webhook_worker = _start_webhook_worker(database)
            try:
                yield
            finally:
                await ingest.stop()
                await lifecycle.stop()
                if webhook_worker is not None:
                    await webhook_worker.stop()
                await judging.aclose()
        finally:
            if owns_db:
                await database.dispose()

    app = FastAPI(
        title="Roost",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.wire = build_wire(settings.limits)
    app.state.dispatcher = dispatcher or QueueOnlyDispatcher()
    app.include_router(runs_router)
    app.include_router(resources_router)
    app.include_router(roost_router)
    webhooks_api = _webhooks_module("api")
    if webhooks_api is not None and hasattr(webhooks_api, "router"):
        app.include_router(webhooks_api.router)
    if settings.bench_echo:
        app.include_router(bench_router)
    _install_handlers(app)
    _install_openapi(app)
    # Added last = outermost: authentication runs before the body is read.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    app.add_middleware(AuthMiddleware)
    return app


def _build_judging(settings: PlatformSettings) -> JudgeSetup:
    """The judge of model-judged checks, from ``ROOST_JUDGE*`` settings."""
    try:
        setup = build_judge(
            settings.judge,
            url=settings.judge_url,
            model=settings.judge_model,
            api_key=settings.judge_api_key,
            timeout=settings.judge_timeout_seconds,
            concurrency=settings.judge_concurrency,
        )
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    log.info("model-judged checks: %s", setup.name or setup.unavailable)
    return setup


def _start_webhook_worker(db: Database) -> Any | None:
    webhooks = _webhooks_module("")
    if webhooks is None or not hasattr(webhooks, "start_worker"):
        return None
    return webhooks.start_worker(db)
