from __future__ import annotations

import base64

import pytest

from roost.chirp import BasicAuth


def basic(credentials: bytes) -> str:
    return "Basic " + base64.b64encode(credentials).decode()


def test_right_credentials_pass_and_everything_else_fails() -> None:
    auth = BasicAuth("bluejay", "pa:ss wörd")
    assert auth.check(basic("bluejay:pa:ss wörd".encode()))
    assert auth.check("  basic " + base64.b64encode("bluejay:pa:ss wörd".encode()).decode())
    for header in [
        None,
        "",
        basic(b"bluejay:wrong"),
        basic(b"bluejay:pa:ss w\xc3\xb6rd "),
        basic(b"BLUEJAY:pa:ss w\xc3\xb6rd"),
        "Bearer abc",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"\xff\xfe").decode(),
    ]:
        assert not auth.check(header), header


def test_challenge_and_validation() -> None:
    assert BasicAuth("u", "p", realm="agent").challenge == 'Basic realm="agent", charset="UTF-8"'
    with pytest.raises(ValueError, match="cannot contain ':'"):
        BasicAuth("a:b", "p")
