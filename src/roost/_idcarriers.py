"""Reading carriers: header collections, webhook documents, SIP and ESL text.

The building blocks behind the ``from_*`` functions of :mod:`roost.ids`: the
spellings of the id's name per carrier, the paths to it in each platform's
payload, and readers that return the first raw value found (a :class:`Found`),
leaving validation and logging to :func:`roost._idvalue.finish`.

Example:
    >>> from roost._idcarriers import HEADER_NAMES, first
    >>> first([("Host", "a"), ("X-Simulation-Result-Id", "7")], HEADER_NAMES, "header")
    Found(source="header 'X-Simulation-Result-Id'", value='7', latin1=False)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from roost._idvalue import Found, log_once
from roost._sipheaders import SCAN_LIMIT, find_header, split_head

__all__ = [
    "ANY_NAMES",
    "AUTO_PATHS",
    "BLAND_NAMES",
    "BLAND_PATHS",
    "DAILY_PATHS",
    "FREESWITCH_NAMES",
    "HEADER_NAMES",
    "LIVEKIT_SIP_NAME",
    "OPENAI_PATHS",
    "RETELL_PATHS",
    "TEXT",
    "TWILIO_NAMES",
    "VAPI_PATHS",
    "VARIABLE_NAMES",
    "Path",
    "as_document",
    "first",
    "form_pairs",
    "get",
    "has_multi_value_api",
    "is_header_collection",
    "is_json_text",
    "json_object",
    "model_dump",
    "pairs",
    "read_asgi",
    "read_esl",
    "read_headers",
    "read_livekit",
    "read_sip",
    "read_wsgi",
    "walk",
    "wrong_type",
]

TEXT = (str, bytes, bytearray, memoryview)

# Lower-cased spellings of the id's name, per carrier.
HEADER_NAMES: Final = frozenset({"x-simulation-result-id"})
VARIABLE_NAMES: Final = frozenset(
    {  # Vapi and Retell strip "X-"; Vapi's docs are loose about "-" vs "_".
        "simulation-result-id",
        "simulation_result_id",
        "x-simulation-result-id",
        "x_simulation_result_id",
    }
)
TWILIO_NAMES: Final = frozenset({"sipheader_x-simulation-result-id"})
BLAND_NAMES: Final = frozenset({"sip_header_x-simulation-result-id"})
LIVEKIT_SIP_NAME: Final = "sip.h.x-simulation-result-id"
FREESWITCH_NAMES: Final = (
    "variable_sip_h_x-simulation-result-id",  # ESL events and uuid_dump
    "sip_h_x-simulation-result-id",  # the channel variable itself
)
ANY_NAMES: Final = frozenset(
    HEADER_NAMES
    | VARIABLE_NAMES
    | TWILIO_NAMES
    | BLAND_NAMES
    | {LIVEKIT_SIP_NAME, *FREESWITCH_NAMES}
)

# (path of keys to a header collection, names that count there, carrier kind)
Path = tuple[tuple[str, ...], frozenset[str], str]

OPENAI_PATHS: Final[tuple[Path, ...]] = (
    (("data", "sip_headers"), HEADER_NAMES, "openai"),
    (("sip_headers",), HEADER_NAMES, "openai"),
)
DAILY_PATHS: Final[tuple[Path, ...]] = (
    (("sipHeaders",), HEADER_NAMES, "daily"),  # Daily's room_creation_api webhook
    (("dialin_settings", "sip_headers"), HEADER_NAMES, "daily"),  # Pipecat runner body
    (("dialin_settings", "sipHeaders"), HEADER_NAMES, "daily"),
    (("sip_headers",), HEADER_NAMES, "daily"),  # Pipecat DialinSettings
)
VAPI_PATHS: Final[tuple[Path, ...]] = (
    (("message", "assistant", "variableValues"), VARIABLE_NAMES, "vapi"),
    (("message", "call", "assistantOverrides", "variableValues"), VARIABLE_NAMES, "vapi"),
    (("assistant", "variableValues"), VARIABLE_NAMES, "vapi"),
    (("call", "assistantOverrides", "variableValues"), VARIABLE_NAMES, "vapi"),
    (("assistantOverrides", "variableValues"), VARIABLE_NAMES, "vapi"),
    (("variableValues",), VARIABLE_NAMES, "vapi"),
)
RETELL_PATHS: Final[tuple[Path, ...]] = (
    (("call", "custom_sip_headers"), VARIABLE_NAMES, "retell"),
    (("custom_sip_headers",), VARIABLE_NAMES, "retell"),
    (("call", "retell_llm_dynamic_variables"), VARIABLE_NAMES, "retell"),
    (("retell_llm_dynamic_variables",), VARIABLE_NAMES, "retell"),
)
BLAND_PATHS: Final[tuple[Path, ...]] = ((("variables",), BLAND_NAMES, "bland"),)
AUTO_PATHS: Final[tuple[Path, ...]] = (
    OPENAI_PATHS[0],
    (("sip_headers",), HEADER_NAMES, "headers"),  # OpenAI data object or DialinSettings
    *DAILY_PATHS[1:3],
    DAILY_PATHS[0],
    *VAPI_PATHS,
    *RETELL_PATHS,
    *BLAND_PATHS,
    (("headers",), HEADER_NAMES, "headers"),
)


def wrong_type(function: str, expected: str, value: object) -> str:
    """The message of the TypeError raised for a carrier of the wrong type."""
    kind = type(value)
    return f"{function}() expects {expected}, got {kind.__module__}.{kind.__qualname__}"


def walk(document: Mapping[Any, Any], paths: tuple[Path, ...]) -> tuple[str | None, Found | None]:
    """Follow each path; return the first id found, and the first kind seen."""
    seen: str | None = None
    for keys, names, kind in paths:
        node: object = document
        for key in keys:
            node = get(node, key) if isinstance(node, Mapping) else None
            if node is None:
                break
        if not isinstance(node, Mapping | list | tuple):
            continue
        seen = seen or kind
        found = first(pairs(node), names, ".".join(keys))
        if found is not None:
            return kind, found
    return seen, None


def read_sip(
    message: str | bytes | bytearray | memoryview, name: bytes, label: str
) -> Found | None:
    """The raw value of header ``name`` (lower case) in a SIP (or HTTP) head."""
    if isinstance(message, str):
        # One character past the limit, so split_head can tell that it was cut.
        data = message[: SCAN_LIMIT + 1].encode("utf-8", "surrogatepass")
    elif isinstance(message, bytes):
        data = message
    else:
        data = bytes(message[: SCAN_LIMIT + 1])
    head, _, complete = split_head(data)
    raw = find_header(head, complete, name)
    if raw is None:
        if not complete:
            log_once(
                "sip-limit", "SIP head longer than %d bytes; headers past it ignored", SCAN_LIMIT
            )
        return None
    value: object = raw.decode("utf-8", "surrogatepass") if isinstance(message, str) else raw
    return Found(f"SIP header {label!r}", value)


def read_esl(event: str | bytes | bytearray | memoryview) -> Found | None:
    """The id's channel variable in a FreeSWITCH event as ESL text."""
    data = event.encode("utf-8", "surrogatepass") if isinstance(event, str) else bytes(event)
    head, body_start, complete = split_head(data)
    content_type = find_header(head, complete, b"content-type")
    if body_start >= 0 and content_type is not None:
        # A read from the event socket: an envelope, then the event as its body.
        kind = content_type.strip().lower()
        body = data[body_start:]
        if kind == b"text/event-json":
            document = json_object(body)
            if document is None:
                return None
            for name in FREESWITCH_NAMES:
                found = first(pairs(document), frozenset({name}), "FreeSWITCH variable")
                if found is not None:
                    return found
            return None
        if kind == b"text/event-plain":
            head, _, complete = split_head(body)
    for name in FREESWITCH_NAMES:
        raw = find_header(head, complete, name.encode("ascii"))
        if raw is not None:
            # Plain events URL-encode their values.
            return Found(f"FreeSWITCH header {name!r}", unquote_to_bytes(raw))
    return None


