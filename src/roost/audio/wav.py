"""WAV files: read any common WAV as 16 kHz mono PCM, write mono and two-track stereo.

Reading is a small RIFF parser of our own rather than the stdlib ``wave`` module,
which on Python 3.11 refuses IEEE-float and ``WAVE_FORMAT_EXTENSIBLE`` files
(what most DAWs, TTS engines and sox write by default), and rather than
``soundfile``, which would add a native library for the one thing we need. It
accepts integer PCM of 8, 16, 24 and 32 bits, float of 32 and 64 bits, G.711
A-law and µ-law, the extensible wrapper around all of those, any channel count
(downmixed) and any rate (resampled with soxr). Streamed files whose data size
field is wrong (0, 0xFFFFFFFF, or longer than the file) are read to the end.

Writing uses the stdlib ``wave`` module. :class:`StereoWavWriter` lays two
tracks (caller left, agent right) on one timeline: each chunk is placed at its
own time offset, gaps become silence, and everything older than a short window
is written to disk as the call goes, so memory stays bounded on long calls.

Example:
    >>> import tempfile, pathlib
    >>> from roost.audio import StereoWavWriter, read_wav, silence
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "call.wav"
    >>> with StereoWavWriter(path) as writer:
    ...     first = writer.add(0, silence(20), at_ms=0.0)
    ...     writer.add(1, silence(20), at_ms=500.0)
    500.0
    >>> len(read_wav(path))  # 520 ms, downmixed to mono
    16640
"""

from __future__ import annotations

import struct
import wave
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np
import numpy.typing as npt
import soxr

from roost.audio.pcm import SAMPLE_RATE, float_to_pcm, pcm_to_array

__all__ = [
    "DecodedWav",
    "StereoWavWriter",
    "WavError",
    "decode_wav",
    "read_wav",
    "write_wav",
]

_PCM = 0x0001
_FLOAT = 0x0003
_ALAW = 0x0006
_MULAW = 0x0007
_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {_PCM: "PCM", _FLOAT: "float", _ALAW: "A-law", _MULAW: "µ-law"}
# Common non-PCM tags, named in errors so the user knows what they have.
_OTHER_FORMATS = {
    0x0002: "MS ADPCM",
    0x0011: "IMA ADPCM",
    0x0031: "GSM 6.10",
    0x0050: "MPEG",
    0x0055: "MP3",
}


class WavError(ValueError):
    """The file is not a WAV file Roost can decode; the message says why."""


@dataclass(frozen=True, slots=True)
class DecodedWav:
    """A decoded WAV file.

    Attributes:
        samples: float32 samples in ``[-1.0, 1.0]``, shape ``(frames, channels)``.
        sample_rate: Sample rate in Hz.
        encoding: ``"PCM"``, ``"float"``, ``"A-law"`` or ``"µ-law"``.
        bits: Bits per sample as stored.
    """

    samples: npt.NDArray[np.float32]
    sample_rate: int
    encoding: str
    bits: int

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def duration_s(self) -> float:
        """Duration in seconds."""
        return int(self.samples.shape[0]) / self.sample_rate

    def to_pcm(self, rate: int = SAMPLE_RATE) -> bytes:
        """Downmix to mono and resample to ``rate``, as ``pcm_s16le`` bytes."""
        mono = (
            self.samples.mean(axis=1, dtype=np.float32) if self.channels > 1 else self.samples[:, 0]
        )
        if self.sample_rate != rate and mono.size:
            mono = soxr.resample(mono, self.sample_rate, rate, quality="HQ")
        return float_to_pcm(mono)


