"""Energy voice-activity detection: the dependency-free fallback and the test VAD.

Speech is any 20 ms frame whose RMS level is at or above a threshold in dBFS.
In a clean synthetic call (TTS audio, digital silence between turns) that is
exact and costs a few microseconds per frame; against background noise it
misses quiet syllables (about 69 % of speech frames flagged at -40 dBFS in
``sip-stack-notes.md`` §5), so real turn-taking should use a model VAD such as
silero and keep this one for tests and as a fallback.

:class:`EnergyVad` is sans-I/O: it consumes audio and reports start/end events
at positions on the audio's own timeline, so the caller decides what time means.
A start needs ``start_ms`` of consecutive loud frames (ignores clicks); an end
needs ``hangover_ms`` of quiet (bridges the gaps between words).

Example:
    >>> import numpy as np
    >>> from roost.audio import EnergyVad, samples_to_pcm, silence
    >>> tone = samples_to_pcm(8000 * np.sin(np.arange(8000) / 5.0))  # 0.5 s
    >>> vad = EnergyVad()
    >>> [(e.speaking, e.offset_ms) for e in vad.push(silence(200) + tone + silence(600))]
    [(True, 200.0), (False, 700.0)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from roost.audio.pcm import SAMPLE_RATE, SAMPLE_WIDTH, FrameSplitter, pcm_to_array

__all__ = ["EnergyVad", "VadEvent", "rms_dbfs"]


def rms_dbfs(pcm: bytes | bytearray | memoryview) -> float:
    """RMS level of ``pcm_s16le`` audio in dBFS (full-scale sine = -3 dB); ``-inf`` if silent."""
    samples = pcm_to_array(pcm)
    if not samples.size:
        return -math.inf
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    if mean_square <= 0.0:
        return -math.inf
    return 10.0 * math.log10(mean_square / (32768.0 * 32768.0))


@dataclass(frozen=True, slots=True)
class VadEvent:
    """A change of voice activity.

    Attributes:
        speaking: True when speech started, False when it ended.
        offset_ms: Position on the audio timeline: the start of the first loud
            frame, or the end of the last loud frame.
    """

    speaking: bool
    offset_ms: float


class EnergyVad:
    """Streaming RMS-threshold voice-activity detector.

    Args:
        threshold_dbfs: Frames at or above this level are speech.
        rate: Sample rate of the audio pushed in.
        frame_ms: Analysis frame length.
        start_ms: Consecutive speech needed to report a start.
        hangover_ms: Consecutive quiet needed to report an end.
    """

    def __init__(
        self,
        *,
        threshold_dbfs: float = -40.0,
        rate: int = SAMPLE_RATE,
        frame_ms: int = 20,
        start_ms: float = 40.0,
        hangover_ms: float = 300.0,
    ) -> None:
        if frame_ms <= 0 or rate <= 0:
            raise ValueError("rate and frame_ms must be positive")
        self.threshold_dbfs = threshold_dbfs
        self.frame_ms = frame_ms
        self._splitter = FrameSplitter(rate * frame_ms // 1000 * SAMPLE_WIDTH)
        self._start_frames = max(1, math.ceil(start_ms / frame_ms))
        self._end_frames = max(1, math.ceil(hangover_ms / frame_ms))
        self._frames = 0
        self._run = 0  # consecutive frames contradicting the current state
        self.speaking = False
        """Whether speech is currently detected."""

    @property
    def position_ms(self) -> float:
        """Audio analysed so far (whole frames only)."""
        return float(self._frames * self.frame_ms)

    def is_speech(self, frame: bytes | bytearray | memoryview) -> bool:
        """Whether one frame is loud enough to count as speech."""
        return rms_dbfs(frame) >= self.threshold_dbfs

    def push(self, pcm: bytes | bytearray | memoryview) -> list[VadEvent]:
        """Analyse more audio; returns the starts and ends it completes, in order."""
        events: list[VadEvent] = []
        for frame in self._splitter.push(pcm):
            loud = self.is_speech(frame)
            self._frames += 1
            if loud != self.speaking:
                self._run += 1
            else:
                self._run = 0
            needed = self._end_frames if self.speaking else self._start_frames
            if self._run >= needed:
                self.speaking = not self.speaking
                # The change began `needed` frames ago, where the run started.
                events.append(
                    VadEvent(self.speaking, float((self._frames - needed) * self.frame_ms))
                )
                self._run = 0
        return events

    def reset(self) -> None:
        """Forget all state and restart the timeline at zero."""
        self._splitter.clear()
        self._frames = 0
        self._run = 0
        self.speaking = False
