"""Streaming sample-rate conversion of mono ``pcm_s16le`` with soxr.

SIP carries 8 kHz audio, CHIRP 16 kHz, TTS engines emit 22.05 or 24 kHz: each call
needs one stateful converter per direction. :class:`Resampler` wraps
``soxr.ResampleStream`` (a proper anti-alias filter, about 3 µs per 20 ms chunk;
``audioop.ratecv`` has no filter and aliases, see ``sip-stack-notes.md`` §5) behind
a bytes-in, bytes-out API that tolerates chunks split mid-sample.

Latency, measured with 20 ms input chunks (16 kHz <-> 8 kHz): ``"HQ"`` and ``"MQ"``
hold back about 63 ms on average and release output in bursts (up to about
115 ms behind); ``"LQ"`` about 33 ms (bursts up to 61 ms) but it attenuates the
telephone band edge (3.4 kHz at -8 dB); ``"QQ"`` is immediate but has no
anti-alias filter. Real-time senders should re-frame the output with
:class:`~roost.audio.FrameSplitter` and allow for that delay.

Example:
    >>> from roost.audio import Resampler, silence
    >>> down = Resampler(16_000, 8_000)
    >>> out = b"".join(down.process(silence(20)) for _ in range(50)) + down.flush()
    >>> len(out)  # one second at 8 kHz, 16-bit
    16000
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import soxr

from roost.audio.pcm import SAMPLE_WIDTH, pcm_to_array, samples_to_pcm

__all__ = ["Quality", "Resampler", "resample"]

Quality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
"""soxr quality recipe, from quick (no filter) to very high."""


class Resampler:
    """Stateful converter of one mono 16-bit stream from ``in_rate`` to ``out_rate``.

    Feed consecutive chunks with :meth:`process` and call :meth:`flush` once at
    the end of the stream to drain the filter. Chunks may have any length,
    including odd byte counts; a trailing half sample is kept for the next call.
    Equal rates pass audio through untouched.

    Args:
        in_rate: Input sample rate in Hz.
        out_rate: Output sample rate in Hz.
        quality: soxr recipe; see the module docstring for the latency trade-off.

    Raises:
        ValueError: if a rate is not positive.
    """

    __slots__ = ("_carry", "_stream", "in_rate", "out_rate", "quality")

    def __init__(self, in_rate: int, out_rate: int, *, quality: Quality = "HQ") -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.quality = quality
        self._carry = b""
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="int16", quality=quality)
        )

    def process(self, pcm: bytes | bytearray | memoryview) -> bytes:
        """Convert the next chunk; returns whatever output the filter has ready."""
        data = self._carry + bytes(pcm) if self._carry else bytes(pcm)
        odd = len(data) % SAMPLE_WIDTH
        if odd:
            data, self._carry = data[:-odd], data[-odd:]
        else:
            self._carry = b""
        if self._stream is None or not data:
            return data
        return samples_to_pcm(self._stream.resample_chunk(pcm_to_array(data)))

    def flush(self) -> bytes:
        """End the stream: return the filter's remaining output and reset it."""
        self._carry = b""
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._stream.clear()
        return samples_to_pcm(tail)

    def reset(self) -> None:
        """Drop all buffered state, e.g. after a barge-in discards queued audio."""
        self._carry = b""
        if self._stream is not None:
            self._stream.clear()


def resample(
    pcm: bytes | bytearray | memoryview, in_rate: int, out_rate: int, *, quality: Quality = "HQ"
) -> bytes:
    """Convert a whole mono ``pcm_s16le`` buffer in one go (no streaming latency).

    Example:
        >>> from roost.audio import resample, silence
        >>> len(resample(silence(100, rate=8_000), 8_000, 16_000))
        3200
    """
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
    if in_rate == out_rate or not pcm:
        return bytes(pcm)
    samples = pcm_to_array(pcm)
    return samples_to_pcm(soxr.resample(samples, in_rate, out_rate, quality=quality))
