from __future__ import annotations

import numpy as np
import pytest

from roost.audio import Resampler, pcm_to_float, resample, samples_to_pcm, silence


def tone(freq: float, rate: int, seconds: float = 1.0, level: float = 10000.0) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return samples_to_pcm(level * np.sin(2 * np.pi * freq * t))


def rms(pcm: bytes) -> float:
    samples = pcm_to_float(pcm)[400:-400]
    return float(np.sqrt(np.mean(samples**2)))


def test_streaming_matches_the_expected_length_and_keeps_the_tone() -> None:
    source = tone(1000, 16_000)
    down = Resampler(16_000, 8_000)
    out = b"".join(down.process(source[i : i + 640]) for i in range(0, len(source), 640))
    out += down.flush()
    assert len(out) == len(source) // 2
    assert rms(out) == pytest.approx(rms(source), rel=0.02)


def test_downsampling_filters_what_would_alias() -> None:
    # 5 kHz cannot exist at 8 kHz; without an anti-alias filter it folds to 3 kHz.
    out = resample(tone(5000, 16_000), 16_000, 8_000)
    assert rms(out) < 0.01 * rms(tone(5000, 16_000))


def test_chunks_split_mid_sample_are_carried_over() -> None:
    source = tone(440, 8_000, 0.5)
    up = Resampler(8_000, 16_000)
    pieces = [up.process(source[i : i + 101]) for i in range(0, len(source), 101)]
    out = b"".join(pieces) + up.flush()
    assert len(out) == 2 * len(source)
    assert all(len(piece) % 2 == 0 for piece in pieces)


def test_equal_rates_pass_through_and_reset_clears_state() -> None:
    same = Resampler(16_000, 16_000)
    assert same.process(b"\x01\x02\x03") == b"\x01\x02"
    assert same.process(b"\x04") == b"\x03\x04"
    assert same.flush() == b""
    down = Resampler(16_000, 8_000)
    down.process(tone(300, 16_000, 0.1))
    down.reset()
    assert down.flush() == b""


def test_one_shot_and_validation() -> None:
    assert len(resample(silence(100, rate=8_000), 8_000, 16_000)) == 3200
    assert resample(b"", 8_000, 16_000) == b""
    with pytest.raises(ValueError, match="positive"):
        Resampler(0, 16_000)
    with pytest.raises(ValueError, match="positive"):
        resample(silence(10), 16_000, -1)