def read_wav(source: str | Path | bytes, *, rate: int = SAMPLE_RATE) -> bytes:
    """Read a WAV file (path or bytes) as mono ``pcm_s16le`` at ``rate`` Hz.

    Raises:
        WavError: if it is not a WAV file or uses an unsupported encoding.
        OSError: if the path cannot be read.
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    return decode_wav(data).to_pcm(rate)


def decode_wav(data: bytes) -> DecodedWav:
    """Decode the bytes of a WAV file; see the module docstring for what is accepted.

    Raises:
        WavError: with a specific reason when the data cannot be decoded.
    """
    if len(data) < 12:
        raise WavError("not a WAV file: shorter than a RIFF header")
    magic, _size, form = struct.unpack_from("<4sI4s", data, 0)
    if magic == b"RIFX":
        raise WavError("big-endian RIFX WAV files are not supported; convert to RIFF")
    if magic == b"RF64":
        raise WavError("RF64 (WAV over 4 GiB) files are not supported")
    if magic != b"RIFF" or form != b"WAVE":
        raise WavError("not a WAV file: missing the RIFF/WAVE header")
    fmt: bytes | None = None
    payload: bytes | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, chunk_size = struct.unpack_from("<4sI", data, offset)
        body_start = offset + 8
        if chunk_id == b"data":
            # Streamed writers leave a placeholder size; read what is there.
            end = body_start + chunk_size
            if chunk_size in (0, 0xFFFFFFFF) or end > len(data):
                end = len(data)
            payload = data[body_start:end]
            if fmt is not None:
                break
            offset = end + (end - body_start) % 2
            continue
        if chunk_id == b"fmt ":
            fmt = data[body_start : body_start + chunk_size]
        offset = body_start + chunk_size + chunk_size % 2
    if fmt is None:
        raise WavError("invalid WAV file: no 'fmt ' chunk")
    if payload is None:
        raise WavError("invalid WAV file: no 'data' chunk")
    return _decode(fmt, payload)


def _decode(fmt: bytes, payload: bytes) -> DecodedWav:
    if len(fmt) < 16:
        raise WavError(f"invalid WAV file: 'fmt ' chunk is {len(fmt)} bytes, needs 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", fmt, 0)
    if tag == _EXTENSIBLE:
        if len(fmt) < 40:
            raise WavError("invalid WAV file: truncated WAVE_FORMAT_EXTENSIBLE header")
        # The sub-format GUID starts with the classic two-byte format tag.
        (tag,) = struct.unpack_from("<H", fmt, 24)
    if tag not in _FORMAT_NAMES:
        name = _OTHER_FORMATS.get(tag, "unknown")
        raise WavError(
            f"unsupported WAV encoding 0x{tag:04X} ({name}); "
            "use PCM, float, A-law or µ-law (e.g. sox in.wav -e signed -b 16 out.wav)"
        )
    if channels < 1:
        raise WavError("invalid WAV file: zero channels")
    if rate < 1:
        raise WavError("invalid WAV file: zero sample rate")
    width = block_align // channels if block_align else (bits + 7) // 8
    if width < 1 or block_align != width * channels:
        raise WavError(f"invalid WAV file: block size {block_align} for {channels} channel(s)")
    if bits > width * 8:
        raise WavError(f"invalid WAV file: {bits}-bit samples do not fit {width}-byte slots")
    usable = len(payload) - len(payload) % block_align
    raw = payload[:usable]
    samples = _to_float(tag, width, raw)
    return DecodedWav(
        samples=samples.reshape(-1, channels),
        sample_rate=rate,
        encoding=_FORMAT_NAMES[tag],
        bits=bits,
    )


def _to_float(tag: int, width: int, raw: bytes) -> npt.NDArray[np.float32]:
    if tag == _PCM:
        if width == 1:
            return (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
        if width == 2:
            return np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
        if width == 3:
            triplets = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            value = triplets[:, 0] | (triplets[:, 1] << 8) | (triplets[:, 2] << 16)
            value = np.where(value >= 1 << 23, value - (1 << 24), value)
            return (value / float(1 << 23)).astype(np.float32)
        if width == 4:
            return (np.frombuffer(raw, "<i4") / float(1 << 31)).astype(np.float32)
        raise WavError(f"unsupported PCM sample width of {width * 8} bits")
    if tag == _FLOAT:
        if width == 4:
            floats = np.frombuffer(raw, "<f4").astype(np.float32)
        elif width == 8:
            floats = np.frombuffer(raw, "<f8").astype(np.float32)
        else:
            raise WavError(f"unsupported float sample width of {width * 8} bits")
        return np.nan_to_num(np.clip(floats, -1.0, 1.0), nan=0.0)
    if width != 1:
        raise WavError(f"G.711 WAV files must have 8-bit samples, got {width * 8}")
    table = _ULAW_TABLE if tag == _MULAW else _ALAW_TABLE
    return table[np.frombuffer(raw, np.uint8)]


def _g711_tables() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    # ITU-T G.711 expansion, written from the standard's segment formulas.
    codes = np.arange(256, dtype=np.int32)
    u = ~codes & 0xFF
    exponent = (u >> 4) & 0x07
    magnitude = ((((u & 0x0F) << 3) + 0x84) << exponent) - 0x84
    ulaw = np.where(u & 0x80, -magnitude, magnitude)
    a = codes ^ 0x55
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    magnitude = np.where(
        exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0)
    )
    alaw = np.where(a & 0x80, magnitude, -magnitude)
    return (ulaw / 32768.0).astype(np.float32), (alaw / 32768.0).astype(np.float32)


_ULAW_TABLE, _ALAW_TABLE = _g711_tables()


def write_wav(
    path: str | Path,
    pcm: bytes | bytearray | memoryview,
    *,
    rate: int = SAMPLE_RATE,
    channels: int = 1,
) -> Path:
    """Write interleaved ``pcm_s16le`` as a 16-bit WAV file; returns the path.

    Example:
        >>> import tempfile, pathlib
        >>> from roost.audio import read_wav, silence, write_wav
        >>> path = write_wav(pathlib.Path(tempfile.mkdtemp()) / "a.wav", silence(100))
        >>> len(read_wav(path))
        3200
    """
    if len(pcm) % (2 * channels):
        raise ValueError(f"{len(pcm)} bytes is not a whole number of {channels}-channel frames")
    target = Path(path)
    with wave.open(str(target), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(pcm))
    return target


class StereoWavWriter:
    """Two mono tracks on one timeline, written to a stereo 16-bit WAV as they come.

    Track 0 is the left channel, track 1 the right. :meth:`add` places a chunk at
    ``at_ms`` on the call's timeline, or right after the previous chunk of the
    same track if that one has not finished by then (audio is never overlapped
    or dropped). Silence fills the gaps. Audio more than ``window_ms`` older
    than the latest ``at_ms`` seen is final and goes to disk in blocks of about
    a second; a chunk that arrives even later is placed at the first moment
    still in memory.

    Args:
        path: Output file.
        rate: Sample rate of both tracks.
        window_ms: How far back a late chunk can still be placed exactly.
        snap_ms: A chunk starting at most this long after the end of the
            previous one on its track is joined to it, so arrival jitter does
            not leave clicks of silence.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        rate: int = SAMPLE_RATE,
        window_ms: float = 1000.0,
        snap_ms: float = 0.0,
    ) -> None:
        self.path = Path(path)
        self.rate = rate
        self._window = int(rate * window_ms / 1000.0)
        self._snap = int(rate * snap_ms / 1000.0)
        self._out = wave.open(str(self.path), "wb")  # noqa: SIM115 - closed by close()
        self._out.setnchannels(2)
        self._out.setsampwidth(2)
        self._out.setframerate(rate)
        self._buffer = np.zeros((rate, 2), dtype=np.int16)
        self._base = 0  # timeline sample at _buffer[0]; everything earlier is on disk
        self._ends = [0, 0]  # first free sample of each track
        self._horizon = 0
        self._closed = False

    @property
    def duration_ms(self) -> float:
        """Length of the timeline so far (the later track end)."""
        return max(self._ends) * 1000.0 / self.rate

    def add(self, track: int, pcm: bytes | bytearray | memoryview, at_ms: float) -> float:
        """Place ``pcm`` (mono ``pcm_s16le``) on ``track`` at ``at_ms``; returns where it went.

        Raises:
            ValueError: for a track other than 0 or 1, or an odd byte count.
            RuntimeError: after :meth:`close`.
        """
        if self._closed:
            raise RuntimeError("the recording is closed")
        if track not in (0, 1):
            raise ValueError(f"track must be 0 (left) or 1 (right), got {track}")
        samples = pcm_to_array(pcm)
        at = max(0, round(at_ms * self.rate / 1000.0))
        end = self._ends[track]
        start = max(end if at <= end + self._snap else at, self._base)
        stop = start + samples.size
        self._reserve(stop)
        self._buffer[start - self._base : stop - self._base, track] = samples
        self._ends[track] = stop
        self._horizon = max(self._horizon, at)
        if self._horizon - self._window - self._base >= self.rate:
            self._write_until(self._horizon - self._window)
        return start * 1000.0 / self.rate

    def close(self) -> Path:
        """Write the rest and finish the file; safe to call twice. Returns the path."""
        if not self._closed:
            self._closed = True
            try:
                self._write_until(max(self._ends))
            finally:
                self._out.close()
        return self.path

    def __enter__(self) -> StereoWavWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _reserve(self, stop: int) -> None:
        needed = stop - self._base
        if needed > len(self._buffer):
            grown = np.zeros((max(needed, 2 * len(self._buffer)), 2), dtype=np.int16)
            grown[: len(self._buffer)] = self._buffer
            self._buffer = grown

    def _write_until(self, until: int) -> None:
        count = until - self._base
        if count <= 0:
            return
        self._reserve(until)
        self._out.writeframes(self._buffer[:count].tobytes())
        remaining = self._buffer[count:].copy()
        self._buffer[: len(remaining)] = remaining
        self._buffer[len(remaining) :] = 0
        self._base = until
