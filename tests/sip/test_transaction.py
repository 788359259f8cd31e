"""Unit tests of the four RFC 3261 §17 transaction machines (roost.sip.transaction).

Each machine is driven alone with explicit time: the test asks for the next
deadline, jumps the clock there and looks at the effects. test_core.py checks
that the UA core uses them correctly over a simulated network; these check the
exact schedules (A, E, G doubling and capping), every timeout (B, D, F, H, I,
J, K, L, M) and the reliable-transport rules.
"""

from __future__ import annotations

import pytest

from roost.sip.errors import SipStateError
from roost.sip.message import SipRequest, SipResponse, make_response, parse_message
from roost.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Deliver,
    Effect,
    Peer,
    Send,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Terminated,
    TimedOut,
    TimerConfig,
    Transaction,
    TransportFailed,
    TxState,
    client_key,
    server_key,
)

UDP = Peer("127.0.0.1", 5090, "UDP")
TCP = Peer("127.0.0.1", 5090, "TCP")
CONFIG = TimerConfig()  # T1 0.5, T2 4, T4 5, D 32


def make_request(method: str = "INVITE", branch: str = "z9hG4bK-tx-1") -> SipRequest:
    msg = parse_message(
        (
            f"{method} sip:agent@127.0.0.1:5090 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5062;branch={branch}\r\n"
            "Max-Forwards: 70\r\n"
            "Route: <sip:proxy@127.0.0.1:5070;lr>\r\n"
            "From: <sip:roost@127.0.0.1>;tag=caller\r\n"
            "To: <sip:agent@127.0.0.1>\r\n"
            "Call-ID: tx-unit@127.0.0.1\r\n"
            f"CSeq: 5 {method}\r\n\r\n"
        ).encode()
    )
    assert isinstance(msg, SipRequest)
    return msg


def response(request: SipRequest, status: int, tag: str | None = "callee") -> SipResponse:
    return make_response(request, status, to_tag=tag)


def sends(effects: list[Effect]) -> list[bytes]:
    return [e.data for e in effects if isinstance(e, Send)]


def state_of(tx: Transaction) -> TxState:
    """The state, read through a call so mypy does not keep an earlier narrowing."""
    return tx.state


def run_schedule(tx: Transaction, until: float) -> list[tuple[float, list[Effect]]]:
    """Fire every deadline up to ``until``; returns (time, effects) per firing."""
    fired: list[tuple[float, list[Effect]]] = []
    while (deadline := tx.next_deadline()) is not None and deadline <= until:
        fired.append((deadline, tx.handle_timeout(deadline)))
    return fired


# -- INVITE client -------------------------------------------------------------


def test_invite_client_timer_a_doubles_until_timer_b_times_out() -> None:
    invite = make_request()
    tx = ClientInviteTransaction(invite, UDP, CONFIG, now=100.0)
    first = tx.start()
    assert first == [Send(invite.to_bytes(), UDP)]
    assert tx.state is TxState.CALLING
    fired = run_schedule(tx, until=1000.0)
    retransmits = [t for t, effects in fired if sends(effects)]
    # A fires at T1, then 2*T1 later, 4*T1 later... (no T2 cap for INVITE).
    assert retransmits == [100.5, 101.5, 103.5, 107.5, 115.5, 131.5]
    assert all(sends(e) == [invite.to_bytes()] for _, e in fired[:-1])
    last_time, last = fired[-1]
    assert last_time == 132.0  # Timer B = 64*T1
    assert last == [TimedOut("B"), Terminated()]
    assert tx.terminated and tx.next_deadline() is None
    assert tx.handle_timeout(10_000.0) == []


def test_invite_client_provisional_stops_retransmission_and_timer_b() -> None:
    invite = make_request()
    tx = ClientInviteTransaction(invite, UDP, CONFIG, now=0.0)
    tx.start()
    tx.handle_timeout(0.5)
    ringing = response(invite, 180)
    assert tx.receive_response(ringing, now=0.7) == [Deliver(ringing)]
    assert tx.state is TxState.PROCEEDING
    # Nothing left to fire: the TU's own ringing timeout is what ends a call now.
    assert tx.next_deadline() is None
    again = response(invite, 183)
    assert tx.receive_response(again, now=9.0) == [Deliver(again)]


