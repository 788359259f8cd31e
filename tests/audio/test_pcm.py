from __future__ import annotations

import numpy as np
import pytest

from roost.audio import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    FrameSplitter,
    duration_ms,
    float_to_pcm,
    iter_frames,
    pcm_to_array,
    pcm_to_float,
    samples_to_pcm,
    silence,
)


def test_constants_describe_20ms_at_16khz() -> None:
    assert FRAME_SAMPLES == 320
    assert FRAME_BYTES == 640


def test_bytes_and_arrays_round_trip_little_endian() -> None:
    pcm = b"\x01\x00\xff\x7f\x00\x80"
    array = pcm_to_array(pcm)
    assert array.tolist() == [1, 32767, -32768]
    assert samples_to_pcm(array) == pcm


def test_odd_byte_counts_are_rejected_with_the_count() -> None:
    with pytest.raises(ValueError, match="even number of bytes, got 3"):
        pcm_to_array(b"abc")


def test_samples_to_pcm_clips_and_rounds() -> None:
    assert pcm_to_array(samples_to_pcm([40000, -40000, 1.6])).tolist() == [32767, -32768, 2]


def test_float_conversion_clips_overs() -> None:
    pcm = float_to_pcm([0.0, 0.5, -1.0, 2.0])
    assert pcm_to_array(pcm).tolist() == [0, 16384, -32768, 32767]
    assert pcm_to_float(pcm)[1] == pytest.approx(0.5)


def test_duration_and_silence() -> None:
    assert duration_ms(silence(20)) == 20.0
    assert duration_ms(1600, rate=8000) == 100.0
    assert len(silence(1000, rate=8000)) == 16000
    assert not np.any(pcm_to_array(silence(5)))


def test_iter_frames_keeps_a_short_tail_unpadded() -> None:
    frames = list(iter_frames(silence(50)))
    assert [len(f) for f in frames] == [640, 640, 320]
    with pytest.raises(ValueError, match="positive even"):
        list(iter_frames(silence(20), frame_bytes=3))


def test_frame_splitter_reframes_arbitrary_chunks_in_order() -> None:
    stream = samples_to_pcm(np.arange(2000) % 30000)
    splitter = FrameSplitter()
    out: list[bytes] = []
    # Odd chunk sizes split samples in half; nothing may be lost or reordered.
    for start in range(0, len(stream), 333):
        out.extend(splitter.push(stream[start : start + 333]))
    tail = splitter.flush()
    assert all(len(frame) == FRAME_BYTES for frame in out)
    assert b"".join(out) + tail == stream
    assert splitter.pending == 0


def test_frame_splitter_flush_pads_and_drops_half_samples() -> None:
    splitter = FrameSplitter(frame_bytes=8)
    assert splitter.push(b"\x01\x02\x03") == []
    assert splitter.flush(pad=True) == b"\x01\x02" + bytes(6)
    splitter.push(b"\x05")
    assert splitter.clear() == 1
    assert splitter.flush() == b""
