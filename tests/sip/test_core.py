"""Two SIP cores connected by the in-memory network: full call flows, no sockets."""

from __future__ import annotations

import pytest

from roost.caller.driver import CallStatus, FailureBucket
from roost.sip import (
    CallAnswered,
    CallConfirmed,
    CallEnded,
    CallProgress,
    CallState,
    Credentials,
    DigestServer,
    IncomingCall,
    MalformedInput,
    OptionsResult,
    Peer,
    RequestRejected,
    SessionUpdated,
    SipStateError,
    make_offer,
    parse_message,
)
from roost.sip.events import Event

from .harness import Network, Node

AGENT = "sip:agent@127.0.0.1:5090"
AGENT_CONTACT = "sip:roost@127.0.0.1:5090"  # in-dialog requests go to the Contact
HEADERS = [("X-Simulation-Result-Id", "720488"), ("X-Call-Type", "SIP"), ("X-Extra", "a b")]


def auto_answer(*, ring: bool = True, delay: float = 0.2, net: Network) -> object:
    """UAS behaviour: ring at once, answer after ``delay`` with RTP port 50000."""

    def on_event(node: Node, event: Event, now: float) -> None:
        if isinstance(event, IncomingCall):
            call = event.call
            if ring:
                node.core.ring(call, now)

            def answer(t: float) -> None:
                if call.state is CallState.INCOMING:
                    node.core.answer(call, t, rtp=("127.0.0.1", 50000))

            net.at(now + delay, answer)

    return on_event


def setup(net: Network, **agent_config: object) -> tuple[Node, Node]:
    caller = net.add("127.0.0.1", 5062)
    agent = net.add("127.0.0.1", 5090, **agent_config)
    return caller, agent


def place(net: Network, caller: Node, target: str = AGENT, **kwargs: object):  # type: ignore[no-untyped-def]
    offer = make_offer("127.0.0.1", 40000, session_id=1)
    return caller.core.invite(target, net.now, sdp=offer, headers=HEADERS, **kwargs)  # type: ignore[arg-type]


def ended(node: Node) -> list[CallEnded]:
    return node.of(CallEnded)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_full_call_caller_hangs_up(transport: str) -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    target = AGENT if transport == "udp" else AGENT + ";transport=tcp"
    call = place(net, caller, target)
    net.run(5.0, stop=lambda: bool(caller.of(CallAnswered)) and bool(agent.of(CallConfirmed)))

    incoming = agent.of(IncomingCall)[0]
    headers = incoming.request.headers
    assert headers.get("x-simulation-result-id") == "720488"
    assert headers.get("X-CALL-TYPE") == "SIP"
    assert [n for n, _ in headers if n.startswith("X-")] == [
        "X-Simulation-Result-Id",
        "X-Call-Type",
        "X-Extra",
    ]
    assert [p.status for p in caller.of(CallProgress)] == [100, 180]
    answered = caller.of(CallAnswered)[0]
    assert answered.media is not None and answered.media.codec == "PCMU"
    assert answered.media.remote == ("127.0.0.1", 50000)
    assert incoming.call.media is not None and incoming.call.media.remote == ("127.0.0.1", 40000)
    assert call.state is CallState.CONFIRMED and incoming.call.state is CallState.CONFIRMED
    assert call.dialog is not None and call.dialog.remote_tag == incoming.call.local_tag

    caller.core.hangup(call, net.now)
    net.run(net.now + 5, stop=lambda: bool(ended(agent)))
    net.run(net.now + 1)
    assert ended(caller)[0].reason.status is CallStatus.COMPLETED
    assert ended(caller)[0].reason.ended_by == "local"
    assert ended(agent)[0].reason.ended_by == "remote"
    assert call.bye_status == 200
    transport_token = "UDP" if transport == "udp" else "TCP"
    assert all(f"SIP/2.0/{transport_token}" in d.decode() for _, d, _ in caller.sent if d.strip())
    # Stream transports never retransmit.
    if transport == "tcp":
        assert caller.sent_lines().count(f"INVITE {AGENT};transport=tcp SIP/2.0") == 1
    assert not caller.core.calls and not agent.core.calls


