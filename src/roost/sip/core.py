"""The SIP user agent core: what a driver talks to.

:class:`SipCore` ties the parser, the transaction machines, dialogs, digest
and SDP together into one sans-I/O object for both roles (it places calls and
answers them, over UDP and TCP at once). A driver does four things:

1. pass what arrives: :meth:`~SipCore.receive_data` (a UDP datagram, or bytes
   from a TCP connection: the core frames each connection), and report
   :meth:`~SipCore.transport_error` / :meth:`~SipCore.connection_lost`;
2. honour time: call :meth:`~SipCore.handle_timeout` once
   :meth:`~SipCore.next_deadline` is reached;
3. drain :meth:`~SipCore.data_to_send` (:class:`Transmit`/:class:`Disconnect`)
   and :meth:`~SipCore.events_received` after every input;
4. issue commands: :meth:`~SipCore.invite`, :meth:`~SipCore.cancel`,
   :meth:`~SipCore.hangup`, :meth:`~SipCore.options`; and for incoming calls
   :meth:`~SipCore.ring`, :meth:`~SipCore.answer`, :meth:`~SipCore.reject`.

Every input and command takes ``now`` (a monotonic time in seconds); the core
never reads a clock, opens a socket or sleeps.

What the core does on its own, so drivers cannot get it wrong:

* 100 Trying for every INVITE; the ACK of a non-2xx inside the transaction;
  the ACK of a 2xx (and again for every retransmitted 2xx); 2xx retransmission
  until the ACK (UDP) and a BYE if none comes within 64*T1 (§13.3.1.4);
* CANCEL only after a provisional response (§9.1), and giving up 64*T1 later;
  ACK + BYE for a 2xx that raced a CANCEL, or from a second fork;
* one digest retry per challenge (a second only for ``stale=true``), with a
  new CSeq and branch and the same Call-ID and From tag;
* answers: OPTIONS -> 200 with Allow/Accept; unknown in-dialog dialogs -> 481;
  a lower CSeq -> 500; a re-INVITE -> 200 with our SDP (keeping the current
  codec first; 491 while another INVITE is pending, 488 if unusable);
  INFO -> 200 (reported); REGISTER/SUBSCRIBE/REFER/... -> 405; other methods
  -> 501; a non-SIP Request-URI -> 416; ``Require`` of any extension -> 420;
  an INVITE body that is not SDP -> 415; an Accept without SDP -> 406; an
  unusable offer -> 488; a merged request -> 482; a malformed request -> 400
  (505 for another SIP version); responses with more than one Via or not
  addressed to us are dropped (§8.1.3.3, §18.1.2);
* ``received``/``rport`` on the top Via of requests (§18.2.1, RFC 3581) and
  responses sent back to the source port when ``rport`` asks for it.

In-dialog requests over TCP reuse the connection the dialog was set up on
(connection reuse, as in RFC 5923) rather than opening one to the Contact.

Example:
    >>> from roost.sip import SipCore, CoreConfig, Peer
    >>> core = SipCore(CoreConfig(host="127.0.0.1", port=5062))
    >>> call = core.invite("sip:agent@127.0.0.1:5090", now=0.0,
    ...                    headers=[("X-Simulation-Result-Id", "720488")])
    >>> out = core.data_to_send()
    >>> out[0].peer, b"X-Simulation-Result-Id: 720488" in out[0].data
    (Peer(host='127.0.0.1', port=5090, transport='UDP'), True)
    >>> core.next_deadline()  # Timer A
    0.5
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from roost.sip.dialog import (
    Dialog,
    EndReason,
    build_cancel,
    cancelled,
    completed,
    dropped,
    failure_outcome,
    no_answer,
    no_connection,
    peer_for_uri,
)
from roost.sip.digest import Challenge, Credentials, DigestClient
from roost.sip.errors import DigestError, SdpError, SipParseError, SipStateError
from roost.sip.events import (
    Call,
    CallAnswered,
    CallProgress,
    CallState,
    Disconnect,
    MalformedInput,
    OptionsResult,
)
from roost.sip.framing import KeepAlive, MalformedMessage, StreamFramer
from roost.sip.headers import Uri, header_key
from roost.sip.message import Headers, SipRequest, SipResponse, parse_message
from roost.sip.sdp import SessionDescription, negotiate_answer
from roost.sip.transaction import (
    ClientInviteTransaction,
    ClientNonInviteTransaction,
    Peer,
    Transaction,
    client_key,
)
from roost.sip.uabase import ALLOW, RESERVED_HEADERS, CoreConfig, CoreStats, TxOwner
from roost.sip.uas import Answering

__all__ = ["CoreConfig", "CoreStats", "SipCore"]


class SipCore(Answering):
    """A sans-I/O SIP user agent (see the module docstring).

    Args:
        config: Addresses, timers, codecs and limits.
    """

    def receive_data(self, data: bytes, peer: Peer, now: float) -> None:
        """Take bytes from ``peer``: one UDP datagram, or a chunk of a TCP stream."""
        if peer.transport == "UDP":
            if not data.strip(b"\r\n\t "):
                return
            try:
                message = parse_message(data, self.config.limits)
            except SipParseError as exc:
                self._malformed(data, exc, peer)
                return
            self.receive_message(message, peer, now)
            return
        framer = self._framers.get(peer)
        if framer is None:
            framer = self._framers[peer] = StreamFramer(self.config.limits)
        try:
            items = framer.feed(data)
        except SipParseError as exc:
            del self._framers[peer]
            self.stats.malformed += 1
            self._events.append(MalformedInput(peer, exc))
            self._outbox.append(Disconnect(peer, exc.reason))
            return
        for item in items:
            if item is KeepAlive:
                self._transmit(b"\r\n", peer)
            elif isinstance(item, MalformedMessage):
                self._malformed(item.raw, item.error, peer)
            elif isinstance(item, SipRequest | SipResponse):
                self.receive_message(item, peer, now)

    def receive_message(self, message: SipRequest | SipResponse, peer: Peer, now: float) -> None:
        """Take one parsed message from ``peer``."""
        self.stats.received += 1
        try:
            if isinstance(message, SipRequest):
                self._on_request(message, peer, now)
            else:
                self._on_response(message, peer, now)
        except SipParseError as exc:
            # A header the parser validates lazily (Route, Record-Route...) is bad.
            self._malformed(message.to_bytes(), exc, peer)

    def transport_error(self, peer: Peer, now: float, detail: str = "unreachable") -> None:
        """The driver could not send to ``peer`` (ICMP error, TCP connect failure)."""
        for tx in [t for t in self._transactions.values() if t.peer == peer]:
            self._process(tx, tx.transport_failed(detail), now)

    def connection_lost(self, peer: Peer, now: float) -> None:
        """A TCP connection closed: forget its framer, fail what was waiting on it."""
        self._framers.pop(peer, None)
        self.transport_error(peer, now, "connection closed")

    def invite(
        self,
        target: str | Uri,
        now: float,
        *,
        sdp: SessionDescription | None = None,
        headers: Iterable[tuple[str, str]] = (),
        credentials: Credentials | None = None,
        ring_timeout: float | None = None,
        transport: str | None = None,
    ) -> Call:
        """Place a call.

        Args:
            target: SIP URI to call (``;transport=tcp`` selects TCP).
            now: Current time.
            sdp: Our offer (see :func:`~roost.sip.sdp.make_offer`). Without one,
                a 2xx carrying an offer is ACKed and the call hung up.
            headers: Extra headers, e.g. ``X-Simulation-Result-Id``; core-managed
                headers (Via, From, To, Call-ID, CSeq, Contact...) are refused.
            credentials: Digest credentials for a 401/407.
            ring_timeout: Seconds before the call is cancelled as NO_ANSWER
                (default: the config's).
            transport: ``UDP`` or ``TCP`` when the URI does not say.

        Raises:
            ValueError: when ``target`` is not a SIP URI or a header is not allowed.
            InvalidHeaderError: when a header name or value is malformed.
        """
        uri = target if isinstance(target, Uri) else Uri.parse(target)
        if not uri.is_sip:
            raise ValueError(f"can only call sip: or sips: URIs, not {uri.scheme}:")
        peer = peer_for_uri(uri, (transport or "UDP").upper())
        call_id = f"{self._rng.getrandbits(96):024x}@{self.config.host}"
        tag = self._new_tag()
        items = [
            ("Via", self._new_via(peer.transport)),
            ("Max-Forwards", "70"),
            ("From", str(self._local_address().with_tag(tag))),
            ("To", f"<{uri.bare()}>"),
            ("Call-ID", call_id),
            ("CSeq", "1 INVITE"),
            ("Contact", self._contact(peer.transport)),
            ("Allow", ALLOW),
            ("User-Agent", self.config.user_agent),
        ]
        request = SipRequest("INVITE", uri.bare(), Headers(items))
        for name, value in headers:
            if header_key(name) in RESERVED_HEADERS:
                raise ValueError(f"header {name} is managed by the SIP core")
            request.headers.add(name, value)
        if sdp is not None:
            request.headers.add("Content-Type", "application/sdp")
            request.body = sdp.to_bytes()
        call = Call(call_id, "uac", CallState.CALLING, request, peer, tag, now, local_sdp=sdp)
        if credentials is not None:
            call._auth = DigestClient(credentials, cnonce_factory=self._new_tag)
        timeout = ring_timeout if ring_timeout is not None else self.config.ring_timeout
        if timeout is not None:
            call._ring_deadline = now + timeout
        self._calls[(call_id, tag)] = call
        self.stats.calls_out += 1
        self._start_invite(call, request, now)
        self._timers.schedule(call)
        return call

    def cancel(self, call: Call, now: float, reason: EndReason | None = None) -> None:
        """Stop ringing: CANCEL the INVITE (as soon as a 1xx allows it).

        Raises:
            SipStateError: when the call was already answered (use :meth:`hangup`).
        """
        if call.ended or call.state is CallState.CANCELLING:
            return
        if call.role != "uac" or call.state not in (CallState.CALLING, CallState.PROCEEDING):
            raise SipStateError(f"cannot cancel a call in state {call.state}; use hangup()")
        call._cancel_reason = reason or cancelled("caller hung up before the answer")
        had_provisional = call.state is CallState.PROCEEDING
        call.state = CallState.CANCELLING
        call._ring_deadline = None
        call._cancel_deadline = now + self.config.timers.timeout
        if had_provisional:
            self._send_cancel(call, now)
        self._timers.schedule(call)

    def hangup(self, call: Call, now: float) -> None:
        """End the call from our side, whatever its state.

        Cancels a ringing outgoing call, declines (603) an unanswered incoming
        one, sends BYE on an answered one (after the ACK, for the callee).
        """
        state = call.state
        if state in (CallState.CALLING, CallState.PROCEEDING):
            self.cancel(call, now)
        elif state is CallState.INCOMING:
            self.reject(call, now, 603)
        elif state is CallState.ANSWERED:
            call._hangup_pending = True
        elif state is CallState.CONFIRMED:
            self._send_bye(call, now, completed("local"))

    def options(self, target: str | Uri, now: float, *, transport: str | None = None) -> str:
        """Send an out-of-dialog OPTIONS (a reachability probe).

        Returns:
            A request id; an :class:`~roost.sip.events.OptionsResult` with it follows.
        """
        uri = target if isinstance(target, Uri) else Uri.parse(target)
        if not uri.is_sip:
            raise ValueError(f"can only probe sip: or sips: URIs, not {uri.scheme}:")
        peer = peer_for_uri(uri, (transport or "UDP").upper())
        items = [
            ("Via", self._new_via(peer.transport)),
            ("Max-Forwards", "70"),
            ("From", str(self._local_address().with_tag(self._new_tag()))),
            ("To", f"<{uri.bare()}>"),
            ("Call-ID", f"{self._rng.getrandbits(96):024x}@{self.config.host}"),
            ("CSeq", "1 OPTIONS"),
            ("Contact", self._contact(peer.transport)),
            ("Accept", "application/sdp"),
            ("User-Agent", self.config.user_agent),
        ]
        request_id = f"options-{next(self._ids)}"
        request = SipRequest("OPTIONS", uri.bare(), Headers(items))
        tx = ClientNonInviteTransaction(request, peer, self.config.timers, now)
        self._add(tx, TxOwner("options", request_id=request_id))
        self._process(tx, tx.start(), now)
        return request_id

    def _on_response(self, response: SipResponse, peer: Peer, now: float) -> None:
        vias = response.via
        if len(vias) != 1 or vias[0].sent_by not in self._sent_by:
            self.stats.discarded += 1
            return
        tx = self._transactions.get(client_key(response))
        if tx is None:
            self.stats.discarded += 1
            return
        self._process(tx, tx.receive_response(response, now), now)  # type: ignore[attr-defined]

    def _on_invite_response(
        self, call: Call, tx: Transaction, response: SipResponse, now: float
    ) -> None:
        if tx.key != call._invite_tx:
            return
        status = response.status
        if status < 200:
            if call.ended:
                return
            call.last_status = status
            if call.state is CallState.CALLING:
                call.state = CallState.PROCEEDING
            if call.state is CallState.CANCELLING and not call._cancel_sent:
                self._send_cancel(call, now)
            self._events.append(CallProgress(call, response))
            return
        if status < 300:
            self._on_invite_2xx(call, response, now)
            return
        if call.ended:
            return
        call.last_status = status
        if status in (401, 407) and self._retry_with_auth(call, response, now):
            return
        if call.state is CallState.CANCELLING and call._cancel_reason is not None:
            reason = replace(call._cancel_reason, sip_status=status)
        else:
            reason = failure_outcome(status, response.reason)
        self._end(call, reason, now)

    def _on_invite_2xx(self, call: Call, response: SipResponse, now: float) -> None:
        tag = response.to.tag or ""
        if call.dialog is not None:
            if call.dialog.remote_tag == tag:
                if call._ack_wire is not None and call._ack_peer is not None:
                    self._transmit(call._ack_wire, call._ack_peer)
            else:
                self._reject_fork(call, response, now)
            return
        if call.ended:
            self._reject_fork(call, response, now)
            return
        call.last_status = response.status
        dialog = call.dialog = Dialog.from_response(call.invite, response)
        ack = dialog.request(
            "ACK", via=self._new_via(call.peer.transport), cseq=call.invite.cseq.seq
        )
        call._ack_wire = ack.to_bytes()
        call._ack_peer = self._dialog_peer(call)
        self._transmit(call._ack_wire, call._ack_peer)
        call.answered_at = now
        call._ring_deadline = None
        if call.state is CallState.CANCELLING and call._cancel_reason is not None:
            late = replace(call._cancel_reason, sip_status=response.status)
            self._send_bye(call, now, late)
            return
        media = None
        try:
            if call.local_sdp is not None:
                call.remote_sdp = SessionDescription.parse(response.body)
                media = negotiate_answer(call.local_sdp, call.remote_sdp)
            elif response.body.strip():
                raise SdpError("the 2xx carries an offer but we sent none to answer")
        except SdpError as exc:
            call.state = CallState.CONFIRMED
            self._send_bye(call, now, no_connection(f"media negotiation failed: {exc.reason}"))
            return
        call.media = media
        call.state = CallState.CONFIRMED
        self._events.append(CallAnswered(call, response, media))

    def _reject_fork(self, call: Call, response: SipResponse, now: float) -> None:
        """ACK and BYE a 2xx from a dialog we do not want (§13.2.2.4)."""
        stray = Dialog.from_response(call.invite, response)
        ack = stray.request(
            "ACK", via=self._new_via(call.peer.transport), cseq=call.invite.cseq.seq
        )
        _, _, hop = stray.next_hop()
        peer = call.peer if call.peer.reliable else peer_for_uri(hop, call.peer.transport)
        self._transmit(ack.to_bytes(), peer)
        bye = stray.request("BYE", via=self._new_via(call.peer.transport))
        tx = ClientNonInviteTransaction(bye, peer, self.config.timers, now)
        self._add(tx, TxOwner("stray"))
        self._process(tx, tx.start(), now)

    def _retry_with_auth(self, call: Call, response: SipResponse, now: float) -> bool:
        auth = call._auth
        if auth is None or call.state is CallState.CANCELLING or call.auth_attempts >= 2:
            return False
        challenge = _pick_challenge(auth, response)
        if challenge is None or (call.auth_attempts >= 1 and not challenge.stale):
            return False
        old = call.invite
        value = auth.authorize(challenge, "INVITE", old.uri, old.body)
        request = SipRequest("INVITE", old.uri, old.headers.copy(), old.body)
        request.headers.replace_first("Via", self._new_via(call.peer.transport))
        request.headers.set("CSeq", f"{old.cseq.seq + 1} INVITE")
        request.headers.remove("Authorization")
        request.headers.remove("Proxy-Authorization")
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        request.headers.add(name, value)
        call.invite = request
        call.auth_attempts += 1
        call.state = CallState.CALLING
        self._start_invite(call, request, now)
        return True

    def _start_invite(self, call: Call, request: SipRequest, now: float) -> None:
        tx = ClientInviteTransaction(request, call.peer, self.config.timers, now)
        call._invite_tx = tx.key
        self._add(tx, TxOwner("invite", call))
        self._process(tx, tx.start(), now)

    def _deliver(self, tx: Transaction, message: SipRequest | SipResponse, now: float) -> None:
        if isinstance(message, SipRequest):
            self._on_ack(message, now)
            return
        owner = self._owners.get(tx.key)
        if owner is None:
            return
        if owner.kind == "invite" and owner.call is not None:
            self._on_invite_response(owner.call, tx, message, now)
        elif owner.kind == "options" and message.status >= 200:
            self._events.append(OptionsResult(owner.request_id, message))
        elif owner.kind == "bye" and owner.call is not None and message.status >= 200:
            if message.status in (401, 407) and owner.attempts == 0:
                self._retry_bye(owner.call, tx.request, message, now)
            else:
                owner.call.bye_status = message.status

    def _retry_bye(self, call: Call, bye: SipRequest, response: SipResponse, now: float) -> None:
        challenge = _pick_challenge(call._auth, response) if call._auth is not None else None
        if challenge is None or call._auth is None or call.dialog is None:
            call.bye_status = response.status
            return
        name = "Authorization" if response.status == 401 else "Proxy-Authorization"
        value = call._auth.authorize(challenge, "BYE", bye.uri)
        retry = call.dialog.request(
            "BYE", via=self._new_via(call.peer.transport), headers=[(name, value)]
        )
        tx = ClientNonInviteTransaction(retry, self._dialog_peer(call), self.config.timers, now)
        self._add(tx, TxOwner("bye", call, attempts=1))
        self._process(tx, tx.start(), now)

    def _tx_failed(self, tx: Transaction, detail: str, now: float) -> None:
        owner = self._owners.get(tx.key)
        if owner is None:
            return
        call = owner.call
        if owner.kind == "invite" and call is not None and call._invite_tx == tx.key:
            if call.state not in (CallState.CALLING, CallState.PROCEEDING, CallState.CANCELLING):
                return
            reason = call._cancel_reason
            if reason is None or (
                call.last_status is None and reason.error_code != "CALL_CANCELLED"
            ):
                reason = no_connection(f"no response to the INVITE ({detail})")
            self._end(call, reason, now)
        elif owner.kind == "options":
            self._events.append(OptionsResult(owner.request_id, None, detail))

    def _call_timers(self, call: Call, now: float) -> None:
        timers = self.config.timers
        if call._ring_deadline is not None and now >= call._ring_deadline:
            waited = call._ring_deadline - call.started_at
            call._ring_deadline = None
            if call.state in (CallState.CALLING, CallState.PROCEEDING):
                self.cancel(
                    call, now, no_answer(f"no answer within {waited:g} s (ringing timeout)")
                )
        if call._cancel_deadline is not None and now >= call._cancel_deadline:
            call._cancel_deadline = None
            if call.state is CallState.CANCELLING and call._cancel_reason is not None:
                if call._invite_tx is not None:
                    self._transactions.pop(call._invite_tx, None)
                    self._owners.pop(call._invite_tx, None)
                self._end(call, call._cancel_reason, now)
        if call._ok_next is not None and now >= call._ok_next and call._ok_wire is not None:
            if call._ok_peer is not None:
                self._transmit(call._ok_wire, call._ok_peer)
            call._ok_interval = min(2 * call._ok_interval, timers.t2)
            call._ok_next += call._ok_interval
        if call._ack_deadline is not None and now >= call._ack_deadline:
            call._ack_deadline = call._ok_next = call._ok_cseq = None
            call._ok_wire = None
            if not call.ended:
                call.state = CallState.CONFIRMED
                reason = dropped("SIP_ACK_TIMEOUT", "no ACK for our 200 OK within 64*T1", "local")
                self._send_bye(call, now, reason)

    def _send_cancel(self, call: Call, now: float) -> None:
        tx = ClientNonInviteTransaction(
            build_cancel(call.invite), call.peer, self.config.timers, now
        )
        call._cancel_sent = True
        self._add(tx, TxOwner("cancel", call))
        self._process(tx, tx.start(), now)


def _pick_challenge(auth: DigestClient, response: SipResponse) -> Challenge | None:
    name = "www-authenticate" if response.status == 401 else "proxy-authenticate"
    for value in response.headers.get_all(name):
        try:
            challenge = Challenge.parse(value)
        except DigestError:
            continue
        if auth.can_answer(challenge):
            return challenge
    return None
