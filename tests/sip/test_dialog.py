"""Unit tests of dialog state, in-dialog requests and call outcomes (roost.sip.dialog).

test_core.py runs whole calls through the UA core; these check the dialog
rules of RFC 3261 §12 one at a time on hand-made messages (tags, Call-ID,
CSeq counters, route set order on each side, remote target, loose and strict
routing, ACK for 2xx, BYE both ways, CANCEL) and the full table that maps a
final response to Bluejay's outcome vocabulary (bluejay-protocol.md §1.2).
"""

from __future__ import annotations

import pytest

from roost.caller.driver import CallStatus, FailureBucket
from roost.sip.dialog import (
    Dialog,
    DialogState,
    build_cancel,
    cancelled,
    completed,
    dropped,
    failure_outcome,
    no_answer,
    no_connection,
    peer_for_uri,
)
from roost.sip.headers import Address, Uri
from roost.sip.message import SipRequest, SipResponse, make_response, parse_message
from roost.sip.transaction import Peer

INVITE = (
    b"INVITE sip:agent@127.0.0.1:5090 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-dlg-1\r\n"
    b"Max-Forwards: 70\r\n"
    b"Record-Route: <sip:p1@10.0.0.1;lr>, <sip:p2@10.0.0.2;lr>\r\n"
    b"Route: <sip:p1@10.0.0.1;lr>\r\n"
    b'From: "Roost" <sip:roost@127.0.0.1:5062>;tag=uac-tag\r\n'
    b"To: <sip:agent@127.0.0.1:5090>\r\n"
    b"Call-ID: dialog-unit@127.0.0.1\r\n"
    b"CSeq: 41 INVITE\r\n"
    b"Contact: <sip:roost@127.0.0.1:5062>\r\n\r\n"
)
UAC_VIA = "SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-next"
UAS_VIA = "SIP/2.0/UDP 127.0.0.1:5090;branch=z9hG4bK-uas"


def invite() -> SipRequest:
    msg = parse_message(INVITE)
    assert isinstance(msg, SipRequest)
    return msg


def answer(request: SipRequest, status: int = 200, contact: str | None = None) -> SipResponse:
    response = make_response(request, status, to_tag="uas-tag")
    response.headers.add("Contact", contact or "<sip:agent@192.0.2.9:5090;transport=tcp>")
    # As the UAC receives it: Record-Route echoed in the proxies' order.
    return response


def reparse(request: SipRequest) -> SipRequest:
    msg = parse_message(request.to_bytes())
    assert isinstance(msg, SipRequest)
    return msg


def test_the_callers_dialog_takes_tags_call_id_target_and_reversed_routes() -> None:
    inv = invite()
    dialog = Dialog.from_response(inv, answer(inv))
    assert dialog.call_id == "dialog-unit@127.0.0.1"
    assert (dialog.local_tag, dialog.remote_tag) == ("uac-tag", "uas-tag")
    assert dialog.local.display_name == "Roost"
    assert str(dialog.remote_target) == "sip:agent@192.0.2.9:5090;transport=tcp"
    assert [r.uri.user for r in dialog.route_set] == ["p2", "p1"]  # reversed for the UAC
    assert dialog.local_seq == 41 and dialog.remote_seq is None
    assert dialog.state is DialogState.CONFIRMED


def test_a_tagged_provisional_makes_an_early_dialog() -> None:
    inv = invite()
    dialog = Dialog.from_response(inv, answer(inv, 180))
    assert dialog.state is DialogState.EARLY and dialog.remote_tag == "uas-tag"


def test_without_a_contact_the_caller_targets_the_request_uri() -> None:
    inv = invite()
    response = make_response(inv, 200, to_tag="t")
    assert Dialog.from_response(inv, response).remote_target == inv.request_uri


def test_the_callees_dialog_keeps_the_route_order_and_its_own_tag() -> None:
    inv = invite()
    dialog = Dialog.from_request(inv, local_tag="uas-tag", local_seq=1000)
    assert (dialog.local_tag, dialog.remote_tag) == ("uas-tag", "uac-tag")
    assert str(dialog.remote_target) == "sip:roost@127.0.0.1:5062"
    assert [r.uri.user for r in dialog.route_set] == ["p1", "p2"]  # not reversed for the UAS
    assert dialog.remote_seq == 41 and dialog.local_seq == 1000
    assert dialog.state is DialogState.EARLY


def test_an_rfc_2543_invite_without_contact_targets_the_from_uri() -> None:
    inv = invite()
    inv.headers.remove("Contact")
    dialog = Dialog.from_request(inv, local_tag="x", local_seq=1)
    assert str(dialog.remote_target) == "sip:roost@127.0.0.1:5062"