def test_agent_hangs_up_with_bye() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    call = place(net, caller)
    net.run(5.0, stop=lambda: bool(agent.of(CallConfirmed)))
    agent.core.hangup(agent.of(IncomingCall)[0].call, net.now)
    net.run(net.now + 5, stop=lambda: bool(ended(caller)))
    reason = ended(caller)[0].reason
    assert reason.status is CallStatus.COMPLETED and reason.ended_by == "remote"
    assert call.ended


@pytest.mark.parametrize("seed", range(12))
def test_call_survives_a_lossy_network(seed: int) -> None:
    net = Network(loss=0.25, duplicate=0.1, reorder=0.2, seed=seed)
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net, delay=0.3)  # type: ignore[assignment]
    call = place(net, caller)
    net.run(
        60.0, stop=lambda: call.state is not CallState.CALLING and bool(agent.of(CallConfirmed))
    )
    assert call.state is CallState.CONFIRMED, (call.end, net.dropped)
    assert len(caller.of(CallAnswered)) == 1
    caller.core.hangup(call, net.now)
    net.run(net.now + 60, stop=lambda: bool(ended(agent)))
    assert ended(agent)[0].reason.status is CallStatus.COMPLETED
    assert ended(caller)[0].reason.status is CallStatus.COMPLETED


def test_lossy_network_actually_lost_and_retransmitted() -> None:
    retransmissions = 0
    for seed in range(10):
        net = Network(loss=0.3, seed=seed)
        caller, agent = setup(net)
        agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
        call = place(net, caller)
        net.run(60.0, stop=lambda: bool(agent.of(CallConfirmed)))  # noqa: B023
        assert call.state is CallState.CONFIRMED
        lines = caller.sent_lines() + agent.sent_lines()
        retransmissions += len(lines) - len(set(lines))
    assert retransmissions >= 5, "the test must exercise loss and retransmission"


def test_lost_invite_is_retransmitted_by_timer_a() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    net.drop_first(b"INVITE", 2)
    place(net, caller)
    net.run(10, stop=lambda: bool(agent.of(IncomingCall)))
    times = [t for t, d, _ in caller.sent if d.startswith(b"INVITE")]
    assert times == pytest.approx([0.0, 0.5, 1.5])


def test_lost_200_is_retransmitted_and_reacked() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    net.drop_first(b"SIP/2.0 200", 2, sender=agent)
    call = place(net, caller)
    net.run(10, stop=lambda: bool(agent.of(CallConfirmed)))
    oks = [t for t, d, _ in agent.sent if d.startswith(b"SIP/2.0 200")]
    assert len(oks) == 3 and oks[1] - oks[0] == pytest.approx(0.5)
    assert oks[2] - oks[1] == pytest.approx(1.0)
    assert call.state is CallState.CONFIRMED


def test_lost_ack_makes_the_uas_retransmit_and_the_uac_reack() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    net.drop_first(b"ACK", 1)
    place(net, caller)
    net.run(10, stop=lambda: bool(agent.of(CallConfirmed)))
    assert caller.sent_lines().count(f"ACK {AGENT_CONTACT} SIP/2.0") == 2
    assert len(caller.of(CallAnswered)) == 1  # the retransmitted 2xx is absorbed


def test_duplicated_200_yields_one_answer_and_two_acks() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    call = place(net, caller)
    net.run(10, stop=lambda: bool(caller.of(CallAnswered)))
    ok = next(d for _, d, _ in agent.sent if d.startswith(b"SIP/2.0 200"))
    caller.core.receive_data(ok, Peer("127.0.0.1", 5090), net.now)
    net.run(net.now + 1)
    assert len(caller.of(CallAnswered)) == 1
    assert caller.sent_lines().count(f"ACK {AGENT_CONTACT} SIP/2.0") == 2
    assert call.state is CallState.CONFIRMED


