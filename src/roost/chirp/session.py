"""The agent's side of one CHIRP v2 call, independent of the web server.

An agent developer writes one coroutine, ``async def handler(call: ChirpSession)``,
and serves it with :func:`roost.chirp.serve` (websockets) or
:class:`roost.chirp.asgi.ChirpASGIApp` (Starlette, FastAPI, any ASGI server).
Both hand it a :class:`ChirpSession`:

- ``async for item in call`` yields the caller's audio (:class:`CallerAudio`,
  16 kHz mono ``pcm_s16le``) and events (:class:`CallerEvent`: ``speech.started``,
  ``speech.completed``, ``mark`` echoes, ``session.error``, and unknown types,
  which agents should ignore) until the call ends;
- :meth:`~ChirpSession.send_audio`, :meth:`~ChirpSession.start_speech`,
  :meth:`~ChirpSession.complete_speech` and :meth:`~ChirpSession.mark` queue
  output in order; audio leaves in 20 ms frames paced at real time with about
  200 ms lead (:class:`~roost.chirp.playout.Pacer`, woken by the shared
  :class:`~roost.media.MediaTicker`), so :meth:`~ChirpSession.clear_audio` can
  still take back what the caller has not heard when it barges in;
- :meth:`~ChirpSession.hangup` sends what is queued and closes with 1000.

Malformed input from the caller (bad JSON, missing fields, empty or odd-length
audio) is answered with ``session.error`` and dropped; the call goes on. If the
handler raises, the caller gets ``session.error INTERNAL_ERROR`` and close 1011.
When the handler returns, queued output is sent and the call is closed with
1000. The session's clock (``offset_ms``) starts when the upgrade is accepted,
the same zero point as the :class:`roost.CallRecorder` the servers enter.

Example:
    >>> from roost.chirp import CallerAudio, ChirpSession
    >>> async def echo(call: ChirpSession) -> None:
    ...     async for item in call:
    ...         if isinstance(item, CallerAudio):
    ...             call.send_audio(item.pcm)
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from roost.audio.pcm import FRAME_BYTES
from roost.chirp.playout import Pacer
from roost.chirp.protocol import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    ChirpProtocolError,
    ErrorCode,
    EventType,
    check_audio_frame,
    decode_event,
    encode_event,
    error_event,
)
from roost.media.ticker import MediaTicker, Subscription

__all__ = [
    "CallerAudio",
    "CallerEvent",
    "CallerMedia",
    "ChirpHandler",
    "ChirpSession",
    "ChirpTransport",
    "RecorderFactory",
    "default_recorder",
    "run_agent_call",
]

logger = logging.getLogger(__name__)

_BYTES_PER_SECOND = 32_000
_INBOUND_LIMIT = 50_000  # unread caller items kept (about 16 min of 20 ms frames)


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """A chunk of the caller's (digital human's) voice.

    Attributes:
        pcm: 16 kHz mono ``pcm_s16le``, non-empty, even length.
        offset_ms: Milliseconds since the upgrade was accepted when it arrived.
    """

    pcm: bytes
    offset_ms: float


@dataclass(frozen=True, slots=True)
class CallerEvent:
    """A text event from the caller.

    Attributes:
        type: ``speech.started``, ``speech.completed``, ``mark``, ``session.error``
            or a type this version does not know (ignore those).
        data: The event's payload.
        id: Event id.
        ts_ms: Sender's Unix time in milliseconds.
        offset_ms: Milliseconds since the upgrade was accepted when it arrived.
    """

    type: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    ts_ms: int = 0
    offset_ms: float = 0.0


CallerMedia = CallerAudio | CallerEvent


class ChirpTransport(Protocol):
    """What a web server adapter provides to a :class:`ChirpSession`."""

    async def receive(self) -> str | bytes | None:
        """Next message (text as ``str``), or ``None`` once the connection is closed."""
        ...

    async def send(self, message: str | bytes) -> None:
        """Send one message; raises :class:`ConnectionError` if the connection is gone."""
        ...

    async def close(self, code: int, reason: str) -> None:
        """Close the connection (idempotent)."""
        ...

    @property
    def close_code(self) -> int | None:
        """Close code once closed, else ``None``."""
        ...


ChirpHandler = Callable[["ChirpSession"], Awaitable[None]]
"""The agent's call handler."""


