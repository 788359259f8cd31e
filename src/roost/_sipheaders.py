"""Bounded scan of a SIP message head for one header's raw value.

The agent SDK needs exactly one thing from a raw SIP message: the value of
``X-Simulation-Result-Id``. A full RFC 3261 parser lives in ``roost.sip``, but the
SDK may not import it (``roost.sip`` drags in the caller stack), and no stdlib
parser fits: ``email.parser`` and ``http.client`` do not know SIP start lines,
treat a missing blank line differently and cost tens of microseconds. So this
module is a small, single-pass scan written for the job.

Rules (shared with the FreeSWITCH ESL reader, which uses the same text format):

- Line ends are CRLF or a bare LF. A bare CR is an ordinary character.
- CR/LF bytes before the start line are skipped (RFC 3261 §7.5 keep-alives).
- The head ends at the first empty line; the body after it is never searched, so
  an SDP or ``message/sipfrag`` body quoting the header cannot be mistaken for it.
- The first line is the start line (request or status line) unless it is itself
  a ``name: value`` header line, so a bare header block works too.
- Header names match case-insensitively, with optional SP/HTAB before the colon.
  A line that starts with SP/HTAB continues the previous header (RFC 3261 §7.3.1
  folding); the pieces are joined with one space.
- The first occurrence wins.
- At most :data:`SCAN_LIMIT` bytes are read, counted from the first byte of the
  input (keep-alive CR/LF included). If the head is not finished within them,
  only headers that are provably complete count: a header whose line the limit
  cuts, or whose line ends exactly at the limit (a continuation line might
  follow), is ignored, never returned truncated.
- Every step is a ``bytes.find`` or a walk over bytes already passed, so the
  cost is linear in the scanned size whatever the input.

Example:
    >>> head = b"INVITE sip:a@b SIP/2.0\\r\\nx-simulation-result-id:  720488\\r\\n\\r\\n"
    >>> find_header(*split_head(head)[::2], b"x-simulation-result-id")
    b'720488'
"""

from __future__ import annotations

__all__ = ["SCAN_LIMIT", "find_header", "split_head"]

SCAN_LIMIT = 64 * 1024
"""Bytes of a message read at most (the size of the largest UDP datagram)."""

_SP = 0x20
_HTAB = 0x09
_LF = 0x0A
_COLON = 0x3A


def split_head(data: bytes, limit: int = SCAN_LIMIT) -> tuple[bytes, int, bool]:
    """Cut the head (start line and headers) off a message.

    Args:
        data: The whole message, or as much of it as the caller has.
        limit: Most bytes to read, counted from the first byte of ``data``.

    Returns:
        ``(head, body_start, complete)``: the head with the line end of its last
        line but without the empty line; the index in ``data`` where the body
        starts, or -1 if no empty line was seen; and whether ``head`` is whole.
        When the limit cuts the head, ``complete`` is False and ``head`` is all
        the limit allows, ending in a partial line.

    Example:
        >>> split_head(b"\\r\\nOPTIONS sip:x SIP/2.0\\nl: 0\\n\\nbody")
        (b'OPTIONS sip:x SIP/2.0\\nl: 0\\n', 30, True)
    """
    size = len(data)
    window = data[:limit].lstrip(b"\r\n")
    start = min(size, limit) - len(window)
    end = _empty_line(window)
    if end >= 0:
        # The empty line is "\n" or "\r\n"; the body starts after its LF.
        after = end + (1 if window[end] == _LF else 2)
        return window[:end], start + after, True
    return window, -1, limit >= size


def find_header(head: bytes, complete: bool, name: bytes) -> bytes | None:
    """Return the raw value of the first header called ``name`` in ``head``.

    Args:
        head: A message head as returned by :func:`split_head`.
        complete: Whether ``head`` is whole; when False, a header that runs to
            the end of ``head`` might continue past the cut and is ignored.
        name: The header name in lower case, without the colon.

    Returns:
        The value as bytes without the SP/HTAB around it (they are syntax, not
        value), folded lines joined with one space; or None if no such header is
        in the head.

    Example:
        >>> find_header(b"To: <sip:a@b>\\r\\nX-Id:\\r\\n  42\\r\\n", True, b"x-id")
        b'42'
    """
    lowered = head.lower()
    needle = b"\n" + name
    pos = 0 if lowered.startswith(name) else _after(lowered.find(needle))
    while pos >= 0:
        k = pos + len(name)
        size = len(head)
        while k < size and head[k] in (_SP, _HTAB):
            k += 1
        if k < size and head[k] == _COLON:
            return _value(head, k + 1, complete)
        pos = _after(lowered.find(needle, k))
    return None


def _after(index: int) -> int:
    # find() gives the LF before the name; the name starts one byte later.
    return index + 1 if index >= 0 else -1


def _empty_line(window: bytes) -> int:
    """Index of the first empty line's first byte (CR or LF), or -1."""
    crlf = window.find(b"\n\r\n")
    lf = window.find(b"\n\n")
    if crlf < 0:
        return lf + 1 if lf >= 0 else -1
    if lf < 0 or crlf < lf:
        return crlf + 1
    return lf + 1


def _value(head: bytes, pos: int, complete: bool) -> bytes | None:
    size = len(head)
    parts: list[bytes] = []
    while True:
        eol = head.find(b"\n", pos)
        if eol < 0:
            if not complete:
                return None  # the limit cut this line
            parts.append(head[pos:])
            end = size
            break
        line = head[pos:eol]
        if line.endswith(b"\r"):
            line = line[:-1]
        parts.append(line)
        end = eol + 1
        if end < size and head[end] in (_SP, _HTAB):
            pos = end
            continue
        break
    if not complete and end >= size:
        return None  # the next line, which might continue this one, is past the limit
    if len(parts) == 1:
        return parts[0].strip(b" \t")
    pieces = [part.strip(b" \t") for part in parts]
    return b" ".join(piece for piece in pieces if piece)
