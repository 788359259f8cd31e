"""SipTransport: the sans-I/O core on real UDP and TCP sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable

import pytest

from roost.sip import (
    CallAnswered,
    CallEnded,
    CoreConfig,
    Event,
    IncomingCall,
    SipTransport,
    TimerConfig,
    make_offer,
    parse_message,
)
from roost.sip.message import SipRequest

WAIT = 30.0  # generous: CI runs two workers and other suites share the machine


class Collector:
    """Events of one transport, with a way to wait for a kind."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def wait_for(self, kind: type, count: int = 1) -> list[Event]:
        async def wait() -> list[Event]:
            while True:
                found = [e for e in self.events if isinstance(e, kind)]
                if len(found) >= count:
                    return found
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(wait(), WAIT)


def answering(transport: SipTransport) -> Callable[[Event], None]:
    """An on_incoming callback that answers at once with an RTP port that is never used."""

    def on_incoming(event: Event) -> None:
        assert isinstance(event, IncomingCall)
        transport.core.answer(event.call, transport.now(), rtp=("127.0.0.1", 40000))

    return on_incoming


@contextlib.asynccontextmanager
async def transport_pair() -> AsyncIterator[tuple[SipTransport, SipTransport, Collector]]:
    """A caller (its events collected) and an agent that answers, both bound."""
    caller = SipTransport(CoreConfig(host="127.0.0.1", port=0))
    collected = Collector()
    caller.on_event = collected
    agent = SipTransport(CoreConfig(host="127.0.0.1", port=0, user="agent"))
    agent.on_incoming = answering(agent)
    async with caller, agent:
        yield caller, agent, collected


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SipTransport, SipTransport, Collector]]:
    async with transport_pair() as transports:
        yield transports


@pytest.mark.parametrize("transport_name", ["udp", "tcp"])
async def test_a_call_is_set_up_and_torn_down_over_real_sockets(
    pair: tuple[SipTransport, SipTransport, Collector], transport_name: str
) -> None:
    caller, agent, events = pair
    agent_events = Collector()
    agent.on_event = agent_events
    suffix = ";transport=tcp" if transport_name == "tcp" else ""
    target = f"sip:agent@127.0.0.1:{agent.tcp_port if suffix else agent.port}{suffix}"
    call = caller.core.invite(
        target,
        caller.now(),
        sdp=make_offer("127.0.0.1", 40002),
        headers=[("X-Simulation-Result-Id", "sim-7")],
    )
    caller.pump()
    (answered,) = await events.wait_for(CallAnswered)
    assert isinstance(answered, CallAnswered) and answered.call is call
    assert call.peer.transport == transport_name.upper()
    (incoming,) = agent.core.calls
    assert incoming.invite.headers.get("x-simulation-result-id") == "sim-7"
    caller.core.hangup(call, caller.now())
    caller.pump()
    (ended,) = await events.wait_for(CallEnded)
    assert isinstance(ended, CallEnded) and ended.reason.ended_by == "local"
    (agent_end,) = await agent_events.wait_for(CallEnded)
    assert isinstance(agent_end, CallEnded) and agent_end.reason.ended_by == "remote"
    assert call.bye_status in (None, 200)


async def test_udp_retransmissions_follow_the_core_timers_until_timer_b() -> None:
    # A peer that reads and never answers: every INVITE copy it gets was
    # scheduled by the core's Timer A through loop.call_at.
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    silent.setblocking(False)
    port = silent.getsockname()[1]
    events = Collector()
    timers = TimerConfig(t1=0.02, t2=0.08, t4=0.1, timer_d=0.0)
    transport = SipTransport(CoreConfig(host="127.0.0.1", port=0, timers=timers), on_event=events)
    loop = asyncio.get_running_loop()
    try:
        async with transport:
            call = transport.core.invite(f"sip:agent@127.0.0.1:{port}", transport.now())
            transport.pump()
            (ended,) = await events.wait_for(CallEnded)
            assert isinstance(ended, CallEnded) and ended.call is call
            assert ended.reason.error_code == "SIP_DIAL_FAILED"
            assert "Timer B" in ended.reason.detail
            copies = []
            while True:
                try:
                    copies.append(await asyncio.wait_for(loop.sock_recv(silent, 65535), 0.5))
                except TimeoutError:
                    break
    finally:
        silent.close()
    # Timer A doubles from T1 until Timer B (64*T1): 1 + 6 retransmissions.
    assert len(copies) == 7
    assert len(set(copies)) == 1
    assert isinstance(parse_message(copies[0]), SipRequest)