def test_no_response_times_out_with_timer_b() -> None:
    net = Network()
    caller = net.add("127.0.0.1", 5062)
    call = place(net, caller, "sip:nobody@127.0.0.1:5999")
    net.run(100)
    times = [t for t, d, _ in caller.sent if d.startswith(b"INVITE")]
    assert times == pytest.approx([0, 0.5, 1.5, 3.5, 7.5, 15.5, 31.5])
    reason = ended(caller)[0].reason
    assert call.ended_at == pytest.approx(32.0)
    assert (reason.status, reason.error_code, reason.bucket) == (
        CallStatus.INCOMPLETED,
        "SIP_DIAL_FAILED",
        FailureBucket.NO_CONNECTION,
    )


def test_no_response_over_tcp_sends_once_and_still_times_out() -> None:
    net = Network()
    caller = net.add("127.0.0.1", 5062)
    place(net, caller, "sip:nobody@127.0.0.1:5999;transport=tcp")
    net.run(100)
    assert len(caller.sent) == 1
    assert ended(caller)[0].call.ended_at == pytest.approx(32.0)


def test_transport_error_ends_the_call() -> None:
    net = Network()
    caller = net.add("127.0.0.1", 5062)
    call = place(net, caller, "sip:nobody@127.0.0.1:5999;transport=tcp")
    caller.core.transport_error(Peer("127.0.0.1", 5999, "TCP"), 0.1, "connection refused")
    net.run(1)
    assert call.end is not None and "connection refused" in call.end.detail
    assert call.end.bucket is FailureBucket.NO_CONNECTION


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (486, (CallStatus.REJECTED, "CALL_REJECTED", FailureBucket.NO_ANSWER)),
        (603, (CallStatus.REJECTED, "CALL_REJECTED", FailureBucket.NO_ANSWER)),
        (600, (CallStatus.REJECTED, "CALL_REJECTED", FailureBucket.NO_ANSWER)),
        (404, (CallStatus.INCOMPLETED, "INVALID_SIP_DESTINATION", FailureBucket.NO_CONNECTION)),
        (480, (CallStatus.NO_ANSWER, "NO_ANSWER", FailureBucket.NO_ANSWER)),
        (503, (CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION)),
        (488, (CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION)),
    ],
)
def test_rejections_map_to_bluejay_outcomes(status: int, expected: tuple[object, ...]) -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = lambda node, e, now: (  # type: ignore[assignment]
        node.core.reject(e.call, now, status) if isinstance(e, IncomingCall) else None
    )
    call = place(net, caller)
    net.run(60)
    reason = ended(caller)[0].reason
    assert (reason.status, reason.error_code, reason.bucket) == expected
    assert reason.sip_status == status and call.last_status == status
    # ACK for the non-2xx: same branch as the INVITE, To tag of the response.
    invite = parse_message(next(d for _, d, _ in caller.sent if d.startswith(b"INVITE")))
    ack = parse_message(next(d for _, d, _ in caller.sent if d.startswith(b"ACK")))
    assert ack.top_via.branch == invite.top_via.branch
    assert ack.to.tag == agent.of(IncomingCall)[0].call.local_tag
    assert ack.cseq.seq == invite.cseq.seq and ack.cseq.method == "ACK"
    assert agent.of(CallEnded)[0].reason.ended_by == "local"


def test_lost_ack_of_486_makes_timer_g_retransmit() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = lambda node, e, now: (  # type: ignore[assignment]
        node.core.reject(e.call, now, 486) if isinstance(e, IncomingCall) else None
    )
    net.drop_first(b"ACK", 2)
    place(net, caller)
    net.run(60)
    busy = [t for t, d, _ in agent.sent if d.startswith(b"SIP/2.0 486")]
    assert len(busy) == 3 and busy[1] - busy[0] == pytest.approx(0.5)
    assert caller.sent_lines().count(f"ACK {AGENT} SIP/2.0") == 3  # non-2xx ACK: Request-URI
    assert len(ended(caller)) == 1


