"""API keys and the caller's organisation.

A key looks like ``roost_<key_id>_<secret>``: ``key_id`` (16 hex characters) is
public and indexes the row; ``secret`` (43 URL-safe characters, 256 random
bits) is shown once at creation and only its SHA-256 is stored. A slow
password hash would add nothing: the secret is random, not chosen by a person,
so there is nothing to brute-force. The stored hash is compared with
:func:`hmac.compare_digest`, so timing does not reveal how much of a guess
matched.

Every ``/v1`` request is authenticated by :class:`AuthMiddleware` *before* its
body is read (an anonymous client cannot make the server parse a megabyte of
JSON); routes get the result through the :func:`current_org` dependency.

Verified keys are cached in memory for ``cache_seconds`` (default 2 s) so the
ingest path does not pay a database round trip per request. The cache holds
the secret's hash, so a wrong secret is still refused; a key revoked through
this server's API is dropped from the cache at once, and one revoked from
another process (``roost keys revoke``) stops working within ``cache_seconds``.

Example:
    >>> key, key_id, secret_hash = generate_api_key()
    >>> parse_api_key(key)[0] == key_id
    True
    >>> hash_secret(parse_api_key(key)[1]) == secret_hash
    True
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import Request, Security
from fastapi.security import APIKeyHeader
from sqlalchemy import select

from roost.platform.storage import ApiKey, Organisation

if TYPE_CHECKING:
    from roost.platform.storage import Database

__all__ = [
    "API_KEY_HEADER",
    "AuthError",
    "Authenticator",
    "Caller",
    "api_key_header",
    "current_org",
    "generate_api_key",
    "hash_secret",
    "parse_api_key",
]

API_KEY_HEADER = "X-API-Key"
KEY_PREFIX = "roost"
_KEY_ID_HEX = 16
_MAX_KEY_LENGTH = 200

# Declared as the "apiKeyAuth" scheme, the name Bluejay's OpenAPI uses.
api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="apiKeyAuth",
    description="API key (`roost keys create`). Required on every /v1 operation.",
    auto_error=False,
)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: the organisation of the API key.

    Attributes:
        org_id: Id of the organisation; every query filters on it.
        org_name: Its name.
        key_id: Public id of the API key used.
    """

    org_id: int
    org_name: str
    key_id: str


class AuthError(Exception):
    """The request has no usable API key; ``str(error)`` says why."""


def hash_secret(secret: str) -> str:
    """Hex SHA-256 of a key's secret part (what the database stores)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_api_key() -> tuple[str, str, str]:
    """A new key: ``(full_key, key_id, secret_hash)``; show ``full_key`` once."""
    key_id = secrets.token_hex(_KEY_ID_HEX // 2)
    secret = secrets.token_urlsafe(32)
    return f"{KEY_PREFIX}_{key_id}_{secret}", key_id, hash_secret(secret)


def parse_api_key(value: str) -> tuple[str, str] | None:
    """Split a presented key into ``(key_id, secret)``; ``None`` if malformed."""
    if len(value) > _MAX_KEY_LENGTH:
        return None
    parts = value.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    key_id, secret = parts[1], parts[2]
    if len(key_id) != _KEY_ID_HEX or not secret:
        return None
    try:
        int(key_id, 16)
    except ValueError:
        return None
    return key_id, secret


@dataclass(slots=True)
class _Cached:
    secret_hash: str
    caller: Caller
    expires: float


class Authenticator:
    """Verifies ``X-API-Key`` values against the database, with a short cache.

    Args:
        db: The platform database.
        cache_seconds: How long a verified key is trusted without a lookup;
            ``0`` looks every request up.
        clock: Monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        db: Database,
        *,
        cache_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._inflight: dict[str, asyncio.Future[Any]] = {}

    async def _lookup(self, key_id: str) -> Any:
        # Single flight: when a cached key expires under load, every request
        # holding it would otherwise query the database at the same moment.
        pending = self._inflight.get(key_id)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise
                # The lookup we waited on was abandoned: do our own below.
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key_id] = future
        try:
            async with self._db.read() as session:
                row = (
                    await session.execute(
                        select(
                            ApiKey.secret_hash,
                            ApiKey.revoked_at,
                            Organisation.id,
                            Organisation.name,
                        )
                        .join(Organisation, Organisation.id == ApiKey.org_id)
                        .where(ApiKey.key_id == key_id)
                    )
                ).first()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters, if any, re-raise it
            raise
        else:
            future.set_result(row)
            return row
        finally:
            if self._inflight.get(key_id) is future:
                del self._inflight[key_id]

    def forget(self, key_id: str) -> None:
        """Drop a key from the cache (called when it is revoked)."""
        self._cache.pop(key_id, None)

    async def authenticate(self, presented: str | None) -> Caller:
        """Return the caller for a header value or raise :class:`AuthError`."""
        if not presented:
            raise AuthError(f"missing {API_KEY_HEADER} header")
        parsed = parse_api_key(presented.strip())
        if parsed is None:
            raise AuthError(
                f"malformed {API_KEY_HEADER}: expected a key of the form roost_<id>_<secret>"
            )
        key_id, secret = parsed
        digest = hash_secret(secret)
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached.expires > now:
            if hmac.compare_digest(cached.secret_hash, digest):
                return cached.caller
            raise AuthError("invalid API key")
        row = await self._lookup(key_id)
        if row is None or not hmac.compare_digest(row.secret_hash, digest):
            self._cache.pop(key_id, None)
            raise AuthError("invalid API key")
        if row.revoked_at is not None:
            self._cache.pop(key_id, None)
            raise AuthError("this API key has been revoked")
        caller = Caller(org_id=row.id, org_name=row.name, key_id=key_id)
        if self._cache_seconds > 0:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key_id] = _Cached(row.secret_hash, caller, now + self._cache_seconds)
        return caller


async def current_org(request: Request, _key: str | None = Security(api_key_header)) -> Caller:
    """FastAPI dependency: the authenticated caller of this request.

    :class:`AuthMiddleware` has already verified the key (and answered 401
    otherwise) before the route runs; declaring the security scheme here puts
    ``X-API-Key`` into the OpenAPI document.

    Example:
        >>> from fastapi import APIRouter, Depends
        >>> router = APIRouter()
        >>> @router.get("/v1/roost/whoami")
        ... async def whoami(caller: Caller = Depends(current_org)) -> dict[str, object]:
        ...     return {"organisation": caller.org_name}
    """
    caller = request.scope.get("state", {}).get("caller")
    if not isinstance(caller, Caller):
        # Only reachable if a route using this dependency is mounted outside
        # the authenticated prefix; fail closed.
        from fastapi import HTTPException

        raise HTTPException(status_code=401, detail=f"missing {API_KEY_HEADER} header")
    return caller
