"""G.711 μ-law and A-law with numpy lookup tables, bit-exact with the classic codec.

Why tables: encoding is one fancy-indexing lookup per 20 ms frame
(65,536-entry encode tables indexed by the 16-bit sample, 256-entry decode
tables), about 2 µs per frame, with no dependency beyond numpy. ``audioop``
did this in C but left the standard library in Python 3.13, and its
replacement package does not install on 3.11 (sip-stack-notes §5).

Why these tables: they follow the classic ITU-T G.711 reference (the Sun
Microsystems ``g711.c`` that ``audioop`` and most telephony stacks use), so
our audio is byte-for-byte what a peer expects:

* μ-law encodes the sample's top 14 bits (``sample >> 2``), adds the bias
  0x21, clips at 8159 and finds the segment among the upper bounds
  0x3F, 0x7F ... 0x1FFF; a common 16-bit shortcut (bias 0x84, clip 32635)
  rounds differently and is *not* bit-exact;
* A-law encodes the top 13 bits (``sample >> 3``) with segment bounds
  0x1F ... 0xFFF and inverts the even bits (XOR 0x55).

The tables are built with vectorised numpy at import (a few milliseconds) and
checked in ``tests/sip/test_g711.py`` against frozen tables made with SoX
(``tests/fixtures/sip/g711/``): decoding is identical for all 256 codes of both
laws; encoding equals SoX's for every sample G.711 defines (14-bit μ-law,
13-bit A-law values), and on other samples differs only where SoX rounds the
dropped low bits and we truncate them, as Sun's ``g711.c`` does.

Example:
    >>> import numpy as np
    >>> pcm = np.array([0, 1000, -1000, 32767, -32768], dtype="<i2").tobytes()
    >>> ulaw_encode(pcm).hex(), alaw_encode(pcm).hex()
    ('ffce4e8000', 'd5fa7aaa2a')
    >>> np.frombuffer(ulaw_decode(ulaw_encode(pcm)), dtype="<i2").tolist()
    [0, 988, -988, 32124, -32124]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_DECODE",
    "ALAW_ENCODE",
    "ULAW_DECODE",
    "ULAW_ENCODE",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "ulaw_decode",
    "ulaw_encode",
]

_SEG_ULAW_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])
_SEG_ALAW_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _all_samples() -> npt.NDArray[np.int64]:
    # Index i of an encode table is the 16-bit pattern of the sample, so
    # samples 0..32767 come first and -32768..-1 after them.
    return np.arange(65536, dtype=np.int64).astype(np.uint16).view(np.int16).astype(np.int64)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_samples() >> 2
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), 8159) + 0x21
    segment = np.searchsorted(_SEG_ULAW_END, magnitude)
    mantissa = (magnitude >> (segment + 1)) & 0x0F
    value = np.where(segment >= 8, 0x7F, (segment << 4) | mantissa)
    return (value ^ mask).astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    pcm = _all_samples() >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    segment = np.searchsorted(_SEG_ALAW_END, magnitude)
    shift = np.where(segment < 2, 1, segment)
    value = (segment << 4) | ((magnitude >> shift) & 0x0F)
    value = np.where(segment >= 8, 0x7F, value)
    return (value ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int64) & 0xFF
    magnitude = (((code & 0x0F) << 3) + 0x84) << ((code & 0x70) >> 4)
    value = np.where(code & 0x80, 0x84 - magnitude, magnitude - 0x84)
    return value.astype(np.int16)


def _build_alaw_decode() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64) ^ 0x55
    segment = (code & 0x70) >> 4
    magnitude = (code & 0x0F) << 4
    magnitude = np.where(segment == 0, magnitude + 8, magnitude + 0x108)
    magnitude = np.where(segment > 1, magnitude << np.maximum(segment - 1, 0), magnitude)
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_ENCODE = _build_ulaw_encode()
"""μ-law code of every 16-bit sample, indexed by the sample's unsigned bit pattern."""
ALAW_ENCODE = _build_alaw_encode()
"""A-law code of every 16-bit sample, indexed by the sample's unsigned bit pattern."""
ULAW_DECODE = _build_ulaw_decode()
"""Linear 16-bit value of every μ-law code."""
ALAW_DECODE = _build_alaw_decode()
"""Linear 16-bit value of every A-law code."""
for _table in (ULAW_ENCODE, ALAW_ENCODE, ULAW_DECODE, ALAW_DECODE):
    _table.setflags(write=False)


def _as_indices(pcm: bytes | npt.NDArray[Any]) -> npt.NDArray[np.uint16]:
    if isinstance(pcm, np.ndarray):
        if pcm.dtype != np.int16:
            raise ValueError(f"PCM arrays must be int16, got {pcm.dtype}")
        return pcm.view(np.uint16)
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM needs an even number of bytes, got {len(pcm)}")
    return np.frombuffer(pcm, dtype="<u2")


def ulaw_encode(pcm: bytes | npt.NDArray[Any]) -> bytes:
    """Encode signed 16-bit little-endian PCM (bytes or an int16 array) to μ-law."""
    return ULAW_ENCODE[_as_indices(pcm)].tobytes()


def alaw_encode(pcm: bytes | npt.NDArray[Any]) -> bytes:
    """Encode signed 16-bit little-endian PCM (bytes or an int16 array) to A-law."""
    return ALAW_ENCODE[_as_indices(pcm)].tobytes()


def ulaw_decode(data: bytes) -> bytes:
    """Decode μ-law to signed 16-bit little-endian PCM."""
    return ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def alaw_decode(data: bytes) -> bytes:
    """Decode A-law to signed 16-bit little-endian PCM."""
    return ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)].astype("<i2").tobytes()


def encode(codec: str, pcm: bytes | npt.NDArray[Any]) -> bytes:
    """Encode PCM with ``PCMU`` or ``PCMA`` (the SDP encoding names)."""
    name = codec.upper()
    if name == "PCMU":
        return ulaw_encode(pcm)
    if name == "PCMA":
        return alaw_encode(pcm)
    raise ValueError(f"unsupported codec {codec!r} (PCMU or PCMA)")


def decode(codec: str, data: bytes) -> bytes:
    """Decode ``PCMU`` or ``PCMA`` payload to 16-bit PCM."""
    name = codec.upper()
    if name == "PCMU":
        return ulaw_decode(data)
    if name == "PCMA":
        return alaw_decode(data)
    raise ValueError(f"unsupported codec {codec!r} (PCMU or PCMA)")