def test_ringing_timeout_cancels_and_maps_to_no_answer() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = lambda node, e, now: (  # type: ignore[assignment]
        node.core.ring(e.call, now) if isinstance(e, IncomingCall) else None
    )
    call = place(net, caller, ring_timeout=5.0)
    net.run(60)
    assert caller.sent_lines()[:2] == [f"INVITE {AGENT} SIP/2.0", f"CANCEL {AGENT} SIP/2.0"]
    reason = ended(caller)[0].reason
    assert (reason.status, reason.error_code, reason.sip_status) == (
        CallStatus.NO_ANSWER,
        "NO_ANSWER",
        487,
    )
    assert call.ended_at == pytest.approx(5.02, abs=0.01)
    assert agent.of(CallEnded)[0].reason.error_code == "CALL_CANCELLED"
    assert agent.sent_lines().count("SIP/2.0 487 Request Terminated") == 1
    cancel = parse_message(next(d for _, d, _ in caller.sent if d.startswith(b"CANCEL")))
    invite = parse_message(next(d for _, d, _ in caller.sent if d.startswith(b"INVITE")))
    assert cancel.top_via.branch == invite.top_via.branch
    assert cancel.cseq.seq == invite.cseq.seq and cancel.to.tag is None


def test_cancel_waits_for_a_provisional_response() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = lambda node, e, now: None  # type: ignore[assignment]
    net.drop_matching(lambda node, data, peer: data.startswith(b"SIP/2.0 100") and net.now < 1)
    call = place(net, caller)
    net.run(0.1)
    caller.core.cancel(call, net.now)
    assert not any(line.startswith("CANCEL") for line in caller.sent_lines())
    net.run(60)
    lines = caller.sent_lines()
    assert lines.index(f"CANCEL {AGENT} SIP/2.0") > lines.index(f"INVITE {AGENT} SIP/2.0")
    assert call.end is not None and call.end.error_code == "CALL_CANCELLED"


def test_answer_racing_the_cancel_is_acked_then_byed() -> None:
    net = Network(latency=0.05)
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net, delay=1.0)  # type: ignore[assignment]
    call = place(net, caller, ring_timeout=1.02)
    net.run(60)
    lines = caller.sent_lines()
    assert f"BYE {AGENT_CONTACT} SIP/2.0" in lines and f"ACK {AGENT_CONTACT} SIP/2.0" in lines
    assert call.end is not None and call.end.error_code == "NO_ANSWER"
    assert agent.of(CallEnded)[0].reason.ended_by == "remote"


@pytest.mark.parametrize("status", [401, 407])
def test_digest_challenge_is_answered_once(status: int) -> None:
    net = Network()
    caller, agent = setup(net)
    server = DigestServer("sim.test", secret=b"k")
    header = "WWW-Authenticate" if status == 401 else "Proxy-Authenticate"
    auth_header = "authorization" if status == 401 else "proxy-authorization"

    def on_event(node: Node, event: Event, now: float) -> None:
        if not isinstance(event, IncomingCall):
            return
        value = event.request.headers.get(auth_header)
        if value and server.verify(value, "INVITE", {"agent": "secret"}.get, now).ok:
            node.core.answer(event.call, now, rtp=("127.0.0.1", 50000))
        else:
            node.core.reject(event.call, now, status, headers=[(header, server.challenge(now))])

    agent.on_event = on_event  # type: ignore[assignment]
    call = place(net, caller, credentials=Credentials("agent", "secret"))
    net.run(10, stop=lambda: bool(agent.of(CallConfirmed)))
    assert call.state is CallState.CONFIRMED and call.auth_attempts == 1
    first, second = (r.request for r in agent.of(IncomingCall))
    assert first.call_id == second.call_id and first.from_.tag == second.from_.tag
    assert second.cseq.seq == first.cseq.seq + 1
    assert first.top_via.branch != second.top_via.branch
    assert second.headers.get("x-simulation-result-id") == "720488"
    # The challenge was ACKed inside its transaction before the retry went out.
    lines = caller.sent_lines()
    assert lines == [
        f"INVITE {AGENT} SIP/2.0",
        f"ACK {AGENT} SIP/2.0",
        f"INVITE {AGENT} SIP/2.0",
        f"ACK {AGENT_CONTACT} SIP/2.0",
    ]


