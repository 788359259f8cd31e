"""``roost webhooks`` on a real SQLite database."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from roost.cli import app
from roost.platform.storage import Database
from roost.platform.webhooks import WebhookEndpoint, list_endpoints


@pytest.fixture
def url(tmp_path: Path) -> str:
    database = f"sqlite:///{tmp_path / 'cli.sqlite3'}"
    result = CliRunner().invoke(app, ["db", "upgrade", "--database-url", database])
    assert result.exit_code == 0, result.output
    return database


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["webhooks", *args])
    return result.exit_code, result.stdout, result.stderr


def endpoints(url: str) -> list[WebhookEndpoint]:
    async def read() -> list[WebhookEndpoint]:
        database = Database(url)
        try:
            async with database.read() as session:
                return await list_endpoints(session, None)
        finally:
            await database.dispose()

    return asyncio.run(read())


def test_add_prints_the_secret_last(url: str) -> None:
    code, out, err = run(
        "add",
        "https://hooks.example.com/roost",
        "--org",
        "acme",
        "--event",
        "simulation_ended",
        "--agent",
        "7",
        "--description",
        "ops",
        "--database-url",
        url,
    )
    assert code == 0, err
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("whsec_")
    assert "registered webhook 1 for organisation acme" in " ".join(err.split())
    (endpoint,) = endpoints(url)
    assert (endpoint.url, endpoint.secret, endpoint.event_types, endpoint.agent_ids) == (
        "https://hooks.example.com/roost",
        secret,
        ["simulation_ended"],
        [7],
    )


def test_list_rotate_deliveries_remove(url: str) -> None:
    assert run("add", "https://a.example.com/h", "--database-url", url)[0] == 0
    assert (
        run("add", "https://b.example.com/h", "--org", "beta", "--disabled", "--database-url", url)[
            0
        ]
        == 0
    )
    code, out, _ = run("list", "--database-url", url)
    assert code == 0 and "default" in out and "beta" in out
    code, out, _ = run("list", "--json", "--database-url", url)
    listed = json.loads(out)
    assert [(e["id"], e["organisation"], e["url"], e["enabled"]) for e in listed] == [
        (1, "default", "https://a.example.com/h", True),
        (2, "beta", "https://b.example.com/h", False),
    ]
    assert "whsec_" not in out  # never listed
    code, out, _ = run("list", "--org", "beta", "--json", "--database-url", url)
    assert [e["id"] for e in json.loads(out)] == [2]
    assert run("list", "--org", "nobody", "--database-url", url)[0] != 0

    before = endpoints(url)[0].secret
    code, out, err = run("rotate-secret", "1", "--grace", "60", "--database-url", url)
    assert code == 0, err
    after = endpoints(url)[0]
    assert out.strip().splitlines()[-1] == after.secret != before
    assert after.previous_secret == before
    code, out, _ = run("rotate-secret", "1", "--grace", "0", "--database-url", url)
    assert code == 0 and endpoints(url)[0].previous_secret is None

    code, out, _ = run("deliveries", "1", "--database-url", url)
    assert code == 0
    assert json.loads(run("deliveries", "1", "--json", "--database-url", url)[1]) == []
    assert run("deliveries", "1", "--status", "lost", "--database-url", url)[0] != 0

    assert run("remove", "1", "--database-url", url)[0] == 0
    assert [e.id for e in endpoints(url)] == [2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "ftp://example.com"], "url: must start with http:// or https://"),
        (["add", "https://x.example.com", "--event", "nope"], "event_types"),
        (["add", "https://x.example.com", "--agent", "0"], "agent_ids"),
        (["add", "https://x.example.com", "--org", " "], "organisation name"),
        (["remove", "42"], "no webhook with id 42"),
        (["remove", "99999999999999999999"], "no webhook with id"),
        (["rotate-secret", "42"], "no webhook with id 42"),
    ],
)
def test_mistakes_get_clear_errors(url: str, args: list[str], message: str) -> None:
    code, _, err = run(*args, "--database-url", url)
    assert code == 1
    assert message in " ".join(err.split())
    assert endpoints(url) == []


def test_unmigrated_database_is_refused(tmp_path: Path) -> None:
    code, _, err = run("list", "--database-url", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    assert code == 1
    assert "roost db upgrade" in " ".join(err.split())
