"""What a simulation result id is: validation, the error, and absence logging.

Shared by every carrier reader of :mod:`roost.ids`, which re-exports the public
names. An id is any string of 1 to :data:`MAX_LENGTH` characters once leading and
trailing whitespace is stripped, without control characters or lone surrogates;
bytes must be UTF-8; an integer is taken as its decimal string.

Example:
    >>> from roost.ids import validate_simulation_result_id
    >>> validate_simulation_result_id(b" 720488\\r\\n")
    '720488'
"""

from __future__ import annotations

import logging
import threading
import unicodedata
from typing import Final, NamedTuple

__all__ = [
    "HEADER_NAME",
    "KINDS",
    "MAX_LENGTH",
    "Found",
    "InvalidSimulationResultId",
    "as_text",
    "check",
    "finish",
    "log_once",
    "validate_simulation_result_id",
]

logger = logging.getLogger("roost")

HEADER_NAME: Final = "X-Simulation-Result-Id"
"""The header that carries the id, as Bluejay spells it."""

MAX_LENGTH: Final = 128
"""Longest id accepted, in characters, after stripping surrounding whitespace."""

# Carrier kind -> (what to call it in messages, hint for when the id is missing).
KINDS: Final[dict[str, tuple[str, str]]] = {
    "sip": (
        "SIP message",
        "the platform sends X-Simulation-Result-Id in the initial INVITE only",
    ),
    "headers": (
        "request headers",
        "the platform sends X-Simulation-Result-Id on the CHIRP WebSocket upgrade request",
    ),
    "asgi": ("ASGI scope", "the platform sends X-Simulation-Result-Id on the upgrade request"),
    "wsgi": ("WSGI environ", "the platform sends X-Simulation-Result-Id as a request header"),
    "twilio": (
        "Twilio webhook parameters",
        "Twilio passes INVITE X- headers as SipHeader_<name> for calls to a SIP Domain only",
    ),
    "livekit-attributes": (
        "LiveKit participant attributes",
        "map X-Simulation-Result-Id with headers_to_attributes on the inbound SIP trunk, "
        "or set include_headers to SIP_X_HEADERS",
    ),
    "livekit-metadata": (
        "LiveKit job metadata",
        "the id is in job metadata only when the platform dispatches the agent itself; "
        "SIP calls carry it as a participant attribute",
    ),
    "vapi": (
        "Vapi message",
        "Vapi turns SIP X- headers into variableValues for calls to a Vapi SIP URI only",
    ),
    "retell": ("Retell call", "Retell fills custom_sip_headers for inbound SIP calls only"),
    "bland": ("Bland variables", "Bland exposes inbound X- headers as sip_header_<name>"),
    "daily": (
        "Daily dial-in webhook",
        "Daily forwards SIP headers for pinless dial-in and SIP interconnect calls",
    ),
    "openai": (
        "OpenAI realtime.call.incoming event",
        "OpenAI lists the INVITE's headers in data.sip_headers",
    ),
    "freeswitch": (
        "FreeSWITCH event",
        "mod_sofia exposes inbound X- headers as sip_h_<name> channel variables",
    ),
    "json": ("JSON document", "it is not a JSON object, or no key in it names the id"),
    "mapping": ("mapping", "no key in it names the id; try the function for your platform"),
}