def test_the_ack_for_a_2xx_reuses_the_invite_cseq_and_goes_to_the_target() -> None:
    inv = invite()
    dialog = Dialog.from_response(inv, answer(inv))
    ack = reparse(dialog.request("ACK", via=UAC_VIA, cseq=inv.cseq.seq))
    assert ack.method == "ACK"
    assert ack.uri == "sip:agent@192.0.2.9:5090;transport=tcp"  # loose routing: the target
    assert (ack.cseq.seq, ack.cseq.method) == (41, "ACK")
    assert ack.top_via.branch == "z9hG4bK-next"  # a new branch, not the INVITE's
    assert ack.from_.tag == "uac-tag" and ack.to.tag == "uas-tag"
    assert ack.call_id == inv.call_id
    assert ack.headers.get_all("route") == ["<sip:p2@10.0.0.2;lr>", "<sip:p1@10.0.0.1;lr>"]
    assert ack.max_forwards == 70
    assert dialog.local_seq == 41  # an ACK does not use up a CSeq number


def test_the_callers_bye_takes_the_next_cseq() -> None:
    inv = invite()
    dialog = Dialog.from_response(inv, answer(inv))
    bye = reparse(dialog.request("BYE", via=UAC_VIA))
    assert (bye.cseq.seq, bye.cseq.method) == (42, "BYE")
    info = reparse(dialog.request("INFO", via=UAC_VIA, body=b"x", content_type="text/plain"))
    assert info.cseq.seq == 43 and info.content_type == "text/plain" and info.body == b"x"
    assert dialog.local_seq == 43


def test_the_callees_bye_swaps_from_and_to() -> None:
    inv = invite()
    dialog = Dialog.from_request(inv, local_tag="uas-tag", local_seq=1000)
    bye = reparse(dialog.request("BYE", via=UAS_VIA, headers=[("X-Reason", "done")]))
    assert bye.uri == "sip:roost@127.0.0.1:5062"
    assert bye.from_.tag == "uas-tag" and bye.from_.uri.user == "agent"
    assert bye.to.tag == "uac-tag" and bye.to.uri.user == "roost"
    assert bye.call_id == inv.call_id
    assert (bye.cseq.seq, bye.cseq.method) == (1001, "BYE")
    assert bye.headers.get_all("route") == ["<sip:p1@10.0.0.1;lr>", "<sip:p2@10.0.0.2;lr>"]
    assert bye.headers.get("x-reason") == "done"


def test_strict_routing_puts_the_first_route_in_the_request_uri() -> None:
    dialog = Dialog(
        call_id="c",
        local=Address.parse("<sip:a@h>;tag=1"),
        remote=Address.parse("<sip:b@h>;tag=2"),
        remote_target=Uri.parse("sip:b@192.0.2.1:5070"),
        route_set=[
            Address.parse("<sip:strict@10.0.0.1;maddr=10.0.0.1?X-H=1>"),
            Address.parse("<sip:p2@10.0.0.2;lr>"),
        ],
    )
    uri, routes, hop = dialog.next_hop()
    assert uri == "sip:strict@10.0.0.1;maddr=10.0.0.1"  # ?headers are not allowed there
    assert routes == ["<sip:p2@10.0.0.2;lr>", "<sip:b@192.0.2.1:5070>"]
    assert hop.host == "10.0.0.1"
    dialog.route_set = []
    assert dialog.next_hop() == ("sip:b@192.0.2.1:5070", [], dialog.remote_target)


def test_the_remote_cseq_must_increase_except_for_ack_and_cancel() -> None:
    inv = invite()
    dialog = Dialog.from_request(inv, local_tag="t", local_seq=1)

    def peer_request(method: str, seq: int) -> SipRequest:
        msg = parse_message(
            INVITE.replace(b"41 INVITE", f"{seq} {method}".encode()).replace(
                b"INVITE sip:", f"{method} sip:".encode(), 1
            )
        )
        assert isinstance(msg, SipRequest)
        return msg

    assert dialog.check_remote_seq(peer_request("ACK", 41))
    assert not dialog.check_remote_seq(peer_request("INFO", 41))  # repeated
    assert dialog.check_remote_seq(peer_request("INFO", 42))
    assert dialog.remote_seq == 42
    assert not dialog.check_remote_seq(peer_request("BYE", 40))  # lower: answer 500
    assert dialog.check_remote_seq(peer_request("CANCEL", 1))
    assert dialog.check_remote_seq(peer_request("BYE", 50)) and dialog.remote_seq == 50


def test_a_target_refresh_moves_the_remote_target() -> None:
    inv = invite()
    dialog = Dialog.from_response(inv, answer(inv))
    dialog.refresh_target([])
    assert dialog.remote_target.host == "192.0.2.9"
    dialog.refresh_target([Address.parse("<sip:agent@198.51.100.4:6000>")])
    bye = dialog.request("BYE", via=UAC_VIA)
    assert bye.uri == "sip:agent@198.51.100.4:6000"


def test_cancel_copies_the_invite_branch_and_cseq_number() -> None:
    inv = invite()
    cancel = reparse(build_cancel(inv))
    assert cancel.method == "CANCEL" and cancel.uri == inv.uri
    assert [v.branch for v in cancel.via] == ["z9hG4bK-dlg-1"]
    assert (cancel.cseq.seq, cancel.cseq.method) == (41, "CANCEL")
    assert cancel.to.tag is None and cancel.from_.tag == "uac-tag"
    assert cancel.call_id == inv.call_id
    assert cancel.headers.get_all("route") == ["<sip:p1@10.0.0.1;lr>"]


