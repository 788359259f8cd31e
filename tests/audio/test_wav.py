from __future__ import annotations

import shutil
import struct
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from roost.audio import (
    StereoWavWriter,
    WavError,
    decode_wav,
    pcm_to_array,
    read_wav,
    samples_to_pcm,
    silence,
    write_wav,
)
from tests.speech import speech_wav

needs_sox = pytest.mark.skipif(shutil.which("sox") is None, reason="sox is not installed")


def sox(source: Path, target: Path, *options: str) -> Path:
    # -D: no dither, so sox's own 16-bit rendering is a bit-exact reference.
    subprocess.run(["sox", "-D", str(source), *options, str(target)], check=True, timeout=30)
    return target


def sox_int16(source: Path, channels: int) -> np.ndarray:
    raw = subprocess.run(
        ["sox", "-D", str(source), "-t", "raw", "-e", "signed", "-b", "16", "-L", "-"],
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout
    return np.frombuffer(raw, "<i2").reshape(-1, channels)


def int16_frames(path: Path) -> np.ndarray:
    with wave.open(str(path), "rb") as reader:
        channels = reader.getnchannels()
        data = reader.readframes(reader.getnframes())
    return np.frombuffer(data, "<i2").reshape(-1, channels)


@needs_sox
@pytest.mark.parametrize(
    ("options", "encoding", "bits"),
    [
        (["-e", "unsigned", "-b", "8"], "PCM", 8),
        (["-e", "signed", "-b", "16"], "PCM", 16),
        (["-e", "signed", "-b", "24"], "PCM", 24),  # WAVE_FORMAT_EXTENSIBLE
        (["-e", "signed", "-b", "32"], "PCM", 32),  # WAVE_FORMAT_EXTENSIBLE
        (["-e", "float", "-b", "32"], "float", 32),
        (["-e", "float", "-b", "64"], "float", 64),
        (["-e", "mu-law"], "µ-law", 8),
        (["-e", "a-law"], "A-law", 8),
        (["-e", "float", "-b", "32", "-c", "3"], "float", 32),  # extensible float
    ],
)
def test_every_common_encoding_decodes_like_sox_does(
    tmp_path: Path, options: list[str], encoding: str, bits: int
) -> None:
    speech = speech_wav(tmp_path, "Testing every common encoding.")
    encoded = sox(speech, tmp_path / "encoded.wav", *options)
    decoded = decode_wav(encoded.read_bytes())
    reference = sox_int16(encoded, decoded.channels)
    assert decoded.encoding == encoding
    assert decoded.bits == bits
    assert decoded.sample_rate == 22_050
    ours = np.clip(np.rint(decoded.samples * 32768.0), -32768, 32767).astype(np.int32)
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours - reference)) <= 1


@needs_sox
def test_read_wav_downmixes_and_resamples_to_16k_mono(tmp_path: Path) -> None:
    speech = speech_wav(tmp_path, "Stereo at forty eight kilohertz.")
    stereo = sox(speech, tmp_path / "stereo48.wav", "-c", "2", "-r", "48000")
    original = decode_wav(speech.read_bytes())
    pcm = read_wav(stereo)
    assert len(pcm) / 2 / 16_000 == pytest.approx(original.duration_s, abs=0.002)
    # Both channels carry the same speech, so the downmix keeps its level.
    level = np.sqrt(np.mean(pcm_to_array(pcm).astype(float) ** 2))
    reference = np.sqrt(np.mean(pcm_to_array(read_wav(speech)).astype(float) ** 2))
    assert level == pytest.approx(reference, rel=0.05)


def riff(*chunks: tuple[bytes, bytes], form: bytes = b"WAVE", magic: bytes = b"RIFF") -> bytes:
    body = b"".join(
        cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) % 2) for cid, data in chunks
    )
    return magic + struct.pack("<I", 4 + len(body)) + form + body


def fmt(tag: int = 1, channels: int = 1, rate: int = 16_000, bits: int = 16) -> bytes:
    align = channels * bits // 8
    return struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)


