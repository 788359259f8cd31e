"""Find the simulation result id in whatever shape the agent's stack hands it over.

Every simulated call carries a unique simulation result id. The platform (Bluejay
or Roost) sends it as the ``X-Simulation-Result-Id`` header: on the CHIRP
WebSocket upgrade request, or in the initial SIP INVITE. What the agent sees
depends on its telephony stack, which may rename the header or move it into a
webhook body. One function per carrier finds it:

=====================================  ==========================================================
Function                               Carrier, and where the id is
=====================================  ==========================================================
:func:`from_sip_invite`                raw SIP message: header ``X-Simulation-Result-Id``
:func:`from_headers`                   any header collection (dict, pairs, ``websockets`` /
                                       Starlette / httpx / werkzeug headers, ``email.message``)
:func:`from_asgi_scope`                ASGI HTTP or WebSocket scope: ``scope["headers"]``
:func:`from_wsgi_environ`              WSGI environ: ``HTTP_X_SIMULATION_RESULT_ID``
:func:`from_twilio_params`             Twilio voice webhook: ``SipHeader_X-Simulation-Result-Id``
:func:`from_livekit_attributes`        LiveKit SIP participant: the ``headers_to_attributes``
                                       name, else ``sip.h.x-simulation-result-id``
:func:`from_livekit_metadata`          LiveKit job metadata JSON: ``X-Simulation-Result-Id``
:func:`from_vapi`                      Vapi message: ``variableValues["simulation-result-id"]``
:func:`from_retell`                    Retell call: ``custom_sip_headers["simulation-result-id"]``
:func:`from_bland`                     Bland variables: ``sip_header_x-simulation-result-id``
:func:`from_daily_dialin`              Daily / Pipecat dial-in: ``sipHeaders``, ``sip_headers``
:func:`from_openai_sip`                OpenAI ``realtime.call.incoming``: ``data.sip_headers[]``
:func:`from_freeswitch`                FreeSWITCH: ``variable_sip_h_X-Simulation-Result-Id``
=====================================  ==========================================================

:func:`extract_simulation_result_id` detects the carrier. It looks at the value in
this order, and the first rule that matches decides:

1. ``str``, ``bytes``, ``bytearray``, ``memoryview``: a JSON object if the first
   character that is not whitespace is ``{`` (then rule 4 on the parsed object),
   otherwise a SIP message (:func:`from_sip_invite`). No SIP start line begins
   with ``{``, so the two cannot be confused.
2. An object with a ``headers`` attribute (a request: ``websockets`` ``Request``,
   Starlette ``Request``/``WebSocket``, aiohttp, Flask, ``http.server``): its
   headers, read as by :func:`from_headers`. Then an object with ``model_dump()``
   (a pydantic model, e.g. an OpenAI SDK webhook event) is dumped and goes to rule 4.
3. A header class with a multi-value API (``raw_items()``, ``raw`` or
   ``multi_items()``: ``websockets``, Starlette and httpx headers, email and
   ``http.client`` messages, Starlette ``FormData``): read as a header collection
   in which any spelling of the name listed in rule 4 counts.
4. A mapping: an ASGI scope if ``type`` is ``"http"`` or ``"websocket"`` and it has
   ``headers``; a WSGI environ if it has ``wsgi.version``; otherwise these paths,
   in order, and the first one that holds the id wins: ``data.sip_headers``,
   ``sip_headers``, ``dialin_settings.sip_headers``, ``dialin_settings.sipHeaders``,
   ``sipHeaders``, the Vapi paths of :func:`from_vapi`, the Retell paths of
   :func:`from_retell`, ``variables`` (Bland), ``headers``; and last the mapping's
   own keys, where any spelling of the name from the table above counts
   (``X-Simulation-Result-Id``, ``SipHeader_X-Simulation-Result-Id``,
   ``sip.h.x-simulation-result-id``, ``simulation-result-id``,
   ``sip_header_x-simulation-result-id``, ``variable_sip_h_X-Simulation-Result-Id``,
   ...), the first such key in the mapping's order winning.
5. An object with an ``attributes`` mapping: a LiveKit participant.
6. Any other header collection (anything with ``items()``, a list or tuple of
   ``(name, value)`` pairs or of ``{"name", "value"}`` objects), any spelling.

Anything else raises :class:`TypeError` naming the type: passing the wrong object is
a programming error, not a missing id.

Rules shared by every carrier:

- **Absent** means ``None``: the call goes on without enrichment. The first miss of
  each carrier kind in a process is logged at WARNING on the ``roost`` logger, with
  a hint on how to make the header come through (a misconfigured trunk is the usual
  cause); later misses are logged at DEBUG. Production calls, which carry no id,
  thus cost one log line per process. A JSON ``null`` value counts as absent.
- **Malformed** raises :class:`InvalidSimulationResultId` (a ``ValueError``) saying
  what is wrong: empty, only whitespace, longer than :data:`MAX_LENGTH` (128)
  characters (with the length), a control character (which one, and where), a lone
  surrogate, bytes that are not UTF-8, or a value that is not a string. Leading and
  trailing whitespace (as ``str.strip`` defines it) is removed first: SIP and HTTP
  pad header values with spaces, and the padding is not part of the id.
- **Any string is an id.** Bluejay's ids are decimal integers, but the contract
  types them as strings, so Roost accepts non-numeric ids such as ``sim-42-abc``; an
  integer in a JSON payload is turned into its decimal string.
- **The first occurrence wins** when a carrier repeats the header.
- Header names and variable names match case-insensitively.

Example:
    >>> from roost.ids import extract_simulation_result_id
    >>> extract_simulation_result_id(
    ...     b"INVITE sip:agent@example.com SIP/2.0\\r\\n"
    ...     b"X-Simulation-Result-Id: 720488\\r\\n\\r\\n"
    ... )
    '720488'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from roost._idcarriers import (
    ANY_NAMES,
    AUTO_PATHS,
    BLAND_NAMES,
    BLAND_PATHS,
    DAILY_PATHS,
    FREESWITCH_NAMES,
    HEADER_NAMES,
    OPENAI_PATHS,
    RETELL_PATHS,
    TEXT,
    TWILIO_NAMES,
    VAPI_PATHS,
    VARIABLE_NAMES,
    Path,
    as_document,
    first,
    form_pairs,
    get,
    has_multi_value_api,
    is_json_text,
    json_object,
    model_dump,
    pairs,
    read_asgi,
    read_esl,
    read_headers,
    read_livekit,
    read_sip,
    read_wsgi,
    walk,
    wrong_type,
)
from roost._idvalue import (
    HEADER_NAME,
    MAX_LENGTH,
    Found,
    InvalidSimulationResultId,
    finish,
    validate_simulation_result_id,
)
from roost._sipheaders import SCAN_LIMIT

__all__ = [
    "HEADER_NAME",
    "MAX_LENGTH",
    "SCAN_LIMIT",
    "InvalidSimulationResultId",
    "extract_simulation_result_id",
    "from_asgi_scope",
    "from_bland",
    "from_daily_dialin",
    "from_freeswitch",
    "from_headers",
    "from_livekit_attributes",
    "from_livekit_metadata",
    "from_openai_sip",
    "from_retell",
    "from_sip_invite",
    "from_twilio_params",
    "from_vapi",
    "from_wsgi_environ",
    "validate_simulation_result_id",
]


def extract_simulation_result_id(carrier: object) -> str | None:
    """Find the simulation result id in any supported carrier.

    The carrier type is detected in the order the module documentation lists;
    use the ``from_*`` function of your platform when you know it.

    Args:
        carrier: A raw SIP message, a header collection, an ASGI scope, a WSGI
            environ, a request object, a LiveKit participant, or a platform's
            webhook payload (mapping, pydantic model or JSON text).

    Returns:
        The id, or None if the carrier has none (logged once per carrier kind).

    Raises:
        InvalidSimulationResultId: The id is present but malformed.
        TypeError: The carrier is of no supported type.

    Example:
        >>> from roost.ids import extract_simulation_result_id
        >>> extract_simulation_result_id({"x-simulation-result-id": " 720488 "})
        '720488'
    """
    kind, found = _detect(carrier)
    return finish(kind, found)


def from_sip_invite(message: str | bytes | bytearray | memoryview) -> str | None:
    """Read the id from a raw SIP message, as it arrived on the wire.

    Only the head is searched (the body after the first empty line never is),
    header names in any case, compact header forms, folded lines, CRLF or bare
    LF line ends; the first ``X-Simulation-Result-Id`` wins. Any request or
    response is accepted, not only an INVITE: the header means the same wherever
    it appears, and which message to read is the caller's choice (the platform
    sends it on the initial INVITE). At most :data:`SCAN_LIMIT` bytes (64 KiB, a
    whole UDP datagram) are read; a header not complete within them is treated
    as absent.

    Args:
        message: The message as bytes, or as text (encoded as UTF-8 to scan).

    Returns:
        The id, or None if the head has no such header.

    Raises:
        InvalidSimulationResultId: The header is present but malformed.
        TypeError: ``message`` is not text or bytes.

    Example:
        >>> from roost.ids import from_sip_invite
        >>> from_sip_invite(
        ...     "INVITE sip:support@agent.example.com SIP/2.0\\r\\n"
        ...     "f: <sip:dh@bluejay.example>;tag=1\\r\\n"
        ...     "x-simulation-result-id:   720488\\r\\n"
        ...     "X-Call-Type: SIP\\r\\n"
        ...     "c: application/sdp\\r\\n\\r\\n"
        ...     "v=0\\r\\n"
        ... )
        '720488'
    """
    if not isinstance(message, TEXT):
        raise TypeError(wrong_type("from_sip_invite", "a SIP message (str or bytes)", message))
    return finish("sip", read_sip(message, b"x-simulation-result-id", HEADER_NAME))


def from_headers(headers: object, *, name: str = HEADER_NAME) -> str | None:
    """Read the id from a collection of HTTP (or SIP) headers.

    Accepted: a ``dict`` with keys in any case; a list or tuple of
    ``(name, value)`` pairs of ``str`` or ``bytes``, or of ``{"name", "value"}``
    objects; ``websockets`` headers (``ws.request.headers``), read through
    ``raw_items()`` so repeated headers do not raise; Starlette and httpx headers,
    read from their raw bytes; ``email.message.Message`` and ``http.client`` /
    ``http.server`` headers; werkzeug and other multidicts; a request object with
    a ``headers`` attribute; a raw head as text or bytes (scanned like
    :func:`from_sip_invite`). Bytes are decoded as UTF-8; values that a library
    decoded as ISO-8859-1 (WSGI, ``http.client``) are re-read as UTF-8.

    Args:
        headers: The header collection.
        name: The header to read; the default is ``X-Simulation-Result-Id``.

    Returns:
        The id, or None if no such header is present.

    Raises:
        InvalidSimulationResultId: The header is present but malformed.
        TypeError: ``headers`` is not a header collection.

    Example:
        >>> from roost.ids import from_headers
        >>> from_headers([(b"host", b"agent.example.com"), (b"x-simulation-result-id", b"7")])
        '7'
    """
    names = frozenset({name.lower()})
    if isinstance(headers, TEXT):
        token = name.lower().encode("ascii", "replace")
        return finish("headers", read_sip(headers, token, name))
    found = read_headers(headers, names, "from_headers")
    return finish("headers", found)


def from_asgi_scope(scope: Mapping[str, Any]) -> str | None:
    """Read the id from an ASGI HTTP or WebSocket connection scope.

    Args:
        scope: The scope an ASGI server passed to the app (a Starlette ``Request``
            or ``WebSocket`` works too: both are mappings over their scope).

    Returns:
        The id, or None if the request has no ``X-Simulation-Result-Id`` header.

    Raises:
        InvalidSimulationResultId: The header is present but malformed.
        TypeError: ``scope`` is not an HTTP or WebSocket scope.

    Example:
        >>> from roost.ids import from_asgi_scope
        >>> from_asgi_scope({"type": "websocket", "headers": [(b"x-simulation-result-id", b"9")]})
        '9'
    """
    if not isinstance(scope, Mapping) or scope.get("type") not in ("http", "websocket"):
        raise TypeError(wrong_type("from_asgi_scope", "an ASGI http or websocket scope", scope))
    return finish("asgi", read_asgi(scope, strict="from_asgi_scope"))


def from_wsgi_environ(environ: Mapping[str, Any]) -> str | None:
    """Read the id from a WSGI environ (``HTTP_X_SIMULATION_RESULT_ID``).

    WSGI servers hand header values over as ISO-8859-1 text (PEP 3333); a value
    that is valid UTF-8 once re-encoded is read as UTF-8.

    Args:
        environ: The WSGI environ (Django's ``request.META`` is one).

    Returns:
        The id, or None if the request has no such header.

    Raises:
        InvalidSimulationResultId: The header is present but malformed.
        TypeError: ``environ`` is not a mapping.

    Example:
        >>> from roost.ids import from_wsgi_environ
        >>> from_wsgi_environ({"REQUEST_METHOD": "GET", "HTTP_X_SIMULATION_RESULT_ID": "5"})
        '5'
    """
    if not isinstance(environ, Mapping):
        raise TypeError(wrong_type("from_wsgi_environ", "a WSGI environ mapping", environ))
    return finish("wsgi", read_wsgi(environ))


def from_twilio_params(params: object) -> str | None:
    """Read the id from the parameters of a Twilio voice webhook.

    For a call to a Twilio SIP Domain, Twilio passes each X- header of the INVITE
    to the VoiceUrl as ``SipHeader_<name>``
    (https://www.twilio.com/docs/voice/api/sip-twiml).

    Args:
        params: The form parameters: a mapping or multidict (Starlette ``FormData``,
            werkzeug ``MultiDict``), a list of pairs, or the raw
            ``application/x-www-form-urlencoded`` body as text or bytes.

    Returns:
        The id, or None if there is no ``SipHeader_X-Simulation-Result-Id``.

    Raises:
        InvalidSimulationResultId: The parameter is present but malformed.
        TypeError: ``params`` is none of the above.

    Example:
        >>> from roost.ids import from_twilio_params
        >>> from_twilio_params("CallSid=CA1&SipHeader_X-Simulation-Result-Id=720488")
        '720488'
    """
    if isinstance(params, TEXT):
        data = params.encode("utf-8", "surrogatepass") if isinstance(params, str) else params
        return finish("twilio", first(form_pairs(bytes(data)), TWILIO_NAMES, "parameter"))
    found = read_headers(params, TWILIO_NAMES, "from_twilio_params", "parameter")
    return finish("twilio", found)


def from_livekit_attributes(participant: object, *, attribute: str = HEADER_NAME) -> str | None:
    """Read the id from the attributes of a LiveKit SIP participant.

    LiveKit drops SIP headers unless the inbound trunk maps them: with
    ``headers_to_attributes={"X-Simulation-Result-Id": attribute}`` the id is in
    the attribute you named; with ``include_headers=SIP_X_HEADERS`` it is in
    ``sip.h.x-simulation-result-id``. The named attribute is preferred.

    Args:
        participant: A participant (anything with an ``attributes`` mapping, such
            as ``livekit.rtc.RemoteParticipant``) or the attributes mapping itself.
        attribute: The attribute name your trunk's ``headers_to_attributes`` maps
            the header to.

    Returns:
        The id, or None if neither attribute is set.

    Raises:
        InvalidSimulationResultId: The attribute is present but malformed.
        TypeError: ``participant`` has no attributes mapping.

    Example:
        >>> from roost.ids import from_livekit_attributes
        >>> from_livekit_attributes({"sip.callID": "SCL_1", "sip.h.x-simulation-result-id": "8"})
        '8'
    """
    attributes = participant if isinstance(participant, Mapping) else None
    if attributes is None:
        attributes = getattr(participant, "attributes", None)
    if not isinstance(attributes, Mapping):
        raise TypeError(
            wrong_type("from_livekit_attributes", "a participant or its attributes", participant)
        )
    return finish("livekit-attributes", read_livekit(attributes, attribute))


def from_livekit_metadata(metadata: object) -> str | None:
    """Read the id from the metadata of a LiveKit agent job.

    When the platform dispatches a LiveKit agent itself, the job metadata is a
    JSON object with ``X-Simulation-Result-Id`` (and ``X-Agent-Id``). Metadata that
    is empty or not a JSON object carries no id.

    Args:
        metadata: ``ctx.job.metadata`` (JSON text), the parsed object, or the job
            (anything with a ``metadata`` attribute).

    Returns:
        The id, or None if the metadata has none.

    Raises:
        InvalidSimulationResultId: The key is present but malformed.
        TypeError: ``metadata`` is none of the above.

    Example:
        >>> from roost.ids import from_livekit_metadata
        >>> from_livekit_metadata('{"X-Simulation-Result-Id": "720488", "X-Agent-Id": "12"}')
        '720488'
    """
    if not isinstance(metadata, (*TEXT, Mapping)):
        inner = getattr(metadata, "metadata", None)
        if isinstance(inner, (*TEXT, Mapping)):
            metadata = inner
    document = as_document(metadata, "from_livekit_metadata")
    if document is None:
        return finish("livekit-metadata", None)
    return finish("livekit-metadata", first(pairs(document), HEADER_NAMES, "metadata key"))


def from_vapi(message: object) -> str | None:
    """Read the id from a Vapi server message.

    Vapi turns each ``x-`` SIP header of a call to a Vapi SIP URI into an assistant
    variable, without the prefix (https://docs.vapi.ai/advanced/sip). Looked up, in
    order: ``message.assistant.variableValues``,
    ``message.call.assistantOverrides.variableValues``, the same paths without the
    ``message`` wrapper, then the mapping itself as ``variableValues``; the variable
    may be spelt ``simulation-result-id``, ``simulation_result_id`` or with ``x-``.

    Args:
        message: The webhook body (``{"message": {...}}``), the message (e.g. an
            ``end-of-call-report``), ``message.assistant``, or ``variableValues``;
            a mapping, a pydantic model or JSON text.

    Returns:
        The id, or None if no such variable is set.

    Raises:
        InvalidSimulationResultId: The variable is present but malformed.
        TypeError: ``message`` is none of the above.

    Example:
        >>> from roost.ids import from_vapi
        >>> report = {"message": {"type": "end-of-call-report",
        ...     "assistant": {"variableValues": {"simulation-result-id": "720488"}}}}
        >>> from_vapi(report)
        '720488'
    """
    return _from_document("vapi", "from_vapi", message, VAPI_PATHS, VARIABLE_NAMES)


def from_retell(call: object) -> str | None:
    """Read the id from a Retell call object or call webhook.

    Retell puts the X- headers of an inbound SIP call into ``call.custom_sip_headers``
    with the ``X-`` removed, and adds them to the call's dynamic variables
    (https://docs.retellai.com/build/telephony/sip-headers). Looked up, in order:
    ``call.custom_sip_headers``, ``custom_sip_headers``,
    ``call.retell_llm_dynamic_variables``, ``retell_llm_dynamic_variables``, then
    the mapping itself.

    Args:
        call: A call webhook body (``{"event": ..., "call": {...}}``), the call object,
            or ``custom_sip_headers``; a mapping, a pydantic model or JSON text.

    Returns:
        The id, or None if the call has none.

    Raises:
        InvalidSimulationResultId: The header is present but malformed.
        TypeError: ``call`` is none of the above.

    Example:
        >>> from roost.ids import from_retell
        >>> from_retell({"event": "call_started",
        ...     "call": {"call_id": "c1", "custom_sip_headers": {"simulation-result-id": "42"}}})
        '42'
    """
    return _from_document("retell", "from_retell", call, RETELL_PATHS, VARIABLE_NAMES)


def from_bland(data: object) -> str | None:
    """Read the id from Bland call variables.

    Bland turns every X- header of an inbound call into a variable named
    ``sip_header_`` plus the lower-cased header name
    (https://docs.bland.ai/agents/sip-headers).

    Args:
        data: A webhook or call-details body with ``variables``, or the variables
            mapping itself; a mapping, a pydantic model or JSON text.

    Returns:
        The id, or None if the variable is not set.

    Raises:
        InvalidSimulationResultId: The variable is present but malformed.
        TypeError: ``data`` is none of the above.

    Example:
        >>> from roost.ids import from_bland
        >>> from_bland({"call_id": "b1", "variables": {"sip_header_x-simulation-result-id": "3"}})
        '3'
    """
    return _from_document("bland", "from_bland", data, BLAND_PATHS, BLAND_NAMES)


def from_daily_dialin(body: object) -> str | None:
    """Read the id from a Daily pinless dial-in (or Pipecat dial-in) payload.

    Daily's ``room_creation_api`` webhook carries the INVITE's headers in
    ``sipHeaders``; Pipecat's runner passes them on as
    ``dialin_settings.sip_headers``.

    Args:
        body: The webhook body, the Pipecat runner body, its ``dialin_settings``, or
            the headers mapping itself; a mapping, a pydantic model or JSON text.

    Returns:
        The id, or None if the headers have none.

    Raises:
        InvalidSimulationResultId: The header is present but malformed.
        TypeError: ``body`` is none of the above.

    Example:
        >>> from roost.ids import from_daily_dialin
        >>> from_daily_dialin({"To": "+15550100", "From": "+15550199", "callId": "c",
        ...     "callDomain": "d", "sipHeaders": {"X-Simulation-Result-Id": "11"}})
        '11'
    """
    return _from_document("daily", "from_daily_dialin", body, DAILY_PATHS, HEADER_NAMES)


def from_openai_sip(event: object) -> str | None:
    """Read the id from an OpenAI Realtime SIP ``realtime.call.incoming`` webhook.

    The event lists the INVITE's headers as ``data.sip_headers``, a list of
    ``{"name", "value"}`` objects
    (https://platform.openai.com/docs/guides/realtime-sip).

    Args:
        event: The whole event, its ``data``, or the ``sip_headers`` list; a mapping,
            a list, an OpenAI SDK model or JSON text.

    Returns:
        The id, or None if the INVITE had no such header.

    Raises:
        InvalidSimulationResultId: The header is present but malformed.
        TypeError: ``event`` is none of the above.

    Example:
        >>> from roost.ids import from_openai_sip
        >>> from_openai_sip({"type": "realtime.call.incoming", "data": {"call_id": "rtc_1",
        ...     "sip_headers": [{"name": "X-Simulation-Result-Id", "value": "720488"}]}})
        '720488'
    """
    if isinstance(event, list | tuple):
        return finish("openai", read_headers(event, HEADER_NAMES, "from_openai_sip"))
    return _from_document("openai", "from_openai_sip", event, OPENAI_PATHS, HEADER_NAMES)


def from_freeswitch(event: object) -> str | None:
    """Read the id from FreeSWITCH channel variables.

    mod_sofia stores each inbound X- header as the channel variable
    ``sip_h_X-Simulation-Result-Id``; events show it as
    ``variable_sip_h_X-Simulation-Result-Id``. The ``variable_`` form is preferred.

    Args:
        event: An event as text or bytes in ESL ``plain`` format (values are
            URL-encoded; a leading ``Content-Type: text/event-plain`` envelope is
            skipped) or ``json`` format; a mapping or list of pairs (e.g.
            greenswitch's ``event.headers``); or an ``ESLevent`` (anything with
            ``getHeader``).

    Returns:
        The id, or None if the channel has no such variable.

    Raises:
        InvalidSimulationResultId: The variable is present but malformed.
        TypeError: ``event`` is none of the above.

    Example:
        >>> from roost.ids import from_freeswitch
        >>> from_freeswitch("Event-Name: CHANNEL_PARK\\n"
        ...     "variable_sip_h_X-Simulation-Result-Id: 720488\\n")
        '720488'
    """
    if isinstance(event, TEXT) and not is_json_text(event):
        return finish("freeswitch", read_esl(event))
    get_header = getattr(event, "getHeader", None)
    if callable(get_header) and not isinstance(event, Mapping):
        for name in ("variable_sip_h_" + HEADER_NAME, "sip_h_" + HEADER_NAME):
            value = get_header(name)
            if value is not None:
                return finish("freeswitch", Found(f"FreeSWITCH header {name!r}", value))
        return finish("freeswitch", None)
    if isinstance(event, list | tuple):
        document: object = event
    else:
        document = as_document(event, "from_freeswitch")
        if document is None:
            return finish("freeswitch", None)
    for name in FREESWITCH_NAMES:
        found = first(pairs(document), frozenset({name}), "FreeSWITCH variable")
        if found is not None:
            return finish("freeswitch", found)
    return finish("freeswitch", None)


# Detection


def _detect(carrier: object) -> tuple[str, Found | None]:
    if isinstance(carrier, TEXT):
        if is_json_text(carrier):
            document = json_object(carrier)
            return ("json", None) if document is None else _detect_mapping(document)
        return "sip", read_sip(carrier, b"x-simulation-result-id", HEADER_NAME)
    if type(carrier) is dict:
        return _detect_mapping(carrier)
    headers = getattr(carrier, "headers", None)
    if headers is not None and not callable(headers):
        return "headers", read_headers(headers, HEADER_NAMES, "extract_simulation_result_id")
    dumped = model_dump(carrier)
    if dumped is not None:
        return _detect_mapping(dumped)
    if has_multi_value_api(carrier):
        return "headers", read_headers(carrier, ANY_NAMES, "extract_simulation_result_id")
    if isinstance(carrier, Mapping):
        return _detect_mapping(carrier)
    attributes = getattr(carrier, "attributes", None)
    if isinstance(attributes, Mapping):
        return "livekit-attributes", read_livekit(attributes, HEADER_NAME)
    if callable(getattr(carrier, "items", None)) or isinstance(carrier, list | tuple):
        return "headers", read_headers(carrier, ANY_NAMES, "extract_simulation_result_id")
    raise TypeError(
        wrong_type(
            "extract_simulation_result_id",
            "a SIP message, headers, an ASGI scope, a request, a LiveKit participant "
            "or a webhook payload",
            carrier,
        )
    )


def _detect_mapping(document: Mapping[Any, Any]) -> tuple[str, Found | None]:
    if get(document, "type") in ("http", "websocket") and isinstance(
        get(document, "headers"), list | tuple
    ):
        return "asgi", read_asgi(document, strict=None)
    if "wsgi.version" in document or "HTTP_X_SIMULATION_RESULT_ID" in document:
        return "wsgi", read_wsgi(document)
    kind, found = walk(document, AUTO_PATHS)
    if found is None:
        found = first(pairs(document), ANY_NAMES, "key")
    return kind or "mapping", found


def _from_document(
    kind: str,
    function: str,
    carrier: object,
    paths: tuple[Path, ...],
    names: frozenset[str],
) -> str | None:
    document = as_document(carrier, function)
    if document is None:
        return finish(kind, None)
    _, found = walk(document, paths)
    if found is None:
        found = first(pairs(document), names, "key")
    return finish(kind, found)
