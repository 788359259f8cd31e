from __future__ import annotations

import doctest

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roost import _sipheaders
from roost._sipheaders import SCAN_LIMIT, find_header, split_head

NAME = b"x-simulation-result-id"


def scan(message: bytes, name: bytes = NAME) -> bytes | None:
    head, _, complete = split_head(message)
    return find_header(head, complete, name)


def test_doctests() -> None:
    assert doctest.testmod(_sipheaders, raise_on_error=True).attempted > 0


@pytest.mark.parametrize(
    ("message", "head", "body_start"),
    [
        (b"INVITE a SIP/2.0\r\nA: 1\r\n\r\nbody", b"INVITE a SIP/2.0\r\nA: 1\r\n", 26),
        (b"INVITE a SIP/2.0\nA: 1\n\nbody", b"INVITE a SIP/2.0\nA: 1\n", 23),
        # Mixed line ends: an LF line, then an empty CRLF line.
        (b"INVITE a SIP/2.0\nA: 1\n\r\nbody", b"INVITE a SIP/2.0\nA: 1\n", 24),
        (b"\r\n\r\nINVITE a SIP/2.0\r\n\r\n", b"INVITE a SIP/2.0\r\n", 24),
        (b"INVITE a SIP/2.0\r\nA: 1", b"INVITE a SIP/2.0\r\nA: 1", -1),
        (b"", b"", -1),
    ],
)
def test_split_head(message: bytes, head: bytes, body_start: int) -> None:
    assert split_head(message) == (head, body_start, True)
    if body_start >= 0:
        assert message[body_start:] in (b"body", b"")


def test_split_head_cut_at_the_limit() -> None:
    message = b"INVITE a SIP/2.0\r\nA: 1\r\nB: 2222222222"
    head, body_start, complete = split_head(message, limit=30)
    assert (head, body_start, complete) == (b"INVITE a SIP/2.0\r\nA: 1\r\nB: 222", -1, False)
    assert find_header(head, complete, b"a") == b"1"
    assert find_header(head, complete, b"b") is None


def test_split_head_limit_counts_keep_alive_line_ends() -> None:
    # A flood of keep-alive CRLFs cannot push the scan window past the limit.
    message = b"\r\n" * SCAN_LIMIT + b"INVITE a SIP/2.0\r\nX-Simulation-Result-Id: 1\r\n\r\n"
    assert split_head(message) == (b"", -1, False)
    assert scan(message) is None
    assert scan(message) is None


@pytest.mark.parametrize(
    ("message", "value"),
    [
        (b"INVITE a SIP/2.0\r\nX-Simulation-Result-Id: 7\r\n\r\n", b"7"),
        (b"INVITE a SIP/2.0\r\nx-simulation-result-id:7\r\n", b"7"),
        (b"INVITE a SIP/2.0\r\nX-SIMULATION-RESULT-ID \t: 7 \r\n", b"7"),
        # Folded: the value starts on a continuation line, or spans two.
        (b"INVITE a SIP/2.0\r\nX-Simulation-Result-Id:\r\n  7\r\nTo: b\r\n", b"7"),
        (b"INVITE a SIP/2.0\nX-Simulation-Result-Id: 72\n\t0488\n", b"72 0488"),
        # The first line may itself be a header (a bare header block).
        (b"X-Simulation-Result-Id: 7\r\nTo: b\r\n", b"7"),
        # First occurrence wins.
        (b"A b SIP/2.0\r\nX-Simulation-Result-Id: 1\r\nX-Simulation-Result-Id: 2\r\n", b"1"),
    ],
)
def test_find_header(message: bytes, value: bytes) -> None:
    assert scan(message) == value


@pytest.mark.parametrize(
    "message",
    [
        # Only the head is searched.
        b"INVITE a SIP/2.0\r\nContent-Type: application/sdp\r\n\r\nX-Simulation-Result-Id: 9\r\n",
        # A continuation line is part of the previous header, not a header.
        b"INVITE a SIP/2.0\r\nSubject: hi\r\n X-Simulation-Result-Id: 9\r\n",
        # Longer names that start with the same letters.
        b"INVITE a SIP/2.0\r\nX-Simulation-Result-Id-Extra: 9\r\nX-Simulation-Result-Ids: 9\r\n",
        # The name inside a value or the start line.
        b"INVITE sip:X-Simulation-Result-Id:9@h SIP/2.0\r\nTo: X-Simulation-Result-Id: 9\r\n",
        # A bare CR is not a line end.
        b"INVITE a SIP/2.0\r\nTo: b\rX-Simulation-Result-Id: 9\r\n",
    ],
)
def test_find_header_ignores_decoys(message: bytes) -> None:
    assert scan(message) is None


