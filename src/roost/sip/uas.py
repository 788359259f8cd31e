"""The answering half of the SIP user agent core (the UAS role).

:class:`Answering` handles every request that arrives: it matches
retransmissions and ACKs to their server transactions, refuses what the core
does not support with the right status (see :mod:`roost.sip.core` for the
list), creates a :class:`~roost.sip.events.Call` for each new INVITE (after a
100 Trying) and runs in-dialog requests: BYE, re-INVITE, INFO, OPTIONS. Its
public commands answer incoming calls: :meth:`~Answering.ring`,
:meth:`~Answering.answer` and :meth:`~Answering.reject`.

A 2xx is retransmitted by the core itself (T1 doubling up to T2, UDP only)
until the ACK arrives; without an ACK within 64*T1 the call is ended with a
BYE (RFC 3261 §13.3.1.4). A hangup requested before the ACK waits for it.

Example:
    >>> from roost.sip import CoreConfig, Peer, SipCore
    >>> agent = SipCore(CoreConfig(host="127.0.0.1", port=5090))
    >>> agent.receive_data(
    ...     b"OPTIONS sip:agent@127.0.0.1:5090 SIP/2.0\\r\\n"
    ...     b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKa\\r\\n"
    ...     b"From: <sip:p@127.0.0.1>;tag=1\\r\\nTo: <sip:agent@127.0.0.1>\\r\\n"
    ...     b"Call-ID: o1\\r\\nCSeq: 1 OPTIONS\\r\\n\\r\\n", Peer("127.0.0.1", 5070), now=0.0)
    >>> agent.data_to_send()[0].data.split(b"\\r\\n")[0]
    b'SIP/2.0 200 OK'
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from roost.sip.dialog import Dialog, DialogState, cancelled, completed, dropped, failure_outcome
from roost.sip.errors import SdpError, SipStateError
from roost.sip.events import (
    Call,
    CallConfirmed,
    CallState,
    IncomingCall,
    InDialogRequest,
    SessionUpdated,
)
from roost.sip.headers import quote
from roost.sip.message import SipRequest
from roost.sip.sdp import SessionDescription, answer_offer, media_from_answer, negotiate_answer
from roost.sip.transaction import (
    Peer,
    ServerInviteTransaction,
    ServerNonInviteTransaction,
    Transaction,
    server_key,
)
from roost.sip.uabase import ALLOW, NOT_ALLOWED_METHODS, SDP_ACCEPTS, TxOwner, UaBase

__all__ = ["Answering"]


class Answering(UaBase):
    """Request handling and the commands that answer incoming calls."""

    def ring(self, call: Call, now: float, *, status: int = 180) -> None:
        """Send a provisional response (180 Ringing by default) to an incoming call."""
        self._require(call, "uas", CallState.INCOMING)
        if not 100 < status < 200:
            raise ValueError("ring() sends a 101-199 provisional response")
        tx = self._server_tx(call)
        contact = self._contact(call.peer.transport)
        self._respond(tx, status, call=call, headers=[("Contact", contact)], now=now)

    def answer(
        self,
        call: Call,
        now: float,
        *,
        sdp: SessionDescription | None = None,
        rtp: tuple[str, int] | None = None,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Answer an incoming call with 200 OK.

        Args:
            call: The incoming call.
            now: Current time.
            sdp: Our SDP: the answer to the caller's offer, or our offer when
                the INVITE had none.
            rtp: Alternatively ``(address, port)`` of our RTP socket: the core
                builds the answer with the configured codecs.
            headers: Extra headers for the 200.

        Raises:
            SipStateError: when the call is not ringing, or no SDP can be made.
            SdpError: when ``rtp`` is given and the offer cannot be answered.
        """
        self._require(call, "uas", CallState.INCOMING)
        if sdp is None:
            if rtp is None or call.remote_sdp is None:
                raise SipStateError("answer() needs sdp=, or rtp= when the INVITE had an offer")
            sdp, media = answer_offer(
                call.remote_sdp,
                rtp[0],
                rtp[1],
                codecs=self.config.codecs,
                session_id=self._rng.getrandbits(31),
            )
            call.media = media
        elif call.remote_sdp is not None:
            call.media = media_from_answer(call.remote_sdp, sdp)
        call.local_sdp = sdp
        call.dialog = Dialog.from_request(call.invite, call.local_tag, self._rng.getrandbits(20))
        call.dialog.state = DialogState.CONFIRMED
        tx = self._server_tx(call)
        extra = [("Contact", self._contact(call.peer.transport)), ("Allow", ALLOW), *headers]
        wire = self._respond(
            tx, 200, call=call, headers=extra, body=sdp.to_bytes(), content_type=True, now=now
        )
        call.state = CallState.ANSWERED
        call.answered_at = now
        call.last_status = 200
        self._expect_ack(call, wire, call.invite.cseq.seq, tx.peer, now)

    def reject(
        self,
        call: Call,
        now: float,
        status: int = 486,
        reason: str | None = None,
        *,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Refuse an incoming call with a 300-699 response (486 Busy Here by default).

        A 401 with a ``WWW-Authenticate`` header (see
        :class:`~roost.sip.digest.DigestServer`) challenges the caller: its
        authenticated retry arrives as a new :class:`IncomingCall`.
        """
        self._require(call, "uas", CallState.INCOMING)
        if not 300 <= status <= 699:
            raise ValueError("reject() needs a 300-699 status")
        tx = self._server_tx(call)
        self._respond(tx, status, reason, call=call, headers=list(headers), now=now)
        call.last_status = status
        outcome = failure_outcome(status, reason or "")
        self._end(call, replace(outcome, ended_by="local"), now)

    def _on_request(self, request: SipRequest, peer: Peer, now: float) -> None:
        via = request.top_via
        fixed = via
        if via.host != peer.host or via.param("rport") is not None:
            fixed = fixed.with_param("received", peer.host)
        if via.param("rport") == "":
            fixed = fixed.with_param("rport", str(peer.port))
        if fixed is not via:
            request.headers.replace_first("Via", str(fixed))
        key = server_key(request)
        tx = self._transactions.get(key)
        if tx is not None:
            self._process(tx, tx.receive_request(request, now), now)  # type: ignore[attr-defined]
            return
        if request.method == "ACK":
            self._on_ack(request, now)
            return
        reply_to = self._response_peer(request, peer)
        new_tx: Transaction
        if request.method == "INVITE":
            new_tx = ServerInviteTransaction(request, reply_to, self.config.timers)
        else:
            new_tx = ServerNonInviteTransaction(request, reply_to, self.config.timers)
        self._add(new_tx, None)
        if not request.request_uri.is_sip:
            self._refuse(new_tx, 416, f"cannot route {request.request_uri.scheme}: URIs", now)
            return
        if request.method == "CANCEL":
            self._on_cancel(request, new_tx, now)
            return
        required = [r for r in request.headers.get_all("require") if r]
        if required:
            self._refuse(
                new_tx,
                420,
                f"unsupported extensions {', '.join(required)}",
                now,
                headers=[("Unsupported", ", ".join(required))],
            )
            return
        if request.to.tag:
            self._on_in_dialog(request, new_tx, now)
        elif request.method == "INVITE":
            self._on_invite(request, new_tx, peer, now)
        elif request.method == "OPTIONS":
            self._respond(new_tx, 200, headers=self._capabilities(), now=now)
        elif request.method in ("BYE", "INFO", "ACK"):
            self._refuse(new_tx, 481, f"{request.method} outside any dialog", now)
        elif request.method in NOT_ALLOWED_METHODS:
            self._refuse(new_tx, 405, f"{request.method} is not supported", now, allow=True)
        else:
            self._refuse(new_tx, 501, f"unknown method {request.method}", now, allow=True)

    def _on_invite(self, request: SipRequest, tx: Transaction, peer: Peer, now: float) -> None:
        merged = (request.call_id, request.from_.tag or "", request.cseq.seq)
        if merged in self._merged:
            self._refuse(tx, 482, "same INVITE arrived on another branch (merged request)", now)
            return
        content_type = request.content_type
        if request.body and content_type not in (None, "application/sdp"):
            self._refuse(
                tx,
                415,
                f"body type {content_type} is not application/sdp",
                now,
                headers=[("Accept", "application/sdp")],
            )
            return
        accepts = [a.split(";", 1)[0].strip().lower() for a in request.headers.get_all("accept")]
        if accepts and not SDP_ACCEPTS.intersection(accepts):
            self._refuse(tx, 406, "the caller does not accept application/sdp", now)
            return
        offer: SessionDescription | None = None
        if request.body.strip():
            try:
                offer = SessionDescription.parse(request.body)
                answer_offer(offer, "0.0.0.0", 9, codecs=self.config.codecs)
            except SdpError as exc:
                warning = f"{305 if exc.status == 488 else 399} roost {quote(exc.reason[:200])}"
                self._refuse(tx, exc.status, exc.reason, now, headers=[("Warning", warning)])
                return
        call = Call(
            call_id=request.call_id,
            role="uas",
            state=CallState.INCOMING,
            invite=request,
            peer=peer,
            local_tag=self._new_tag(),
            started_at=now,
            remote_sdp=offer,
        )
        call._server_tx = tx.key
        self._owners[tx.key] = TxOwner("invite", call)
        self._calls[(call.call_id, call.local_tag)] = call
        self._merged[merged] = call
        self.stats.calls_in += 1
        self._respond(tx, 100, now=now)
        self._events.append(IncomingCall(call, request, offer))

    def _on_cancel(self, request: SipRequest, tx: Transaction, now: float) -> None:
        invite_tx = self._transactions.get(server_key(request, method="INVITE"))
        owner = self._owners.get(invite_tx.key) if invite_tx is not None else None
        if invite_tx is None:
            self._refuse(tx, 481, "no INVITE to cancel", now)
            return
        self._respond(tx, 200, now=now)
        call = owner.call if owner is not None else None
        if call is not None and call.state is CallState.INCOMING:
            assert isinstance(invite_tx, ServerInviteTransaction)
            self._respond(invite_tx, 487, call=call, now=now)
            call.last_status = 487
            self._end(call, cancelled("the caller cancelled", 487, "remote"), now)

    def _on_in_dialog(self, request: SipRequest, tx: Transaction, now: float) -> None:
        call = self._calls.get((request.call_id, request.to.tag or ""))
        dialog = call.dialog if call is not None else None
        if call is None or dialog is None or (request.from_.tag or "") != dialog.remote_tag:
            self._refuse(tx, 481, "no such dialog", now)
            return
        if not dialog.check_remote_seq(request):
            self._refuse(
                tx, 500, "CSeq lower than the dialog's", now, headers=[("Retry-After", "1")]
            )
            return
        method = request.method
        if method == "BYE":
            self._respond(tx, 200, now=now)
            if call.answered_at is not None:
                self._end(call, completed("remote"), now)
            else:
                self._end(
                    call, cancelled("the peer sent BYE before answering", None, "remote"), now
                )
        elif method == "INVITE":
            self._on_reinvite(call, request, tx, now)
        elif method == "INFO":
            self._respond(tx, 200, now=now)
            self._events.append(InDialogRequest(call, request))
        elif method == "OPTIONS":
            self._respond(tx, 200, headers=self._capabilities(), now=now)
        elif method in NOT_ALLOWED_METHODS:
            self._refuse(tx, 405, f"{method} is not supported", now, allow=True)
        else:
            self._refuse(tx, 501, f"unknown method {method}", now, allow=True)

    def _on_reinvite(self, call: Call, request: SipRequest, tx: Transaction, now: float) -> None:
        dialog = call.dialog
        assert dialog is not None
        if call.state is not CallState.CONFIRMED or call._ok_wire is not None:
            self._refuse(tx, 491, "another INVITE is in progress", now)
            return
        self._owners[tx.key] = TxOwner("reinvite", call)
        local = call.local_sdp
        answer = local
        if request.body.strip():
            audio = (
                next((m for m in local.media if m.media == "audio" and m.port), None)
                if local
                else None
            )
            address = local.connection_for(audio) if local and audio else None
            if local is None or audio is None or address is None:
                self._refuse(tx, 488, "no local media to answer with", now)
                return
            try:
                offer = SessionDescription.parse(request.body)
                answer, media = answer_offer(
                    offer,
                    address,
                    audio.port,
                    codecs=self.config.codecs,
                    session_id=int(local.origin.session_id)
                    if local.origin.session_id.isdigit()
                    else 0,
                    session_version=local.origin.version,
                    username=local.origin.username,
                    prefer=call.media.codec if call.media else None,
                )
            except SdpError as exc:
                self._refuse(tx, exc.status, exc.reason, now)
                return
            if answer.media != local.media:
                answer.origin.version = local.origin.version + 1
            call.local_sdp, call.remote_sdp, call.media = answer, offer, media
        dialog.refresh_target(request.contact)
        extra = [("Contact", self._contact(call.peer.transport)), ("Allow", ALLOW)]
        body = answer.to_bytes() if answer is not None else b""
        wire = self._respond(
            tx, 200, call=call, headers=extra, body=body, content_type=True, now=now
        )
        self._expect_ack(call, wire, request.cseq.seq, tx.peer, now)
        self._events.append(SessionUpdated(call, request, call.media))

    def _on_ack(self, ack: SipRequest, now: float) -> None:
        call = self._calls.get((ack.call_id, ack.to.tag or ""))
        if call is None or call._ok_cseq is None or ack.cseq.seq != call._ok_cseq:
            return
        call._ok_cseq = call._ok_next = call._ack_deadline = None
        call._ok_wire = None
        if call.state is not CallState.ANSWERED:
            return
        if call.remote_sdp is None and call.local_sdp is not None:
            try:
                call.remote_sdp = SessionDescription.parse(ack.body)
                call.media = negotiate_answer(call.local_sdp, call.remote_sdp)
            except SdpError as exc:
                call.state = CallState.CONFIRMED
                reason = dropped(
                    "SIP_DIAL_FAILED", f"no usable SDP answer in the ACK: {exc.reason}"
                )
                self._send_bye(call, now, reason)
                return
        call.state = CallState.CONFIRMED
        self._events.append(CallConfirmed(call, ack, call.media))
        if call._hangup_pending:
            self._send_bye(call, now, completed("local"))