async def test_a_malformed_datagram_is_answered_400_and_the_transport_keeps_working(
    pair: tuple[SipTransport, SipTransport, Collector],
) -> None:
    caller, agent, events = pair
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    try:
        bad = (
            b"INVITE sip:agent@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx\r\n"
            b"CSeq: not-a-number INVITE\r\n"
            b"Call-ID: c1\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        await loop.sock_sendto(sock, bad, ("127.0.0.1", agent.port))
        reply = await asyncio.wait_for(loop.sock_recv(sock, 65535), WAIT)
        # The 400 echoes the bad CSeq (RFC 3261 §8.2.6.2), so only its start line is checked.
        assert reply.startswith(b"SIP/2.0 400 ")
    finally:
        sock.close()
    caller.core.invite(
        f"sip:agent@127.0.0.1:{agent.port}", caller.now(), sdp=make_offer("127.0.0.1", 1)
    )
    caller.pump()
    await events.wait_for(CallAnswered)


async def test_tcp_stream_split_anywhere_is_framed_by_content_length() -> None:
    events = Collector()
    agent = SipTransport(CoreConfig(host="127.0.0.1", port=0), transports=("tcp",))
    agent.on_incoming = events
    async with agent:
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.tcp_port)
        try:
            sdp = make_offer("127.0.0.1", 40000).to_bytes()
            head = (
                "INVITE sip:agent@127.0.0.1 SIP/2.0\r\n"
                "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKsplit1\r\n"
                "From: <sip:dh@127.0.0.1>;tag=abc\r\nTo: <sip:agent@127.0.0.1>\r\n"
                "Call-ID: split-1\r\nCSeq: 1 INVITE\r\nContact: <sip:dh@127.0.0.1:5999>\r\n"
                "X-Simulation-Result-Id: split-42\r\nContent-Type: application/sdp\r\n"
                f"Content-Length: {len(sdp)}\r\n\r\n"
            ).encode()
            wire = head + sdp
            for i in range(0, len(wire), 37):  # chunks cut through lines and body
                writer.write(wire[i : i + 37])
                await writer.drain()
            (incoming,) = await events.wait_for(IncomingCall)
            assert isinstance(incoming, IncomingCall)
            assert incoming.request.headers.get("X-Simulation-Result-Id") == "split-42"
            assert incoming.offer is not None
            trying = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
            assert trying.startswith(b"SIP/2.0 100 ")
        finally:
            writer.close()


async def test_tcp_garbage_gets_the_connection_closed() -> None:
    agent = SipTransport(CoreConfig(host="127.0.0.1", port=0), transports=("tcp",))
    async with agent:
        reader, writer = await asyncio.open_connection("127.0.0.1", agent.tcp_port)
        try:
            writer.write(b"\x00\x01 this is not SIP at all\r\n" * 4 + b"\r\n\r\n")
            await writer.drain()
            data = await asyncio.wait_for(reader.read(), WAIT)  # until the agent closes
            assert b"SIP/2.0 2" not in data
        finally:
            writer.close()


async def test_a_refused_tcp_connect_fails_the_call_at_once() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # nobody listens there any more
    events = Collector()
    async with SipTransport(CoreConfig(host="127.0.0.1", port=0), on_event=events) as transport:
        transport.core.invite(f"sip:agent@127.0.0.1:{port};transport=tcp", transport.now())
        transport.pump()
        (ended,) = await events.wait_for(CallEnded)
        assert isinstance(ended, CallEnded)
        assert ended.reason.error_code == "SIP_DIAL_FAILED"
        assert "TCP connect failed" in ended.reason.detail


async def test_bad_transport_names_are_refused() -> None:
    with pytest.raises(ValueError, match="transports"):
        SipTransport(CoreConfig(host="127.0.0.1"), transports=("sctp",))


def test_a_tcp_call_works_on_uvloop() -> None:
    # uvloop's transports are not asyncio.Transport subclasses; an agent that
    # runs on uvloop (as uvicorn picks it when installed) must still talk TCP.
    uvloop = pytest.importorskip("uvloop")

    async def call_over_tcp() -> str:
        async with transport_pair() as (caller, agent, events):
            call = caller.core.invite(
                f"sip:agent@127.0.0.1:{agent.tcp_port};transport=tcp",
                caller.now(),
                sdp=make_offer("127.0.0.1", 40002),
            )
            caller.pump()
            (answered,) = await events.wait_for(CallAnswered)
            assert isinstance(answered, CallAnswered) and answered.call is call
            caller.core.hangup(call, caller.now())
            caller.pump()
            await events.wait_for(CallEnded)
            return call.peer.transport

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        assert runner.run(call_over_tcp()) == "TCP"
