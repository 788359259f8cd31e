"""Id extraction from what real senders put on real sockets.

tests/test_ids.py feeds each carrier a written sample; here the same ids travel
through the software an agent actually sits behind: SIPp sends its INVITE over
UDP and TCP to a socket of ours, uvicorn serves a Starlette app (HTTP headers,
the ASGI scope, a Twilio-style form webhook, a WebSocket upgrade), the
``websockets`` server hands over its request headers, and ``wsgiref`` builds a
WSGI environ. Everything binds 127.0.0.1 on kernel-chosen ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from roost.ids import (
    InvalidSimulationResultId,
    extract_simulation_result_id,
    from_asgi_scope,
    from_headers,
    from_sip_invite,
    from_twilio_params,
    from_wsgi_environ,
)
from tests.sip.sipp import Sipp

CARRIERS = Path(__file__).parent / "fixtures" / "carriers"
ID = "720488"
# Header values travel as bytes; servers decode them as ISO-8859-1, so a UTF-8
# id comes out garbled unless the extractor re-reads the raw bytes.
UTF8_ID = "résa-720488"

# -- SIPp ---------------------------------------------------------------------------


@pytest.fixture
async def sipp(tmp_path: Path) -> AsyncIterator[Sipp]:
    runner = Sipp(tmp_path)
    yield runner
    await runner.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.received: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.received.put_nowait(data)


async def first_udp_invite(sipp: Sipp, scenario: Path, simid: str) -> bytes:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(
        _Datagrams, local_addr=("127.0.0.1", 0)
    )
    try:
        port = transport.get_extra_info("sockname")[1]
        # uac_xhdr.xml names an rtp_stream file that SIPp opens when it loads the
        # scenario; the call is never answered, so silence is enough.
        (sipp.run_folder() / "audio.ulaw").write_bytes(b"\xff" * 160)
        uac = await sipp.start(
            scenario, remote=f"127.0.0.1:{port}", keys={"simid": simid}, extra=["-s", "agent"]
        )
        try:
            return await asyncio.wait_for(protocol.received.get(), 60)
        except TimeoutError:
            uac.kill()
            raise AssertionError((await uac.wait()).describe()) from None
    finally:
        transport.close()


async def first_tcp_invite(sipp: Sipp, scenario: Path, simid: str) -> bytes:
    messages: asyncio.Queue[bytes] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Read one whole message: the head, then Content-Length (or "l:") bytes.
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() in (b"content-length", b"l"):
                length = int(value)
        messages.put_nowait(head + await reader.readexactly(length))
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        (sipp.run_folder() / "audio.ulaw").write_bytes(b"\xff" * 160)
        uac = await sipp.start(
            scenario,
            remote=f"127.0.0.1:{port}",
            transport="tcp",
            keys={"simid": simid},
            extra=["-s", "agent"],
        )
        try:
            return await asyncio.wait_for(messages.get(), 60)
        except TimeoutError:
            uac.kill()
            raise AssertionError((await uac.wait()).describe()) from None
    finally:
        server.close()


@pytest.mark.sipp
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_sipp_invite(sipp: Sipp, transport: str) -> None:
    receive = first_udp_invite if transport == "udp" else first_tcp_invite
    invite = await receive(sipp, CARRIERS / "uac_xhdr.xml", ID)
    assert invite.startswith(b"INVITE sip:agent@127.0.0.1:"), invite
    assert b"\r\n\r\nv=0\r\n" in invite  # SIPp sent the SDP body as well
    assert from_sip_invite(invite) == ID
    assert extract_simulation_result_id(invite) == ID
    assert extract_simulation_result_id(invite.decode("utf-8")) == ID


@pytest.mark.sipp
async def test_sipp_invite_in_compact_form(sipp: Sipp) -> None:
    invite = await first_udp_invite(sipp, CARRIERS / "uac_compact.xml", ID)
    assert b"\r\ni: " in invite and b"\r\nx-simulation-result-id: 720488\r\n" in invite
    assert from_sip_invite(invite) == ID


@pytest.mark.sipp
async def test_sipp_invite_with_a_malformed_id(sipp: Sipp) -> None:
    # SIPp sends exactly what -key gives it: an id 129 characters long.
    invite = await first_udp_invite(sipp, CARRIERS / "uac_xhdr.xml", "9" * 129)
    with pytest.raises(InvalidSimulationResultId) as caught:
        from_sip_invite(invite)
    assert caught.value.reason == "too_long"
    assert "129" in str(caught.value)


# -- uvicorn + Starlette ------------------------------------------------------------


def _ids(**readers: Callable[[], str | None]) -> JSONResponse:
    """Run each extractor; a malformed id becomes a 400 naming what was wrong."""
    try:
        return JSONResponse({name: read() for name, read in readers.items()})
    except InvalidSimulationResultId as exc:
        return JSONResponse({"error": exc.reason, "detail": str(exc)}, status_code=400)


async def call_started(request: Request) -> JSONResponse:
    return _ids(
        headers=lambda: from_headers(request.headers),
        scope=lambda: from_asgi_scope(request.scope),
        request=lambda: extract_simulation_result_id(request),
        detected=lambda: extract_simulation_result_id(request.headers),
    )


async def twilio_webhook(request: Request) -> JSONResponse:
    # Starlette's request.form() needs python-multipart; the SDK takes the raw
    # body or the parsed parameters, so both are checked without it.
    body = await request.body()
    params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return _ids(params=lambda: from_twilio_params(params), body=lambda: from_twilio_params(body))


async def media_stream(websocket: WebSocket) -> None:
    await websocket.accept()
    found = {
        "scope": from_asgi_scope(websocket.scope),
        "headers": from_headers(websocket.headers),
    }
    await websocket.send_text(json.dumps(found))
    await websocket.close()


APP = Starlette(
    routes=[
        Route("/call-started", call_started, methods=["POST"]),
        Route("/twilio/voice", twilio_webhook, methods=["POST"]),
        WebSocketRoute("/media", media_stream),
    ]
)


@contextlib.asynccontextmanager
async def uvicorn_serving(app: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_level="warning", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if task.done():
                    task.result()  # startup failed: raise its error here
                await asyncio.sleep(0.01)
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)
        sock.close()


async def test_http_headers_through_uvicorn() -> None:
    async with uvicorn_serving(APP) as host, httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"http://{host}/call-started", headers={"X-Simulation-Result-Id": ID}, json={}
        )
        assert answer.json() == dict.fromkeys(["headers", "scope", "request", "detected"], ID)

        raw = [(b"x-simulation-result-id", UTF8_ID.encode())]
        answer = await client.post(f"http://{host}/call-started", headers=raw, json={})
        assert answer.json() == dict.fromkeys(["headers", "scope", "request", "detected"], UTF8_ID)

        answer = await client.post(f"http://{host}/call-started", json={})
        assert answer.json() == dict.fromkeys(["headers", "scope", "request", "detected"], None)

        # (HTTP servers refuse control characters in header values themselves.)
        answer = await client.post(
            f"http://{host}/call-started", headers={"X-Simulation-Result-Id": "7" * 129}, json={}
        )
        assert answer.status_code == 400
        assert answer.json()["error"] == "too_long"
        assert "129 characters long" in answer.json()["detail"]


async def test_twilio_form_webhook_through_uvicorn() -> None:
    # The parameters Twilio posts for an inbound SIP call that carried the header.
    form = {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": "CA" + "1" * 32,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": "sip:dh@bluejay.example",
        "To": "sip:support@agent.sip.twilio.com",
        "SipHeader_X-Simulation-Result-Id": UTF8_ID,
        "SipHeader_X-Call-Type": "SIP",
    }
    async with uvicorn_serving(APP) as host, httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(f"http://{host}/twilio/voice", data=form)
    assert answer.json() == {"params": UTF8_ID, "body": UTF8_ID}


async def test_websocket_upgrade_through_uvicorn() -> None:
    async with (
        uvicorn_serving(APP) as host,
        connect(f"ws://{host}/media", additional_headers={"X-Simulation-Result-Id": ID}) as ws,
    ):
        found = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert found == {"scope": ID, "headers": ID}


# -- the websockets server ----------------------------------------------------------


async def test_websockets_server_request_headers() -> None:
    async def handler(connection: ServerConnection) -> None:
        assert connection.request is not None
        headers = connection.request.headers
        await connection.send(
            json.dumps([from_headers(headers), extract_simulation_result_id(headers)])
        )

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        extra = [("X-Simulation-Result-Id", ID), ("X-Simulation-Result-Id", "second")]
        async with connect(f"ws://127.0.0.1:{port}", additional_headers=extra) as ws:
            found = json.loads(await asyncio.wait_for(ws.recv(), 30))
    assert found == [ID, ID]  # a repeated header: the first wins, nothing raises


# -- WSGI (wsgiref) -----------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    try:
        body = json.dumps({"environ": from_wsgi_environ(environ)})
        status = "200 OK"
    except InvalidSimulationResultId as exc:
        body, status = json.dumps({"error": exc.reason}), "400 Bad Request"
    start_response(status, [("Content-Type", "application/json")])
    return [body.encode()]


@contextlib.contextmanager
def wsgi_serving() -> Iterator[str]:
    server: WSGIServer = make_server("127.0.0.1", 0, wsgi_app, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(30)


def test_wsgi_environ_through_wsgiref() -> None:
    with wsgi_serving() as host, httpx.Client(timeout=30) as client:
        plain = client.get(f"http://{host}/", headers={"X-Simulation-Result-Id": ID})
        utf8 = client.get(
            f"http://{host}/", headers=[(b"x-simulation-result-id", UTF8_ID.encode())]
        )
        blank = client.get(f"http://{host}/", headers={"X-Simulation-Result-Id": ""})
    assert plain.json() == {"environ": ID}
    assert utf8.json() == {"environ": UTF8_ID}
    assert blank.status_code == 400 and blank.json() == {"error": "empty"}