def test_invite_client_non_2xx_is_acked_inside_the_transaction() -> None:
    invite = make_request()
    tx = ClientInviteTransaction(invite, UDP, CONFIG, now=0.0)
    tx.start()
    busy = response(invite, 486)
    effects = tx.receive_response(busy, now=1.0)
    assert len(effects) == 2 and effects[1] == Deliver(busy)
    assert isinstance(effects[0], Send) and effects[0].peer == UDP
    ack = parse_message(effects[0].data)
    assert isinstance(ack, SipRequest) and ack.method == "ACK"
    assert ack.uri == invite.uri
    assert [v.branch for v in ack.via] == ["z9hG4bK-tx-1"]  # the INVITE's branch, one Via
    assert (ack.cseq.seq, ack.cseq.method) == (5, "ACK")
    assert ack.call_id == invite.call_id and ack.from_.tag == "caller"
    assert ack.to.tag == "callee"  # from the response
    assert ack.headers.get_all("route") == invite.headers.get_all("route")
    assert ack.body == b""
    assert tx.state is TxState.COMPLETED
    # A retransmitted 486 is re-ACKed and not passed up again.
    assert tx.receive_response(busy, now=2.0) == [Send(effects[0].data, UDP)]
    # Timer D (32 s on UDP) ends it.
    assert tx.next_deadline() == 33.0
    assert tx.handle_timeout(32.9) == []
    assert tx.handle_timeout(33.0) == [Terminated()]


def test_invite_client_2xx_goes_to_the_tu_without_an_ack() -> None:
    invite = make_request()
    tx = ClientInviteTransaction(invite, UDP, CONFIG, now=0.0)
    tx.start()
    ok = response(invite, 200)
    assert tx.receive_response(ok, now=1.0) == [Deliver(ok)]  # the TU ACKs a 2xx itself
    assert tx.state is TxState.ACCEPTED
    # Retransmitted 2xx also go up (the core re-sends its ACK), for Timer M = 64*T1.
    assert tx.receive_response(ok, now=2.0) == [Deliver(ok)]
    assert tx.receive_response(response(invite, 486), now=2.5) == []
    assert tx.next_deadline() == 33.0
    assert tx.handle_timeout(33.0) == [Terminated()]


def test_invite_client_over_tcp_never_retransmits_and_drops_timer_d() -> None:
    invite = make_request()
    tx = ClientInviteTransaction(invite, TCP, CONFIG, now=0.0)
    assert tx.start() == [Send(invite.to_bytes(), TCP)]
    assert set(tx.timers) == {"B"}
    fired = run_schedule(tx, until=1000.0)
    assert fired == [(32.0, [TimedOut("B"), Terminated()])]

    tx = ClientInviteTransaction(invite, TCP, CONFIG, now=0.0)
    tx.start()
    effects = tx.receive_response(response(invite, 603), now=1.0)
    assert [type(e) for e in effects] == [Send, Deliver, Terminated]  # Timer D is zero
    assert tx.terminated


def test_invite_client_transport_failure_ends_it_once() -> None:
    tx = ClientInviteTransaction(make_request(), UDP, CONFIG, now=0.0)
    tx.start()
    assert tx.transport_failed("ICMP unreachable") == [
        TransportFailed("ICMP unreachable"),
        Terminated(),
    ]
    assert tx.transport_failed("again") == []


# -- non-INVITE client ---------------------------------------------------------


def test_non_invite_client_timer_e_doubles_up_to_t2_then_timer_f() -> None:
    bye = make_request("BYE")
    tx = ClientNonInviteTransaction(bye, UDP, CONFIG, now=0.0)
    assert tx.start() == [Send(bye.to_bytes(), UDP)]
    fired = run_schedule(tx, until=1000.0)
    times = [t for t, effects in fired if sends(effects)]
    intervals = [round(b - a, 6) for a, b in zip([0.0, *times], times, strict=False)]
    # 0.5, 1, 2, 4, then capped at T2 = 4 until Timer F.
    assert intervals[:4] == [0.5, 1.0, 2.0, 4.0]
    assert set(intervals[4:]) == {4.0}
    assert max(times) < 32.0
    assert fired[-1] == (32.0, [TimedOut("F"), Terminated()])
    assert tx.terminated


def test_non_invite_client_provisional_switches_timer_e_to_t2() -> None:
    bye = make_request("BYE")
    tx = ClientNonInviteTransaction(bye, UDP, CONFIG, now=0.0)
    tx.start()
    trying = response(bye, 100)
    assert tx.receive_response(trying, now=0.2) == [Deliver(trying)]
    assert tx.state is TxState.PROCEEDING
    assert tx.handle_timeout(0.5) == [Send(bye.to_bytes(), UDP)]  # E was already armed
    assert tx.next_deadline() == 4.5  # now every T2
    assert tx.handle_timeout(4.5) == [Send(bye.to_bytes(), UDP)]
    assert tx.next_deadline() == 8.5


