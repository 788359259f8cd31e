"""What every route shares: dependencies, id parsing, errors, idempotency.

Ids. Bluejay carries ids as decimal strings in some places and integers in
others. Storage ids are positive 64-bit integers, so anything else (``abc``,
``-1``, ``1e3``, ``99999999999999999999``) cannot name a row and is answered
like an unknown id: 404, with the same message whether the row does not exist
or belongs to another organisation. Integer path parameters that are not
integers at all get FastAPI's 422, as Bluejay's own service does.

Idempotency. A write carrying ``Idempotency-Key`` is answered once; the
response is stored with the key (scoped to the organisation) in the same
transaction as the write. The same key with the same operation and raw body
replays that response (header ``Idempotent-Replayed: true``) without writing
again; with a different operation or body it is refused with 422 (the status
the IETF idempotency-key draft recommends for key reuse), because silently
replaying an unrelated response would lose the second request. Only
successful responses are stored: after a 404 or 422 the client may fix the
request and retry with the same key.

Example:
    >>> parse_id("720488"), parse_id(" 7"), parse_id("0"), parse_id(2**63)
    (720488, None, None, None)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from roost.platform.auth import Caller, current_org
from roost.platform.ingest import request_fingerprint
from roost.platform.settings import PlatformSettings
from roost.platform.storage import Database, IdempotencyRecord, dumps_json, utcnow
from roost.platform.wire import INT64_MAX, validation_detail

__all__ = [
    "ERROR_RESPONSES",
    "ErrorResponse",
    "IdempotencyKey",
    "CallerDep",
    "Conflict",
    "DatabaseDep",
    "NotFound",
    "RequestProblem",
    "get_db",
    "get_settings",
    "idempotent_write",
    "json_response",
    "parse_id",
    "validation_error",
]


class ErrorResponse(BaseModel):
    """Body of 401, 404, 409 and 413 answers."""

    detail: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "Missing, malformed, unknown or revoked API key"},
    404: {"model": ErrorResponse, "description": "No such object in the caller's organisation"},
    413: {"model": ErrorResponse, "description": "Request body over the configured limit"},
    503: {"model": ErrorResponse, "description": "Storage unavailable; retry later"},
}


class NotFound(Exception):
    """Answered 404 with ``{"detail": message}``."""

    def __init__(self, kind: str, raw_id: object) -> None:
        shown = str(raw_id)
        if len(shown) > 64:
            shown = shown[:61] + "..."
        super().__init__(f"{kind} {shown} not found")


class RequestProblem(Exception):
    """Answered 422 in FastAPI's shape (raised inside a write to roll it back)."""

    def __init__(self, loc: list[str | int], msg: str, type_: str) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.type = loc, msg, type_


class Conflict(Exception):
    """Answered 409 with ``{"detail": message}`` (wrong state for the operation)."""


def parse_id(value: str | int) -> int | None:
    """A storage id from a wire id; ``None`` when it cannot name a row."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= INT64_MAX else None
    if not value.isascii() or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= INT64_MAX else None


def get_db(request: Request) -> Database:
    """FastAPI dependency: the app's :class:`Database`."""
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> PlatformSettings:
    """FastAPI dependency: the app's settings."""
    settings: PlatformSettings = request.app.state.settings
    return settings


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[!-~]+$",
        description="Roost: makes the write safe to retry (printable ASCII, at most 255 "
        "characters).",
    ),
]
"""The optional ``Idempotency-Key`` header of a write (give it a ``None`` default)."""


def json_response(
    status_code: int, payload: Any, headers: dict[str, str] | None = None
) -> Response:
    """A JSON response from plain data (datetimes as ISO 8601)."""
    return Response(
        content=dumps_json(payload),
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def validation_error(loc: list[str | int], msg: str, type_: str) -> Response:
    """A 422 in FastAPI's ``HTTPValidationError`` shape."""
    return json_response(422, {"detail": [validation_detail(loc, msg, type_)]})


def _insert(session: AsyncSession) -> Any:
    name = session.get_bind().dialect.name
    return (postgresql.insert if name == "postgresql" else sqlite.insert)(IdempotencyRecord)


class _LostRace(Exception):
    pass


async def idempotent_write(
    *,
    db: Database,
    caller: Caller,
    operation: str,
    body: bytes,
    key: str | None,
    write: Callable[[AsyncSession], Awaitable[tuple[int, Any]]],
) -> tuple[Response, bool]:
    """Run ``write`` in a transaction, honouring ``Idempotency-Key``.

    Returns:
        The response and whether ``write`` actually ran (``False`` on replay
        or refusal), so callers know whether to do post-commit work.
    """
    fingerprint = request_fingerprint(operation, body)
    for _attempt in range(3):
        try:
            async with db.write() as session:
                if key is not None:
                    record = (
                        await session.execute(
                            select(IdempotencyRecord).where(
                                IdempotencyRecord.org_id == caller.org_id,
                                IdempotencyRecord.key == key,
                            )
                        )
                    ).scalar_one_or_none()
                    if record is not None:
                        if record.request_sha256 != fingerprint:
                            return (
                                validation_error(
                                    ["header", "Idempotency-Key"],
                                    "this Idempotency-Key was already used with a different "
                                    "request; use a new key for a new request",
                                    "idempotency_key_reused",
                                ),
                                False,
                            )
                        return (
                            Response(
                                content=record.response_body,
                                status_code=record.status_code,
                                media_type="application/json",
                                headers={"Idempotent-Replayed": "true"},
                            ),
                            False,
                        )
                status_code, payload = await write(session)
                content = dumps_json(payload)
                if key is not None and 200 <= status_code < 300:
                    claimed = await session.execute(
                        _insert(session)
                        .values(
                            org_id=caller.org_id,
                            key=key,
                            operation=operation,
                            request_sha256=fingerprint,
                            status_code=status_code,
                            response_body=content,
                            created_at=utcnow(),
                        )
                        .on_conflict_do_nothing(index_elements=["org_id", "key"])
                        .returning(IdempotencyRecord.id)
                    )
                    if claimed.first() is None:
                        # Another process committed this key meanwhile: undo
                        # our write and answer from its record.
                        raise _LostRace
                return (
                    Response(
                        content=content, status_code=status_code, media_type="application/json"
                    ),
                    200 <= status_code < 300,
                )
        except _LostRace:
            continue
    raise RuntimeError("idempotency record kept changing under a concurrent writer")


CallerDep = Annotated[Caller, Depends(current_org)]
"""The authenticated caller (FastAPI dependency)."""

DatabaseDep = Annotated[Database, Depends(get_db)]
"""The app's database (FastAPI dependency)."""