class ChirpSession:
    """One CHIRP call as the agent sees it. See the module docstring.

    Args:
        transport: The server adapter carrying the call.
        headers: Upgrade request headers, names in lower case.
        path: Request path of the upgrade.
        simulation_result_id: The ``X-Simulation-Result-Id`` value, if any.
        recorder: The :class:`roost.CallRecorder` made current for this call, if any.
        lead_ms: How far ahead of real time outgoing audio may run.
        ticker: Media clock; the running loop's shared ticker by default.
    """

    def __init__(
        self,
        transport: ChirpTransport,
        *,
        headers: Mapping[str, str] | None = None,
        path: str = "/",
        simulation_result_id: str | None = None,
        recorder: Any = None,
        lead_ms: float = 200.0,
        ticker: MediaTicker | None = None,
    ) -> None:
        self._transport = transport
        self.headers: dict[str, str] = dict(headers or {})
        """Upgrade request headers, lower-case names."""
        self.path = path
        """Request path of the upgrade."""
        self.simulation_result_id = simulation_result_id
        """Bluejay's ``X-Simulation-Result-Id``, or ``None`` (e.g. a manual test call)."""
        self.recorder = recorder
        """The call's :class:`roost.CallRecorder`, or ``None``."""
        self._loop = asyncio.get_running_loop()
        self.accepted_at = self._loop.time()
        """``loop.time()`` when the upgrade was accepted; ``offset_ms`` counts from here."""
        self._ticker = ticker
        self._pacer = Pacer(lead_ms / 1000.0)
        self._outbox: deque[str | bytes] = deque()
        self._urgent: deque[str] = deque()
        self._queued_audio = 0
        self._send_wake: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._tick_subscription: Subscription | None = None
        self._inbox: deque[CallerMedia] = deque()
        self._inbox_waiter: asyncio.Future[None] | None = None
        self.inbound_dropped = 0
        """Caller items dropped because the handler did not read them."""
        self._closed = False
        self._closing = False
        self._close_code: int | None = None
        self._sent_audio = 0
        self._received_audio = 0

    # Receiving.

    def __aiter__(self) -> AsyncIterator[CallerMedia]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[CallerMedia]:
        while True:
            item = await self.receive()
            if item is None:
                return
            yield item

    async def receive(self) -> CallerMedia | None:
        """The next item from the caller, or ``None`` once the call has ended."""
        inbox = self._inbox
        while not inbox:
            if self._closed:
                return None
            waiter = self._inbox_waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._inbox_waiter = None
        return inbox.popleft()

    # Sending (queued in order, never blocking).

    def send_audio(self, pcm: bytes | bytearray | memoryview) -> None:
        """Queue agent audio (16 kHz mono ``pcm_s16le``); it leaves in paced 20 ms frames.

        Raises:
            ValueError: for an odd number of bytes.
        """
        size = len(pcm)
        if size % 2:
            raise ValueError(f"pcm_s16le needs an even number of bytes, got {size}")
        if self._closing or not size:
            return
        data = bytes(pcm)
        outbox = self._outbox
        for start in range(0, size, FRAME_BYTES):
            outbox.append(data[start : start + FRAME_BYTES])
        self._queued_audio += size
        self._wake_sender()

    def start_speech(self, utterance_id: str | None = None) -> str:
        """Queue ``speech.started`` (after audio already queued); returns the utterance id.

        Sent while the caller is talking, this is the barge-in signal: the caller
        stops its utterance.
        """
        uid = utterance_id or f"u_{uuid.uuid4().hex[:12]}"
        self._queue_event(EventType.SPEECH_STARTED, {"utterance_id": uid})
        return uid

    def complete_speech(self, utterance_id: str) -> None:
        """Queue ``speech.completed`` for one of the agent's utterances."""
        self._queue_event(EventType.SPEECH_COMPLETED, {"utterance_id": utterance_id})

    def mark(self, name: str) -> None:
        """Queue a ``mark``; the caller echoes it once the audio queued before it has played."""
        self._queue_event(EventType.MARK, {"name": name})

    def send_error(self, code: ErrorCode | str, message: str) -> None:
        """Send ``session.error`` ahead of queued audio (it is not part of the speech)."""
        if not self._closing:
            self._urgent.append(error_event(code, message, ts_ms=_wall_ms()))
            self._wake_sender()

    def clear_audio(self) -> float:
        """Drop queued audio not yet sent (e.g. the caller barged in); returns the ms dropped.

        Events queued between the dropped frames stay, in order.
        """
        kept: deque[str | bytes] = deque(item for item in self._outbox if isinstance(item, str))
        dropped = self._queued_audio
        self._outbox = kept
        self._queued_audio = 0
        return dropped / _BYTES_PER_SECOND * 1000.0

    @property
    def queued_audio_ms(self) -> float:
        """Audio queued and not yet sent."""
        return self._queued_audio / _BYTES_PER_SECOND * 1000.0

    @property
    def unplayed_ms(self) -> float:
        """Audio sent that the caller has not yet played, by the real-time model."""
        return self._pacer.ahead(self._loop.time()) * 1000.0

    async def drain(self) -> None:
        """Wait until everything queued has been sent (or the call has ended)."""
        if self._closed:
            return
        # The send loop releases drainers only when idle with nothing queued,
        # i.e. after the last write has completed, so wake it to check.
        waiter = self._loop.create_future()
        self._drain_waiters.append(waiter)
        self._wake_sender()
        await waiter

    async def hangup(self, code: int = CLOSE_NORMAL, reason: str = "call ended") -> None:
        """Send what is queued, then close the call."""
        await self.drain()
        await self._close(code, reason)

    @property
    def closed(self) -> bool:
        """True once the connection is closed."""
        return self._closed

    @property
    def close_code(self) -> int | None:
        """The close code once closed."""
        return self._close_code if self._closed else None

    @property
    def audio_sent_ms(self) -> float:
        """Agent audio sent so far."""
        return self._sent_audio / _BYTES_PER_SECOND * 1000.0

    @property
    def audio_received_ms(self) -> float:
        """Caller audio received so far."""
        return self._received_audio / _BYTES_PER_SECOND * 1000.0

    # Running the call (used by the server adapters).

    async def run(self, handler: ChirpHandler) -> None:
        """Run ``handler`` for this call and close the connection when it is done."""
        receiver = asyncio.create_task(self._receive_loop())
        sender = asyncio.create_task(self._send_loop())
        code, reason = CLOSE_NORMAL, "call ended"
        try:
            await handler(self)
            await self.drain()
        except Exception:
            logger.exception("CHIRP handler failed on %s", self.path)
            self.clear_audio()
            self.send_error(ErrorCode.INTERNAL_ERROR, "the agent failed")
            await self.drain()
            code, reason = CLOSE_INTERNAL_ERROR, "internal error"
        finally:
            await self._close(code, reason)
            receiver.cancel()
            sender.cancel()
            await asyncio.gather(receiver, sender, return_exceptions=True)
            self._unsubscribe()
            self._mark_closed()

    def _queue_event(self, event_type: str, data: dict[str, Any]) -> None:
        if self._closing:
            return
        self._outbox.append(encode_event(event_type, data, ts_ms=_wall_ms()))
        self._wake_sender()

    def _wake_sender(self) -> None:
        waiter = self._send_wake
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _send_loop(self) -> None:
        transport = self._transport
        loop = self._loop
        pacer = self._pacer
        try:
            while True:
                if self._urgent:
                    await transport.send(self._urgent.popleft())
                    continue
                outbox = self._outbox
                if not outbox:
                    self._release_drainers()
                    await self._sleep(tick=False)
                    continue
                head = outbox[0]
                if isinstance(head, bytes):
                    now = loop.time()
                    if not pacer.ready(now):
                        await self._sleep(tick=True)
                        continue
                    outbox.popleft()
                    self._queued_audio -= len(head)
                    pacer.sent(len(head) / _BYTES_PER_SECOND, now)
                    self._sent_audio += len(head)
                else:
                    outbox.popleft()
                await transport.send(head)
        except ConnectionError:
            pass
        except Exception:
            logger.exception("CHIRP session could not send on %s", self.path)
        # Without a sender the call cannot go on; this also releases drain().
        self._mark_closed()

    async def _sleep(self, *, tick: bool) -> None:
        waiter = self._send_wake = self._loop.create_future()
        if tick and self._tick_subscription is None:
            ticker = self._ticker or MediaTicker.for_running_loop()
            self._tick_subscription = ticker.subscribe(self._on_tick)
        try:
            await waiter
        finally:
            self._send_wake = None

    def _on_tick(self, deadline: float) -> None:
        self._unsubscribe()
        self._wake_sender()

    def _unsubscribe(self) -> None:
        if self._tick_subscription is not None:
            self._tick_subscription.cancel()
            self._tick_subscription = None

    def _release_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _receive_loop(self) -> None:
        transport = self._transport
        try:
            while True:
                message = await transport.receive()
                if message is None:
                    break
                if isinstance(message, bytes):
                    self._on_audio(message)
                else:
                    self._on_text(message)
        except ConnectionError:
            pass
        except Exception:
            logger.exception("CHIRP session could not receive on %s", self.path)
        self._mark_closed()

    def _on_audio(self, payload: bytes) -> None:
        try:
            check_audio_frame(payload)
        except ChirpProtocolError as error:
            self.send_error(error.code, error.message)
            return
        self._received_audio += len(payload)
        self._deliver(CallerAudio(payload, self._offset_ms()))

    def _on_text(self, text: str) -> None:
        try:
            envelope = decode_event(text, now_ms=_wall_ms())
        except ChirpProtocolError as error:
            self.send_error(error.code, error.message)
            return
        if envelope.type == EventType.SESSION_ERROR:
            logger.warning(
                "CHIRP caller reported %s: %s",
                envelope.data.get("code"),
                envelope.data.get("message"),
            )
        self._deliver(
            CallerEvent(
                envelope.type, envelope.data, envelope.id, envelope.ts_ms, self._offset_ms()
            )
        )

    def _deliver(self, item: CallerMedia) -> None:
        inbox = self._inbox
        if len(inbox) >= _INBOUND_LIMIT:
            inbox.popleft()
            self.inbound_dropped += 1
        inbox.append(item)
        waiter = self._inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _offset_ms(self) -> float:
        return (self._loop.time() - self.accepted_at) * 1000.0

    async def _close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        self._close_code = code
        try:
            await self._transport.close(code, reason)
        except ConnectionError:
            pass
        transport_code = self._transport.close_code
        if transport_code is not None:
            self._close_code = transport_code
        self._mark_closed()

    def _mark_closed(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._closing = True
        if self._close_code is None:
            self._close_code = self._transport.close_code
        waiter = self._inbox_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        self._wake_sender()
        self._release_drainers()


RecorderFactory = Callable[[str | None], AbstractAsyncContextManager[Any]]
"""Makes the recorder of one call from its simulation result id (``None`` when absent)."""


def default_recorder(simulation_result_id: str | None) -> AbstractAsyncContextManager[Any]:
    """A :class:`roost.CallRecorder` for the call, delivering with the default settings."""
    from roost.recorder import CallRecorder

    recorder: AbstractAsyncContextManager[Any] = CallRecorder(simulation_result_id)
    return recorder


def simulation_result_id_from(carrier: object) -> str | None:
    """The id in upgrade headers or an ASGI scope; ``None`` if absent or invalid."""
    from roost.ids import InvalidSimulationResultId, extract_simulation_result_id

    try:
        return extract_simulation_result_id(carrier)
    except InvalidSimulationResultId as exc:
        # A manual or misconfigured call still goes ahead, just without enrichment.
        logger.warning("ignoring X-Simulation-Result-Id: %s", exc)
        return None


async def run_agent_call(
    transport: ChirpTransport,
    handler: ChirpHandler,
    *,
    headers: Mapping[str, str],
    id_carrier: object,
    path: str,
    recorder_factory: RecorderFactory | None,
    lead_ms: float,
    ticker: MediaTicker | None = None,
) -> ChirpSession:
    """Run one accepted call: enter its recorder, run the handler, close, then exit the recorder.

    The recorder is entered first, so its zero point is the accept, and exited
    last, so delivery of the enrichment starts once the call is over.
    ``id_carrier`` is what :func:`roost.extract_simulation_result_id` reads the
    id from (the request's headers or the ASGI scope).
    """
    sid = simulation_result_id_from(id_carrier)
    context = recorder_factory(sid) if recorder_factory is not None else nullcontext(None)
    async with context as recorder:
        session = ChirpSession(
            transport,
            headers=headers,
            path=path,
            simulation_result_id=sid,
            recorder=recorder,
            lead_ms=lead_ms,
            ticker=ticker,
        )
        await session.run(handler)
    return session


def _wall_ms() -> int:
    return int(time.time() * 1000)