class InvalidSimulationResultId(ValueError):
    """A simulation result id was present but malformed.

    Attributes:
        reason: What was wrong: ``"empty"``, ``"whitespace"``, ``"too_long"``,
            ``"control_character"``, ``"surrogate"``, ``"encoding"`` or ``"type"``.
        source: Where the value came from, e.g. ``SIP header 'X-Simulation-Result-Id'``.

    Example:
        >>> from roost.ids import InvalidSimulationResultId, validate_simulation_result_id
        >>> try:
        ...     validate_simulation_result_id("720\\x00488")
        ... except InvalidSimulationResultId as exc:
        ...     print(exc.reason, "/", exc)
        control_character / invalid simulation result id in value: control character '\\x00' \
at position 3
    """

    __module__ = "roost.ids"  # its public home; this module is private

    def __init__(self, message: str, reason: str, source: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.source = source

    def __reduce__(self) -> tuple[type[InvalidSimulationResultId], tuple[str, str, str]]:
        # The default reduce would call cls(message) and lose reason and source.
        return (type(self), (str(self), self.reason, self.source))


class Found(NamedTuple):
    """The raw value of the first matching field, before validation."""

    source: str
    value: object
    latin1: bool = False  # str decoded as ISO-8859-1 from wire bytes (WSGI, http.client)


def validate_simulation_result_id(value: object, *, source: str = "value") -> str:
    """Check a simulation result id and return it without surrounding whitespace.

    Every ``from_*`` function runs this on the value it finds; call it yourself for
    an id that reached you some other way.

    Args:
        value: The id: a ``str``, UTF-8 ``bytes``, or an ``int``.
        source: Where the value came from, for the error message.

    Returns:
        The id, stripped of leading and trailing whitespace.

    Raises:
        InvalidSimulationResultId: The value is empty, only whitespace, longer than
            :data:`MAX_LENGTH` characters, contains a control character or a lone
            surrogate, is not UTF-8, or is not a string, bytes or integer.

    Example:
        >>> validate_simulation_result_id("  720488 ")
        '720488'
    """
    return check(as_text(value, source, latin1=False), source)


def finish(kind: str, found: Found | None) -> str | None:
    """Validate what a carrier reader found, or log that it found nothing."""
    if found is None:
        _log_absent(kind)
        return None
    return check(as_text(found.value, found.source, latin1=found.latin1), found.source)


def as_text(value: object, source: str, *, latin1: bool) -> str:
    """Turn a raw value into text: bytes as UTF-8, integers in decimal."""
    if isinstance(value, str):
        if value.isascii():
            return value
        return _from_latin1(value) if latin1 else _undo_surrogateescape(value)
    if isinstance(value, bytes | bytearray | memoryview):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as exc:
            byte = exc.object[exc.start]
            raise _invalid(
                source, "encoding", f"not valid UTF-8 (byte 0x{byte:02x} at position {exc.start})"
            ) from None
    if isinstance(value, int) and not isinstance(value, bool):
        if value.bit_length() > 4 * MAX_LENGTH:
            raise _invalid(source, "too_long", f"an integer of more than {MAX_LENGTH} digits")
        return str(value)
    raise _invalid(source, "type", f"expected a string, got {type(value).__name__}")


def _from_latin1(value: str) -> str:
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value  # not wire bytes after all, or genuinely ISO-8859-1 text


def _undo_surrogateescape(value: str) -> str:
    # Parsers that meet undecodable bytes (websockets, email) keep them as lone
    # surrogates U+DC80..U+DCFF; if the bytes are UTF-8 after all, recover the text.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            return value
    return value


def check(text: str, source: str) -> str:
    """Strip ``text`` and raise if what is left is not a valid id."""
    stripped = text.strip()
    if not stripped:
        if not text:
            raise _invalid(source, "empty", "the value is empty")
        raise _invalid(source, "whitespace", f"the value is only whitespace ({len(text)} chars)")
    if len(stripped) > MAX_LENGTH:
        raise _invalid(
            source,
            "too_long",
            f"{len(stripped)} characters long; at most {MAX_LENGTH} are allowed",
        )
    if not stripped.isprintable():
        # isprintable() is also False for spaces and format characters, which
        # are allowed; only control characters and lone surrogates are errors.
        offset = len(text) - len(text.lstrip())
        for index, char in enumerate(stripped, start=offset):
            category = unicodedata.category(char)
            if category == "Cc":
                raise _invalid(
                    source,
                    "control_character",
                    f"control character {char!r} at position {index}",
                )
            if category == "Cs":
                raise _invalid(
                    source,
                    "surrogate",
                    f"lone surrogate {char!r} at position {index} (undecodable input?)",
                )
    return stripped


def _invalid(source: str, reason: str, detail: str) -> InvalidSimulationResultId:
    return InvalidSimulationResultId(
        f"invalid simulation result id in {source}: {detail}", reason, source
    )


_logged: set[str] = set()
_logged_lock = threading.Lock()


def _log_absent(kind: str) -> None:
    label, hint = KINDS[kind]
    if _first_time(kind):
        logger.warning(
            "No simulation result id in the %s (%s); the call goes on without enrichment. "
            "Logged once per process for this carrier.",
            label,
            hint,
        )
    else:
        logger.debug("No simulation result id in the %s.", label)


def log_once(key: str, message: str, *args: object) -> None:
    """Log a warning the first time ``key`` is seen in this process."""
    if _first_time(key):
        logger.warning(message, *args)


def _first_time(key: str) -> bool:
    with _logged_lock:
        if key in _logged:
            return False
        _logged.add(key)
        return True
