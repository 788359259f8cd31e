"""Organisations and API keys: create, list, revoke.

Shared by the ``roost keys`` command (which talks to the database directly,
so the first key can be made before any key exists) and the ``/v1/roost/keys``
endpoints (which act on the caller's own organisation only).

The full key is returned once, by :func:`create_key`; afterwards only its
public ``key_id`` is ever shown. Revoking is permanent and keeps the row, so
enrichment batches still name the key that sent them.

Example:
    >>> import asyncio, tempfile
    >>> from roost.platform.storage import Database, migrate
    >>> async def main(path):
    ...     db = Database(f"sqlite:///{path}/doc.sqlite3")
    ...     await migrate.upgrade(db)
    ...     async with db.write() as session:
    ...         created = await create_key(session, "acme", name="ci")
    ...     async with db.read() as session:
    ...         keys = await list_keys(session)
    ...     await db.dispose()
    ...     return created.key.startswith("roost_"), [k.org_name for k in keys]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     asyncio.run(main(tmp))
    (True, ['acme'])
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from roost.platform.auth import generate_api_key
from roost.platform.storage import ApiKey, Organisation, utcnow

__all__ = [
    "CreatedKey",
    "KeyInfo",
    "create_key",
    "ensure_organisation",
    "list_keys",
    "revoke_key",
]

MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What may be shown about a key (never its secret)."""

    key_id: str
    org_id: int
    org_name: str
    name: str | None
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class CreatedKey:
    """A new key: ``key`` is the only time the full secret exists outside the client."""

    key: str
    info: KeyInfo


def _clean_name(name: str, what: str) -> str:
    cleaned = name.strip()
    if not cleaned:
        raise ValueError(f"{what} must not be empty")
    if len(cleaned) > MAX_NAME:
        raise ValueError(f"{what} must be at most {MAX_NAME} characters")
    if any(ord(char) < 32 for char in cleaned):
        raise ValueError(f"{what} must not contain control characters")
    return cleaned


async def ensure_organisation(session: AsyncSession, name: str) -> Organisation:
    """The organisation called ``name``, created if it does not exist."""
    name = _clean_name(name, "organisation name")
    org = (
        await session.execute(select(Organisation).where(Organisation.name == name))
    ).scalar_one_or_none()
    if org is None:
        org = Organisation(name=name, created_at=utcnow())
        session.add(org)
        await session.flush()
    return org


async def create_key(
    session: AsyncSession,
    org: str | Organisation,
    *,
    name: str | None = None,
) -> CreatedKey:
    """Create a key for an organisation (by name, created if needed, or object)."""
    organisation = org if isinstance(org, Organisation) else await ensure_organisation(session, org)
    label = _clean_name(name, "key name") if name is not None else None
    key, key_id, secret_hash = generate_api_key()
    row = ApiKey(
        org_id=organisation.id,
        key_id=key_id,
        secret_hash=secret_hash,
        name=label,
        created_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return CreatedKey(key=key, info=_info(row, organisation))


def _info(row: ApiKey, org: Organisation) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        org_id=org.id,
        org_name=org.name,
        name=row.name,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


async def list_keys(session: AsyncSession, org_id: int | None = None) -> list[KeyInfo]:
    """Every key (of ``org_id`` if given), oldest first."""
    query = (
        select(ApiKey, Organisation)
        .join(Organisation, Organisation.id == ApiKey.org_id)
        .order_by(ApiKey.id)
    )
    if org_id is not None:
        query = query.where(ApiKey.org_id == org_id)
    return [_info(row, org) for row, org in (await session.execute(query)).all()]


async def revoke_key(
    session: AsyncSession, key_id: str, org_id: int | None = None
) -> KeyInfo | None:
    """Revoke a key (idempotent); ``None`` if no such key (in ``org_id``)."""
    query = (
        select(ApiKey, Organisation)
        .join(Organisation, Organisation.id == ApiKey.org_id)
        .where(ApiKey.key_id == key_id)
    )
    if org_id is not None:
        query = query.where(ApiKey.org_id == org_id)
    found = (await session.execute(query)).first()
    if found is None:
        return None
    row, org = found
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return _info(row, org)