def test_wrong_password_fails_after_one_retry() -> None:
    net = Network()
    caller, agent = setup(net)
    server = DigestServer("sim.test", secret=b"k")

    def on_event(node: Node, event: Event, now: float) -> None:
        if isinstance(event, IncomingCall):
            value = event.request.headers.get("authorization")
            assert not value or not server.verify(value, "INVITE", {"agent": "x"}.get, now).ok
            node.core.reject(
                event.call, now, 401, headers=[("WWW-Authenticate", server.challenge(now))]
            )

    agent.on_event = on_event  # type: ignore[assignment]
    call = place(net, caller, credentials=Credentials("agent", "wrong"))
    net.run(60)
    assert len(agent.of(IncomingCall)) == 2
    assert call.end is not None
    assert (call.end.status, call.end.error_code) == (CallStatus.REJECTED, "SIP_AUTH_FAILED")


def test_challenge_without_credentials_fails_at_once() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = lambda node, e, now: (  # type: ignore[assignment]
        node.core.reject(
            e.call, now, 401, headers=[("WWW-Authenticate", 'Digest realm="r", nonce="n"')]
        )
        if isinstance(e, IncomingCall)
        else None
    )
    call = place(net, caller)
    net.run(60)
    assert len(agent.of(IncomingCall)) == 1
    assert call.end is not None and call.end.error_code == "SIP_AUTH_FAILED"


def test_options_ping_and_answer() -> None:
    net = Network()
    caller, agent = setup(net)
    request_id = caller.core.options(AGENT, 0.0)
    net.run(5)
    result = caller.of(OptionsResult)[0]
    assert result.request_id == request_id and result.response is not None
    assert result.response.status == 200
    assert "INVITE" in (result.response.headers.get("allow") or "")
    assert result.response.headers.get("accept") == "application/sdp"


def test_options_to_nowhere_reports_timeout() -> None:
    net = Network()
    caller = net.add("127.0.0.1", 5062)
    caller.core.options("sip:x@127.0.0.1:5999", 0.0)
    net.run(100)
    result = caller.of(OptionsResult)[0]
    assert result.response is None and "Timer F" in result.detail
    # Timer E: 0.5, 1, 2, 4, 4, ... until F at 32 s.
    times = [t for t, _, _ in caller.sent]
    assert times[:6] == pytest.approx([0, 0.5, 1.5, 3.5, 7.5, 11.5])


