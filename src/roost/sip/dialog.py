"""Dialog state (RFC 3261 §12), in-dialog request builders, and call outcomes.

A dialog is the peer-to-peer relationship an INVITE creates, identified by the
Call-ID and the two tags. It remembers what every later request needs: the
remote target (the peer's Contact, where in-dialog requests go), the route set
(from Record-Route, reversed on the caller's side), and both CSeq counters
(ours increases with each request we send; theirs must increase, or the
request is answered 500).

:meth:`Dialog.request` builds BYE, INFO, re-INVITE and the ACK of a 2xx
(§13.2.2.4: CSeq number of the INVITE, new branch) with loose or strict
routing; :func:`build_cancel` builds a CANCEL from the INVITE it cancels (§9.1).

:func:`failure_outcome` maps a final response or a local failure to Bluejay's
vocabulary (bluejay-protocol.md §1.2) as an :class:`EndReason`:

===========================================  ===========  =======================  =============
Situation                                    status       error_code               bucket
===========================================  ===========  =======================  =============
486 Busy Here, 600 Busy Everywhere, 603      REJECTED     CALL_REJECTED            NO_ANSWER
401/407 (after the one retry), 403           REJECTED     SIP_AUTH_FAILED          NO_CONNECTION
408, 480, ringing timeout (our CANCEL)       NO_ANSWER    NO_ANSWER                NO_ANSWER
404, 410, 416, 484, 485, 604                 INCOMPLETED  INVALID_SIP_DESTINATION  NO_CONNECTION
no response at all (Timer B), unreachable    INCOMPLETED  SIP_DIAL_FAILED          NO_CONNECTION
any other 3xx-6xx (5xx, 488, 606...)         INCOMPLETED  SIP_DIAL_FAILED          NO_CONNECTION
caller hung up before the answer             INCOMPLETED  CALL_CANCELLED           NO_ANSWER
UAS: no ACK for our 2xx                      INCOMPLETED  SIP_ACK_TIMEOUT          CALL_DROPPED
BYE from either side after the answer        COMPLETED    -                        -
===========================================  ===========  =======================  =============

Timer B maps to NO_CONNECTION rather than NO_ANSWER: it only fires when not
even a 100 Trying came back, so nothing was ever ringing; a peer that rings
and never answers is our ringing timeout, which is NO_ANSWER. 3xx redirects
are not followed (the agent's SIP URI is configured, not discovered).

Example:
    >>> failure_outcome(486).error_code, failure_outcome(503).bucket
    ('CALL_REJECTED', <FailureBucket.NO_CONNECTION: 'NO_CONNECTION'>)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from roost.caller.driver import CallStatus, FailureBucket
from roost.sip.headers import Address, Uri
from roost.sip.message import Headers, SipRequest, SipResponse
from roost.sip.transaction import Peer

__all__ = [
    "Dialog",
    "DialogState",
    "EndReason",
    "build_cancel",
    "failure_outcome",
    "peer_for_uri",
]


class DialogState(StrEnum):
    """Dialog states (§12): early after a tagged 1xx, confirmed after a 2xx."""

    EARLY = "EARLY"
    CONFIRMED = "CONFIRMED"
    TERMINATED = "TERMINATED"


def peer_for_uri(uri: Uri, default_transport: str = "UDP") -> Peer:
    """Where to send a request whose next hop is ``uri`` (no DNS: the driver resolves).

    The transport comes from ``;transport=`` (any case), else ``default_transport``;
    the port defaults to 5060 (5061 for ``sips:``).
    """
    transport = uri.transport or ("TLS" if uri.scheme == "sips" else default_transport)
    port = uri.port if uri.port is not None else (5061 if uri.scheme == "sips" else 5060)
    host = uri.host[1:-1] if uri.host.startswith("[") else uri.host
    return Peer(host, port, transport)


@dataclass(slots=True)
class Dialog:
    """One dialog.

    Attributes:
        call_id: Call-ID.
        local: Our address (From on our requests), with our tag.
        remote: The peer's address (To on our requests), with its tag.
        remote_target: Request-URI of in-dialog requests (the peer's Contact).
        route_set: Route headers of in-dialog requests, in order.
        local_seq: Last CSeq number we used.
        remote_seq: Last CSeq number the peer used, ``None`` before its first.
        state: Early or confirmed.
    """

    call_id: str
    local: Address
    remote: Address
    remote_target: Uri
    route_set: list[Address] = field(default_factory=list)
    local_seq: int = 0
    remote_seq: int | None = None
    state: DialogState = DialogState.CONFIRMED

    @property
    def local_tag(self) -> str:
        """Our tag."""
        return self.local.tag or ""

    @property
    def remote_tag(self) -> str:
        """The peer's tag (empty for RFC 2543 peers that send none)."""
        return self.remote.tag or ""

    @classmethod
    def from_response(cls, invite: SipRequest, response: SipResponse) -> Dialog:
        """The caller's dialog, from our INVITE and a tagged 1xx or a 2xx (§12.1.2)."""
        contacts = response.contact
        target = contacts[0].uri if contacts else invite.request_uri
        return cls(
            call_id=invite.call_id,
            local=invite.from_,
            remote=response.to,
            remote_target=target,
            route_set=list(reversed(response.record_route)),
            local_seq=invite.cseq.seq,
            state=DialogState.CONFIRMED if response.status >= 200 else DialogState.EARLY,
        )

    @classmethod
    def from_request(cls, invite: SipRequest, local_tag: str, local_seq: int) -> Dialog:
        """The callee's dialog, from the INVITE and the tag we answer with (§12.1.1).

        An RFC 2543 INVITE may lack a Contact (RFC 4475 ``inv2543``); requests
        then go to the From URI, as RFC 2543 prescribed.
        """
        contacts = invite.contact
        return cls(
            call_id=invite.call_id,
            local=invite.to.with_tag(local_tag),
            remote=invite.from_,
            remote_target=contacts[0].uri if contacts else invite.from_.uri,
            route_set=invite.record_route,
            local_seq=local_seq,
            remote_seq=invite.cseq.seq,
            state=DialogState.EARLY,
        )

    def check_remote_seq(self, request: SipRequest) -> bool:
        """Accept a peer's in-dialog request if its CSeq increased (§12.2.2).

        ACK and CANCEL reuse the CSeq of their INVITE and are always accepted.
        Returns False for a lower or repeated CSeq (answer 500).
        """
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def refresh_target(self, contacts: list[Address]) -> None:
        """Take a new remote target from a target refresh (re-INVITE or its 2xx)."""
        if contacts:
            self.remote_target = contacts[0].uri

    def next_hop(self) -> tuple[str, list[str], Uri]:
        """Request-URI, Route values and next-hop URI for an in-dialog request.

        Loose routing (first route has ``;lr``) keeps the remote target as
        Request-URI; strict routing puts the first route there and appends
        the remote target to the routes (§12.2.1.1).
        """
        if not self.route_set:
            return str(self.remote_target), [], self.remote_target
        first = self.route_set[0]
        if first.uri.has_param("lr"):
            return str(self.remote_target), [str(r) for r in self.route_set], first.uri
        routes = [str(r) for r in self.route_set[1:]] + [f"<{self.remote_target}>"]
        return str(first.uri.bare()), routes, first.uri

    def request(
        self,
        method: str,
        *,
        via: str,
        contact: str | None = None,
        cseq: int | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> SipRequest:
        """Build an in-dialog request.

        Args:
            method: ``BYE``, ``INFO``, ``INVITE``, ``ACK``...
            via: The Via value (with a fresh branch) the UA core made.
            contact: Our Contact value (re-INVITE needs it).
            cseq: CSeq number for ACK (the INVITE's); others take the next one.
            headers: Extra headers.
            body: Body bytes.
            content_type: Content-Type of the body.
        """
        if cseq is None:
            self.local_seq += 1
            cseq = self.local_seq
        uri, routes, _ = self.next_hop()
        items: list[tuple[str, str]] = [("Via", via), ("Max-Forwards", "70")]
        items.extend(("Route", r) for r in routes)
        items.extend(
            [
                ("From", str(self.local)),
                ("To", str(self.remote)),
                ("Call-ID", self.call_id),
                ("CSeq", f"{cseq} {method}"),
            ]
        )
        if contact is not None:
            items.append(("Contact", contact))
        items.extend(headers)
        if body and content_type:
            items.append(("Content-Type", content_type))
        return SipRequest(method, uri, Headers(items), body)


def build_cancel(invite: SipRequest) -> SipRequest:
    """The CANCEL of a pending INVITE (§9.1).

    Same Request-URI, Call-ID, From, To (no tag) and CSeq number, method
    CANCEL, the INVITE's top Via only (so its branch matches the INVITE's
    server transaction), and the INVITE's Route headers.
    """
    items: list[tuple[str, str]] = [("Via", invite.headers.get_all("via")[0])]
    items.append(("Max-Forwards", "70"))
    items.extend(("Route", value) for value in invite.headers.get_all("route"))
    items.extend(
        [
            ("From", invite.headers.get("from") or ""),
            ("To", invite.headers.get("to") or ""),
            ("Call-ID", invite.call_id),
            ("CSeq", f"{invite.cseq.seq} CANCEL"),
        ]
    )
    return SipRequest("CANCEL", invite.uri, Headers(items))


@dataclass(frozen=True, slots=True)
class EndReason:
    """How and why a call ended, in Bluejay's words.

    Attributes:
        status: Result status.
        error_code: Bluejay-style error code for anything but a clean completion.
        bucket: Failure group for an unsuccessful call.
        sip_status: The final SIP status behind it, if any.
        detail: Human-readable explanation.
        ended_by: ``"local"``, ``"remote"``, or ``None`` when it never connected.
    """

    status: CallStatus
    error_code: str | None = None
    bucket: FailureBucket | None = None
    sip_status: int | None = None
    detail: str = ""
    ended_by: str | None = None


_REJECTED = {486, 600, 603}
_AUTH = {401, 403, 407}
_NO_ANSWER = {408, 480}
_BAD_DESTINATION = {404, 410, 416, 484, 485, 604}


def failure_outcome(sip_status: int, reason: str = "", *, detail: str = "") -> EndReason:
    """Map a final non-2xx response to the INVITE onto an :class:`EndReason`."""
    text = detail or f"{sip_status} {reason}".strip()
    if sip_status in _REJECTED:
        return EndReason(
            CallStatus.REJECTED, "CALL_REJECTED", FailureBucket.NO_ANSWER, sip_status, text
        )
    if sip_status in _AUTH:
        return EndReason(
            CallStatus.REJECTED, "SIP_AUTH_FAILED", FailureBucket.NO_CONNECTION, sip_status, text
        )
    if sip_status in _NO_ANSWER:
        return EndReason(
            CallStatus.NO_ANSWER, "NO_ANSWER", FailureBucket.NO_ANSWER, sip_status, text
        )
    if sip_status in _BAD_DESTINATION:
        return EndReason(
            CallStatus.INCOMPLETED,
            "INVALID_SIP_DESTINATION",
            FailureBucket.NO_CONNECTION,
            sip_status,
            text,
        )
    return EndReason(
        CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION, sip_status, text
    )


def no_connection(detail: str) -> EndReason:
    """No response at all, or the peer is unreachable."""
    return EndReason(
        CallStatus.INCOMPLETED, "SIP_DIAL_FAILED", FailureBucket.NO_CONNECTION, None, detail
    )


def no_answer(detail: str, sip_status: int | None = None) -> EndReason:
    """The peer never answered before the ringing timeout."""
    return EndReason(CallStatus.NO_ANSWER, "NO_ANSWER", FailureBucket.NO_ANSWER, sip_status, detail)


def cancelled(detail: str, sip_status: int | None = None, ended_by: str = "local") -> EndReason:
    """The call was abandoned before it was answered."""
    return EndReason(
        CallStatus.INCOMPLETED,
        "CALL_CANCELLED",
        FailureBucket.NO_ANSWER,
        sip_status,
        detail,
        ended_by,
    )


def completed(ended_by: str, detail: str = "") -> EndReason:
    """A connected call that ended normally."""
    return EndReason(CallStatus.COMPLETED, detail=detail, ended_by=ended_by)


def dropped(error_code: str, detail: str, ended_by: str | None = None) -> EndReason:
    """A call that connected at the SIP level but failed afterwards."""
    return EndReason(
        CallStatus.INCOMPLETED, error_code, FailureBucket.CALL_DROPPED, None, detail, ended_by
    )