def read_asgi(scope: Mapping[Any, Any], strict: str | None) -> Found | None:
    """The id header in an ASGI scope; ``strict`` as for :func:`first`."""
    headers = get(scope, "headers")
    if not isinstance(headers, Iterable) or isinstance(headers, TEXT):
        raise TypeError(f"the ASGI scope's headers are a {type(headers).__name__}, not a list")
    return first(headers, HEADER_NAMES, "header", strict=strict)


def read_wsgi(environ: Mapping[Any, Any]) -> Found | None:
    """The id header in a WSGI environ (ISO-8859-1 text per PEP 3333)."""
    value = get(environ, "HTTP_X_SIMULATION_RESULT_ID")
    if value is None:
        return None
    return Found("WSGI variable 'HTTP_X_SIMULATION_RESULT_ID'", value, latin1=True)


def read_livekit(attributes: Mapping[Any, Any], attribute: str) -> Found | None:
    """The configured attribute if set, else ``sip.h.x-simulation-result-id``."""
    wanted = attribute.lower()
    configured = first(pairs(attributes), frozenset({wanted}), "attribute")
    if configured is not None:
        return configured
    return first(pairs(attributes), frozenset({LIVEKIT_SIP_NAME}), "attribute")


def read_headers(
    headers: object, names: frozenset[str], function: str, label: str = "header"
) -> Found | None:
    """The first header named in ``names``; TypeError if ``headers`` is no collection.

    A request object (anything whose ``headers`` attribute is a collection, even
    if it is a mapping itself, like aiohttp's) stands for its headers.
    """
    inner = getattr(headers, "headers", None)
    if inner is not None and not callable(inner) and is_header_collection(inner):
        headers = inner
    environ = getattr(headers, "environ", None)
    if isinstance(environ, Mapping) and "x-simulation-result-id" in names:
        return read_wsgi(environ)  # werkzeug's EnvironHeaders and Flask requests
    if not is_header_collection(headers):
        raise TypeError(wrong_type(function, "a header collection", headers))
    latin1 = _is_latin1_view(headers)
    found = first(pairs(headers), names, label, strict=function)
    if found is not None and latin1:
        return found._replace(latin1=True)
    return found