def raw_request(
    method: str, *, uri: str = AGENT, extra: str = "", to_tag: str = "", body: str = ""
) -> bytes:
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK{method}{to_tag}\r\n"
        f"From: <sip:t@127.0.0.1>;tag=f1\r\nTo: <{AGENT}>{tag}\r\nCall-ID: c-{method}\r\n"
        f"CSeq: 5 {method}\r\nContact: <sip:t@127.0.0.1:5070>\r\n{extra}"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (raw_request("FOO"), 501),
        (raw_request("REGISTER"), 405),
        (raw_request("BYE"), 481),
        (raw_request("BYE", to_tag="nope"), 481),
        (raw_request("OPTIONS"), 200),
        (raw_request("OPTIONS", uri="tel:+123"), 416),
        (raw_request("OPTIONS", extra="Require: 100rel, timer\r\n"), 420),
        (raw_request("INVITE", extra="Content-Type: text/plain\r\n", body="hi"), 415),
        (raw_request("INVITE", extra="Accept: text/html\r\n"), 406),
        (raw_request("INVITE", extra="Content-Type: application/sdp\r\n", body="v=0\r\nbad"), 400),
        (
            raw_request(
                "INVITE",
                extra="Content-Type: application/sdp\r\n",
                body="v=0\r\no=a 1 1 IN IP4 1.2.3.4\r\ns=-\r\nc=IN IP4 1.2.3.4\r\nt=0 0\r\n"
                "m=audio 4000 RTP/AVP 18\r\n",
            ),
            488,
        ),
        (raw_request("OPTIONS").replace(b"CSeq: 5 OPTIONS", b"CSeq: 5 INVITE"), 400),
        (raw_request("OPTIONS").replace(b"SIP/2.0\r\n", b"SIP/3.0\r\n", 1), 505),
    ],
)
def test_automatic_answers(data: bytes, status: int) -> None:
    net = Network()
    agent = net.add("127.0.0.1", 5090)
    agent.core.receive_data(data, Peer("127.0.0.1", 5070), 0.0)
    net.run(1)
    replies = [parse_message(d) for _, d, _ in agent.sent]
    assert replies[-1].status == status  # type: ignore[union-attr]
    assert replies[-1].headers.get("via", "").startswith("SIP/2.0/UDP 127.0.0.1:5070")  # type: ignore[union-attr]
    if status >= 400:
        assert agent.of(RequestRejected) and agent.of(RequestRejected)[0].status == status
    if status in (405, 501):
        assert "INVITE" in (replies[-1].headers.get("allow") or "")
    if status == 420:
        assert replies[-1].headers.get_all("unsupported") == ["100rel", "timer"]


def test_malformed_datagram_is_reported_and_answered() -> None:
    net = Network()
    agent = net.add("127.0.0.1", 5090)
    bad = raw_request("OPTIONS").replace(b"CSeq: 5 OPTIONS", b"CSeq: five OPTIONS")
    agent.core.receive_data(bad, Peer("127.0.0.1", 5070), 0.0)
    agent.core.receive_data(b"\x00\xff garbage", Peer("127.0.0.1", 5070), 0.0)
    agent.core.receive_data(b"\r\n\r\n", Peer("127.0.0.1", 5070), 0.0)  # keep-alive: ignored
    net.run(1)
    assert len(agent.of(MalformedInput)) == 2
    assert [d.split(b"\r\n")[0] for _, d, _ in agent.sent] == [
        b"SIP/2.0 400 Bad Request (malformed CSeq 'five OPTIONS')"
    ]


def test_tcp_framing_error_disconnects() -> None:
    net = Network()
    agent = net.add("127.0.0.1", 5090)
    peer = Peer("127.0.0.1", 5070, "TCP")
    agent.core.receive_data(b"INVITE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n", peer, 0.0)
    out = agent.core.data_to_send()
    assert out and out[-1].peer == peer and type(out[-1]).__name__ == "Disconnect"
    agent.core.receive_data(b"\r\n\r\n", peer, 0.1)  # a new connection from the same peer
    assert [o.data for o in agent.core.data_to_send()] == [b"\r\n"]  # type: ignore[union-attr]


def test_in_dialog_checks() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    call = place(net, caller)
    net.run(5, stop=lambda: bool(agent.of(CallConfirmed)))
    uas_call = agent.of(IncomingCall)[0].call
    dialog = uas_call.dialog
    assert dialog is not None
    info = dialog.request(
        "INFO",
        via="SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKinfo1",
        body=b"Signal=5\r\n",
        content_type="application/dtmf-relay",
    )
    # The caller receives the agent's INFO: 200 and an event.
    caller.core.receive_data(info.to_bytes(), Peer("127.0.0.1", 5090), net.now)
    replies = [o.data for o in caller.core.data_to_send()]  # type: ignore[union-attr]
    assert replies[0].startswith(b"SIP/2.0 200")
    events = caller.core.events_received()
    assert type(events[0]).__name__ == "InDialogRequest"
    # Same CSeq again on a new branch: out of order -> 500.
    again = parse_message(info.to_bytes().replace(b"z9hG4bKinfo1", b"z9hG4bKinfo2"))
    caller.core.receive_data(again.to_bytes(), Peer("127.0.0.1", 5090), net.now)
    assert caller.core.data_to_send()[0].data.startswith(b"SIP/2.0 500")  # type: ignore[union-attr]
    unknown = dialog.request("FOO", via="SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKfoo")
    caller.core.receive_data(unknown.to_bytes(), Peer("127.0.0.1", 5090), net.now)
    assert caller.core.data_to_send()[0].data.startswith(b"SIP/2.0 501")  # type: ignore[union-attr]
    assert call.state is CallState.CONFIRMED


