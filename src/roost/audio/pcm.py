"""PCM framing: 16 kHz mono ``pcm_s16le`` bytes, numpy arrays and 20 ms frames.

Every audio path in Roost (the CHIRP wire, the call-driver interface, recordings)
speaks signed 16-bit little-endian mono PCM. This module converts between those
bytes and numpy arrays, measures durations, and cuts streams into fixed-size
frames. :class:`FrameSplitter` re-frames a stream that arrives in arbitrary
chunks (network reads, TTS output, resampler output) into exact 20 ms frames.

Example:
    >>> from roost.audio import FRAME_BYTES, FrameSplitter, duration_ms, silence
    >>> splitter = FrameSplitter()
    >>> [len(f) for f in splitter.push(silence(50))]
    [640, 640]
    >>> splitter.pending, duration_ms(splitter.flush())
    (320, 10.0)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "SAMPLE_WIDTH",
    "FrameSplitter",
    "duration_ms",
    "float_to_pcm",
    "iter_frames",
    "pcm_to_array",
    "pcm_to_float",
    "samples_to_pcm",
    "silence",
]

SAMPLE_RATE = 16_000
"""Sample rate of Roost's internal and CHIRP audio, in Hz."""
SAMPLE_WIDTH = 2
"""Bytes per sample (signed 16-bit)."""
FRAME_MS = 20
"""Length of one media frame in milliseconds."""
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""Samples in one 20 ms frame at 16 kHz (320)."""
FRAME_BYTES = FRAME_SAMPLES * SAMPLE_WIDTH
"""Bytes in one 20 ms frame at 16 kHz (640), CHIRP's recommended frame size."""

_INT16 = np.dtype("<i2")


def pcm_to_array(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.int16]:
    """View ``pcm_s16le`` bytes as a read-only int16 array (no copy).

    Raises:
        ValueError: if the byte count is odd (half a sample).
    """
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"pcm_s16le needs an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype=_INT16)


def samples_to_pcm(samples: npt.ArrayLike) -> bytes:
    """Encode integer samples as ``pcm_s16le`` bytes, clipping to the int16 range.

    Float input is treated as already scaled to the int16 range; use
    :func:`float_to_pcm` for ``[-1.0, 1.0]`` floats.
    """
    array = np.asarray(samples)
    if array.dtype != _INT16:
        if array.dtype.kind == "f":
            array = np.rint(array)
        array = np.clip(array, -32768, 32767).astype(_INT16)
    return array.tobytes()


def pcm_to_float(pcm: bytes | bytearray | memoryview) -> npt.NDArray[np.float32]:
    """Decode ``pcm_s16le`` bytes to float32 samples in ``[-1.0, 1.0)``."""
    return pcm_to_array(pcm).astype(np.float32) / 32768.0


def float_to_pcm(samples: npt.ArrayLike) -> bytes:
    """Encode float samples in ``[-1.0, 1.0]`` as ``pcm_s16le``, clipping overs."""
    array = np.asarray(samples, dtype=np.float64) * 32768.0
    return np.clip(np.rint(array), -32768, 32767).astype(_INT16).tobytes()


def duration_ms(pcm: bytes | bytearray | memoryview | int, rate: int = SAMPLE_RATE) -> float:
    """Duration of mono 16-bit audio, given as bytes or as a byte count."""
    size = pcm if isinstance(pcm, int) else len(pcm)
    return size / (SAMPLE_WIDTH * rate) * 1000.0


def silence(ms: float, rate: int = SAMPLE_RATE) -> bytes:
    """Digital silence of ``ms`` milliseconds (rounded down to whole samples)."""
    return bytes(int(rate * ms / 1000.0) * SAMPLE_WIDTH)


def iter_frames(
    pcm: bytes | bytearray | memoryview, frame_bytes: int = FRAME_BYTES
) -> Iterator[bytes]:
    """Cut a whole buffer into frames; the last one may be shorter (never padded).

    Raises:
        ValueError: if ``frame_bytes`` is not a positive even number or ``pcm``
            has an odd length.
    """
    _check_frame_bytes(frame_bytes)
    if len(pcm) % SAMPLE_WIDTH:
        raise ValueError(f"pcm_s16le needs an even number of bytes, got {len(pcm)}")
    view = memoryview(pcm)
    for start in range(0, len(view), frame_bytes):
        yield bytes(view[start : start + frame_bytes])


class FrameSplitter:
    """Re-frame a byte stream into fixed-size frames.

    Chunks of any size, even odd ones split mid-sample, go in through
    :meth:`push`; only whole frames come out, in order, and the remainder waits
    for the next chunk. :meth:`flush` returns what is left at the end of the
    stream.

    Args:
        frame_bytes: Size of each output frame (640 = 20 ms at 16 kHz).
    """

    __slots__ = ("_buffer", "frame_bytes")

    def __init__(self, frame_bytes: int = FRAME_BYTES) -> None:
        _check_frame_bytes(frame_bytes)
        self.frame_bytes = frame_bytes
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes buffered that do not yet make a whole frame."""
        return len(self._buffer)

    def push(self, chunk: bytes | bytearray | memoryview) -> list[bytes]:
        """Add a chunk and return every whole frame now available."""
        buffer = self._buffer
        buffer += chunk
        size = self.frame_bytes
        whole = len(buffer) - len(buffer) % size
        if not whole:
            return []
        frames = [bytes(buffer[i : i + size]) for i in range(0, whole, size)]
        del buffer[:whole]
        return frames

    def flush(self, *, pad: bool = False) -> bytes:
        """Return the buffered remainder (even length), optionally zero-padded to a frame.

        An odd trailing byte (half a sample) cannot be played and is dropped.
        Returns ``b""`` when nothing is buffered.
        """
        rest = bytes(self._buffer[: len(self._buffer) - len(self._buffer) % SAMPLE_WIDTH])
        self._buffer.clear()
        if pad and rest:
            rest += bytes(self.frame_bytes - len(rest))
        return rest

    def clear(self) -> int:
        """Drop the buffered remainder; returns how many bytes were dropped."""
        dropped = len(self._buffer)
        self._buffer.clear()
        return dropped


def _check_frame_bytes(frame_bytes: int) -> None:
    if frame_bytes <= 0 or frame_bytes % SAMPLE_WIDTH:
        raise ValueError(f"frame size must be a positive even number of bytes, got {frame_bytes}")