# Header collections


def is_header_collection(headers: object) -> bool:
    """Whether :func:`pairs` can read ``headers``."""
    return (
        isinstance(headers, Mapping | list | tuple)
        or has_multi_value_api(headers)
        or callable(getattr(headers, "items", None))
    )


def has_multi_value_api(headers: object) -> bool:
    """Whether ``headers`` offers its repeated entries through a dedicated API."""
    return (
        callable(getattr(headers, "raw_items", None))
        or isinstance(getattr(headers, "raw", None), list)
        or callable(getattr(headers, "multi_items", None))
    )


def pairs(headers: object) -> Iterable[Any]:
    """All entries of a header collection, repeats included, in order."""
    raw_items = getattr(headers, "raw_items", None)
    if callable(raw_items):
        # websockets' Headers raise on repeated names through the Mapping API.
        return raw_items()  # type: ignore[no-any-return]
    raw = getattr(headers, "raw", None)
    if isinstance(raw, list):
        # Starlette and httpx keep the undecoded bytes; their str view is ISO-8859-1.
        return raw
    multi_items = getattr(headers, "multi_items", None)
    if callable(multi_items):
        # httpx joins repeats with ", " in items(); Starlette's MultiDict keeps one.
        return multi_items()  # type: ignore[no-any-return]
    if isinstance(headers, list | tuple):
        return headers
    items = getattr(headers, "items", None)
    if callable(items):
        return items()  # type: ignore[no-any-return]
    return ()