def test_non_invite_client_final_response_starts_timer_k() -> None:
    bye = make_request("BYE")
    tx = ClientNonInviteTransaction(bye, UDP, CONFIG, now=0.0)
    tx.start()
    ok = response(bye, 200)
    assert tx.receive_response(ok, now=1.0) == [Deliver(ok)]
    assert tx.state is TxState.COMPLETED
    assert tx.receive_response(ok, now=1.5) == []  # retransmissions absorbed
    assert tx.next_deadline() == 6.0  # Timer K = T4
    assert tx.handle_timeout(6.0) == [Terminated()]


def test_non_invite_client_over_tcp_sends_once_and_ends_on_the_answer() -> None:
    bye = make_request("BYE")
    tx = ClientNonInviteTransaction(bye, TCP, CONFIG, now=0.0)
    tx.start()
    assert set(tx.timers) == {"F"}
    ok = response(bye, 481)
    assert tx.receive_response(ok, now=1.0) == [Deliver(ok), Terminated()]  # Timer K zero

    tx = ClientNonInviteTransaction(bye, TCP, CONFIG, now=0.0)
    tx.start()
    assert run_schedule(tx, until=1000.0) == [(32.0, [TimedOut("F"), Terminated()])]


# -- INVITE server -------------------------------------------------------------


def test_invite_server_answers_retransmitted_invites_with_the_last_provisional() -> None:
    invite = make_request()
    tx = ServerInviteTransaction(invite, UDP, CONFIG)
    assert tx.state is TxState.PROCEEDING
    assert tx.receive_request(invite, now=0.1) == []  # nothing sent yet
    trying = make_response(invite, 100).to_bytes()
    assert tx.respond(make_response(invite, 100), now=0.0) == [Send(trying, UDP)]
    assert tx.receive_request(invite, now=0.5) == [Send(trying, UDP)]
    ringing = response(invite, 180)
    assert tx.respond(ringing, now=1.0) == [Send(ringing.to_bytes(), UDP)]
    assert tx.receive_request(invite, now=1.5) == [Send(ringing.to_bytes(), UDP)]
    assert tx.next_deadline() is None  # no timers while the TU decides


def test_invite_server_timer_g_retransmits_the_final_until_timer_h() -> None:
    invite = make_request()
    tx = ServerInviteTransaction(invite, UDP, CONFIG)
    busy = response(invite, 486)
    wire = busy.to_bytes()
    assert tx.respond(busy, now=10.0) == [Send(wire, UDP)]
    assert tx.state is TxState.COMPLETED
    fired = run_schedule(tx, until=1000.0)
    times = [t for t, effects in fired if effects == [Send(wire, UDP)]]
    intervals = [round(b - a, 6) for a, b in zip([10.0, *times], times, strict=False)]
    assert intervals[:4] == [0.5, 1.0, 2.0, 4.0]
    assert set(intervals[4:]) == {4.0}  # G capped at T2
    assert fired[-1] == (42.0, [TimedOut("H"), Terminated()])


def test_invite_server_ack_stops_timer_g_and_timer_i_absorbs_the_rest() -> None:
    invite = make_request()
    tx = ServerInviteTransaction(invite, UDP, CONFIG)
    busy = response(invite, 486)
    tx.respond(busy, now=0.0)
    assert tx.handle_timeout(0.5) == [Send(busy.to_bytes(), UDP)]
    # A retransmitted INVITE is answered with the final response.
    assert tx.receive_request(invite, now=0.7) == [Send(busy.to_bytes(), UDP)]
    ack = make_request("ACK")
    assert tx.receive_request(ack, now=1.0) == []
    assert tx.state is TxState.CONFIRMED
    assert set(tx.timers) == {"I"} and tx.next_deadline() == 6.0  # T4
    assert tx.receive_request(ack, now=2.0) == []
    assert tx.receive_request(invite, now=2.0) == []
    assert tx.handle_timeout(6.0) == [Terminated()]


def test_invite_server_2xx_is_accepted_and_acks_go_to_the_tu() -> None:
    invite = make_request()
    tx = ServerInviteTransaction(invite, UDP, CONFIG)
    ok = response(invite, 200)
    assert tx.respond(ok, now=0.0) == [Send(ok.to_bytes(), UDP)]
    assert tx.state is TxState.ACCEPTED
    assert tx.receive_request(invite, now=0.5) == []  # absorbed, the core resends 2xx itself
    assert tx.respond(ok, now=0.5) == [Send(ok.to_bytes(), UDP)]
    ack = make_request("ACK", branch="z9hG4bK-ack-new")
    assert tx.receive_request(ack, now=1.0) == [Deliver(ack)]
    assert tx.next_deadline() == 32.0  # Timer L
    assert tx.handle_timeout(32.0) == [Terminated()]


