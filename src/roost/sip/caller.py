"""The platform's side of a SIP call: a :class:`~roost.caller.CallDriver` over SIP and RTP.

:class:`SipCaller` places one call the way Bluejay does (``bluejay-protocol.md``
§3): an INVITE to the agent's SIP URI carrying ``X-Simulation-Result-Id``,
``X-Call-Type: SIP`` and any extra headers from the agent's configuration,
with a G.711 offer (PCMU, PCMA, telephone-event). Then:

- **auth**: a 401/407 is answered once with digest credentials from the
  configuration (the core ACKs the challenge and re-sends with a new CSeq);
- **ringing**: with no answer after ``ringing_timeout`` the INVITE is
  CANCELled and the call is ``NO_ANSWER``;
- **outcome** of a refused call: 486/600/603 are ``REJECTED`` /
  ``CALL_REJECTED``; 401/403/407 after our answer are ``REJECTED`` /
  ``SIP_AUTH_FAILED``; 408/480 ``NO_ANSWER``; 404/410/416/484/485/604
  ``INVALID_SIP_DESTINATION``; anything else, or no response at all,
  ``INCOMPLETED`` / ``SIP_DIAL_FAILED`` (:func:`roost.sip.failure_outcome`);
- **media**: :meth:`play` queues an utterance on the call's
  :class:`~roost.sip.media.RtpSession`, sent at real-time pace by the shared
  20 ms ticker and cut short by :meth:`interrupt`; :meth:`agent_stream`
  yields the agent's audio as 16 kHz PCM plus ``dtmf`` and ``bye`` events;
- **ending**: :meth:`hangup` sends BYE (or CANCEL while ringing) and waits
  briefly for the BYE's response; a BYE from the agent ends the call as
  ``COMPLETED`` with ``ended_by="agent"``.

Both directions can be recorded to a 16 kHz stereo WAV (left: the caller,
right: the agent).

Many calls can share one :class:`~roost.sip.transport.SipTransport` (pass
``transport=``): a load generator then uses one SIP socket for all of them.

Example:
    >>> import asyncio
    >>> from roost.caller import CallFailed
    >>> from roost.sip.caller import SipCallConfig, SipCaller
    >>> async def main() -> str:
    ...     # Nobody listens on port 9: the INVITE is never answered.
    ...     config = SipCallConfig("sip:agent@127.0.0.1:9;transport=tcp", simulation_result_id="42")
    ...     try:
    ...         await SipCaller(config).connect()
    ...     except CallFailed as failed:
    ...         return f"{failed.outcome.status} {failed.outcome.error_code}"
    ...     return "connected"
    >>> asyncio.run(main())
    'INCOMPLETED SIP_DIAL_FAILED'
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roost.audio.wav import StereoWavWriter
from roost.caller.driver import (
    AgentAudio,
    AgentEvent,
    AgentMedia,
    CallFailed,
    CallOutcome,
    CallStatus,
    FailureBucket,
    PlayResult,
)
from roost.media.ticker import MediaTicker
from roost.sip.dialog import EndReason
from roost.sip.digest import Credentials
from roost.sip.events import (
    Call,
    CallAnswered,
    CallEnded,
    CallProgress,
    Event,
    InDialogRequest,
    SessionUpdated,
)
from roost.sip.headers import Uri, header_key
from roost.sip.media import FrameCallback, RtpSession
from roost.sip.message import Headers
from roost.sip.sdp import make_offer
from roost.sip.transport import SipTransport
from roost.sip.uabase import RESERVED_HEADERS, CoreConfig

__all__ = ["SipCallConfig", "SipCaller"]

logger = logging.getLogger(__name__)

_STREAM_LIMIT = 50_000  # agent items kept for an unread agent_stream (~16 min of 20 ms)
_MANAGED = RESERVED_HEADERS | {"x-simulation-result-id", "x-call-type", "authorization"}


@dataclass(frozen=True)
class SipCallConfig:
    """What to call and how, usually from the agent's configuration.

    Attributes:
        uri: The agent's SIP URI, e.g. ``sip:agent@10.0.0.5:5060;transport=tcp``.
        simulation_result_id: Sent as ``X-Simulation-Result-Id``.
        headers: Extra headers for the INVITE (``X-...`` from the agent config).
        auth_user: Digest user name for a 401/407 challenge.
        auth_password: Digest password.
        ringing_timeout: Seconds to ring before CANCEL (Bluejay: 300).
        record_path: Write a stereo WAV of the call here.
        local_host: Our address for SIP and RTP (and in Via/Contact/SDP).
        codecs: Codecs to offer, in preference order.
        call_type: Value of ``X-Call-Type``.
        transport: ``udp``/``tcp`` when the URI carries no ``transport=``.
        bye_timeout: How long :meth:`SipCaller.hangup` waits for the BYE's response.
        linger: Seconds to keep the caller's own sockets open after the call
            ended, before :meth:`SipCaller.hangup` returns: some peers (SIPp's
            UAS during its time-wait) count a TCP connection closed right
            after the BYE as a failed call. A shared transport is never closed.
        buffer_agent_media: Keep agent audio for :meth:`SipCaller.agent_stream`;
            turn off in load generators that never read it.

    Raises:
        ValueError: for a URI that is not ``sip:``/``sips:``, a header that is
            malformed or managed by the SIP stack, or a password without a user.
    """

    uri: str
    simulation_result_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    auth_user: str | None = None
    auth_password: str | None = None
    ringing_timeout: float = 300.0
    record_path: str | Path | None = None
    local_host: str = "127.0.0.1"
    codecs: tuple[str, ...] = ("PCMU", "PCMA")
    call_type: str = "SIP"
    transport: str | None = None
    bye_timeout: float = 5.0
    linger: float = 0.0
    buffer_agent_media: bool = True

    def __post_init__(self) -> None:
        try:
            uri = Uri.parse(self.uri)
        except Exception as exc:
            raise ValueError(f"not a SIP URI: {self.uri!r} ({exc})") from None
        if not uri.is_sip:
            raise ValueError(f"not a sip: or sips: URI: {self.uri!r}")
        if self.auth_password is not None and self.auth_user is None:
            raise ValueError("an auth password needs an auth user")
        if self.ringing_timeout <= 0:
            raise ValueError("ringing_timeout must be positive")
        if self.linger < 0 or self.bye_timeout < 0:
            raise ValueError("linger and bye_timeout must not be negative")
        if self.transport is not None and self.transport.lower() not in ("udp", "tcp"):
            raise ValueError(f"transport must be udp or tcp, not {self.transport!r}")
        sid = self.simulation_result_id
        if sid is not None and (not sid.strip() or not sid.isprintable()):
            raise ValueError(f"simulation result id {sid!r} is not header-safe")
        check = Headers()
        for name, value in self.headers.items():
            if header_key(name) in _MANAGED:
                raise ValueError(f"header {name} is set by the caller itself")
            try:
                check.add(name, value)
            except Exception as exc:
                raise ValueError(f"bad header {name!r}: {exc}") from None

    def invite_headers(self) -> list[tuple[str, str]]:
        """The extra INVITE headers, in order: id, call type, then the configured ones."""
        items: list[tuple[str, str]] = []
        if self.simulation_result_id is not None:
            items.append(("X-Simulation-Result-Id", self.simulation_result_id.strip()))
        items.append(("X-Call-Type", self.call_type))
        items.extend(self.headers.items())
        return items


class SipCaller:
    """One outbound SIP call. See the module docstring.

    Args:
        config: The call to place.
        transport: A started :class:`SipTransport` to share; by default the
            caller starts its own (UDP and TCP on a free port) and closes it.
        ticker: Media clock; the running loop's shared ticker by default.
        on_frame: Observes each RTP send (for lateness statistics).
    """

    transport_name = "sip"

    def __init__(
        self,
        config: SipCallConfig,
        *,
        transport: SipTransport | None = None,
        ticker: MediaTicker | None = None,
        on_frame: FrameCallback | None = None,
    ) -> None:
        self.config = config
        self._shared = transport
        self._transport: SipTransport | None = transport
        self._ticker = ticker
        self._on_frame = on_frame
        self.call: Call | None = None
        """The core's record of the call (headers, dialog, media) once placed."""
        self.rtp: RtpSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._t_start = 0.0
        self.answered_at: float | None = None
        """``loop.time()`` of the 2xx; offsets count from here."""
        self._ended_at: float | None = None
        self._answer: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._bye_done: asyncio.Future[None] | None = None
        self._remove_hook: Callable[[], None] | None = None
        self._reason: EndReason | None = None
        self._outcome: CallOutcome | None = None
        self._playing: tuple[str, asyncio.Future[bool]] | None = None
        self._utterance_seq = 0
        self._stream: deque[AgentMedia] = deque()
        self._stream_waiter: asyncio.Future[None] | None = None
        self._stream_closed = False
        self.stream_dropped = 0
        """Agent items dropped because :meth:`agent_stream` was not being read."""
        self._events: list[tuple[float, str, str, dict[str, Any]]] = []
        self._writer: StereoWavWriter | None = None
        self._record_error = ""
        self._released = False

    # CallDriver interface.

    @property
    def outcome(self) -> CallOutcome | None:
        """The final outcome once the call has ended, else ``None``."""
        return self._outcome

    async def connect(self) -> None:
        """Send the INVITE and return once the agent answered.

        Raises:
            CallFailed: when the call is refused, unanswered or unreachable.
            RuntimeError: when called twice.
        """
        if self._loop is not None:
            raise RuntimeError("connect() can be called once per SipCaller")
        loop = self._loop = asyncio.get_running_loop()
        self._t_start = loop.time()
        self._answer = loop.create_future()
        self._done = loop.create_future()
        config = self.config
        try:
            if self._transport is None:
                self._transport = await SipTransport(
                    CoreConfig(host=config.local_host, port=0, codecs=config.codecs)
                ).start()
            rtp = self.rtp = RtpSession(
                config.local_host,
                on_audio=self._on_audio if config.buffer_agent_media else None,
                on_dtmf=self._on_dtmf,
                on_frame=self._on_frame,
                ticker=self._ticker,
            )
            await rtp.open()
        except OSError as exc:
            await self._release()
            self._fail_early(f"could not open local sockets: {exc}")
        transport = self._transport
        assert transport is not None
        credentials = None
        if config.auth_user is not None:
            credentials = Credentials(config.auth_user, config.auth_password or "")
        offer = make_offer(
            config.local_host,
            rtp.port,
            codecs=config.codecs,
            session_id=int.from_bytes(os.urandom(4), "big") >> 1,
        )
        call = self.call = transport.core.invite(
            config.uri,
            transport.now(),
            sdp=offer,
            headers=config.invite_headers(),
            credentials=credentials,
            ring_timeout=config.ringing_timeout,
            transport=config.transport.upper() if config.transport else None,
        )
        transport.watch(call, self._on_event)
        self._log("out", "invite", {"uri": config.uri, "call_id": call.call_id})
        transport.pump()
        try:
            await asyncio.shield(self._answer)
        except asyncio.CancelledError:
            if not call.ended:
                transport.core.hangup(call, transport.now())
                transport.pump()
            await self._release()
            raise
        if self._reason is not None and self.answered_at is None:
            await self._release()
            assert self._outcome is not None
            raise CallFailed(self._outcome)

    async def play(self, pcm: bytes, *, utterance_id: str | None = None) -> PlayResult:
        """Speak one utterance in real time; returns when sent, interrupted or the call ends.

        Raises:
            ValueError: for an odd number of bytes.
            RuntimeError: before :meth:`connect`, or while another utterance plays.
        """
        if self._loop is None:
            raise RuntimeError("connect() first")
        if self._playing is not None:
            raise RuntimeError("an utterance is already playing; interrupt() it first")
        if len(pcm) % 2:
            raise ValueError(f"pcm_s16le needs an even number of bytes, got {len(pcm)}")
        self._utterance_seq += 1
        uid = utterance_id or f"dh-{self._utterance_seq}"
        rtp = self.rtp
        if rtp is None or rtp.closed or self._reason is not None or self.answered_at is None:
            return PlayResult(uid, 0.0, interrupted=bool(pcm))
        if not pcm:
            return PlayResult(uid, 0.0, interrupted=False)
        playback = rtp.queue(pcm)
        self._playing = (uid, playback.future)
        self._log("out", "speech.started", {"utterance_id": uid})
        try:
            complete = await asyncio.shield(playback.future)
        except asyncio.CancelledError:
            self.interrupt()
            raise
        finally:
            self._playing = None
        self._log("out", "speech.completed", {"utterance_id": uid})
        return PlayResult(uid, playback.sent_ms, interrupted=not complete)

    def interrupt(self) -> None:
        """Stop the utterance being played; no further packet of it is sent."""
        if self._playing is not None and self.rtp is not None:
            self.rtp.clear()

    async def agent_stream(self) -> AsyncIterator[AgentMedia]:
        """Yield the agent's audio (16 kHz) and events in arrival order until the call ends.

        Meant for one reader at a time.
        """
        loop = asyncio.get_running_loop()
        stream = self._stream
        while True:
            while stream:
                yield stream.popleft()
            if self._stream_closed:
                return
            waiter = self._stream_waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._stream_waiter = None

    async def hangup(self) -> CallOutcome:
        """End the call (BYE, or CANCEL while ringing) and return the outcome (idempotent)."""
        if self._loop is None or self._done is None:
            raise RuntimeError("connect() first")
        transport = self._transport
        call = self.call
        if call is not None and transport is not None and not call.ended:
            self.interrupt()
            transport.core.hangup(call, transport.now())
            transport.pump()
        if call is not None and not self._done.done():
            # A CANCEL waits for the 487 (or 64*T1); the core ends the call then.
            await asyncio.shield(self._done)
        if call is not None and call.dialog is not None and call.bye_status is None:
            await self._wait_bye()
        await self._release()
        return self._settled()

    async def wait_closed(self) -> CallOutcome:
        """Wait until the call ends, whichever side ends it, and return the outcome."""
        if self._done is None:
            raise RuntimeError("connect() first")
        await asyncio.shield(self._done)
        await self._release()
        return self._settled()

    def _settled(self) -> CallOutcome:
        if self._outcome is None:
            raise RuntimeError("the call has not ended")
        return self._outcome

    async def _wait_bye(self) -> None:
        transport = self._transport
        call = self.call
        assert transport is not None and call is not None and self._loop is not None
        if self._reason is None or self._reason.ended_by != "local":
            return
        done = self._bye_done = self._loop.create_future()

        def check() -> None:
            if call.bye_status is not None and not done.done():
                done.set_result(None)

        remove = transport.after_pump(check)
        try:
            await asyncio.wait_for(done, self.config.bye_timeout)
        except TimeoutError:
            self._log("out", "bye.timeout", {"waited_s": self.config.bye_timeout})
        finally:
            remove()

    async def _release(self) -> None:
        if self._released:
            return
        self._released = True
        if self.rtp is not None:
            self.rtp.close()
        self._close_recording()
        if self.call is not None and self._transport is not None:
            self._transport.unwatch(self.call)
        if self._shared is None and self._transport is not None:
            if self.config.linger > 0 and self.answered_at is not None:
                await asyncio.sleep(self.config.linger)
            await self._transport.close()

    # Core events (synchronous, on the loop).

    def _on_event(self, event: Event) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if isinstance(event, CallProgress):
            self._log("in", "progress", {"status": event.status, "reason": event.response.reason})
        elif isinstance(event, CallAnswered):
            self.answered_at = now
            self._log("in", "answered", {"status": event.response.status})
            self._start_media(event, now)
            if self._answer is not None and not self._answer.done():
                self._answer.set_result(None)
        elif isinstance(event, SessionUpdated):
            self._log("in", "reinvite", {})
            if event.media is not None and self.rtp is not None and not self.rtp.closed:
                self.rtp.start(event.media, zero=self.answered_at)
        elif isinstance(event, InDialogRequest):
            self._log("in", event.request.method.lower(), {})
        elif isinstance(event, CallEnded):
            self._on_ended(event.reason, now)

    def _start_media(self, event: CallAnswered, now: float) -> None:
        rtp = self.rtp
        assert rtp is not None
        if event.media is None:
            return
        if self.config.record_path is not None:
            try:
                self._writer = StereoWavWriter(self.config.record_path, snap_ms=20.0)
                rtp.record_to(self._writer)
            except OSError as exc:
                self._record_error = f"recording disabled: {exc}"
                logger.error("SIP call to %s: %s", self.config.uri, self._record_error)
        rtp.start(event.media, zero=now)
        self._log("in", "media", {"codec": event.media.codec, "remote": list(event.media.remote)})

    def _on_ended(self, reason: EndReason, now: float) -> None:
        self._reason = reason
        self._ended_at = now
        if reason.ended_by == "remote" and self.answered_at is not None:
            self._log("in", "bye", {})
            self._push(AgentEvent("bye", {}, self._offset_ms(now)))
        if self.rtp is not None:
            self.rtp.close()
        self._outcome = self._final_outcome(reason)
        self._close_stream()
        for future in (self._answer, self._done):
            if future is not None and not future.done():
                future.set_result(None)

    def _on_audio(self, pcm: bytes, now: float) -> None:
        if self.config.buffer_agent_media:
            self._push(AgentAudio(pcm, self._offset_ms(now)))

    def _on_dtmf(self, digit: str, now: float) -> None:
        offset = self._log("in", "dtmf", {"digit": digit})
        self._push(AgentEvent("dtmf", {"digit": digit}, offset))

    # Bookkeeping.

    def _push(self, item: AgentMedia) -> None:
        stream = self._stream
        if len(stream) >= _STREAM_LIMIT:
            stream.popleft()
            self.stream_dropped += 1
        stream.append(item)
        waiter = self._stream_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _close_stream(self) -> None:
        self._stream_closed = True
        waiter = self._stream_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _offset_ms(self, now: float) -> float:
        return (now - (self.answered_at or now)) * 1000.0

    def _log(self, direction: str, kind: str, data: dict[str, Any]) -> float:
        now = self._loop.time() if self._loop is not None else 0.0
        offset = self._offset_ms(now) if self.answered_at is not None else 0.0
        self._events.append((offset, direction, kind, data))
        return offset

    def _close_recording(self) -> Path | None:
        writer, self._writer = self._writer, None
        if writer is None:
            return None
        try:
            return writer.close()
        except OSError as exc:
            self._record_error = f"recording could not be finished: {exc}"
            return None

    def _fail_early(self, detail: str) -> None:
        self._outcome = CallOutcome(
            status=CallStatus.INCOMPLETED,
            transport=self.transport_name,
            error_code="SIP_DIAL_FAILED",
            bucket=FailureBucket.NO_CONNECTION,
            detail=detail,
        )
        self._close_stream()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        raise CallFailed(self._outcome)

    def _final_outcome(self, reason: EndReason) -> CallOutcome:
        call = self.call
        rtp = self.rtp
        answered = self.answered_at
        ended_by = {"local": "caller", "remote": "agent"}.get(reason.ended_by or "")
        outcome = CallOutcome(
            status=reason.status,
            transport=self.transport_name,
            error_code=reason.error_code,
            bucket=reason.bucket,
            detail=reason.detail,
            sip_status=reason.sip_status
            if reason.sip_status is not None
            else (call.last_status if call is not None else None),
            setup_ms=(answered - self._t_start) * 1000.0 if answered is not None else None,
            duration_ms=((self._ended_at or answered) - answered) * 1000.0
            if answered is not None
            else None,
            audio_sent_ms=rtp.stats.audio_sent_ms if rtp is not None else 0.0,
            audio_received_ms=rtp.stats.audio_received_ms if rtp is not None else 0.0,
            ended_by=ended_by if answered is not None else None,
            events=self._events,
        )
        if not outcome.detail:
            outcome.detail = f"hung up by the {ended_by}" if ended_by else ""
        path = self._close_recording()
        if path is not None:
            outcome.recording_path = path
        if self._record_error:
            outcome.detail = f"{outcome.detail}; {self._record_error}".lstrip("; ")
        return outcome