def test_chunks_before_and_after_data_and_odd_padding_are_skipped() -> None:
    data = samples_to_pcm([1, 2, 3])
    blob = riff((b"LIST", b"odd"), (b"fmt ", fmt()), (b"data", data), (b"cue ", b"1234"))
    assert pcm_to_array(read_wav(blob)).tolist() == [1, 2, 3]


def test_data_chunk_before_fmt_still_decodes() -> None:
    blob = riff((b"data", samples_to_pcm([7, 8])), (b"fmt ", fmt()))
    assert pcm_to_array(read_wav(blob)).tolist() == [7, 8]


def test_streamed_files_with_placeholder_sizes_read_to_the_end() -> None:
    data = samples_to_pcm([5, 6, 7, 8])
    header = (
        b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt()
    )
    for size in (0xFFFFFFFF, 0, 1000):
        blob = header + b"data" + struct.pack("<I", size) + data
        assert pcm_to_array(read_wav(blob)).tolist() == [5, 6, 7, 8]


def test_a_trailing_partial_frame_is_dropped() -> None:
    blob = riff((b"fmt ", fmt(channels=2)), (b"data", samples_to_pcm([1, 2, 3, 4]) + b"\x01\x00"))
    assert decode_wav(blob).samples.shape == (2, 2)


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "shorter than a RIFF header"),
        (b"OggS" + bytes(40), "missing the RIFF/WAVE header"),
        (riff((b"fmt ", fmt()), form=b"AVI "), "missing the RIFF/WAVE header"),
        (riff((b"fmt ", fmt()), magic=b"RIFX"), "big-endian"),
        (riff((b"fmt ", fmt()), magic=b"RF64"), "RF64"),
        (riff((b"data", b"\0\0")), "no 'fmt ' chunk"),
        (riff((b"fmt ", fmt())), "no 'data' chunk"),
        (riff((b"fmt ", b"\1\0"), (b"data", b"")), "needs 16"),
        (riff((b"fmt ", fmt(tag=0x55)), (b"data", b"")), r"0x0055 \(MP3\)"),
        (riff((b"fmt ", fmt(tag=0x2222)), (b"data", b"")), r"0x2222 \(unknown\)"),
        (riff((b"fmt ", fmt(channels=0)), (b"data", b"")), "zero channels"),
        (riff((b"fmt ", fmt(rate=0)), (b"data", b"")), "zero sample rate"),
        (riff((b"fmt ", fmt(tag=0xFFFE)), (b"data", b"")), "EXTENSIBLE"),
        (riff((b"fmt ", fmt(bits=12)), (b"data", b"")), "12-bit samples do not fit 1-byte"),
        (riff((b"fmt ", fmt(channels=2, bits=12)), (b"data", b"")), "block size 3 for 2"),
        (riff((b"fmt ", fmt(tag=3, bits=16)), (b"data", b"\0\0")), "float sample width of 16"),
        (riff((b"fmt ", fmt(tag=7, bits=16)), (b"data", b"\0\0")), "8-bit samples"),
        (riff((b"fmt ", fmt(bits=40)), (b"data", bytes(5))), "PCM sample width of 40"),
    ],
)
def test_bad_files_get_a_specific_reason(blob: bytes, message: str) -> None:
    with pytest.raises(WavError, match=message):
        decode_wav(blob)


def test_float_files_with_nan_and_overs_are_sanitised() -> None:
    samples = np.array([np.nan, 2.0, -3.0, 0.25], dtype="<f4").tobytes()
    blob = riff((b"fmt ", fmt(tag=3, bits=32)), (b"data", samples))
    assert pcm_to_array(read_wav(blob)).tolist() == [0, 32767, -32768, 8192]


def test_write_wav_round_trips(tmp_path: Path) -> None:
    pcm = samples_to_pcm(np.arange(-500, 500) * 30)
    path = write_wav(tmp_path / "a.wav", pcm)
    assert read_wav(path) == pcm
    assert int16_frames(write_wav(tmp_path / "s.wav", pcm, channels=2)).shape == (500, 2)
    with pytest.raises(ValueError, match="whole number of 2-channel frames"):
        write_wav(tmp_path / "b.wav", b"\0\0", channels=2)