@pytest.mark.parametrize(
    ("uri", "default", "expected"),
    [
        ("sip:agent@127.0.0.1", "UDP", Peer("127.0.0.1", 5060, "UDP")),
        ("sip:agent@127.0.0.1:5090;transport=tcp", "UDP", Peer("127.0.0.1", 5090, "TCP")),
        ("sip:agent@127.0.0.1:5090", "TCP", Peer("127.0.0.1", 5090, "TCP")),
        ("sips:agent@example.test", "UDP", Peer("example.test", 5061, "TLS")),
        ("sip:agent@[::1]:5070", "UDP", Peer("::1", 5070, "UDP")),
    ],
)
def test_peer_for_uri(uri: str, default: str, expected: Peer) -> None:
    assert peer_for_uri(Uri.parse(uri), default) == expected


@pytest.mark.parametrize(
    ("status", "call_status", "error_code", "bucket"),
    [
        (486, CallStatus.REJECTED, "CALL_REJECTED", FailureBucket.NO_ANSWER),
        (600, CallStatus.REJECTED, "CALL_REJECTED", FailureBucket.NO_ANSWER),
        (603, CallStatus.REJECTED, "CALL_REJECTED", FailureBucket.NO_ANSWER),
        (401, CallStatus.REJECTED, "SIP_AUTH_FAILED", FailureBucket.NO_CONNECTION),
        (403, CallStatus.REJECTED, "SIP_AUTH_FAILED", FailureBucket.NO_CONNECTION),
        (407, CallStatus.REJECTED, "SIP_AUTH_FAILED", FailureBucket.NO_CONNECTION),
        (408, CallStatus.NO_ANSWER, "NO_ANSWER", FailureBucket.NO_ANSWER),
        (480, CallStatus.NO_ANSWER, "NO_ANSWER", FailureBucket.NO_ANSWER),
        (404, CallStatus.INCOMPLETED, "INVALID_SIP_DESTINATION", FailureBucket.NO_CONNECTION),
        (410, CallStatus.INCOMPLETED, "INVALID_SIP_DESTINATION", FailureBucket.NO_CONNECTION),
        (416, CallStatus.INCOMPLETED, "INVALID_SIP_DESTINATION", FailureBucket.NO_CONNECTION),
        (484, CallStatus.INCOMPLETED, "INVALID_SIP_DESTINATION", FailureBucket.NO_CONNECTION),
        (485, CallStatus.INCOMPLETED, "INVALID_SIP_DESTINATION", FailureBucket.NO_CONNECTION),
        (604, CallStatus.INCOMPLETED, "INVALID_SIP_DESTINATION", FailureBucket.NO_CONNECTION),
        (302, CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION),
        (488, CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION),
        (500, CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION),
        (503, CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION),
        (606, CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION),
    ],
)
def test_every_final_response_maps_to_its_bluejay_outcome(
    status: int, call_status: CallStatus, error_code: str, bucket: FailureBucket
) -> None:
    reason = failure_outcome(status, "Phrase")
    assert (reason.status, reason.error_code, reason.bucket) == (call_status, error_code, bucket)
    assert reason.sip_status == status
    assert reason.detail == f"{status} Phrase"
    assert reason.ended_by is None


def test_failure_detail_can_be_given() -> None:
    assert failure_outcome(486, "Busy", detail="agent busy").detail == "agent busy"
    assert failure_outcome(503).detail == "503"


def test_local_outcomes() -> None:
    timeout = no_answer("ringing timeout", 487)
    assert (timeout.status, timeout.error_code, timeout.bucket, timeout.sip_status) == (
        CallStatus.NO_ANSWER,
        "NO_ANSWER",
        FailureBucket.NO_ANSWER,
        487,
    )
    unreachable = no_connection("Timer B")
    assert (unreachable.status, unreachable.error_code, unreachable.bucket) == (
        CallStatus.INCOMPLETED,
        "SIP_DIAL_FAILED",
        FailureBucket.NO_CONNECTION,
    )
    gone = cancelled("hung up while ringing")
    assert (gone.error_code, gone.bucket, gone.ended_by) == (
        "CALL_CANCELLED",
        FailureBucket.NO_ANSWER,
        "local",
    )
    done = completed("remote")
    assert (done.status, done.error_code, done.bucket, done.ended_by) == (
        CallStatus.COMPLETED,
        None,
        None,
        "remote",
    )
    lost = dropped("SIP_ACK_TIMEOUT", "no ACK")
    assert (lost.status, lost.error_code, lost.bucket) == (
        CallStatus.INCOMPLETED,
        "SIP_ACK_TIMEOUT",
        FailureBucket.CALL_DROPPED,
    )
