from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from roost.audio import EnergyVad, VadEvent, pcm_to_array, rms_dbfs, samples_to_pcm, silence
from tests.speech import speech_pcm


def test_rms_levels() -> None:
    assert rms_dbfs(silence(20)) == -math.inf
    assert rms_dbfs(b"") == -math.inf
    full_sine = samples_to_pcm(32767 * np.sin(np.arange(3200) * 2 * np.pi / 32))
    assert rms_dbfs(full_sine) == pytest.approx(-3.01, abs=0.05)


def test_real_speech_between_silences_is_one_turn(tmp_path: Path) -> None:
    speech = speech_pcm(tmp_path, "The quick brown fox jumps over the lazy dog.")
    samples = pcm_to_array(speech)
    loud = np.nonzero(np.abs(samples) > 300)[0]
    onset_ms, offset_ms = loud[0] / 16.0, loud[-1] / 16.0
    audio = silence(1000) + speech + silence(1000)
    vad = EnergyVad()
    events: list[VadEvent] = []
    for start in range(0, len(audio), 500):  # uneven chunks, as a network delivers them
        events.extend(vad.push(audio[start : start + 500]))
    assert [e.speaking for e in events] == [True, False]
    assert events[0].offset_ms == pytest.approx(1000 + onset_ms, abs=40)
    assert events[1].offset_ms == pytest.approx(1000 + offset_ms, abs=40)
    assert not vad.speaking
    assert vad.position_ms == pytest.approx(len(audio) / 32, abs=20)


def test_faint_noise_and_clicks_are_not_speech() -> None:
    rng = np.random.default_rng(3)
    noise = samples_to_pcm(rng.normal(0, 32768 * 10 ** (-50 / 20), 16_000))  # -50 dBFS
    click = samples_to_pcm(np.full(320, 20000))  # one loud 20 ms frame
    vad = EnergyVad(start_ms=40)
    assert vad.push(noise + click + noise) == []


def test_hangover_bridges_pauses_between_words_and_reset_restarts() -> None:
    word = samples_to_pcm(8000 * np.sin(np.arange(3200) / 3.0))  # 200 ms
    vad = EnergyVad(hangover_ms=300)
    events = vad.push(word + silence(200) + word + silence(400))
    assert [(e.speaking, e.offset_ms) for e in events] == [(True, 0.0), (False, 600.0)]
    vad.reset()
    assert vad.position_ms == 0.0
    assert not vad.speaking


def test_validation() -> None:
    with pytest.raises(ValueError, match="positive"):
        EnergyVad(frame_ms=0)
