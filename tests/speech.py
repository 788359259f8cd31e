"""Real speech for tests: espeak-ng renders it, the audio utilities bring it to 16 kHz.

Rendered once per text per test session directory (espeak-ng takes about 0.1 s);
nothing is committed to the repository.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from roost.audio import read_wav

__all__ = ["speech_pcm", "speech_wav"]


def speech_wav(directory: Path, text: str) -> Path:
    """Path of a WAV of ``text`` spoken by espeak-ng (22.05 kHz mono, as it writes it)."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (Debian package espeak-ng)")
    name = hashlib.sha1(text.encode()).hexdigest()[:12]
    path = directory / f"speech-{name}.wav"
    if not path.exists():
        partial = path.with_suffix(".partial.wav")
        subprocess.run(["espeak-ng", "-w", str(partial), text], check=True, timeout=30)
        partial.replace(path)
    return path


def speech_pcm(directory: Path, text: str) -> bytes:
    """``text`` as 16 kHz mono ``pcm_s16le``."""
    return read_wav(speech_wav(directory, text))