def test_reinvite_is_answered_with_the_current_codec() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    call = place(net, caller)
    net.run(5, stop=lambda: bool(agent.of(CallConfirmed)))
    uas_call = agent.of(IncomingCall)[0].call
    assert uas_call.dialog is not None
    offer = make_offer("127.0.0.1", 50002, codecs=("PCMA", "PCMU"), session_id=9)
    reinvite = uas_call.dialog.request(
        "INVITE",
        via="SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bKre1",
        contact="<sip:agent@127.0.0.1:5090>",
        body=offer.to_bytes(),
        content_type="application/sdp",
    )
    before = call.local_sdp.origin.version  # type: ignore[union-attr]
    agent.core._transmit(reinvite.to_bytes(), Peer("127.0.0.1", 5062))
    net.run(net.now + 2)
    updated = caller.of(SessionUpdated)[0]
    assert updated.media is not None and updated.media.codec == "PCMU"  # current codec kept
    assert updated.media.remote == ("127.0.0.1", 50002)
    assert call.local_sdp is not None and call.local_sdp.origin.version == before + 1
    ok = [d for _, d, _ in caller.sent if d.startswith(b"SIP/2.0 200") and b"CSeq: " in d]
    assert ok and b"m=audio 40000 RTP/AVP 0 101" in ok[-1]
    # No ACK came (the agent's core did not send the re-INVITE itself): 2xx is retransmitted
    # and the call is torn down after 64*T1.
    net.run(net.now + 40)
    assert call.end is not None and call.end.error_code == "SIP_ACK_TIMEOUT"


def test_missing_ack_tears_the_call_down() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    net.drop_matching(lambda node, data, peer: data.startswith(b"ACK"))
    place(net, caller)
    net.run(60)
    uas = agent.of(CallEnded)[0].reason
    assert (uas.error_code, uas.bucket) == ("SIP_ACK_TIMEOUT", FailureBucket.CALL_DROPPED)
    oks = [t for t, d, _ in agent.sent if d.startswith(b"SIP/2.0 200")]
    gaps = [round(b - a, 6) for a, b in zip(oks, oks[1:], strict=False)]
    assert gaps == [0.5, 1, 2, 4, 4, 4, 4, 4, 4, 4]  # T1 doubling, capped at T2, for 64*T1
    assert agent.sent_lines()[-1].startswith("BYE ")
    assert ended(caller)[0].reason.ended_by == "remote"


def test_hangup_before_ack_waits_for_the_ack() -> None:
    net = Network(latency=0.1)
    caller, agent = setup(net)

    def on_event(node: Node, event: Event, now: float) -> None:
        if isinstance(event, IncomingCall):
            node.core.answer(event.call, now, rtp=("127.0.0.1", 50000))
            node.core.hangup(event.call, now)
            assert not any(line.startswith("BYE") for line in node.sent_lines())

    agent.on_event = on_event  # type: ignore[assignment]
    call = place(net, caller)
    net.run(10)
    assert agent.sent_lines()[-1].startswith("BYE ")
    assert call.end is not None and call.end.status is CallStatus.COMPLETED


