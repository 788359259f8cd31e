"""Audio utilities shared by the CHIRP and SIP call drivers.

Everything here speaks 16 kHz mono signed 16-bit little-endian PCM
(``pcm_s16le``) unless told otherwise: the CHIRP wire format and the format that
crosses :class:`roost.caller.CallDriver`.

- :mod:`roost.audio.pcm`: bytes <-> numpy, durations, 20 ms framing (:class:`FrameSplitter`).
- :mod:`roost.audio.resample`: streaming soxr conversion (:class:`Resampler`).
- :mod:`roost.audio.wav`: read any common WAV as 16 kHz mono (:func:`read_wav`),
  write mono (:func:`write_wav`) and two-track stereo (:class:`StereoWavWriter`).
- :mod:`roost.audio.vad`: energy voice-activity detection (:class:`EnergyVad`).

Needs the ``audio`` extra (numpy, soxr).

Example:
    >>> from roost.audio import FRAME_BYTES, iter_frames, silence
    >>> [len(frame) for frame in iter_frames(silence(50))] == [FRAME_BYTES, FRAME_BYTES, 320]
    True
"""

from __future__ import annotations

from roost.audio.pcm import (
    FRAME_BYTES,
    FRAME_MS,
    FRAME_SAMPLES,
    SAMPLE_RATE,
    SAMPLE_WIDTH,
    FrameSplitter,
    duration_ms,
    float_to_pcm,
    iter_frames,
    pcm_to_array,
    pcm_to_float,
    samples_to_pcm,
    silence,
)
from roost.audio.resample import Quality, Resampler, resample
from roost.audio.vad import EnergyVad, VadEvent, rms_dbfs
from roost.audio.wav import DecodedWav, StereoWavWriter, WavError, decode_wav, read_wav, write_wav

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "SAMPLE_WIDTH",
    "DecodedWav",
    "EnergyVad",
    "FrameSplitter",
    "Quality",
    "Resampler",
    "StereoWavWriter",
    "VadEvent",
    "WavError",
    "decode_wav",
    "duration_ms",
    "float_to_pcm",
    "iter_frames",
    "pcm_to_array",
    "pcm_to_float",
    "read_wav",
    "resample",
    "rms_dbfs",
    "samples_to_pcm",
    "silence",
    "write_wav",
]