def first(
    entries: Iterable[Any], names: frozenset[str], label: str, strict: str | None = None
) -> Found | None:
    """The first entry whose name is in ``names`` and whose value is not None.

    Entries are ``(name, value)`` pairs, ``{"name", "value"}`` mappings or objects
    with ``name`` and ``value`` attributes. Other entries raise TypeError when
    ``strict`` names the public function (a developer passed the wrong thing) and
    are skipped otherwise (they came from a payload the agent does not control).
    """
    for index, entry in enumerate(entries):
        if isinstance(entry, tuple | list) and len(entry) == 2:
            name, value = entry
        elif isinstance(entry, Mapping) and "name" in entry:
            name, value = entry.get("name"), entry.get("value")
        elif hasattr(entry, "name") and hasattr(entry, "value"):
            name, value = entry.name, entry.value
        elif strict is not None:
            raise TypeError(
                f"{strict}: header entry {index} is {type(entry).__name__}, "
                "not a (name, value) pair"
            )
        else:
            continue
        if isinstance(name, str):
            key = name
        elif isinstance(name, bytes | bytearray):
            key = name.decode("latin-1")
        else:
            continue
        if value is not None and key.lower() in names:
            return Found(f"{label} {key!r}", value)
    return None


def form_pairs(data: bytes) -> Iterable[tuple[bytes, bytes]]:
    """Decode an ``application/x-www-form-urlencoded`` body into byte pairs.

    Hand-written because ``urllib.parse.parse_qsl`` insists on ASCII input and
    output for bytes; Twilio bodies are UTF-8 and only the id's value is decoded.
    """
    for field in data.split(b"&"):
        name, _, value = field.partition(b"=")
        yield (
            unquote_to_bytes(name.replace(b"+", b" ")),
            unquote_to_bytes(value.replace(b"+", b" ")),
        )


# Header classes that hold wire bytes decoded as ISO-8859-1 (RFC 9110's "opaque"
# obs-text): http.client (so http.server too) and websockets >= 14.
_LATIN1_CLASSES: Final = (("http.client", "HTTPMessage"), ("websockets.datastructures", "Headers"))


def _is_latin1_view(headers: object) -> bool:
    # Look each class up only if its module is loaded: this module imports neither.
    for module_name, class_name in _LATIN1_CLASSES:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None)
        if isinstance(cls, type) and isinstance(headers, cls):
            return True
    return False


# Documents


def as_document(carrier: object, function: str) -> Mapping[Any, Any] | None:
    """A webhook payload as a mapping; None if its JSON text is not an object."""
    if isinstance(carrier, Mapping):
        return carrier
    if isinstance(carrier, TEXT):
        return json_object(carrier)
    dumped = model_dump(carrier)
    if dumped is not None:
        return dumped
    raise TypeError(wrong_type(function, "a mapping, a pydantic model or JSON text", carrier))


def model_dump(carrier: object) -> Mapping[Any, Any] | None:
    """A pydantic model (anything with ``model_dump()``) as a mapping, else None."""
    dump = getattr(carrier, "model_dump", None)
    if not callable(dump) or isinstance(carrier, type):
        return None
    try:
        dumped = dump(by_alias=True)  # wire names, e.g. Vapi's variableValues
    except TypeError:
        dumped = dump()
    return dumped if isinstance(dumped, Mapping) else None


def is_json_text(text: str | bytes | bytearray | memoryview) -> bool:
    """Whether ``text`` starts like a JSON object (after whitespace and a BOM)."""
    if isinstance(text, str):
        return text[:SCAN_LIMIT].lstrip(" \t\r\n\ufeff")[:1] == "{"
    head = bytes(text[:SCAN_LIMIT]).lstrip(b" \t\r\n")
    return head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")[:1] == b"{"


def json_object(text: str | bytes | bytearray | memoryview) -> Mapping[Any, Any] | None:
    """The JSON object in ``text``; None if it is not JSON or not an object."""
    data: str | bytes
    if isinstance(text, str):
        data = text.lstrip(" \t\r\n\ufeff")
    else:
        data = bytes(text).lstrip(b" \t\r\n").removeprefix(b"\xef\xbb\xbf")
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        # Not JSON (UnicodeDecodeError is a ValueError), or nested deeper than
        # the parser's stack allows: either way it carries no id.
        return None
    return document if isinstance(document, dict) else None


def get(node: Mapping[Any, Any], key: str) -> Any:
    """``node.get(key)``, with None for mappings that raise on lookup."""
    try:
        return node.get(key)
    except (LookupError, TypeError):
        # websockets' Headers raise on a repeated name; odd mappings on odd keys.
        return None
