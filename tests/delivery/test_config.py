from __future__ import annotations

import logging
from pathlib import Path

import pytest

from roost.delivery.config import (
    DEFAULT_BASE_URL,
    DeliveryConfig,
    DeliveryConfigError,
    default_outbox_path,
)


def test_defaults(tmp_path: Path) -> None:
    config = DeliveryConfig(outbox_path=tmp_path / "o.sqlite3")
    assert config.base_url == DEFAULT_BASE_URL
    assert config.endpoint == "https://api.getbluejay.ai/v1/update-simulation-result"
    assert config.api_key is None and config.key_fingerprint is None
    assert config.max_age >= 86_400  # days of retrying, not minutes


def test_default_outbox_path_is_in_the_user_data_dir() -> None:
    path = default_outbox_path()
    assert path.name == "outbox.sqlite3"
    assert "roost" in path.parts[-2].lower()


def test_from_env_reads_roost_variables(tmp_path: Path) -> None:
    env = {
        "ROOST_API_KEY": "rk_live_1",
        "BLUEJAY_API_KEY": "bj_ignored",
        "ROOST_BASE_URL": "http://127.0.0.1:8123/",
        "ROOST_OUTBOX_PATH": str(tmp_path / "x.sqlite3"),
    }
    config = DeliveryConfig.from_env(env)
    assert config.api_key == "rk_live_1"
    assert config.base_url == "http://127.0.0.1:8123"
    assert config.outbox_path == tmp_path / "x.sqlite3"


def test_from_env_falls_back_to_bluejay_key(tmp_path: Path) -> None:
    config = DeliveryConfig.from_env(
        {"BLUEJAY_API_KEY": "bj_1", "ROOST_OUTBOX_PATH": str(tmp_path / "o")}
    )
    assert config.api_key == "bj_1"


def test_arguments_win_over_env(tmp_path: Path) -> None:
    config = DeliveryConfig.from_env(
        {"ROOST_API_KEY": "from_env", "ROOST_OUTBOX_PATH": str(tmp_path / "o")},
        api_key="from_arg",
        timeout=2.0,
    )
    assert config.api_key == "from_arg" and config.timeout == 2.0


def test_from_env_rejects_unknown_settings() -> None:
    with pytest.raises(DeliveryConfigError, match="unknown delivery setting"):
        DeliveryConfig.from_env({}, timout=1)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("api.getbluejay.ai", "must start with https://"),
        ("ftp://example.com", "must start with https://"),
        ("https://", "no host"),
        ("https://user:pw@example.com", "must not contain credentials"),
        ("https://example.com/?x=1", "query string"),
        ("https://example.com/v1/update-simulation-result", "platform root"),
        ("http://exa mple.com", "not a valid URL"),
    ],
)
def test_malformed_base_url_is_refused(tmp_path: Path, url: str, message: str) -> None:
    with pytest.raises(DeliveryConfigError, match=message):
        DeliveryConfig(base_url=url, outbox_path=tmp_path / "o")


def test_base_url_keeps_a_path_prefix(tmp_path: Path) -> None:
    config = DeliveryConfig(base_url="https://example.com/roost/", outbox_path=tmp_path / "o")
    assert config.endpoint == "https://example.com/roost/v1/update-simulation-result"


def test_credentials_are_not_echoed_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(DeliveryConfigError) as info:
        DeliveryConfig(base_url="https://user:s3cret@example.com", outbox_path=tmp_path / "o")
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize("key", ["abc\n", "a b", "k\x00", "ключ"])
def test_malformed_api_key_is_refused(tmp_path: Path, key: str) -> None:
    if key == "abc\n":
        # Surrounding whitespace is trimmed (a trailing newline from a secrets file is common).
        assert DeliveryConfig(api_key=key, outbox_path=tmp_path / "o").api_key == "abc"
        return
    with pytest.raises(DeliveryConfigError, match="api_key"):
        DeliveryConfig(api_key=key, outbox_path=tmp_path / "o")


def test_blank_api_key_means_none(tmp_path: Path) -> None:
    assert DeliveryConfig(api_key="  ", outbox_path=tmp_path / "o").api_key is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timeout", 0),
        ("timeout", -1),
        ("backoff_base", float("nan")),
        ("lease", "soon"),
        ("max_age", -5),
        ("poll_interval", float("inf")),
    ],
)
def test_bad_numbers_are_refused(tmp_path: Path, field: str, value: object) -> None:
    with pytest.raises(DeliveryConfigError, match=field):
        DeliveryConfig(outbox_path=tmp_path / "o", **{field: value})  # type: ignore[arg-type]


def test_cap_below_base_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeliveryConfigError, match="backoff_cap"):
        DeliveryConfig(outbox_path=tmp_path / "o", backoff_base=5, backoff_cap=1)


def test_lease_must_outlast_timeout(tmp_path: Path) -> None:
    with pytest.raises(DeliveryConfigError, match="lease"):
        DeliveryConfig(outbox_path=tmp_path / "o", timeout=30, lease=10)


def test_outbox_path_must_not_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DeliveryConfigError, match="must name a file"):
        DeliveryConfig(outbox_path=tmp_path)


def test_api_key_is_not_in_repr(tmp_path: Path) -> None:
    config = DeliveryConfig(api_key="rk_supersecret_1234", outbox_path=tmp_path / "o")
    assert "supersecret" not in repr(config)
    assert config.api_key_hint == "…1234"


def test_fingerprint_is_stable_and_not_the_key(tmp_path: Path) -> None:
    a = DeliveryConfig(api_key="rk_1", outbox_path=tmp_path / "o")
    b = DeliveryConfig(api_key="rk_1", outbox_path=tmp_path / "o")
    c = DeliveryConfig(api_key="rk_2", outbox_path=tmp_path / "o")
    assert a.key_fingerprint == b.key_fingerprint != c.key_fingerprint
    assert a.key_fingerprint is not None and "rk_1" not in a.key_fingerprint


def test_plain_http_to_a_remote_host_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="roost.delivery"):
        DeliveryConfig(api_key="k", base_url="http://10.1.2.3:8000", outbox_path=tmp_path / "o")
        DeliveryConfig(api_key="k", base_url="http://127.0.0.1:8000", outbox_path=tmp_path / "o")
    assert [r.getMessage() for r in caplog.records] == [
        "roost delivery: base_url http://10.1.2.3:8000 is plain http; the API key travels "
        "unencrypted"
    ]


def test_with_changes_validates(tmp_path: Path) -> None:
    config = DeliveryConfig(outbox_path=tmp_path / "o")
    with pytest.raises(DeliveryConfigError):
        config.with_changes(timeout=-1)