def test_late_offer_is_answered_in_the_ack() -> None:
    net = Network()
    caller, agent = setup(net)

    def on_event(node: Node, event: Event, now: float) -> None:
        if isinstance(event, IncomingCall):
            assert event.offer is None
            node.core.answer(event.call, now, sdp=make_offer("127.0.0.1", 50000, session_id=5))

    agent.on_event = on_event  # type: ignore[assignment]
    # Our caller never makes a late offer itself; script its ACK by hand.
    net.drop_matching(lambda node, data, peer: node is caller and not data.startswith(b"INVITE"))
    call = caller.core.invite(AGENT, 0.0)
    net.run(1, stop=lambda: call.dialog is not None)
    assert call.dialog is not None
    answer = make_offer("127.0.0.1", 40000, codecs=("PCMA",), session_id=6)
    ack = call.dialog.request(
        "ACK",
        via="SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bKlateack",
        cseq=call.invite.cseq.seq,
        body=answer.to_bytes(),
        content_type="application/sdp",
    )
    agent.core.receive_data(ack.to_bytes(), Peer("127.0.0.1", 5062), net.now)
    net.run(net.now + 0.1)
    confirmed = agent.of(CallConfirmed)[0]
    assert confirmed.media is not None and confirmed.media.codec == "PCMA"
    assert confirmed.media.remote == ("127.0.0.1", 40000)


def test_late_offer_without_answer_is_torn_down() -> None:
    net = Network()
    caller, agent = setup(net)

    def on_event(node: Node, event: Event, now: float) -> None:
        if isinstance(event, IncomingCall):
            node.core.answer(event.call, now, sdp=make_offer("127.0.0.1", 50000, session_id=5))

    agent.on_event = on_event  # type: ignore[assignment]
    call = caller.core.invite(AGENT, 0.0)  # no SDP: the 2xx offer cannot be answered
    net.run(5)
    assert call.end is not None and "offer" in call.end.detail
    assert agent.of(CallEnded)[0].reason.error_code == "SIP_DIAL_FAILED"


def test_forked_second_answer_is_acked_and_byed() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    call = place(net, caller)
    net.run(5, stop=lambda: bool(caller.of(CallAnswered)))
    ok = next(d for _, d, _ in agent.sent if d.startswith(b"SIP/2.0 200"))
    tag = agent.of(IncomingCall)[0].call.local_tag
    fork = ok.replace(f"tag={tag}".encode(), b"tag=other")
    caller.core.receive_data(fork, Peer("127.0.0.1", 5090), net.now)
    lines = [o.data.split(b"\r\n")[0] for o in caller.core.data_to_send()]  # type: ignore[union-attr]
    assert lines == [
        f"ACK {AGENT_CONTACT} SIP/2.0".encode(),
        f"BYE {AGENT_CONTACT} SIP/2.0".encode(),
    ]
    assert call.state is CallState.CONFIRMED and len(caller.of(CallAnswered)) == 1


def test_response_with_two_vias_is_discarded() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    call = place(net, caller)
    net.run(0.05)
    trying = next(d for _, d, _ in agent.sent if d.startswith(b"SIP/2.0 100"))
    bogus = trying.replace(
        b"Via: ", b"Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bKx\r\nVia: ", 1
    )
    before = caller.core.stats.discarded
    caller.core.receive_data(
        bogus.replace(b"100 Trying", b"486 Busy Here"), Peer("127.0.0.1", 5090), net.now
    )
    assert caller.core.stats.discarded == before + 1
    assert not call.ended


def test_state_errors() -> None:
    net = Network()
    caller, agent = setup(net)
    agent.on_event = auto_answer(net=net)  # type: ignore[assignment]
    call = place(net, caller)
    with pytest.raises(SipStateError):
        caller.core.answer(call, 0.0, rtp=("127.0.0.1", 1))
    net.run(5, stop=lambda: bool(agent.of(CallConfirmed)))
    with pytest.raises(SipStateError):
        caller.core.cancel(call, net.now)
    with pytest.raises(ValueError, match="managed by the SIP core"):
        caller.core.invite(AGENT, 0.0, headers=[("Call-ID", "x")])
    with pytest.raises(ValueError, match="CR, LF"):
        caller.core.invite(AGENT, 0.0, headers=[("X-Evil", "a\r\nVia: x")])
    with pytest.raises(ValueError, match="sip"):
        caller.core.invite("tel:+1555", 0.0)