def test_invite_server_refuses_a_second_final_response() -> None:
    invite = make_request()
    tx = ServerInviteTransaction(invite, UDP, CONFIG)
    tx.respond(response(invite, 486), now=0.0)
    with pytest.raises(SipStateError, match="cannot send 200"):
        tx.respond(response(invite, 200), now=0.1)


def test_invite_server_over_tcp_has_no_timer_g_and_no_timer_i() -> None:
    invite = make_request()
    tx = ServerInviteTransaction(invite, TCP, CONFIG)
    tx.respond(response(invite, 603), now=0.0)
    assert set(tx.timers) == {"H"}
    assert tx.receive_request(make_request("ACK"), now=0.1) == [Terminated()]

    tx = ServerInviteTransaction(invite, TCP, CONFIG)
    tx.respond(response(invite, 603), now=0.0)
    assert run_schedule(tx, until=1000.0) == [(32.0, [TimedOut("H"), Terminated()])]


# -- non-INVITE server ---------------------------------------------------------


def test_non_invite_server_answers_retransmissions_with_the_last_response() -> None:
    bye = make_request("BYE")
    tx = ServerNonInviteTransaction(bye, UDP, CONFIG)
    assert tx.state is TxState.TRYING
    assert tx.receive_request(bye, now=0.1) == []  # TRYING absorbs
    trying = response(bye, 100, tag=None)
    assert tx.respond(trying, now=0.2) == [Send(trying.to_bytes(), UDP)]
    assert tx.receive_request(bye, now=0.3) == [Send(trying.to_bytes(), UDP)]
    ok = response(bye, 200)
    assert tx.respond(ok, now=0.4) == [Send(ok.to_bytes(), UDP)]
    assert state_of(tx) is TxState.COMPLETED
    assert tx.receive_request(bye, now=5.0) == [Send(ok.to_bytes(), UDP)]
    with pytest.raises(SipStateError):
        tx.respond(ok, now=5.0)
    assert tx.next_deadline() == pytest.approx(32.4)  # Timer J = 64*T1
    assert tx.handle_timeout(32.3) == []
    assert tx.handle_timeout(32.4) == [Terminated()]
    assert tx.receive_request(bye, now=40.0) == []


def test_non_invite_server_over_tcp_ends_with_its_final_response() -> None:
    bye = make_request("BYE")
    tx = ServerNonInviteTransaction(bye, TCP, CONFIG)
    ok = response(bye, 200)
    assert tx.respond(ok, now=0.0) == [Send(ok.to_bytes(), TCP), Terminated()]


# -- keys and configuration ----------------------------------------------------


def test_keys_match_responses_and_acks_to_their_transactions() -> None:
    invite = make_request()
    assert client_key(response(invite, 180)) == client_key(invite)
    assert server_key(make_request("ACK")) == server_key(invite)
    cancel = make_request("CANCEL")
    assert server_key(cancel) != server_key(invite)
    assert server_key(cancel, method="INVITE") == server_key(invite)
    assert server_key(make_request(branch="z9hG4bK-other")) != server_key(invite)


def test_keys_fall_back_to_rfc_2543_matching_without_the_magic_cookie() -> None:
    old = make_request(branch="1234")
    ack = make_request("ACK", branch="1234")
    ack.headers.set("To", "<sip:agent@127.0.0.1>;tag=callee")  # the To tag is ignored
    assert server_key(old)[0] == "server2543"
    assert server_key(ack) == server_key(old)


def test_custom_timers_scale_every_schedule() -> None:
    config = TimerConfig(t1=0.1, t2=0.4, t4=0.5, timer_d=1.0)
    tx = ClientNonInviteTransaction(make_request("OPTIONS"), UDP, config, now=0.0)
    tx.start()
    fired = run_schedule(tx, until=100.0)
    assert fired[-1][0] == pytest.approx(6.4)  # Timer F = 64*T1
    assert fired[-1][1] == [TimedOut("F"), Terminated()]


@pytest.mark.parametrize(
    "kwargs",
    [{"t1": 0.0}, {"t2": -1.0}, {"t4": 0.0}, {"timer_d": -1.0}, {"t1": 5.0, "t2": 4.0}],
)
def test_invalid_timer_configuration_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="invalid timer configuration"):
        TimerConfig(**kwargs)