def ramp(count: int, start: int = 1) -> bytes:
    return samples_to_pcm(np.arange(start, start + count))


def test_stereo_writer_places_chunks_on_their_tracks_with_silence_between(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with StereoWavWriter(path, rate=1000) as writer:  # 1 sample per millisecond
        assert writer.add(0, ramp(10), at_ms=0) == 0
        assert writer.add(1, ramp(5, 100), at_ms=20) == 20
        assert writer.add(0, ramp(10, 50), at_ms=30) == 30
        assert writer.duration_ms == 40
    frames = int16_frames(path)
    assert frames.shape == (40, 2)
    assert frames[:10, 0].tolist() == list(range(1, 11))
    assert not frames[10:30, 0].any()
    assert frames[30:40, 0].tolist() == list(range(50, 60))
    assert frames[20:25, 1].tolist() == list(range(100, 105))
    assert not frames[:20, 1].any() and not frames[25:, 1].any()


def test_stereo_writer_never_overlaps_a_track_and_snaps_small_gaps(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    with StereoWavWriter(path, rate=1000, snap_ms=3) as writer:
        writer.add(1, ramp(10), at_ms=0)
        # Arrives while the previous chunk is still playing: queued after it.
        assert writer.add(1, ramp(10, 11), at_ms=4) == 10
        # 2 ms after the end: within snap, joined without a click of silence.
        assert writer.add(1, ramp(10, 21), at_ms=22) == 20
        # 10 ms after the end: a real gap.
        assert writer.add(1, ramp(5, 31), at_ms=40) == 40
    right = int16_frames(path)[:, 1]
    assert right[:30].tolist() == list(range(1, 31))
    assert not right[30:40].any()
    assert right[40:45].tolist() == list(range(31, 36))


def test_stereo_writer_streams_long_calls_to_disk_with_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    rate = 16_000
    expected = np.zeros((rate * 60 + 80, 2), dtype=np.int16)
    writer = StereoWavWriter(path, rate=rate, window_ms=1000)
    rng = np.random.default_rng(7)
    for index in range(3000):  # 60 s of 20 ms frames on the left, echoed 5 ms later on the right
        frame = rng.integers(-20000, 20000, 320, dtype=np.int16)
        at = index * 20.0
        writer.add(0, frame.tobytes(), at_ms=at)
        writer.add(1, frame.tobytes(), at_ms=at + 5)
        expected[index * 320 : index * 320 + 320, 0] = frame
        expected[index * 320 + 80 : index * 320 + 400, 1] = frame
        assert len(writer._buffer) <= 4 * rate  # never more than a few seconds in memory
    writer.close()
    frames = int16_frames(path)
    assert frames.shape == (rate * 60 + 80, 2)
    assert np.array_equal(frames, expected)


def test_stereo_writer_places_a_chunk_older_than_the_window_at_the_first_free_moment(
    tmp_path: Path,
) -> None:
    path = tmp_path / "late.wav"
    with StereoWavWriter(path, rate=1000, window_ms=100) as writer:
        writer.add(0, silence(10, rate=1000), at_ms=0)
        writer.add(0, silence(10, rate=1000), at_ms=2000)  # flushes up to 1900 ms
        assert writer.add(1, ramp(5), at_ms=50) == 1900  # too late for 50 ms: not lost
    frames = int16_frames(path)
    assert frames[1900:1905, 1].tolist() == [1, 2, 3, 4, 5]


def test_stereo_writer_rejects_misuse(tmp_path: Path) -> None:
    writer = StereoWavWriter(tmp_path / "x.wav")
    with pytest.raises(ValueError, match="track must be 0"):
        writer.add(2, silence(20), at_ms=0)
    with pytest.raises(ValueError, match="even number of bytes"):
        writer.add(0, b"\0", at_ms=0)
    assert writer.close() == tmp_path / "x.wav"
    assert writer.close() == tmp_path / "x.wav"
    with pytest.raises(RuntimeError, match="closed"):
        writer.add(0, silence(20), at_ms=0)
    assert int16_frames(tmp_path / "x.wav").shape == (0, 2)
