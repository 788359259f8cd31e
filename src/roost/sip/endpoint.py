"""The agent's side of a SIP call: answer INVITEs, hand the agent 16 kHz audio, deliver.

:class:`SipEndpoint` is what an agent developer runs when their agent takes
phone calls over SIP directly. It listens on UDP and TCP (same port when the
OS allows) and for every INVITE:

1. rings (180), then answers 200 OK with a G.711 answer and a fresh RTP
   socket (an optional ``screen`` coroutine may first delay the answer or
   refuse the call with a status, e.g. 486; optional digest ``credentials``
   challenge the caller with 401 first);
2. reads ``X-Simulation-Result-Id`` from the raw INVITE with
   :func:`roost.extract_simulation_result_id` and enters a
   :class:`roost.CallRecorder` for it at the answer (the recorder's zero
   point is the 200 OK), current for the handler through contextvars;
3. runs ``handler(call)`` with a :class:`SipCall`: every INVITE header, the
   caller's audio as 16 kHz ``pcm_s16le`` (:meth:`SipCall.audio_in`), and
   :meth:`SipCall.send_audio` / :meth:`SipCall.play` for the agent's voice;
4. ends the call on a BYE from either side: the caller's BYE ends
   ``audio_in`` (the handler gets ``handler_grace`` seconds to return before
   it is cancelled); a handler that returns while the call is up hangs up
   with BYE. The recorder is exited last, which starts delivery.

Example:
    >>> import asyncio
    >>> from roost.sip import SipEndpoint
    >>> async def agent(call) -> None:
    ...     async for pcm in call.audio_in():
    ...         await call.send_audio(pcm)  # an echo agent
    >>> async def main() -> bool:
    ...     async with SipEndpoint(agent, port=0, recorder_factory=None) as endpoint:
    ...         return endpoint.port > 0 and endpoint.uri().startswith("sip:agent@127.0.0.1:")
    >>> asyncio.run(main())
    True
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from roost.audio.wav import StereoWavWriter
from roost.media.ticker import MediaTicker
from roost.sip.dialog import EndReason
from roost.sip.digest import DigestServer
from roost.sip.errors import SdpError, SipStateError
from roost.sip.events import (
    Call,
    CallConfirmed,
    CallEnded,
    Event,
    IncomingCall,
    SessionUpdated,
)
from roost.sip.media import Playback, RtpSession
from roost.sip.sdp import NegotiatedMedia, make_offer
from roost.sip.transport import SipTransport
from roost.sip.uabase import CoreConfig

__all__ = [
    "EndpointStats",
    "RecorderFactory",
    "SipCall",
    "SipEndpoint",
    "SipHandler",
    "default_recorder",
]

logger = logging.getLogger(__name__)

SipHandler = Callable[["SipCall"], Awaitable[None]]
"""The agent: runs once per answered call."""

RecorderFactory = Callable[[str | None], AbstractAsyncContextManager[Any]]
"""Makes the recorder of one call from its simulation result id (``None`` when absent)."""

Screen = Callable[["SipCall"], Awaitable[int]]
"""Decides on a ringing call: return 200 to answer, or a 300-699 status to refuse."""

_INBOUND_LIMIT = 50_000  # unread 20 ms chunks kept (about 16 min)


def default_recorder(simulation_result_id: str | None) -> AbstractAsyncContextManager[Any]:
    """A :class:`roost.CallRecorder` for the call, delivering with the default settings."""
    from roost.recorder import CallRecorder

    recorder: AbstractAsyncContextManager[Any] = CallRecorder(simulation_result_id)
    return recorder


def _extract_id(call: Call) -> str | None:
    from roost.ids import InvalidSimulationResultId, extract_simulation_result_id

    try:
        return extract_simulation_result_id(call.invite.to_bytes())
    except InvalidSimulationResultId as exc:
        # A misconfigured caller still gets its call, just without enrichment.
        logger.warning("ignoring X-Simulation-Result-Id: %s", exc)
        return None


@dataclass(slots=True)
class EndpointStats:
    """Counters of one endpoint.

    Attributes:
        incoming: INVITEs that became calls.
        answered: Calls answered with 200.
        refused: Calls refused (screen, auth, or an answer that failed).
        ended: Calls that ended after the answer.
        handler_errors: Handlers that raised.
    """

    incoming: int = 0
    answered: int = 0
    refused: int = 0
    ended: int = 0
    handler_errors: int = 0


class SipCall:
    """One call as the agent sees it.

    Attributes:
        call: The core's record (dialog, negotiated media, end reason).
        simulation_result_id: The id from the INVITE, or ``None``.
        recorder: The call's recorder (whatever ``recorder_factory`` made), or ``None``.
        dtmf: Digits the caller pressed, in order.
        rtp: The RTP session (codec, statistics).
    """

    def __init__(self, endpoint: SipEndpoint, call: Call, rtp: RtpSession) -> None:
        self._endpoint = endpoint
        self.call = call
        self.rtp = rtp
        self.simulation_result_id = _extract_id(call)
        self.recorder: Any = None
        self.dtmf: list[str] = []
        self._writer: StereoWavWriter | None = None
        self._inbound: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._ended = asyncio.get_running_loop().create_future()
        self.inbound_dropped = 0
        """Caller audio chunks dropped because :meth:`audio_in` was not read."""

    @property
    def call_id(self) -> str:
        """The SIP Call-ID."""
        return self.call.call_id

    @property
    def headers(self) -> list[tuple[str, str]]:
        """Every header of the INVITE, in order, as received."""
        return list(self.call.invite.headers)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive, compact forms too)."""
        return self.call.invite.headers.get(name)

    @property
    def media(self) -> NegotiatedMedia | None:
        """The negotiated codec and remote RTP address."""
        return self.call.media

    @property
    def ended(self) -> bool:
        """True once the call is over."""
        return self._ended.done()

    @property
    def end_reason(self) -> EndReason | None:
        """How the call ended, once it has."""
        return self.call.end

    async def audio_in(self) -> AsyncIterator[bytes]:
        """Yield the caller's audio (16 kHz ``pcm_s16le``, ~20 ms chunks) until the call ends."""
        loop = asyncio.get_running_loop()
        inbound = self._inbound
        while True:
            while inbound:
                yield inbound.popleft()
            if self._closed:
                return
            waiter = self._waiter = loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    async def send_audio(self, pcm: bytes) -> Playback:
        """Queue agent audio (16 kHz ``pcm_s16le``) after what is already queued.

        Returns at once; the returned :class:`~roost.sip.media.Playback` says
        when it was sent. Audio sent after the call ended is dropped.
        """
        return self.rtp.queue(pcm)

    async def play(self, pcm: bytes) -> bool:
        """Send audio and wait until it went out; ``False`` if cut short."""
        return await self.rtp.queue(pcm).future

    def clear_audio(self) -> float:
        """Drop queued agent audio (barge-in); returns the milliseconds dropped."""
        return self.rtp.clear()

    async def hangup(self) -> None:
        """End the call with BYE (or 603 before the answer) and wait until it is over."""
        self._endpoint._hangup(self.call)
        await asyncio.shield(self._ended)

    async def wait_ended(self) -> EndReason | None:
        """Wait until the call ends; returns the reason."""
        await asyncio.shield(self._ended)
        return self.call.end

    # Fed by the endpoint.

    def _push_audio(self, pcm: bytes, now: float) -> None:
        if len(self._inbound) >= _INBOUND_LIMIT:
            self._inbound.popleft()
            self.inbound_dropped += 1
        self._inbound.append(pcm)
        self._wake()

    def _push_dtmf(self, digit: str, now: float) -> None:
        self.dtmf.append(digit)

    def _finish(self) -> None:
        self._closed = True
        self._wake()
        if not self._ended.done():
            self._ended.set_result(None)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class SipEndpoint:
    """Answers SIP calls for an agent. See the module docstring.

    Args:
        handler: The agent, ``async def handler(call: SipCall)``.
        host: Address to bind and announce (SIP and RTP).
        port: SIP port; 0 picks a free one (see :attr:`port`).
        transports: ``("udp", "tcp")`` or one of them.
        recorder_factory: Makes each call's recorder from its id
            (:func:`default_recorder` by default; ``None`` records nothing).
        screen: Optional coroutine deciding on each ringing call (200 answers,
            300-699 refuses); it may sleep to keep the call ringing.
        credentials: ``{user: password}``; when set, INVITEs must pass digest auth.
        realm: Digest realm.
        codecs: Codecs we accept, in preference order.
        user: User part of our Contact.
        record_dir: Write a stereo WAV per call here (``<Call-ID>.wav``).
        handler_grace: Seconds a handler may keep running after the call ended.
        ticker: Media clock; the running loop's shared ticker by default.
    """

    def __init__(
        self,
        handler: SipHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transports: Sequence[str] = ("udp", "tcp"),
        recorder_factory: RecorderFactory | None = default_recorder,
        screen: Screen | None = None,
        credentials: Mapping[str, str] | None = None,
        realm: str = "roost",
        codecs: tuple[str, ...] = ("PCMU", "PCMA"),
        user: str = "agent",
        record_dir: str | Path | None = None,
        handler_grace: float = 5.0,
        ticker: MediaTicker | None = None,
    ) -> None:
        self.handler = handler
        self.recorder_factory = recorder_factory
        self.screen = screen
        self.credentials = dict(credentials) if credentials is not None else None
        self._digest = DigestServer(realm) if credentials is not None else None
        self.record_dir = Path(record_dir) if record_dir is not None else None
        self.handler_grace = handler_grace
        self._ticker = ticker
        self.stats = EndpointStats()
        self.transport = SipTransport(
            CoreConfig(host=host, port=port, user=user, codecs=codecs),
            transports=transports,
            on_incoming=self._on_incoming,
        )
        self._host = host
        self._calls: dict[Call, SipCall] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The SIP port (UDP, and TCP unless :attr:`tcp_port` differs)."""
        return self.transport.port

    @property
    def tcp_port(self) -> int:
        """The TCP port."""
        return self.transport.tcp_port

    @property
    def calls(self) -> list[SipCall]:
        """Calls in progress."""
        return list(self._calls.values())

    def uri(self, transport: str = "udp", user: str = "agent") -> str:
        """A SIP URI that reaches this endpoint over ``transport``."""
        if transport.lower() == "tcp":
            return f"sip:{user}@{self._host}:{self.tcp_port};transport=tcp"
        return f"sip:{user}@{self._host}:{self.port}"

    async def start(self) -> SipEndpoint:
        """Bind the sockets. Returns ``self``."""
        await self.transport.start()
        return self

    async def close(self) -> None:
        """Hang up every call, wait for handlers and recorders, close the sockets."""
        for call in list(self._calls):
            if not call.ended:
                self._hangup(call)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=self.handler_grace + 5.0)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        await self.transport.close()

    async def __aenter__(self) -> SipEndpoint:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Signalling (synchronous callbacks from the transport).

    def _on_incoming(self, event: Event) -> None:
        assert isinstance(event, IncomingCall)
        call = event.call
        transport = self.transport
        if self._digest is not None and not self._authorised(call):
            return
        self.stats.incoming += 1
        rtp = RtpSession(self._host, ticker=self._ticker)
        sip_call = SipCall(self, call, rtp)
        rtp.on_audio = sip_call._push_audio
        rtp.on_dtmf = sip_call._push_dtmf
        self._calls[call] = sip_call
        transport.watch(call, self._on_event)
        transport.core.ring(call, transport.now())
        task = asyncio.get_running_loop().create_task(self._run(sip_call))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _authorised(self, call: Call) -> bool:
        assert self._digest is not None and self.credentials is not None
        transport = self.transport
        now = transport.now()
        value = call.invite.headers.get("authorization")
        stale = False
        if value is not None:
            verdict = self._digest.verify(value, "INVITE", self.credentials.get, now)
            if verdict.ok:
                return True
            stale = verdict.stale
            logger.info("SIP digest auth failed for %s: %s", call.call_id, verdict.reason)
        challenge = self._digest.challenge(now, stale=stale)
        self.stats.refused += 1
        transport.core.reject(call, now, 401, headers=[("WWW-Authenticate", challenge)])
        return False

    def _on_event(self, event: Event) -> None:
        call = getattr(event, "call", None)
        sip_call = self._calls.get(call) if call is not None else None
        if sip_call is None:
            return
        if isinstance(event, CallConfirmed | SessionUpdated):
            media = event.media
            if media is not None and sip_call.rtp.media != media and not sip_call.rtp.closed:
                sip_call.rtp.start(media)
        elif isinstance(event, CallEnded):
            sip_call.rtp.close()
            sip_call._finish()

    def _hangup(self, call: Call) -> None:
        if not call.ended:
            transport = self.transport
            transport.core.hangup(call, transport.now())
            transport.pump()

    # One call.

    async def _run(self, sip_call: SipCall) -> None:
        call = sip_call.call
        try:
            if not await self._answer(sip_call):
                return
            self.stats.answered += 1
            factory = self.recorder_factory
            context = (
                factory(sip_call.simulation_result_id) if factory is not None else nullcontext()
            )
            async with context as recorder:
                sip_call.recorder = recorder
                await self._converse(sip_call)
            self.stats.ended += 1
        except Exception:
            logger.exception("SIP call %s failed in the endpoint", call.call_id)
            self._hangup(call)
        finally:
            sip_call.rtp.close()
            self.transport.unwatch(call)
            self._calls.pop(call, None)

    async def _answer(self, sip_call: SipCall) -> bool:
        call = sip_call.call
        transport = self.transport
        status = 200
        if self.screen is not None:
            status = await self.screen(sip_call)
        if call.ended:  # CANCELled while ringing
            sip_call._finish()
            return False
        if status != 200:
            self.stats.refused += 1
            transport.core.reject(call, transport.now(), status)
            transport.pump()
            sip_call._finish()
            return False
        port = await sip_call.rtp.open()
        if sip_call.ended:  # CANCELled while the socket was opening
            return False
        now = transport.now()
        try:
            if call.remote_sdp is not None:
                transport.core.answer(call, now, rtp=(self._host, port))
            else:
                transport.core.answer(call, now, sdp=make_offer(self._host, port))
        except (SdpError, SipStateError) as exc:
            logger.warning("could not answer SIP call %s: %s", call.call_id, exc)
            if not call.ended:
                transport.core.reject(call, now, 488)
            transport.pump()
            self.stats.refused += 1
            sip_call._finish()
            return False
        transport.pump()
        if self.record_dir is not None:
            self._start_recording(sip_call)
        if call.media is not None:
            sip_call.rtp.start(call.media, zero=now)
        return True

    def _start_recording(self, sip_call: SipCall) -> None:
        assert self.record_dir is not None
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in sip_call.call_id)
        try:
            writer = StereoWavWriter(self.record_dir / f"{safe[:120]}.wav", snap_ms=20.0)
        except OSError as exc:
            logger.error("SIP call %s: recording disabled: %s", sip_call.call_id, exc)
            return
        sip_call.rtp.record_to(writer)
        sip_call._writer = writer

    async def _converse(self, sip_call: SipCall) -> None:
        call = sip_call.call
        handler = asyncio.ensure_future(self.handler(sip_call))
        ended = asyncio.ensure_future(sip_call.wait_ended())
        try:
            await asyncio.wait({handler, ended}, return_when=asyncio.FIRST_COMPLETED)
            if not handler.done():
                # The call is over: let the handler notice audio_in end and return.
                await asyncio.wait({handler}, timeout=self.handler_grace)
            if not handler.done():
                handler.cancel()
                await asyncio.wait({handler})
            elif not handler.cancelled() and handler.exception() is not None:
                self.stats.handler_errors += 1
                exc = handler.exception()
                logger.error("SIP agent handler failed on call %s", call.call_id, exc_info=exc)
            if not call.ended:
                self._hangup(call)
            await sip_call.wait_ended()
        finally:
            ended.cancel()
            if not handler.done():
                handler.cancel()
            writer, sip_call._writer = sip_call._writer, None
            if writer is not None:
                try:
                    writer.close()
                except OSError as exc:
                    logger.error("SIP call %s: recording not finished: %s", call.call_id, exc)
