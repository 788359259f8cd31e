"""The platform's side of a CHIRP v2 call: a :class:`~roost.caller.CallDriver`.

:class:`ChirpCaller` dials an agent's WebSocket, speaks the digital human's
utterances as 20 ms frames paced by the process-wide
:class:`~roost.media.MediaTicker`, and reacts to the agent the way Bluejay does
(``bluejay-protocol.md`` §4):

- connecting: Basic auth (only when credentials are set) and
  ``X-Simulation-Result-Id`` on the upgrade; refused, unreachable, DNS, TLS or
  timeout failures are retried ``retries`` times with doubling backoff, then the
  call is ``INCOMPLETED``; HTTP 401/403 is ``REJECTED``; 502/503/504 count as
  unreachable; any other status is ``INCOMPLETED`` at once;
- speaking: ``speech.started`` before the first frame of an utterance,
  ``speech.completed`` after its last or when it is cut short;
- listening: the agent's ``speech.started`` during an utterance is a barge-in
  (no further frame of it is sent); a ``mark`` is echoed once the agent audio
  queued before it has played out in real time (:class:`PlayoutClock`); the
  agent's ``session.error`` goes to :attr:`CallOutcome.agent_errors`; a
  malformed or unknown frame is answered with ``session.error`` and the call
  goes on;
- ending: :meth:`hangup` closes with 1000. A close from the agent is a normal
  end (``COMPLETED``, ``ended_by="agent"``) for codes 1000, 1001, 1005 and the
  application range 3000-4999; other codes (1011 after ``INTERNAL_ERROR``,
  protocol errors) are ``INCOMPLETED`` / ``WEBSOCKET_AGENT_ERROR``. A close
  within ``immediate_close_s`` of the answer, before any audio or event went
  either way, is ``INCOMPLETED`` / ``WEBSOCKET_CLOSED_ON_CONNECT`` with the
  close code kept. A connection lost without a closing handshake is
  ``INCOMPLETED`` / ``BRIDGE_DISCONNECTED``.

Both directions can be recorded to a stereo WAV (left: digital human at each
frame's send deadline; right: agent audio at its modelled playout time, with
arrival jitter under one frame absorbed so the track has no clicks).

Example:
    >>> import asyncio
    >>> from roost.caller import CallFailed
    >>> from roost.chirp import ChirpCaller
    >>> async def main() -> str:
    ...     call = ChirpCaller("ws://127.0.0.1:9/voice", retries=0)
    ...     try:
    ...         await call.connect()
    ...     except CallFailed as failed:
    ...         return f"{failed.outcome.status} {failed.outcome.error_code}"
    ...     return "connected"
    >>> asyncio.run(main())
    'INCOMPLETED WEBSOCKET_CONNECT_FAILED'
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl as ssl_module
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from websockets.exceptions import InvalidURI
from websockets.http11 import Response
from websockets.uri import parse_uri

from roost.audio.pcm import FRAME_BYTES
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
from roost.chirp.playout import PlayoutClock
from roost.chirp.protocol import (
    CLOSE_NORMAL,
    ChirpProtocolError,
    ErrorCode,
    EventType,
    check_audio_frame,
    decode_event,
    encode_event,
    error_event,
    new_id,
)
from roost.chirp.wsclient import (
    HandshakeError,
    HandshakeRejected,
    WsClientConnection,
    open_websocket,
)
from roost.media.ticker import MediaTicker, Subscription

__all__ = ["ChirpCaller", "FrameCallback"]

logger = logging.getLogger(__name__)

FrameCallback = Callable[[str, int, float, float], None]
"""Called after each audio frame is written: ``(utterance_id, byte_offset, deadline, sent_at)``,
times in ``loop.time()`` seconds. Used for lateness statistics and timing proofs."""

_BYTES_PER_SECOND = 32_000
_NORMAL_CLOSE_CODES = frozenset({1000, 1001, 1005})
_RETRY_STATUSES = frozenset({502, 503, 504})
_STREAM_LIMIT = 50_000  # items kept for an unread agent_stream (about 16 min of 20 ms frames)


class _Utterance:
    __slots__ = ("future", "id", "pcm", "pos", "started")

    def __init__(self, utterance_id: str, pcm: bytes, future: asyncio.Future[PlayResult]) -> None:
        self.id = utterance_id
        self.pcm = pcm
        self.pos = 0
        self.started = False
        self.future = future


class ChirpCaller:
    """One outbound CHIRP v2 call. See the module docstring for the behaviour.

    Args:
        url: The agent's ``ws://`` or ``wss://`` URL.
        simulation_result_id: Sent as ``X-Simulation-Result-Id`` when given.
        username: Basic-auth user; ``Authorization`` is sent only when set.
        password: Basic-auth password (empty when only a user is given).
        headers: Further upgrade headers.
        record_path: Write a stereo WAV of the call here (left caller, right agent).
        ssl: TLS context for ``wss://`` (system defaults when omitted).
        connect_timeout: Limit for one connection attempt (TCP, TLS and upgrade).
        retries: Further attempts after a retryable connection failure.
        retry_backoff: Delay before the first retry; doubles each time.
        close_timeout: How long to wait for the closing handshake before aborting.
        immediate_close_s: An agent close this soon after the answer, before
            anything was exchanged, counts as a failed connection.
        max_message_size: Largest message accepted from the agent.
        buffer_agent_media: Keep agent audio for :meth:`agent_stream`; turn off
            for load generators that never read it (events are always kept).
        on_frame: See :data:`FrameCallback`.
        make_id: Event id factory.
        ticker: Media clock; the running loop's shared ticker by default.

    Raises:
        ValueError: for a URL that is not ``ws://`` / ``wss://`` or a header-unsafe id.
    """

    transport = "chirp"

    def __init__(
        self,
        url: str,
        *,
        simulation_result_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        headers: Mapping[str, str] | None = None,
        record_path: str | Path | None = None,
        ssl: ssl_module.SSLContext | None = None,
        connect_timeout: float = 10.0,
        retries: int = 3,
        retry_backoff: float = 1.0,
        close_timeout: float = 2.0,
        immediate_close_s: float = 1.0,
        max_message_size: int = 2**20,
        buffer_agent_media: bool = True,
        on_frame: FrameCallback | None = None,
        make_id: Callable[[], str] = new_id,
        ticker: MediaTicker | None = None,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI as exc:
            raise ValueError(f"not a ws:// or wss:// URL: {url!r} ({exc})") from None
        if password is not None and username is None:
            raise ValueError("a password needs a username")
        upgrade_headers = dict(headers or {})
        if simulation_result_id is not None:
            if not simulation_result_id or not simulation_result_id.isprintable():
                raise ValueError(
                    f"simulation result id {simulation_result_id!r} is not header-safe"
                )
            upgrade_headers["X-Simulation-Result-Id"] = simulation_result_id
        if username is not None:
            token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
            upgrade_headers["Authorization"] = f"Basic {token}"
        self.url = url
        self.simulation_result_id = simulation_result_id
        self._headers = upgrade_headers
        self._record_path = Path(record_path) if record_path is not None else None
        self._ssl = ssl
        self.connect_timeout = connect_timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self.close_timeout = close_timeout
        self.immediate_close_s = immediate_close_s
        self.max_message_size = max_message_size
        self.buffer_agent_media = buffer_agent_media
        self._on_frame = on_frame
        self._make_id = make_id
        self._ticker = ticker

        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = time.monotonic
        self._conn: WsClientConnection | None = None
        self._t_start = 0.0
        self.answered_at: float | None = None
        """``loop.time()`` when the agent accepted the upgrade; offsets count from here."""
        self._ended_at: float | None = None
        self._utterance: _Utterance | None = None
        self._utterance_seq = 0
        self._subscription: Subscription | None = None
        self._playout = PlayoutClock()
        self._mark_timer: asyncio.TimerHandle | None = None
        self._stream: deque[AgentMedia] = deque()
        self._stream_waiter: asyncio.Future[None] | None = None
        self._stream_closed = False
        self.stream_dropped = 0
        """Agent items dropped because :meth:`agent_stream` was not being read."""
        self._writer: StereoWavWriter | None = None
        self._record_error: str | None = None
        self._sent_bytes = 0
        self._received_bytes = 0
        self._agent_spoke = False
        self._hangup_requested = False
        self._agent_close: tuple[float, int, str] | None = None
        self._events: list[tuple[float, str, str, dict[str, Any]]] = []
        self._agent_errors: list[dict[str, Any]] = []
        self._outcome: CallOutcome | None = None
        self._done: asyncio.Future[None] | None = None

    # CallDriver interface.

    @property
    def outcome(self) -> CallOutcome | None:
        """The final outcome once the call has ended, else ``None``."""
        return self._outcome

    async def connect(self) -> None:
        """Dial the agent and return once it accepted the upgrade.

        Raises:
            CallFailed: when the call is rejected or the agent cannot be reached.
            RuntimeError: when called twice.
        """
        if self._loop is not None:
            raise RuntimeError("connect() can be called once per ChirpCaller")
        loop = self._loop = asyncio.get_running_loop()
        self._clock = loop.time
        self._done = loop.create_future()
        self._t_start = loop.time()
        delay = self.retry_backoff
        failure = ""
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(delay)
                delay *= 2
            try:
                await open_websocket(
                    self.url,
                    self,
                    headers=self._headers,
                    open_timeout=self.connect_timeout,
                    ssl=self._ssl,
                    max_size=self.max_message_size,
                    close_timeout=self.close_timeout,
                )
                return
            except HandshakeRejected as exc:
                if exc.status in (401, 403):
                    self._fail_connect(
                        CallStatus.REJECTED,
                        "WEBSOCKET_AUTH_FAILED",
                        f"the agent refused the upgrade with HTTP {exc.status}",
                    )
                if exc.status not in _RETRY_STATUSES:
                    self._fail_connect(
                        CallStatus.INCOMPLETED,
                        "WEBSOCKET_HANDSHAKE_FAILED",
                        f"the agent answered the upgrade with {exc} instead of 101",
                    )
                failure = str(exc)
            except HandshakeError as exc:
                self._fail_connect(CallStatus.INCOMPLETED, "WEBSOCKET_HANDSHAKE_FAILED", str(exc))
            except TimeoutError:
                failure = f"no answer within {self.connect_timeout:g} s"
            except OSError as exc:
                failure = _describe_os_error(exc)
        self._fail_connect(
            CallStatus.INCOMPLETED,
            "WEBSOCKET_CONNECT_FAILED",
            f"{failure} (gave up after {self.retries + 1} attempts)",
        )

    async def play(self, pcm: bytes, *, utterance_id: str | None = None) -> PlayResult:
        """Speak one utterance in real time; returns when sent, interrupted or the call ends.

        Raises:
            ValueError: for an odd number of bytes.
            RuntimeError: before :meth:`connect`, or while another utterance plays.
        """
        if self._loop is None:
            raise RuntimeError("connect() first")
        if self._utterance is not None:
            raise RuntimeError("an utterance is already playing; interrupt() it first")
        if len(pcm) % 2:
            raise ValueError(f"pcm_s16le needs an even number of bytes, got {len(pcm)}")
        self._utterance_seq += 1
        uid = utterance_id or f"dh-{self._utterance_seq}"
        conn = self._conn
        if conn is None or not conn.is_open or self._hangup_requested:
            return PlayResult(uid, 0.0, interrupted=bool(pcm))
        if not pcm:
            return PlayResult(uid, 0.0, interrupted=False)
        future: asyncio.Future[PlayResult] = self._loop.create_future()
        self._utterance = _Utterance(uid, bytes(pcm), future)
        ticker = self._ticker or MediaTicker.for_running_loop()
        self._subscription = ticker.subscribe(self._on_tick)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if self._utterance is not None and self._utterance.future is future:
                self._finish_utterance(interrupted=True)
            raise

    def interrupt(self) -> None:
        """Stop the utterance being played now; no further frame of it is sent."""
        if self._utterance is not None:
            self._finish_utterance(interrupted=True)

    async def agent_stream(self) -> AsyncIterator[AgentMedia]:
        """Yield the agent's audio and events in arrival order until the call ends.

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
        """Close the call with code 1000 and return the outcome (idempotent)."""
        if self._outcome is not None:
            return self._outcome
        if self._conn is None or self._done is None or self._loop is None:
            raise RuntimeError("connect() first")
        if not self._hangup_requested:
            self._hangup_requested = True
            self._ended_at = self._ended_at or self._loop.time()
            self.interrupt()
            self._conn.close(CLOSE_NORMAL, "call ended")
        try:
            await asyncio.wait_for(asyncio.shield(self._done), self.close_timeout + 1.0)
        except TimeoutError:
            self._conn.abort()
            await asyncio.shield(self._done)
        return self._settled()

    async def wait_closed(self) -> CallOutcome:
        """Wait until the call ends, whichever side ends it, and return the outcome."""
        if self._done is None:
            raise RuntimeError("connect() first")
        await asyncio.shield(self._done)
        return self._settled()

    def _settled(self) -> CallOutcome:
        if self._outcome is None:
            raise RuntimeError("the call has not ended")
        return self._outcome

    # WsListener callbacks (run on the loop, synchronously).

    def on_open(self, connection: WsClientConnection, response: Response) -> None:
        assert self._loop is not None
        self._conn = connection
        self.answered_at = self._loop.time()
        if self._record_path is not None:
            try:
                self._writer = StereoWavWriter(self._record_path, snap_ms=20.0)
            except OSError as exc:
                self._record_error = f"recording disabled: {exc}"
                logger.error("CHIRP call to %s: %s", self.url, self._record_error)

    def on_message(self, payload: bytes, text: bool) -> None:
        assert self._loop is not None
        now = self._loop.time()
        if text:
            self._on_text(payload, now)
        else:
            self._on_audio(payload, now)

    def on_close_frame(self, code: int, reason: str) -> None:
        assert self._loop is not None and self._conn is not None
        # Only a close the agent started counts as its hang-up, not its echo of ours.
        if self._conn.protocol.close_rcvd_then_sent and self._agent_close is None:
            now = self._loop.time()
            self._agent_close = (now, code, reason)
            self._ended_at = self._ended_at or now
            self.interrupt()

    def on_connection_lost(self, code: int, reason: str, clean: bool) -> None:
        assert self._loop is not None and self._conn is not None and self._done is not None
        now = self._loop.time()
        self._ended_at = self._ended_at or now
        if self._utterance is not None:
            self._finish_utterance(interrupted=True)
        if self._mark_timer is not None:
            self._mark_timer.cancel()
            self._mark_timer = None
        self._playout.cancel()
        self._outcome = self._final_outcome(code, reason)
        self._close_stream()
        if not self._done.done():
            self._done.set_result(None)

    # Sending.

    def _on_tick(self, deadline: float) -> None:
        # The hot path: runs for every call on every 20 ms tick.
        utterance = self._utterance
        conn = self._conn
        if utterance is None or conn is None:
            self._unsubscribe()
            return
        if not utterance.started:
            utterance.started = True
            self._send_event(EventType.SPEECH_STARTED, {"utterance_id": utterance.id})
        pos = utterance.pos
        frame = utterance.pcm[pos : pos + FRAME_BYTES]
        if not conn.send_binary(frame):
            self._unsubscribe()  # closing: connection_lost settles the utterance
            return
        sent_at = self._clock()
        utterance.pos = pos + len(frame)
        self._sent_bytes += len(frame)
        if self._writer is not None:
            self._record(0, frame, deadline)
        if self._on_frame is not None:
            self._on_frame(utterance.id, pos, deadline, sent_at)
        if utterance.pos >= len(utterance.pcm):
            self._finish_utterance(interrupted=False)

    def _finish_utterance(self, *, interrupted: bool) -> None:
        utterance = self._utterance
        assert utterance is not None
        self._utterance = None
        self._unsubscribe()
        if utterance.started:
            self._send_event(EventType.SPEECH_COMPLETED, {"utterance_id": utterance.id})
        if not utterance.future.done():
            played_ms = utterance.pos / _BYTES_PER_SECOND * 1000.0
            utterance.future.set_result(PlayResult(utterance.id, played_ms, interrupted))

    def _unsubscribe(self) -> None:
        if self._subscription is not None:
            self._subscription.cancel()
            self._subscription = None

    def _send_event(self, event_type: str, data: dict[str, Any]) -> None:
        conn = self._conn
        if conn is not None and conn.send_text(encode_event(event_type, data, ts_ms=_wall_ms())):
            self._log_event("out", event_type, data)

    def _send_error(self, error: ChirpProtocolError) -> None:
        conn = self._conn
        if conn is not None and conn.send_text(
            error_event(error.code, error.message, ts_ms=_wall_ms())
        ):
            self._log_event(
                "out", EventType.SESSION_ERROR, {"code": str(error.code), "message": error.message}
            )

    # Receiving.

    def _on_audio(self, payload: bytes, now: float) -> None:
        try:
            check_audio_frame(payload)
        except ChirpProtocolError as error:
            self._send_error(error)
            return
        self._agent_spoke = True
        self._received_bytes += len(payload)
        start = self._playout.push(len(payload) / _BYTES_PER_SECOND, now)
        if self._writer is not None:
            self._record(1, payload, start)
        if self.buffer_agent_media:
            self._push_stream(AgentAudio(payload, self._offset_ms(now)))

    def _on_text(self, payload: bytes, now: float) -> None:
        try:
            envelope = decode_event(payload, now_ms=_wall_ms(), make_id=self._make_id)
        except ChirpProtocolError as error:
            self._send_error(error)
            return
        self._agent_spoke = True
        offset = self._log_event("in", envelope.type, envelope.data)
        if not envelope.known:
            # Bluejay's forward-compatibility rule: answer and drop (§4.5).
            self._send_error(
                ChirpProtocolError(
                    ErrorCode.INVALID_MESSAGE, f"unknown event type {envelope.type!r}"
                )
            )
            return
        kind = envelope.type
        if kind == EventType.SPEECH_STARTED:
            utterance = self._utterance
            if utterance is not None and utterance.started:
                self._finish_utterance(interrupted=True)
        elif kind == EventType.MARK:
            self._playout.mark(envelope.data["name"], now)
            self._schedule_marks()
        elif kind == EventType.SESSION_ERROR:
            self._agent_errors.append(
                {
                    "code": envelope.data["code"],
                    "message": envelope.data["message"],
                    "id": envelope.id,
                    "ts_ms": envelope.ts_ms,
                    "offset_ms": offset,
                }
            )
        self._push_stream(AgentEvent(kind, envelope.data, offset))

    def _schedule_marks(self) -> None:
        assert self._loop is not None
        if self._mark_timer is not None:
            return
        deadline = self._playout.next_deadline
        if deadline is None:
            return
        if deadline <= self._loop.time():
            self._fire_marks()
        else:
            self._mark_timer = self._loop.call_at(deadline, self._fire_marks)

    def _fire_marks(self) -> None:
        assert self._loop is not None
        self._mark_timer = None
        for name in self._playout.due(self._loop.time()):
            self._send_event(EventType.MARK, {"name": name})
        self._schedule_marks()

    def _push_stream(self, item: AgentMedia) -> None:
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

    # Bookkeeping.

    def _offset_ms(self, now: float) -> float:
        return (now - (self.answered_at or now)) * 1000.0

    def _log_event(self, direction: str, event_type: str, data: dict[str, Any]) -> float:
        assert self._loop is not None
        offset = self._offset_ms(self._loop.time())
        self._events.append((offset, direction, str(event_type), data))
        return offset

    def _record(self, track: int, pcm: bytes, at: float) -> None:
        writer = self._writer
        assert writer is not None
        try:
            writer.add(track, pcm, self._offset_ms(at))
        except OSError as exc:
            self._record_error = f"recording stopped: {exc}"
            logger.error("CHIRP call to %s: %s", self.url, self._record_error)
            self._writer = None
            try:
                writer.close()
            except OSError:
                pass

    def _fail_connect(self, status: CallStatus, error_code: str, detail: str) -> None:
        bucket = FailureBucket.NO_CONNECTION
        self._outcome = CallOutcome(
            status=status,
            transport=self.transport,
            error_code=error_code,
            bucket=bucket,
            detail=detail,
        )
        self._close_stream()
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
        raise CallFailed(self._outcome)

    def _final_outcome(self, lost_code: int, lost_reason: str) -> CallOutcome:
        assert self._conn is not None and self.answered_at is not None
        protocol = self._conn.protocol
        outcome = CallOutcome(
            status=CallStatus.COMPLETED,
            transport=self.transport,
            setup_ms=(self.answered_at - self._t_start) * 1000.0,
            duration_ms=((self._ended_at or self.answered_at) - self.answered_at) * 1000.0,
            audio_sent_ms=self._sent_bytes / _BYTES_PER_SECOND * 1000.0,
            audio_received_ms=self._received_bytes / _BYTES_PER_SECOND * 1000.0,
            events=self._events,
            agent_errors=self._agent_errors,
        )
        agent_close = self._agent_close
        if agent_close is not None:
            closed_at, code, reason = agent_close
            outcome.ended_by = "agent"
            outcome.close_code = code
            quick = closed_at - self.answered_at <= self.immediate_close_s
            if quick and not self._agent_spoke and not self._sent_bytes:
                outcome.status = CallStatus.INCOMPLETED
                outcome.error_code = "WEBSOCKET_CLOSED_ON_CONNECT"
                outcome.bucket = FailureBucket.NO_CONNECTION
                outcome.detail = f"the agent accepted and closed at once with {code} {reason!r}"
            elif code not in _NORMAL_CLOSE_CODES and not 3000 <= code <= 4999:
                outcome.status = CallStatus.INCOMPLETED
                outcome.error_code = "WEBSOCKET_AGENT_ERROR"
                outcome.bucket = FailureBucket.CALL_DROPPED
                outcome.detail = f"the agent closed with {code} {reason!r}"
            else:
                outcome.detail = f"the agent hung up ({code} {reason!r})"
        elif self._hangup_requested and protocol.close_rcvd is not None:
            outcome.ended_by = "caller"
            outcome.close_code = CLOSE_NORMAL
            outcome.detail = "hung up by the caller"
        elif protocol.close_sent is not None and not self._hangup_requested:
            # websockets failed the connection over an agent framing error.
            outcome.status = CallStatus.INCOMPLETED
            outcome.error_code = "WEBSOCKET_PROTOCOL_ERROR"
            outcome.bucket = FailureBucket.CALL_DROPPED
            outcome.close_code = protocol.close_sent.code
            cause = protocol.parser_exc
            outcome.detail = (
                f"closed {protocol.close_sent.code}: {cause or protocol.close_sent.reason}"
            )
        elif self._hangup_requested:
            # We asked to close and the agent dropped TCP without answering: still our hang-up.
            outcome.ended_by = "caller"
            outcome.close_code = CLOSE_NORMAL
            outcome.detail = (
                "hung up by the caller (the agent did not complete the closing handshake)"
            )
        else:
            outcome.status = CallStatus.INCOMPLETED
            outcome.error_code = "BRIDGE_DISCONNECTED"
            outcome.bucket = FailureBucket.CALL_DROPPED
            outcome.close_code = lost_code
            outcome.detail = "the connection dropped without a closing handshake"
        if self._writer is not None:
            try:
                outcome.recording_path = self._writer.close()
            except OSError as exc:
                self._record_error = f"recording could not be finished: {exc}"
            self._writer = None
        if self._record_error:
            outcome.detail = f"{outcome.detail}; {self._record_error}"
        return outcome


def _wall_ms() -> int:
    return int(time.time() * 1000)


def _describe_os_error(exc: OSError) -> str:
    if isinstance(exc, ssl_module.SSLError):
        return f"TLS failure: {exc.reason or exc}"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc) or type(exc).__name__
    return f"unreachable: {text}"
