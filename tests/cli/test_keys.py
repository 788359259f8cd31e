"""``roost keys create | list | revoke`` on a real SQLite database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from roost.cli import app
from roost.platform import PlatformSettings, create_app


@pytest.fixture
def url(tmp_path: Path) -> str:
    database = f"sqlite:///{tmp_path / 'keys.sqlite3'}"
    result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", database])
    assert result.exit_code == 0, result.output
    return database


def keys(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["keys", *args])
    return result.exit_code, result.stdout, result.stderr


async def _ping(url: str, key: str) -> httpx.Response:
    # No key cache, so a revocation made by the CLI is seen at once.
    server = create_app(PlatformSettings(database_url=url, auth_cache_seconds=0))
    async with server.router.lifespan_context(server):
        transport = httpx.ASGITransport(app=server)
        async with httpx.AsyncClient(transport=transport, base_url="http://roost.test") as http:
            return await http.get("/v1/ping", headers={"X-API-Key": key})


def test_create_prints_the_new_key_on_its_last_line_and_it_works(url: str) -> None:
    code, out, err = keys("create", "--org", "acme", "--name", "ci", "--database-url", url)
    assert code == 0, err
    key = out.strip().splitlines()[-1]
    assert key.startswith("roost_")
    assert "acme" in err
    response = asyncio.run(_ping(url, key))
    assert response.status_code == 200
    assert response.json()["organization"] == "acme"


def test_list_shows_ids_and_organisations_never_secrets(url: str) -> None:
    _, first, _ = keys("create", "--org", "acme", "--database-url", url)
    _, second, _ = keys("create", "--org", "globex", "--database-url", url)
    code, out, err = keys("list", "--database-url", url)
    assert code == 0, err
    for created in (first, second):
        secret = created.strip().splitlines()[-1]
        assert secret not in out
    assert "acme" in out and "globex" in out
    code, out, _ = keys("list", "--org", "globex", "--database-url", url)
    assert code == 0
    assert "globex" in out and "acme" not in out


def test_revoke_stops_the_key(url: str) -> None:
    _, out, _ = keys("create", "--org", "acme", "--database-url", url)
    key = out.strip().splitlines()[-1]
    assert asyncio.run(_ping(url, key)).status_code == 200
    # The whole key may be pasted: it is revoked by its id, never echoed.
    code, out, err = keys("revoke", key, "--database-url", url)
    assert code == 0, err
    assert key not in out
    response = asyncio.run(_ping(url, key))
    assert response.status_code == 401
    assert "revoked" in response.json()["detail"]
    code, out, _ = keys("list", "--database-url", url)
    assert code == 0
    code, _, err = keys("revoke", "nosuchkey", "--database-url", url)
    assert code != 0
    assert "no API key" in err


def test_keys_on_an_unmigrated_database_say_what_to_run(tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    code, _, err = keys("create", "--database-url", empty)
    assert code != 0
    assert "roost db upgrade" in err