def test_header_near_the_limit() -> None:
    start = b"INVITE a SIP/2.0\r\n"
    padding = b"P: " + b"p" * (SCAN_LIMIT - 100) + b"\r\n"
    target = b"X-Simulation-Result-Id: 7\r\n"
    # Whole, and followed by whole lines inside the limit: found.
    message = start + padding + target + b"To: b\r\n" * 100
    assert len(message) > SCAN_LIMIT
    assert scan(message) == b"7"
    # Followed by a line the limit cuts, whose first byte shows it is no continuation.
    message = start + target + b"P: " + b"p" * SCAN_LIMIT + b"\r\n\r\n"
    assert scan(message) == b"7"
    # Cut inside the id's line: ignored, never returned truncated.
    cut = start + b"P: " + b"p" * (SCAN_LIMIT - 30) + b"\r\n" + target + b"\r\n"
    assert len(start) + SCAN_LIMIT - 30 + 5 < SCAN_LIMIT < len(cut) - 2
    assert scan(cut) is None


def test_last_whole_line_before_the_cut_is_ignored() -> None:
    start = b"INVITE a SIP/2.0\r\n"
    target = b"X-Simulation-Result-Id: 7\r\n"
    padding = b"P: " + b"p" * (SCAN_LIMIT - len(start) - len(target) - 5) + b"\r\n"
    message = start + padding + target + b" 8\r\n\r\n"
    assert len(start + padding + target) == SCAN_LIMIT
    # The id's line ends exactly at the limit; " 8" past it continues the value.
    assert scan(message) is None
    assert scan(message, name=b"p") is not None


# A differential check against a naive model of RFC 3261 header parsing: build
# messages from random header lists, render them with random line ends, case and
# folding, and compare the scan with what the model says the first value is.

_NAMES = st.sampled_from(
    [
        "X-Simulation-Result-Id",
        "x-simulation-result-id",
        "X-SIMULATION-RESULT-ID",
        "X-Simulation-Result-Ids",
        "X-Simulation-Result",
        "Via",
        "v",
        "f",
        "Content-Type",
        "Subject",
    ]
)
_VALUES = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)),
    max_size=20,
)


@st.composite
def _messages(draw: st.DrawFn) -> tuple[bytes, str | None]:
    eol = draw(st.sampled_from(["\r\n", "\n"]))
    headers = draw(st.lists(st.tuples(_NAMES, _VALUES, st.booleans()), max_size=8))
    lines = ["INVITE sip:agent@example.com SIP/2.0"]
    expected: str | None = None
    for name, value, fold in headers:
        gap = draw(st.sampled_from(["", " ", "\t "]))
        if fold and value.strip(" \t"):
            # Split the value at a random point; the rest goes on a continuation line.
            at = draw(st.integers(0, len(value)))
            first, rest = value[:at], value[at:]
            lines.append(f"{name}{gap}:{first}")
            lines.append(" " + rest)
            folded = " ".join(p for p in (first.strip(" \t"), rest.strip(" \t")) if p)
        else:
            lines.append(f"{name}{gap}:{value}")
            folded = value
        if expected is None and name.lower() == "x-simulation-result-id":
            expected = folded
    body = draw(st.sampled_from(["", "v=0\r\nX-Simulation-Result-Id: decoy\r\n"]))
    text = eol.join(lines) + eol + eol + body
    return text.encode("utf-8"), expected


# No deadline: a loaded CI machine must not turn slowness into failures.
_PROPERTY = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_PROPERTY
@given(_messages())
def test_scan_matches_model(case: tuple[bytes, str | None]) -> None:
    message, expected = case
    found = scan(message)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert found.decode("utf-8").strip(" \t") == expected.strip(" \t")


@_PROPERTY
@given(st.binary(max_size=2000))
def test_scan_never_fails_on_arbitrary_bytes(data: bytes) -> None:
    head, body_start, complete = split_head(data)
    assert complete
    assert len(head) <= len(data)
    assert body_start <= len(data)
    value = find_header(head, complete, NAME)
    assert value is None or isinstance(value, bytes)
